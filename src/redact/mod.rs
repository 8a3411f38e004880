//! Body inspection: which records a body holds, which of their fields the
//! caller may see (and in which form), and which fields a write may carry.

mod json;
pub mod observe;
pub mod plan;
pub mod request;
pub mod response;
mod scan;
pub mod stream;

#[cfg(test)]
mod allowlist_proptests;
#[cfg(test)]
mod proptests;

pub use json::{BodyError, parse_json, parse_json_unique};

use crate::catalogue::{AttrValue, AttributeSource, EntityCatalogue, RecordPath};
use crate::policy::ResourceRef;
use plan::ResponsePlan;
use std::sync::Arc;

/// What filtering one response needs besides its bytes: the route's plan
/// and the request's resource, on which wrapper members are decided.
#[derive(Clone, Copy)]
pub struct BodyRules<'a> {
    pub plan: &'a ResponsePlan,
    pub resource: ResourceRef<'a>,
}

/// Where one kind of record sits in a body, compiled from a route's config.
#[derive(Debug, Clone)]
pub struct RecordSelector {
    pub path: RecordPath,
    pub entity: Arc<EntityCatalogue>,
    /// Attribute sources (entity defaults merged with route overrides).
    pub attributes: Vec<AttributeSource>,
}

impl RecordSelector {
    /// The Cedar resource of one of this selector's records.
    pub(crate) fn resource<'a>(
        &'a self,
        id: &'a str,
        values: &'a [AttrValue],
    ) -> crate::policy::ResourceRef<'a> {
        crate::policy::ResourceRef {
            type_name: &self.entity.type_name,
            type_key: u32::from(self.entity.index),
            id,
            sources: &self.attributes,
            values,
        }
    }
}

/// What happened to a field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Full,
    Masked,
    Removed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Full => "full",
            Outcome::Masked => "masked",
            Outcome::Removed => "removed",
        }
    }
}

/// Attribute values of a record, in the order of its selector's sources.
/// `None` when a source without default found nothing: such a record is
/// unreadable.
pub(crate) fn record_attributes(
    sources: &[AttributeSource],
    record: &serde_json::Value,
    root_values: &[Option<AttrValue>],
) -> Option<Vec<AttrValue>> {
    sources
        .iter()
        .zip(root_values)
        .map(|(s, root)| {
            if s.from_root {
                root.clone()
            } else {
                s.extract(record, record)
            }
        })
        .collect()
}
