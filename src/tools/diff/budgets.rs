//! Budget changes: per role and budget id, the limit, window, what is
//! counted and what happens over the limit. More room (a higher limit, a
//! shorter window, `alert` instead of `refuse`, `shadow` mode, a budget
//! removed) widens what a principal can be shown; less narrows it.

use super::{Change, Direction};
use crate::budget::{BudgetMode, BudgetsConfig, config::LimitConfig, config::OnExceed};
use std::collections::{BTreeMap, BTreeSet};

/// A budget as a reviewer reads it: `300 records per 86400 s, refuse`.
fn describe(l: &LimitConfig, mode: BudgetMode) -> String {
    let counted = match l.count {
        crate::budget::config::Counted::Records => "records".to_string(),
        crate::budget::config::Counted::Fields => {
            let mut s = "fields".to_string();
            if let Some(c) = l.category {
                s.push_str(&format!(" of {}", c.as_str()));
            }
            if let Some(m) = l.min_level {
                s.push_str(&format!(" level>={}", m.0));
            }
            s
        }
    };
    let exceed = match l.on_exceed {
        OnExceed::Alert => "alert",
        OnExceed::Refuse => "refuse",
    };
    let mode = match mode {
        BudgetMode::Enforce => "",
        BudgetMode::Shadow => " (shadow)",
    };
    format!(
        "{} {counted} per {} s, {exceed}{mode}",
        l.limit, l.window_seconds
    )
}

/// How much a budget lets through per second, and whether it is enforced:
/// compared to class a change.
fn room(l: &LimitConfig, mode: BudgetMode) -> (bool, f64) {
    let enforced = mode == BudgetMode::Enforce && l.on_exceed == OnExceed::Refuse;
    (enforced, l.limit as f64 / l.window_seconds.max(1) as f64)
}

pub(super) fn changes(base: &BudgetsConfig, current: &BudgetsConfig, out: &mut Vec<Change>) {
    let index = |b: &BudgetsConfig| -> BTreeMap<(String, String), (LimitConfig, BudgetMode)> {
        b.roles
            .iter()
            .flat_map(|(role, r)| {
                let mode = r.mode.unwrap_or(b.mode);
                r.limits
                    .iter()
                    .map(move |l| ((role.clone(), l.id.clone()), (l.clone(), mode)))
            })
            .collect()
    };
    let (before, after) = (index(base), index(current));
    for key in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let (from, to, direction) = match (before.get(key), after.get(key)) {
            (None, Some((a, m))) => ("none".to_string(), describe(a, *m), Direction::Narrows),
            (Some((b, m)), None) => (describe(b, *m), "none".to_string(), Direction::Widens),
            (Some((b, bm)), Some((a, am))) => {
                let (from, to) = (describe(b, *bm), describe(a, *am));
                if from == to {
                    continue;
                }
                let ((be, br), (ae, ar)) = (room(b, *bm), room(a, *am));
                let widens = (be && !ae) || (be == ae && ar > br);
                (
                    from,
                    to,
                    if widens {
                        Direction::Widens
                    } else {
                        Direction::Narrows
                    },
                )
            }
            (None, None) => continue,
        };
        let level = after
            .get(key)
            .or_else(|| before.get(key))
            .and_then(|(l, _)| l.min_level.map(|m| m.0));
        let category = after
            .get(key)
            .or_else(|| before.get(key))
            .and_then(|(l, _)| l.category.map(|c| c.as_str().to_string()));
        out.push(Change {
            direction,
            role: key.0.clone(),
            kind: "budget",
            subject: key.1.clone(),
            from,
            to,
            callers: String::new(),
            when: String::new(),
            level,
            category,
            policies: Vec::new(),
        });
    }
}
