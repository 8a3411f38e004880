//! Body inspection: which records a body holds, which of their fields the
//! caller may see (and in which form), and which fields a write may carry.

// The walks and the scanner are private: callers go through
// `crate::pipeline` (check_request_body, filter_response_body,
// stream_response_body), as cedar-policy fronts cedar-policy-core, and
// get the types those return from the re-exports below. The one exception
// is the `differential` feature, which makes the two response walks
// public for the fuzz target that compares them (fuzz/); it is not part of
// the crate's API and nothing else turns it on.
#[cfg(feature = "differential")]
pub mod bytes;
#[cfg(not(feature = "differential"))]
#[allow(unreachable_pub, reason = "public only with the differential feature")]
pub(crate) mod bytes;
pub mod disclosed;
mod expected_keys;
mod json;
pub(crate) mod list_stream;
pub mod plan;
mod record;
mod record_plan;
mod replay;
pub mod report;
pub(crate) mod request;
mod scan;
#[cfg(feature = "differential")]
pub mod tree;
#[cfg(not(feature = "differential"))]
#[allow(unreachable_pub, reason = "public only with the differential feature")]
pub(crate) mod tree;
pub(crate) mod unnamed;

#[cfg(test)]
mod allowlist_proptests;
#[cfg(test)]
mod proptests;

pub use json::{BodyError, parse_json, parse_json_unique};
pub use list_stream::{ListStream, ListStreamError, StreamLimits};
pub use request::{Refusal, RefusalReason};
pub use unnamed::{Observed, ObservedEntry};

use crate::catalogue::{AttrValue, AttributeSource, EntityCatalogue, RecordPath};
use crate::policy::ResourceRef;
use plan::ResponsePlan;
use std::sync::Arc;

/// The record attribute naming the data subject (the customer a record is
/// about): the one ownership policies already read.
pub const SUBJECT_ATTRIBUTE: &str = "owner";

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
    /// Position in `attributes` of the one naming the customer a record is
    /// about (its `owner`), when that is not the record's own id: the
    /// audit trail names it beside the record id.
    pub subject: Option<usize>,
}

impl RecordSelector {
    /// A selector for `entity`'s records at `path`, with these attribute
    /// sources; the data subject is the `owner` attribute (an entity
    /// reference read from the record), unless it is the record id itself.
    pub fn new(
        path: RecordPath,
        entity: Arc<EntityCatalogue>,
        attributes: Vec<AttributeSource>,
    ) -> Self {
        let subject = attributes.iter().position(|a| {
            a.name == SUBJECT_ATTRIBUTE
                && a.kind == crate::config::AttributeKind::Entity
                && (a.from_root || entity.id_field.as_deref() != Some(a.path.as_slice()))
        });
        Self {
            path,
            entity,
            attributes,
            subject,
        }
    }

    /// The customer a record with these attribute `values` is about, when
    /// the selector names one apart from the record id.
    pub(crate) fn subject_of<'a>(&self, values: &'a [AttrValue]) -> Option<&'a str> {
        match values.get(self.subject?)? {
            AttrValue::Entity(id) => Some(id),
            _ => None,
        }
    }

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
