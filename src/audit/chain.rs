//! The hash chain that makes the log tamper-evident.
//!
//! Each record carries `seq` (0, 1, 2, … in its chain, across rotated
//! files; from format 4 a chain is one writer run, see [`super::origin`],
//! before that it went on across restarts) and `hash` = SHA-256 — or
//! HMAC-SHA256 with the configured key — over the previous record's hash
//! (64 ASCII hex characters; 64 zeros for a chain's first record)
//! followed by the record's canonical form. The previous hash is written as
//! `prev` on every record up to format 2; from format 3 on only where the
//! line before may not be its predecessor in the chain (the first line of a
//! file or of a writer's run: definition, retention, genesis and seal
//! records, which always carry it), so that a request line does not spend
//! 73 bytes repeating the line above it. A verifier takes an absent `prev`
//! from the previous line of the same chain (format 4: the previous line
//! with the same tag `c`; format 3: the previous line), so the hash still
//! covers the link.
//!
//! Spelling: formats 3 and 4 write `hash` and `prev` in base64url without
//! padding (43 characters, [`spell`]), formats 1 and 2 in hex. The digest
//! input is the hex form in every format, so the chain's arithmetic is the
//! same whichever way a line spells it.
//!
//! Canonical form: the record as JSON without the `hash` key, object keys
//! sorted bytewise at every level, no whitespace, serde_json's string
//! escaping, integers only (no floats). A verifier can rebuild it from the
//! parsed line, so editing, deleting, inserting or reordering a line breaks
//! the chain at that line.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// First record format that spells hashes in base64url and leaves `prev`
/// and `alg` off request lines.
pub const COMPACT_CHAIN_VERSION: u64 = 3;

/// Characters of a hash spelled in base64url (32 bytes, no padding).
pub const HASH_B64_LEN: usize = 43;

/// A hash (hex, as the chain computes with it) as a format-3 line spells
/// it: base64url without padding, 43 characters instead of 64. A string
/// that is not 64 hex digits is returned as it is (only the writer's own
/// hashes come here).
pub fn spell(hex_hash: &str) -> String {
    let mut raw = [0u8; 32];
    match hex::decode_to_slice(hex_hash, &mut raw) {
        Ok(()) => URL_SAFE_NO_PAD.encode(raw),
        Err(_) => hex_hash.to_string(),
    }
}

/// The hex form of a hash as a line of format `v` spells it (base64url
/// from [`COMPACT_CHAIN_VERSION`] on, hex before); `None` when it is not
/// a well-formed 256-bit hash in that spelling. Only one spelling of each
/// hash is accepted (the verifier re-spells the line and compares bytes).
pub fn unspell(text: &str, v: u64) -> Option<String> {
    if v >= COMPACT_CHAIN_VERSION {
        if text.len() != HASH_B64_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        (raw.len() == 32 && URL_SAFE_NO_PAD.encode(&raw) == text).then(|| hex::encode(raw))
    } else {
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| text.to_ascii_lowercase())
    }
}

/// `hex_hash` as a line of format `v` spells it.
pub fn spell_for(hex_hash: &str, v: u64) -> String {
    if v >= COMPACT_CHAIN_VERSION {
        spell(hex_hash)
    } else {
        hex_hash.to_string()
    }
}

/// How record hashes are computed.
#[derive(Clone)]
pub enum ChainKey {
    Sha256,
    Hmac(Hmac<Sha256>),
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alg())
    }
}

impl ChainKey {
    pub fn new(hmac_key: Option<&[u8]>) -> Self {
        match hmac_key.and_then(|k| Hmac::<Sha256>::new_from_slice(k).ok()) {
            Some(mac) => ChainKey::Hmac(mac),
            None => ChainKey::Sha256,
        }
    }

    /// The `alg` value records carry, so a verifier knows whether it needs
    /// the key.
    pub fn alg(&self) -> &'static str {
        match self {
            ChainKey::Sha256 => "sha256",
            ChainKey::Hmac(_) => "hmac-sha256",
        }
    }

    /// Hex digest over `prev || canonical` (`prev` in hex).
    pub fn digest(&self, prev: &str, canonical: &[u8]) -> String {
        hex::encode(self.digest_raw(prev, canonical))
    }

    /// The digest's 32 bytes, for the writer to spell two ways (hex for the
    /// next link, base64url for the line) without decoding one of them.
    pub fn digest_raw(&self, prev: &str, canonical: &[u8]) -> [u8; 32] {
        match self {
            ChainKey::Sha256 => {
                let mut h = Sha256::new();
                h.update(prev.as_bytes());
                h.update(canonical);
                h.finalize().into()
            }
            ChainKey::Hmac(mac) => {
                let mut m = mac.clone();
                m.update(prev.as_bytes());
                m.update(canonical);
                m.finalize().into_bytes().into()
            }
        }
    }
}

/// Where the chain stands: the next record's `seq`, and the hash it links
/// to (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub next_seq: u64,
    pub last_hash: String,
}

impl ChainState {
    pub fn genesis() -> Self {
        Self {
            next_seq: 0,
            last_hash: GENESIS.to_string(),
        }
    }
}

/// A JSON value with every object's keys sorted (bytewise).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut out = Map::with_capacity(m.len());
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Canonical bytes of a parsed record (the `hash` key already removed).
pub fn canonical(v: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail (its keys are strings).
    serde_json::to_vec(&sorted(v)).unwrap_or_default()
}

/// Turns the canonical form of a record into its log line:
/// `{"hash":"…",` + the canonical fields + `}\n`.
pub fn line(hash: &str, canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len() + 80);
    write_line(&mut out, hash, canonical);
    out
}

/// [`line`], appended to `out` (the writer's batch) without a copy between.
pub fn write_line(out: &mut Vec<u8>, hash: &str, canonical: &[u8]) {
    out.extend_from_slice(b"{\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"");
    match canonical {
        [b'{', b'}'] | [] => out.push(b'}'),
        [b'{', rest @ ..] => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        other => out.extend_from_slice(other),
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_orders_nested_keys_bytewise() {
        let v: Value =
            serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":1,"x":2}]},"B":0,"a":null}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            r#"{"B":0,"a":null,"b":{"a":[{"x":2,"y":1}],"z":1}}"#
        );
    }

    #[test]
    fn line_prepends_the_hash_and_parses_back() {
        let body = br#"{"a":1,"seq":0}"#;
        let l = line("ab", body);
        assert_eq!(l, b"{\"hash\":\"ab\",\"a\":1,\"seq\":0}\n");
        let mut v: Value = serde_json::from_slice(&l).unwrap();
        v.as_object_mut().unwrap().remove("hash");
        assert_eq!(canonical(&v), body);
    }

    #[test]
    fn hmac_and_plain_digests_differ_and_depend_on_prev() {
        let plain = ChainKey::new(None);
        let keyed = ChainKey::new(Some(&[7u8; 32]));
        assert_eq!(plain.alg(), "sha256");
        assert_eq!(keyed.alg(), "hmac-sha256");
        let a = plain.digest(GENESIS, b"{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, keyed.digest(GENESIS, b"{}"));
        assert_ne!(a, plain.digest(&a, b"{}"));
    }

    #[test]
    fn hashes_are_spelled_one_way_per_format() {
        let h = ChainKey::new(None).digest(GENESIS, b"{}");
        let b64 = spell(&h);
        assert_eq!(b64.len(), HASH_B64_LEN);
        assert_eq!(spell(GENESIS), "A".repeat(43));
        assert_eq!(unspell(&b64, 3).as_deref(), Some(h.as_str()));
        assert_eq!(unspell(&h, 2).as_deref(), Some(h.as_str()));
        assert_eq!(spell_for(&h, 2), h);
        // The other format's spelling, padding, another alphabet, or the
        // same bytes with other trailing bits: refused.
        assert_eq!(unspell(&h, 3), None);
        assert_eq!(unspell(&b64, 2), None);
        assert_eq!(unspell(&format!("{b64}="), 3), None);
        // 43 characters hold 258 bits: the last one's two low bits must
        // be zero ('B' has one set).
        assert_eq!(unspell(&format!("{}B", &b64[..42]), 3), None);
        assert_eq!(unspell(&"+".repeat(43), 3), None);
    }
}
