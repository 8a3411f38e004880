//! `fieldguard onboard`: putting a legacy API under fieldguard as a guided,
//! reviewable step. [`draft`] writes a first configuration, Cedar schema
//! and deny-all baseline from the API's OpenAPI document; [`observed`]
//! turns what observing routes saw in traffic into the catalogue entries
//! still missing. Both propose ([`propose`]); a person reviews. A draft
//! takes the deployment's own sections from a file ([`deployment`]) and
//! makes the keyed-hash secret it names ([`secret`]).

pub mod deployment;
pub mod draft;
pub mod from_traffic;
pub mod openapi;
pub mod propose;
pub mod secret;
