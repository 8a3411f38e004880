//! The report as Markdown (a pull-request comment: a one-line summary,
//! then one section per role, widening changes first), JSON for tools,
//! and plain text (one line per change).

use super::{ALL_ROLES, Change, Direction, Report};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The one-line summary both text forms start with.
pub fn summary(r: &Report) -> String {
    let versions = format!("policy set {} -> {}", r.base_version, r.current_version);
    if r.changes.is_empty() {
        return format!("no change in access ({versions})");
    }
    let (w, n) = (r.widening(), r.narrowing());
    let plural = if r.changes.len() == 1 { "" } else { "s" };
    format!(
        "{} change{plural} in access: {w} widening, {n} narrowing ({versions})",
        r.changes.len()
    )
}

fn subject(c: &Change, code: &dyn Fn(&str) -> String) -> String {
    let s = code(&c.subject);
    match c.kind {
        "route" => format!("route {s}"),
        "record" => format!("records of {s}"),
        "field" => format!("field {s}"),
        "write" => format!("writing {s}"),
        "budget" => format!("budget {s}"),
        "catalogue" => format!("catalogue entry {s}"),
        "route-passthrough" => format!("route {s} (passthrough: no decision, no filtering)"),
        other => format!("{other} {s}"),
    }
}

/// `field Customer.phone: removed -> full, with MFA, when same carrier
/// [identity, level 3] (policies: a, b)`.
fn describe(c: &Change, arrow: &str, code: &dyn Fn(&str) -> String) -> String {
    let mut s = format!("{}: {} {arrow} {}", subject(c, code), c.from, c.to);
    if !c.callers.is_empty() {
        let _ = write!(s, ", for callers {}", c.callers);
    }
    match (c.kind, c.when.is_empty()) {
        (_, true) => {}
        // `through ROUTE on own records`.
        ("write", false) => {
            let _ = write!(s, ", {}", c.when);
        }
        (_, false) => {
            let _ = write!(s, ", when {}", c.when);
        }
    }
    match (&c.category, c.level) {
        (Some(cat), Some(l)) => {
            let _ = write!(s, " [{cat}, level {l}]");
        }
        (Some(cat), None) => {
            let _ = write!(s, " [{cat}]");
        }
        (None, Some(l)) => {
            let _ = write!(s, " [level {l}]");
        }
        (None, None) => {}
    }
    if !c.policies.is_empty() {
        let ids: Vec<String> = c.policies.iter().map(|p| code(p)).collect();
        let _ = write!(s, " (policies: {})", ids.join(", "));
    }
    s
}

/// Roles in report order: those with a widening change first.
fn by_role(r: &Report) -> Vec<(&str, Vec<&Change>)> {
    let mut roles: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in &r.changes {
        roles.entry(c.role.as_str()).or_default().push(c);
    }
    let mut out: Vec<(&str, Vec<&Change>)> = roles.into_iter().collect();
    out.sort_by_key(|(role, changes)| {
        (
            !changes.iter().any(|c| c.direction == Direction::Widens),
            *role != ALL_ROLES,
            role.to_string(),
        )
    });
    out
}

pub fn text(r: &Report) -> String {
    let mut out = summary(r);
    out.push('\n');
    for (role, changes) in by_role(r) {
        for c in changes {
            let _ = writeln!(
                out,
                "{:<7} {role}: {}",
                c.direction.as_str(),
                describe(c, "->", &|s| s.to_string())
            );
        }
    }
    out
}

pub fn markdown(r: &Report) -> String {
    let mut out = format!("**fieldguard diff: {}**\n", summary(r));
    for (role, changes) in by_role(r) {
        let _ = write!(out, "\n#### {role}\n\n");
        for c in changes {
            let _ = writeln!(
                out,
                "- **{}** {}",
                c.direction.as_str(),
                describe(c, "→", &|s| format!("`{s}`"))
            );
        }
    }
    out
}

pub fn json(r: &Report) -> String {
    let value = serde_json::json!({
        "summary": summary(r),
        "base_version": r.base_version,
        "current_version": r.current_version,
        "widening": r.widening(),
        "narrowing": r.narrowing(),
        "changes": r.changes,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
