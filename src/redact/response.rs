//! Response filtering: for every record the route names, decide whether the
//! caller may see it, then for every catalogued field: full, masked or removed.

use super::{Outcome, RecordSelector, record_attributes};
use crate::catalogue::{AttrValue, Catalogue, FieldNode};
use crate::policy::{Decider, FieldAction, ResourceRef};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use smallvec::SmallVec;

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
    /// When `Some`, every decision is also explained here (uncached, with
    /// the determining policies): for `fieldguard explain` and policy tests.
    pub trace: Option<Vec<TraceEntry>>,
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

impl FilterReport {
    /// A report that also explains every decision.
    pub fn traced() -> Self {
        Self {
            trace: Some(Vec::new()),
            ..Self::default()
        }
    }
}

/// Redacts `doc` in place.
pub fn filter_response(
    doc: &mut Value,
    selectors: &[RecordSelector],
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
) -> Result<(), FilterError> {
    for sel in selectors {
        let root_values: Vec<Option<AttrValue>> = sel
            .attributes
            .iter()
            .map(|s| s.from_root.then(|| s.extract(doc, doc)).flatten())
            .collect();
        let single = sel.path.is_single();
        let mut forbidden = false;
        let mut f = |record: &mut Value| -> Result<bool, String> {
            let keep = filter_record(record, sel, &root_values, decider, catalogue, report)?;
            if !keep {
                if single {
                    forbidden = true;
                }
                report.records_dropped += 1;
            }
            Ok(keep)
        };
        let resolved = sel
            .path
            .for_each_mut(doc, &mut f)
            .map_err(FilterError::Shape)?;
        if resolved == crate::catalogue::record_path::Resolve::Missing {
            return Err(FilterError::Shape(format!(
                "no records at `{}`",
                sel.path.text
            )));
        }
        if forbidden {
            return Err(FilterError::Forbidden);
        }
    }
    Ok(())
}

/// Filters one record; `Ok(false)` when the caller may not see it at all.
fn filter_record(
    record: &mut Value,
    sel: &RecordSelector,
    root_values: &[Option<AttrValue>],
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
) -> Result<bool, String> {
    report.records += 1;
    if !record.is_object() {
        return Err(format!(
            "a record at `{}` is not a JSON object",
            sel.path.text
        ));
    }
    let Some(values) = record_attributes(&sel.attributes, record, root_values) else {
        tracing::warn!(entity = %sel.entity.name, "record lacks a configured attribute; hidden");
        return Ok(false);
    };
    let entity = &sel.entity;
    let id = entity.record_id(record).to_string();
    let mut ctx = RecordCtx::new(decider, catalogue, sel.resource(&id, &values), report);
    let visible = ctx.allowed(FieldAction::RecordRead, None);
    ctx.trace_record(visible);
    if !visible {
        return Ok(false);
    }
    if let Value::Object(map) = record {
        ctx.walk_object(map, &entity.root);
    }
    Ok(true)
}

/// One record's decisions: shared by the tree walk here and the byte
/// stream redactor (`super::stream`), so both decide the same way.
pub(super) struct RecordCtx<'r, 'd> {
    pub(super) decider: &'r mut Decider<'d>,
    pub(super) catalogue: &'r Catalogue,
    pub(super) resource: ResourceRef<'r>,
    pub(super) report: &'r mut FilterReport,
    /// Policies and errors of the last explained decision (tracing only).
    pub(super) last_explained: (Vec<String>, Vec<String>),
}

impl<'r, 'd> RecordCtx<'r, 'd> {
    pub(super) fn new(
        decider: &'r mut Decider<'d>,
        catalogue: &'r Catalogue,
        resource: ResourceRef<'r>,
        report: &'r mut FilterReport,
    ) -> Self {
        Self {
            decider,
            catalogue,
            resource,
            report,
            last_explained: Default::default(),
        }
    }

    pub(super) fn allowed(&mut self, action: FieldAction, field: Option<u32>) -> bool {
        let spec = field.map(|i| self.catalogue.field(i));
        if self.report.trace.is_some() {
            let d = self.decider.explain(action, spec, &self.resource);
            self.last_explained = (d.policies, d.errors);
            return d.allowed;
        }
        self.decider.allowed(action, spec, &self.resource)
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
    pub(super) fn field_outcome(&mut self, field: u32) -> Outcome {
        let outcome = self.outcome(field);
        *self.report.outcomes.entry((field, outcome)).or_insert(0) += 1;
        if self.report.trace.is_some() {
            self.push_trace(Some(field), outcome.as_str());
        }
        outcome
    }

    /// The outcome for one field of this record: full, else masked (when
    /// the field has a masked form), else removed.
    fn outcome(&mut self, field: u32) -> Outcome {
        if self.allowed(FieldAction::FieldRead, Some(field)) {
            Outcome::Full
        } else if self.catalogue.field(field).mask.is_some()
            && self.allowed(FieldAction::FieldReadMasked, Some(field))
        {
            Outcome::Masked
        } else {
            Outcome::Removed
        }
    }

    /// Visits the catalogued keys of `map` (not every key: uncatalogued
    /// subtrees pass unchanged without being walked).
    fn walk_object(&mut self, map: &mut Map<String, Value>, node: &FieldNode) {
        // Keys to remove, removed together at the end: removing one key
        // from an order-preserving map shifts (and re-indexes) all later
        // keys, and most of a record's keys may go.
        let mut removed: SmallVec<[&str; 16]> = SmallVec::new();
        for (key, child) in &node.children {
            let Some(value) = map.get_mut(key.as_ref()) else {
                continue;
            };
            if let Some(field) = child.field {
                match self.field_outcome(field) {
                    Outcome::Full => {}
                    Outcome::Masked => {
                        if let Some(mask) = &self.catalogue.field(field).mask {
                            *value = mask.apply(value);
                        }
                        continue;
                    }
                    Outcome::Removed => {
                        removed.push(key.as_ref());
                        continue;
                    }
                }
            }
            if !child.children.is_empty() {
                let had_keys = value.as_object().is_some_and(|o| !o.is_empty());
                self.descend(value, child);
                // An object emptied by removals goes too: `"payment": {}` would
                // only say that something was hidden.
                if had_keys && value.as_object().is_some_and(|o| o.is_empty()) {
                    removed.push(key.as_ref());
                }
            }
        }
        if !removed.is_empty() {
            map.retain(|k, _| !removed.contains(&k.as_str()));
        }
    }

    /// Arrays are transparent: `items.price` applies to every element.
    fn descend(&mut self, value: &mut Value, node: &FieldNode) {
        match value {
            Value::Object(map) => self.walk_object(map, node),
            Value::Array(items) => items.iter_mut().for_each(|i| self.descend(i, node)),
            _ => {}
        }
    }
}
