//! One record's decisions, shared by both walks ([`super::tree`] over a
//! parsed value, [`super::bytes`] over the bytes) so that they decide the
//! same way: the record-level and per-field Cedar questions, their
//! counting and tracing, and what a value of the wrong kind does.

use super::plan::{NamePath, PlanNode};
use super::report::{FilterError, FilterReport, Scope, TraceEntry};
use super::unnamed::Onboarding;
use super::{BodyRules, Outcome};
use crate::catalogue::Catalogue;
use crate::config::JsonType;
use crate::policy::{Decider, FieldAction, PolicyRefs, ResourceRef, Verdict};

/// The shape error of a required place that is missing or misshapen.
pub(super) fn required(node: &PlanNode) -> FilterError {
    FilterError::Shape(
        node.required
            .as_deref()
            .unwrap_or("the response body does not have the shape the route declares")
            .to_string(),
    )
}

/// One record's decisions: shared by the tree walk ([`super::tree`]) and
/// the byte redactor ([`super::bytes`]), so both decide the same way.
pub(super) struct RecordCtx<'r, 'd> {
    pub(super) decider: &'r mut Decider<'d>,
    pub(super) catalogue: &'r Catalogue,
    pub(super) resource: ResourceRef<'r>,
    pub(super) report: &'r mut FilterReport,
    /// Policies and errors of the last explained decision (tracing only).
    pub(super) last_explained: (Vec<String>, Vec<String>),
    pub(super) onboarding: Onboarding,
}

impl<'r, 'd> RecordCtx<'r, 'd> {
    pub(super) fn new(
        decider: &'r mut Decider<'d>,
        catalogue: &'r Catalogue,
        resource: ResourceRef<'r>,
        report: &'r mut FilterReport,
        onboarding: Onboarding,
    ) -> Self {
        Self {
            decider,
            catalogue,
            resource,
            report,
            last_explained: Default::default(),
            onboarding,
        }
    }

    /// The decisions on the members of the body around the records: made
    /// on the route's resource (both redactors use this).
    pub(super) fn for_wrapper(
        decider: &'r mut Decider<'d>,
        catalogue: &'r Catalogue,
        rules: &BodyRules<'r>,
        report: &'r mut FilterReport,
    ) -> Self {
        Self::new(
            decider,
            catalogue,
            rules.resource,
            report,
            Onboarding::of(rules.plan),
        )
    }

    /// Whether a free-text field shown as it is goes through the backstop.
    pub(super) fn backstops(&self, field: u32) -> bool {
        !self.onboarding.backstop.is_empty() && self.catalogue.field(field).free_text
    }

    pub(super) fn allowed(&mut self, action: FieldAction, field: Option<u32>) -> bool {
        self.verdict(action, field).allowed
    }

    /// The answer with the policies behind it (explained and traced when
    /// the report asks for a trace).
    fn verdict(&mut self, action: FieldAction, field: Option<u32>) -> Verdict {
        let spec = field.map(|i| self.catalogue.field(i));
        if self.report.trace.is_some() {
            let d = self.decider.explain(action, spec, &self.resource);
            let verdict = Verdict {
                allowed: d.allowed,
                policies: self.decider.policy_refs(&d.policies),
            };
            self.last_explained = (d.policies, d.errors);
            return verdict;
        }
        self.decider.verdict(action, spec, &self.resource)
    }

    fn push_trace(&mut self, field: Option<u32>, outcome: &'static str) {
        let record = self.report.records.saturating_sub(1);
        let (policies, errors) = std::mem::take(&mut self.last_explained);
        if let Some(trace) = &mut self.report.trace {
            trace.push(TraceEntry {
                record,
                entity: self.resource.type_name.to_string(),
                record_id: self.resource.id.to_string(),
                field: field.map(|i| self.catalogue.field(i).path.clone()),
                outcome,
                policies,
                errors,
            });
        }
    }

    pub(super) fn trace_record(&mut self, visible: bool) {
        if self.report.trace.is_some() {
            self.push_trace(None, if visible { "visible" } else { "hidden" });
        }
    }

    /// Decides one field of this record and counts (and traces) it.
    /// `scalar`: whether the value has a masked form at all.
    pub(super) fn field_outcome(&mut self, field: u32, scalar: bool) -> Outcome {
        let (outcome, by) = self.outcome(field, scalar);
        *self.report.outcomes.entry((field, outcome)).or_insert(0) += 1;
        if outcome != Outcome::Full {
            self.report.note_deciders(field, outcome, &by);
        }
        if self.report.trace.is_some() {
            self.push_trace(Some(field), outcome.as_str());
        }
        outcome
    }

    /// The outcome for one field of this record: full, else masked (when
    /// the field and the value have a masked form), else removed; with
    /// the policies behind a masked or removed outcome (the permits of the
    /// masked form, and any forbid of the full or masked value).
    pub(super) fn outcome(&mut self, field: u32, scalar: bool) -> (Outcome, PolicyRefs) {
        let full = self.verdict(FieldAction::FieldRead, Some(field));
        if full.allowed {
            return (Outcome::Full, PolicyRefs::new());
        }
        if !(scalar && self.catalogue.field(field).mask.is_some()) {
            return (Outcome::Removed, full.policies);
        }
        let masked = self.verdict(FieldAction::FieldReadMasked, Some(field));
        let mut by = masked.policies;
        for p in full.policies {
            if !by.contains(&p) {
                by.push(p);
            }
        }
        let outcome = if masked.allowed {
            Outcome::Masked
        } else {
            Outcome::Removed
        };
        (outcome, by)
    }

    /// A catalogued value of another kind than its field's (a string field
    /// holding an object): whatever it holds is not what the catalogue
    /// classified, so no decision on the field covers it. Counted as
    /// misshapen at its place; removed, or (`response.misshapen: refuse`)
    /// the answer is refused.
    pub(super) fn misshapen_leaf(
        &mut self,
        field: u32,
        kind: JsonType,
        at: LeafAt<'_>,
    ) -> Result<(), FilterError> {
        let LeafAt { scope, path, key } = at;
        let len = match key {
            Some(key) => path.push_key(key),
            None => path.len(),
        };
        self.report.misshapen.add(scope, path.as_str());
        let refused = self.onboarding.refuse_misshapen.then(|| {
            let shape = self.catalogue.field(field).shape;
            FilterError::Shape(if shape.shows(kind) {
                format!(
                    "the {} at `{}` holds what the catalogue's `of` does not name",
                    kind.as_str(),
                    path.as_str()
                )
            } else {
                format!(
                    "a value at `{}` is {} {}; the catalogue declares {}",
                    path.as_str(),
                    article(kind.as_str()),
                    kind.as_str(),
                    shape.as_str()
                )
            })
        });
        path.truncate(len);
        refused.map_or(Ok(()), Err)
    }
}

/// Where a leaf value sits, for naming it when it is misshapen: `path`
/// is its container's (with `key` still to push) or its own (`key` is
/// `None`). Pushed only then: the common case costs nothing.
pub(super) struct LeafAt<'p> {
    pub(super) scope: Scope,
    pub(super) path: &'p mut NamePath,
    pub(super) key: Option<&'p str>,
}

/// `a` or `an` before a JSON kind's name.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
