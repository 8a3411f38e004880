//! fieldguard: a policy-as-code enforcement sidecar.
//!
//! A request flows through the crate top to bottom: [`proxy`] accepts it
//! and runs its phases (`proxy::handler`): [`identity`] names the caller,
//! the decisions of the core crate ([`fieldguard_core`]: routing, Cedar,
//! the request-body check, the response filter) decide it, the upstream
//! answers, and [`audit`] and [`metrics`] record it. The core crate holds
//! everything free of I/O; it is re-exported here under the same names
//! (`fieldguard::redact`, `fieldguard::policy`, …).

// Items of private modules are `pub(crate)`: what the crate offers is
// what its public modules export, and nothing else looks public.
#![warn(unreachable_pub)]

pub mod admin;
pub mod audit;
pub mod budget;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exchange;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod observed_store;
pub mod onboard;
pub mod policy_set;
pub mod proxy;
pub use proxy::reload;
pub mod runtime;
pub mod service;
pub mod tls;
pub mod tools;

#[doc(hidden)]
pub use fieldguard_core::repeated_warn;
pub use fieldguard_core::{
    catalogue, decisions, detect, error, header_names, outcome, pipeline, policy, principal,
    redact, response_headers, route, routing, time,
};
