//! What an `object` or `array` field may hold (its `of`), checked on the
//! value as it arrives: the field is one value, decided once, so whoever
//! may read it reads everything inside it. Without this check an upstream
//! could put any personal data inside a list of order items a role may
//! read.
//!
//! The check is one serde pass over the value (a `DeserializeSeed`), so
//! both redactors run the same code: the tree walk over its parsed value,
//! the byte redactor over the value's bytes, where a repeated key (which
//! a parsed map would have collapsed to its last copy) is caught too.

use crate::config::{Holds, JsonType, Shape};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Load-time check of a field's `of`: only `array` and `object` fields
/// hold something, an object holds members, and what is held is named
/// down to scalar kinds (an `any`, or a list inside, would reopen the hole
/// `of` closes).
pub fn check(shape: Shape, of: Option<&Holds>) -> Result<(), HoldsError> {
    let Some(of) = of else { return Ok(()) };
    match (shape, of) {
        (Shape::Array, _) | (Shape::Object, Holds::Members(_)) => check_held(of),
        (Shape::Object, Holds::Kind(_)) => Err(HoldsError::ObjectOfKind),
        _ => Err(HoldsError::NotAContainer(shape)),
    }
}

/// Why a field's `of` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldsError {
    #[error(
        "`of` of an object names its members (`of: {{ city: string }}`): a map keyed by data is not a catalogue"
    )]
    ObjectOfKind,
    #[error(
        "`of` describes what an `array` or `object` field holds; this field's shape is `{}`",
        .0.as_str()
    )]
    NotAContainer(Shape),
    #[error(
        "`of` names `{}`: name the members of an object (`{{ key: string }}`) or a scalar kind (string, number, boolean, scalar)",
        .0.as_str()
    )]
    NotScalar(Shape),
    #[error("`of: {{}}` admits only empty objects: name the members")]
    NoMembers,
}

fn check_held(of: &Holds) -> Result<(), HoldsError> {
    match of {
        Holds::Kind(k) if k.is_scalar() => Ok(()),
        Holds::Kind(k) => Err(HoldsError::NotScalar(*k)),
        Holds::Members(m) if m.is_empty() => Err(HoldsError::NoMembers),
        Holds::Members(m) => m.values().try_for_each(check_held),
    }
}

/// Whether a parsed value of an `array`/`object` field holds only what
/// `of` describes.
pub fn value_holds(shape: Shape, of: &Holds, value: &serde_json::Value) -> bool {
    Top { shape, of }.deserialize(value).is_ok()
}

/// The same over a value's JSON text (well-formed: the scanner read it).
pub fn text_holds(shape: Shape, of: &Holds, text: &str) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    Top { shape, of }.deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// The field's value itself: an array of held things, or an object of
/// held members (`null` passes: it carries nothing).
struct Top<'a> {
    shape: Shape,
    of: &'a Holds,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.shape {
            Shape::Array => d.deserialize_any(Elements(self.of)),
            _ => Held(self.of).deserialize(d),
        }
    }
}

/// An array whose every element is held.
struct Elements<'a>(&'a Holds);

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Held(self.0))?.is_some() {}
        Ok(())
    }
}

/// One held value: of the named kind, or an object of named members,
/// each at most once.
#[derive(Clone, Copy)]
struct Held<'a>(&'a Holds);

impl Held<'_> {
    fn kind<E: de::Error>(self, kind: JsonType) -> Result<(), E> {
        match self.0 {
            Holds::Kind(shape) if shape.shows(kind) => Ok(()),
            _ => Err(E::custom(format_args!(
                "a {} is not held here",
                kind.as_str()
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Held<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Held<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value the field's `of` describes")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.kind(JsonType::Boolean)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.kind(JsonType::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.kind(JsonType::Number)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.kind(JsonType::Number)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.kind(JsonType::String)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("a list is not held here"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Holds::Members(members) = self.0 else {
            return Err(de::Error::custom("an object is not held here"));
        };
        let mut seen: Vec<&str> = Vec::with_capacity(members.len());
        while let Some(key) = map.next_key::<std::borrow::Cow<'_, str>>()? {
            let Some((name, held)) = members.get_key_value(key.as_ref()) else {
                return Err(de::Error::custom("a member is not named"));
            };
            if seen.contains(&name.as_str()) {
                return Err(de::Error::custom("a member is repeated"));
            }
            seen.push(name);
            map.next_value_seed(Held(held))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(yaml_of: serde_json::Value) -> Holds {
        serde_json::from_value(yaml_of).unwrap()
    }

    #[test]
    fn only_what_of_names_is_held_in_either_form() {
        let items = holds(json!({"sku": "string", "qty": "number", "price": "number"}));
        let address = holds(json!({"city": "string", "geo": {"lat": "number"}}));
        let cases = [
            (
                Shape::Array,
                &items,
                r#"[{"sku":"a","qty":1},{"price":2.5,"sku":null}]"#,
                true,
            ),
            (Shape::Array, &items, "[]", true),
            (Shape::Array, &items, "null", true),
            (
                Shape::Array,
                &items,
                r#"[{"sku":"a","id_card":"110101199001010011"}]"#,
                false,
            ),
            (
                Shape::Array,
                &items,
                r#"[{"sku":{"phone":"13900131001"}}]"#,
                false,
            ),
            (Shape::Array, &items, r#"[{"sku":["a"]}]"#, false),
            (Shape::Array, &items, r#"["13900131001"]"#, false),
            (Shape::Array, &items, r#"[[{"sku":"a"}]]"#, false),
            (
                Shape::Object,
                &address,
                r#"{"city":"X","geo":{"lat":1.5}}"#,
                true,
            ),
            (
                Shape::Object,
                &address,
                r#"{"geo":{"lat":1,"phone":"1"}}"#,
                false,
            ),
            (
                Shape::Object,
                &address,
                r#"{"city":"X","street":"Y"}"#,
                false,
            ),
            (Shape::Object, &address, r#"{"city":1}"#, false),
        ];
        for (shape, of, text, want) in cases {
            assert_eq!(text_holds(shape, of, text), want, "text {text}");
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(value_holds(shape, of, &v), want, "value {text}");
        }
        // A repeated key hides its first copy from a parsed value: the
        // bytes are refused.
        let repeated = r#"{"city":"X","city":"Y"}"#;
        assert!(!text_holds(Shape::Object, &address, repeated));
        let escaped = r#"{"city":"X","\u0063ity":"Y"}"#;
        assert!(!text_holds(Shape::Object, &address, escaped));
        let strings = holds(json!("string"));
        assert!(text_holds(Shape::Array, &strings, r#"["a",null,"b"]"#));
        assert!(!text_holds(Shape::Array, &strings, r#"["a",1]"#));
    }

    #[test]
    fn what_of_may_say_is_checked_at_load() {
        assert!(check(Shape::Array, Some(&holds(json!("string")))).is_ok());
        assert!(check(Shape::Object, Some(&holds(json!({"a": "number"})))).is_ok());
        for (shape, of) in [
            (Shape::String, json!("string")),
            (Shape::Object, json!("string")),
            (Shape::Array, json!("any")),
            (Shape::Array, json!("array")),
            (Shape::Array, json!({"a": "object"})),
            (Shape::Object, json!({})),
        ] {
            assert!(
                check(shape, Some(&holds(of.clone()))).is_err(),
                "{shape:?} {of}"
            );
        }
    }
}
