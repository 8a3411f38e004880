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
//! [`base`] reads the other side (a folder or a git revision); `cells`
//! compares what the engine answers, `config` and `budgets` what the
//! configuration says; [`render`] writes Markdown, JSON or text, [`gate`]
//! decides `--fail-on`.

pub mod base;
pub mod gate;
pub mod render;

mod budgets;
mod cells;
mod config;

use super::matrix::{self, Variant};
use crate::runtime::Runtime;
use serde::Serialize;
use std::collections::BTreeSet;

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
    // The same callers on both sides: a role, purpose or principal
    // attribute only one side names is asked about on both.
    let axes = matrix::Axes::of(base).union(matrix::Axes::of(current));
    let (mb, mc) = (
        matrix::compute_on(base, &axes),
        matrix::compute_on(current, &axes),
    );
    let mut changes = Vec::new();
    cells::field_changes(&mb, &mc, current, base, &mut changes);
    // A route that is passthrough on either side is one change of its
    // own, not a decision per role.
    let passthrough: BTreeSet<String> = config::route_modes(base)
        .into_iter()
        .chain(config::route_modes(current))
        .filter(|(_, m)| *m == "passthrough")
        .map(|(r, _)| r)
        .collect();
    cells::route_changes(&mb, &mc, &passthrough, &mut changes);
    cells::write_changes(&mb, &mc, base, current, &mut changes);
    config::passthrough_changes(base, current, &mut changes);
    config::catalogue_changes(base, current, &mut changes);
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
