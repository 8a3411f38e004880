//! The keys the next record of a list is expected to have: those of the
//! record before it, in the order they were read.
//!
//! The records of a list nearly always repeat the previous record's keys
//! in the same order. Reading a key means finding its closing quote byte
//! by byte, checking for escapes and control bytes, then the colon; when
//! the input's next bytes are exactly the previous record's `"key":` at
//! the same place, that work is already done: the remembered key was read
//! the ordinary way and has no escape, quote or control byte inside, so
//! input bytes equal to it are the same valid string, ending where it ends
//! ([`super::scan::Scanner::member_expecting`]). A key that differs is
//! read the ordinary way and replaces the expectation from there on.

use crate::short_eq::same_bytes;

/// Keys expected at most per record (members of nested objects included);
/// a longer record's later keys are read the ordinary way.
const MAX_KEYS: usize = 256;

/// The previous record's keys, each as `"key":` (quotes and colon
/// included), in one buffer.
#[derive(Default)]
pub(super) struct ExpectedKeys {
    /// Where each key ends in `bytes` (it starts where the one before
    /// ends). A key that cannot be expected (escaped, or not followed
    /// directly by its colon) has no bytes: an expected one has at least
    /// three (`"":`).
    ends: Vec<u32>,
    bytes: Vec<u8>,
    /// Set once a record was read: the first one remembers nothing, so
    /// that a body of one record does not pay for keys it never expects
    /// (the second remembers, the third and later are expected).
    pub(super) armed: bool,
}

impl ExpectedKeys {
    /// The `"key":` expected as the `at`-th key of a record.
    #[inline(always)]
    pub(super) fn get(&self, at: usize) -> Option<&[u8]> {
        let end = *self.ends.get(at)? as usize;
        self.bytes
            .get(self.start(at)..end)
            .filter(|key| !key.is_empty())
    }

    /// Whether `input` at `pos` starts with the key expected at `at`,
    /// and if so its length.
    #[inline(always)]
    pub(super) fn matches(&self, at: usize, input: &[u8], pos: usize) -> Option<usize> {
        let expected = self.get(at)?;
        let found = input.get(pos..pos + expected.len())?;
        same_bytes(found, expected).then_some(expected.len())
    }

    /// Makes `key` (`"key":`, or `None` when it cannot be expected) the
    /// key expected at `at`, in place of it and all after it.
    pub(super) fn remember(&mut self, at: usize, key: Option<&[u8]>) {
        if !self.armed || at > self.ends.len() || at >= MAX_KEYS {
            return;
        }
        self.ends.truncate(at);
        self.bytes.truncate(self.start(at));
        self.bytes.extend_from_slice(key.unwrap_or_default());
        self.ends.push(self.bytes.len() as u32);
    }

    /// Where the `at`-th key starts: where the one before it ends.
    fn start(&self, at: usize) -> usize {
        at.checked_sub(1)
            .and_then(|before| self.ends.get(before))
            .map_or(0, |&end| end as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::ExpectedKeys;

    #[test]
    fn a_key_is_expected_where_it_was_read_and_replaced_from_where_it_differs() {
        let mut keys = ExpectedKeys::default();
        keys.remember(0, Some(br#""id":"#));
        assert_eq!(keys.get(0), None, "the first record remembers nothing");
        keys.armed = true;
        keys.remember(0, Some(br#""id":"#));
        keys.remember(1, None);
        keys.remember(2, Some(br#""name":"#));
        let input = br#"{"id":1,"\u0061":2,"name":3}"#;
        assert_eq!(keys.matches(0, input, 1), Some(5));
        assert_eq!(
            keys.matches(1, input, 8),
            None,
            "an escaped key is never expected"
        );
        assert_eq!(keys.matches(2, input, 19), Some(7));
        assert_eq!(keys.matches(2, input, 20), None);
        assert_eq!(
            keys.matches(3, input, 1),
            None,
            "nothing expected past the last"
        );
        keys.remember(1, Some(br#""x":"#));
        assert_eq!(keys.get(1), Some(&br#""x":"#[..]));
        assert_eq!(
            keys.get(2),
            None,
            "the keys after a replaced one are forgotten"
        );
        assert_eq!(keys.get(0), Some(&br#""id":"#[..]));
    }

    #[test]
    fn a_key_at_the_end_of_the_input_is_not_read_past_it() {
        let mut keys = ExpectedKeys {
            armed: true,
            ..ExpectedKeys::default()
        };
        keys.remember(0, Some(br#""id":"#));
        assert_eq!(keys.matches(0, br#"{"id""#, 1), None);
        assert_eq!(keys.matches(0, br#"{"id":"#, 1), Some(5));
    }
}
