//! The demo shop: a stand-in for the legacy service fieldguard protects.
//!
//! It deliberately enforces no access control and leaks every field, so that
//! demos, integration tests and benchmarks can show what the proxy removes.

pub mod data;
pub mod run;
pub mod shop;
