//! Where everything in a route's response body is, compiled at load time:
//! the places of its records (the selectors) and of the wrapper members the
//! route declares, merged into one trie. Both redactors walk a body and
//! this trie together; a member of the body the trie does not name is
//! uncatalogued (removed, unless the route passes unknown fields).

use super::RecordSelector;
use super::scan::{self, Scanner};
use crate::catalogue::{RecordPath, Step};
use crate::config::UnknownFields;
use crate::detect::DetectorSet;
use crate::short_eq::same_bytes;
use std::sync::Arc;

/// A route's response rules.
#[derive(Debug)]
pub struct ResponsePlan {
    pub selectors: Vec<RecordSelector>,
    pub root: PlanNode,
    pub unknown: UnknownFields,
    /// A catalogued value of the wrong kind refuses the whole answer
    /// (`response.misshapen: refuse`) instead of being removed.
    pub refuse_misshapen: bool,
    /// Record the shapes and detected kinds of unnamed members
    /// ([`super::unnamed::Observed`]): off, nothing is looked at twice.
    pub observe: bool,
    /// Detectors masked in passed unnamed members and `free_text` fields
    /// (empty: no backstop, and no value is scanned).
    pub backstop: DetectorSet,
    /// The list its bodies can be streamed by, if any.
    pub stream: Option<ListPlace>,
}

/// One place of a body. Exactly one of: the records of a selector, a
/// declared wrapper member (one value), an object of named places, or an
/// array of them.
#[derive(Debug, Default)]
pub struct PlanNode {
    /// Named members, when this place is an object.
    pub keys: Vec<(Box<str>, PlanNode)>,
    /// Every element (`[*]`), when this place is an array ...
    pub each: Option<Box<PlanNode>>,
    /// ... or the elements at these positions (`[n]`).
    pub indexes: Vec<(usize, PlanNode)>,
    /// The records of this selector (index into `selectors`) are here.
    pub record: Option<usize>,
    /// A declared wrapper member ends here (its field index).
    pub member: Option<u32>,
    /// Set when some selector's records lie at or below this place: a body
    /// without it, or with another shape here, does not have the route's
    /// shape (the reason given).
    pub required: Option<Arc<str>>,
}

impl PlanNode {
    /// The place of the member `name` of this object.
    #[inline]
    pub fn key(&self, name: &str) -> Option<&PlanNode> {
        self.keys
            .iter()
            .find(|(k, _)| same_bytes(k.as_bytes(), name.as_bytes()))
            .map(|(_, n)| n)
    }

    /// The place of the element at `index` of this array.
    #[inline]
    pub fn element(&self, index: usize) -> Option<(&PlanNode, bool)> {
        match &self.each {
            Some(each) => Some((each, true)),
            None => self
                .indexes
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, n)| (n, false)),
        }
    }

    /// True when this place holds an array (else an object, for places
    /// that are neither records nor members).
    pub fn is_array(&self) -> bool {
        self.each.is_some() || !self.indexes.is_empty()
    }

    fn child_mut(&mut self, step: &Step) -> &mut PlanNode {
        match step {
            Step::Key(k) => {
                let at = match self.keys.iter().position(|(x, _)| **x == **k) {
                    Some(at) => at,
                    None => {
                        self.keys.push((Box::from(k.as_str()), PlanNode::default()));
                        self.keys.len() - 1
                    }
                };
                &mut self.keys[at].1
            }
            Step::Each => self.each.get_or_insert_with(Default::default),
            Step::Index(i) => {
                let at = match self.indexes.iter().position(|(x, _)| x == i) {
                    Some(at) => at,
                    None => {
                        self.indexes.push((*i, PlanNode::default()));
                        self.indexes.len() - 1
                    }
                };
                &mut self.indexes[at].1
            }
        }
    }

    /// The first conflict in this subtree (`path` names this place).
    fn conflict(&self, path: &str) -> Option<String> {
        let nested = !self.keys.is_empty() || self.is_array();
        if self.record.is_some() && (nested || self.member.is_some()) {
            return Some(format!(
                "`{path}` holds records, so no other record selector or member may be inside it"
            ));
        }
        if self.member.is_some() && nested {
            return Some(format!(
                "`{path}` is declared as one member, so nothing may be declared inside it"
            ));
        }
        if !self.keys.is_empty() && self.is_array() {
            return Some(format!(
                "`{path}` is named both as an object and as an array"
            ));
        }
        if self.each.is_some() && !self.indexes.is_empty() {
            return Some(format!(
                "`{path}` is named both with `[*]` and with `[n]`; use one"
            ));
        }
        self.keys
            .iter()
            .find_map(|(k, n)| n.conflict(&format!("{path}.{k}")))
            .or_else(|| {
                self.each
                    .as_ref()
                    .and_then(|n| n.conflict(&format!("{path}[*]")))
            })
            .or_else(|| {
                self.indexes
                    .iter()
                    .find_map(|(i, n)| n.conflict(&format!("{path}[{i}]")))
            })
    }
}

impl ResponsePlan {
    /// Merges the selectors' paths and the declared members (their paths
    /// and field indexes) into one trie. Places named twice, or inside a
    /// record or member, are refused.
    pub fn compile(
        selectors: Vec<RecordSelector>,
        members: Vec<(RecordPath, u32)>,
        unknown: UnknownFields,
    ) -> Result<Self, String> {
        let mut root = PlanNode {
            // Even with no records to find, a body must be what the route
            // declares around them: an object (or array) it can walk.
            required: Some(Arc::from(
                "the response body does not have the shape the route declares",
            )),
            ..PlanNode::default()
        };
        for (i, sel) in selectors.iter().enumerate() {
            let why: Arc<str> = Arc::from(format!("no records at `{}`", sel.path.text));
            root.required = Some(why.clone());
            let mut node = &mut root;
            for step in &sel.path.steps {
                node = node.child_mut(step);
                node.required.get_or_insert_with(|| why.clone());
            }
            if node.record.is_some() {
                return Err(format!(
                    "two record selectors name the same place `{}`",
                    sel.path.text
                ));
            }
            node.record = Some(i);
        }
        for (path, field) in members {
            if path.steps.is_empty() {
                return Err("a member must name a place inside the body, not `$` itself".into());
            }
            let mut node = &mut root;
            for step in &path.steps {
                node = node.child_mut(step);
            }
            if node.member.is_some() || node.record.is_some() {
                return Err(format!("`{}` is declared twice", path.text));
            }
            node.member = Some(field);
        }
        if let Some(c) = root.conflict("$") {
            return Err(c);
        }
        let stream = ListPlace::of(&selectors);
        Ok(Self {
            stream,
            selectors,
            root,
            unknown,
            refuse_misshapen: false,
            observe: false,
            backstop: DetectorSet::EMPTY,
        })
    }

    /// The same plan, recording unnamed members' shapes (`observe`) and
    /// masking `backstop` detectors' matches.
    pub fn with_onboarding(mut self, observe: bool, backstop: DetectorSet) -> Self {
        self.observe = observe;
        self.backstop = backstop;
        self
    }

    /// The same plan, refusing answers with catalogued values of the
    /// wrong kind instead of removing those values.
    pub fn refusing_misshapen(mut self, refuse: bool) -> Self {
        self.refuse_misshapen = refuse;
        self
    }
}

/// How a redactor names an uncatalogued or misshapen member in audit
/// records and metrics: the key itself when it looks like an identifier
/// and no detector matches it (nor holds more than six digits in a row),
/// else `?`. Upstream keys are data the proxy
/// did not choose (a map keyed by phone number, or by resident ID with its
/// `X` check character, would otherwise put them in the audit trail).
pub fn key_label(key: &str) -> &str {
    if key.is_empty() || key.len() > 64 {
        return "?";
    }
    // One pass over the key (it is labelled on every descent of a walk).
    let (mut named, mut digits) = (true, 0);
    for b in key.bytes() {
        named &= b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        digits += usize::from(b.is_ascii_digit());
    }
    let identifier = named
        && digits < key.len()
        && (digits == 0
            || (longest_digit_run(key) <= 6
                && crate::detect::detect(key, DetectorSet::all()).is_empty()));
    if identifier { key } else { "?" }
}

/// The most digits in a row in `key` (a long number in a key is data,
/// `tel-13900131001`, whether or not a detector reads it as a value).
fn longest_digit_run(key: &str) -> usize {
    key.as_bytes()
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// A member's path as reports name it, built while a redactor descends:
/// `address.id_card_number` inside a record, `$.page.next` in a wrapper.
#[derive(Debug, Default)]
pub(super) struct NamePath(String);

impl NamePath {
    /// The path of a wrapper (it starts at the root, `$`).
    pub(super) fn wrapper() -> Self {
        Self(String::from("$"))
    }

    /// Appends `.key` (or the key alone at a record's top level); returns
    /// the length to [`Self::truncate`] back to.
    pub(super) fn push_key(&mut self, key: &str) -> usize {
        self.push_label(key_label(key))
    }

    /// [`Self::push_key`] with the key's [`key_label`] already known.
    pub(super) fn push_label(&mut self, label: &str) -> usize {
        let len = self.0.len();
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(label);
        len
    }

    /// Appends `[*]` or `[n]`.
    pub(super) fn push_index(&mut self, index: Option<usize>) -> usize {
        let len = self.0.len();
        match index {
            None => self.0.push_str("[*]"),
            Some(i) => {
                use std::fmt::Write;
                let _ = write!(self.0, "[{i}]");
            }
        }
        len
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// The length to [`Self::truncate`] back to when nothing was pushed.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a route's records can be streamed from: the object keys leading
/// to its one list of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlace {
    pub keys: Vec<Box<str>>,
}

impl ListPlace {
    /// The list a route's bodies can be streamed by, if any: one selector,
    /// at `keys...[*]`, its attributes all read from the record.
    pub fn of(selectors: &[RecordSelector]) -> Option<Self> {
        let [sel] = selectors else {
            return None;
        };
        if sel.attributes.iter().any(|a| a.from_root) {
            return None;
        }
        let (last, keys) = sel.path.steps.split_last()?;
        if !matches!(last, Step::Each) {
            return None;
        }
        let keys = keys
            .iter()
            .map(|s| match s {
                Step::Key(k) => Some(Box::from(k.as_str())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { keys })
    }
}

impl ListPlace {
    /// Whether a body's first bytes reach the `[` opening this list (the
    /// bytes before it well-formed): from then on the body's answer can
    /// be streamed.
    pub fn opens_in(&self, first: &[u8], max_depth: usize) -> bool {
        self.locate(first, max_depth).is_some()
    }

    /// The offset of the `[` opening this list in a body's first bytes,
    /// if they reach it. `None` also when the bytes so far are not JSON (a
    /// body that ends that way is then redacted whole, and refused).
    pub(super) fn locate(&self, buf: &[u8], max_depth: usize) -> Option<usize> {
        locate(buf, &self.keys, max_depth)
    }
}

/// The offset of the `[` opening the list at `keys` in a body's first
/// bytes, if they reach it. `None` also when the bytes so far are not JSON
/// (a body that ends that way is then redacted whole, and refused).
fn locate(buf: &[u8], keys: &[Box<str>], max_depth: usize) -> Option<usize> {
    let text = text_of(buf)?;
    let mut sc = Scanner::new(buf, 0, 0, max_depth);
    for (i, key) in keys.iter().enumerate() {
        let container = if i + 1 == keys.len() { b'[' } else { b'{' };
        sc.open_object().ok()?;
        let mut first = true;
        loop {
            let k = sc.member(&mut first).ok()??;
            let name = scan::text(text, k.span, k.escaped).ok()?;
            if *name == **key && sc.peek() == Some(container) {
                break;
            }
            sc.value().ok()?;
        }
    }
    (sc.peek() == Some(b'[')).then(|| sc.position())
}

/// `buf` as text up to its last complete character (a prefix can end
/// inside one).
fn text_of(buf: &[u8]) -> Option<&str> {
    match std::str::from_utf8(buf) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&buf[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::key_label;

    #[test]
    fn keys_that_are_data_are_not_named() {
        for key in ["phone", "line2", "address_1", "x-request-id", "v2"] {
            assert_eq!(key_label(key), key);
        }
        for key in [
            "13900131001",
            "11010519491231002X",
            "11010519491231002x",
            "wang.lei@mail.example.org",
            "tel-13900131001",
            "１３９００１３１００１",
            "",
        ] {
            assert_eq!(key_label(key), "?", "{key}");
        }
    }
}
