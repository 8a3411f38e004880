//! Which expanded records `fieldguard audit expand` prints: the answers to
//! an operator's first questions after an alert (who took this budget
//! over, what did this principal do, what went through this route, what
//! was refused), without a pipe to `grep` that would have to know how a
//! record spells them.
//!
//! It reads records in full (definitions merged in, [`super::read`]), so
//! it sees what a raw line leaves to its definition (a budget's id, the
//! route, the decision). Each kind of criterion matches when any of its
//! values does; records must match every kind given. No criterion: every
//! record, as before.

use serde_json::Value;

/// The criteria, each a list of accepted values (empty: any).
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Budget ids: the record took (or would have taken) one of them over
    /// its limit (`budget[].budget`).
    pub budgets: Vec<String>,
    /// Principal ids (`principal.id`).
    pub principals: Vec<String>,
    /// Route templates, alone (`/customers/{id}`) or after the method
    /// (`GET /customers/{id}`), as `audit subject` prints them.
    pub routes: Vec<String>,
    /// Request-level decisions: `allow`, `deny` or `passthrough`.
    pub decisions: Vec<String>,
}

/// The decisions a record can carry; anything else given is a typo that
/// would silently match nothing.
pub const DECISIONS: [&str; 3] = ["allow", "deny", "passthrough"];

impl RecordFilter {
    /// Reads `allowed` and `denied` (how `audit subject` prints them) as
    /// `allow` and `deny`, and refuses a value that can never match, so a
    /// typo is not read as "no such records".
    pub fn check(&mut self) -> Result<(), String> {
        for d in &mut self.decisions {
            match d.as_str() {
                "allowed" => *d = "allow".into(),
                "denied" => *d = "deny".into(),
                _ => {}
            }
            if !DECISIONS.contains(&d.as_str()) {
                return Err(format!(
                    "--decision {d}: expected one of {}",
                    DECISIONS.join(", ")
                ));
            }
        }
        for r in &self.routes {
            if !r.contains('/') {
                return Err(format!(
                    "--route {r}: expected a route template such as /customers/{{id}} or GET /customers/{{id}}"
                ));
            }
        }
        Ok(())
    }

    /// Whether `rec` (expanded) meets every criterion given.
    pub fn matches(&self, rec: &Value) -> bool {
        let any = |wanted: &[String], got: &[&str]| {
            wanted.is_empty() || wanted.iter().any(|w| got.contains(&w.as_str()))
        };
        let str_at = |ptr: &str| rec.pointer(ptr).and_then(Value::as_str);
        let budgets: Vec<&str> = rec
            .get("budget")
            .and_then(Value::as_array)
            .map(|flags| {
                flags
                    .iter()
                    .filter_map(|f| f.get("budget").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let route = str_at("/route");
        let method = str_at("/method");
        let routes: Vec<String> = route
            .into_iter()
            .flat_map(|r| {
                let with_method = method.map(|m| format!("{m} {r}"));
                std::iter::once(r.to_string()).chain(with_method)
            })
            .collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        any(&self.budgets, &budgets)
            && any(
                &self.principals,
                &str_at("/principal/id").into_iter().collect::<Vec<_>>(),
            )
            && any(&self.routes, &routes)
            && any(
                &self.decisions,
                &str_at("/decision").into_iter().collect::<Vec<_>>(),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec() -> Value {
        json!({
            "budget": [{"budget": "support-records-hour", "action": "alert"},
                       {"budget": "support-records-day", "action": "refuse"}],
            "principal": {"id": "agent-7", "roles": ["support_agent"]},
            "method": "GET", "route": "/customers", "decision": "allow", "seq": 9
        })
    }

    fn with(f: impl FnOnce(&mut RecordFilter)) -> RecordFilter {
        let mut filter = RecordFilter::default();
        f(&mut filter);
        filter
    }

    #[test]
    fn each_criterion_matches_its_field_and_all_must_hold() {
        assert!(RecordFilter::default().matches(&rec()));
        assert!(with(|f| f.budgets = vec!["support-records-day".into()]).matches(&rec()));
        assert!(!with(|f| f.budgets = vec!["support-records".into()]).matches(&rec()));
        assert!(with(|f| f.principals = vec!["agent-7".into()]).matches(&rec()));
        assert!(!with(|f| f.principals = vec!["agent-70".into()]).matches(&rec()));
        assert!(with(|f| f.routes = vec!["/customers".into()]).matches(&rec()));
        assert!(with(|f| f.routes = vec!["GET /customers".into()]).matches(&rec()));
        assert!(!with(|f| f.routes = vec!["POST /customers".into()]).matches(&rec()));
        assert!(!with(|f| f.routes = vec!["/customers/{id}".into()]).matches(&rec()));
        assert!(with(|f| f.decisions = vec!["deny".into(), "allow".into()]).matches(&rec()));
        assert!(
            !with(|f| {
                f.principals = vec!["agent-7".into()];
                f.decisions = vec!["deny".into()];
            })
            .matches(&rec())
        );
        // A genesis record, a record without budgets: no match.
        let genesis = json!({"event": "genesis", "seq": 0});
        assert!(!with(|f| f.decisions = vec!["allow".into()]).matches(&genesis));
        assert!(!with(|f| f.budgets = vec!["x".into()]).matches(&json!({"decision": "allow"})));
    }

    #[test]
    fn values_that_can_never_match_are_refused() {
        assert!(
            with(|f| f.decisions = vec!["granted".into()])
                .check()
                .is_err()
        );
        let mut spelled = with(|f| f.decisions = vec!["allowed".into(), "denied".into()]);
        assert!(spelled.check().is_ok());
        assert_eq!(spelled.decisions, ["allow", "deny"]);
        assert!(
            with(|f| f.routes = vec!["customers".into()])
                .check()
                .is_err()
        );
        assert!(with(|f| f.decisions = vec!["deny".into()]).check().is_ok());
    }
}
