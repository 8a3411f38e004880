//! Write-side checks (CDM-3.1 minimal collection, CDM-4.2.2 least
//! privilege): every value of a request body must sit at a place the
//! catalogue names, in the catalogued shape, be one the route may collect,
//! and one the caller may write. A body that fails any is refused whole;
//! the upstream sees nothing.

use crate::catalogue::{Catalogue, EntityCatalogue, FieldNode, RecordPath, Step};
use crate::policy::{Decider, FieldAction, ResourceRef};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A route's write rules, compiled.
#[derive(Debug, Clone)]
pub struct WriteRules {
    pub entity: Arc<EntityCatalogue>,
    pub path: RecordPath,
    /// Dot paths the route may collect; `None`: no collection limit.
    pub collect: Option<Vec<String>>,
}

/// A field the body may not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub reason: RefusalReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The catalogue does not name this key here: nothing unnamed is
    /// written (the upstream would store what no policy decided on).
    NotCatalogued,
    /// The value's shape is not the catalogued one (an object where a
    /// scalar is catalogued, a scalar where a container is, ...).
    WrongShape,
    /// The route may not collect this field at all.
    NotCollected,
    /// The caller may not write this field.
    NotPermitted,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotCatalogued => "not_catalogued",
            RefusalReason::WrongShape => "wrong_shape",
            RefusalReason::NotCollected => "not_collected",
            RefusalReason::NotPermitted => "not_permitted",
        }
    }
}

/// What checking a write found.
#[derive(Debug, Default)]
pub(crate) struct WriteCheck {
    /// Fields the body may not carry (empty: the write is allowed).
    pub(crate) refused: Vec<Refusal>,
    /// Catalogue indexes of the fields the body writes, each once, in the
    /// order first met: what the audit record names (CDM-4.2.3), as
    /// catalogue paths rather than the client's keys.
    pub(crate) written: Vec<u32>,
}

/// Checks a parsed request body. Every value the body carries must be
/// named: the record's keys by the entity's catalogue, the body around the
/// record by the route's record path. A body whose record is not where the
/// rules say is refused as a whole (reported as the path, `$` for the root).
pub(crate) fn check_write(
    doc: &Value,
    rules: &WriteRules,
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    target: &ResourceRef<'_>,
) -> WriteCheck {
    let mut ctx = WriteCtx {
        rules,
        decider,
        catalogue,
        target,
        refusals: Vec::new(),
        written: Vec::new(),
    };
    let mut at = String::from("$");
    ctx.locate(&rules.path.steps, doc, &mut at);
    WriteCheck {
        refused: ctx.refusals,
        written: ctx.written,
    }
}

struct WriteCtx<'r, 'd> {
    rules: &'r WriteRules,
    decider: &'r mut Decider<'d>,
    catalogue: &'r Catalogue,
    target: &'r ResourceRef<'r>,
    refusals: Vec<Refusal>,
    written: Vec<u32>,
}

impl WriteCtx<'_, '_> {
    fn refuse(&mut self, field: String, reason: RefusalReason) {
        self.refusals.push(Refusal { field, reason });
    }

    /// Follows the record path from `v` (at JSONPath `at`); every member
    /// off the path is a value nothing names.
    fn locate(&mut self, steps: &[Step], v: &Value, at: &mut String) {
        let Some((step, rest)) = steps.split_first() else {
            match v {
                Value::Object(map) => self.record(map, &self.rules.entity.root, ""),
                _ => self.refuse(at.clone(), RefusalReason::WrongShape),
            }
            return;
        };
        let len = at.len();
        match (step, v) {
            (Step::Key(name), Value::Object(map)) => {
                for (key, child) in map {
                    at.push('.');
                    at.push_str(key);
                    if key == name {
                        self.locate(rest, child, at);
                    } else {
                        self.refuse(at.clone(), RefusalReason::NotCatalogued);
                    }
                    at.truncate(len);
                }
                if !map.contains_key(name.as_str()) {
                    self.refuse(self.rules.path.text.clone(), RefusalReason::WrongShape);
                }
            }
            (Step::Index(i), Value::Array(items)) => {
                for (n, item) in items.iter().enumerate() {
                    at.push_str(&format!("[{n}]"));
                    if n == *i {
                        self.locate(rest, item, at);
                    } else {
                        self.refuse(at.clone(), RefusalReason::NotCatalogued);
                    }
                    at.truncate(len);
                }
                if items.len() <= *i {
                    self.refuse(self.rules.path.text.clone(), RefusalReason::WrongShape);
                }
            }
            (Step::Each, Value::Array(items)) => {
                for item in items {
                    self.locate(rest, item, at);
                }
            }
            _ => self.refuse(self.rules.path.text.clone(), RefusalReason::WrongShape),
        }
    }

    /// Checks the members of a record's object at dot path `prefix`
    /// (empty at the record's top level) against catalogue node `node`.
    fn record(&mut self, map: &Map<String, Value>, node: &FieldNode, prefix: &str) {
        for (key, value) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let Some(child) = node.child(key) else {
                self.refuse(path, RefusalReason::NotCatalogued);
                continue;
            };
            match child.field {
                Some(field) => {
                    if let Some(reason) = self.leaf_refusal(&path, value, field) {
                        self.refuse(path, reason);
                    }
                }
                None => self.container(path, value, child),
            }
        }
    }

    /// A catalogued container admits only its catalogued children, and
    /// only as an object (or a list of objects).
    fn container(&mut self, path: String, value: &Value, node: &FieldNode) {
        if !self.mentions(&path) {
            self.refuse(path, RefusalReason::NotCollected);
            return;
        }
        match value {
            Value::Object(map) => self.record(map, node, &path),
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for item in items {
                    if let Value::Object(map) = item {
                        self.record(map, node, &path);
                    }
                }
            }
            _ => self.refuse(path, RefusalReason::WrongShape),
        }
    }

    fn leaf_refusal(&mut self, path: &str, value: &Value, field: u32) -> Option<RefusalReason> {
        let spec = self.catalogue.field(field);
        if !spec.accepts_write(value) {
            return Some(RefusalReason::WrongShape);
        }
        if !self.collects(path) {
            return Some(RefusalReason::NotCollected);
        }
        let permitted = self
            .decider
            .allowed(FieldAction::FieldWrite, Some(spec), self.target);
        if permitted && !self.written.contains(&field) {
            self.written.push(field);
        }
        (!permitted).then_some(RefusalReason::NotPermitted)
    }

    /// Whether the route may collect the leaf at `path`: listed itself, or
    /// inside a listed container.
    fn collects(&self, path: &str) -> bool {
        self.rules
            .collect
            .as_ref()
            .is_none_or(|collect| collect.iter().any(|c| c == path || is_below(path, c)))
    }

    /// Whether the collect list names the container at `path`, something
    /// inside it, or a container around it.
    fn mentions(&self, path: &str) -> bool {
        self.rules.collect.as_ref().is_none_or(|collect| {
            collect
                .iter()
                .any(|c| c == path || is_below(c, path) || is_below(path, c))
        })
    }
}

/// `a.b.c` is below `a.b` (and `a`), not below `a.bc`.
fn is_below(path: &str, container: &str) -> bool {
    path.strip_prefix(container)
        .is_some_and(|rest| rest.starts_with('.'))
}
