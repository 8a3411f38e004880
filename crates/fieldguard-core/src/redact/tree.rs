//! The tree walk: redacts a parsed body in place. It is the reference
//! the byte redactor ([`super::bytes`]) is held to by the property tests,
//! and the walk that explains its decisions (`fieldguard explain`, policy
//! tests): for every record the route names, decide whether the caller
//! may see it, then for every catalogued field: full, masked or removed;
//! every member the configuration does not name (in a record or around
//! the records) is removed unless the route passes unknown fields, and
//! counted either way.

use super::plan::{NamePath, PlanNode};
use super::record::{LeafAt, RecordCtx, required};
use super::report::{FilterError, FilterReport, Scope};
use super::unnamed::{
    Onboarding, backstop_removes_key, backstop_value, key_kinds, observe_hidden, observe_value,
};
use super::{BodyRules, Outcome, RecordSelector, record_attributes};
use crate::catalogue::{AttrValue, Catalogue, FieldNode};
use crate::config::JsonType;
use crate::detect::DetectorSet;
use crate::policy::{Decider, FieldAction};
use serde_json::{Map, Value};
use smallvec::SmallVec;

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

impl RecordCtx<'_, '_> {
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
        let kind = JsonType::of(value);
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
