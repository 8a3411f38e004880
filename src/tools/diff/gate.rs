//! `--fail-on`: which changes fail a CI job. Conditions (several may be
//! given; any one matching fails):
//!
//! - `widen`: any change that widens access;
//! - `widen:level>=N`: a widening change touching a field (or budget) of
//!   level N or more;
//! - `widen:role=R`: a widening change for role R (changes for every role,
//!   like a passthrough route, count for each);
//! - `route-passthrough`: a route became passthrough;
//! - `any`: any change at all.

use super::{ALL_ROLES, Change, Direction};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Any,
    Widen,
    WidenLevel(u8),
    WidenRole(String),
    RoutePassthrough,
}

/// A `--fail-on` value that names no condition (the value, trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--fail-on `{0}`: expected widen, widen:level>=N, widen:role=ROLE, route-passthrough or any"
)]
pub struct BadCondition(pub String);

impl std::str::FromStr for Condition {
    type Err = BadCondition;

    fn from_str(s: &str) -> Result<Self, BadCondition> {
        let s = s.trim();
        let bad = || BadCondition(s.to_string());
        Ok(match s {
            "any" => Condition::Any,
            "widen" => Condition::Widen,
            "route-passthrough" => Condition::RoutePassthrough,
            _ => match s.strip_prefix("widen:") {
                Some(rest) => {
                    if let Some(n) = rest.strip_prefix("level>=") {
                        Condition::WidenLevel(n.trim().parse().map_err(|_| bad())?)
                    } else if let Some(r) = rest.strip_prefix("role=") {
                        if r.trim().is_empty() {
                            return Err(bad());
                        }
                        Condition::WidenRole(r.trim().to_string())
                    } else {
                        return Err(bad());
                    }
                }
                None => return Err(bad()),
            },
        })
    }
}

impl Condition {
    pub fn matches(&self, c: &Change) -> bool {
        let widens = c.direction == Direction::Widens;
        match self {
            Condition::Any => true,
            Condition::Widen => widens,
            Condition::WidenLevel(n) => widens && c.level.is_some_and(|l| l >= *n),
            Condition::WidenRole(r) => widens && (c.role == *r || c.role == ALL_ROLES),
            Condition::RoutePassthrough => c.kind == "route-passthrough" && c.to == "passthrough",
        }
    }
}

/// The changes any condition matches.
pub fn tripped<'a>(conditions: &[Condition], changes: &'a [Change]) -> Vec<&'a Change> {
    changes
        .iter()
        .filter(|c| conditions.iter().any(|k| k.matches(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Condition;

    #[test]
    fn conditions_parse_and_refuse_typos() {
        assert_eq!("widen".parse(), Ok(Condition::Widen));
        assert_eq!("widen:level>=3".parse(), Ok(Condition::WidenLevel(3)));
        assert_eq!(
            "widen:role=partner".parse(),
            Ok(Condition::WidenRole("partner".into()))
        );
        assert_eq!("route-passthrough".parse(), Ok(Condition::RoutePassthrough));
        for bad in ["widen:level>3", "widden", "widen:role=", ""] {
            assert!(bad.parse::<Condition>().is_err(), "{bad}");
        }
    }
}
