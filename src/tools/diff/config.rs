//! What the configuration says differently: routes made passthrough (or
//! back) and catalogue entries added, removed or re-levelled.

use super::{ALL_ROLES, Change, Direction};
use crate::runtime::Runtime;
use std::collections::{BTreeMap, BTreeSet};

/// How a route is configured: `passthrough`, `protected`, or absent.
pub(super) fn route_modes(rt: &Runtime) -> BTreeMap<String, &'static str> {
    rt.config
        .config
        .routes
        .iter()
        .map(|r| {
            (
                format!("{} {}", r.method.value, r.path.value),
                if r.passthrough {
                    "passthrough"
                } else {
                    "protected"
                },
            )
        })
        .collect()
}

/// Routes that became passthrough (no decision, no filtering: everyone,
/// everything) or stopped being one.
pub(super) fn passthrough_changes(base: &Runtime, current: &Runtime, out: &mut Vec<Change>) {
    let (before, after) = (route_modes(base), route_modes(current));
    for route in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let was = before.get(route).copied().unwrap_or("absent");
        let is = after.get(route).copied().unwrap_or("absent");
        if was == is || (was != "passthrough" && is != "passthrough") {
            continue;
        }
        out.push(Change {
            direction: if is == "passthrough" {
                Direction::Widens
            } else {
                Direction::Narrows
            },
            role: ALL_ROLES.into(),
            kind: "route-passthrough",
            subject: route.clone(),
            from: was.into(),
            to: is.into(),
            callers: String::new(),
            when: String::new(),
            level: None,
            category: None,
            policies: Vec::new(),
        });
    }
}

/// Catalogue entries added or removed, and levels changed.
pub(super) fn catalogue_changes(base: &Runtime, current: &Runtime, out: &mut Vec<Change>) {
    let entries = |rt: &Runtime| -> BTreeMap<String, (u8, String, String)> {
        rt.decisions
            .catalogue
            .fields()
            .iter()
            .filter(|f| f.is_record_field())
            .map(|f| {
                (
                    format!("{}.{}", f.entity, f.path),
                    (
                        f.level.0,
                        f.category.as_str().to_string(),
                        f.mask.as_ref().map_or("none", |m| m.kind()).to_string(),
                    ),
                )
            })
            .collect()
    };
    let (before, after) = (entries(base), entries(current));
    for name in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let entry = |e: &(u8, String, String)| format!("level {}, mask {}", e.0, e.2);
        let (direction, from, to, e) = match (before.get(name), after.get(name)) {
            (None, Some(a)) => (Direction::Widens, "absent".to_string(), entry(a), a),
            (Some(b), None) => (Direction::Narrows, entry(b), "absent".to_string(), b),
            (Some(b), Some(a)) if b.0 != a.0 => (
                if a.0 < b.0 {
                    Direction::Widens
                } else {
                    Direction::Narrows
                },
                entry(b),
                entry(a),
                a,
            ),
            _ => continue,
        };
        out.push(Change {
            direction,
            role: ALL_ROLES.into(),
            kind: "catalogue",
            subject: name.clone(),
            from,
            to,
            callers: String::new(),
            when: String::new(),
            level: Some(e.0),
            category: Some(e.1.clone()),
            policies: Vec::new(),
        });
    }
}
