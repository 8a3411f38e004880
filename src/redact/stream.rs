//! Response redaction from bytes to bytes, without building a tree.
//!
//! Parsing a body into a `serde_json::Value` and serialising it again cost
//! more than every policy decision of a list (one allocation per string,
//! key and object), while most of a body passes through unchanged. This
//! redactor walks the body once with [`Scanner`], copies every span the
//! caller may see verbatim (numbers and strings keep their exact bytes),
//! and rewrites only what changes: records the caller may not see are
//! dropped, fields are removed, and masked fields are decoded, masked and
//! re-encoded one value at a time.
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

use super::response::{FilterError, FilterReport, RecordCtx};
use super::scan::{self, Key, ScanError, Scanner, Span};
use super::{Outcome, RecordSelector};
use crate::catalogue::{AttrValue, AttributeSource, Catalogue, FieldNode, Step};
use crate::config::AttributeKind;
use crate::policy::{Decider, FieldAction};
use smallvec::SmallVec;
use std::borrow::Cow;

/// Why a body was not redacted. Either way nothing of it is passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// Not JSON (or nested too deeply).
    Unreadable,
    /// Valid JSON that the route's selectors do not fit, or a single
    /// record the caller may not read.
    Filter(FilterError),
}

/// Redacts `input` for the caller of `decider`, selector by selector.
pub fn redact(
    input: &[u8],
    selectors: &[RecordSelector],
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    report: &mut FilterReport,
    max_depth: usize,
) -> Result<Vec<u8>, StreamError> {
    let text = std::str::from_utf8(input).map_err(|_| StreamError::Unreadable)?;
    let mut current: Option<Vec<u8>> = None;
    for sel in selectors {
        // The output of a pass is JSON this module wrote: UTF-8 again.
        let source = match &current {
            Some(out) => std::str::from_utf8(out).map_err(|_| StreamError::Unreadable)?,
            None => text,
        };
        let pass = Pass {
            w: Writer {
                input: source.as_bytes(),
                text: source,
                out: Vec::with_capacity(source.len()),
                max_depth,
            },
            sel,
            decider: &mut *decider,
            catalogue,
            report: &mut *report,
            root_values: Vec::new(),
            members: Vec::new(),
            forbidden: false,
        };
        let out = pass.run().map_err(|e| match e {
            // A malformed body is unreadable whatever else is wrong with it.
            Fail::Filter(_) if scan::validate(source.as_bytes(), max_depth).is_err() => {
                StreamError::Unreadable
            }
            Fail::Filter(f) => StreamError::Filter(f),
            Fail::Scan => StreamError::Unreadable,
        })?;
        current = Some(out);
    }
    match current {
        Some(out) => Ok(out),
        None => {
            scan::validate(input, max_depth).map_err(|_| StreamError::Unreadable)?;
            Ok(input.to_vec())
        }
    }
}

enum Fail {
    /// Malformed or too deep: the body is unreadable.
    Scan,
    Filter(FilterError),
}

impl From<ScanError> for Fail {
    fn from(_: ScanError) -> Self {
        Fail::Scan
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Resolve {
    Found,
    Missing,
}

impl Resolve {
    fn found_if(found: bool) -> Self {
        if found {
            Resolve::Found
        } else {
            Resolve::Missing
        }
    }
}

/// The output being written and the input it copies from.
struct Writer<'i> {
    input: &'i [u8],
    /// The same input, as the `str` it was checked to be.
    text: &'i str,
    out: Vec<u8>,
    max_depth: usize,
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
    #[inline]
    fn key(&mut self, written: &mut bool, key: Key) {
        if *written {
            self.out.push(b',');
        }
        *written = true;
        self.copy(key.span);
        self.out.push(b':');
    }
}

/// A member of the record being redacted, its key decoded once.
struct Member<'i> {
    name: Cow<'i, str>,
    key: Key,
    value: Span,
}

/// One selector applied to one body.
struct Pass<'i, 'c, 'd> {
    w: Writer<'i>,
    sel: &'c RecordSelector,
    decider: &'c mut Decider<'d>,
    catalogue: &'c Catalogue,
    report: &'c mut FilterReport,
    /// Attribute values read from the document root (by source index).
    root_values: Vec<Option<AttrValue>>,
    /// The current record's members (reused across records).
    members: Vec<Member<'i>>,
    /// A single-record body whose record the caller may not see.
    forbidden: bool,
}

impl Pass<'_, '_, '_> {
    fn run(mut self) -> Result<Vec<u8>, Fail> {
        let input = self.w.input;
        let text = self.w.text;
        let max_depth = self.w.max_depth;
        self.root_values = self
            .sel
            .attributes
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
            .collect::<Result<_, Fail>>()?;

        let mut sc = Scanner::new(input, 0, 0, max_depth);
        let steps = &self.sel.path.steps;
        // A missing step stops the walk where it is; `redact` then tells
        // a malformed body from a misshapen one.
        if self.walk(&mut sc, steps)? == Resolve::Missing {
            return Err(Fail::Filter(FilterError::Shape(format!(
                "no records at `{}`",
                self.sel.path.text
            ))));
        }
        sc.finish()?;
        if self.forbidden {
            return Err(Fail::Filter(FilterError::Forbidden));
        }
        Ok(self.w.out)
    }

    /// Copies the value at `sc` to the output, redacting the records the
    /// remaining `steps` lead to.
    fn walk(&mut self, sc: &mut Scanner<'_>, steps: &[Step]) -> Result<Resolve, Fail> {
        let Some((step, rest)) = steps.split_first() else {
            // A record that is not a list element: hidden means null in
            // its place (the tree walk does the same).
            if !self.record(sc)? {
                self.w.out.extend_from_slice(b"null");
            }
            return Ok(Resolve::Found);
        };
        let text = self.w.text;
        match step {
            Step::Key(name) => {
                if sc.peek() != Some(b'{') {
                    return Ok(Resolve::Missing);
                }
                sc.open_object()?;
                self.w.push(b'{');
                let (mut first, mut written, mut found) = (true, false, false);
                while let Some(key) = sc.member(&mut first)? {
                    self.w.key(&mut written, key);
                    let named = scan::text(text, key.span, key.escaped)? == name.as_str();
                    found |= named;
                    if self.child(sc, named, rest)? == Resolve::Missing {
                        return Ok(Resolve::Missing);
                    }
                }
                self.w.push(b'}');
                Ok(Resolve::found_if(found))
            }
            Step::Index(at) => {
                if sc.peek() != Some(b'[') {
                    return Ok(Resolve::Missing);
                }
                sc.open_array()?;
                self.w.push(b'[');
                let (mut first, mut index) = (true, 0usize);
                let mut found = false;
                while sc.element(&mut first)? {
                    if index > 0 {
                        self.w.push(b',');
                    }
                    let named = index == *at;
                    found |= named;
                    if self.child(sc, named, rest)? == Resolve::Missing {
                        return Ok(Resolve::Missing);
                    }
                    index += 1;
                }
                self.w.push(b']');
                Ok(Resolve::found_if(found))
            }
            Step::Each => {
                if sc.peek() != Some(b'[') {
                    return Ok(Resolve::Missing);
                }
                sc.open_array()?;
                self.w.push(b'[');
                let (mut first, mut written) = (true, false);
                while sc.element(&mut first)? {
                    let mark = self.w.out.len();
                    if written {
                        self.w.push(b',');
                    }
                    if rest.is_empty() {
                        // A list element: a hidden record is dropped.
                        if self.record(sc)? {
                            written = true;
                        } else {
                            self.w.out.truncate(mark);
                        }
                    } else {
                        written = true;
                        if self.walk(sc, rest)? == Resolve::Missing {
                            return Ok(Resolve::Missing);
                        }
                    }
                }
                self.w.push(b']');
                Ok(Resolve::Found)
            }
        }
    }

    /// The member or element at `sc`: walked into when the step names it,
    /// else copied as is.
    fn child(&mut self, sc: &mut Scanner<'_>, named: bool, rest: &[Step]) -> Result<Resolve, Fail> {
        if named {
            return self.walk(sc, rest);
        }
        let v = sc.value()?;
        self.w.copy(v);
        Ok(Resolve::Found)
    }

    /// Redacts the record at `sc` into the output; `false` (nothing
    /// written) when the caller may not see it at all.
    fn record(&mut self, sc: &mut Scanner<'_>) -> Result<bool, Fail> {
        self.report.records += 1;
        if sc.peek() != Some(b'{') {
            return Err(Fail::Filter(FilterError::Shape(format!(
                "a record at `{}` is not a JSON object",
                self.sel.path.text
            ))));
        }
        let depth = sc.depth() + 1;
        let mut members = std::mem::take(&mut self.members);
        members.clear();
        sc.open_object()?;
        let mut first = true;
        while let Some(key) = sc.member(&mut first)? {
            let value = sc.value()?;
            members.push(Member {
                name: scan::text(self.w.text, key.span, key.escaped)?,
                key,
                value,
            });
        }
        let shown = self.show_record(&members, depth);
        self.members = members;
        let shown = shown?;
        if !shown {
            self.report.records_dropped += 1;
            if self.sel.path.is_single() {
                self.forbidden = true;
            }
        }
        Ok(shown)
    }

    fn show_record(&mut self, members: &[Member<'_>], depth: usize) -> Result<bool, Fail> {
        let input = self.w.input;
        let text = self.w.text;
        let sel = self.sel;
        let entity = &sel.entity;
        let mut values: SmallVec<[AttrValue; 4]> = SmallVec::new();
        for (source, root) in sel.attributes.iter().zip(&self.root_values) {
            let value = if source.from_root {
                root.clone()
            } else {
                member_path(text, members, &source.path, self.w.max_depth)?
                    .and_then(|span| convert(text, span, source))
                    .or_else(|| source.default.clone())
            };
            match value {
                Some(v) => values.push(v),
                None => {
                    tracing::warn!(entity = %entity.name, "record lacks a configured attribute; hidden");
                    return Ok(false);
                }
            }
        }
        let id: Cow<'_, str> = match &entity.id_field {
            Some(path) => match member_path(text, members, path, self.w.max_depth)? {
                Some(span) if input.get(span.start) == Some(&b'"') => scan::text(text, span, true)?,
                _ => Cow::Borrowed(""),
            },
            None => Cow::Borrowed(""),
        };
        let resource = sel.resource(&id, &values);
        let mut ctx = RecordCtx::new(
            &mut *self.decider,
            self.catalogue,
            resource,
            &mut *self.report,
        );
        let visible = ctx.allowed(FieldAction::RecordRead, None);
        ctx.trace_record(visible);
        if !visible {
            return Ok(false);
        }
        self.w.push(b'{');
        let mut written = false;
        for m in members {
            let at = &entity.root;
            member(
                &mut self.w,
                &mut ctx,
                &m.name,
                m.key,
                m.value,
                at,
                depth,
                &mut written,
            )?;
        }
        self.w.push(b'}');
        Ok(true)
    }
}

/// Writes one member of an object whose catalogue node is `node`: as is,
/// masked, redacted below, or not at all.
#[allow(clippy::too_many_arguments)]
fn member(
    w: &mut Writer<'_>,
    ctx: &mut RecordCtx<'_, '_>,
    name: &str,
    key: Key,
    value: Span,
    node: &FieldNode,
    depth: usize,
    written: &mut bool,
) -> Result<(), Fail> {
    let Some(child) = node.child(name) else {
        w.key(written, key);
        w.copy(value);
        return Ok(());
    };
    if let Some(field) = child.field {
        match ctx.field_outcome(field) {
            Outcome::Full => {}
            Outcome::Removed => return Ok(()),
            Outcome::Masked => {
                w.key(written, key);
                let raw = w.input.get(value.start..value.end).unwrap_or_default();
                let original: serde_json::Value =
                    serde_json::from_slice(raw).map_err(|_| ScanError::Malformed)?;
                let masked = match &ctx.catalogue.field(field).mask {
                    Some(mask) => mask.apply(&original),
                    None => original,
                };
                serde_json::to_writer(&mut w.out, &masked).map_err(|_| ScanError::Malformed)?;
                return Ok(());
            }
        }
    }
    if child.children.is_empty() {
        w.key(written, key);
        w.copy(value);
        return Ok(());
    }
    let (mark, written_before) = (w.out.len(), *written);
    w.key(written, key);
    match w.input.get(value.start) {
        Some(b'{') => {
            // An object emptied by removals goes too: `"payment": {}`
            // would only say that something was hidden.
            if object(w, ctx, value.start, child, depth)? == Emptied::Yes {
                w.out.truncate(mark);
                *written = written_before;
            }
        }
        Some(b'[') => array(w, ctx, value.start, child, depth)?,
        _ => w.copy(value),
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Emptied {
    Yes,
    No,
}

/// Writes the object at `pos` (enclosed by `depth` containers), redacted
/// by `node`; says whether it had members and none is left.
fn object(
    w: &mut Writer<'_>,
    ctx: &mut RecordCtx<'_, '_>,
    pos: usize,
    node: &FieldNode,
    depth: usize,
) -> Result<Emptied, Fail> {
    let input = w.input;
    let mut sc = Scanner::new(input, pos, depth, w.max_depth);
    sc.open_object()?;
    w.push(b'{');
    let (mut first, mut written, mut had) = (true, false, false);
    while let Some(key) = sc.member(&mut first)? {
        had = true;
        let name = scan::text(w.text, key.span, key.escaped)?;
        let value = sc.value()?;
        member(w, ctx, &name, key, value, node, depth + 1, &mut written)?;
    }
    w.push(b'}');
    Ok(if had && !written {
        Emptied::Yes
    } else {
        Emptied::No
    })
}

/// Arrays are transparent: `items.price` applies to every element.
fn array(
    w: &mut Writer<'_>,
    ctx: &mut RecordCtx<'_, '_>,
    pos: usize,
    node: &FieldNode,
    depth: usize,
) -> Result<(), Fail> {
    let input = w.input;
    let mut sc = Scanner::new(input, pos, depth, w.max_depth);
    sc.open_array()?;
    w.push(b'[');
    let (mut first, mut written) = (true, false);
    while sc.element(&mut first)? {
        let value = sc.value()?;
        if written {
            w.push(b',');
        }
        written = true;
        match input.get(value.start) {
            // An element emptied by removals stays (`{}`), keeping positions.
            Some(b'{') => {
                object(w, ctx, value.start, node, depth + 1)?;
            }
            Some(b'[') => array(w, ctx, value.start, node, depth + 1)?,
            _ => w.copy(value),
        }
    }
    w.push(b']');
    Ok(())
}

/// The value at `path` inside a record, given its members. A key on the
/// path that the record repeats is refused: the decision would rest on one
/// copy while a client may read the other.
fn member_path(
    text: &str,
    members: &[Member<'_>],
    path: &[String],
    max_depth: usize,
) -> Result<Option<Span>, Fail> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut found = None;
    for m in members {
        if m.name == first.as_str() {
            if found.is_some() {
                return Err(repeated(first));
            }
            found = Some(m.value);
        }
    }
    match found {
        Some(span) if !rest.is_empty() => lookup_path(text, span.start, 0, rest, max_depth),
        other => Ok(other),
    }
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

/// A record attribute from its JSON value, as [`AttributeSource::extract`]
/// converts it (`None` when of the wrong type).
fn convert(text: &str, span: Span, source: &AttributeSource) -> Option<AttrValue> {
    let raw = text.as_bytes().get(span.start..span.end)?;
    match source.kind {
        AttributeKind::String | AttributeKind::Entity => {
            if raw.first() != Some(&b'"') {
                return None;
            }
            let value: Box<str> = scan::text(text, span, true).ok()?.into();
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
    use crate::identity::{IdentitySource, Principal};
    use crate::policy::RequestPrincipal;
    use crate::runtime::Runtime;
    use serde_json::{Value, json};
    use std::sync::OnceLock;

    fn runtime() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/demo/fieldguard.yaml");
            Runtime::build(crate::config::load(&path).unwrap()).unwrap()
        })
    }

    /// Redacts `body` as `GET /customers` for a caller with `roles`.
    fn list_as(roles: &[&str], body: &[u8]) -> (Result<Vec<u8>, StreamError>, FilterReport) {
        let rt = runtime();
        let route = rt
            .routes
            .iter()
            .find(|r| r.method == "GET" && r.template == "/customers")
            .unwrap();
        let who = Principal {
            id: "agent-7".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            mfa: true,
            purpose: None,
            attributes: Default::default(),
            source: IdentitySource::Jwt,
        };
        let rp = RequestPrincipal::new(&who, &route.action).unwrap();
        let mut decider = rt.engine.decider(&rp);
        let mut report = FilterReport::default();
        let out = redact(
            body,
            &route.response,
            &mut decider,
            &rt.catalogue,
            &mut report,
            64,
        );
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
        let body = r#"{"customers":[],"x_total":1.50E+2,"x_big":123456789012345678901234567890,"x_s":"\u00e9\/"}"#;
        let (out, _) = list_as(&["support_agent"], body.as_bytes());
        assert_eq!(out.unwrap(), body.as_bytes());
    }

    #[test]
    fn hidden_records_are_dropped_from_the_list() {
        // A caller with no role sees no customer at all.
        let v = list_json(
            &[],
            r#"{"customers":[{"id":"c-1001","name":"A"},{"id":"c-1002"}],"x":1}"#,
        );
        assert_eq!(v, json!({"customers": [], "x": 1}));
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
