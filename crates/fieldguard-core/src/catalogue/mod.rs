//! The field catalogue compiled for the hot path: per entity type, a trie of
//! catalogued field paths, each with its category, sensitivity level and
//! masked form, and the record attributes Cedar policies may read.
//!
//! The catalogue is an allow-list: a key of a record that no entry names
//! is not the record's (it is removed from responses and refused in
//! writes). Every node of the trie is either a *leaf* (a field: one value,
//! whatever its JSON shape) or a *container* (an object, or a list of
//! objects, holding catalogued keys), never both, so "what is this value?"
//! always has one answer.

pub mod holds;
mod mask;
pub mod record_path;

pub use mask::{HashKey, Mask, MaskError};
pub use record_path::{RecordPath, Resolve, Step};

use crate::config::{
    AttributeConfig, AttributeKind, Category, DecisionConfig, EntityConfig, FieldConfig, Holds,
    JsonType, Level, Shape,
};
use crate::error::ConfigError;
use crate::short_eq::same_bytes;
use cedar_policy::EntityTypeName;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

/// One catalogued field. `index` is unique across the whole catalogue so a
/// decision cache can key on it.
#[derive(Debug)]
pub struct FieldSpec {
    pub index: u32,
    /// The record's entity type; for a wrapper member, the type of the
    /// route's resource it is decided on.
    pub entity: Arc<str>,
    /// Dot path inside the record (`address.city`); for a wrapper member,
    /// its JSONPath from the body's root as configured (`$.total`).
    pub path: String,
    pub category: Category,
    pub level: Level,
    pub mask: Option<Mask>,
    /// The value's JSON kind (responses and writes).
    pub shape: Shape,
    /// What an `array`/`object` value may hold ([`holds`]).
    pub of: Option<Holds>,
    /// Free text: a route's backstop detectors look into it.
    pub free_text: bool,
    /// `Some(route position)` for a member of a route's response wrapper
    /// (`response.members`) rather than a field of an entity's records.
    pub wrapper_of: Option<usize>,
}

impl FieldSpec {
    /// True for a field of an entity's records (not a wrapper member).
    pub fn is_record_field(&self) -> bool {
        self.wrapper_of.is_none()
    }

    /// Whether a response may carry this parsed value in the field: of
    /// its kind (or null), holding only what its `of` names.
    pub fn admits_value(&self, value: &serde_json::Value) -> bool {
        self.shape.shows(JsonType::of(value)) && self.holds_value(value)
    }

    /// Whether a write may give the field this value: of its kind (`null`
    /// for a scalar kind), holding only what its `of` names.
    pub fn accepts_write(&self, value: &serde_json::Value) -> bool {
        self.shape.accepts(value) && self.holds_value(value)
    }

    /// Whether a parsed object or array holds only what `of` names (a
    /// scalar, or a field without `of`, holds nothing to check).
    fn holds_value(&self, value: &serde_json::Value) -> bool {
        !JsonType::of(value).is_container()
            || self
                .of
                .as_ref()
                .is_none_or(|of| holds::value_holds(self.shape, of, value))
    }

    /// The same over a well-formed value's JSON text, whose kind the
    /// byte redactor read from its first byte.
    pub fn admits_text(&self, kind: JsonType, text: &str) -> bool {
        self.shape.shows(kind)
            && (!kind.is_container()
                || self
                    .of
                    .as_ref()
                    .is_none_or(|of| holds::text_holds(self.shape, of, text)))
    }
}

/// A node of the field trie: a leaf (the field decided at this key path)
/// or a container of the catalogued paths below it; the root is the
/// record itself.
#[derive(Debug, Default)]
pub struct FieldNode {
    /// Set on leaves only.
    pub field: Option<u32>,
    /// Non-empty on containers only. Ordered, so walks and explanations
    /// are deterministic.
    pub children: Children,
}

impl FieldNode {
    /// The node at `key` below this one.
    #[inline]
    pub fn child(&self, key: &str) -> Option<&FieldNode> {
        self.children.get(key)
    }
}

/// The children of a [`FieldNode`], sorted by key: one contiguous slice.
/// A node has a few dozen keys at most, and the redactors look one up for
/// every member of every record, so a scan of the slice comparing lengths
/// first beats a `BTreeMap` (whose iteration walked tree nodes, and whose
/// ordered search calls `memcmp` at every step).
#[derive(Debug, Default)]
pub struct Children(Vec<(Box<str>, FieldNode)>);

type ChildRef<'a> = (&'a Box<str>, &'a FieldNode);

impl Children {
    /// The node at `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&FieldNode> {
        self.0
            .iter()
            .find(|(k, _)| same_bytes(k.as_bytes(), key.as_bytes()))
            .map(|(_, node)| node)
    }

    /// The node at `key`, added (empty, in key order) if missing.
    pub fn get_or_default(&mut self, key: &str) -> &mut FieldNode {
        let at = match self.0.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (Box::from(key), FieldNode::default()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// Keys and nodes, in key order.
    pub fn iter(&self) -> std::iter::Map<std::slice::Iter<'_, (Box<str>, FieldNode)>, ChildFn> {
        self.0.iter().map(child_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

type ChildFn = for<'a> fn(&'a (Box<str>, FieldNode)) -> ChildRef<'a>;

fn child_ref(entry: &(Box<str>, FieldNode)) -> ChildRef<'_> {
    (&entry.0, &entry.1)
}

impl<'a> IntoIterator for &'a Children {
    type Item = ChildRef<'a>;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Box<str>, FieldNode)>, ChildFn>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Where a record attribute comes from.
#[derive(Debug, Clone)]
pub struct AttributeSource {
    pub name: String,
    /// `true`: `path` starts at the document root (`$.a.b`); else at the record.
    pub from_root: bool,
    pub path: Vec<String>,
    pub kind: AttributeKind,
    pub entity_type: Option<EntityTypeName>,
    pub default: Option<AttrValue>,
}

/// A record attribute value, in a form that can be hashed into cache keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrValue {
    Str(Box<str>),
    Bool(bool),
    Long(i64),
    /// Entity reference: the type is the attribute's configured type.
    Entity(Box<str>),
}

impl AttributeSource {
    /// Reads the attribute from a record (or the document root). `None`
    /// when absent or of the wrong type and no default is configured.
    pub fn extract(
        &self,
        record: &serde_json::Value,
        root: &serde_json::Value,
    ) -> Option<AttrValue> {
        let start = if self.from_root { root } else { record };
        let found = self.path.iter().try_fold(start, |v, key| {
            v.as_object().and_then(|o| o.get(key.as_str()))
        });
        found
            .and_then(|v| self.convert(v))
            .or_else(|| self.default.clone())
    }

    fn convert(&self, v: &serde_json::Value) -> Option<AttrValue> {
        match self.kind {
            AttributeKind::String => v.as_str().map(|s| AttrValue::Str(s.into())),
            AttributeKind::Entity => v.as_str().map(|s| AttrValue::Entity(s.into())),
            AttributeKind::Bool => v.as_bool().map(AttrValue::Bool),
            AttributeKind::Long => v.as_i64().map(AttrValue::Long),
        }
    }
}

/// Everything the catalogue knows about one entity type.
#[derive(Debug)]
pub struct EntityCatalogue {
    pub name: Arc<str>,
    pub type_name: EntityTypeName,
    /// Index of this entity type, for cache keys.
    pub index: u16,
    pub id_field: Option<Vec<String>>,
    pub attributes: Vec<AttributeSource>,
    pub root: FieldNode,
}

impl EntityCatalogue {
    /// Cedar entity id of a record: its `id_field` value, or empty.
    pub fn record_id<'a>(&self, record: &'a serde_json::Value) -> &'a str {
        self.id_field
            .as_ref()
            .and_then(|p| {
                p.iter()
                    .try_fold(record, |v, k| v.as_object().and_then(|o| o.get(k.as_str())))
            })
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// The field catalogued at exactly this dot path, if any.
    pub fn node_at(&self, dot_path: &str) -> Option<&FieldNode> {
        dot_path
            .split('.')
            .try_fold(&self.root, |node, key| node.children.get(key))
    }
}

/// How audit records and metrics name the body around a route's records.
pub const WRAPPER_SCOPE: &str = "(wrapper)";

/// The whole compiled catalogue.
#[derive(Debug, Default)]
pub struct Catalogue {
    entities: HashMap<String, Arc<EntityCatalogue>>,
    fields: Vec<FieldSpec>,
    /// For `kind: hash` masks of fields and wrapper members.
    hash_key: Option<Arc<HashKey>>,
}

impl Catalogue {
    /// Compiles the `entities:` section. Masks that need a key get it here.
    pub fn build(cfg: &DecisionConfig<'_>) -> Result<Self, ConfigError> {
        let hashed = |f: &FieldConfig| matches!(f.mask, Some(crate::config::MaskConfig::Hash));
        let needs_key = cfg.entities.values().any(|e| e.fields.values().any(hashed))
            || cfg
                .routes
                .iter()
                .filter_map(|r| r.response.as_ref())
                .any(|r| r.members.values().any(hashed));
        let hash_key = match (&cfg.redaction.hash_key_file, needs_key) {
            (Some(path), _) => Some(Arc::new(HashKey::from_file(&cfg.resolve(path))?)),
            (None, true) => {
                return Err(ConfigError::file(
                    cfg.file,
                    "a field uses `kind: hash` but `redaction.hash_key_file` is not set",
                ));
            }
            (None, false) => None,
        };
        let mut cat = Catalogue {
            hash_key,
            ..Catalogue::default()
        };
        for (index, (name, entity)) in cfg.entities.iter().enumerate() {
            let compiled = cat.compile_entity(cfg, index, name, entity)?;
            cat.entities.insert(name.clone(), Arc::new(compiled));
        }
        Ok(cat)
    }

    /// Registers one field (of an entity, or a route's wrapper member) and
    /// returns its index.
    fn add_field(
        &mut self,
        entity: &Arc<str>,
        path: &str,
        field: &FieldConfig,
        wrapper_of: Option<usize>,
    ) -> Result<u32, FieldError> {
        let mask = field
            .mask
            .as_ref()
            .map(|m| Mask::compile(m, self.hash_key.clone()))
            .transpose()?;
        holds::check(field.shape, field.of.as_ref()).map_err(FieldError::Holds)?;
        let index = u32::try_from(self.fields.len()).map_err(|_| FieldError::TooMany)?;
        self.fields.push(FieldSpec {
            index,
            entity: entity.clone(),
            path: path.to_string(),
            category: field.category,
            level: field.level,
            mask,
            shape: field.shape,
            of: field.of.clone(),
            free_text: field.free_text,
            wrapper_of,
        });
        Ok(index)
    }

    /// Registers a member of route `route`'s response wrapper, decided on
    /// the route's resource type `resource_type`.
    pub fn add_wrapper_member(
        &mut self,
        route: usize,
        resource_type: &str,
        path: &str,
        field: &FieldConfig,
    ) -> Result<u32, FieldError> {
        self.add_field(&Arc::from(resource_type), path, field, Some(route))
    }

    fn compile_entity(
        &mut self,
        cfg: &DecisionConfig<'_>,
        index: usize,
        name: &str,
        entity: &EntityConfig,
    ) -> Result<EntityCatalogue, ConfigError> {
        let err = |msg: String| ConfigError::file(cfg.file, format!("entities.{name}: {msg}"));
        let type_name = EntityTypeName::from_str(name)
            .map_err(|e| err(format!("not a valid Cedar entity type name: {e}")))?;
        let name_arc: Arc<str> = Arc::from(name);
        let mut root = FieldNode::default();
        for (path, field) in &entity.fields {
            let segments = split_dot_path(path).map_err(|m| err(format!("field `{path}`: {m}")))?;
            let node = segments
                .iter()
                .fold(&mut root, |node, seg| node.children.get_or_default(seg));
            let idx = self
                .add_field(&name_arc, path, field, None)
                .map_err(|m| err(format!("field `{path}`: {m}")))?;
            node.field = Some(idx);
        }
        if let Some(both) = leaf_and_container(&root, "") {
            return Err(err(format!(
                "`{both}` is catalogued as a field and as a container of fields below it; \
                 catalogue either the whole value (`{both}`) or its members (`{both}.…`)"
            )));
        }
        let attributes = compile_attributes(&entity.attributes).map_err(err)?;
        let id_field = entity
            .id_field
            .as_deref()
            .map(split_dot_path)
            .transpose()
            .map_err(|m| err(format!("id_field: {m}")))?;
        Ok(EntityCatalogue {
            name: name_arc,
            type_name,
            index: u16::try_from(index).map_err(|_| err("too many entity types".into()))?,
            id_field,
            attributes,
            root,
        })
    }

    /// How reports name a [`Scope`]: the entity, or `(wrapper)` for the
    /// body around the records.
    pub fn scope_name(&self, scope: Scope) -> &str {
        match scope {
            Scope::Entity(index) => self
                .entities
                .values()
                .find(|e| e.index == index)
                .map(|e| &*e.name)
                .unwrap_or("?"),
            Scope::Wrapper => WRAPPER_SCOPE,
        }
    }

    pub fn entity(&self, name: &str) -> Option<&Arc<EntityCatalogue>> {
        self.entities.get(name)
    }

    pub fn field(&self, index: u32) -> &FieldSpec {
        &self.fields[index as usize]
    }

    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    pub fn entities(&self) -> impl Iterator<Item = &Arc<EntityCatalogue>> {
        self.entities.values()
    }
}

/// The first node (as a dot path) that is both a field and a container.
fn leaf_and_container(node: &FieldNode, path: &str) -> Option<String> {
    node.children.iter().find_map(|(key, child)| {
        let here = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        if child.field.is_some() && !child.children.is_empty() {
            return Some(here);
        }
        leaf_and_container(child, &here)
    })
}

/// Compiles attribute sources, with route-level `overrides` replacing or
/// extending an entity's own.
///
/// The error is the message only: both callers put it into a
/// `ConfigError` of their own (with the entity or the route's line), and
/// route.rs takes it as a `String`.
pub fn compile_attributes(
    attrs: &BTreeMap<String, AttributeConfig>,
) -> Result<Vec<AttributeSource>, String> {
    attrs
        .iter()
        .map(|(name, a)| {
            let (from_root, path) = match a.field.strip_prefix("$.") {
                Some(rest) => (true, rest),
                None => (false, a.field.as_str()),
            };
            let path = split_dot_path(path).map_err(|m| format!("attribute `{name}`: {m}"))?;
            let entity_type =
                match a.kind {
                    AttributeKind::Entity => {
                        let t = a.entity_type.as_deref().unwrap_or("User");
                        Some(EntityTypeName::from_str(t).map_err(|e| {
                            format!("attribute `{name}`: bad entity type `{t}`: {e}")
                        })?)
                    }
                    _ => None,
                };
            let mut src = AttributeSource {
                name: name.clone(),
                from_root,
                path,
                kind: a.kind,
                entity_type,
                default: None,
            };
            if let Some(d) = &a.default {
                src.default = Some(src.convert(d).ok_or_else(|| {
                    format!("attribute `{name}`: default {d} does not match type")
                })?);
            }
            Ok(src)
        })
        .collect()
}

/// Splits `a.b.c` into keys; empty keys are an error.
pub fn split_dot_path(path: &str) -> Result<Vec<String>, BadDotPath> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(BadDotPath(path.to_string()));
    }
    Ok(parts)
}

/// A dot path with an empty key (the path given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid dot path")]
pub struct BadDotPath(pub String);
/// A catalogued field that cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error(transparent)]
    Mask(#[from] MaskError),
    /// Field indexes are `u32` (metrics and audit records carry them).
    #[error("too many fields")]
    TooMany,
    /// A field's `of` that does not describe what it holds.
    #[error(transparent)]
    Holds(holds::HoldsError),
}

/// Where in a response a member was found: in a record of a catalogued
/// entity, or in the body around the records (a route's wrapper members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// In a record of the entity with this catalogue index.
    Entity(u16),
    /// In the body around the records.
    Wrapper,
}
