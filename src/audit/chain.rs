//! The hash chain that makes the log tamper-evident.
//!
//! Each record carries `seq` (0, 1, 2, … across restarts and rotated files),
//! `prev` (the previous record's hash; 64 zeros for the first record ever)
//! and `hash` = SHA-256 — or HMAC-SHA256 with the configured key — over
//! `prev` (64 ASCII hex characters) followed by the record's canonical form.
//!
//! Canonical form: the record as JSON without the `hash` key, object keys
//! sorted bytewise at every level, no whitespace, serde_json's string
//! escaping, integers only (no floats). A verifier can rebuild it from the
//! parsed line, so editing, deleting, inserting or reordering a line breaks
//! the chain at that line.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

    /// Hex digest over `prev || canonical`.
    pub fn digest(&self, prev: &str, canonical: &[u8]) -> String {
        match self {
            ChainKey::Sha256 => {
                let mut h = Sha256::new();
                h.update(prev.as_bytes());
                h.update(canonical);
                hex::encode(h.finalize())
            }
            ChainKey::Hmac(mac) => {
                let mut m = mac.clone();
                m.update(prev.as_bytes());
                m.update(canonical);
                hex::encode(m.finalize().into_bytes())
            }
        }
    }
}

/// Where the chain stands: the next record's `seq` and `prev`.
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
}
