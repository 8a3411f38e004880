//! Cedar: loading the policy set and schema, and deciding requests, records
//! and fields.

mod analysis;
mod engine;
mod entities;
mod load;

pub use engine::{Decider, Engine, FieldAction, RequestDecision, ResourceRef};
pub use entities::RequestPrincipal;
pub use load::{PolicyBundle, PolicyInfo, load_bundle, load_bundle_except};

use crate::runtime::ResourceRule;

/// The request-level resource entity of a matched route.
pub fn resource_for(
    rule: &ResourceRule,
    id: &str,
    values: &[crate::catalogue::AttrValue],
) -> Result<cedar_policy::Entity, String> {
    let uid = entities::uid(&rule.type_name, id);
    let attrs = rule.sources.iter().zip(values).map(|(s, v)| {
        (
            s.name.clone(),
            entities::record_attr_expr(v, s.entity_type.as_ref()),
        )
    });
    entities::resource_entity(uid, attrs)
}
