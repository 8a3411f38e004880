//! Streamed lists: a long list's records redacted and passed on as they
//! arrive, with memory bounded by the largest record instead of the body.
//!
//! A body `{"customers":[r1,r2,...],"total":5000}` is three parts: the
//! *prefix* up to the list's `[`, the elements, and the *suffix* from its
//! `]`. The prefix is held until the list opens. Each element is redacted
//! on its own by the byte redactor ([`Pass::element`], strict as ever:
//! grammar, UTF-8, depth, duplicate keys) with the plans and report it
//! carries from the previous one, tried on the bytes so far: the redactor
//! reads a record whole before it decides, counts or writes anything, so
//! bytes that end inside a record leave no trace, and the record is tried
//! again once twice as many of its bytes are there (each record is read a
//! bounded number of times whatever the pieces' sizes). Only a failed try
//! asks [`ObjectEnd`] whether the record's closing brace arrived (then it
//! is malformed) or not (more bytes are needed). Records whole in a piece
//! are read in place; only a partial one is copied. The suffix is held to
//! the end.
//!
//! The body around the records (the *skeleton*, prefix + `]` + suffix,
//! i.e. the body with an empty list) is redacted whole by the same pass as
//! any body, which is what checks its grammar and decides its members:
//! once when the list opens, over the prefix closed by `]}`..., to emit the
//! redacted prefix; and again at the end over the real skeleton, whose
//! output must begin with exactly the prefix already sent (it does: a
//! member's output depends only on what precedes it) and whose rest is the
//! redacted suffix.
//!
//! What streams: a route with one record selector whose records are the
//! elements of a list reached through object keys (`$[*]`,
//! `$.customers[*]`, `$.data.items[*]`) and whose attributes are read from
//! the records themselves ([`ListPlace::of`]). Anything else, and a body
//! that ends before its list opens, is redacted whole.
//!
//! Errors after output was produced cannot become a clean error answer:
//! the caller aborts the response (see the proxy's streaming phase). The
//! stream never emits the end of the list or the suffix before the whole
//! body was read and found well-formed, so an aborted answer is never a
//! well-formed JSON document.

use super::BodyRules;
use super::bytes::{self, Carried, Fail, Hole, Pass, StreamError, Writer};
use super::plan::{ListPlace, PlanNode};
use super::report::FilterReport;
use super::scan;
use crate::catalogue::Catalogue;
use crate::policy::Decider;

/// Bounds on one streamed body.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub max_depth: usize,
    /// Largest element, and largest prefix or suffix, held at once.
    pub max_record_bytes: usize,
    /// Largest body in all.
    pub max_body_bytes: usize,
}

/// Why a streamed body was abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStreamError {
    /// Not JSON, nested too deeply, or not the route's shape.
    Body(StreamError),
    /// One element (or the part before or after the list) over
    /// [`StreamLimits::max_record_bytes`].
    RecordTooLarge,
    /// The body over [`StreamLimits::max_body_bytes`].
    BodyTooLarge,
}

impl From<StreamError> for ListStreamError {
    fn from(e: StreamError) -> Self {
        ListStreamError::Body(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the list's `[`.
    Prefix,
    /// Right after `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    CommaOrEnd,
    /// After `,`: an element.
    Element,
    /// Inside an element that started at `start` (of `buf`).
    InElement { start: usize },
    /// From the list's `]` (at `start` of `buf`) to the end.
    Suffix { start: usize },
}

/// One streamed body being redacted: fed as it arrives, it appends what
/// may be sent to the output it is given.
pub struct ListStream<'a, 'd> {
    rules: BodyRules<'a>,
    decider: Decider<'d>,
    catalogue: &'a Catalogue,
    place: &'a ListPlace,
    /// The plan's `[*]` node: each element's place.
    each: &'a PlanNode,
    limits: StreamLimits,
    report: FilterReport,
    carried: Option<Carried>,
    /// Received, not yet consumed bytes (from [`Phase::Prefix`]: all).
    buf: Vec<u8>,
    /// Next byte of `buf` to look at.
    pos: usize,
    phase: Phase,
    fed: usize,
    /// Retry locating the list once `buf` holds this many bytes (each
    /// attempt rescans the prefix: doubling keeps it linear).
    locate_at: usize,
    /// Try the element under way again once this many of its bytes are
    /// there (0: at once).
    retry_at: usize,
    /// The body has ended: an element the bytes end inside is malformed.
    ended: bool,
    /// The raw prefix, up to and including the list's `[`.
    prefix: Vec<u8>,
    /// The redacted prefix as sent.
    sent_prefix: Vec<u8>,
    /// An element has been written (the next one needs a comma).
    written: bool,
}

impl<'a, 'd> ListStream<'a, 'd> {
    pub fn new(
        rules: BodyRules<'a>,
        decider: Decider<'d>,
        catalogue: &'a Catalogue,
        place: &'a ListPlace,
        limits: StreamLimits,
    ) -> Option<Self> {
        let mut node = &rules.plan.root;
        for k in &place.keys {
            node = node.key(k)?;
        }
        let each = node.each.as_deref()?;
        let mut report = FilterReport::default();
        report.start_body(rules.plan, &decider);
        let carried = Carried::new(&rules, true);
        Some(Self {
            rules,
            decider,
            catalogue,
            place,
            each,
            limits,
            report,
            carried: Some(carried),
            buf: Vec::new(),
            pos: 0,
            phase: Phase::Prefix,
            fed: 0,
            locate_at: 0,
            retry_at: 0,
            ended: false,
            prefix: Vec::new(),
            sent_prefix: Vec::new(),
            written: false,
        })
    }

    /// What filtering did so far (complete after [`ListStream::finish`]).
    pub fn report(&mut self) -> &mut FilterReport {
        if let Some(c) = self.carried.as_mut() {
            c.flush(&mut self.report);
        }
        &mut self.report
    }

    /// The report, once the stream is over (finished or abandoned).
    pub fn into_report(mut self) -> FilterReport {
        self.report();
        self.report
    }

    /// Takes the next bytes of the body; appends what may be sent to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), ListStreamError> {
        self.fed = self.fed.saturating_add(chunk.len());
        if self.fed > self.limits.max_body_bytes {
            return Err(ListStreamError::BodyTooLarge);
        }
        if self.buf.is_empty() && self.phase != Phase::Prefix {
            // Nothing pending: records whole in `chunk` are redacted from
            // it directly, and only an incomplete one is copied.
            self.pos = 0;
            let result = self.advance(chunk, out);
            self.keep(chunk);
            return result;
        }
        self.buf.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.buf);
        let result = self.advance(&buf, out);
        self.buf = buf;
        self.compact();
        result
    }

    /// The body has ended: the rest of the output, or why the body (and any
    /// output already sent) is not to be completed. A body whose list never
    /// opened was held whole and is redacted whole here.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ListStreamError> {
        self.ended = true;
        if self.phase != Phase::Prefix {
            // A record the last piece completed may not have been tried.
            let buf = std::mem::take(&mut self.buf);
            let result = self.advance(&buf, out);
            self.buf = buf;
            result?;
        }
        match self.phase {
            Phase::Prefix => self.whole(out),
            Phase::Suffix { start } => self.close(start, out),
            _ => Err(StreamError::Unreadable.into()),
        }
    }

    /// Goes as far as `data` (the bytes from where the stream stands,
    /// `self.pos` an offset into it) allows.
    fn advance(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ListStreamError> {
        // UTF-8 checked at most once per piece, and only when a record is
        // read from it: records are read from its valid part (up to a
        // character the piece ends inside, or an invalid byte). The part
        // before and after the list is checked with the skeleton.
        let mut valid: Option<&str> = None;
        loop {
            match self.phase {
                Phase::Prefix => {
                    if !self.open_list(data, out)? {
                        return Ok(());
                    }
                }
                Phase::First | Phase::CommaOrEnd | Phase::Element => {
                    while let Some(b' ' | b'\n' | b'\r' | b'\t') = data.get(self.pos) {
                        self.pos += 1;
                    }
                    let Some(&b) = data.get(self.pos) else {
                        return Ok(());
                    };
                    self.between(b)?;
                }
                Phase::InElement { start } => {
                    let available = data.len() - start;
                    if available < self.retry_at && !self.ended {
                        return Ok(());
                    }
                    let valid = *valid.get_or_insert_with(|| match scan::utf8(data) {
                        Ok(text) => text,
                        Err(_) => match std::str::from_utf8(data) {
                            Ok(text) => text,
                            Err(e) => {
                                std::str::from_utf8(&data[..e.valid_up_to()]).unwrap_or_default()
                            }
                        },
                    });
                    match self.element(data, valid, start, out)? {
                        // Read whole, but longer than a record may be: the
                        // limit is exact whenever the record is tried.
                        Some(end) if end > self.limits.max_record_bytes => {
                            return Err(ListStreamError::RecordTooLarge);
                        }
                        Some(end) => {
                            self.pos = start + end;
                            self.retry_at = 0;
                            self.phase = Phase::CommaOrEnd;
                        }
                        None if self.ended => return Err(StreamError::Unreadable.into()),
                        None => {
                            if available > self.limits.max_record_bytes {
                                return Err(ListStreamError::RecordTooLarge);
                            }
                            // Tried again once there is twice as much:
                            // each record is scanned a bounded number of
                            // times, whatever the pieces' sizes.
                            self.retry_at = available.saturating_mul(2).max(64);
                            self.pos = data.len();
                            return Ok(());
                        }
                    }
                }
                Phase::Suffix { start } => {
                    if data.len() - start > self.limits.max_record_bytes {
                        return Err(ListStreamError::RecordTooLarge);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Between elements: `b` starts an element, or is `,` or `]`.
    fn between(&mut self, b: u8) -> Result<(), ListStreamError> {
        let unreadable = || ListStreamError::Body(StreamError::Unreadable);
        match (self.phase, b) {
            (Phase::First | Phase::CommaOrEnd, b']') => {
                self.phase = Phase::Suffix { start: self.pos };
            }
            (Phase::CommaOrEnd, b',') => {
                self.pos += 1;
                self.phase = Phase::Element;
            }
            (Phase::First | Phase::Element, b'{') => {
                self.phase = Phase::InElement { start: self.pos };
            }
            (
                Phase::First | Phase::Element,
                b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n',
            ) => {
                return Err(
                    StreamError::Filter(super::report::FilterError::Shape(format!(
                        "a record at `{}` is not a JSON object",
                        self.rules.plan.selectors[0].path.text
                    )))
                    .into(),
                );
            }
            _ => return Err(unreadable()),
        }
        Ok(())
    }

    /// Looks for the list's `[` in the prefix; once found, sends the
    /// redacted prefix. `false`: more bytes are needed.
    fn open_list(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<bool, ListStreamError> {
        if data.len() < self.locate_at {
            return Ok(false);
        }
        let at = self.place.locate(data, self.limits.max_depth);
        let Some(at) = at else {
            if data.len() > self.limits.max_record_bytes {
                return Err(ListStreamError::RecordTooLarge);
            }
            self.locate_at = data.len().saturating_mul(2).max(64);
            return Ok(false);
        };
        self.prefix = data[..=at].to_vec();
        // The prefix closed (`]` then `}` per enclosing object) is a body
        // whose output up to the list's `[` is final.
        let mut closed = self.prefix.clone();
        closed.push(b']');
        closed.extend(std::iter::repeat_n(b'}', self.place.keys.len()));
        let mut scratch = FilterReport::default();
        let (redacted, hole) =
            self.skeleton(&closed, at, &mut scratch, Carried::new(&self.rules, false))?;
        self.sent_prefix = redacted[..hole].to_vec();
        out.extend_from_slice(&self.sent_prefix);
        self.pos = at + 1;
        self.phase = Phase::First;
        Ok(true)
    }

    /// Redacts the element at `data[start..]` (read from `valid`, the
    /// part of `data` checked to be UTF-8) into `out`: where it ends
    /// (relative to `start`), or `None` when `data` ends inside it.
    fn element(
        &mut self,
        data: &[u8],
        valid: &str,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ListStreamError> {
        let raw = &data[start..];
        // `valid` is `data`'s UTF-8 part, and `start` a `{`: a character
        // boundary (slicing checks it, it does not validate again).
        let text = valid.get(start..).unwrap_or_default();
        let input = text.as_bytes();
        let mark = out.len();
        if self.written {
            out.push(b',');
        }
        let w = Writer {
            input,
            text,
            out: std::mem::take(out),
            max_depth: self.limits.max_depth,
        };
        let carried = self.take_carried();
        let mut pass = Pass::new(
            w,
            &self.rules,
            &mut self.decider,
            self.catalogue,
            &mut self.report,
            carried,
        );
        let kept = pass.element(self.each, &self.place.keys);
        let (written, carried) = pass.into_parts();
        *out = written;
        self.carried = Some(carried);
        match kept {
            Ok((true, end)) => {
                self.written = true;
                Ok(Some(end))
            }
            Ok((false, end)) => {
                out.truncate(mark);
                Ok(Some(end))
            }
            Err(Fail::Scan) => {
                out.truncate(mark);
                // Unreadable if the record's bytes are all there (its
                // closing brace arrived): malformed, or not UTF-8.
                match ObjectEnd::default().find(raw, 0, self.limits.max_depth)? {
                    Some(_) => Err(StreamError::Unreadable.into()),
                    None => Ok(None),
                }
            }
            Err(e) => Err(e.for_body(input, self.limits.max_depth).into()),
        }
    }

    /// The end of a list whose `]` is at `start`: the skeleton redacted for
    /// real, its rest after the list sent.
    fn close(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), ListStreamError> {
        let mut skeleton = std::mem::take(&mut self.prefix);
        let at = skeleton.len() - 1;
        skeleton.extend_from_slice(&self.buf[start..]);
        let carried = self.take_carried();
        let mut report = std::mem::take(&mut self.report);
        let result = self.skeleton(&skeleton, at, &mut report, carried);
        self.report = report;
        let (redacted, hole) = result?;
        if redacted.get(..hole) != Some(&self.sent_prefix[..]) {
            // Cannot happen (see the module docs); never complete a body
            // that was not redacted as sent.
            return Err(StreamError::Unreadable.into());
        }
        out.extend_from_slice(&redacted[hole..]);
        Ok(())
    }

    /// A body held whole (its list never opened): redacted as any body.
    fn whole(&mut self, out: &mut Vec<u8>) -> Result<(), ListStreamError> {
        let mut report = std::mem::take(&mut self.report);
        let result = bytes::redact(
            &self.buf,
            &self.rules,
            &mut self.decider,
            self.catalogue,
            &mut report,
            self.limits.max_depth,
        );
        self.report = report;
        out.extend_from_slice(&result?);
        Ok(())
    }

    /// Redacts a skeleton whose list's `[` is at `at`: its output, and
    /// the output length just after that `[`.
    fn skeleton(
        &mut self,
        input: &[u8],
        at: usize,
        report: &mut FilterReport,
        carried: Carried,
    ) -> Result<(Vec<u8>, usize), ListStreamError> {
        let max_depth = self.limits.max_depth;
        let text = scan::utf8(input).map_err(|_| StreamError::Unreadable)?;
        let w = Writer {
            input,
            text,
            out: Vec::with_capacity(input.len()),
            max_depth,
        };
        let mut pass = Pass::new(
            w,
            &self.rules,
            &mut self.decider,
            self.catalogue,
            report,
            carried,
        );
        pass.hole = Some(Hole { at, out: None });
        let walked = pass.skeleton();
        let hole = pass.hole.and_then(|h| h.out);
        let (redacted, mut carried) = pass.into_parts();
        carried.flush(report);
        walked.map_err(|e| e.for_body(input, max_depth))?;
        // The list must be where it was found (a body whose plan never
        // reached it has another shape).
        let hole = hole.ok_or(StreamError::Unreadable)?;
        Ok((redacted, hole))
    }

    /// The state the element passes carry (held between them, consumed by
    /// the closing skeleton).
    fn take_carried(&mut self) -> Carried {
        (self.carried.take()).unwrap_or_else(|| Carried::new(&self.rules, true))
    }

    /// Where the bytes still needed start (`None`: all of them).
    fn needed_from(&self) -> Option<usize> {
        match self.phase {
            Phase::Prefix => None,
            Phase::InElement { start } | Phase::Suffix { start } => Some(start),
            _ => Some(self.pos),
        }
    }

    /// Positions now count from `from`.
    fn rebase(&mut self, from: usize) {
        self.pos -= from;
        if let Phase::InElement { start } | Phase::Suffix { start } = &mut self.phase {
            *start -= from;
        }
    }

    /// Drops consumed bytes of `buf` (once per feed, not per element).
    fn compact(&mut self) {
        let Some(from) = self.needed_from().filter(|&f| f > 0) else {
            return;
        };
        self.buf.drain(..from);
        self.rebase(from);
    }

    /// Keeps what `chunk`, worked on in place, still has to give.
    fn keep(&mut self, chunk: &[u8]) {
        let from = self.needed_from().unwrap_or(0).min(chunk.len());
        self.buf.extend_from_slice(&chunk[from..]);
        self.rebase(from);
    }
}

/// Finds the end of an object whose `{` is where the search starts,
/// following only nesting and strings (whether the bytes of a record that
/// failed to read are all there); the element's pass checks everything
/// else.
#[derive(Debug, Default, Clone, Copy)]
struct ObjectEnd {
    depth: usize,
    in_string: bool,
    /// The previous byte, in a string, was a backslash.
    escape: bool,
}

impl ObjectEnd {
    /// From `from`: the offset just past the object's closing `}`, or
    /// `None` when `buf` ends first.
    fn find(
        &mut self,
        buf: &[u8],
        from: usize,
        max_depth: usize,
    ) -> Result<Option<usize>, ListStreamError> {
        let mut i = from;
        while i < buf.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                i = scan::skip_plain(buf, i);
                match buf.get(i) {
                    Some(b'"') => self.in_string = false,
                    Some(b'\\') => self.escape = true,
                    // A control character: the element's pass refuses it.
                    Some(_) => {}
                    None => return Ok(None),
                }
                i += 1;
                continue;
            }
            match buf[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > max_depth {
                        return Err(StreamError::Unreadable.into());
                    }
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Ok(Some(i + 1));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(None)
    }
}
