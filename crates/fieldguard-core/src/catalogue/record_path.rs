//! Record selectors: the JSONPath that says where records are in a body,
//! parsed once at load time (with `jsonpath-rust`'s parser) and compiled to
//! plain steps, so a body is walked once instead of queried per field.

use jsonpath_rust::parser::model::{Segment, Selector};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// Every element of an array.
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPath {
    pub text: String,
    pub steps: Vec<Step>,
}

/// Result of resolving a selector against a document.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Every step found its key or array.
    Found,
    /// The document does not have the shape the selector describes.
    Missing,
}

/// A record selector the catalogue cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid JSONPath `{text}`: {reason}")]
    Invalid { text: String, reason: String },
    /// Filters, slices, unions and `..` could miss records.
    #[error("unsupported JSONPath segment `{segment}` in `{text}` (use names, [n] or [*])")]
    Unsupported { segment: String, text: String },
}

impl RecordPath {
    /// Supported: `$`, `.name`, `['name']`, `[n]`, `[*]`. Filters, slices,
    /// unions and descendant (`..`) selectors are refused: a record selector
    /// must name one definite place, or the filter could miss records.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let query =
            jsonpath_rust::parser::parse_json_path(text).map_err(|e| SelectorError::Invalid {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
        let mut steps = Vec::new();
        for seg in &query.segments {
            match seg {
                Segment::Selector(Selector::Name(n)) => steps.push(Step::Key(n.clone())),
                Segment::Selector(Selector::Wildcard) => steps.push(Step::Each),
                Segment::Selector(Selector::Index(i)) if *i >= 0 => {
                    steps.push(Step::Index(*i as usize))
                }
                other => {
                    return Err(SelectorError::Unsupported {
                        segment: other.to_string(),
                        text: text.to_string(),
                    });
                }
            }
        }
        Ok(Self {
            text: text.to_string(),
            steps,
        })
    }

    /// True when the selector names a single record (no `[*]`).
    pub fn is_single(&self) -> bool {
        !self.steps.contains(&Step::Each)
    }

    /// Calls `f` for every record; it returns whether the record stays.
    /// A record that does not stay is dropped from its `[*]` list, or
    /// replaced by null anywhere else (the caller refuses a single-record
    /// body whose record does not stay).
    pub fn for_each_mut<F, E>(&self, doc: &mut Value, f: &mut F) -> Result<Resolve, E>
    where
        F: FnMut(&mut Value) -> Result<bool, E>,
    {
        walk(&self.steps, doc, f)
    }
}

fn walk<F, E>(steps: &[Step], v: &mut Value, f: &mut F) -> Result<Resolve, E>
where
    F: FnMut(&mut Value) -> Result<bool, E>,
{
    let Some((first, rest)) = steps.split_first() else {
        // A record the caller may not see that is not an element of a
        // `[*]` list (so cannot be dropped from it) becomes null: its
        // place stays, its data goes. (A single-record body is refused
        // outright by the caller.)
        if !f(v)? {
            *v = Value::Null;
        }
        return Ok(Resolve::Found);
    };
    match first {
        Step::Key(k) => match v.as_object_mut().and_then(|o| o.get_mut(k.as_str())) {
            Some(child) => walk(rest, child, f),
            None => Ok(Resolve::Missing),
        },
        Step::Index(i) => match v.as_array_mut().and_then(|a| a.get_mut(*i)) {
            Some(child) => walk(rest, child, f),
            None => Ok(Resolve::Missing),
        },
        Step::Each => {
            let Some(items) = v.as_array_mut() else {
                return Ok(Resolve::Missing);
            };
            if rest.is_empty() {
                let mut err = None;
                items.retain_mut(|item| {
                    if err.is_some() {
                        return true;
                    }
                    match f(item) {
                        Ok(keep) => keep,
                        Err(e) => {
                            err = Some(e);
                            true
                        }
                    }
                });
                return match err {
                    Some(e) => Err(e),
                    None => Ok(Resolve::Found),
                };
            }
            for item in items.iter_mut() {
                if walk(rest, item, f)? == Resolve::Missing {
                    return Ok(Resolve::Missing);
                }
            }
            Ok(Resolve::Found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_supported_selectors() {
        assert_eq!(RecordPath::parse("$").unwrap().steps, vec![]);
        assert_eq!(
            RecordPath::parse("$.customers[*]").unwrap().steps,
            vec![Step::Key("customers".into()), Step::Each]
        );
        assert_eq!(
            RecordPath::parse("$['data'].items[0]").unwrap().steps,
            vec![
                Step::Key("data".into()),
                Step::Key("items".into()),
                Step::Index(0)
            ]
        );
        assert!(RecordPath::parse("$..id").is_err());
        assert!(RecordPath::parse("$.a[?@.b == 1]").is_err());
        assert!(RecordPath::parse("customers").is_err());
    }

    #[test]
    fn walks_lists_and_drops_rejected_records() {
        let p = RecordPath::parse("$.list[*]").unwrap();
        let mut doc = json!({"list": [{"k": 1}, {"k": 2}, {"k": 3}]});
        let r = p
            .for_each_mut(&mut doc, &mut |rec| Ok::<_, String>(rec["k"] != json!(2)))
            .unwrap();
        assert_eq!(r, Resolve::Found);
        assert_eq!(doc, json!({"list": [{"k": 1}, {"k": 3}]}));
        let mut other = json!({"items": []});
        assert_eq!(
            p.for_each_mut(&mut other, &mut |_| Ok::<_, String>(true))
                .unwrap(),
            Resolve::Missing
        );
    }
}
