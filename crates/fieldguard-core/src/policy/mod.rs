//! Cedar: loading the policy set and schema, and deciding requests, records
//! and fields.

mod analysis;
mod engine;
mod entities;
mod load;

pub use engine::{
    AttrKey, AttrKeyRef, Decider, Engine, Facts, FieldAction, OwnedFacts, PolicyRefs, PolicyTable,
    RecordFacts, RequestDecision, ResourceRef, Verdict,
};
pub use entities::RequestPrincipal;
pub use load::{PolicyBundle, PolicyInfo, Sources, load_bundle, load_bundle_except};
