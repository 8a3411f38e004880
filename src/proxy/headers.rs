//! Header handling between client and upstream: hop-by-hop headers are
//! connection-specific and never forwarded; forwarding headers tell the
//! upstream who the client was; a request id ties logs together.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

pub use fieldguard_core::header_names::{folds_to_any, same_after_folding, strip_folded};
pub use fieldguard_core::response_headers::{
    HOP_BY_HOP, X_REQUEST_ID, is_hop_by_hop, strip_conditional,
};
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(HeaderName::from_static("proxy-connection"));
}

/// The client's request id when it is a sane token, else a fresh UUID.
/// Client-supplied ids are limited so they cannot inject into logs.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Sets `X-Forwarded-For` (appending the peer to any existing chain) and
/// `X-Forwarded-Proto`, and the request id.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    peer: IpAddr,
    proto: &'static str,
    request_id: &str,
) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
}

/// True for `application/json` and `application/*+json` media types.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn request_id_is_taken_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("bad id\"x"));
        assert_ne!(request_id(&h), "bad id\"x");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        set_forwarding(&mut h, "127.0.0.1".parse().unwrap(), "http", "r1");
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn folding_ignores_case_and_dash_underscore() {
        assert!(same_after_folding(
            "x-fieldguard-subject",
            "X_Fieldguard_Subject"
        ));
        assert!(same_after_folding("x_http_method", "X-HTTP-METHOD"));
        assert!(!same_after_folding(
            "x-fieldguard-subject",
            "x-fieldguard-subjects"
        ));
        assert!(!same_after_folding(
            "x-fieldguard-subject",
            "x.fieldguard.subject"
        ));
        let mut h = HeaderMap::new();
        h.insert("x_fieldguard_subject", HeaderValue::from_static("a"));
        h.append("x-fieldguard-subject", HeaderValue::from_static("b"));
        h.insert("x-fieldguard-subjectx", HeaderValue::from_static("c"));
        strip_folded(&mut h, &[HeaderName::from_static("x-fieldguard-subject")]);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-fieldguard-subjectx"));
    }

    #[test]
    fn json_media_types() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}
