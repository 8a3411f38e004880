//! Masked forms of a field: what a caller allowed only `field:read_masked`
//! sees instead of the value.

use crate::config::MaskConfig;
use crate::error::ConfigError;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;

/// HMAC-SHA256 key for pseudonymising fields: the same input always gives
/// the same token, so analysts can join on it without seeing the value.
pub struct HashKey {
    /// Keyed state computed once; cloned per value (cheaper than re-keying).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// Fewer key bytes than this would make pseudonyms guessable by brute force.
const MIN_KEY_BYTES: usize = 16;

impl HashKey {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read hash key: {e}")))?;
        let trimmed = bytes.trim_ascii_end();
        Self::from_bytes(trimmed).map_err(|m| ConfigError::file(path, m.to_string()))
    }

    pub fn from_bytes(key: &[u8]) -> Result<Self, MaskError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(MaskError::ShortKey { len: key.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| MaskError::ShortKey { len: key.len() })?;
        Ok(Self { mac })
    }

    /// Hex of the first 16 bytes of HMAC-SHA256(key, input): 128 bits is
    /// ample for joins and keeps tokens short.
    pub fn token(&self, input: &[u8]) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_token(input, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Self::token`] appended to `out`.
    pub fn write_token(&self, input: &[u8], out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(input);
        let digest = mac.finalize().into_bytes();
        for b in &digest[..16] {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// A mask the catalogue cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A short key makes pseudonyms guessable by brute force.
    #[error("hash key must be at least {MIN_KEY_BYTES} bytes, got {len}")]
    ShortKey { len: usize },
    #[error("hash mask needs redaction.hash_key_file")]
    NoHashKey,
}

/// A compiled masked form.
#[derive(Debug, Clone)]
pub enum Mask {
    Partial {
        keep_first: usize,
        keep_last: usize,
        mask_char: char,
    },
    Hash(Arc<HashKey>),
    Year,
    Null,
}

impl Mask {
    pub fn compile(cfg: &MaskConfig, key: Option<Arc<HashKey>>) -> Result<Self, MaskError> {
        Ok(match cfg {
            MaskConfig::Partial {
                keep_first,
                keep_last,
                mask_char,
            } => Mask::Partial {
                keep_first: *keep_first,
                keep_last: *keep_last,
                mask_char: *mask_char,
            },
            MaskConfig::Hash => Mask::Hash(key.ok_or(MaskError::NoHashKey)?),
            MaskConfig::Year => Mask::Year,
            MaskConfig::Null => Mask::Null,
        })
    }

    /// Short name for audit records and explanations.
    pub fn kind(&self) -> &'static str {
        match self {
            Mask::Partial { .. } => "partial",
            Mask::Hash(_) => "hash",
            Mask::Year => "year",
            Mask::Null => "null",
        }
    }

    /// The masked form of `value`. Anything the mask cannot safely transform
    /// becomes `null`, never the original.
    pub fn apply(&self, value: &Value) -> Value {
        match self {
            Mask::Null => Value::Null,
            Mask::Partial {
                keep_first,
                keep_last,
                mask_char,
            } => match scalar_text(value) {
                Some(text) => Value::String(partial(&text, *keep_first, *keep_last, *mask_char)),
                None => Value::Null,
            },
            Mask::Hash(key) => match value {
                Value::Null => Value::Null,
                Value::String(s) => Value::String(key.token(s.as_bytes())),
                other => match serde_json::to_vec(other) {
                    Ok(bytes) => Value::String(key.token(&bytes)),
                    Err(_) => Value::Null,
                },
            },
            Mask::Year => value
                .as_str()
                .and_then(year_of)
                .map(|y| Value::String(y.to_string()))
                .unwrap_or(Value::Null),
        }
    }
}

impl Mask {
    /// Appends the masked form of the JSON value `raw` (its exact text, a
    /// valid JSON value) to `out` as JSON: the bytes
    /// `serde_json::to_writer(out, &self.apply(&parsed))` writes. A string
    /// without escapes (most values) is masked straight from its text,
    /// without building a value or an intermediate string.
    pub fn write_json(&self, raw: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if let Some(text) = plain_string(raw) {
            match self {
                Mask::Null => {
                    out.extend_from_slice(b"null");
                    return Ok(());
                }
                Mask::Partial {
                    keep_first,
                    keep_last,
                    mask_char,
                } if !needs_escape(*mask_char) => {
                    out.push(b'"');
                    write_partial(text, *keep_first, *keep_last, *mask_char, out);
                    out.push(b'"');
                    return Ok(());
                }
                Mask::Hash(key) => {
                    out.push(b'"');
                    key.write_token(text.as_bytes(), out);
                    out.push(b'"');
                    return Ok(());
                }
                Mask::Year => {
                    match year_of(text) {
                        Some(y) => {
                            out.push(b'"');
                            out.extend_from_slice(y.as_bytes());
                            out.push(b'"');
                        }
                        None => out.extend_from_slice(b"null"),
                    }
                    return Ok(());
                }
                Mask::Partial { .. } => {}
            }
        }
        let original: Value = serde_json::from_str(raw)?;
        serde_json::to_writer(out, &self.apply(&original))
    }
}

/// The text of a JSON string literal that has no escapes (so its text is
/// its value, and re-encoding it changes nothing).
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    // A fold without an early exit: the compiler checks 16 bytes per step
    // inline, where `contains` calls `memchr` (a third of a short phone
    // number's mask, in the profile).
    let escaped = (inner.bytes()).fold(false, |seen, b| seen | (b == b'\\'));
    (!escaped).then_some(inner)
}

/// Whether serde_json escapes this character in a string.
fn needs_escape(c: char) -> bool {
    c == '"' || c == '\\' || u32::from(c) < 0x20
}

/// [`partial`], written as JSON string content (no character of `text`
/// needs escaping, nor does `mask_char`): the kept ends as two copies, the
/// masked middle as one run (a fill for an ASCII mask character).
fn write_partial(
    text: &str,
    keep_first: usize,
    keep_last: usize,
    mask_char: char,
    out: &mut Vec<u8>,
) {
    let mut buf = [0u8; 4];
    let mask = mask_char.encode_utf8(&mut buf).as_bytes();
    let ascii = text.is_ascii();
    let n = if ascii {
        text.len()
    } else {
        text.chars().count()
    };
    if keep_first + keep_last >= n {
        repeat(mask, n, out);
        return;
    }
    // Byte offset of the character at `chars`.
    let at = |chars: usize| {
        if ascii {
            chars
        } else {
            text.char_indices()
                .nth(chars)
                .map_or(text.len(), |(i, _)| i)
        }
    };
    let (head, tail) = (at(keep_first), at(n - keep_last));
    let bytes = text.as_bytes();
    out.extend_from_slice(bytes.get(..head).unwrap_or_default());
    repeat(mask, n - keep_last - keep_first, out);
    out.extend_from_slice(bytes.get(tail..).unwrap_or_default());
}

/// `mask` (one character's UTF-8) `n` times.
fn repeat(mask: &[u8], n: usize, out: &mut Vec<u8>) {
    match mask {
        [b] => out.resize(out.len() + n, *b),
        _ => {
            out.reserve(mask.len() * n);
            for _ in 0..n {
                out.extend_from_slice(mask);
            }
        }
    }
}

fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Keeps the first/last characters; when they would reveal the whole value
/// (short input), every character is masked instead.
fn partial(text: &str, keep_first: usize, keep_last: usize, mask_char: char) -> String {
    let n = text.chars().count();
    if keep_first + keep_last >= n {
        return std::iter::repeat_n(mask_char, n).collect();
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_first || i >= n - keep_last {
                c
            } else {
                mask_char
            }
        })
        .collect()
}

/// `YYYY` of an ISO date or timestamp (`1990-05-17`, `1990-05-17T...`).
fn year_of(s: &str) -> Option<&str> {
    let y = s.get(..4)?;
    let rest = &s[4..];
    (y.bytes().all(|b| b.is_ascii_digit()) && (rest.is_empty() || rest.starts_with('-')))
        .then_some(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_keeps_ends_and_masks_short_values_entirely() {
        let m = Mask::Partial {
            keep_first: 0,
            keep_last: 4,
            mask_char: '*',
        };
        assert_eq!(
            m.apply(&json!("4111111111111111")),
            json!("************1111")
        );
        assert_eq!(m.apply(&json!("123")), json!("***"));
        assert_eq!(
            m.apply(&json!(4111111111111111u64)),
            json!("************1111")
        );
        assert_eq!(m.apply(&json!({"a": 1})), Value::Null);
        let name = Mask::Partial {
            keep_first: 1,
            keep_last: 0,
            mask_char: '*',
        };
        assert_eq!(name.apply(&json!("王小明")), json!("王**"));
    }

    #[test]
    fn hash_is_stable_keyed_and_does_not_contain_input() {
        let k1 = Arc::new(HashKey::from_bytes(b"0123456789abcdef0123").unwrap());
        let k2 = Arc::new(HashKey::from_bytes(b"another-key-0123456789").unwrap());
        let m1 = Mask::Hash(k1);
        let m2 = Mask::Hash(k2);
        let a = m1.apply(&json!("c-1001"));
        assert_eq!(a, m1.apply(&json!("c-1001")));
        assert_ne!(a, m1.apply(&json!("c-1002")));
        assert_ne!(a, m2.apply(&json!("c-1001")));
        assert_eq!(a.as_str().unwrap().len(), 32);
        assert!(HashKey::from_bytes(b"short").is_err());
    }

    /// `write_json` writes exactly what serialising `apply`'s value does.
    #[test]
    fn write_json_is_apply_serialised() {
        let key = Arc::new(HashKey::from_bytes(b"0123456789abcdef0123").unwrap());
        let masks = [
            Mask::Null,
            Mask::Year,
            Mask::Hash(key),
            Mask::Partial {
                keep_first: 3,
                keep_last: 2,
                mask_char: '*',
            },
            Mask::Partial {
                keep_first: 1,
                keep_last: 0,
                mask_char: '\u{2022}',
            },
            Mask::Partial {
                keep_first: 0,
                keep_last: 4,
                mask_char: '"',
            },
        ];
        let values = [
            r#""+86 139 0013 1001""#,
            r#""王小明""#,
            r#""ab""#,
            r#""""#,
            r#""1990-05-17""#,
            r#""1990""#,
            r#""May 1990""#,
            r#""esc\"aped\u00e9 \n""#,
            r#""\u0031990-01-01""#,
            "4111111111111111",
            "1.50E+2",
            "-0",
            "true",
            "null",
            r#"{"a":1}"#,
            "[1,2]",
        ];
        for m in &masks {
            for v in values {
                let mut got = Vec::new();
                m.write_json(v, &mut got).unwrap();
                let parsed: Value = serde_json::from_str(v).unwrap();
                let want = serde_json::to_vec(&m.apply(&parsed)).unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap(),
                    "{m:?} {v}"
                );
            }
        }
    }

    #[test]
    fn year_generalises_dates_and_nulls_anything_else() {
        assert_eq!(Mask::Year.apply(&json!("1990-05-17")), json!("1990"));
        assert_eq!(
            Mask::Year.apply(&json!("2024-01-02T03:04:05Z")),
            json!("2024")
        );
        assert_eq!(Mask::Year.apply(&json!("May 1990")), Value::Null);
        assert_eq!(Mask::Year.apply(&json!(1990)), Value::Null);
    }
}
