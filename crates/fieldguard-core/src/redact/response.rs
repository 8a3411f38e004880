//! Response filtering: for every record the route names, decide whether the
//! caller may see it, then for every catalogued field: full, masked or
//! removed; every member the configuration does not name (in a record or
//! around the records) is removed unless the route passes unknown fields,
//! and counted either way.

use super::disclosed::Disclosed;
use super::observe::{
    Observed, Onboarding, backstop_removes_key, backstop_value, key_kinds, observe_hidden,
    observe_value,
};
use super::plan::{NamePath, PlanNode, ResponsePlan};
use super::{BodyRules, Outcome, RecordSelector, record_attributes};
use crate::catalogue::{AttrValue, Catalogue, FieldNode};
use crate::config::{JsonKind, UnknownFields};
use crate::detect::{DetectorCounts, DetectorSet};
use crate::policy::{Decider, FieldAction, PolicyRefs, PolicyTable, ResourceRef, Verdict};
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

/// Redacts `doc` in place: the tree walk (the reference the byte-stream
/// redactor is held to, and the one that explains its decisions).
pub fn filter_response(
    doc: &mut Value,
    rules: &BodyRules<'_>,
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
) -> Result<(), FilterError> {
    let plan = rules.plan;
    report.start_body(plan, decider);
    // Attributes read from the document root, before anything changes.
    let root_values: Vec<Vec<Option<AttrValue>>> = plan
        .selectors
        .iter()
        .map(|sel| {
            sel.attributes
                .iter()
                .map(|s| s.from_root.then(|| s.extract(doc, doc)).flatten())
                .collect()
        })
        .collect();
    let mut walk = TreeWalk {
        rules,
        decider,
        catalogue,
        report,
        root_values,
        forbidden: false,
        path: NamePath::wrapper(),
    };
    walk.place(doc, &plan.root, false)?;
    if walk.forbidden {
        return Err(FilterError::Forbidden);
    }
    Ok(())
}

/// One body's tree walk: the places of the plan, then each record.
struct TreeWalk<'r, 'd> {
    rules: &'r BodyRules<'r>,
    decider: &'r mut Decider<'d>,
    catalogue: &'r Catalogue,
    report: &'r mut FilterReport,
    root_values: Vec<Vec<Option<AttrValue>>>,
    /// A single-record body whose record the caller may not see.
    forbidden: bool,
    path: NamePath,
}

impl TreeWalk<'_, '_> {
    /// Redacts the value at `node`'s place; `false` when it goes (a hidden
    /// list element, a removed member, a misshapen or emptied object).
    fn place(
        &mut self,
        v: &mut Value,
        node: &PlanNode,
        in_list: bool,
    ) -> Result<bool, FilterError> {
        if let Some(sel) = node.record {
            return self.records_place(v, sel, in_list);
        }
        if let Some(field) = node.member {
            let mut ctx = RecordCtx::for_wrapper(
                &mut *self.decider,
                self.catalogue,
                self.rules,
                &mut *self.report,
            );
            let at = LeafAt {
                scope: Scope::Wrapper,
                path: &mut self.path,
                key: None,
            };
            return ctx.leaf(v, field, at);
        }
        let keep = match v {
            Value::Object(map) if !node.is_array() => {
                let had = !map.is_empty();
                let mut removed: Vec<String> = Vec::new();
                for (key, value) in map.iter_mut() {
                    let len = self.path.push_key(key);
                    let kept = match node.key(key) {
                        Some(child) => self.place(value, child, false)?,
                        None => self.unnamed(Some(key), value),
                    };
                    self.path.truncate(len);
                    if !kept {
                        removed.push(key.clone());
                    }
                }
                if let Some((_, missing)) = node
                    .keys
                    .iter()
                    .find(|(k, c)| c.required.is_some() && !map.contains_key(k.as_ref()))
                {
                    return Err(required(missing));
                }
                if !removed.is_empty() {
                    map.retain(|k, _| !removed.contains(k));
                }
                // An object emptied by removals goes too, unless records
                // are expected in it.
                !(had && map.is_empty()) || node.required.is_some()
            }
            Value::Array(items) if node.is_array() => {
                let mut index = 0usize;
                let mut failed = None;
                let count = items.len();
                items.retain_mut(|item| {
                    let at = index;
                    index += 1;
                    if failed.is_some() {
                        return true;
                    }
                    let len = self.path.push_index(node.each.is_none().then_some(at));
                    let kept = match node.element(at) {
                        Some((child, in_list)) => match self.place(item, child, in_list) {
                            Ok(kept) => kept,
                            Err(e) => {
                                failed = Some(e);
                                true
                            }
                        },
                        None => self.unnamed(None, item),
                    };
                    self.path.truncate(len);
                    kept
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                if let Some((_, missing)) = node
                    .indexes
                    .iter()
                    .find(|(i, c)| c.required.is_some() && *i >= count)
                {
                    return Err(required(missing));
                }
                true
            }
            _ => {
                if node.required.is_some() {
                    return Err(required(node));
                }
                self.report
                    .misshapen
                    .add(Scope::Wrapper, self.path.as_str());
                false
            }
        };
        Ok(keep)
    }

    /// An unnamed member of the body around the records (at `self.path`,
    /// under `key` unless a list element): counted, observed, and (when
    /// passed) backstopped; whether it stays.
    fn unnamed(&mut self, key: Option<&str>, v: &mut Value) -> bool {
        let on = Onboarding::of(self.rules.plan);
        unnamed_member(self.report, on, Scope::Wrapper, &mut self.path, key, v)
    }

    /// The records of selector `sel` at this place.
    fn records_place(
        &mut self,
        v: &mut Value,
        sel: usize,
        in_list: bool,
    ) -> Result<bool, FilterError> {
        let selector = &self.rules.plan.selectors[sel];
        let shown = filter_record(
            v,
            selector,
            &self.root_values[sel],
            Onboarding::of(self.rules.plan),
            &mut *self.decider,
            self.catalogue,
            &mut *self.report,
        )?;
        if shown {
            return Ok(true);
        }
        if self.rules.plan.observe
            && let Value::Object(map) = &*v
        {
            let scope = Scope::Entity(selector.entity.index);
            let root = &selector.entity.root;
            observe_hidden(
                &mut self.report.observed,
                scope,
                &mut NamePath::default(),
                map,
                root,
            );
        }
        self.report.records_dropped += 1;
        if selector.path.is_single() {
            self.forbidden = true;
        }
        if in_list {
            return Ok(false);
        }
        // A hidden record that is not a list element: its place stays,
        // its data goes.
        *v = Value::Null;
        Ok(true)
    }
}

/// The shape error of a required place that is missing or misshapen.
pub(super) fn required(node: &PlanNode) -> FilterError {
    FilterError::Shape(
        node.required
            .as_deref()
            .unwrap_or("the response body does not have the shape the route declares")
            .to_string(),
    )
}

/// Filters one record; `Ok(false)` when the caller may not see it at all.
fn filter_record(
    record: &mut Value,
    sel: &RecordSelector,
    root_values: &[Option<AttrValue>],
    onboarding: Onboarding,
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
) -> Result<bool, FilterError> {
    report.records += 1;
    if !record.is_object() {
        return Err(FilterError::Shape(format!(
            "a record at `{}` is not a JSON object",
            sel.path.text
        )));
    }
    let Some(values) = record_attributes(&sel.attributes, record, root_values) else {
        crate::repeated_warn!(
            crate::repeated::Kind::RecordAttribute,
            "a {} record lacks a configured attribute; hidden",
            sel.entity.name
        );
        return Ok(false);
    };
    let entity = &sel.entity;
    let id = entity.record_id(record).to_string();
    let mut ctx = RecordCtx::new(
        decider,
        catalogue,
        sel.resource(&id, &values),
        report,
        onboarding,
    );
    let visible = ctx.allowed(FieldAction::RecordRead, None);
    ctx.trace_record(visible);
    if !visible {
        return Ok(false);
    }
    ctx.report
        .disclosed
        .add(entity.index, &id, sel.subject_of(&values));
    if let Value::Object(map) = record {
        let mut path = NamePath::default();
        let scope = Scope::Entity(entity.index);
        ctx.walk_object(map, &entity.root, scope, &mut path)?;
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

    /// Redacts a leaf value in place; `false` when it is removed. A value
    /// of another kind than the field's goes before any decision (see
    /// [`RecordCtx::misshapen_leaf`]; `at` names its place). Only a scalar
    /// has a masked form: an object or array (one value, whatever it
    /// holds) is shown in full or not at all.
    pub(super) fn leaf(
        &mut self,
        value: &mut Value,
        field: u32,
        at: LeafAt<'_>,
    ) -> Result<bool, FilterError> {
        let kind = JsonKind::of(value);
        if !self.catalogue.field(field).admits_value(value) {
            self.misshapen_leaf(field, kind, at)?;
            return Ok(false);
        }
        Ok(match self.field_outcome(field, !kind.is_container()) {
            Outcome::Full => {
                if self.backstops(field) {
                    let set = self.onboarding.backstop;
                    backstop_value(value, set, &mut self.report.backstop);
                }
                true
            }
            Outcome::Masked => {
                if let Some(mask) = &self.catalogue.field(field).mask {
                    *value = mask.apply(value);
                }
                true
            }
            Outcome::Removed => false,
        })
    }

    /// A catalogued value of another kind than its field's (a string field
    /// holding an object): whatever it holds is not what the catalogue
    /// classified, so no decision on the field covers it. Counted as
    /// misshapen at its place; removed, or (`response.misshapen: refuse`)
    /// the answer is refused.
    pub(super) fn misshapen_leaf(
        &mut self,
        field: u32,
        kind: JsonKind,
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

    /// Redacts a record's object (or an object nested in it) by the
    /// catalogue node `node`: catalogued keys in catalogue order (so
    /// explanations read like the catalogue), then what it does not name.
    fn walk_object(
        &mut self,
        map: &mut Map<String, Value>,
        node: &FieldNode,
        scope: Scope,
        path: &mut NamePath,
    ) -> Result<(), FilterError> {
        // Keys to remove, removed together at the end: removing one key
        // from an order-preserving map shifts (and re-indexes) all later
        // keys, and most of a record's keys may go.
        let mut removed: SmallVec<[&str; 16]> = SmallVec::new();
        for (key, child) in &node.children {
            let Some(value) = map.get_mut(key.as_ref()) else {
                continue;
            };
            if let Some(field) = child.field {
                let at = LeafAt {
                    scope,
                    path: &mut *path,
                    key: Some(key),
                };
                if !self.leaf(value, field, at)? {
                    removed.push(key.as_ref());
                }
                continue;
            }
            let len = path.push_key(key);
            if !self.container(value, child, scope, path)? {
                removed.push(key.as_ref());
            }
            path.truncate(len);
        }
        let mut unnamed: SmallVec<[String; 4]> = SmallVec::new();
        for (key, value) in map.iter_mut() {
            if node.child(key).is_none() {
                let len = path.push_key(key);
                let kept =
                    unnamed_member(self.report, self.onboarding, scope, path, Some(key), value);
                path.truncate(len);
                if !kept {
                    unnamed.push(key.clone());
                }
            }
        }
        if !removed.is_empty() || !unnamed.is_empty() {
            map.retain(|k, _| !removed.contains(&k.as_str()) && !unnamed.contains(k));
        }
        Ok(())
    }

    /// Redacts the value of a catalogued container; `false` when it goes:
    /// not an object or a list of objects (what the catalogue describes),
    /// or an object emptied by removals (`"payment": {}` would only say
    /// that something was hidden). Elements of a list keep their place.
    fn container(
        &mut self,
        value: &mut Value,
        node: &FieldNode,
        scope: Scope,
        path: &mut NamePath,
    ) -> Result<bool, FilterError> {
        Ok(match value {
            Value::Object(map) => {
                let had = !map.is_empty();
                self.walk_object(map, node, scope, path)?;
                !(had && map.is_empty())
            }
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for item in items.iter_mut() {
                    if let Value::Object(map) = item {
                        self.walk_object(map, node, scope, path)?;
                    }
                }
                true
            }
            _ => {
                self.report.misshapen.add(scope, path.as_str());
                false
            }
        })
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

/// An unnamed member at `path` (its key pushed already; `key` is `None`
/// for a list element): counted, its shape recorded when the route
/// observes (with the kinds its key holds), its values backstopped when
/// the route passes it. Whether it stays: passed, unless the backstop
/// removes it for its key ([`backstop_removes_key`]).
fn unnamed_member(
    report: &mut FilterReport,
    on: Onboarding,
    scope: Scope,
    path: &mut NamePath,
    key: Option<&str>,
    value: &mut Value,
) -> bool {
    report.unnamed.add(scope, path.as_str());
    if on.observe {
        let named_by = key.map_or(DetectorSet::EMPTY, key_kinds);
        observe_value(&mut report.observed, scope, path, value, named_by);
    }
    if on.backstops_unnamed() {
        if key.is_some_and(|k| backstop_removes_key(k, on.backstop, &mut report.backstop)) {
            return false;
        }
        backstop_value(value, on.backstop, &mut report.backstop);
    }
    on.pass
}
