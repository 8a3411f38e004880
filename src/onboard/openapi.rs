//! Reading an OpenAPI 3.0/3.1 document for drafting: the document as a
//! JSON tree (YAML or JSON on disk), `$ref`s resolved with cycle
//! detection, and schemas flattened to what a catalogue needs (the JSON
//! type, format, description, and the properties of `allOf` parts and
//! `oneOf`/`anyOf` alternatives merged).
//!
//! No OpenAPI crate: the drafter reads a dozen keywords and must keep
//! going on documents that a strict model would refuse (vendor
//! extensions, 3.0 and 3.1 side by side, `type` as a string or a list,
//! `nullable` beside `type: [.., "null"]`), so it walks the
//! `serde_json::Value` the file parses into: YAML through serde-saphyr,
//! which the configuration already uses (and which reports lines), JSON
//! through serde_json. The typed OpenAPI crates model one version each
//! and fail a whole document on one field they do not know.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Why a document cannot be drafted from.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not JSON: {source}", path.display())]
    NotJson {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// `first`: the first line of the parser's message (the rest repeats
    /// the position), kept as the text shown.
    #[error("{}:{line}: not YAML: {first}", path.display())]
    NotYaml {
        path: PathBuf,
        line: u64,
        first: String,
    },
    /// A problem with the document's content, said of its file.
    #[error("{}: {source}", path.display())]
    In {
        path: PathBuf,
        source: Box<SpecError>,
    },
    #[error("not an OpenAPI 3 document (no `openapi` version)")]
    NoVersion,
    #[error("OpenAPI {0} is not supported (3.0 and 3.1 are)")]
    Version(String),
    #[error("the document has no `paths`")]
    NoPaths,
    /// The `$ref`s of the chain, the repeated one last.
    #[error("`$ref` cycle: {}", .0.join(" -> "))]
    RefCycle(Vec<String>),
    #[error("`$ref: {0}` points outside the document; bundle it into one file first")]
    RefOutside(String),
    #[error("`$ref: {0}` points at nothing")]
    RefMissing(String),
    #[error("schemas composed more than 32 levels deep")]
    TooDeep,
}

/// A loaded document.
pub struct Spec {
    pub root: Value,
}

impl Spec {
    /// Reads `path`: JSON when it ends in `.json`, else YAML (which reads
    /// JSON too).
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        let root: Value = if json {
            serde_json::from_str(&text).map_err(|source| SpecError::NotJson {
                path: path.to_path_buf(),
                line: source.line(),
                source,
            })?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| SpecError::NotYaml {
                path: path.to_path_buf(),
                line: e.location().map(|l| l.line()).unwrap_or(0),
                first: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?
        };
        Self::from_value(root).map_err(|e| SpecError::In {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn from_value(root: Value) -> Result<Self, SpecError> {
        let version = root
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or(SpecError::NoVersion)?;
        if !(version.starts_with("3.0") || version.starts_with("3.1")) {
            return Err(SpecError::Version(version.to_string()));
        }
        if !root.get("paths").is_some_and(Value::is_object) {
            return Err(SpecError::NoPaths);
        }
        Ok(Self { root })
    }

    /// Follows `v`'s `$ref` chain to a value without one. Returns the value
    /// and the name of the last component schema the chain went through.
    pub fn deref<'a>(&'a self, v: &'a Value) -> Result<(&'a Value, Option<String>), SpecError> {
        let mut seen: Vec<&str> = Vec::new();
        let mut cur = v;
        let mut name = None;
        while let Some(r) = cur.get("$ref").and_then(Value::as_str) {
            if seen.contains(&r) {
                seen.push(r);
                return Err(SpecError::RefCycle(
                    seen.iter().map(|s| s.to_string()).collect(),
                ));
            }
            seen.push(r);
            cur = self.pointer(r)?;
            if let Some(n) = r.strip_prefix("#/components/schemas/") {
                name = Some(unescape(n));
            }
        }
        Ok((cur, name))
    }

    fn pointer(&self, r: &str) -> Result<&Value, SpecError> {
        let Some(ptr) = r.strip_prefix('#') else {
            return Err(SpecError::RefOutside(r.to_string()));
        };
        self.root
            .pointer(ptr)
            .ok_or_else(|| SpecError::RefMissing(r.to_string()))
    }
}

/// A JSON pointer token with `~1` and `~0` decoded.
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// A schema flattened for drafting.
#[derive(Debug, Clone, Default)]
pub struct Flat<'a> {
    /// The component schema it came from, if reached through `$ref`.
    pub name: Option<String>,
    /// JSON types it allows (`null` aside).
    pub types: Vec<String>,
    pub nullable: bool,
    pub format: Option<String>,
    pub description: Option<String>,
    /// Properties, in document order, merged across `allOf` parts and
    /// `oneOf`/`anyOf` alternatives (first definition wins).
    pub properties: Vec<(String, &'a Value)>,
    /// Properties present in only some `oneOf`/`anyOf` alternatives.
    pub optional_by_variant: Vec<String>,
    /// Names of the `oneOf`/`anyOf` alternatives, for comments.
    pub variants: Vec<String>,
    pub items: Option<&'a Value>,
    /// A map (`additionalProperties` with a schema or `true`) and no
    /// named properties.
    pub map: bool,
    /// The schema's own `x-fieldguard` hints.
    pub hints: Option<&'a Map<String, Value>>,
}

impl<'a> Flat<'a> {
    /// The JSON type a catalogue records: `object`, `array`, `string`,
    /// `integer`, `number`, `boolean`, or `any`.
    pub fn json_type(&self) -> &str {
        if let Some(t) = self.types.iter().find(|t| *t != "null") {
            return t;
        }
        if !self.properties.is_empty() || self.map {
            "object"
        } else if self.items.is_some() {
            "array"
        } else {
            "any"
        }
    }

    /// An object with named properties (a record, or a container of fields).
    pub fn is_record_like(&self) -> bool {
        self.json_type() == "object" && !self.properties.is_empty()
    }

    pub fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Flattens the schema `v` (see [`Flat`]). `depth` bounds composition
/// (a document nesting `allOf` in `oneOf` in `allOf`… past it is refused).
pub fn flatten<'a>(spec: &'a Spec, v: &'a Value, depth: usize) -> Result<Flat<'a>, SpecError> {
    if depth > 32 {
        return Err(SpecError::TooDeep);
    }
    let (s, name) = spec.deref(v)?;
    let mut flat = Flat {
        name,
        ..Flat::default()
    };
    let Some(obj) = s.as_object() else {
        // `true` / `{}`: anything.
        return Ok(flat);
    };
    match obj.get("type") {
        Some(Value::String(t)) => flat.types.push(t.clone()),
        Some(Value::Array(ts)) => {
            for t in ts.iter().filter_map(Value::as_str) {
                flat.types.push(t.to_string());
            }
        }
        _ => {}
    }
    flat.nullable =
        obj.get("nullable") == Some(&Value::Bool(true)) || flat.types.iter().any(|t| t == "null");
    flat.format = obj
        .get("format")
        .and_then(Value::as_str)
        .map(str::to_string);
    flat.description = obj
        .get("description")
        .or_else(|| obj.get("title"))
        .and_then(Value::as_str)
        .map(str::to_string);
    flat.hints = obj.get("x-fieldguard").and_then(Value::as_object);
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            flat.properties.push((k.clone(), p));
        }
    }
    flat.items = obj.get("items");
    flat.map = match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => *b && flat.properties.is_empty(),
        Some(Value::Object(_)) => flat.properties.is_empty(),
        _ => false,
    };
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        for part in parts {
            let p = flatten(spec, part, depth + 1)?;
            merge(&mut flat, p, false);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let flats: Vec<Flat<'a>> = alts
                .iter()
                .map(|a| flatten(spec, a, depth + 1))
                .collect::<Result<_, _>>()?;
            for (i, a) in flats.iter().enumerate() {
                flat.variants
                    .push(a.name.clone().unwrap_or_else(|| format!("{key}[{i}]")));
            }
            let mut names: Vec<String> = Vec::new();
            for a in &flats {
                for (n, _) in &a.properties {
                    if !names.contains(n) {
                        names.push(n.clone());
                    }
                }
            }
            for n in names {
                if !flats.iter().all(|a| a.property(&n).is_some())
                    && !flat.optional_by_variant.contains(&n)
                {
                    flat.optional_by_variant.push(n);
                }
            }
            for a in flats {
                merge(&mut flat, a, true);
            }
        }
    }
    Ok(flat)
}

/// Merges a part (`allOf`) or an alternative (`oneOf`/`anyOf`) into `into`.
fn merge<'a>(into: &mut Flat<'a>, part: Flat<'a>, alternative: bool) {
    for t in part.types {
        if !into.types.contains(&t) {
            into.types.push(t);
        }
    }
    into.nullable |= part.nullable;
    if into.format.is_none() {
        into.format = part.format;
    }
    if into.description.is_none() {
        into.description = part.description;
    }
    if into.hints.is_none() {
        into.hints = part.hints;
    }
    // The composed schema takes the name of its first named part (a
    // `Customer` that is `allOf: [Person, {…}]` stays a `Customer` when it
    // has a name of its own).
    if into.name.is_none() && !alternative {
        into.name = part.name;
    }
    for (k, v) in part.properties {
        if !into.properties.iter().any(|(n, _)| *n == k) {
            into.properties.push((k, v));
        }
    }
    for n in part.optional_by_variant {
        if !into.optional_by_variant.contains(&n) {
            into.optional_by_variant.push(n);
        }
    }
    into.variants.extend(part.variants);
    if into.items.is_none() {
        into.items = part.items;
    }
    into.map |= part.map && into.properties.is_empty();
}

/// The HTTP methods a route can have, in the order drafts list them.
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The JSON schema of an operation's success response, if it has one:
/// the first of 200, 201, 202, 203, 206, 2XX with a JSON media type.
pub fn success_schema<'a>(
    spec: &'a Spec,
    op: &'a Value,
) -> Result<Option<(&'a str, &'a Value)>, SpecError> {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return Ok(None);
    };
    for code in ["200", "201", "202", "203", "206", "2XX", "2xx"] {
        let Some(r) = responses.get(code) else {
            continue;
        };
        let (r, _) = spec.deref(r)?;
        if let Some(schema) = json_media(r).and_then(|m| m.get("schema")) {
            return Ok(Some((code, schema)));
        }
        return Ok(None);
    }
    Ok(None)
}

/// The JSON schema of an operation's request body, if any.
pub fn request_schema<'a>(spec: &'a Spec, op: &'a Value) -> Result<Option<&'a Value>, SpecError> {
    let Some(body) = op.get("requestBody") else {
        return Ok(None);
    };
    let (body, _) = spec.deref(body)?;
    Ok(json_media(body).and_then(|m| m.get("schema")))
}

/// The `content` entry of a JSON media type (`application/json`,
/// `application/problem+json`, …).
fn json_media(r: &Value) -> Option<&Value> {
    let content = r.get("content")?.as_object()?;
    content.get("application/json").or_else(|| {
        content
            .iter()
            .find(|(k, _)| {
                k.split(';')
                    .next()
                    .is_some_and(|t| t.trim().ends_with("json"))
            })
            .map(|(_, v)| v)
    })
}
