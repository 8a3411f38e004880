//! `fieldguard diff`: what access a change of the policy set adds or
//! removes, in the terms a reviewer uses (role, route, record, field,
//! outcome). Both sides are evaluated with the real engine through
//! [`super::matrix`] (every role with and without MFA, per purpose, per
//! principal attribute the records are compared with, owner or not), and
//! the cells that differ become changes, each classed as widening or
//! narrowing access with the field's level and category and the ids of
//! the policies behind either answer. Budgets, catalogue entries and
//! passthrough routes are compared from the configuration.
//!
//! [`base`] reads the other side (a folder or a git revision), [`render`]
//! writes Markdown, JSON or text, [`gate`] decides `--fail-on`.

pub mod base;
pub mod gate;
pub mod render;

mod budgets;

use super::matrix::{self, Matrix, Variant};
use crate::runtime::Runtime;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Whether a change gives more access or less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Widens,
    Narrows,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Widens => "widens",
            Direction::Narrows => "narrows",
        }
    }
}

/// Every role, for changes that are not any one role's (a passthrough
/// route, a catalogue entry).
pub const ALL_ROLES: &str = "(all roles)";

/// One difference in access.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    pub direction: Direction,
    /// The role, or [`ALL_ROLES`].
    pub role: String,
    /// `route`, `record`, `field`, `write`, `budget`, `catalogue`,
    /// `route-passthrough`.
    pub kind: &'static str,
    /// A route (`GET /customers/{id}`), a field (`Customer.phone`), a
    /// record type (`Customer`) or a budget id.
    pub subject: String,
    pub from: String,
    pub to: String,
    /// Which callers of the role (`+MFA`, `purpose=marketing`), empty for
    /// all of them.
    pub callers: String,
    /// Which records or requests (`own`, `same carrier`), empty for all.
    pub when: String,
    pub level: Option<u8>,
    pub category: Option<String>,
    /// Policies behind the base's or the current answer.
    pub policies: Vec<String>,
}

/// Everything `diff` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base_version: String,
    pub current_version: String,
    /// Widening first, then by role, kind and subject.
    pub changes: Vec<Change>,
}

impl Report {
    pub fn widening(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.direction == Direction::Widens)
            .count()
    }

    pub fn narrowing(&self) -> usize {
        self.changes.len() - self.widening()
    }
}

/// Rank of an outcome: higher shows more.
fn rank(form: &str) -> u8 {
    match form {
        "full" | "visible" | "allow" => 9,
        // Masks from the one that shows most.
        "masked (partial)" => 6,
        "masked (year)" => 5,
        "masked (hash)" => 4,
        "masked (null)" => 3,
        f if f.starts_with("masked") => 3,
        "removed" => 1,
        _ => 0,
    }
}

fn direction(from: &str, to: &str) -> Direction {
    if rank(to) > rank(from) {
        Direction::Widens
    } else {
        Direction::Narrows
    }
}

/// Compares two runtimes: base (before the change) and current.
pub fn compare(base: &Runtime, current: &Runtime) -> Report {
    let (mb, mc) = (matrix::compute(base), matrix::compute(current));
    let mut changes = Vec::new();
    field_changes(&mb, &mc, current, base, &mut changes);
    // A route that is passthrough on either side is one change of its
    // own, not a decision per role.
    let passthrough: BTreeSet<String> = route_modes(base)
        .into_iter()
        .chain(route_modes(current))
        .filter(|(_, m)| *m == "passthrough")
        .map(|(r, _)| r)
        .collect();
    route_changes(&mb, &mc, &passthrough, &mut changes);
    write_changes(&mb, &mc, base, current, &mut changes);
    passthrough_changes(base, current, &mut changes);
    catalogue_changes(base, current, &mut changes);
    budgets::changes(
        &base.config.config.budgets,
        &current.config.config.budgets,
        &mut changes,
    );
    changes.sort();
    changes.dedup();
    Report {
        base_version: base.decisions.engine.bundle.version.clone(),
        current_version: current.decisions.engine.bundle.version.clone(),
        changes,
    }
}

/// A variant's qualifier within its role (`+MFA purpose=x`).
fn qualifier(v: &Variant) -> String {
    let mut q = Vec::new();
    if v.mfa {
        q.push("+MFA".to_string());
    }
    if !v.purpose.is_empty() {
        q.push(format!("purpose={}", v.purpose));
    }
    q.join(" ")
}

/// The callers of `role` a change applies to: empty when it applies to
/// every variant of the role, else the variants named.
fn callers(all: &[Variant], role: &str, hit: &BTreeSet<Variant>) -> String {
    let of_role: Vec<&Variant> = all.iter().filter(|v| v.role == role).collect();
    if of_role.iter().all(|v| hit.contains(*v)) {
        return String::new();
    }
    // MFA alone, when every MFA variant (and no other) has it.
    let mfa: BTreeSet<&Variant> = of_role.iter().copied().filter(|v| v.mfa).collect();
    if hit.iter().collect::<BTreeSet<_>>() == mfa {
        return "with MFA".into();
    }
    let no_mfa: BTreeSet<&Variant> = of_role.iter().copied().filter(|v| !v.mfa).collect();
    if hit.iter().collect::<BTreeSet<_>>() == no_mfa {
        return "without MFA".into();
    }
    // Some purposes, with and without MFA.
    let purposes: BTreeSet<&str> = hit.iter().map(|v| v.purpose.as_str()).collect();
    let of_purposes: BTreeSet<&Variant> = of_role
        .iter()
        .copied()
        .filter(|v| purposes.contains(v.purpose.as_str()))
        .collect();
    if hit.iter().collect::<BTreeSet<_>>() == of_purposes {
        return purposes
            .iter()
            .map(|p| match p {
                &"" => "without a purpose".to_string(),
                p => format!("with purpose={p}"),
            })
            .collect::<Vec<_>>()
            .join(" or ");
    }
    hit.iter()
        .map(|v| match qualifier(v) {
            q if q.is_empty() => "no MFA, no purpose".to_string(),
            q => q,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Field and record outcomes that differ, grouped by role, subject,
/// from, to and the record scenarios they differ in.
fn field_changes(
    mb: &Matrix,
    mc: &Matrix,
    current: &Runtime,
    base: &Runtime,
    out: &mut Vec<Change>,
) {
    type Key = (String, bool, String, String, String, String);
    let key = |r: &matrix::FieldRow| -> Key {
        (
            r.role.clone(),
            r.mfa,
            r.purpose.clone(),
            r.entity.clone(),
            r.field.clone(),
            r.scenario.clone(),
        )
    };
    let before: BTreeMap<Key, &matrix::FieldRow> = mb.fields.iter().map(|r| (key(r), r)).collect();
    let after: BTreeMap<Key, &matrix::FieldRow> = mc.fields.iter().map(|r| (key(r), r)).collect();
    // (role, entity, field, from, to) → (variants, scenarios, policies)
    type Group = (
        BTreeSet<Variant>,
        BTreeMap<Variant, BTreeSet<String>>,
        BTreeSet<String>,
    );
    let mut groups: BTreeMap<(String, String, String, String, String), Group> = BTreeMap::new();
    let keys: BTreeSet<&Key> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let absent = |field: &str| {
            if field == "(record)" {
                "hidden"
            } else {
                "removed"
            }
        };
        let from = before.get(k).map_or(absent(&k.4), |r| r.form.as_str());
        let to = after.get(k).map_or(absent(&k.4), |r| r.form.as_str());
        // A field of a hidden record: the record's own change says it.
        if from == to || (k.4 != "(record)" && (from == "hidden" || to == "hidden")) {
            continue;
        }
        let v = Variant {
            role: k.0.clone(),
            mfa: k.1,
            purpose: k.2.clone(),
        };
        let g = groups
            .entry((
                k.0.clone(),
                k.3.clone(),
                k.4.clone(),
                from.into(),
                to.into(),
            ))
            .or_default();
        g.0.insert(v.clone());
        g.1.entry(v).or_default().insert(k.5.clone());
        for r in before.get(k).into_iter().chain(after.get(k)) {
            g.2.extend(r.policies.iter().cloned());
        }
    }
    let all_scenarios = |m: &Matrix, role: &str, entity: &str| -> BTreeSet<String> {
        m.fields
            .iter()
            .filter(|r| r.role == role && r.entity == entity && r.field == "(record)")
            .map(|r| r.scenario.clone())
            .collect()
    };
    for ((role, entity, field, from, to), (variants, scenarios, policies)) in groups {
        // The record scenarios the change holds in: the same for every
        // variant in the common case; their shared condition.
        let union: BTreeSet<String> = scenarios.values().flatten().cloned().collect();
        let every = all_scenarios(mc, &role, &entity);
        let when = if union == every || union.iter().all(String::is_empty) {
            String::new()
        } else {
            let s: Vec<&str> = union.iter().map(String::as_str).collect();
            readable(&matrix::common_condition(&s))
        };
        let spec =
            find_field(current, &entity, &field).or_else(|| find_field(base, &entity, &field));
        let (kind, subject) = if field == "(record)" {
            ("record", entity.clone())
        } else {
            ("field", format!("{entity}.{field}"))
        };
        out.push(Change {
            direction: direction(&from, &to),
            callers: callers(&mc.variants, &role, &variants),
            role,
            kind,
            subject,
            from,
            to,
            when,
            level: spec.map(|s| s.level.0),
            category: spec.map(|s| s.category.as_str().to_string()),
            policies: policies.into_iter().collect(),
        });
    }
}

/// The matrix's scenario words as a reviewer reads them (`other`: owned
/// by someone else).
fn readable(condition: &str) -> String {
    condition
        .split(" and ")
        .map(|w| if w == "other" { "not own" } else { w })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn find_field<'a>(
    rt: &'a Runtime,
    entity: &str,
    path: &str,
) -> Option<&'a crate::catalogue::FieldSpec> {
    rt.decisions
        .catalogue
        .fields()
        .iter()
        .find(|f| f.is_record_field() && &*f.entity == entity && f.path == path)
}

/// Route decisions that differ (a route on one side only counts as denied
/// on the other).
fn route_changes(mb: &Matrix, mc: &Matrix, passthrough: &BTreeSet<String>, out: &mut Vec<Change>) {
    type Key = (String, bool, String, String, &'static str);
    let key = |r: &matrix::RouteRow| -> Key {
        (
            r.role.clone(),
            r.mfa,
            r.purpose.clone(),
            r.route.clone(),
            r.scenario,
        )
    };
    let before: BTreeMap<Key, &matrix::RouteRow> = mb.routes.iter().map(|r| (key(r), r)).collect();
    let after: BTreeMap<Key, &matrix::RouteRow> = mc.routes.iter().map(|r| (key(r), r)).collect();
    type Group = (BTreeSet<Variant>, BTreeSet<&'static str>, BTreeSet<String>);
    let mut groups: BTreeMap<(String, String, bool), Group> = BTreeMap::new();
    for k in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        if passthrough.contains(&k.3) {
            continue;
        }
        let was = before.get(k).is_some_and(|r| r.allowed);
        let is = after.get(k).is_some_and(|r| r.allowed);
        if was == is {
            continue;
        }
        let g = groups.entry((k.0.clone(), k.3.clone(), is)).or_default();
        g.0.insert(Variant {
            role: k.0.clone(),
            mfa: k.1,
            purpose: k.2.clone(),
        });
        g.1.insert(k.4);
        for r in before.get(k).into_iter().chain(after.get(k)) {
            g.2.extend(r.policies.iter().cloned());
        }
    }
    for ((role, route, is), (variants, scenarios, policies)) in groups {
        let when = if scenarios.len() == 2 {
            String::new()
        } else if scenarios.contains("own") {
            "own".into()
        } else {
            readable("other")
        };
        let (from, to) = if is {
            ("deny", "allow")
        } else {
            ("allow", "deny")
        };
        out.push(Change {
            direction: direction(from, to),
            callers: callers(&mc.variants, &role, &variants),
            role,
            kind: "route",
            subject: route,
            from: from.into(),
            to: to.into(),
            when,
            level: None,
            category: None,
            policies: policies.into_iter().collect(),
        });
    }
}

/// Write rights per field and write route that differ (a field a route
/// does not collect, or a route the caller may not call, counts as not
/// writable).
fn write_changes(
    mb: &Matrix,
    mc: &Matrix,
    base: &Runtime,
    current: &Runtime,
    out: &mut Vec<Change>,
) {
    type Key = (String, bool, String, String, String, &'static str);
    let key = |r: &matrix::WriteRow| -> Key {
        (
            r.role.clone(),
            r.mfa,
            r.purpose.clone(),
            r.route.clone(),
            r.field.clone(),
            r.scenario,
        )
    };
    let before: BTreeMap<Key, &matrix::WriteRow> = mb.writes.iter().map(|r| (key(r), r)).collect();
    let after: BTreeMap<Key, &matrix::WriteRow> = mc.writes.iter().map(|r| (key(r), r)).collect();
    type Group = (BTreeSet<Variant>, BTreeSet<&'static str>, BTreeSet<String>);
    let mut groups: BTreeMap<(String, String, String, bool), Group> = BTreeMap::new();
    for k in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let was = before.get(k).is_some_and(|r| r.allowed);
        let is = after.get(k).is_some_and(|r| r.allowed);
        if was == is {
            continue;
        }
        let g = groups
            .entry((k.0.clone(), k.4.clone(), k.3.clone(), is))
            .or_default();
        g.0.insert(Variant {
            role: k.0.clone(),
            mfa: k.1,
            purpose: k.2.clone(),
        });
        g.1.insert(k.5);
        for r in before.get(k).into_iter().chain(after.get(k)) {
            g.2.extend(r.policies.iter().cloned());
        }
    }
    for ((role, field, route, is), (variants, scenarios, policies)) in groups {
        let route_when = if scenarios.len() == 2 {
            String::new()
        } else if scenarios.contains("own") {
            " on own records".into()
        } else {
            " on others' records".into()
        };
        let spec = field
            .split_once('.')
            .and_then(|(e, p)| find_field(current, e, p).or_else(|| find_field(base, e, p)));
        let (from, to) = if is {
            ("not writable", "writable")
        } else {
            ("writable", "not writable")
        };
        out.push(Change {
            direction: if is {
                Direction::Widens
            } else {
                Direction::Narrows
            },
            callers: callers(&mc.variants, &role, &variants),
            role,
            kind: "write",
            subject: field,
            from: from.into(),
            to: to.into(),
            when: format!("through {route}{route_when}"),
            level: spec.map(|s| s.level.0),
            category: spec.map(|s| s.category.as_str().to_string()),
            policies: policies.into_iter().collect(),
        });
    }
}

/// How a route is configured: `passthrough`, `protected`, or absent.
fn route_modes(rt: &Runtime) -> BTreeMap<String, &'static str> {
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
fn passthrough_changes(base: &Runtime, current: &Runtime, out: &mut Vec<Change>) {
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
fn catalogue_changes(base: &Runtime, current: &Runtime, out: &mut Vec<Change>) {
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
