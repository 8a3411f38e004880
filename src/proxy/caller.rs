//! What a request says about its caller beyond its headers: the
//! connection it came over (TLS, a client certificate naming a service
//! principal). Read by the request path; the listeners ([`super::server`])
//! put the connection's facts into the request's extensions.

use crate::identity::{IdentityError, Principal};
use crate::runtime::Runtime;
use crate::tls::TlsConnection;
use http::request::Parts;
use std::net::IpAddr;

/// Who is calling: the service principal of the connection's client
/// certificate when it names one, else the token or gateway identity of the
/// request. A listed certificate is the stronger, channel-bound proof, so
/// it is not overridden by a bearer token the service may be relaying.
pub(super) fn identify(
    rt: &Runtime,
    parts: &Parts,
    peer: IpAddr,
) -> Result<Principal, IdentityError> {
    if let Some(p) = parts
        .extensions
        .get::<TlsConnection>()
        .and_then(|t| t.principal.as_deref())
    {
        return Ok(p.clone());
    }
    rt.identifier.identify(&parts.headers, peer)
}

/// `https` for requests that came over TLS (for `X-Forwarded-Proto`).
pub(super) fn scheme(parts: &Parts) -> &'static str {
    if parts.extensions.get::<TlsConnection>().is_some() {
        "https"
    } else {
        "http"
    }
}
