//! Record plans: a record's whole outcome (visible or not; which of its
//! fields are full, masked or removed), decided once per distinct record
//! facts and applied with one lookup per record.
//!
//! The records of a list mostly share the facts their decisions read
//! (whether the record is the caller's own, whether it carries a consent
//! flag, ...: [`Decider::record_facts`]), so a list of 5,000 customers asks
//! its ~20 questions per record once per distinct facts (usually one or
//! two), not 5,000 times. A plan is filled lazily from the per-field
//! decisions themselves ([`RecordCtx::outcome`]) the first time a record
//! with its facts asks, so it answers exactly as they do; it is reused only
//! for records whose facts are equal, which is every part of the shared
//! cache's key that can differ between records.
//!
//! Plans are per response. They are not used when decisions depend on the
//! record's id (every record would be its own plan), and are bounded per
//! selector: records with further facts are decided field by field.

use super::Outcome;
use super::record::RecordCtx;
use super::replay::Replay;
use super::report::FilterReport;
use crate::catalogue::{AttrValue, AttributeSource};
use crate::policy::{Decider, FieldAction, OwnedFacts, RecordFacts};

/// Distinct record facts planned per selector and response.
const MAX_PLANS: usize = 16;

/// The plans of one response, by selector.
pub(super) struct RecordPlans {
    by_selector: Vec<SelectorPlans>,
    /// Field outcomes decided through plans, by field index, added to the
    /// report's counts by [`RecordPlans::flush`].
    counts: Vec<[u32; 3]>,
    enabled: bool,
}

#[derive(Default)]
struct SelectorPlans {
    /// What this caller's decisions on these records read (computed at
    /// the first record).
    facts: Option<RecordFacts>,
    plans: Vec<(OwnedFacts, RecordPlan)>,
}

/// One record outcome, filled as records with its facts ask.
#[derive(Default)]
pub(super) struct RecordPlan {
    visible: Option<bool>,
    /// By field index: the outcome for a non-scalar and for a scalar
    /// value (only a scalar has a masked form).
    fields: Vec<[Option<Outcome>; 2]>,
    /// What the byte redactor did with the members of the last record
    /// written with this plan, in walk order, for the next one to replay
    /// ([`super::bytes`]: `RecordWalk::member`).
    pub(super) replay: Replay,
}

/// A plan being applied to one record, with the counts it adds to.
pub(super) struct Planned<'p> {
    pub(super) plan: &'p mut RecordPlan,
    counts: &'p mut Vec<[u32; 3]>,
}

impl RecordPlans {
    /// Plans for `selectors` selectors; `enabled: false` (decisions are
    /// traced one by one) plans nothing.
    pub(super) fn new(selectors: usize, enabled: bool) -> Self {
        Self {
            by_selector: (0..selectors).map(|_| SelectorPlans::default()).collect(),
            counts: Vec::new(),
            enabled,
        }
    }

    /// The plan for a record of selector `sel` with this `id` and
    /// attribute `values` (read by `sources`), made empty if its facts are
    /// new; `None` when records of this selector are decided field by
    /// field.
    pub(super) fn plan(
        &mut self,
        sel: usize,
        sources: &[AttributeSource],
        decider: &mut Decider<'_>,
        id: &str,
        values: &[AttrValue],
    ) -> Option<Planned<'_>> {
        if !self.enabled {
            return None;
        }
        let entry = self.by_selector.get_mut(sel)?;
        let schema = entry
            .facts
            .get_or_insert_with(|| decider.record_facts(sources));
        if schema.uid {
            return None;
        }
        let facts = schema.of(id, values);
        let at = match entry.plans.iter().position(|(f, _)| facts.is(f)) {
            Some(at) => at,
            None if entry.plans.len() < MAX_PLANS => {
                entry.plans.push((facts.to_owned(), RecordPlan::default()));
                entry.plans.len() - 1
            }
            None => return None,
        };
        Some(Planned {
            plan: &mut entry.plans[at].1,
            counts: &mut self.counts,
        })
    }

    /// Adds the outcomes counted through plans to the report.
    pub(super) fn flush(&mut self, report: &mut FilterReport) {
        for (field, counts) in self.counts.iter().enumerate() {
            for (outcome, n) in [Outcome::Full, Outcome::Masked, Outcome::Removed]
                .into_iter()
                .zip(counts)
            {
                if *n > 0 {
                    let count = report.outcomes.entry((field as u32, outcome)).or_insert(0);
                    *count = count.saturating_add(*n);
                }
            }
        }
        self.counts.clear();
    }
}

impl Planned<'_> {
    /// Whether the caller may see the record (`record:read`).
    pub(super) fn visible(&mut self, ctx: &mut RecordCtx<'_, '_>) -> bool {
        *self
            .plan
            .visible
            .get_or_insert_with(|| ctx.allowed(FieldAction::RecordRead, None))
    }

    /// The outcome for `field` of the record, counted as
    /// [`RecordCtx::field_outcome`] counts it.
    pub(super) fn field_outcome(
        &mut self,
        ctx: &mut RecordCtx<'_, '_>,
        field: u32,
        scalar: bool,
    ) -> Outcome {
        let i = field as usize;
        if self.plan.fields.len() <= i {
            self.plan.fields.resize(i + 1, [None, None]);
        }
        let slot = &mut self.plan.fields[i][usize::from(scalar)];
        let outcome = match *slot {
            Some(outcome) => outcome,
            None => {
                let (outcome, by) = ctx.outcome(field, scalar);
                if outcome != Outcome::Full {
                    // The policies behind an outcome are a set per field:
                    // noted once per plan, as often as it occurs.
                    ctx.report.note_deciders(field, outcome, &by);
                }
                *slot = Some(outcome);
                outcome
            }
        };
        self.count(field, outcome);
        outcome
    }

    /// Counts one `outcome` of `field` (as [`Self::field_outcome`] does),
    /// for an outcome replayed from [`RecordPlan::replay`].
    #[inline]
    pub(super) fn count(&mut self, field: u32, outcome: Outcome) {
        let i = field as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, [0; 3]);
        }
        let n = &mut self.counts[i][outcome as usize];
        *n = n.saturating_add(1);
    }
}
