//! `fieldguard onboard openapi`: a reviewable first configuration for an
//! API from its OpenAPI document.
//!
//! The draft names every operation as a route (method, path template,
//! request-level action and resource), finds the records in each success
//! response (a list of objects, a single object, or objects inside a
//! wrapper whose other members become `response.members`), catalogues
//! every property of each record type (nested objects as dot paths, lists
//! and maps as one value of shape `array`/`object`) with its JSON type,
//! proposes a category, level and mask for each (marked `proposed` in a
//! comment that says why), and writes a Cedar schema for it all and a
//! baseline policy file that permits nothing. Enabling any access is then
//! a reviewed policy change.
//!
//! Where the document cannot say (which path parameter names the record's
//! owner, what an action should be called), the draft proposes and says
//! so; a document may also carry the reviewer's decisions as `x-fieldguard`
//! extensions, which the draft follows (docs/onboarding.md lists them), so
//! re-drafting after the API changes keeps them.

use super::deployment::{DeploymentError, Facts, NO_HASH_KEY};
use super::openapi::{self, Flat, METHODS, Spec, SpecError};
use super::propose::{self, FieldFacts, Proposal};
use super::secret::KeyError;
use fieldguard_core::config::{Category, Holds, Level, Shape};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a document cannot be drafted, or a draft written. `at` is where in
/// the document (`paths./x.get.responses.200`, `Entity.field`).
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: cannot create: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", NO_HASH_KEY)]
    NoHashKey,
    /// [`DraftError::NoHashKey`] said of the deployment file, at its
    /// `redaction` line.
    #[error("{}:{line}: {}", path.display(), NO_HASH_KEY)]
    NoHashKeyIn { path: PathBuf, line: usize },
    #[error("no `paths`")]
    NoPaths,
    #[error("paths: `{0}` does not start with `/`")]
    PathNotAbsolute(String),
    #[error("the document has no operations")]
    NoOperations,
    /// A schema that cannot be flattened, said of where it is used.
    #[error("{at}: {source}")]
    Schema { at: String, source: SpecError },
    #[error("{at}: `x-fieldguard` must be a mapping")]
    HintsNotMapping { at: String },
    #[error("{at}: unknown `x-fieldguard` key `{key}` (here: {})", allowed.join(", "))]
    UnknownHint {
        at: String,
        key: String,
        allowed: &'static [&'static str],
    },
    #[error("{at}: schema `{schema}`: unknown `x-fieldguard` key `{key}` (here: {})", ENTITY_HINTS.join(", "))]
    UnknownSchemaHint {
        at: String,
        schema: String,
        key: String,
    },
    #[error("{at}: x-fieldguard.resource needs a `type`")]
    ResourceNeedsType { at: String },
    #[error(
        "{at}: x-fieldguard.resource names the parameter `{param}`, which the path does not have"
    )]
    UnknownParam { at: String, param: String },
    #[error("{at}: x-fieldguard.records must be a list")]
    RecordsNotList { at: String },
    #[error("{at}: each x-fieldguard.records entry needs `path` and `entity`")]
    RecordsEntry { at: String },
    #[error("{at}: x-fieldguard.records `{path}`: {source}")]
    RecordsPath {
        at: String,
        path: String,
        source: Box<DraftError>,
    },
    #[error(transparent)]
    Selector(#[from] fieldguard_core::catalogue::record_path::SelectorError),
    #[error("no property `{0}`")]
    NoProperty(String),
    #[error("not an array")]
    NotAnArray,
    #[error("`{entity}.{prefix}` nests more than 16 objects deep")]
    TooDeep { entity: String, prefix: String },
    #[error("{at}: x-fieldguard.category: {source}")]
    Category {
        at: String,
        source: serde_json::Error,
    },
    #[error("{at}: x-fieldguard.level must be 1 to 4")]
    Level { at: String },
    #[error("{at}: x-fieldguard.mask must be a mapping or null")]
    Mask { at: String },
    #[error("{at}: x-fieldguard.free_text must be true or false")]
    FreeText { at: String },
    #[error("{at}: x-fieldguard.shape: {source}")]
    Shape {
        at: String,
        source: serde_json::Error,
    },
    #[error("{at}: x-fieldguard.attributes must be a mapping")]
    AttributesNotMapping { at: String },
    #[error("{at}: attribute `{name}` needs `field`")]
    AttributeField { at: String, name: String },
    #[error("{at}: attribute `{name}`: type must be entity, bool, long or string")]
    AttributeType { at: String, name: String },
    #[error("{at}: attribute `{name}`: only boolean defaults are supported here")]
    AttributeDefault { at: String, name: String },
    #[error(
        "internal error: the draft does not parse ({0}); please report it with the API document"
    )]
    Unparsable(fieldguard_core::error::ConfigError),
}

/// The `x-fieldguard` keys of an operation, of a component schema, and of
/// a property.
const ROUTE_HINTS: &[&str] = &["action", "resource", "records", "attributes"];
const ENTITY_HINTS: &[&str] = &["entity", "id_field", "attributes"];
const FIELD_HINTS: &[&str] = &["category", "level", "mask", "free_text", "shape"];

/// How to draft.
#[derive(Debug, Clone, Default)]
pub struct DraftOptions {
    /// A YAML file with the deployment's own sections (listeners,
    /// upstream, identity, redaction, limits, audit, admin, tls, reload,
    /// unmatched), copied into the draft as written.
    pub deployment: Option<PathBuf>,
    /// Start in global shadow mode (`shadow: true`, and `unknown_fields:
    /// pass` on every route): step 3 of docs/onboarding.md, so a draft can
    /// go in front of the live API to observe it before anything is
    /// enforced.
    pub shadow: bool,
}

/// Where the draft asks for its keyed-hash secret, relative to the output
/// folder, when the deployment does not name one.
pub const HASH_KEY_FILE: &str = "secrets/hash.key";

/// The draft: files relative to the output folder, and notes for the
/// operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub files: Vec<(PathBuf, String)>,
    pub notes: Vec<String>,
    /// The keyed-hash secret the configuration names (relative to the
    /// output folder), when the draft names one itself: [`Draft::write`]
    /// creates it, so the draft validates as written.
    pub hash_key: Option<PathBuf>,
}

impl Draft {
    /// Writes the files under `out` (creating folders), and the keyed-hash
    /// secret when the draft names one (what happened to it is returned).
    pub fn write(&self, out: &Path) -> Result<Option<super::secret::KeyFile>, DraftError> {
        for (rel, text) in &self.files {
            let path = out.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| DraftError::CreateDir {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&path, text).map_err(|source| DraftError::Write { path, source })?;
        }
        Ok(self
            .hash_key
            .as_ref()
            .map(|rel| super::secret::ensure_key(&out.join(rel)))
            .transpose()?)
    }
}

/// One catalogued field of a draft entity.
#[derive(Debug, Clone)]
struct Field {
    path: String,
    json_type: String,
    shape: Shape,
    /// What a list's elements are, when the document describes them down
    /// to scalar kinds (else `validate` warns, asking for it).
    of: Option<Holds>,
    proposal: Proposal,
    /// Taken from the document's `x-fieldguard` (not a guess).
    from_hints: bool,
    /// More to say in the comment (list items, variants).
    extra: Vec<String>,
}

#[derive(Debug, Clone)]
struct Attribute {
    name: String,
    field: String,
    kind: &'static str,
    entity_type: Option<String>,
    default: Option<&'static str>,
    why: String,
}

#[derive(Debug, Default)]
struct Entity {
    /// The schemas it was drafted from.
    sources: Vec<String>,
    id_field: Option<String>,
    fields: Vec<Field>,
    attributes: Vec<Attribute>,
    /// Attributes routes read from beside the records (Cedar schema only).
    route_attributes: Vec<Attribute>,
}

#[derive(Debug, Clone)]
struct Resource {
    type_name: String,
    id: Option<String>,
    id_param: Option<String>,
    owner_param: Option<String>,
    why: String,
}

#[derive(Debug)]
struct Route {
    method: String,
    path: String,
    summary: Option<String>,
    action: String,
    action_why: String,
    resource: Resource,
    records: Vec<(String, String, Vec<Attribute>)>,
    members: Vec<(String, Field)>,
    request: Option<(String, Vec<String>)>,
    comments: Vec<String>,
}

struct Drafter<'a> {
    spec: &'a Spec,
    entities: BTreeMap<String, Entity>,
    routes: Vec<Route>,
    notes: Vec<String>,
}

/// Drafts from the document at `spec_path`.
pub fn draft_openapi(spec_path: &Path, opts: &DraftOptions) -> Result<Draft, DraftError> {
    let spec = Spec::load(spec_path)?;
    let deployment = match &opts.deployment {
        Some(p) => Some(super::deployment::read(p)?),
        None => None,
    };
    let name = spec_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    draft(&spec, &name, deployment.as_deref(), opts.shadow).map_err(|e| {
        // Said of the deployment file: name it, at its `redaction` line.
        match (e, &opts.deployment, &deployment) {
            (DraftError::NoHashKey, Some(path), Some(text)) => DraftError::NoHashKeyIn {
                path: path.clone(),
                line: super::deployment::section_line(text, "redaction").unwrap_or(1),
            },
            (e, _, _) => e,
        }
    })
}

/// Drafts from a loaded document; `source` names it in the files' headers;
/// `deployment` is the checked text of a deployment file.
pub fn draft(
    spec: &Spec,
    source: &str,
    deployment: Option<&str>,
    shadow: bool,
) -> Result<Draft, DraftError> {
    let mut d = Drafter {
        spec,
        entities: BTreeMap::new(),
        routes: Vec::new(),
        notes: Vec::new(),
    };
    d.routes()?;
    let uses_hash = d
        .entities
        .values()
        .flat_map(|e| &e.fields)
        .chain(
            d.routes
                .iter()
                .flat_map(|r| r.members.iter().map(|(_, f)| f)),
        )
        .any(|f| f.proposal.mask.as_deref() == Some("{ kind: hash }"));
    let facts = deployment.map(Facts::of).unwrap_or_default();
    if uses_hash && facts.has("redaction") && !facts.names_hash_key {
        return Err(DraftError::NoHashKey);
    }
    // The draft names the key itself when nothing else does (no
    // deployment, or one without `redaction`); the deployment's own key is
    // the deployment's business.
    let hash_key = (uses_hash && !facts.has("redaction")).then(|| PathBuf::from(HASH_KEY_FILE));
    let config = d.render_config(source, deployment, &facts, hash_key.is_some(), shadow)?;
    let schema = d.render_schema(source, &facts.attribute_claims);
    let files = vec![
        (PathBuf::from("fieldguard.yaml"), config),
        (PathBuf::from("policies/schema.cedarschema"), schema),
        (PathBuf::from("policies/baseline.cedar"), baseline(source)),
    ];
    let fields: usize = d.entities.values().map(|e| e.fields.len()).sum();
    let members: usize = d.routes.iter().map(|r| r.members.len()).sum();
    let mut notes = d.notes;
    notes.push(format!(
        "{} routes, {} entity types, {fields} fields and {members} wrapper members drafted: every classification is proposed, review each",
        d.routes.len(),
        d.entities.len()
    ));
    Ok(Draft {
        files,
        notes,
        hash_key,
    })
}

/// `x-fieldguard` of a node, checked against the keys that place takes.
fn hints<'v>(
    node: &'v Value,
    allowed: &'static [&'static str],
    at: &str,
) -> Result<Option<&'v Map<String, Value>>, DraftError> {
    let Some(h) = node.get("x-fieldguard") else {
        return Ok(None);
    };
    let h = h
        .as_object()
        .ok_or_else(|| DraftError::HintsNotMapping { at: at.to_string() })?;
    for k in h.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(DraftError::UnknownHint {
                at: at.to_string(),
                key: k.clone(),
                allowed,
            });
        }
    }
    Ok(Some(h))
}

fn hint_str<'v>(h: Option<&'v Map<String, Value>>, key: &str) -> Option<&'v str> {
    h?.get(key)?.as_str()
}

/// `customers` → `Customer`, `order-items` → `OrderItem`.
fn type_name_of(segment: &str) -> String {
    let singular = singular(segment);
    propose::words(&singular)
        .iter()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn singular(word: &str) -> String {
    if let Some(s) = word.strip_suffix("ies") {
        format!("{s}y")
    } else if let Some(s) = word.strip_suffix("es").filter(|s| {
        ["sh", "ch", "x", "ss", "us", "zz"]
            .iter()
            .any(|e| s.ends_with(e))
    }) {
        s.to_string()
    } else if word.ends_with("ss") || word.ends_with("us") {
        word.to_string()
    } else if let Some(s) = word.strip_suffix('s') {
        s.to_string()
    } else {
        word.to_string()
    }
}

/// A Cedar identifier from a schema name (`Order.Item` → `OrderItem`).
fn cedar_ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'T');
    }
    s
}

fn param_of(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

impl<'a> Drafter<'a> {
    fn routes(&mut self) -> Result<(), DraftError> {
        let spec = self.spec;
        let paths = spec
            .root
            .get("paths")
            .and_then(Value::as_object)
            .ok_or(DraftError::NoPaths)?;
        let mut actions: BTreeMap<String, usize> = BTreeMap::new();
        for (template, item) in paths {
            if !template.starts_with('/') {
                return Err(DraftError::PathNotAbsolute(template.clone()));
            }
            let (item, _) = spec.deref(item)?;
            for method in METHODS {
                let Some(op) = item.get(method).filter(|o| o.is_object()) else {
                    continue;
                };
                let at = format!("paths.{template}.{method}");
                let mut route = self.route(template, method, op, &at)?;
                let n = actions.entry(route.action.clone()).or_insert(0);
                *n += 1;
                if *n > 1 {
                    route.action = format!("{}:{method}", route.action);
                    route.action_why.push_str(" (made unique by the method)");
                }
                self.routes.push(route);
            }
        }
        if self.routes.is_empty() {
            return Err(DraftError::NoOperations);
        }
        Ok(())
    }

    fn route(
        &mut self,
        template: &str,
        method: &str,
        op: &'a Value,
        at: &str,
    ) -> Result<Route, DraftError> {
        let h = hints(op, ROUTE_HINTS, at)?;
        let shape = PathShape::of(template);
        let resource = match h.and_then(|h| h.get("resource")) {
            Some(r) => hinted_resource(r, at)?,
            None => shape.proposed_resource(),
        };
        for p in [&resource.id_param, &resource.owner_param]
            .into_iter()
            .flatten()
        {
            if !shape
                .segments
                .iter()
                .any(|s| param_of(s) == Some(p.as_str()))
            {
                return Err(DraftError::UnknownParam {
                    at: at.to_string(),
                    param: p.clone(),
                });
            }
        }
        let (action, action_why) = match hint_str(h, "action") {
            Some(a) => (
                a.to_string(),
                "from x-fieldguard in the API document".to_string(),
            ),
            None => (
                shape.proposed_action(method),
                match op.get("operationId").and_then(Value::as_str) {
                    Some(id) => format!("proposed from the path (operationId `{id}`)"),
                    None => "proposed from the path".to_string(),
                },
            ),
        };
        let mut route = Route {
            method: method.to_uppercase(),
            path: template.to_string(),
            summary: op
                .get("summary")
                .and_then(Value::as_str)
                .map(|s| s.lines().next().unwrap_or_default().to_string()),
            action,
            action_why,
            resource,
            records: Vec::new(),
            members: Vec::new(),
            request: None,
            comments: Vec::new(),
        };
        if op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            route.comments.push(
                "public in the API document (`security: []`): consider `passthrough: true` once reviewed"
                    .into(),
            );
        }
        self.response(&mut route, op, h, at)?;
        self.request_body(&mut route, op, at)?;
        if let Some(comment) = self.free_text_comment(&route) {
            route.comments.push(comment);
        }
        Ok(route)
    }

    /// The comment suggesting a backstop for a route whose records or
    /// members hold free text.
    fn free_text_comment(&self, route: &Route) -> Option<String> {
        let free: Vec<String> = route
            .records
            .iter()
            .filter_map(|(_, e, _)| self.entities.get(e))
            .flat_map(|e| &e.fields)
            .chain(route.members.iter().map(|(_, f)| f))
            .filter(|f| f.proposal.free_text)
            .map(|f| format!("`{}`", f.path))
            .collect();
        (!free.is_empty()).then(|| {
            format!(
                "{} free text: consider `backstop: [all]` to mask personal data typed into it",
                free.join(", ")
            )
        })
    }

    /// Records and wrapper members of the success response.
    fn response(
        &mut self,
        route: &mut Route,
        op: &'a Value,
        h: Option<&Map<String, Value>>,
        at: &str,
    ) -> Result<(), DraftError> {
        let spec = self.spec;
        let Some((code, schema)) = openapi::success_schema(spec, op)? else {
            return Ok(());
        };
        let at = format!("{at}.responses.{code}");
        let flat = openapi::flatten(spec, schema, 0).map_err(|source| DraftError::Schema {
            at: at.clone(),
            source,
        })?;
        let route_attrs = h.and_then(|h| h.get("attributes"));
        if let Some(records) = h.and_then(|h| h.get("records")) {
            // The reviewer said where the records are.
            let list = records
                .as_array()
                .ok_or_else(|| DraftError::RecordsNotList { at: at.clone() })?;
            for r in list {
                let (Some(path), Some(entity)) = (
                    r.get("path").and_then(Value::as_str),
                    r.get("entity").and_then(Value::as_str),
                ) else {
                    return Err(DraftError::RecordsEntry { at });
                };
                let sub = schema_at(spec, schema, path).map_err(|e| DraftError::RecordsPath {
                    at: at.clone(),
                    path: path.to_string(),
                    source: Box::new(e),
                })?;
                let sub = openapi::flatten(spec, sub, 0)?;
                self.entity(entity, &sub, &at)?;
                route
                    .records
                    .push((path.to_string(), entity.to_string(), Vec::new()));
            }
            return Ok(());
        }
        match flat.json_type() {
            "array" => {
                let Some(items) = flat.items else {
                    return Ok(());
                };
                let items = openapi::flatten(spec, items, 0)?;
                if items.is_record_like() {
                    let name = self.entity_for(&items, &route.resource, &at)?;
                    route.records.push(("$[*]".into(), name, Vec::new()));
                } else {
                    route
                        .comments
                        .push("the response is a list of values, not records: review".into());
                }
            }
            "object" if flat.is_record_like() => {
                if is_wrapper(spec, &flat)? {
                    self.wrapper(route, &flat, route_attrs, &at)?;
                } else {
                    let name = self.entity_for(&flat, &route.resource, &at)?;
                    route.records.push(("$".into(), name, Vec::new()));
                }
            }
            other => route.comments.push(format!(
                "the success response is {other} JSON without named properties: nothing is catalogued, review"
            )),
        }
        Ok(())
    }

    /// A wrapper object: lists and named objects are records, the rest
    /// members.
    fn wrapper(
        &mut self,
        route: &mut Route,
        flat: &Flat<'a>,
        route_attrs: Option<&Value>,
        at: &str,
    ) -> Result<(), DraftError> {
        let spec = self.spec;
        let mut consent_members = Vec::new();
        for (key, pv) in &flat.properties {
            if key.contains('.') || key.is_empty() {
                route.comments.push(format!(
                    "member `{key}` cannot be named in a JSONPath step here: review"
                ));
                continue;
            }
            let pf = openapi::flatten(spec, pv, 0)?;
            let record_items = match (pf.json_type(), pf.items) {
                ("array", Some(items)) => {
                    let f = openapi::flatten(spec, items, 0)?;
                    f.is_record_like().then_some(f)
                }
                _ => None,
            };
            if let Some(items) = record_items {
                // Inline items are named after their member (`entries`: `Entry`).
                let fallback = Resource {
                    type_name: type_name_of(key),
                    ..route.resource.clone()
                };
                let name = self.entity_for(&items, &fallback, at)?;
                route
                    .records
                    .push((format!("$.{key}[*]"), name, Vec::new()));
            } else if pf.is_record_like() && pf.property("id").is_some() {
                let fallback = Resource {
                    type_name: type_name_of(key),
                    ..route.resource.clone()
                };
                let name = self.entity_for(&pf, &fallback, at)?;
                route.records.push((format!("$.{key}"), name, Vec::new()));
            } else if pf.is_record_like() {
                // Pagination and the like: each of its members is declared
                // (one level; anything deeper is one value).
                for (sub, sv) in &pf.properties {
                    if sub.contains('.') || sub.is_empty() {
                        continue;
                    }
                    let sf = openapi::flatten(spec, sv, 0)?;
                    let path = format!("$.{key}.{sub}");
                    let field = self.field(&route.resource.type_name, &path, sv, &sf)?;
                    route.members.push((path, field));
                }
            } else {
                let path = format!("$.{key}");
                let field = self.field(&route.resource.type_name, &path, pv, &pf)?;
                if pf.json_type() == "boolean" && key.to_lowercase().contains("consent") {
                    consent_members.push(key.clone());
                }
                route.members.push((path, field));
            }
        }
        // Consent returned beside the records applies to them: records
        // read it as an attribute (default false: fail closed).
        let mut attrs: Vec<Attribute> = consent_members
            .iter()
            .map(|key| Attribute {
                name: consent_attribute(key),
                field: format!("$.{key}"),
                kind: "bool",
                entity_type: None,
                default: Some("false"),
                why: format!("proposed: the consent `$.{key}` beside the records applies to them"),
            })
            .collect();
        if let Some(extra) = route_attrs {
            attrs.extend(attributes_from_hints(extra, at)?);
        }
        if !attrs.is_empty() {
            for (path, entity, a) in &mut route.records {
                if path.ends_with("[*]") {
                    *a = attrs.clone();
                    if let Some(e) = self.entities.get_mut(entity.as_str()) {
                        for attr in &attrs {
                            if !e.route_attributes.iter().any(|x| x.name == attr.name) {
                                e.route_attributes.push(attr.clone());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The entity a record schema becomes (created or extended); its name.
    fn entity_for(
        &mut self,
        flat: &Flat<'a>,
        resource: &Resource,
        at: &str,
    ) -> Result<String, DraftError> {
        let name = hint_str(flat.hints, "entity")
            .map(str::to_string)
            .or_else(|| flat.name.as_deref().map(cedar_ident))
            .unwrap_or_else(|| resource.type_name.clone());
        self.entity(&name, flat, at)?;
        Ok(name)
    }

    fn entity(&mut self, name: &str, flat: &Flat<'a>, at: &str) -> Result<(), DraftError> {
        if let Some(h) = flat.hints {
            for k in h.keys() {
                if !ENTITY_HINTS.contains(&k.as_str()) {
                    return Err(DraftError::UnknownSchemaHint {
                        at: at.to_string(),
                        schema: flat.name.as_deref().unwrap_or("(inline)").to_string(),
                        key: k.clone(),
                    });
                }
            }
        }
        let source = flat
            .name
            .clone()
            .unwrap_or_else(|| "(inline schema)".into());
        let known = self.entities.contains_key(name);
        let mut fields = Vec::new();
        let mut stack: Vec<String> = flat.name.iter().cloned().collect();
        self.fields(name, flat, "", &mut stack, &mut fields, 0)?;
        let entity = self.entities.entry(name.to_string()).or_default();
        if !entity.sources.contains(&source) {
            entity.sources.push(source);
        }
        for f in fields {
            if !entity.fields.iter().any(|x| x.path == f.path) {
                entity.fields.push(f);
            }
        }
        if known {
            return Ok(());
        }
        entity.id_field = hint_str(flat.hints, "id_field")
            .map(str::to_string)
            .or_else(|| flat.property("id").map(|_| "id".to_string()));
        // Who owns a record: a person's record owns itself; another
        // record names its owner in a `…_id` field of a person type.
        if propose::is_person_entity(name) && entity.id_field.as_deref() == Some("id") {
            entity.attributes.push(Attribute {
                name: "owner".into(),
                field: "id".into(),
                kind: "entity",
                entity_type: Some("User".into()),
                default: None,
                why: format!("proposed: a {name} is a person, the owner of their own record"),
            });
        } else if let Some(f) = entity.fields.iter().find(|f| {
            let w = propose::words(&f.path);
            !f.path.contains('.')
                && w.len() == 2
                && w[1] == "id"
                && propose::PERSON_WORDS.contains(&w[0].as_str())
        }) {
            entity.attributes.push(Attribute {
                name: "owner".into(),
                field: f.path.clone(),
                kind: "entity",
                entity_type: Some("User".into()),
                default: None,
                why: format!(
                    "proposed: `{}` names the person the record belongs to",
                    f.path
                ),
            });
        }
        for f in &entity.fields {
            if f.json_type == "boolean" && f.path.to_lowercase().contains("consent") {
                entity.attributes.push(Attribute {
                    name: consent_attribute(&f.path),
                    field: f.path.clone(),
                    kind: "bool",
                    entity_type: None,
                    default: Some("false"),
                    why: format!("proposed: `{}` is a consent policies may need", f.path),
                });
            }
        }
        if let Some(extra) = flat.hints.and_then(|h| h.get("attributes")) {
            for a in attributes_from_hints(extra, at)? {
                entity.attributes.retain(|x| x.name != a.name);
                entity.attributes.push(a);
            }
        }
        Ok(())
    }

    /// Catalogue entries for the properties of `flat` under `prefix`.
    fn fields(
        &self,
        entity: &str,
        flat: &Flat<'a>,
        prefix: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<Field>,
        depth: usize,
    ) -> Result<(), DraftError> {
        if depth > 16 {
            return Err(DraftError::TooDeep {
                entity: entity.to_string(),
                prefix: prefix.to_string(),
            });
        }
        for (key, pv) in &flat.properties {
            if key.is_empty() || key.contains('.') {
                continue;
            }
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let pf = openapi::flatten(self.spec, pv, 0)?;
            let recursive = pf.name.as_ref().is_some_and(|n| stack.contains(n));
            let own_hints = pv.get("x-fieldguard").and_then(Value::as_object);
            let leaf_by_hint =
                own_hints.is_some_and(|h| h.contains_key("shape") || h.contains_key("level"));
            if pf.is_record_like() && !recursive && !leaf_by_hint {
                if let Some(n) = &pf.name {
                    stack.push(n.clone());
                }
                self.fields(entity, &pf, &path, stack, out, depth + 1)?;
                if pf.name.is_some() {
                    stack.pop();
                }
                continue;
            }
            let mut field = self.field(entity, &path, pv, &pf)?;
            if recursive {
                field.extra.push(format!(
                    "recursive schema `{}`: catalogued as one value",
                    pf.name.as_deref().unwrap_or_default()
                ));
            }
            if flat.optional_by_variant.contains(key) {
                field.extra.push(format!(
                    "only in some alternatives of {}",
                    flat.variants.join(" / ")
                ));
            }
            out.push(field);
        }
        Ok(())
    }

    /// One leaf: its JSON type, shape and proposal (or the document's hints).
    fn field(
        &self,
        entity: &str,
        path: &str,
        pv: &Value,
        pf: &Flat<'a>,
    ) -> Result<Field, DraftError> {
        let json_type = pf.json_type().to_string();
        let mut extra = Vec::new();
        let mut shape = shape_of(pf);
        let mut of = None;
        if let Some(items) = pf.items {
            let i = openapi::flatten(self.spec, items, 0)?;
            of = holds_of(self.spec, &i, 0);
            let names: Vec<&str> = i.properties.iter().map(|(n, _)| n.as_str()).collect();
            extra.push(if names.is_empty() {
                format!("a list of {}", i.json_type())
            } else {
                format!(
                    "a list of {} {{{}}}",
                    i.name.as_deref().unwrap_or("objects"),
                    names.join(", ")
                )
            });
        }
        if pf.map {
            extra.push("a map: its keys are data, so it is one value".into());
        }
        let mut proposal = propose::propose(&FieldFacts {
            path,
            json_type: &json_type,
            format: pf.format.as_deref(),
            description: pf.description.as_deref(),
            entity,
            scalar: shape.is_scalar(),
        });
        let own = pv.get("x-fieldguard").and_then(Value::as_object);
        let from_hints = own.is_some();
        if let Some(h) = own {
            let at = format!("{entity}.{path}");
            for k in h.keys() {
                if !FIELD_HINTS.contains(&k.as_str()) {
                    return Err(DraftError::UnknownHint {
                        at,
                        key: k.clone(),
                        allowed: FIELD_HINTS,
                    });
                }
            }
            if let Some(c) = h.get("category") {
                proposal.category =
                    serde_json::from_value::<Category>(c.clone()).map_err(|source| {
                        DraftError::Category {
                            at: at.clone(),
                            source,
                        }
                    })?;
            }
            if let Some(l) = h.get("level") {
                proposal.level = match l.as_u64() {
                    Some(n @ 1..=4) => Level(n as u8),
                    _ => return Err(DraftError::Level { at }),
                };
            }
            if let Some(m) = h.get("mask") {
                proposal.mask = match m {
                    Value::Null => None,
                    Value::Object(_) => Some(std::borrow::Cow::Owned(flow(m))),
                    _ => return Err(DraftError::Mask { at }),
                };
            }
            if let Some(f) = h.get("free_text") {
                proposal.free_text = f
                    .as_bool()
                    .ok_or_else(|| DraftError::FreeText { at: at.clone() })?;
            }
            if let Some(s) = h.get("shape") {
                shape = serde_json::from_value::<Shape>(s.clone()).map_err(|source| {
                    DraftError::Shape {
                        at: at.clone(),
                        source,
                    }
                })?;
            }
            proposal.why = "from x-fieldguard in the API document".into();
        }
        if shape != Shape::Array {
            of = None;
        }
        Ok(Field {
            path: path.to_string(),
            json_type,
            shape,
            of,
            proposal,
            from_hints,
            extra,
        })
    }

    /// `request:` of a write: the entity its body carries and the
    /// top-level properties it may collect (added to the catalogue if
    /// the record type lacks them).
    fn request_body(
        &mut self,
        route: &mut Route,
        op: &'a Value,
        at: &str,
    ) -> Result<(), DraftError> {
        if !matches!(route.method.as_str(), "POST" | "PUT" | "PATCH") {
            return Ok(());
        }
        let Some(schema) = openapi::request_schema(self.spec, op)? else {
            return Ok(());
        };
        let flat = openapi::flatten(self.spec, schema, 0).map_err(|source| DraftError::Schema {
            at: format!("{at}.requestBody"),
            source,
        })?;
        if !flat.is_record_like() {
            route.comments.push(
                "the request body is not an object with properties: not inspected, review".into(),
            );
            return Ok(());
        }
        let entity = route
            .records
            .iter()
            .find(|(p, _, _)| p == "$")
            .map(|(_, e, _)| e.clone())
            .unwrap_or_else(|| {
                let t = route.resource.type_name.clone();
                if self.entities.contains_key(&t) {
                    t
                } else {
                    flat.name.as_deref().map(cedar_ident).unwrap_or(t)
                }
            });
        let mut fields = Vec::new();
        let mut stack: Vec<String> = flat.name.iter().cloned().collect();
        self.fields(&entity, &flat, "", &mut stack, &mut fields, 0)?;
        let e = self.entities.entry(entity.clone()).or_default();
        if let Some(n) = &flat.name
            && !e.sources.contains(n)
        {
            e.sources.push(n.clone());
        }
        for f in fields {
            if !e.fields.iter().any(|x| {
                x.path == f.path
                    || f.path.starts_with(&format!("{}.", x.path))
                    || x.path.starts_with(&format!("{}.", f.path))
            }) {
                e.fields.push(f);
            }
        }
        let collect = flat
            .properties
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !k.is_empty() && !k.contains('.'))
            .collect();
        route.request = Some((entity, collect));
        Ok(())
    }

    fn render_config(
        &self,
        source: &str,
        deployment: Option<&str>,
        facts: &Facts,
        names_hash_key: bool,
        shadow: bool,
    ) -> Result<String, DraftError> {
        let mut o = String::new();
        self.config_head(&mut o, source, deployment);
        if names_hash_key {
            let _ = writeln!(
                o,
                "# Keyed-hash masks need a secret key: `onboard` wrote a random one (32\n\
                 # bytes, mode 0600) and never replaces it, since another key changes\n\
                 # every pseudonym. Keep it out of version control.\n\
                 redaction:\n  hash_key_file: {HASH_KEY_FILE}\n"
            );
        }
        let _ = writeln!(
            o,
            "policies:\n  directory: policies\n  schema: policies/schema.cedarschema\n"
        );
        if !facts.has("unmatched") {
            o.push_str("unmatched: deny\n\n");
        }
        if shadow {
            o.push_str(
                "# Shadow mode (--shadow): every decision and redaction is computed and\n\
                 # audited but nothing is enforced, and each route relays and observes\n\
                 # what the catalogue lacks (`unknown_fields: pass`). Remove both to\n\
                 # enforce (docs/onboarding.md, step 5).\n\
                 shadow: true\n\n",
            );
        }
        o.push_str("routes:\n");
        for r in &self.routes {
            config_route(&mut o, r, shadow);
        }
        self.config_entities(&mut o);
        // The draft must parse as a configuration, whatever the document held.
        crate::config::parse(&o, Path::new("fieldguard.yaml")).map_err(DraftError::Unparsable)?;
        Ok(o)
    }

    /// The header comment, and the deployment's sections (or proposed
    /// listeners, upstream and identity without one).
    fn config_head(&self, o: &mut String, source: &str, deployment: Option<&str>) {
        let _ = writeln!(
            o,
            "# fieldguard configuration DRAFTED from {source} by `fieldguard onboard openapi`.\n\
             # Review every line marked `proposed` before use (docs/onboarding.md):\n\
             # the routes, who owns which record, and each field's category, level\n\
             # and mask were guessed from names, formats and descriptions. Nothing\n\
             # is allowed yet: policies/baseline.cedar permits nothing, so enabling\n\
             # access is a reviewed policy change. Unknown response members are\n\
             # removed (the catalogue is an allow-list); set `unknown_fields: pass`\n\
             # and `shadow: true` on a route to observe it first.\n"
        );
        match deployment {
            Some(text) => {
                o.push_str("# --- deployment (from --deployment) ---\n");
                o.push_str(text.trim_end());
                o.push_str("\n# --- end of deployment ---\n\n");
            }
            None => {
                let upstream = self
                    .spec
                    .root
                    .pointer("/servers/0/url")
                    .and_then(Value::as_str)
                    .and_then(|u| u.parse::<http::Uri>().ok())
                    .filter(|u| matches!(u.scheme_str(), Some("http")) && u.authority().is_some())
                    .map(|u| {
                        format!(
                            "http://{}",
                            u.authority().map(|a| a.as_str()).unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "http://127.0.0.1:8000".into());
                let _ = writeln!(
                    o,
                    "listeners:\n  - address: 127.0.0.1:8080\n\n\
                     # Review: the API's own address (from `servers` when it is http://host:port).\n\
                     upstream:\n  url: {upstream}\n\n\
                     # Review: how callers are identified. Headers from a trusted gateway on\n\
                     # loopback until JWT is configured (docs/configuration.md, `identity`).\n\
                     identity:\n  gateway:\n    trusted_peers: [127.0.0.1/32]\n"
                );
            }
        }
    }

    /// The `entities:` section: the field catalogue.
    fn config_entities(&self, o: &mut String) {
        o.push_str("\n# The field catalogue, by entity type. Each entry: its JSON type and\n# the proposed classification, with why.\nentities:\n");
        for (name, e) in &self.entities {
            let _ = writeln!(o, "  # from {}", e.sources.join(", "));
            let _ = writeln!(o, "  {name}:");
            if let Some(id) = &e.id_field {
                let _ = writeln!(o, "    id_field: {}", yaml_str(id));
            }
            if !e.attributes.is_empty() {
                o.push_str("    attributes:\n");
                for a in &e.attributes {
                    let _ = writeln!(o, "      # {}", a.why);
                    let _ = writeln!(o, "      {}: {}", a.name, attribute_flow(a));
                }
            }
            if e.fields.is_empty() {
                o.push_str("    fields: {}\n");
                continue;
            }
            o.push_str("    fields:\n");
            for f in &e.fields {
                let _ = writeln!(o, "      # {}", field_comment(f));
                let _ = writeln!(o, "      {}: {}", yaml_str(&f.path), field_flow(f));
            }
        }
    }

    fn render_schema(&self, source: &str, claims: &[String]) -> String {
        let mut o = String::new();
        schema_principals(&mut o, source, claims);
        self.schema_entities(&mut o);
        o.push_str(
            "\ntype RequestContext = { mfa: Bool, purpose: String };\n\
             type Field = { name: String, category: String, level: Long };\n\
             type RecordContext = { mfa: Bool, purpose: String, request_action: String };\n\
             type FieldContext = { mfa: Bool, purpose: String, request_action: String, field: Field };\n\n\
             // Request-level actions, one per route.\n",
        );
        self.schema_route_actions(&mut o);
        self.schema_field_actions(&mut o);
        o
    }

    /// The entity types: the routes' resources without records of their
    /// own, then the record types with their attributes.
    fn schema_entities(&self, o: &mut String) {
        let mut resource_types: Vec<String> = self
            .routes
            .iter()
            .map(|r| r.resource.type_name.clone())
            .collect();
        resource_types.sort();
        resource_types.dedup();
        for t in &resource_types {
            if !self.entities.contains_key(t) {
                let _ = writeln!(
                    o,
                    "// A route resource (no records of its own).\nentity {t};"
                );
            }
        }
        for (name, e) in &self.entities {
            let mut attrs: Vec<String> = Vec::new();
            for a in e.attributes.iter().chain(&e.route_attributes) {
                let t = match a.kind {
                    "entity" => a.entity_type.clone().unwrap_or_else(|| "User".into()),
                    "bool" => "Bool".into(),
                    "long" => "Long".into(),
                    _ => "String".into(),
                };
                let decl = format!("{}?: {t}", a.name);
                if !attrs.contains(&decl) {
                    attrs.push(decl);
                }
            }
            if attrs.is_empty() {
                let _ = writeln!(o, "entity {name};");
            } else {
                let _ = writeln!(o, "entity {name} = {{ {} }};", attrs.join(", "));
            }
        }
    }

    /// The request-level actions, one per route.
    fn schema_route_actions(&self, o: &mut String) {
        let mut actions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in &self.routes {
            let list = actions.entry(&r.action).or_default();
            if !list.contains(&r.resource.type_name.as_str()) {
                list.push(&r.resource.type_name);
            }
        }
        for (a, types) in &actions {
            let _ = writeln!(
                o,
                "action {} appliesTo {{ principal: User, resource: [{}], context: RequestContext }};",
                cedar_str(a),
                types.join(", ")
            );
        }
    }

    /// The record- and field-level actions, on the types they apply to.
    fn schema_field_actions(&self, o: &mut String) {
        let list = |v: &[String]| v.join(", ");
        let records: Vec<String> = self.entities.keys().cloned().collect();
        let mut field_read: Vec<String> = records.clone();
        for r in self.routes.iter().filter(|r| !r.members.is_empty()) {
            if !field_read.contains(&r.resource.type_name) {
                field_read.push(r.resource.type_name.clone());
            }
        }
        let mut field_write: Vec<String> = Vec::new();
        for r in self.routes.iter().filter(|r| r.request.is_some()) {
            if !field_write.contains(&r.resource.type_name) {
                field_write.push(r.resource.type_name.clone());
            }
        }
        if !records.is_empty() {
            let _ = writeln!(
                o,
                "\n// Record-level: may the caller see this record at all?\n\
                 action \"record:read\" appliesTo {{ principal: User, resource: [{}], context: RecordContext }};",
                list(&records)
            );
        }
        if !field_read.is_empty() {
            let _ = writeln!(
                o,
                "\n// Field-level: full value, masked form. Wrapper members are decided on\n// the route's resource.\n\
                 action \"field:read\", \"field:read_masked\"\n  appliesTo {{ principal: User, resource: [{}], context: FieldContext }};",
                list(&field_read)
            );
        }
        if !field_write.is_empty() {
            let _ = writeln!(
                o,
                "\n// Writes are decided on the route's resource.\n\
                 action \"field:write\" appliesTo {{ principal: User, resource: [{}], context: FieldContext }};",
                list(&field_write)
            );
        }
    }
}

/// One route of the configuration, with its resource, request and
/// response.
fn config_route(o: &mut String, r: &Route, shadow: bool) {
    o.push('\n');
    if let Some(s) = &r.summary {
        let _ = writeln!(o, "  # {}", one_line(s));
    }
    for c in &r.comments {
        let _ = writeln!(o, "  # review: {c}");
    }
    let _ = writeln!(
        o,
        "  - method: {}\n    path: {}",
        r.method,
        yaml_str(&r.path)
    );
    let _ = writeln!(o, "    action: {}  # {}", yaml_str(&r.action), r.action_why);
    // Only where there is a response to pass members of.
    if shadow && (!r.records.is_empty() || !r.members.is_empty()) {
        o.push_str("    unknown_fields: pass\n");
    }
    let res = &r.resource;
    let mut parts = vec![format!("type: {}", res.type_name)];
    if let Some(id) = &res.id {
        parts.push(format!("id: {}", yaml_str(id)));
    }
    if let Some(p) = &res.id_param {
        parts.push(format!("id_param: {p}"));
    }
    if let Some(p) = &res.owner_param {
        parts.push(format!("owner_param: {p}"));
    }
    let _ = writeln!(o, "    resource: {{ {} }}  # {}", parts.join(", "), res.why);
    if let Some((entity, collect)) = &r.request {
        let _ = writeln!(
            o,
            "    request:\n      entity: {entity}\n      # proposed: what the request body schema holds; remove what this route must not collect\n      collect: [{}]",
            collect
                .iter()
                .map(|c| yaml_str(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.records.is_empty() || !r.members.is_empty() {
        o.push_str("    response:\n      records:\n");
        if r.records.is_empty() {
            o.pop();
            o.push_str(" []\n");
        }
        for (path, entity, attrs) in &r.records {
            if attrs.is_empty() {
                let _ = writeln!(
                    o,
                    "        - {{ path: {}, entity: {entity} }}",
                    yaml_str(path)
                );
            } else {
                let _ = writeln!(
                    o,
                    "        - path: {}\n          entity: {entity}\n          attributes:",
                    yaml_str(path)
                );
                for a in attrs {
                    let _ = writeln!(o, "            # {}", a.why);
                    let _ = writeln!(o, "            {}: {}", a.name, attribute_flow(a));
                }
            }
        }
        if !r.members.is_empty() {
            o.push_str("      members:\n");
            for (path, f) in &r.members {
                let _ = writeln!(o, "        # {}", field_comment(f));
                let _ = writeln!(o, "        {}: {}", yaml_str(path), field_flow(f));
            }
        }
    }
}

/// The schema's header comment and principal types (`User`, with the
/// deployment's token claims as attributes).
fn schema_principals(o: &mut String, source: &str, claims: &[String]) {
    let _ = writeln!(
        o,
        "// Cedar schema DRAFTED from {source} by `fieldguard onboard openapi`.\n\
             // Principals are `User`s in `Role`s (from the caller's identity);\n\
             // resources are the routes' resources and the records of responses.\n\
             // Review the attributes: they are what policies can test.\n"
    );
    if claims.is_empty() {
        o.push_str("entity Role;\nentity User in [Role];\n\n");
    } else {
        // A token without the claim has no such attribute; a claim may
        // hold a string, number, boolean or list: String is proposed.
        let attrs: Vec<String> = claims
            .iter()
            .map(|c| format!("{}?: String", cedar_attr_name(c)))
            .collect();
        let _ = writeln!(
            o,
            "// proposed: the deployment's identity.jwt.attribute_claims, as strings\n\
                 entity Role;\nentity User in [Role] = {{ {} }};\n",
            attrs.join(", ")
        );
    }
}

/// The policy file of a draft: none, so Cedar's default deny holds.
fn baseline(source: &str) -> String {
    format!(
        "// Baseline of a configuration DRAFTED from {source}: it permits nothing.\n\
         //\n\
         // Cedar denies whatever no policy permits, so with this file alone every\n\
         // request is refused (403) and every field removed. Enable access with\n\
         // reviewed policies in this folder, route by route and field by field\n\
         // (docs/policies.md), tried first in shadow mode (docs/onboarding.md).\n"
    )
}

/// The request-level resource an operation's `x-fieldguard.resource`
/// names.
fn hinted_resource(r: &Value, at: &str) -> Result<Resource, DraftError> {
    let text = |key: &str| r.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(Resource {
        type_name: text("type")
            .ok_or_else(|| DraftError::ResourceNeedsType { at: at.to_string() })?,
        id: text("id"),
        id_param: text("id_param"),
        owner_param: text("owner_param"),
        why: "from x-fieldguard in the API document".into(),
    })
}

/// A path template's segments, as the proposals read them.
struct PathShape<'t> {
    segments: Vec<&'t str>,
    /// The segments that are not parameters.
    literal: Vec<&'t str>,
    /// The last parameter and its segment's index.
    last_param: Option<(usize, &'t str)>,
    ends_in_param: bool,
}

impl<'t> PathShape<'t> {
    fn of(template: &'t str) -> Self {
        let segments: Vec<&str> = template.trim_matches('/').split('/').collect();
        let literal = segments
            .iter()
            .copied()
            .filter(|s| param_of(s).is_none() && !s.is_empty())
            .collect();
        let last_param = segments
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, s)| param_of(s).map(|p| (i, p)));
        let ends_in_param = segments.last().is_some_and(|s| param_of(s).is_some());
        Self {
            segments,
            literal,
            last_param,
            ends_in_param,
        }
    }

    /// The literal segment before segment `i` (`customers` of
    /// `/customers/{cid}`).
    fn owner_segment(&self, i: usize) -> &'t str {
        self.segments[..i]
            .iter()
            .rev()
            .find(|s| param_of(s).is_none())
            .copied()
            .unwrap_or("item")
    }

    /// The resource the path proposes: the record its last parameter
    /// names, or a directory of the collection.
    fn proposed_resource(&self) -> Resource {
        match self.last_param {
            Some((i, param)) => {
                let type_name = type_name_of(self.owner_segment(i));
                let person = propose::is_person_entity(&type_name);
                Resource {
                    owner_param: person.then(|| param.to_string()),
                    why: if person {
                        format!(
                            "proposed: `{{{param}}}` names a {type_name}, a person, who owns the record (review owner_param)"
                        )
                    } else {
                        format!("proposed: `{{{param}}}` names a {type_name}")
                    },
                    type_name,
                    id: None,
                    id_param: Some(param.to_string()),
                }
            }
            None => {
                let first = self.literal.first().copied().unwrap_or("root");
                Resource {
                    type_name: format!("{}Directory", type_name_of(first)),
                    id: Some("all".into()),
                    id_param: None,
                    owner_param: None,
                    why: "proposed: a collection with no id in the path".into(),
                }
            }
        }
    }

    /// The action the path and method propose: `customer:read` for a
    /// record, `customer:orders` for a collection under one,
    /// `customers:list` for a top-level collection.
    fn proposed_action(&self, method: &str) -> String {
        let noun = |s: &str| propose::words(&singular(s)).join("_");
        if self.ends_in_param || self.literal.is_empty() {
            let verb = match method {
                "get" => "read",
                "post" => "create",
                "put" => "replace",
                "patch" => "update",
                _ => "delete",
            };
            format!(
                "{}:{verb}",
                noun(self.literal.last().copied().unwrap_or("root"))
            )
        } else if let Some((i, _)) = self.last_param {
            // A collection under a record: `customer:orders`.
            let tail: Vec<&str> = self.segments[i + 1..].to_vec();
            let suffix = match method {
                "get" => String::new(),
                m => format!(":{}", if m == "post" { "create" } else { m }),
            };
            format!("{}:{}{suffix}", noun(self.owner_segment(i)), tail.join("_"))
        } else {
            let verb = match method {
                "get" => "list",
                "post" => "create",
                "put" => "replace",
                "patch" => "update",
                _ => "delete",
            };
            let tail = &self.literal[1..];
            let extra = if tail.is_empty() {
                String::new()
            } else {
                format!("_{}", tail.join("_"))
            };
            format!("{}{extra}:{verb}", noun(self.literal[0]))
        }
    }
}

/// Where the JSONPath `path` (`$`, `$.a[*]`, `$.a.b`) leads in `schema`.
fn schema_at<'a>(spec: &'a Spec, schema: &'a Value, path: &str) -> Result<&'a Value, DraftError> {
    let parsed = fieldguard_core::catalogue::RecordPath::parse(path)?;
    let mut cur = schema;
    for step in &parsed.steps {
        let (s, _) = spec.deref(cur)?;
        cur = match step {
            fieldguard_core::catalogue::Step::Key(k) => {
                let f = openapi::flatten(spec, s, 0)?;
                f.property(k)
                    .ok_or_else(|| DraftError::NoProperty(k.to_string()))?
            }
            _ => s.get("items").ok_or(DraftError::NotAnArray)?,
        };
    }
    Ok(cur)
}

/// A wrapper holds records (lists of objects) and no `id`, and is either
/// inline or named like one (`…Page`, `…List`, `…Response`): a named
/// schema such as `LoyaltyAccount` with a list inside is a record.
fn is_wrapper(spec: &Spec, flat: &Flat<'_>) -> Result<bool, SpecError> {
    if flat.property("id").is_some() {
        return Ok(false);
    }
    if let Some(name) = &flat.name {
        let last = propose::words(name).pop().unwrap_or_default();
        let wrapper_words = [
            "page",
            "list",
            "collection",
            "response",
            "result",
            "results",
            "envelope",
            "wrapper",
            "search",
            "batch",
        ];
        if !wrapper_words.contains(&last.as_str()) {
            return Ok(false);
        }
    }
    for (_, pv) in &flat.properties {
        let pf = openapi::flatten(spec, pv, 0)?;
        if pf.json_type() == "array"
            && let Some(items) = pf.items
            && openapi::flatten(spec, items, 0)?.is_record_like()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `marketing_consent` from `consent.marketing` or `marketing_consent`.
fn consent_attribute(path: &str) -> String {
    let w: Vec<String> = propose::words(path)
        .into_iter()
        .filter(|w| !w.starts_with("consent"))
        .collect();
    if w.is_empty() {
        "consent".into()
    } else {
        format!("{}_consent", w.join("_"))
    }
}

fn attributes_from_hints(v: &Value, at: &str) -> Result<Vec<Attribute>, DraftError> {
    let map = v
        .as_object()
        .ok_or_else(|| DraftError::AttributesNotMapping { at: at.to_string() })?;
    map.iter()
        .map(|(name, a)| {
            let field = a.get("field").and_then(Value::as_str).ok_or_else(|| {
                DraftError::AttributeField {
                    at: at.to_string(),
                    name: name.clone(),
                }
            })?;
            let kind = match a.get("type").and_then(Value::as_str) {
                Some("entity") => "entity",
                Some("bool") => "bool",
                Some("long") => "long",
                Some("string") => "string",
                _ => {
                    return Err(DraftError::AttributeType {
                        at: at.to_string(),
                        name: name.clone(),
                    });
                }
            };
            let default = match a.get("default") {
                None => None,
                Some(Value::Bool(true)) => Some("true"),
                Some(Value::Bool(false)) => Some("false"),
                Some(_) => {
                    return Err(DraftError::AttributeDefault {
                        at: at.to_string(),
                        name: name.clone(),
                    });
                }
            };
            Ok(Attribute {
                name: name.clone(),
                field: field.to_string(),
                kind,
                entity_type: a
                    .get("entity_type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                default,
                why: "from x-fieldguard in the API document".into(),
            })
        })
        .collect()
}

fn attribute_flow(a: &Attribute) -> String {
    let mut s = format!("{{ field: {}, type: {}", yaml_str(&a.field), a.kind);
    if let Some(t) = &a.entity_type {
        let _ = write!(s, ", entity_type: {t}");
    }
    if let Some(d) = a.default {
        let _ = write!(s, ", default: {d}");
    }
    s.push_str(" }");
    s
}

/// The JSON kind the document gives a property: its one type (`integer`
/// is a number), `scalar` for a choice of scalar types, `any` when the
/// document does not say (which `validate` then warns about).
fn shape_of(pf: &Flat<'_>) -> Shape {
    let mut kinds = pf
        .types
        .iter()
        .filter(|t| *t != "null")
        .map(|t| match t.as_str() {
            "string" => Shape::String,
            "integer" | "number" => Shape::Number,
            "boolean" => Shape::Boolean,
            "object" => Shape::Object,
            "array" => Shape::Array,
            _ => Shape::Any,
        });
    let Some(first) = kinds.next() else {
        return match pf.json_type() {
            "object" => Shape::Object,
            "array" => Shape::Array,
            _ => Shape::Any,
        };
    };
    kinds.fold(first, |a, b| match (a, b) {
        _ if a == b => a,
        _ if a.is_scalar() && b.is_scalar() => Shape::Scalar,
        _ => Shape::Any,
    })
}

/// What a list element described by `flat` is, as an `of`: a scalar kind,
/// or an object of such members (three levels at most); `None` when the
/// document leaves any part open (no type, a list, a map).
fn holds_of(spec: &Spec, flat: &Flat<'_>, depth: usize) -> Option<Holds> {
    if flat.is_record_like() && !flat.map {
        if depth >= 3 {
            return None;
        }
        let mut members = std::collections::BTreeMap::new();
        for (name, v) in &flat.properties {
            let p = openapi::flatten(spec, v, 0).ok()?;
            members.insert(name.clone(), holds_of(spec, &p, depth + 1)?);
        }
        return Some(Holds::Members(members));
    }
    let shape = shape_of(flat);
    shape.is_scalar().then_some(Holds::Kind(shape))
}

/// An `of` as YAML flow text.
fn holds_flow(h: &Holds) -> String {
    match h {
        Holds::Kind(s) => s.as_str().to_string(),
        Holds::Members(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", yaml_str(k), holds_flow(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
    }
}

fn field_flow(f: &Field) -> String {
    let of = f.of.as_ref().map(holds_flow);
    f.proposal.flow(f.shape, of.as_deref())
}

fn field_comment(f: &Field) -> String {
    let mut s = format!("{}: ", f.json_type);
    if f.from_hints {
        s.push_str(&f.proposal.why);
    } else {
        let _ = write!(
            s,
            "proposed {}/{}: {}",
            f.proposal.category.as_str(),
            f.proposal.level.0,
            f.proposal.why
        );
    }
    for e in &f.extra {
        let _ = write!(s, "; {e}");
    }
    one_line(&s)
}

/// A mask hint as flow YAML (`{ kind: partial, keep_last: 4 }`).
fn flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, x)| format!("{k}: {}", flow(x))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::String(s) => yaml_str(s),
        other => other.to_string(),
    }
}

/// A YAML scalar: plain when safe, else double-quoted JSON.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.:{}$[]*".contains(c))
        && !s.starts_with(['{', '[', '*', '$', '-', ':'])
        && !s.contains(": ")
        // YAML 1.1's booleans and null, in any case (`On`, `NULL`).
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err()
        && !s.contains(['{', '[', ']', '}']);
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// An attribute name as Cedar's schema syntax takes it: bare when it is
/// an identifier, else quoted.
fn cedar_attr_name(name: &str) -> String {
    if cedar_ident(name) == name {
        name.to_string()
    } else {
        cedar_str(name)
    }
}

fn cedar_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_become_type_names() {
        for (segment, name) in [
            ("customers", "Customer"),
            ("categories", "Category"),
            ("addresses", "Address"),
            ("boxes", "Box"),
            ("order-items", "OrderItem"),
            ("status", "Status"),
            ("statuses", "Status"),
            ("cases", "Case"),
            ("analytics", "Analytic"),
        ] {
            assert_eq!(type_name_of(segment), name, "{segment}");
        }
    }

    #[test]
    fn yaml_scalars_that_would_change_meaning_are_quoted() {
        for (s, quoted) in [
            ("customer:list", false),
            ("id", false),
            ("on", true),
            ("yes", true),
            ("12", true),
            ("/customers/{id}", true),
            ("$.total", true),
            ("a: b", true),
            ("", true),
        ] {
            assert_eq!(yaml_str(s).starts_with('"'), quoted, "{s}");
            let back: String = serde_saphyr::from_str(&yaml_str(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn consent_attributes_are_named_by_what_they_consent_to() {
        assert_eq!(consent_attribute("consent.marketing"), "marketing_consent");
        assert_eq!(consent_attribute("marketing_consent"), "marketing_consent");
        assert_eq!(consent_attribute("consents.sms"), "sms_consent");
        assert_eq!(consent_attribute("consent"), "consent");
    }

    #[test]
    fn hints_in_the_document_are_followed_and_unknown_ones_refused() {
        let doc = serde_json::json!({
            "openapi": "3.1.0",
            "paths": {"/things/{tid}": {"get": {
                "x-fieldguard": {"action": "thing:look", "resource": {"type": "Thing", "id_param": "tid", "owner_param": "tid"}},
                "responses": {"200": {"description": "x", "content": {"application/json": {"schema": {
                    "type": "object",
                    "x-fieldguard": {"entity": "Gadget"},
                    "properties": {
                        "id": {"type": "string"},
                        "memo": {"type": "string", "x-fieldguard": {"category": "interaction", "level": 3, "free_text": true, "mask": null}}
                    }
                }}}}}
            }}}
        });
        let spec = Spec::from_value(doc.clone()).unwrap();
        let d = draft(&spec, "t.yaml", None, false).unwrap();
        let config = &d.files[0].1;
        assert!(
            config.contains("action: thing:look  # from x-fieldguard"),
            "{config}"
        );
        assert!(
            config.contains("resource: { type: Thing, id_param: tid, owner_param: tid }"),
            "{config}"
        );
        assert!(
            config.contains("- { path: \"$\", entity: Gadget }"),
            "{config}"
        );
        assert!(
            config.contains(
                "memo: { category: interaction, level: 3, shape: string, free_text: true }"
            ),
            "{config}"
        );
        let mut bad = doc;
        bad["paths"]["/things/{tid}"]["get"]["x-fieldguard"]["acton"] = "x".into();
        let e = draft(&Spec::from_value(bad).unwrap(), "t.yaml", None, false).unwrap_err();
        assert!(
            e.to_string().contains("unknown `x-fieldguard` key `acton`"),
            "{e}"
        );
    }
}
