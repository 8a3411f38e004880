//! The response-header allow-list of inspected routes (routes with a
//! `response:` section).
//!
//! A legacy service's headers can carry what its body filter removes: a
//! session cookie, `X-Customer-Email`, a debug header echoing the record.
//! On an inspected route the client therefore gets only the standard
//! representation and caching headers ([`STANDARD`]), the headers the
//! route's config names (`response.headers`), and the proxy's own
//! (`Content-Length` of the filtered body, `X-Request-Id`). Everything else
//! from the upstream is dropped, and the names dropped are audited and
//! counted. Headers that describe the upstream's bytes rather than what the
//! client receives ([`REPLACED`]) are removed without being reported:
//! removing them is part of filtering, not a finding.

use crate::error::ConfigError;
use http::header::{self, HeaderMap, HeaderName};

/// The request id header: the proxy sets it on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// RFC 9110 §7.6.1 hop-by-hop headers, plus the legacy ones proxies drop.
pub const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// True for the fixed hop-by-hop names ([`strip_hop_by_hop`] also removes
/// the ones a `Connection` header lists).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == "proxy-connection"
}

use serde_saphyr::Spanned;
use std::path::Path;

/// Representation and caching metadata every inspected response may keep:
/// none of it is data about a customer, and clients and caches need it.
pub const STANDARD: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::PRAGMA,
    header::VARY,
    header::DATE,
    header::AGE,
    header::LAST_MODIFIED,
];

/// Removed without being reported: the proxy sets its own (`Content-Length`
/// of what it sends, `X-Request-Id`), or they describe the upstream's
/// bytes, not the filtered ones (encoding, validators, digest).
pub const REPLACED: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::ETAG,
    HeaderName::from_static("content-md5"),
    X_REQUEST_ID,
];

/// One inspected route's allow-list: [`STANDARD`] plus the names its
/// config lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    extra: Vec<HeaderName>,
}

impl ResponseHeaders {
    /// Compiles `response.headers`; `route` names the route in errors.
    /// A name that is not an HTTP header name, or one the proxy never
    /// passes on (hop-by-hop, [`REPLACED`]), is an error at its line.
    pub fn compile(
        names: &[Spanned<String>],
        file: &Path,
        route: &str,
    ) -> Result<Self, ConfigError> {
        let mut extra = Vec::with_capacity(names.len());
        for n in names {
            let err = |why: &str| {
                ConfigError::new(
                    file,
                    crate::config::line_of(n),
                    format!("route {route}: response.headers: `{}` {why}", n.value),
                )
            };
            let name = HeaderName::from_bytes(n.value.trim().as_bytes())
                .map_err(|_| err("is not an HTTP header name"))?;
            if REPLACED.contains(&name) {
                return Err(err(
                    "is set or removed by the proxy for the filtered body and cannot be passed on",
                ));
            }
            if is_hop_by_hop(&name) {
                return Err(err("is hop-by-hop and never forwarded"));
            }
            if !STANDARD.contains(&name) && !extra.contains(&name) {
                extra.push(name);
            }
        }
        Ok(Self { extra })
    }

    /// Whether the upstream's `name` may reach the client.
    pub fn allows(&self, name: &HeaderName) -> bool {
        STANDARD.contains(name) || self.extra.contains(name)
    }

    /// The upstream's headers not allowed (each name once, [`REPLACED`]
    /// ones not listed); when `enforce`, they and the [`REPLACED`] ones are
    /// removed. Shadow mode passes `enforce: false`: it only reports.
    pub fn apply(&self, headers: &mut HeaderMap, enforce: bool) -> Vec<HeaderName> {
        let refused: Vec<HeaderName> = headers
            .keys()
            .filter(|k| !self.allows(k))
            .cloned()
            .collect();
        if enforce {
            for name in &refused {
                headers.remove(name);
            }
        }
        refused
            .into_iter()
            .filter(|n| !REPLACED.contains(n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(
            s.to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    }

    #[test]
    fn only_standard_and_named_headers_survive() {
        let rules = ResponseHeaders::compile(
            &[spanned("X-Allowed"), spanned("x-allowed")],
            Path::new("f.yaml"),
            "GET /x",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("set-cookie", "sid=1"),
            ("x-customer-email", "a@b.c"),
            ("x-allowed", "yes"),
            ("content-length", "10"),
            ("etag", "\"x\""),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        h.append("set-cookie", HeaderValue::from_static("other=2"));
        let mut shadow = h.clone();
        let dropped = rules.apply(&mut h, true);
        assert_eq!(dropped, ["set-cookie", "x-customer-email"]);
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["cache-control", "content-type", "x-allowed"]);
        assert_eq!(rules.apply(&mut shadow, false), dropped);
        assert_eq!(shadow.len(), 8, "shadow mode removes nothing");
    }

    #[test]
    fn bad_or_unforwardable_names_are_config_errors() {
        for bad in [
            "bad name",
            "x:y",
            "",
            "content-length",
            "ETag",
            "connection",
        ] {
            let e = ResponseHeaders::compile(&[spanned(bad)], Path::new("f.yaml"), "GET /x")
                .unwrap_err();
            assert!(e.message.contains("response.headers"), "{bad}: {e}");
        }
    }
}
