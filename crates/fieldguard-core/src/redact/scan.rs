//! A validating JSON byte scanner for response redaction.
//!
//! Redacting a body does not need a tree of it: most bytes (uncatalogued
//! keys, values the caller may read) pass through unchanged. This scanner
//! walks the bytes in place, checks them against the JSON grammar exactly
//! as strictly as `serde_json` does (the proxy must refuse what it cannot
//! read, never guess), and hands back spans so the redactor can copy them
//! through or rewrite the few that change. Nothing here allocates, except
//! decoding a string that contains escapes.
//!
//! The caller checks UTF-8 for the whole body once ([`utf8`], SIMD); the
//! scanner then only needs to look at ASCII structure.

use super::expected_keys::ExpectedKeys;
use std::borrow::Cow;

/// Why a body cannot be scanned. Either way it is unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanError {
    Malformed,
    TooDeep,
}

/// A value's bytes: `input[start..end]`, without surrounding whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// An object key: its span (with the quotes) and whether it has escapes
/// (then its text must be decoded before comparing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub span: Span,
    pub escaped: bool,
}

pub(super) struct Scanner<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

type Result<T> = std::result::Result<T, ScanError>;

impl<'a> Scanner<'a> {
    /// A scanner at `pos` of `input`, `depth` levels deep already; nesting
    /// beyond `max_depth` is refused (no unbounded recursion on hostile
    /// input).
    pub(super) fn new(input: &'a [u8], pos: usize, depth: usize, max_depth: usize) -> Self {
        Self {
            input,
            pos,
            depth,
            max_depth,
        }
    }

    /// How many open objects and arrays enclose the position.
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// The offset just past what was read (no whitespace skipped).
    pub(super) fn offset(&self) -> usize {
        self.pos
    }

    /// The offset of the next significant byte.
    pub(super) fn position(&mut self) -> usize {
        self.ws();
        self.pos
    }

    /// Skips insignificant whitespace.
    #[inline]
    pub(super) fn ws(&mut self) {
        // Compact bodies (most) have none: every JSON whitespace byte is
        // at most b' ', so one comparison settles the common case.
        if self.input.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.input.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next significant byte, without consuming it.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.input.get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// Only whitespace may follow the top-level value.
    pub(super) fn finish(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(ScanError::Malformed),
        }
    }

    /// Scans (and validates) one value, returning its span.
    pub(super) fn value(&mut self) -> Result<Span> {
        let Some(c) = self.peek() else {
            return Err(ScanError::Malformed);
        };
        let start = self.pos;
        match c {
            b'{' => {
                self.enter()?;
                self.pos += 1;
                let mut first = true;
                // `member` closes the object (and the level) after the last.
                while self.member(&mut first)?.is_some() {
                    self.value()?;
                }
            }
            b'[' => {
                self.enter()?;
                self.pos += 1;
                let mut first = true;
                while self.element(&mut first)? {
                    self.value()?;
                }
            }
            b'"' => {
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(ScanError::Malformed),
        }
        Ok(Span {
            start,
            end: self.pos,
        })
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            Err(ScanError::TooDeep)
        } else {
            Ok(())
        }
    }

    /// Opens an object (the next value must be one).
    pub(super) fn open_object(&mut self) -> Result<()> {
        self.eat(b'{')?;
        self.enter()
    }

    /// Opens an array (the next value must be one).
    pub(super) fn open_array(&mut self) -> Result<()> {
        self.eat(b'[')?;
        self.enter()
    }

    /// The next member's key of an open object, positioned at its value;
    /// `None` (and the object closed) after the last member.
    #[inline]
    pub(super) fn member(&mut self, first: &mut bool) -> Result<Option<Key>> {
        match self.peek() {
            // After `,` a key must follow (`key_and_colon`), so a `}` here
            // closes an empty object or follows a value.
            Some(b'}') => {
                self.close();
                Ok(None)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                self.key_and_colon()
            }
            Some(b'"') if *first => {
                *first = false;
                self.key_and_colon()
            }
            _ => Err(ScanError::Malformed),
        }
    }

    /// [`Scanner::member`], taking the key from `expected` when the
    /// input's next bytes are the `"key":` it expects at `at` (no byte of
    /// the key scanned again; see [`super::expected_keys`]). The second
    /// value says whether they were.
    #[inline(always)]
    pub(super) fn member_expecting(
        &mut self,
        first: &mut bool,
        expected: &ExpectedKeys,
        at: usize,
    ) -> Result<Option<(Key, bool)>> {
        let after = match self.peek() {
            Some(b',') if !*first => self.pos + 1,
            Some(b'"') if *first => self.pos,
            _ => return Ok(self.member(first)?.map(|k| (k, false))),
        };
        let Some(len) = expected.matches(at, self.input, after) else {
            return Ok(self.member(first)?.map(|k| (k, false)));
        };
        *first = false;
        let key = Key {
            span: Span {
                start: after,
                end: after + len - 1,
            },
            escaped: false,
        };
        self.pos = after + len;
        self.ws();
        Ok(Some((key, true)))
    }

    /// Consumes the closing `}` or `]` and leaves its level.
    fn close(&mut self) {
        self.pos += 1;
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline]
    fn key_and_colon(&mut self) -> Result<Option<Key>> {
        if self.peek() != Some(b'"') {
            return Err(ScanError::Malformed);
        }
        let start = self.pos;
        let escaped = self.string()?;
        let key = Key {
            span: Span {
                start,
                end: self.pos,
            },
            escaped,
        };
        // `"key":` without whitespace (compact bodies) in one comparison.
        if self.input.get(self.pos) == Some(&b':') {
            self.pos += 1;
        } else {
            self.eat(b':')?;
        }
        self.ws();
        Ok(Some(key))
    }

    /// Whether an open array has another element (positioned at it);
    /// `false` (and the array closed) after the last one.
    #[inline]
    pub(super) fn element(&mut self, first: &mut bool) -> Result<bool> {
        match self.peek() {
            // After `,` the caller scans a value, and `]` is none.
            Some(b']') => {
                self.close();
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(ScanError::Malformed),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<()> {
        if self
            .input
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(lit))
        {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// JSON number grammar, and (like `serde_json`) a value that does not
    /// fit an f64 is refused rather than passed on as something the client
    /// cannot read.
    fn number(&mut self) -> Result<()> {
        let start = self.pos;
        let b = self.input;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => return Err(ScanError::Malformed),
        }
        let int_digits = i - int_start;
        let mut plain = true;
        if b.get(i) == Some(&b'.') {
            plain = false;
            i += 1;
            let d = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == d {
                return Err(ScanError::Malformed);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            plain = false;
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let d = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == d {
                return Err(ScanError::Malformed);
            }
        }
        self.pos = i;
        // Up to 19 digits always fits an f64's range; longer integers and
        // any fraction or exponent are checked.
        if !plain || int_digits > 19 {
            let text = std::str::from_utf8(&b[start..i]).map_err(|_| ScanError::Malformed)?;
            let v: f64 = text.parse().map_err(|_| ScanError::Malformed)?;
            if !v.is_finite() {
                return Err(ScanError::Malformed);
            }
        }
        Ok(())
    }

    /// Scans a string (at its opening quote); returns whether it has
    /// escapes. Control characters are refused; escaped strings are checked
    /// by `serde_json` itself (rare, and it knows every rule of `\u`).
    ///
    /// Inlined: most strings are a key or a short value, found in one step
    /// of [`skip_plain`], so a call's cost was most of a string's.
    #[inline]
    fn string(&mut self) -> Result<bool> {
        let start = self.pos;
        let end = skip_plain(self.input, self.pos + 1);
        if self.input.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(false);
        }
        self.escaped_string(start, end)
    }

    /// The rest of a string whose plain start ends at `at`, not at its
    /// closing quote: a backslash (then validated whole), else malformed.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, at: usize) -> Result<bool> {
        self.pos = at;
        loop {
            match self.input.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    // The escaped byte is skipped whatever it is (serde_json
                    // validates it below); a quote after `\` is not the end.
                    self.pos += 2;
                }
                _ => return Err(ScanError::Malformed),
            }
            self.pos = skip_plain(self.input, self.pos);
        }
        if self.pos > self.input.len() {
            return Err(ScanError::Malformed);
        }
        serde_json::from_slice::<Cow<'_, str>>(&self.input[start..self.pos])
            .map_err(|_| ScanError::Malformed)?;
        Ok(true)
    }
}

/// Index of the first byte at or after `i` that is a quote, a backslash or
/// a control character (or the end), eight bytes at a time.
#[inline]
pub(super) fn skip_plain(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte is "special" if it is zero after the XOR (quote or
        // backslash) or below 0x20; the lowest flagged byte is exact.
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let found = found & HIGH;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The text of a key or string span (with its quotes). The input is a
/// `str` (checked once for the whole body), so an unescaped string is a
/// slice of it: no copy, no second UTF-8 check.
pub(super) fn text(input: &str, span: Span, escaped: bool) -> Result<Cow<'_, str>> {
    if escaped {
        let raw = input
            .as_bytes()
            .get(span.start..span.end)
            .ok_or(ScanError::Malformed)?;
        return serde_json::from_slice::<String>(raw)
            .map(Cow::Owned)
            .map_err(|_| ScanError::Malformed);
    }
    input
        .get(span.start + 1..span.end.saturating_sub(1))
        .map(Cow::Borrowed)
        .ok_or(ScanError::Malformed)
}

/// `input` as the `str` it must be: `simdutf8` accepts exactly what
/// `std::str::from_utf8` accepts (overlongs, surrogates and code points
/// past U+10FFFF refused), with SIMD chosen at run time (~0.1 instructions
/// per byte against std's ~0.5 on ASCII). The error says nothing about
/// where: callers that need the valid prefix ask std on that rare path.
#[inline]
pub(super) fn utf8(input: &[u8]) -> Result<&str> {
    simdutf8::basic::from_utf8(input).map_err(|_| ScanError::Malformed)
}

/// Validates a whole document: UTF-8, grammar, depth, nothing after it.
pub(super) fn validate(input: &[u8], max_depth: usize) -> Result<()> {
    utf8(input)?;
    let mut sc = Scanner::new(input, 0, 0, max_depth);
    sc.value()?;
    sc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        validate(s.as_bytes(), 16).is_ok()
    }

    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        let cases = [
            "{}",
            "[]",
            " { \"a\" : [1, 2.5, -0, 1e3, 1E-3, true, false, null, \"x\"] } ",
            r#"{"a":{"b":{"c":[[],[{}]]}}}"#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#,
            "\"héllo ünïcode ✓\"",
            "0",
            "-12345678901234567890123",
            "1.7976931348623157e308",
            "[1e400]",
            "[01]",
            "[1.]",
            "[.5]",
            "[-]",
            "[1e]",
            "[+1]",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{,\"a\":1}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{a:1}",
            "[tru]",
            "[nul]",
            "\"unterminated",
            "\"bad escape \\x\"",
            "\"bad unicode \\u12g4\"",
            "\"lone surrogate \\ud800\"",
            "\"ctrl \u{1} char\"",
            "\"tab\tinside\"",
            "{} {}",
            "[1] x",
            "",
            "   ",
            "{\"a\":1 \"b\":2}",
            "[1 2]",
            "\"ends with backslash\\",
            "\"ends with backslash\\\"",
            "[\"a\",]",
            "{\"k\":\"v\",\"k\":\"w\"}",
            &"9".repeat(400),
        ];
        for case in cases {
            let serde = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(ok(case), serde, "{case:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(validate(b"\"\xff\"", 4), Err(ScanError::Malformed));
    }

    #[test]
    fn depth_is_bounded() {
        assert_eq!(validate(b"[[[1]]]", 2), Err(ScanError::TooDeep));
        assert!(validate(b"[[[1]]]", 3).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(validate(deep.as_bytes(), 128), Err(ScanError::TooDeep));
    }

    #[test]
    fn skip_plain_finds_the_first_special_byte_at_every_offset() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x01, 0x1f] {
                for at in 0..=len {
                    let mut v = vec![b'a'; len];
                    v.extend_from_slice(&[0xc3, 0xa9]);
                    if at < len {
                        v[at] = special;
                    }
                    let want = if at < len { at } else { v.len() };
                    assert_eq!(skip_plain(&v, 0), want, "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn keys_are_decoded_only_when_escaped() {
        let input = r#"{"plain":1,"es\u0063aped":2}"#;
        let mut sc = Scanner::new(input.as_bytes(), 0, 0, 4);
        sc.open_object().unwrap();
        let mut first = true;
        let k1 = sc.member(&mut first).unwrap().unwrap();
        assert!(!k1.escaped);
        assert!(matches!(
            text(input, k1.span, k1.escaped).unwrap(),
            Cow::Borrowed("plain")
        ));
        sc.value().unwrap();
        let k2 = sc.member(&mut first).unwrap().unwrap();
        assert!(k2.escaped);
        assert_eq!(text(input, k2.span, k2.escaped).unwrap(), "escaped");
        sc.value().unwrap();
        assert_eq!(sc.member(&mut first).unwrap(), None);
    }
}
