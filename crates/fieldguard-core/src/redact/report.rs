//! What filtering a body did, for audit records, metrics, shadow reports
//! and explanations: outcomes by field, the policies behind them, members
//! the configuration does not name or that have another shape, what was
//! observed and backstopped, and the records shown. Counts and names,
//! never values. Both walks ([`super::tree`], [`super::bytes`]) fill it
//! the same way.

use super::Outcome;
use super::disclosed::Disclosed;
use super::plan::ResponsePlan;
use super::unnamed::Observed;
use crate::config::UnknownFields;
use crate::detect::DetectorCounts;
use crate::policy::{Decider, PolicyRefs, PolicyTable};
use rustc_hash::FxHashMap;

/// Why a body could not be filtered. Either way nothing is passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A single-record response the caller may not read at all.
    #[error("record not readable")]
    Forbidden,
    /// The body does not have the shape the route's selectors describe.
    #[error("response shape not recognised: {0}")]
    Shape(String),
}

/// What filtering did, for audit and metrics: counts by field and outcome
/// (field indexes into the catalogue), never values.
#[derive(Debug, Default, Clone)]
pub struct FilterReport {
    pub records: u32,
    pub records_dropped: u32,
    pub outcomes: FxHashMap<(u32, Outcome), u32>,
    /// Members the configuration does not name (removed, or passed when
    /// the route passes unknown fields), by place.
    pub unnamed: NameCounts,
    /// Catalogued containers (and declared wrapper objects or arrays)
    /// whose value had another shape: removed.
    pub misshapen: NameCounts,
    /// The route passes members it does not name (`unknown_fields: pass`).
    pub unknown_passed: bool,
    /// The records shown, by entity: ids and the customers they are about
    /// (bounded, compact), for the audit trail.
    pub disclosed: Disclosed,
    /// By field index: the policies behind each masked and removed
    /// outcome (empty: no policy allowed more, Cedar's default deny).
    deciders: Vec<FieldDeciders>,
    /// The deciding engine's policy ids, which `deciders` index.
    pub policy_table: Option<PolicyTable>,
    /// What the unnamed members looked like, on a route that observes
    /// them (`observe`): paths, JSON types, detected kinds, counts.
    pub observed: Observed,
    /// Matches the route's backstop masked, by detector.
    pub backstop: DetectorCounts,
    /// When `Some`, every decision is also explained here (uncached, with
    /// the determining policies): for `fieldguard explain` and policy tests.
    pub trace: Option<Vec<TraceEntry>>,
}

/// The policies behind one field's masked and removed outcomes, merged
/// over a body's records.
#[derive(Debug, Default, Clone)]
struct FieldDeciders {
    masked: PolicyRefs,
    removed: PolicyRefs,
}

/// One explained decision of a filtered body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Index of the record in the order records were visited.
    pub record: u32,
    pub entity: String,
    pub record_id: String,
    /// `None` for the record-level `record:read` decision.
    pub field: Option<String>,
    /// `visible`/`hidden` for records; `full`/`masked`/`removed` for fields.
    pub outcome: &'static str,
    /// Policies that determined the outcome.
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

pub use crate::catalogue::Scope;

/// Counts of member paths (as [`super::plan::key_label`] names them), by
/// scope, bounded: a hostile upstream cannot make a report grow with the
/// number of distinct keys it invents. Equal when the same names were
/// counted the same number of times, in whatever order.
#[derive(Debug, Default, Clone)]
pub struct NameCounts {
    /// Few entries (usually none): a scan beats hashing a path per member.
    names: Vec<(Scope, Box<str>, u32)>,
    /// Occurrences of further names once [`NameCounts::MAX_NAMES`] are held.
    pub overflow: u32,
}

impl NameCounts {
    /// Distinct names a report holds.
    pub const MAX_NAMES: usize = 64;

    /// Counts one occurrence of `path` in `scope`.
    pub fn add(&mut self, scope: Scope, path: &str) {
        if let Some((_, _, n)) = self
            .names
            .iter_mut()
            .find(|(s, p, _)| *s == scope && **p == *path)
        {
            *n = n.saturating_add(1);
        } else if self.names.len() < Self::MAX_NAMES {
            self.names.push((scope, Box::from(path), 1));
        } else {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.overflow == 0
    }

    /// Occurrences in all.
    pub fn total(&self) -> u64 {
        self.names
            .iter()
            .map(|(_, _, n)| u64::from(*n))
            .sum::<u64>()
            + u64::from(self.overflow)
    }

    /// The names and counts, sorted by scope and path.
    pub fn sorted(&self) -> Vec<(Scope, &str, u32)> {
        let mut v: Vec<_> = self
            .names
            .iter()
            .map(|(s, p, n)| (*s, p.as_ref(), *n))
            .collect();
        v.sort_unstable();
        v
    }
}

impl PartialEq for NameCounts {
    fn eq(&self, other: &Self) -> bool {
        self.overflow == other.overflow && self.sorted() == other.sorted()
    }
}

impl Eq for NameCounts {}

impl FilterReport {
    /// A report that also explains every decision.
    pub fn traced() -> Self {
        Self {
            trace: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// Notes what a body of `plan` decided by `decider` reports besides its
    /// counts (every redactor starts a body with it).
    pub(super) fn start_body(&mut self, plan: &ResponsePlan, decider: &Decider<'_>) {
        self.unknown_passed = plan.unknown == UnknownFields::Pass;
        self.policy_table = Some(decider.policy_table());
    }

    /// Adds the policies behind one masked or removed field.
    pub(super) fn note_deciders(&mut self, field: u32, outcome: Outcome, by: &PolicyRefs) {
        let i = field as usize;
        if self.deciders.len() <= i {
            self.deciders.resize_with(i + 1, FieldDeciders::default);
        }
        let slot = match outcome {
            Outcome::Full => return,
            Outcome::Masked => &mut self.deciders[i].masked,
            Outcome::Removed => &mut self.deciders[i].removed,
        };
        for p in by {
            if !slot.contains(p) {
                slot.push(*p);
            }
        }
    }

    /// The ids of the policies behind `field`'s `outcome` in this body,
    /// sorted; empty when no policy allowed more (default deny) or the
    /// outcome did not occur.
    pub fn deciders(&self, field: u32, outcome: Outcome) -> Vec<String> {
        let Some(d) = self.deciders.get(field as usize) else {
            return Vec::new();
        };
        let refs = match outcome {
            Outcome::Full => return Vec::new(),
            Outcome::Masked => &d.masked,
            Outcome::Removed => &d.removed,
        };
        let mut ids: Vec<String> = refs
            .iter()
            .filter_map(|r| {
                self.policy_table
                    .as_ref()
                    .and_then(|t| t.get(*r as usize))
                    .map(|id| id.to_string())
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
