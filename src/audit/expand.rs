//! Reading a compacted log (record format 2): definition records, and the
//! records that refer to them.
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

use super::chain;
use super::record::DEFINITION_EVENT;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Hex digits of a definition id: 64 bits, so ids of distinct contents
/// do not meet in practice, and the writer lengthens one that would.
pub const ID_HEX: usize = 16;

/// SHA-256 of a definition's `shared` object (its canonical JSON), in hex:
/// its id is a prefix of this, [`ID_HEX`] digits long unless the writer
/// had to lengthen it.
pub fn content_digest(shared_canonical: &[u8]) -> String {
    hex::encode(Sha256::digest(shared_canonical))
}

/// Whether a parsed record is a definition.
pub fn is_definition(rec: &Value) -> bool {
    rec.get("event").and_then(Value::as_str) == Some(DEFINITION_EVENT)
}

/// The definitions read so far, by id. Holds each distinct content once;
/// its size is that of the distinct definitions in the files read.
#[derive(Debug, Default)]
pub struct Resolver {
    defs: HashMap<String, Arc<Value>>,
}

impl Resolver {
    /// When `rec` is a definition: checks that its id is derived from its
    /// content and does not name other content than before, remembers it,
    /// and returns `Ok(true)`. Anything else: `Ok(false)`.
    pub fn define(&mut self, rec: &Value) -> Result<bool, String> {
        if !is_definition(rec) {
            return Ok(false);
        }
        let id = rec
            .get("def")
            .and_then(Value::as_str)
            .ok_or("a definition without a `def` id")?;
        let shared = rec
            .get("shared")
            .filter(|s| s.is_object())
            .ok_or("a definition without a `shared` object")?;
        let digest = content_digest(&chain::canonical(shared));
        if id.len() < ID_HEX || !digest.starts_with(id) {
            return Err(format!(
                "definition {id}: its id is not derived from its content (SHA-256 {}…)",
                &digest[..ID_HEX]
            ));
        }
        match self.defs.get(id) {
            // The same content again: a new file, or the writer had
            // forgotten it. One content, one id: nothing to choose.
            Some(known) if **known == *shared => {}
            Some(_) => {
                return Err(format!(
                    "definition {id} is defined again with other content"
                ));
            }
            None => {
                self.defs.insert(id.to_string(), Arc::new(shared.clone()));
            }
        }
        Ok(true)
    }

    /// The definition a record refers to, if it refers to one.
    fn referred<'a>(&'a self, rec: &Value) -> Result<Option<(&'a str, &'a Value)>, String> {
        let Some(def) = rec.get("def") else {
            return Ok(None);
        };
        let id = def.as_str().ok_or("`def` is not a definition id")?;
        match self.defs.get_key_value(id) {
            Some((id, shared)) => Ok(Some((id.as_str(), shared.as_ref()))),
            None => Err(format!(
                "refers to definition {id}, which no earlier record defines (each file holds \
                 the definitions its records use, before their first use: was the file cut, \
                 or a definition removed?)"
            )),
        }
    }

    /// Whether a record (not a definition) refers only to a definition read
    /// before, and merging the two leaves no key in both.
    pub fn check(&self, rec: &Value) -> Result<(), String> {
        match self.referred(rec)? {
            Some((id, shared)) => {
                let mut path = String::new();
                disjoint(rec, shared, &mut path).map_err(|p| overlap(&p, id))
            }
            None => Ok(()),
        }
    }

    /// The record with its definition merged in and `def` removed: what it
    /// says in full. A record that refers to nothing is returned as it is.
    pub fn expand(&self, mut rec: Value) -> Result<Value, String> {
        let Some((id, shared)) = self.referred(&rec)? else {
            return Ok(rec);
        };
        let id = id.to_string();
        if let Some(obj) = rec.as_object_mut() {
            obj.remove("def");
        }
        merge(&mut rec, shared).map_err(|p| overlap(&p, &id))?;
        Ok(rec)
    }
}

fn overlap(path: &str, id: &str) -> String {
    format!("{path} is both in the record and in its definition {id}")
}

/// Merges `from` into `into`: objects key by key, arrays of the same length
/// element by element. Anything else present in both is an overlap; `Err`
/// names where.
pub fn merge(into: &mut Value, from: &Value) -> Result<(), String> {
    let mut path = String::new();
    merge_at(into, from, &mut path).map_err(|()| describe(&path))
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
fn disjoint(a: &Value, b: &Value, path: &mut String) -> Result<(), String> {
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
        _ => Err(describe(path)),
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
        let id = content_digest(&chain::canonical(&shared))[..ID_HEX].to_string();
        json!({"event": "definition", "def": id, "shared": shared})
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
    fn unknown_ids_overlaps_and_forged_ids_are_refused() {
        let mut r = Resolver::default();
        let d = definition(json!({"route": "/c", "status": 200}));
        r.define(&d).unwrap();
        let unknown = json!({"def": "00000000000000ff"});
        assert!(r.check(&unknown).unwrap_err().contains("no earlier record"));
        assert!(r.expand(unknown).is_err());
        let twice = json!({"def": d["def"], "status": 500});
        assert_eq!(
            r.check(&twice).unwrap_err(),
            format!(
                "`status` is both in the record and in its definition {}",
                d["def"].as_str().unwrap()
            )
        );
        assert!(r.expand(twice).is_err());
        let uneven = definition(json!({"budget": [{"limit": 1}]}));
        r.define(&uneven).unwrap();
        let rec = json!({"def": uneven["def"], "budget": [{"used": 1}, {"used": 2}]});
        assert!(r.check(&rec).unwrap_err().contains("`budget`"));
        // Another content under a known id, or an id not derived from it.
        let mut forged = d.clone();
        forged["shared"]["status"] = json!(500);
        assert!(r.define(&forged).unwrap_err().contains("not derived"));
        let mut short = d.clone();
        short["def"] = json!(&d["def"].as_str().unwrap()[..8]);
        assert!(r.define(&short).is_err());
        // The same content again is fine.
        assert!(r.define(&d).unwrap());
    }
}
