//! Parsing inspected bodies, with the checks that must come first.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON")]
    Malformed,
    #[error("body nests deeper than {0} levels")]
    TooDeep(usize),
    /// An object names the same key twice. Parsers disagree on which copy
    /// wins (serde_json keeps the last, many legacy stacks the first), so
    /// the proxy could check one value while the upstream stores another.
    #[error("body has an object with a duplicate key")]
    DuplicateKey,
}

/// Parses a JSON body after checking its nesting depth with a byte scan
/// (cheap, and no recursive descent on hostile input).
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, BodyError> {
    check_depth(bytes, max_depth)?;
    serde_json::from_slice(bytes).map_err(|_| BodyError::Malformed)
}

/// Like [`parse_json`], but an object with the same key twice is refused
/// ([`BodyError::DuplicateKey`]). Used for request bodies, which the legacy
/// upstream parses again after the proxy checked them. Response bodies are
/// parsed with [`parse_json`]: a duplicate there keeps one copy, which is
/// then redacted like any other, and only that copy is re-serialised.
pub fn parse_json_unique(bytes: &[u8], max_depth: usize) -> Result<Value, BodyError> {
    use serde::Deserialize;
    check_depth(bytes, max_depth)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Unique::deserialize(&mut de).map_err(|e| {
        if e.is_data() && e.to_string().starts_with(DUPLICATE) {
            BodyError::DuplicateKey
        } else {
            BodyError::Malformed
        }
    })?;
    de.end().map_err(|_| BodyError::Malformed)?;
    Ok(value.0)
}

const DUPLICATE: &str = "duplicate key";

/// A JSON value whose objects are checked for duplicate keys while built.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), BodyError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(BodyError::TooDeep(max_depth));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_ignores_brackets_in_strings() {
        assert!(parse_json(br#"{"a":"[[[[[[[[[["}"#, 3).is_ok());
        assert_eq!(parse_json(b"[[[[1]]]]", 3), Err(BodyError::TooDeep(3)));
        assert_eq!(parse_json(b"{\"a\":", 3), Err(BodyError::Malformed));
    }

    #[test]
    fn unique_parse_refuses_duplicate_keys_at_any_depth() {
        let ok = br#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#;
        assert_eq!(
            parse_json_unique(ok, 8).unwrap(),
            parse_json(ok, 8).unwrap()
        );
        for dup in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"b":{"x":1,"x":1}}"#,
            br#"[{"k":"v"},{"k":"v","k":"w"}]"#,
            // The same key spelled with an escape is still the same key.
            br#"{"email":"a@x","email":"b@x"}"#,
        ] {
            assert_eq!(parse_json_unique(dup, 8), Err(BodyError::DuplicateKey));
            assert!(parse_json(dup, 8).is_ok(), "the lenient parser keeps one");
        }
        assert_eq!(
            parse_json_unique(b"{\"a\":1} x", 8),
            Err(BodyError::Malformed)
        );
        assert_eq!(parse_json_unique(b"[1e400]", 8), Err(BodyError::Malformed));
        assert_eq!(parse_json_unique(b"[[[1]]]", 2), Err(BodyError::TooDeep(2)));
        assert_eq!(parse_json_unique(b"\"\xff\"", 2), Err(BodyError::Malformed));
    }
}
