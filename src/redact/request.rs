//! Write-side checks (CDM-3.1 minimal collection, CDM-4.2.2 least
//! privilege): every field of a request body must be one the route may
//! collect, and every catalogued field one the caller may write. A body that
//! fails either is refused whole; the upstream sees nothing.

use crate::catalogue::{Catalogue, EntityCatalogue, FieldNode, RecordPath};
use crate::policy::{Decider, FieldAction, ResourceRef};
use serde_json::Value;
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
    /// The route may not collect this field at all.
    NotCollected,
    /// The caller may not write this field.
    NotPermitted,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotCollected => "not_collected",
            RefusalReason::NotPermitted => "not_permitted",
        }
    }
}

/// Checks a parsed request body; returns the refused fields (empty: allowed).
/// A body whose records are not where the rules say is refused as a whole
/// (reported as the field `$`).
pub fn check_write(
    doc: &mut Value,
    rules: &WriteRules,
    decider: &mut Decider<'_>,
    catalogue: &Catalogue,
    target: &ResourceRef<'_>,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let mut f = |record: &mut Value| -> Result<bool, String> {
        match record {
            Value::Object(map) => {
                let mut ctx = WriteCtx {
                    rules,
                    decider: &mut *decider,
                    catalogue,
                    target,
                    refusals: &mut refusals,
                };
                for (key, value) in map.iter() {
                    ctx.check(key, value, rules.entity.root.children.get(key.as_str()));
                }
                Ok(true)
            }
            _ => Err("record is not a JSON object".into()),
        }
    };
    let shape_ok = matches!(
        rules.path.for_each_mut(doc, &mut f),
        Ok(crate::catalogue::Resolve::Found)
    );
    if !shape_ok {
        refusals.push(Refusal {
            field: rules.path.text.clone(),
            reason: RefusalReason::NotCollected,
        });
    }
    refusals
}

struct WriteCtx<'r, 'd> {
    rules: &'r WriteRules,
    decider: &'r mut Decider<'d>,
    catalogue: &'r Catalogue,
    target: &'r ResourceRef<'r>,
    refusals: &'r mut Vec<Refusal>,
}

impl WriteCtx<'_, '_> {
    /// Checks the field at `path` (dot path) and, if it passes, what it contains.
    fn check(&mut self, path: &str, value: &Value, node: Option<&FieldNode>) {
        if let Some(reason) = self.refusal(path, value, node) {
            self.refusals.push(Refusal {
                field: path.to_string(),
                reason,
            });
            return;
        }
        self.check_children(path, value, node);
    }

    fn check_children(&mut self, path: &str, value: &Value, node: Option<&FieldNode>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_node = node.and_then(|n| n.children.get(key.as_str()));
                    self.check(&format!("{path}.{key}"), child, child_node);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.check_children(path, item, node);
                }
            }
            _ => {}
        }
    }

    fn refusal(
        &mut self,
        path: &str,
        value: &Value,
        node: Option<&FieldNode>,
    ) -> Option<RefusalReason> {
        if let Some(collect) = &self.rules.collect {
            let allowed = collect.iter().any(|c| {
                c == path
                    || path.strip_prefix(c.as_str()).is_some_and(|r| r.starts_with('.'))
                    // A container of collectable fields, if it really is a container.
                    || (c.strip_prefix(path).is_some_and(|r| r.starts_with('.'))
                        && (value.is_object() || value.is_array()))
            });
            if !allowed {
                return Some(RefusalReason::NotCollected);
            }
        }
        let field = node.and_then(|n| n.field)?;
        let spec = self.catalogue.field(field);
        let permitted = self
            .decider
            .allowed(FieldAction::FieldWrite, Some(spec), self.target);
        (!permitted).then_some(RefusalReason::NotPermitted)
    }
}
