//! Response redaction from bytes to bytes, without building a tree.
//!
//! Parsing a body into a `serde_json::Value` and serialising it again cost
//! more than every policy decision of a list (one allocation per string,
//! key and object), while most of a body passes through unchanged. This
//! redactor walks the body once with [`Scanner`], following the route's
//! [`ResponsePlan`] and the entities' catalogues, copies every span the
//! caller may see verbatim (numbers and strings keep their exact bytes),
//! and rewrites only what changes: records the caller may not see are
//! dropped, fields and members the configuration does not name are
//! removed, and masked fields are decoded, masked and re-encoded one value
//! at a time.
//!
//! It decides exactly as the tree walk in [`super::response`] does (the
//! same [`RecordCtx`]), which stays the reference implementation: it
//! explains decisions for `fieldguard explain` and the policy tests, and a
//! property test checks that both give the same output for any body.
//!
//! Where the two differ by design: an object repeating a key keeps every
//! copy here, each redacted on its own (the tree keeps the last); a record
//! repeating a key its decisions read (its id, an attribute such as the
//! owner) is refused as misshapen, since a client might read the other
//! copy than the one decided on.

use super::BodyRules;
use super::expected_keys::ExpectedKeys;
use super::plan::{NamePath, PlanNode, key_label};
use super::record::{LeafAt, RecordCtx, required};
use super::record_plan::{Planned, RecordPlans};
use super::replay::{Act, Step};
use super::report::{FilterError, FilterReport, Scope};
use super::scan::{self, Key, ScanError, Scanner, Span};
use super::unnamed::{
    Onboarding, backstop_removes_key, copy_backstopped, key_kinds, observe_hidden_member,
    observe_span,
};
use super::{Outcome, RecordSelector};
use crate::catalogue::{AttrValue, AttributeSource, Catalogue, FieldNode};
use crate::config::{AttributeKind, JsonType};
use crate::detect::DetectorSet;
use crate::policy::{Decider, FieldAction};
use crate::short_eq::same_bytes;
use smallvec::SmallVec;
use std::borrow::Cow;

/// Why a body was not redacted. Either way nothing of it is passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// Not JSON (or nested too deeply).
    Unreadable,
    /// Valid JSON that the route's plan does not fit, or a single record
    /// the caller may not read.
    Filter(FilterError),
}

/// Redacts `input` for the caller of `decider`, by the route's `rules`.
pub fn redact(
    input: &[u8],
    rules: &BodyRules<'_>,
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
    max_depth: usize,
) -> Result<Vec<u8>, StreamError> {
    let text = scan::utf8(input).map_err(|_| StreamError::Unreadable)?;
    report.start_body(rules.plan, decider);
    // Traced decisions are explained one by one: no plans.
    let traced = report.trace.is_some();
    let w = Writer {
        input,
        text,
        out: Vec::with_capacity(input.len()),
        max_depth,
    };
    let carried = Carried::new(rules, !traced);
    let pass = Pass::new(w, rules, decider, catalogue, report, carried);
    pass.run().map_err(|e| e.for_body(input, max_depth))
}

pub(super) enum Fail {
    /// Malformed or too deep: the body is unreadable.
    Scan,
    Filter(FilterError),
}

impl Fail {
    /// What a failure on `input` is: a malformed body is unreadable
    /// whatever else is wrong with it.
    pub(super) fn for_body(self, input: &[u8], max_depth: usize) -> StreamError {
        match self {
            Fail::Filter(_) if scan::validate(input, max_depth).is_err() => StreamError::Unreadable,
            Fail::Filter(f) => StreamError::Filter(f),
            Fail::Scan => StreamError::Unreadable,
        }
    }
}

impl From<ScanError> for Fail {
    fn from(_: ScanError) -> Self {
        Fail::Scan
    }
}

impl From<FilterError> for Fail {
    fn from(e: FilterError) -> Self {
        Fail::Filter(e)
    }
}

/// The output being written and the input it copies from.
pub(super) struct Writer<'i> {
    pub(super) input: &'i [u8],
    /// The same input, as the `str` it was checked to be.
    pub(super) text: &'i str,
    pub(super) out: Vec<u8>,
    pub(super) max_depth: usize,
}

impl Writer<'_> {
    #[inline]
    fn copy(&mut self, span: Span) {
        if let Some(bytes) = self.input.get(span.start..span.end) {
            self.out.extend_from_slice(bytes);
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.out.push(b);
    }

    /// `,` unless first, then `"key":`.
    #[inline(always)]
    fn key(&mut self, written: &mut bool, key: Key) {
        if *written {
            self.out.push(b',');
        }
        *written = true;
        self.copy(key.span);
        self.out.push(b':');
    }

    /// `,` unless first, then `"key":value`: one copy when the input has
    /// them so (no whitespace around the colon).
    #[inline]
    fn member(&mut self, written: &mut bool, key: Key, value: Span) {
        if *written {
            self.out.push(b',');
        }
        *written = true;
        if value.start == key.span.end + 1 {
            self.copy(Span {
                start: key.span.start,
                end: value.end,
            });
        } else {
            self.copy(key.span);
            self.out.push(b':');
            self.copy(value);
        }
    }

    /// Where the output stands, to [`Writer::undo`] back to.
    #[inline]
    fn mark(&self, written: bool) -> (usize, bool) {
        (self.out.len(), written)
    }

    #[inline]
    fn undo(&mut self, mark: (usize, bool), written: &mut bool) {
        self.out.truncate(mark.0);
        *written = mark.1;
    }

    /// The first byte of a value (after its leading whitespace, which
    /// spans exclude).
    #[inline]
    fn first_byte(&self, span: Span) -> u8 {
        self.input.get(span.start).copied().unwrap_or(b'n')
    }
}

/// A member of the record being redacted, its key decoded once.
pub(super) struct Member<'i> {
    name: Cow<'i, str>,
    key: Key,
    value: Span,
    /// When the value is an object read member by member: its members,
    /// in the record's `nested` buffer (so writing it needs no second
    /// scan). Empty otherwise.
    children: std::ops::Range<u32>,
}

/// What a pass carries from one input to the next: a body is one input,
/// but a streamed list ([`super::list_stream`]) is redacted element by
/// element, each its own input, with the same plans and buffers.
pub(super) struct Carried {
    /// Attribute values read from the document root, by selector and
    /// source index.
    root_values: Vec<Vec<Option<AttrValue>>>,
    /// Record outcomes by selector and record facts.
    plans: RecordPlans,
    /// The buffer of a record's [`RecordWalk::path`] (reused across
    /// records: no allocation per record).
    record_path: NamePath,
    /// Where the walk is in the body around the records (for reports).
    path: NamePath,
    /// The members buffers, empty (their allocations reused).
    members: Vec<Member<'static>>,
    nested: Vec<Member<'static>>,
    /// By selector: the keys its next record is expected to have.
    expected: Vec<ExpectedKeys>,
}

impl Carried {
    /// Fresh state for a body of `rules`; `planned: false` decides every
    /// record field by field (traced decisions are explained one by one).
    pub(super) fn new(rules: &BodyRules<'_>, planned: bool) -> Self {
        Self {
            // Read from the root by the whole-body walk; a streamed list's
            // selectors read none ([`super::list_stream::ListPlace`]).
            root_values: (rules.plan.selectors.iter())
                .map(|s| vec![None; s.attributes.len()])
                .collect(),
            plans: RecordPlans::new(rules.plan.selectors.len(), planned),
            record_path: NamePath::default(),
            path: NamePath::wrapper(),
            members: Vec::new(),
            nested: Vec::new(),
            expected: (rules.plan.selectors.iter())
                .map(|_| ExpectedKeys::default())
                .collect(),
        }
    }

    /// Adds the field outcomes decided through plans to `report`'s counts.
    pub(super) fn flush(&mut self, report: &mut FilterReport) {
        self.plans.flush(report);
    }
}

/// An empty vector of another lifetime, keeping the allocation (the
/// standard library collects an emptied `IntoIter` in place; `filter_map`
/// is what changes the element type without a value to map).
#[allow(
    clippy::unnecessary_filter_map,
    reason = "the element type changes; no element is ever mapped"
)]
fn recycle<'a, 'b>(mut v: Vec<Member<'a>>) -> Vec<Member<'b>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Where a streamed list's elements go in the body around them: `at` is
/// the input offset of the list's (empty) `[`; `out`, once passed, the
/// output length just after it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hole {
    pub(super) at: usize,
    pub(super) out: Option<usize>,
}

/// The route's plan applied to one body.
pub(super) struct Pass<'i, 'c, 'd> {
    w: Writer<'i>,
    rules: &'c BodyRules<'c>,
    decider: &'c mut Decider<'d>,
    catalogue: &'c Catalogue,
    report: &'c mut FilterReport,
    /// Attribute values read from the document root, by selector and
    /// source index.
    root_values: Vec<Vec<Option<AttrValue>>>,
    /// The current record's members (reused across records).
    members: Vec<Member<'i>>,
    /// The members of its members that are objects.
    nested: Vec<Member<'i>>,
    /// By selector: the keys its next record is expected to have.
    expected: Vec<ExpectedKeys>,
    /// Record outcomes by selector and record facts.
    plans: RecordPlans,
    /// The buffer of a record's [`RecordWalk::path`] (reused across
    /// records: no allocation per record).
    record_path: NamePath,
    /// A single-record body whose record the caller may not see.
    forbidden: bool,
    /// Where the walk is in the body around the records (for reports).
    path: NamePath,
    /// A streamed list's place in this (skeleton) body.
    pub(super) hole: Option<Hole>,
}

impl<'i, 'c, 'd> Pass<'i, 'c, 'd> {
    pub(super) fn new(
        w: Writer<'i>,
        rules: &'c BodyRules<'c>,
        decider: &'c mut Decider<'d>,
        catalogue: &'c Catalogue,
        report: &'c mut FilterReport,
        carried: Carried,
    ) -> Self {
        Self {
            w,
            rules,
            decider,
            catalogue,
            report,
            root_values: carried.root_values,
            members: recycle(carried.members),
            nested: recycle(carried.nested),
            expected: carried.expected,
            plans: carried.plans,
            record_path: carried.record_path,
            forbidden: false,
            path: carried.path,
            hole: None,
        }
    }

    /// The output and the state the next input's pass carries on with.
    pub(super) fn into_parts(self) -> (Vec<u8>, Carried) {
        let carried = Carried {
            root_values: self.root_values,
            plans: self.plans,
            record_path: self.record_path,
            path: self.path,
            members: recycle(self.members),
            nested: recycle(self.nested),
            expected: self.expected,
        };
        (self.w.out, carried)
    }
}

impl Pass<'_, '_, '_> {
    fn run(mut self) -> Result<Vec<u8>, Fail> {
        let walked = self.walk();
        // Counted whether or not the body was refused, as the tree walk counts.
        self.plans.flush(self.report);
        walked?;
        if self.forbidden {
            return Err(Fail::Filter(FilterError::Forbidden));
        }
        Ok(self.w.out)
    }

    /// A whole body around a streamed list whose elements were redacted
    /// on their own (its `[]` at [`Pass::hole`]).
    pub(super) fn skeleton(&mut self) -> Result<(), Fail> {
        self.walk()
    }

    /// One element of a streamed list at the start of the input, at
    /// `node` (the list's `[*]`) under the object `keys`: written into the
    /// output unless hidden, and where it ends. Nothing is decided, counted
    /// or written before the element was read whole, so a `Fail::Scan` on
    /// input that ends inside it has no effect.
    pub(super) fn element(
        &mut self,
        node: &PlanNode,
        keys: &[Box<str>],
    ) -> Result<(bool, usize), Fail> {
        let depth = keys.len() + 1;
        let mut sc = Scanner::new(self.w.input, 0, depth, self.w.max_depth);
        let len = self.path.as_str().len();
        for k in keys {
            self.path.push_key(k);
        }
        self.path.push_index(None);
        let kept = self.place(&mut sc, node, true);
        self.path.truncate(len);
        Ok((kept?, sc.position()))
    }

    fn walk(&mut self) -> Result<(), Fail> {
        let text = self.w.text;
        let max_depth = self.w.max_depth;
        self.root_values = self
            .rules
            .plan
            .selectors
            .iter()
            .map(|sel| {
                sel.attributes
                    .iter()
                    .map(|s| {
                        if !s.from_root {
                            return Ok(None);
                        }
                        let found = lookup_path(text, 0, 0, &s.path, max_depth)?;
                        Ok(found
                            .and_then(|span| convert(text, span, s))
                            .or_else(|| s.default.clone()))
                    })
                    .collect::<Result<_, Fail>>()
            })
            .collect::<Result<_, Fail>>()?;
        let mut sc = Scanner::new(self.w.input, 0, 0, max_depth);
        let plan = self.rules.plan;
        self.place(&mut sc, &plan.root, false)?;
        sc.finish()?;
        Ok(())
    }

    /// Writes the value at `sc`, at `node`'s place of the plan; `false`
    /// (nothing written) when it goes: a hidden list element, a removed
    /// member, a misshapen or emptied object.
    fn place(
        &mut self,
        sc: &mut Scanner<'_>,
        node: &PlanNode,
        in_list: bool,
    ) -> Result<bool, Fail> {
        if let Some(sel) = node.record {
            return self.records_place(sc, sel, in_list);
        }
        if let Some(field) = node.member {
            let value = sc.value()?;
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
            let (kept, _) = leaf(&mut self.w, &mut ctx, None, (field, at), value, sc.depth())?;
            return Ok(kept);
        }
        match sc.peek() {
            Some(b'{') if !node.is_array() => self.object_place(sc, node),
            Some(b'[') if node.is_array() => self.array_place(sc, node),
            _ => {
                if node.required.is_some() {
                    return Err(required(node).into());
                }
                sc.value()?;
                self.report
                    .misshapen
                    .add(Scope::Wrapper, self.path.as_str());
                Ok(false)
            }
        }
    }

    fn object_place(&mut self, sc: &mut Scanner<'_>, node: &PlanNode) -> Result<bool, Fail> {
        let text = self.w.text;
        sc.open_object()?;
        self.w.push(b'{');
        let (mut first, mut written, mut had) = (true, false, false);
        let mut seen: SmallVec<[bool; 8]> = SmallVec::from_elem(false, node.keys.len());
        while let Some(key) = sc.member(&mut first)? {
            had = true;
            let name = scan::text(text, key.span, key.escaped)?;
            let len = self.path.push_key(&name);
            let mark = self.w.mark(written);
            self.w.key(&mut written, key);
            let kept = match node.keys.iter().position(|(k, _)| **k == *name) {
                Some(at) => {
                    seen[at] = true;
                    self.place(sc, &node.keys[at].1, false)?
                }
                None => {
                    let value = sc.value()?;
                    self.unnamed(Some(&name), value, sc.depth())?
                }
            };
            if !kept {
                self.w.undo(mark, &mut written);
            }
            self.path.truncate(len);
        }
        self.w.push(b'}');
        if let Some((_, missing)) = node
            .keys
            .iter()
            .zip(&seen)
            .find(|((_, c), seen)| c.required.is_some() && !**seen)
            .map(|(k, _)| k)
        {
            return Err(required(missing).into());
        }
        // An object emptied by removals goes too, unless records are
        // expected in it.
        Ok(!had || written || node.required.is_some())
    }

    fn array_place(&mut self, sc: &mut Scanner<'_>, node: &PlanNode) -> Result<bool, Fail> {
        let at = sc.position();
        sc.open_array()?;
        self.w.push(b'[');
        if let Some(hole) = self.hole.as_mut().filter(|h| h.at == at && h.out.is_none()) {
            hole.out = Some(self.w.out.len());
        }
        let (mut first, mut written, mut index) = (true, false, 0usize);
        while sc.element(&mut first)? {
            let at = index;
            index += 1;
            let mark = self.w.mark(written);
            if written {
                self.w.push(b',');
            }
            let len = self.path.push_index(node.each.is_none().then_some(at));
            let kept = match node.element(at) {
                Some((child, in_list)) => self.place(sc, child, in_list)?,
                None => {
                    let value = sc.value()?;
                    self.unnamed(None, value, sc.depth())?
                }
            };
            self.path.truncate(len);
            if kept {
                written = true;
            } else {
                self.w.undo(mark, &mut written);
            }
        }
        self.w.push(b']');
        if let Some((_, missing)) = node
            .indexes
            .iter()
            .find(|(i, c)| c.required.is_some() && *i >= index)
        {
            return Err(required(missing).into());
        }
        Ok(true)
    }

    /// An unnamed member of the body around the records (at `self.path`,
    /// under `key` unless a list element), enclosed by `depth` containers:
    /// counted, observed, and written when the route passes it
    /// (backstopped, when it has a backstop); whether it stays.
    fn unnamed(&mut self, key: Option<&str>, value: Span, depth: usize) -> Result<bool, Fail> {
        let on = Onboarding::of(self.rules.plan);
        unnamed_member(
            &mut self.w,
            self.report,
            on,
            Scope::Wrapper,
            &mut self.path,
            key,
            value,
            depth,
        )
    }

    /// A record of selector `sel` at this place: written if shown; a hidden
    /// one is dropped from its list, or becomes null anywhere else.
    fn records_place(
        &mut self,
        sc: &mut Scanner<'_>,
        sel: usize,
        in_list: bool,
    ) -> Result<bool, Fail> {
        if self.record(sc, sel)? {
            return Ok(true);
        }
        if in_list {
            return Ok(false);
        }
        self.w.out.extend_from_slice(b"null");
        Ok(true)
    }

    /// Redacts the record at `sc` into the output; `false` (nothing
    /// written) when the caller may not see it at all.
    fn record(&mut self, sc: &mut Scanner<'_>, sel: usize) -> Result<bool, Fail> {
        let selector = &self.rules.plan.selectors[sel];
        if sc.peek() != Some(b'{') {
            self.report.records += 1;
            return Err(Fail::Filter(FilterError::Shape(format!(
                "a record at `{}` is not a JSON object",
                selector.path.text
            ))));
        }
        let depth = sc.depth() + 1;
        let mut members = std::mem::take(&mut self.members);
        members.clear();
        let mut nested = std::mem::take(&mut self.nested);
        nested.clear();
        let mut keys = KeysRead {
            expected: (self.expected.get_mut(sel).map(std::mem::take)).unwrap_or_default(),
            at: 0,
        };
        let read = read_members(sc, self.w.text, &mut keys, &mut members, &mut nested);
        if let Some(expected) = self.expected.get_mut(sel) {
            *expected = keys.expected;
            expected.armed = true;
        }
        read?;
        // Counted once the record was read whole: until then nothing of it
        // has been decided or written (a streamed list tries a record on
        // the bytes so far, and again with more if they end inside it).
        self.report.records += 1;
        let shown = self.show_record(selector, sel, &members, &nested, depth);
        let observed = match shown {
            // A hidden record's unnamed members are observed all the same.
            Ok(false) if self.rules.plan.observe => {
                let scope = Scope::Entity(selector.entity.index);
                let mut path = NamePath::default();
                members.iter().try_for_each(|m| {
                    observe_hidden_member(
                        &mut self.report.observed,
                        scope,
                        &mut path,
                        self.w.text,
                        &m.name,
                        m.value,
                        &selector.entity.root,
                        depth,
                        self.w.max_depth,
                    )
                })
            }
            _ => Ok(()),
        };
        self.members = members;
        self.nested = nested;
        let shown = shown?;
        observed?;
        if !shown {
            self.report.records_dropped += 1;
            if selector.path.is_single() {
                self.forbidden = true;
            }
        }
        Ok(shown)
    }

    fn show_record(
        &mut self,
        sel: &RecordSelector,
        sel_index: usize,
        members: &[Member<'_>],
        nested: &[Member<'_>],
        depth: usize,
    ) -> Result<bool, Fail> {
        let input = self.w.input;
        let text = self.w.text;
        let entity = &sel.entity;
        let mut values: SmallVec<[AttrValue; 4]> = SmallVec::new();
        for (source, root) in sel.attributes.iter().zip(&self.root_values[sel_index]) {
            let value = if source.from_root {
                root.clone()
            } else {
                member_path(text, members, nested, &source.path, self.w.max_depth)?
                    .and_then(|span| convert(text, span, source))
                    .or_else(|| source.default.clone())
            };
            match value {
                Some(v) => values.push(v),
                None => {
                    crate::repeated_warn!(
                        crate::repeated::Kind::RecordAttribute,
                        "a {} record lacks a configured attribute; hidden",
                        entity.name
                    );
                    return Ok(false);
                }
            }
        }
        let id: Cow<'_, str> = match &entity.id_field {
            Some(path) => match member_path(text, members, nested, path, self.w.max_depth)? {
                Some(span) if input.get(span.start) == Some(&b'"') => string_text(text, span)?,
                _ => Cow::Borrowed(""),
            },
            None => Cow::Borrowed(""),
        };
        let resource = sel.resource(&id, &values);
        let mut plan = self
            .plans
            .plan(sel_index, &sel.attributes, self.decider, &id, &values);
        let mut ctx = RecordCtx::new(
            &mut *self.decider,
            self.catalogue,
            resource,
            &mut *self.report,
            Onboarding::of(self.rules.plan),
        );
        let visible = match &mut plan {
            Some(plan) => plan.visible(&mut ctx),
            None => ctx.allowed(FieldAction::RecordRead, None),
        };
        ctx.trace_record(visible);
        if !visible {
            return Ok(false);
        }
        ctx.report
            .disclosed
            .add(entity.index, &id, sel.subject_of(&values));
        let mut walk = RecordWalk {
            w: &mut self.w,
            ctx: &mut ctx,
            plan,
            scope: Scope::Entity(entity.index),
            path: std::mem::take(&mut self.record_path),
            nested,
            cursor: 0,
        };
        walk.w.push(b'{');
        let mut written = false;
        for m in members {
            walk.member(m, &entity.root, depth, &mut written)?;
        }
        walk.w.push(b'}');
        if let Some(plan) = &mut walk.plan {
            plan.plan.replay.armed = true;
        }
        let mut path = walk.path;
        path.truncate(0);
        self.record_path = path;
        Ok(true)
    }
}

/// Writes a leaf value (without its key): as is, masked, or not at all
/// (`false`). A value of another kind than the field's goes before any
/// decision ([`RecordCtx::misshapen_leaf`]). Only a scalar has a masked
/// form: an object or array is one value, shown in full or not at all.
/// With it, what a next value of the field can replay ([`Act::Leaf`]):
/// a scalar's, unless shown through the backstop.
///
/// `depth`: the containers enclosing the value.
fn leaf(
    w: &mut Writer<'_>,
    ctx: &mut RecordCtx<'_, '_>,
    plan: Option<&mut Planned<'_>>,
    (field, at): (u32, LeafAt<'_>),
    value: Span,
    depth: usize,
) -> Result<(bool, Option<Act>), Fail> {
    let kind = JsonType::of_first_byte(w.first_byte(value));
    let text = w.text.get(value.start..value.end).unwrap_or_default();
    if !ctx.catalogue.field(field).admits_text(kind, text) {
        ctx.misshapen_leaf(field, kind, at)?;
        return Ok((false, None));
    }
    let scalar = !kind.is_container();
    let outcome = match plan {
        Some(plan) => plan.field_outcome(ctx, field, scalar),
        None => ctx.field_outcome(field, scalar),
    };
    // A container's admission depends on what it holds (`of`): decided
    // each time.
    let act = scalar.then_some(Act::Leaf {
        field,
        kind,
        outcome,
    });
    match outcome {
        Outcome::Full if ctx.backstops(field) => {
            let set = ctx.onboarding.backstop;
            copy_backstopped(
                &mut w.out,
                w.text,
                value,
                depth,
                w.max_depth,
                set,
                &mut ctx.report.backstop,
            )?;
            Ok((true, None))
        }
        Outcome::Full => {
            w.copy(value);
            Ok((true, act))
        }
        Outcome::Removed => Ok((false, act)),
        Outcome::Masked => {
            write_masked(w, ctx.catalogue, field, text)?;
            Ok((true, act))
        }
    }
}

/// The masked form of the value `text` of `field`.
fn write_masked(
    w: &mut Writer<'_>,
    catalogue: &Catalogue,
    field: u32,
    text: &str,
) -> Result<(), Fail> {
    match &catalogue.field(field).mask {
        // Straight into the output (no value, and for a plain
        // string no intermediate string either).
        Some(mask) => mask.write_json(text, &mut w.out),
        None => serde_json::from_str::<serde_json::Value>(text)
            .and_then(|original| serde_json::to_writer(&mut w.out, &original)),
    }
    .map_err(|_| ScanError::Malformed)?;
    Ok(())
}

/// One shown record being written: its members by the entity's catalogue.
struct RecordWalk<'w, 'i, 'c, 'r, 'd, 'p, 'n> {
    w: &'w mut Writer<'i>,
    ctx: &'c mut RecordCtx<'r, 'd>,
    /// The record's plan, when its outcome is planned.
    plan: Option<Planned<'p>>,
    scope: Scope,
    /// The container being walked, as reports name it.
    path: NamePath,
    /// The members of the record's object members, read while the record
    /// was (see [`Member::children`]).
    nested: &'n [Member<'n>],
    /// Members walked so far in the record, nested ones included: the
    /// place of the next in the plan's [`super::replay::Replay`].
    cursor: usize,
}

impl RecordWalk<'_, '_, '_, '_, '_, '_, '_> {
    /// Writes one member of an object whose catalogue node is `node`: as
    /// is, masked, redacted below, or not at all; as the previous record
    /// with this plan did when it can ([`super::replay::Replay`]).
    fn member(
        &mut self,
        m: &Member<'_>,
        node: &FieldNode,
        depth: usize,
        written: &mut bool,
    ) -> Result<(), Fail> {
        let at = self.cursor;
        self.cursor += 1;
        let Some(plan) = self.plan.as_mut().filter(|p| p.plan.replay.armed) else {
            return self.walk_member(m, node, depth, written).map(|_| ());
        };
        let raw = (self.w.input)
            .get(m.key.span.start..m.key.span.end)
            .unwrap_or_default();
        let first = self.w.first_byte(m.value);
        let replay = &plan.plan.replay;
        match replay.get(at, depth, raw) {
            Some(&Step {
                act:
                    Act::Leaf {
                        field,
                        kind,
                        outcome,
                    },
                ..
            }) if JsonType::of_first_byte(first) == kind => {
                plan.count(field, outcome);
                match outcome {
                    Outcome::Removed => {}
                    Outcome::Full => self.w.member(written, m.key, m.value),
                    Outcome::Masked => {
                        self.w.key(written, m.key);
                        let text = (self.w.text)
                            .get(m.value.start..m.value.end)
                            .unwrap_or_default();
                        write_masked(self.w, self.ctx.catalogue, field, text)?;
                    }
                }
                return Ok(());
            }
            Some(
                step @ &Step {
                    act: Act::Object, ..
                },
            ) if first == b'{' => {
                if let Some(child) = node.child(&m.name) {
                    let len = self.path.push_label(replay.label(step));
                    let mark = self.w.mark(*written);
                    self.w.key(written, m.key);
                    self.container(m, child, depth, written, mark)?;
                    self.path.truncate(len);
                    return Ok(());
                }
            }
            Some(&Step {
                act: Act::Other, ..
            }) => {
                return self.walk_member(m, node, depth, written).map(|_| ());
            }
            _ => {}
        }
        // Walked the ordinary way, and remembered (an object before its
        // members are).
        let act = if first == b'{' && node.child(&m.name).is_some_and(|c| c.field.is_none()) {
            Act::Object
        } else {
            Act::Other
        };
        if let Act::Object = act {
            self.remember(at, depth, raw, key_label(&m.name), act);
            return self.walk_member(m, node, depth, written).map(|_| ());
        }
        let act = self
            .walk_member(m, node, depth, written)?
            .unwrap_or(Act::Other);
        self.remember(at, depth, raw, "", act);
        Ok(())
    }

    fn remember(&mut self, at: usize, depth: usize, key: &[u8], label: &str, act: Act) {
        if let Some(plan) = &mut self.plan {
            plan.plan.replay.remember(at, depth, key, label, act);
        }
    }

    /// [`Self::member`] without replay: what a leaf's next value can
    /// replay, if anything.
    fn walk_member(
        &mut self,
        m: &Member<'_>,
        node: &FieldNode,
        depth: usize,
        written: &mut bool,
    ) -> Result<Option<Act>, Fail> {
        let (name, key, value) = (&*m.name, m.key, m.value);
        let mark = self.w.mark(*written);
        let Some(child) = node.child(name) else {
            let len = self.path.push_key(name);
            let on = self.ctx.onboarding;
            if on.pass {
                self.w.key(written, key);
            }
            let result = unnamed_member(
                self.w,
                self.ctx.report,
                on,
                self.scope,
                &mut self.path,
                Some(name),
                value,
                depth,
            );
            self.path.truncate(len);
            if on.pass && !result? {
                self.w.undo(mark, written);
            }
            return Ok(None);
        };
        self.w.key(written, key);
        if let Some(field) = child.field {
            let at = LeafAt {
                scope: self.scope,
                path: &mut self.path,
                key: Some(name),
            };
            let (kept, act) = leaf(
                self.w,
                self.ctx,
                self.plan.as_mut(),
                (field, at),
                value,
                depth,
            )?;
            if !kept {
                self.w.undo(mark, written);
            }
            return Ok(act);
        }
        let len = self.path.push_key(name);
        self.container(m, child, depth, written, mark)?;
        self.path.truncate(len);
        Ok(None)
    }

    /// The value of a member under the catalogued container `child` (its
    /// key written, its label pushed): redacted below, or taken back to
    /// `mark`.
    fn container(
        &mut self,
        m: &Member<'_>,
        child: &FieldNode,
        depth: usize,
        written: &mut bool,
        mark: (usize, bool),
    ) -> Result<(), Fail> {
        let value = m.value;
        let kept = match self.w.first_byte(value) {
            b'{' if !m.children.is_empty() => {
                self.object_read(m.children.clone(), child, depth)? == Emptied::No
            }
            b'{' => self.object(value.start, child, depth)? == Emptied::No,
            b'[' if all_objects(self.w, value.start, depth)? => {
                self.array(value.start, child, depth)?;
                true
            }
            _ => {
                // Not what the catalogue describes: a container is an
                // object or a list of objects.
                self.ctx
                    .report
                    .misshapen
                    .add(self.scope, self.path.as_str());
                false
            }
        };
        if !kept {
            self.w.undo(mark, written);
        }
        Ok(())
    }

    /// Writes the object at `pos` (enclosed by `depth` containers),
    /// redacted by `node`; says whether it had members and none is left
    /// (then the caller removes it: `"payment": {}` would only say that
    /// something was hidden).
    fn object(&mut self, pos: usize, node: &FieldNode, depth: usize) -> Result<Emptied, Fail> {
        let (input, text) = (self.w.input, self.w.text);
        let mut sc = Scanner::new(input, pos, depth, self.w.max_depth);
        sc.open_object()?;
        self.w.push(b'{');
        let (mut first, mut written, mut had) = (true, false, false);
        while let Some(key) = sc.member(&mut first)? {
            had = true;
            let m = Member {
                name: scan::text(text, key.span, key.escaped)?,
                key,
                value: sc.value()?,
                children: 0..0,
            };
            self.member(&m, node, depth + 1, &mut written)?;
        }
        self.w.push(b'}');
        Ok(if had && !written {
            Emptied::Yes
        } else {
            Emptied::No
        })
    }

    /// [`Self::object`] for an object whose members were read with the
    /// record (`children` of [`Self::nested`]): written without scanning it
    /// again.
    fn object_read(
        &mut self,
        children: std::ops::Range<u32>,
        node: &FieldNode,
        depth: usize,
    ) -> Result<Emptied, Fail> {
        let nested = self.nested;
        let members = nested
            .get(children.start as usize..children.end as usize)
            .unwrap_or_default();
        self.w.push(b'{');
        let mut written = false;
        for m in members {
            self.member(m, node, depth + 1, &mut written)?;
        }
        self.w.push(b'}');
        Ok(if !members.is_empty() && !written {
            Emptied::Yes
        } else {
            Emptied::No
        })
    }

    /// A list of objects under a catalogued container: each element is
    /// redacted by the same node, and keeps its place (an element emptied
    /// by removals stays `{}`).
    fn array(&mut self, pos: usize, node: &FieldNode, depth: usize) -> Result<(), Fail> {
        let mut sc = Scanner::new(self.w.input, pos, depth, self.w.max_depth);
        sc.open_array()?;
        self.w.push(b'[');
        let (mut first, mut written) = (true, false);
        while sc.element(&mut first)? {
            let value = sc.value()?;
            if written {
                self.w.push(b',');
            }
            written = true;
            self.object(value.start, node, depth + 1)?;
        }
        self.w.push(b']');
        Ok(())
    }
}

/// An unnamed member at `path` (its key pushed, and written when passed;
/// `key` is `None` for a list element): counted, its shape recorded when
/// the route observes (with the kinds its key holds), and its value
/// written when the route passes it, backstopped if the route has a
/// backstop. `depth`: the containers enclosing the value. Whether it
/// stays: passed, unless the backstop removes it for its key (nothing is
/// written then, and the caller takes back the key it wrote).
#[allow(
    clippy::too_many_arguments,
    reason = "the byte walk's state (writer, report, path, depth) travels as plain arguments"
)]
fn unnamed_member(
    w: &mut Writer<'_>,
    report: &mut FilterReport,
    on: Onboarding,
    scope: Scope,
    path: &mut NamePath,
    key: Option<&str>,
    value: Span,
    depth: usize,
) -> Result<bool, Fail> {
    report.unnamed.add(scope, path.as_str());
    if on.observe {
        observe_span(
            &mut report.observed,
            scope,
            path,
            w.text,
            value,
            depth,
            w.max_depth,
            key.map_or(DetectorSet::EMPTY, key_kinds),
        )?;
    }
    if on.backstops_unnamed() {
        if key.is_some_and(|k| backstop_removes_key(k, on.backstop, &mut report.backstop)) {
            return Ok(false);
        }
        copy_backstopped(
            &mut w.out,
            w.text,
            value,
            depth,
            w.max_depth,
            on.backstop,
            &mut report.backstop,
        )?;
    } else if on.pass {
        w.copy(value);
    }
    Ok(on.pass)
}

#[derive(PartialEq, Eq)]
enum Emptied {
    Yes,
    No,
}

/// The members of the record at `sc` (an object), and of its members
/// that are objects, read into `members` and `nested`.
fn read_members<'i>(
    sc: &mut Scanner<'_>,
    text: &'i str,
    keys: &mut KeysRead,
    members: &mut Vec<Member<'i>>,
    nested: &mut Vec<Member<'i>>,
) -> Result<(), Fail> {
    sc.open_object()?;
    let mut first = true;
    while let Some(key) = keys.next(sc, text.as_bytes(), &mut first)? {
        let name = scan::text(text, key.span, key.escaped)?;
        let (value, children) = if sc.peek() == Some(b'{') {
            collect_object(sc, text, keys, nested)?
        } else {
            (sc.value()?, 0..0)
        };
        members.push(Member {
            name,
            key,
            value,
            children,
        });
    }
    Ok(())
}

/// A record's keys as they are read: where the reading is in the keys
/// expected of it ([`ExpectedKeys`], the previous record's), and what it
/// found instead where they differ.
struct KeysRead {
    expected: ExpectedKeys,
    /// Keys read so far in this record, nested ones included.
    at: usize,
}

impl KeysRead {
    /// The next key of the open object at `sc` ([`Scanner::member`]).
    #[inline(always)]
    fn next(
        &mut self,
        sc: &mut Scanner<'_>,
        input: &[u8],
        first: &mut bool,
    ) -> Result<Option<Key>, ScanError> {
        let Some((key, expected)) = sc.member_expecting(first, &self.expected, self.at)? else {
            return Ok(None);
        };
        if !expected {
            // `"key":` without whitespace or escapes: what can be expected
            // (`remember` keeps nothing before the first record was read).
            let with_colon = (input.get(key.span.start..key.span.end + 1))
                .filter(|k| !key.escaped && k.last() == Some(&b':'));
            self.expected.remember(self.at, with_colon);
        }
        self.at += 1;
        Ok(Some(key))
    }
}

/// Reads the object at `sc` member by member into `nested` (validated
/// as [`Scanner::value`] would): its span, and where its members are.
fn collect_object<'i>(
    sc: &mut Scanner<'_>,
    text: &'i str,
    keys: &mut KeysRead,
    nested: &mut Vec<Member<'i>>,
) -> Result<(Span, std::ops::Range<u32>), Fail> {
    let start = sc.position();
    sc.open_object()?;
    let from = nested.len() as u32;
    let mut first = true;
    while let Some(key) = keys.next(sc, text.as_bytes(), &mut first)? {
        let name = scan::text(text, key.span, key.escaped)?;
        let value = sc.value()?;
        nested.push(Member {
            name,
            key,
            value,
            children: 0..0,
        });
    }
    let span = Span {
        start,
        end: sc.offset(),
    };
    Ok((span, from..nested.len() as u32))
}

/// Whether every element of the array at `pos` is an object.
fn all_objects(w: &Writer<'_>, pos: usize, depth: usize) -> Result<bool, Fail> {
    let mut sc = Scanner::new(w.input, pos, depth, w.max_depth);
    sc.open_array()?;
    let mut first = true;
    let mut all = true;
    while sc.element(&mut first)? {
        all &= sc.peek() == Some(b'{');
        sc.value()?;
    }
    Ok(all)
}

/// The value at `path` inside a record, given its members. A key on the
/// path that the record repeats is refused: the decision would rest on one
/// copy while a client may read the other.
fn member_path(
    text: &str,
    members: &[Member<'_>],
    nested: &[Member<'_>],
    path: &[String],
    max_depth: usize,
) -> Result<Option<Span>, Fail> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(m) = only(members, first)? else {
        return Ok(None);
    };
    let Some((second, below)) = rest.split_first() else {
        return Ok(Some(m.value));
    };
    if m.children.is_empty() {
        return lookup_path(text, m.value.start, 0, rest, max_depth);
    }
    // An object read with the record: its members are at hand.
    let children = nested
        .get(m.children.start as usize..m.children.end as usize)
        .unwrap_or_default();
    match only(children, second)? {
        Some(c) if below.is_empty() => Ok(Some(c.value)),
        Some(c) => lookup_path(text, c.value.start, 1, below, max_depth),
        None => Ok(None),
    }
}

/// The member named `key`; refused when there are several.
fn only<'m, 'i>(members: &'m [Member<'i>], key: &str) -> Result<Option<&'m Member<'i>>, Fail> {
    let mut found = None;
    for m in members {
        if same_bytes(m.name.as_bytes(), key.as_bytes()) {
            if found.is_some() {
                return Err(repeated(key));
            }
            found = Some(m);
        }
    }
    Ok(found)
}

fn repeated(key: &str) -> Fail {
    Fail::Filter(FilterError::Shape(format!(
        "a record repeats the key `{key}` its policies read"
    )))
}

/// The value at `path` below the value at `pos` (`None` when a step is
/// missing or not an object; refused when a step's key is repeated).
fn lookup_path(
    text: &str,
    pos: usize,
    depth: usize,
    path: &[String],
    max_depth: usize,
) -> Result<Option<Span>, Fail> {
    let input = text.as_bytes();
    let Some((first, rest)) = path.split_first() else {
        let mut sc = Scanner::new(input, pos, depth, max_depth);
        return Ok(Some(sc.value()?));
    };
    let mut sc = Scanner::new(input, pos, depth, max_depth);
    if sc.peek() != Some(b'{') {
        return Ok(None);
    }
    sc.open_object()?;
    let mut first_member = true;
    let mut found = None;
    while let Some(key) = sc.member(&mut first_member)? {
        let value = sc.value()?;
        if scan::text(text, key.span, key.escaped)? == first.as_str() {
            if found.is_some() {
                return Err(repeated(first));
            }
            found = Some(value);
        }
    }
    match found {
        Some(span) => lookup_path(text, span.start, depth + 1, rest, max_depth),
        None => Ok(None),
    }
}

/// The text of the (validated) string literal at `span`: decoded only
/// when it has escapes, else a slice of the body.
fn string_text(text: &str, span: Span) -> Result<Cow<'_, str>, ScanError> {
    let inner = text
        .as_bytes()
        .get(span.start + 1..span.end.saturating_sub(1))
        .ok_or(ScanError::Malformed)?;
    scan::text(text, span, inner.contains(&b'\\'))
}

/// A record attribute from its JSON value, as [`AttributeSource::extract`]
/// converts it (`None` when of the wrong type).
fn convert(text: &str, span: Span, source: &AttributeSource) -> Option<AttrValue> {
    let raw = text.as_bytes().get(span.start..span.end)?;
    match source.kind {
        AttributeKind::String | AttributeKind::Entity => {
            if raw.first() != Some(&b'"') {
                return None;
            }
            let value: Box<str> = string_text(text, span).ok()?.into();
            Some(match source.kind {
                AttributeKind::Entity => AttrValue::Entity(value),
                _ => AttrValue::Str(value),
            })
        }
        AttributeKind::Bool => match raw {
            b"true" => Some(AttrValue::Bool(true)),
            b"false" => Some(AttrValue::Bool(false)),
            _ => None,
        },
        // serde_json's `as_i64`: an integer literal within i64 (never a
        // float, even `1.0`).
        AttributeKind::Long => serde_json::from_slice::<serde_json::Value>(raw)
            .ok()?
            .as_i64()
            .map(AttrValue::Long),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::Decisions as Runtime;
    use crate::policy::RequestPrincipal;
    use crate::principal::{IdentitySource, Principal};
    use serde_json::{Value, json};
    use std::sync::OnceLock;

    fn runtime() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| crate::testing::reference().build())
    }

    /// Redacts `body` as `GET /customers` for a caller with `roles`.
    fn list_as(roles: &[&str], body: &[u8]) -> (Result<Vec<u8>, StreamError>, FilterReport) {
        list_with_mfa(roles, true, body)
    }

    fn list_with_mfa(
        roles: &[&str],
        mfa: bool,
        body: &[u8],
    ) -> (Result<Vec<u8>, StreamError>, FilterReport) {
        let rt = runtime();
        let route = rt
            .routes
            .iter()
            .find(|r| r.method == "GET" && r.template == "/customers")
            .unwrap();
        let who = Principal {
            id: "agent-7".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            mfa,
            purpose: None,
            attributes: Default::default(),
            source: IdentitySource::Jwt,
        };
        let rp = RequestPrincipal::new(&who, &route.action).unwrap();
        let mut decider = rt.engine.decider(&rp);
        let mut report = FilterReport::default();
        let rules = route.body_rules("all", &[]).unwrap();
        let out = redact(body, &rules, &mut decider, &rt.catalogue, &mut report, 64);
        (out, report)
    }

    fn list_json(roles: &[&str], body: &str) -> Value {
        let (out, _) = list_as(roles, body.as_bytes());
        serde_json::from_slice(&out.unwrap()).unwrap()
    }

    #[test]
    fn an_escaped_key_is_the_key_it_spells() {
        // `id_card_number` with its letters escaped must not slip through.
        let plain = list_json(
            &["support_agent"],
            r#"{"customers":[{"id":"c-1001","id_card_number":"110101199001011234"}]}"#,
        );
        let escaped = list_json(
            &["support_agent"],
            r#"{"customers":[{"id":"c-1001","\u0069d_card_number":"110101199001011234"}]}"#,
        );
        assert_ne!(
            plain["customers"][0]["id_card_number"],
            json!("110101199001011234")
        );
        assert_eq!(
            plain["customers"][0]["id_card_number"],
            escaped["customers"][0]["id_card_number"]
        );
    }

    #[test]
    fn every_copy_of_a_repeated_key_is_redacted() {
        let body = r#"{"customers":[{"id":"c-1001","id_card_number":"110101199001011234","name":"A","id_card_number":"220101199001015678"}]}"#;
        let (out, report) = list_as(&["support_agent"], body.as_bytes());
        let out = String::from_utf8(out.unwrap()).unwrap();
        assert!(!out.contains("110101199001011234"), "{out}");
        assert!(!out.contains("220101199001015678"), "{out}");
        let counted: u32 = report
            .outcomes
            .iter()
            .filter(|((f, _), _)| runtime().catalogue.field(*f).path == "id_card_number")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, 2);
    }

    #[test]
    fn a_record_repeating_a_key_its_decision_reads_is_refused() {
        for body in [
            r#"{"customers":[{"id":"c-1001","name":"A","id":"c-1002"}]}"#,
            r#"{"customers":[{"id":"c-1001","consent":{"marketing":true,"marketing":false}}]}"#,
        ] {
            let (out, _) = list_as(&["support_agent"], body.as_bytes());
            assert!(
                matches!(&out, Err(StreamError::Filter(FilterError::Shape(m))) if m.contains("repeats")),
                "{body}: {out:?}"
            );
        }
    }

    #[test]
    fn visible_values_keep_their_exact_bytes() {
        // A float and an integer beyond f64 precision would change in a
        // parse-and-serialise round trip; copied spans do not.
        for total in ["1.50E+2", "12345678901234567890123"] {
            let body = format!(
                r#"{{"customers":[{{"id":"c-1001","name":"\u00e9\/","gender":"F"}}],"total":{total}}}"#
            );
            let (out, _) = list_as(&["support_agent"], body.as_bytes());
            assert_eq!(String::from_utf8(out.unwrap()).unwrap(), body);
        }
    }

    #[test]
    fn hidden_records_are_dropped_from_the_list() {
        // A caller with no role sees no customer at all.
        let v = list_json(
            &[],
            r#"{"customers":[{"id":"c-1001","name":"A"},{"id":"c-1002"}],"x":1}"#,
        );
        assert_eq!(v, json!({"customers": []}));
    }

    #[test]
    fn what_the_catalogue_does_not_name_is_removed_at_any_depth() {
        let (out, report) = list_as(
            &["support_agent"],
            br#"{"customers":[{"id":"c-1001","name":"A","nickname":"x","address":{"city":"X","id_card_number":"110101199001010011"}}],"total":1,"page":{"next":2},"13900131001":{"a":1}}"#,
        );
        let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"customers":[{"id":"c-1001","name":"A","address":{"city":"X"}}],"total":1})
        );
        let names: Vec<(String, String)> = report
            .unnamed
            .sorted()
            .into_iter()
            .map(|(s, p, _)| (runtime().catalogue.scope_name(s).to_string(), p.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("Customer", "address.id_card_number"),
                ("Customer", "nickname"),
                ("(wrapper)", "$.?"),
                ("(wrapper)", "$.page"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_value_of_another_shape_is_removed_whoever_may_read_the_field() {
        for address in [
            r#""Beijing""#,
            "7",
            r#"["a","b"]"#,
            r#"[{"city":"X"},"b"]"#,
            "null",
        ] {
            let body = format!(r#"{{"customers":[{{"id":"c-1001","address":{address}}}]}}"#);
            let v = list_json(&["data_protection_officer"], &body);
            assert_eq!(v, json!({"customers":[{"id":"c-1001"}]}), "{address}");
        }
        // A list of objects is what the catalogue describes: kept, redacted.
        let v = list_json(
            &["support_agent"],
            r#"{"customers":[{"id":"c-1001","address":[{"city":"X","street":"S"},{"zip":1}]}]}"#,
        );
        assert_eq!(v["customers"][0]["address"], json!([{"city":"X"},{}]));
        // `phone` (a string) sent as an object or a list: removed for
        // every caller, even the DPO who may read it in full, and counted
        // as misshapen; as a string it is masked or shown as decided.
        for phone in [
            r#"{"number":"+86 139 0013 1001"}"#,
            r#"["+86 139 0013 1001"]"#,
        ] {
            let body = format!(r#"{{"customers":[{{"id":"c-1001","phone":{phone}}}]}}"#);
            for roles in [&["support_agent"][..], &["data_protection_officer"]] {
                let (out, report) = list_with_mfa(roles, true, body.as_bytes());
                let out: Value = serde_json::from_slice(&out.unwrap()).unwrap();
                assert_eq!(out["customers"][0].get("phone"), None, "{roles:?} {phone}");
                let named: Vec<_> = report
                    .misshapen
                    .sorted()
                    .iter()
                    .map(|e| e.1.to_string())
                    .collect();
                assert_eq!(named, ["phone"], "{roles:?} {phone}");
            }
        }
        let masked = r#"{"customers":[{"id":"c-1001","phone":"+86 139 0013 1001"}]}"#;
        let (agent, report) = list_with_mfa(&["support_agent"], false, masked.as_bytes());
        let agent: Value = serde_json::from_slice(&agent.unwrap()).unwrap();
        assert_eq!(agent["customers"][0]["phone"], json!("+86************01"));
        assert!(report.misshapen.is_empty());
        let dpo = list_json(&["data_protection_officer"], masked);
        assert_eq!(dpo["customers"][0]["phone"], json!("+86 139 0013 1001"));
        // `null` carries nothing: it stays.
        let null = r#"{"customers":[{"id":"c-1001","phone":null}]}"#;
        let dpo = list_json(&["data_protection_officer"], null);
        assert_eq!(dpo["customers"][0]["phone"], Value::Null);
    }

    #[test]
    fn malformed_and_misshapen_bodies_are_refused() {
        for body in [
            &br#"{"customers":[{"id":"c-1001"}]"#[..],
            br#"{"customers":[{"id":"c-1001",}]}"#,
            b"{\"customers\":[{\"id\":\"\xff\"}]}",
            br#"{"customers":[]} trailing"#,
        ] {
            assert_eq!(
                list_as(&["support_agent"], body).0,
                Err(StreamError::Unreadable)
            );
        }
        for body in [&br#"{"users":[]}"#[..], br#"{"customers":[1]}"#, br#"[]"#] {
            assert!(matches!(
                list_as(&["support_agent"], body).0,
                Err(StreamError::Filter(FilterError::Shape(_)))
            ));
        }
        let deep = format!("{{\"customers\":[{{\"x\":{}}}]}}", "[".repeat(100));
        assert_eq!(
            list_as(&["support_agent"], deep.as_bytes()).0,
            Err(StreamError::Unreadable)
        );
    }
}
