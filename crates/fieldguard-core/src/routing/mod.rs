//! Path canonicalisation and route matching.
//!
//! Access is decided per route, and the upstream is a legacy service with its
//! own path quirks. This module makes sure no spelling of a path can be
//! decided under one route and served under another: requests are reduced to
//! a [`CanonicalPath`] (or refused with a [`PathError`]), routes are matched
//! only on that form, and the proxy forwards [`CanonicalPath::as_str`]
//! upstream instead of the client's raw path.

pub mod path;
pub mod router;

pub use path::{CanonicalPath, PathError, normalize};
pub use router::{Match, Params, RouteError, Router};
