//! What the engine answers differently: the matrix cells of both sides
//! (field and record outcomes, route decisions, write rights), compared
//! and grouped into changes.

use super::{Change, Direction, callers, direction};
use crate::runtime::Runtime;
use crate::tools::matrix::{self, Matrix, Variant};
use std::collections::{BTreeMap, BTreeSet};

/// Field and record outcomes that differ, grouped by role, subject,
/// from, to and the record scenarios they differ in.
pub(super) fn field_changes(
    mb: &Matrix,
    mc: &Matrix,
    current: &Runtime,
    base: &Runtime,
    out: &mut Vec<Change>,
) {
    let groups = group_changes(mb, mc);
    let all_scenarios = |role: &str, entity: &str| -> BTreeSet<String> {
        mb.fields
            .iter()
            .chain(&mc.fields)
            .filter(|r| r.role == role && r.entity == entity && r.field == "(record)")
            .map(|r| r.scenario.clone())
            .collect()
    };
    for ((role, entity, field, from, to), (variants, scenarios, policies)) in groups {
        // The record scenarios the change holds in: the same for every
        // variant in the common case; their shared condition.
        let union: BTreeSet<String> = scenarios.values().flatten().cloned().collect();
        let every = all_scenarios(&role, &entity);
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

/// A change of one field (or record) for one role: (role, entity, field,
/// from, to).
type GroupKey = (String, String, String, String, String);
/// What a [`GroupKey`] holds: the caller variants it happens to, the
/// record scenarios it happens in for each, and the deciding policies.
type Group = (
    BTreeSet<Variant>,
    BTreeMap<Variant, BTreeSet<String>>,
    BTreeSet<String>,
);

/// Every cell whose form changes between the matrices, grouped by role,
/// field and change.
fn group_changes(mb: &Matrix, mc: &Matrix) -> BTreeMap<GroupKey, Group> {
    // One cell: a caller variant and a field (or record) of an entity;
    // its rows are the record scenarios.
    let (before, after) = (cells_of(mb), cells_of(mc));
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    let none: Vec<&matrix::FieldRow> = Vec::new();
    for k in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let (b, a) = (
            before.get(k).unwrap_or(&none),
            after.get(k).unwrap_or(&none),
        );
        let absent = if k.4 == "(record)" {
            "hidden"
        } else {
            "removed"
        };
        let scenarios: BTreeSet<&str> = b.iter().chain(a).map(|r| r.scenario.as_str()).collect();
        for scenario in scenarios {
            let (from, was) = match lookup(b, scenario) {
                Lookup::Absent => (absent, None),
                Lookup::Found(r) => (r.form.as_str(), Some(r)),
                Lookup::Ambiguous => continue,
            };
            let (to, is) = match lookup(a, scenario) {
                Lookup::Absent => (absent, None),
                Lookup::Found(r) => (r.form.as_str(), Some(r)),
                Lookup::Ambiguous => continue,
            };
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
            g.1.entry(v).or_default().insert(scenario.to_string());
            for r in was.into_iter().chain(is) {
                g.2.extend(r.policies.iter().cloned());
            }
        }
    }
    groups
}

/// A caller variant and a field (or record) of an entity.
type Cell = (String, bool, String, String, String);

/// The matrix's field rows by cell; a cell's rows are its record
/// scenarios.
fn cells_of(m: &Matrix) -> BTreeMap<Cell, Vec<&matrix::FieldRow>> {
    let mut out: BTreeMap<Cell, Vec<&matrix::FieldRow>> = BTreeMap::new();
    for r in &m.fields {
        out.entry((
            r.role.clone(),
            r.mfa,
            r.purpose.clone(),
            r.entity.clone(),
            r.field.clone(),
        ))
        .or_default()
        .push(r);
    }
    out
}

/// A cell's answer in one record scenario on one side.
enum Lookup<'a> {
    /// The side has no such cell (a new field, a new role).
    Absent,
    Found(&'a matrix::FieldRow),
    /// The side tells apart what the scenario does not (it has a record
    /// attribute the other side lacks), and its answers differ: the
    /// finer side's own scenarios report the change.
    Ambiguous,
}

/// The row of `rows` for `scenario`: the same scenario, else the rows
/// whose labels do not contradict it (the two sides may know different
/// record attributes), when they agree.
fn lookup<'a>(rows: &[&'a matrix::FieldRow], scenario: &str) -> Lookup<'a> {
    if rows.is_empty() {
        return Lookup::Absent;
    }
    if let Some(r) = rows.iter().find(|r| r.scenario == scenario) {
        return Lookup::Found(r);
    }
    let mut fitting = rows.iter().filter(|r| compatible(&r.scenario, scenario));
    match fitting.next() {
        Some(first) if fitting.all(|r| r.form == first.form) => Lookup::Found(first),
        _ => Lookup::Ambiguous,
    }
}

/// Which record attribute a scenario label is about (`own`/`other`: the
/// owner; `no x`, `same x`, `other x` and `x`: attribute x).
fn dimension(label: &str) -> (&str, &str) {
    if label == "own" || label == "other" {
        return ("(owner)", label);
    }
    for prefix in ["no ", "same ", "other "] {
        if let Some(rest) = label.strip_prefix(prefix) {
            return (rest, label);
        }
    }
    (label, label)
}

/// Two scenarios agree on every attribute both of them name.
fn compatible(a: &str, b: &str) -> bool {
    let dims = |s: &str| -> BTreeMap<String, String> {
        s.split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (d, v) = dimension(l);
                (d.to_string(), v.to_string())
            })
            .collect()
    };
    let (a, b) = (dims(a), dims(b));
    a.iter().all(|(d, v)| b.get(d).is_none_or(|w| w == v))
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
) -> Option<&'a fieldguard_core::catalogue::FieldSpec> {
    rt.decisions
        .catalogue
        .fields()
        .iter()
        .find(|f| f.is_record_field() && &*f.entity == entity && f.path == path)
}

/// Route decisions that differ (a route on one side only counts as denied
/// on the other).
pub(super) fn route_changes(
    mb: &Matrix,
    mc: &Matrix,
    passthrough: &BTreeSet<String>,
    out: &mut Vec<Change>,
) {
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
pub(super) fn write_changes(
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
