//! fieldguard: a policy-as-code enforcement sidecar.
//!
//! A request flows through the crate top to bottom:
//! [`proxy`] accepts it, [`identity`] names the caller, [`routing`] maps the
//! canonical path to a route, [`policy`] asks Cedar for the request-level
//! decision, [`redact`] checks request bodies and filters response bodies field
//! by field, and the answer goes back through [`proxy`].

pub mod admin;
pub mod audit;
pub mod budget;
pub mod catalogue;
pub mod config;
pub mod demo;
pub mod detect;
pub mod error;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod observed;
pub mod onboard;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod routing;
pub mod runtime;
pub mod service;
pub mod tls;
pub mod tools;
