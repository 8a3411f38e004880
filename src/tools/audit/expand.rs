//! Reading a compacted log (record formats 2 and 3): definition records,
//! and the records that refer to them.
//!
//! A request record names a definition by id in `def`; the definition
//! record, earlier in the chain (the writer puts it in the same file,
//! before the first record that uses it), holds the rest of the record
//! under `shared`. A reader goes through the log in chain order, remembers
//! each definition ([`Resolver::define`]) and merges it into the records
//! that refer to it ([`Resolver::expand`]): objects key by key, arrays of
//! the same length element by element (the budgets a request took over
//! their limit: the limits are shared, what the request used is its own).
//!
//! Two rules keep every reader seeing what the chain hashed, once: a
//! definition's id must be derived from its content (so one id cannot name
//! two contents), and a key may not be both in a record and in its
//! definition (a reader would have to pick one). [`super::verify`] applies
//! both to every record, so a log that verifies expands without error.
//!
//! Format 3 request lines also leave out `alg` and `prev` (see
//! [`super::chain`]); the reader puts them back from the chain (the
//! previous line's hash, the key named by the last record that names one),
//! so an expanded record states its link like a format-1 record did.

use crate::audit::chain;
use crate::audit::define::{ID_LEN, content_digest};
use crate::audit::record::DEFINITION_EVENT;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Hex digits of a format-2 definition id.
pub const ID_HEX: usize = 16;

/// The same in hex, as format 2 derived its ids ([`ID_HEX`] digits).
pub fn content_digest_hex(shared_canonical: &[u8]) -> String {
    hex::encode(Sha256::digest(shared_canonical))
}

/// Whether a parsed record is a definition.
pub fn is_definition(rec: &Value) -> bool {
    rec.get("event").and_then(Value::as_str) == Some(DEFINITION_EVENT)
}

/// The definitions read so far, by id. Holds each distinct content once;
/// its size is that of the distinct definitions in the files read.
///
/// It also follows the chain (the last record's `hash` and the last `alg`
/// named), to give [`Resolver::expand`]'s records the `prev` and `alg`
/// their lines leave out; for that it must see every record, in order.
#[derive(Debug, Default)]
pub struct Resolver {
    defs: HashMap<String, Arc<Value>>,
    last_hash: Option<Value>,
    alg: Option<Value>,
}

impl Resolver {
    /// When `rec` is a definition: checks that its id is derived from its
    /// content and does not name other content than before, remembers it,
    /// and returns `Ok(true)`. Anything else: `Ok(false)`.
    pub fn define(&mut self, rec: &Value) -> Result<bool, DefinitionError> {
        if !is_definition(rec) {
            return Ok(false);
        }
        let id = rec
            .get("def")
            .and_then(Value::as_str)
            .ok_or(DefinitionError::NoId)?;
        let shared = rec
            .get("shared")
            .filter(|s| s.is_object())
            .ok_or(DefinitionError::NoShared)?;
        // Format 3 ids are base64url, format 2 ids hex: each checked
        // against its own spelling of the digest, and no shorter than the
        // writer makes them.
        let v = rec.get("v").and_then(Value::as_u64).unwrap_or(0);
        let (digest, min) = if v >= chain::COMPACT_CHAIN_VERSION {
            (content_digest(&chain::canonical(shared)), ID_LEN)
        } else {
            (content_digest_hex(&chain::canonical(shared)), ID_HEX)
        };
        if id.len() < min || !digest.starts_with(id) {
            return Err(DefinitionError::NotDerived {
                id: id.to_string(),
                digest: digest[..min].to_string(),
            });
        }
        self.follow(rec);
        match self.defs.get(id) {
            // The same content again: a new file, or the writer had
            // forgotten it. One content, one id: nothing to choose.
            Some(known) if **known == *shared => {}
            Some(_) => {
                return Err(DefinitionError::Redefined { id: id.to_string() });
            }
            None => {
                self.defs.insert(id.to_string(), Arc::new(shared.clone()));
            }
        }
        Ok(true)
    }

    /// The definition a record refers to, if it refers to one.
    fn referred<'a>(
        &'a self,
        rec: &Value,
    ) -> Result<Option<(&'a str, &'a Value)>, DefinitionError> {
        let Some(def) = rec.get("def") else {
            return Ok(None);
        };
        let id = def.as_str().ok_or(DefinitionError::BadReference)?;
        match self.defs.get_key_value(id) {
            Some((id, shared)) => Ok(Some((id.as_str(), shared.as_ref()))),
            None => Err(DefinitionError::Unresolved { id: id.to_string() }),
        }
    }

    /// Whether a record (not a definition) refers only to a definition read
    /// before, and merging the two leaves no key in both.
    pub fn check(&self, rec: &Value) -> Result<(), DefinitionError> {
        match self.referred(rec)? {
            Some((id, shared)) => {
                let mut path = String::new();
                disjoint(rec, shared, &mut path).map_err(|o| o.in_definition(id))
            }
            None => Ok(()),
        }
    }

    /// The record with its definition merged in and `def` removed, and the
    /// `prev` and `alg` its line leaves out put back: what it says in full.
    /// A record that refers to nothing is returned as it is (with those
    /// two). Call it for every record that is not a definition, in order.
    pub fn expand(&mut self, mut rec: Value) -> Result<Value, DefinitionError> {
        if let Some(obj) = rec.as_object_mut() {
            for (key, known) in [("prev", &self.last_hash), ("alg", &self.alg)] {
                if let (false, Some(k)) = (obj.contains_key(key), known) {
                    obj.insert(key.to_string(), k.clone());
                }
            }
        }
        self.follow(&rec);
        let Some((id, shared)) = self.referred(&rec)? else {
            return Ok(rec);
        };
        let id = id.to_string();
        if let Some(obj) = rec.as_object_mut() {
            obj.remove("def");
        }
        merge(&mut rec, shared).map_err(|o| o.in_definition(&id))?;
        Ok(rec)
    }

    /// Notes the chain's position after `rec`.
    fn follow(&mut self, rec: &Value) {
        if let Some(h) = rec.get("hash") {
            self.last_hash = Some(h.clone());
        }
        if let Some(a) = rec.get("alg") {
            self.alg = Some(a.clone());
        }
    }
}

/// Why a definition or a reference to one cannot be trusted: `audit
/// verify` names the record, and readers stop there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("a definition without a `def` id")]
    NoId,
    #[error("a definition without a `shared` object")]
    NoShared,
    /// The id must be a prefix of the content's SHA-256: an edited
    /// definition cannot keep its id.
    #[error("definition {id}: its id is not derived from its content (SHA-256 {digest}…)")]
    NotDerived { id: String, digest: String },
    /// One id, one content: a reader would otherwise have to pick one.
    #[error("definition {id} is defined again with other content")]
    Redefined { id: String },
    #[error("`def` is not a definition id")]
    BadReference,
    #[error(
        "refers to definition {id}, which no earlier record defines (each file holds the \
         definitions its records use, before their first use: was the file cut, or a \
         definition removed?)"
    )]
    Unresolved { id: String },
    /// A fact in both the line and its definition: which one is true?
    #[error("{} is both in the record and in its definition {id}", describe(path))]
    Overlap { path: String, id: String },
}

/// A place where a record and the content merged into it both say
/// something; `Display` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is in both", describe(&self.path))]
pub struct Overlap {
    pub path: String,
}

impl Overlap {
    fn in_definition(self, id: &str) -> DefinitionError {
        DefinitionError::Overlap {
            path: self.path,
            id: id.to_string(),
        }
    }
}

/// Merges `from` into `into`: objects key by key, arrays of the same length
/// element by element. Anything else present in both is an overlap; `Err`
/// names where.
pub fn merge(into: &mut Value, from: &Value) -> Result<(), Overlap> {
    let mut path = String::new();
    merge_at(into, from, &mut path).map_err(|()| Overlap { path })
}

fn merge_at(into: &mut Value, from: &Value, path: &mut String) -> Result<(), ()> {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(x) => {
                        let len = path.len();
                        push_key(path, k);
                        merge_at(x, v, path)?;
                        path.truncate(len);
                    }
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter_mut().zip(b).enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                merge_at(x, y, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Err(()),
    }
}

/// [`merge`]'s check alone, without building anything.
fn disjoint(a: &Value, b: &Value, path: &mut String) -> Result<(), Overlap> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if let Some(x) = a.get(k) {
                    let len = path.len();
                    push_key(path, k);
                    disjoint(x, v, path)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                disjoint(x, y, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Err(Overlap { path: path.clone() }),
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn describe(path: &str) -> String {
    if path.is_empty() {
        "the record itself".to_string()
    } else {
        format!("`{path}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(shared: Value) -> Value {
        let id = content_digest(&chain::canonical(&shared))[..ID_LEN].to_string();
        json!({"event": "definition", "def": id, "shared": shared, "v": 3})
    }

    #[test]
    fn a_record_expands_to_itself_plus_its_definition() {
        let mut r = Resolver::default();
        let d = definition(json!({"route": "/c/{id}", "principal": {"roles": ["a"]},
            "budget": [{"limit": 5}], "response_body": {"records": 1}}));
        assert!(r.define(&d).unwrap());
        let rec = json!({"def": d["def"], "principal": {"id": "u"}, "budget": [{"used": 9}],
            "response_body": {"disclosed": []}, "seq": 1});
        r.check(&rec).unwrap();
        assert_eq!(
            r.expand(rec).unwrap(),
            json!({"route": "/c/{id}", "principal": {"id": "u", "roles": ["a"]},
                "budget": [{"limit": 5, "used": 9}],
                "response_body": {"records": 1, "disclosed": []}, "seq": 1})
        );
        // A record without `def` (format 1, events) is as it is.
        assert!(!r.define(&json!({"seq": 2})).unwrap());
        assert_eq!(r.expand(json!({"seq": 2})).unwrap(), json!({"seq": 2}));
    }

    #[test]
    fn expanded_records_get_back_the_link_and_key_their_lines_leave_out() {
        let mut r = Resolver::default();
        let mut d = definition(json!({"route": "/c"}));
        d["hash"] = json!("h0");
        d["alg"] = json!("sha256");
        r.define(&d).unwrap();
        let rec = json!({"def": d["def"], "hash": "h1", "seq": 1});
        assert_eq!(
            r.expand(rec).unwrap(),
            json!({"alg": "sha256", "prev": "h0", "hash": "h1", "route": "/c", "seq": 1})
        );
        // The next one links to the record before it, not the definition.
        let rec = json!({"def": d["def"], "hash": "h2", "seq": 2});
        assert_eq!(r.expand(rec).unwrap()["prev"], "h1");
        // What a line states stays as it is.
        let rec = json!({"def": d["def"], "hash": "h3", "prev": "x", "seq": 3});
        assert_eq!(r.expand(rec).unwrap()["prev"], "x");
    }

    #[test]
    fn unknown_ids_overlaps_and_forged_ids_are_refused() {
        let mut r = Resolver::default();
        let d = definition(json!({"route": "/c", "status": 200}));
        r.define(&d).unwrap();
        let unknown = json!({"def": "00000000000000ff"});
        assert!(
            r.check(&unknown)
                .unwrap_err()
                .to_string()
                .contains("no earlier record")
        );
        assert!(r.expand(unknown).is_err());
        let twice = json!({"def": d["def"], "status": 500});
        assert_eq!(
            r.check(&twice).unwrap_err().to_string(),
            format!(
                "`status` is both in the record and in its definition {}",
                d["def"].as_str().unwrap()
            )
        );
        assert!(r.expand(twice).is_err());
        let uneven = definition(json!({"budget": [{"limit": 1}]}));
        r.define(&uneven).unwrap();
        let rec = json!({"def": uneven["def"], "budget": [{"used": 1}, {"used": 2}]});
        assert!(r.check(&rec).unwrap_err().to_string().contains("`budget`"));
        // Another content under a known id, or an id not derived from it.
        let mut forged = d.clone();
        forged["shared"]["status"] = json!(500);
        assert!(
            r.define(&forged)
                .unwrap_err()
                .to_string()
                .contains("not derived")
        );
        let mut short = d.clone();
        short["def"] = json!(&d["def"].as_str().unwrap()[..8]);
        assert!(r.define(&short).is_err());
        // A format-2 definition's id is hex, 16 digits at least; a
        // base64url id in a format-2 record is not derived from it.
        let shared = json!({"route": "/two"});
        let hex_id = content_digest_hex(&chain::canonical(&shared))[..ID_HEX].to_string();
        let two = json!({"event": "definition", "def": hex_id, "shared": shared, "v": 2});
        assert!(r.define(&two).unwrap());
        let mut b64 = two.clone();
        b64["def"] = json!(content_digest(&chain::canonical(&shared))[..ID_LEN]);
        assert!(
            r.define(&b64)
                .unwrap_err()
                .to_string()
                .contains("not derived")
        );
        // The same content again is fine.
        assert!(r.define(&d).unwrap());
    }
}
