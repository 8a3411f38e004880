//! Tools for policy authors (`fieldguard explain`, `matrix`, `test`, and
//! `validate`'s warnings). They evaluate the real policies through the same
//! [`fieldguard_core::pipeline`] the proxy runs, never by reading policy text.

pub mod audit;
pub mod cli;
pub mod diff;
pub mod explain;
pub mod lint;
pub mod matrix;
pub mod policy_cases;
pub mod sign;

use crate::identity::{IdentitySource, Principal};
use std::collections::BTreeMap;

/// A principal for offline evaluation, as a policy author describes it.
pub fn principal(sub: &str, roles: &[String], mfa: bool, purpose: Option<&str>) -> Principal {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    Principal {
        id: sub.to_string(),
        roles,
        mfa,
        purpose: purpose.filter(|p| !p.is_empty()).map(str::to_string),
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    }
}
