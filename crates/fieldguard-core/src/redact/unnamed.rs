//! Onboarding aids of both redactors, for values the configuration does
//! not describe: what an observing route records about unnamed members
//! (their paths, JSON types and the kinds of personal data their values
//! look like; counts, never values) and the backstop that masks detector
//! matches in passed unnamed members and `free_text` fields.
//!
//! Each has a tree form (over a `serde_json::Value`, for the reference
//! walk) and a byte form (over a span of the body, for the byte
//! redactor); the property tests hold the two equal.

use super::plan::NamePath;
use super::scan::{self, ScanError, Scanner, Span};
use crate::catalogue::FieldNode;
use crate::catalogue::Scope;
use crate::detect::{self, DetectorCounts, DetectorSet};
use serde_json::Value;

pub(crate) use crate::config::JsonType;

/// One observed place: where, its JSON type, how often, and how often
/// each detector matched its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEntry {
    pub scope: Scope,
    /// As [`super::plan::key_label`] names it (`emergency.phone`, `$.page`).
    pub path: Box<str>,
    pub json_type: JsonType,
    pub count: u32,
    pub detected: DetectorCounts,
}

/// What one body's unnamed members looked like, bounded like
/// [`super::report::NameCounts`]: a hostile upstream cannot make it grow
/// with the keys it invents. Equal when the same entries were counted, in
/// whatever order.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    entries: Vec<ObservedEntry>,
    /// Values of further places once [`Observed::MAX_ENTRIES`] are held.
    pub overflow: u32,
}

impl Observed {
    pub const MAX_ENTRIES: usize = 128;

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.overflow == 0
    }

    /// Counts one value of type `json_type` at `path`, matched by `detected`.
    pub fn add(&mut self, scope: Scope, path: &str, json_type: JsonType, detected: DetectorSet) {
        let entry = match self
            .entries
            .iter_mut()
            .position(|e| e.scope == scope && e.json_type == json_type && *e.path == *path)
        {
            Some(at) => &mut self.entries[at],
            None if self.entries.len() < Self::MAX_ENTRIES => {
                self.entries.push(ObservedEntry {
                    scope,
                    path: Box::from(path),
                    json_type,
                    count: 0,
                    detected: DetectorCounts::default(),
                });
                let last = self.entries.len() - 1;
                &mut self.entries[last]
            }
            None => {
                self.overflow = self.overflow.saturating_add(1);
                return;
            }
        };
        entry.count = entry.count.saturating_add(1);
        for d in detected.iter() {
            entry.detected.add(d, 1);
        }
    }

    /// The entries, sorted by scope, path and type.
    pub fn sorted(&self) -> Vec<&ObservedEntry> {
        let mut v: Vec<&ObservedEntry> = self.entries.iter().collect();
        v.sort_unstable_by(|a, b| {
            (a.scope, &a.path, a.json_type).cmp(&(b.scope, &b.path, b.json_type))
        });
        v
    }
}

impl PartialEq for Observed {
    fn eq(&self, other: &Self) -> bool {
        self.overflow == other.overflow && self.sorted() == other.sorted()
    }
}

impl Eq for Observed {}

/// Records an unnamed member's value at `path`: an object by its members,
/// a non-empty list of objects by its elements' members (at the same path,
/// as the catalogue names them), anything else as one value. `named_by`:
/// the detectors matching the key the value is under ([`key_kinds`]),
/// counted at its place as if its value had matched them (a container
/// named by personal data is recorded at its own place for them).
pub(super) fn observe_value(
    obs: &mut Observed,
    scope: Scope,
    path: &mut NamePath,
    v: &Value,
    named_by: DetectorSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if !named_by.is_empty() {
                obs.add(scope, path.as_str(), JsonType::Object, named_by);
            }
            for (key, x) in m {
                let kinds = key_kinds(key);
                let len = path.push_key(key);
                observe_value(obs, scope, path, x, kinds);
                path.truncate(len);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            if !named_by.is_empty() {
                obs.add(scope, path.as_str(), JsonType::Array, named_by);
            }
            for item in items {
                observe_value(obs, scope, path, item, DetectorSet::EMPTY);
            }
        }
        Value::Array(items) => {
            let detected = items
                .iter()
                .fold(named_by, |set, x| set.union(scalar_kinds(x)));
            obs.add(scope, path.as_str(), JsonType::Array, detected);
        }
        other => obs.add(
            scope,
            path.as_str(),
            JsonType::of(other),
            scalar_kinds(other).union(named_by),
        ),
    }
}

/// The detectors matching an object key: personal data used as a key (a
/// map keyed by phone number or e-mail address) is personal data.
pub(super) fn key_kinds(key: &str) -> DetectorSet {
    detect::detect(key, DetectorSet::all())
}

/// The detectors matching a scalar (strings, and numbers in any notation);
/// none for anything else.
fn scalar_kinds(v: &Value) -> DetectorSet {
    match v {
        Value::String(s) => detect::detect(s, DetectorSet::all()),
        Value::Number(n) => detect::detect_number(&n.to_string(), DetectorSet::all()),
        _ => DetectorSet::EMPTY,
    }
}

/// The byte form of [`observe_value`]: the value at `span` of `text`,
/// enclosed by `depth` containers.
#[allow(
    clippy::too_many_arguments,
    reason = "the byte walk's state (input, depth, report) travels as plain arguments, as in the stream redactor"
)]
pub(super) fn observe_span(
    obs: &mut Observed,
    scope: Scope,
    path: &mut NamePath,
    text: &str,
    span: Span,
    depth: usize,
    max_depth: usize,
    named_by: DetectorSet,
) -> Result<(), ScanError> {
    let input = text.as_bytes();
    let first = input.get(span.start).copied().unwrap_or(b'n');
    match first {
        b'{' => {
            let mut sc = Scanner::new(input, span.start, depth, max_depth);
            sc.open_object()?;
            let mut first_member = true;
            let mut had = false;
            while let Some(key) = sc.member(&mut first_member)? {
                if !had && !named_by.is_empty() {
                    obs.add(scope, path.as_str(), JsonType::Object, named_by);
                }
                had = true;
                let name = scan::text(text, key.span, key.escaped)?;
                let value = sc.value()?;
                let kinds = key_kinds(&name);
                let len = path.push_key(&name);
                observe_span(obs, scope, path, text, value, depth + 1, max_depth, kinds)?;
                path.truncate(len);
            }
            if !had {
                obs.add(scope, path.as_str(), JsonType::Object, named_by);
            }
        }
        b'[' => {
            let (mut all_objects, mut any) = (true, false);
            let mut detected = named_by;
            for_each_element(input, span, depth, max_depth, |v| {
                any = true;
                all_objects &= input.get(v.start) == Some(&b'{');
                detected = detected.union(span_kinds(text, v)?);
                Ok(())
            })?;
            if any && all_objects {
                if !named_by.is_empty() {
                    obs.add(scope, path.as_str(), JsonType::Array, named_by);
                }
                for_each_element(input, span, depth, max_depth, |v| {
                    let none = DetectorSet::EMPTY;
                    observe_span(obs, scope, path, text, v, depth + 1, max_depth, none)
                })?;
            } else {
                obs.add(scope, path.as_str(), JsonType::Array, detected);
            }
        }
        b => obs.add(
            scope,
            path.as_str(),
            JsonType::of_first_byte(b),
            span_kinds(text, span)?.union(named_by),
        ),
    }
    Ok(())
}

fn for_each_element(
    input: &[u8],
    span: Span,
    depth: usize,
    max_depth: usize,
    mut f: impl FnMut(Span) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut sc = Scanner::new(input, span.start, depth, max_depth);
    sc.open_array()?;
    let mut first = true;
    while sc.element(&mut first)? {
        f(sc.value()?)?;
    }
    Ok(())
}

/// The byte form of [`scalar_kinds`].
fn span_kinds(text: &str, span: Span) -> Result<DetectorSet, ScanError> {
    let raw = text
        .as_bytes()
        .get(span.start..span.end)
        .unwrap_or_default();
    Ok(match raw.first() {
        Some(b'"') => {
            let s = scan::text(text, span, raw.contains(&b'\\'))?;
            detect::detect(&s, DetectorSet::all())
        }
        Some(b'-' | b'0'..=b'9') => detect::detect_number(
            text.get(span.start..span.end).unwrap_or(""),
            DetectorSet::all(),
        ),
        _ => DetectorSet::EMPTY,
    })
}

/// Whether the backstop removes the member under `key`: the key holds a
/// match of `set` (counted by detector, as a masked value's are). A key
/// cannot be masked in place (two masked keys could collide, and a
/// client reading the object by key would read a different member), so
/// the member goes, value and all.
pub(super) fn backstop_removes_key(
    key: &str,
    set: DetectorSet,
    counts: &mut DetectorCounts,
) -> bool {
    detect::mask(key, set, counts).is_some()
}

/// The backstop over a value in place: every string and number in it with
/// the matches of `set` masked (a matching number becomes a string of
/// `*`), and every member whose key matches removed
/// ([`backstop_removes_key`]), counted by detector. A number is read as
/// serde_json holds it (an integer, or a float's shortest form): the same
/// as the byte form reads it for every number serde_json writes, but a
/// float written with more than 17 significant digits (`1.10101199001010015e17`)
/// is read exactly only by the byte form, which the proxy uses.
pub(super) fn backstop_value(v: &mut Value, set: DetectorSet, counts: &mut DetectorCounts) {
    match v {
        Value::String(s) => {
            if let Some(masked) = detect::mask(s, set, counts) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            if let Some(masked) = detect::mask_number(&n.to_string(), set, counts) {
                *v = Value::String(masked);
            }
        }
        Value::Array(items) => {
            for x in items {
                backstop_value(x, set, counts);
            }
        }
        Value::Object(m) => m.retain(|key, x| {
            if backstop_removes_key(key, set, counts) {
                return false;
            }
            backstop_value(x, set, counts);
            true
        }),
        _ => {}
    }
}

/// The byte form of [`backstop_value`]: writes the value at `span` to
/// `out` with the matches of `set` masked (a masked number becomes a
/// string) and the members with a matching key left out; unchanged spans
/// are copied as they were.
pub(super) fn copy_backstopped(
    out: &mut Vec<u8>,
    text: &str,
    span: Span,
    depth: usize,
    max_depth: usize,
    set: DetectorSet,
    counts: &mut DetectorCounts,
) -> Result<(), ScanError> {
    let input = text.as_bytes();
    let raw = input.get(span.start..span.end).unwrap_or_default();
    match raw.first() {
        Some(b'{') => {
            let mut sc = Scanner::new(input, span.start, depth, max_depth);
            sc.open_object()?;
            out.push(b'{');
            let mut first = true;
            let mut written = false;
            while let Some(key) = sc.member(&mut first)? {
                let value = sc.value()?;
                let name = scan::text(text, key.span, key.escaped)?;
                if backstop_removes_key(&name, set, counts) {
                    continue;
                }
                if written {
                    out.push(b',');
                }
                written = true;
                out.extend_from_slice(input.get(key.span.start..key.span.end).unwrap_or_default());
                out.push(b':');
                copy_backstopped(out, text, value, depth + 1, max_depth, set, counts)?;
            }
            out.push(b'}');
        }
        Some(b'[') => {
            let mut sc = Scanner::new(input, span.start, depth, max_depth);
            sc.open_array()?;
            out.push(b'[');
            let mut first = true;
            let mut written = false;
            while sc.element(&mut first)? {
                let value = sc.value()?;
                if written {
                    out.push(b',');
                }
                written = true;
                copy_backstopped(out, text, value, depth + 1, max_depth, set, counts)?;
            }
            out.push(b']');
        }
        Some(b'"') => {
            let s = scan::text(text, span, raw.contains(&b'\\'))?;
            match detect::mask(&s, set, counts) {
                Some(masked) => {
                    serde_json::to_writer(&mut *out, &masked).map_err(|_| ScanError::Malformed)?
                }
                None => out.extend_from_slice(raw),
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            let number = text.get(span.start..span.end).unwrap_or("");
            match detect::mask_number(number, set, counts) {
                Some(masked) => {
                    serde_json::to_writer(&mut *out, &masked).map_err(|_| ScanError::Malformed)?
                }
                None => out.extend_from_slice(raw),
            }
        }
        _ => out.extend_from_slice(raw),
    }
    Ok(())
}

/// What a route's plan asks of the redactors beyond field decisions (for
/// unnamed members, free-text fields and values of the wrong kind),
/// copied into each record's context.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Onboarding {
    pub observe: bool,
    /// Unnamed members are passed (`unknown_fields: pass`).
    pub pass: bool,
    pub backstop: DetectorSet,
    /// A catalogued value of the wrong kind refuses the answer.
    pub refuse_misshapen: bool,
}

impl Onboarding {
    pub(super) fn of(plan: &super::plan::ResponsePlan) -> Self {
        Self {
            observe: plan.observe,
            pass: plan.unknown == crate::config::UnknownFields::Pass,
            backstop: plan.backstop,
            refuse_misshapen: plan.refuse_misshapen,
        }
    }

    /// Whether a passed unnamed member is scanned by the backstop.
    pub(super) fn backstops_unnamed(self) -> bool {
        self.pass && !self.backstop.is_empty()
    }
}

/// Records the unnamed members of a record the caller may not see (it is
/// dropped whole, so its members were never walked): what a record holds
/// does not depend on who asked, and a route in shadow mode under a
/// baseline that permits nothing must still show what its records hold.
/// Catalogued containers are descended as the visible walk descends them
/// (an object, or a list of objects); catalogued leaves are skipped.
pub(super) fn observe_hidden(
    obs: &mut Observed,
    scope: Scope,
    path: &mut NamePath,
    map: &serde_json::Map<String, Value>,
    node: &FieldNode,
) {
    for (key, value) in map {
        let len = path.push_key(key);
        match node.child(key) {
            None => observe_value(obs, scope, path, value, key_kinds(key)),
            Some(child) if child.field.is_none() => match value {
                Value::Object(m) => observe_hidden(obs, scope, path, m, child),
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    for item in items {
                        if let Value::Object(m) = item {
                            observe_hidden(obs, scope, path, m, child);
                        }
                    }
                }
                _ => {}
            },
            Some(_) => {}
        }
        path.truncate(len);
    }
}

/// The byte form of [`observe_hidden`], one member (`name`, its value at
/// `value`, enclosed by `depth` containers) of an object whose catalogue
/// node is `node`.
#[allow(
    clippy::too_many_arguments,
    reason = "the byte walk's state (input, depth, catalogue node, report) travels as plain arguments, as in the stream redactor"
)]
pub(super) fn observe_hidden_member(
    obs: &mut Observed,
    scope: Scope,
    path: &mut NamePath,
    text: &str,
    name: &str,
    value: Span,
    node: &FieldNode,
    depth: usize,
    max_depth: usize,
) -> Result<(), ScanError> {
    let len = path.push_key(name);
    let input = text.as_bytes();
    let result = match node.child(name) {
        None => {
            let kinds = key_kinds(name);
            observe_span(obs, scope, path, text, value, depth, max_depth, kinds)
        }
        Some(child) if child.field.is_none() => match input.get(value.start) {
            Some(b'{') => {
                observe_hidden_object(obs, scope, path, text, value, child, depth, max_depth)
            }
            Some(b'[') => {
                let mut all_objects = true;
                for_each_element(input, value, depth, max_depth, |v| {
                    all_objects &= input.get(v.start) == Some(&b'{');
                    Ok(())
                })
                .and_then(|()| {
                    if !all_objects {
                        return Ok(());
                    }
                    for_each_element(input, value, depth, max_depth, |v| {
                        observe_hidden_object(
                            obs,
                            scope,
                            path,
                            text,
                            v,
                            child,
                            depth + 1,
                            max_depth,
                        )
                    })
                })
            }
            _ => Ok(()),
        },
        Some(_) => Ok(()),
    };
    path.truncate(len);
    result
}

/// The members of the object at `span` (enclosed by `depth` containers).
#[allow(
    clippy::too_many_arguments,
    reason = "the byte walk's state (input, depth, catalogue node, report) travels as plain arguments, as in the stream redactor"
)]
fn observe_hidden_object(
    obs: &mut Observed,
    scope: Scope,
    path: &mut NamePath,
    text: &str,
    span: Span,
    node: &FieldNode,
    depth: usize,
    max_depth: usize,
) -> Result<(), ScanError> {
    let mut sc = Scanner::new(text.as_bytes(), span.start, depth, max_depth);
    sc.open_object()?;
    let mut first = true;
    while let Some(key) = sc.member(&mut first)? {
        let name = scan::text(text, key.span, key.escaped)?;
        let value = sc.value()?;
        observe_hidden_member(
            obs,
            scope,
            path,
            text,
            &name,
            value,
            node,
            depth + 1,
            max_depth,
        )?;
    }
    Ok(())
}
