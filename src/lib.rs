//! fieldguard: a policy-as-code enforcement sidecar.
//!
//! A request flows through the crate top to bottom: [`proxy`] accepts it
//! and runs its phases (`proxy::handler`): [`identity`] names the caller,
//! the decisions of the core crate ([`fieldguard_core`]: routing, Cedar,
//! the request-body check, the response filter) decide it, the upstream
//! answers, and [`audit`] and [`metrics`] record it. The core crate holds
//! everything free of I/O and is not re-exported: code here names it
//! (`fieldguard_core::redact`, `fieldguard_core::policy`, …), so the line
//! between the crates shows at every use.

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
