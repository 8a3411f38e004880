//! fieldguard's decisions, free of I/O.
//!
//! What a request goes through here, top to bottom: [`routing`] maps its
//! canonical path to a [`route`]; [`policy`] asks Cedar for the
//! request-level decision; [`redact`] checks its body and filters the
//! response field by field against the [`catalogue`]. [`pipeline`] strings
//! these together for one request over a [`decisions::Decisions`] built
//! from the [`config`]'s decision sections; refusals are typed
//! ([`outcome`]). The proxy crate does the network I/O around it.

// Items of private modules are `pub(crate)`: what the crate offers is
// what its public modules export, and nothing else looks public.
#![warn(unreachable_pub)]

pub mod catalogue;
pub mod config;
pub mod decisions;
pub mod detect;
pub mod error;
pub mod header_names;
pub mod outcome;
pub mod pipeline;
pub mod policy;
pub mod principal;
pub mod redact;
pub mod repeated;
pub mod response_headers;
pub mod route;
pub mod routing;
pub mod time;

pub(crate) mod short_eq;
#[cfg(test)]
mod testing;
