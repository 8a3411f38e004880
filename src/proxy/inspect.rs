//! An inspected route's response: read whole (bounded, decoded, refused
//! when it cannot be read), its headers allow-listed, and rewritten around
//! the filtered body. Shared by the enforcing path and shadow mode.

use super::body::{self, CollectError, Encoding, full};
use super::errors::{Refusal, Stop};
use super::headers;
use super::{Proxy, ProxyBody};
use crate::exchange::Exchange;
use crate::runtime::{Route, Runtime};
use bytes::Bytes;
use fieldguard_core::response_headers::ResponseHeaders;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;

/// Applies an inspected route's response-header allow-list to the
/// upstream's headers (hop-by-hop ones already gone): drops and records
/// what it does not allow and the allowed headers whose value is not in
/// their grammar, and makes the answer private (`Cache-Control`, `Vary`
/// naming `Authorization` and the gateway identity headers, no
/// validators); in shadow mode only records what it would drop.
pub(super) fn limit_headers(
    rt: &Runtime,
    allowed: &ResponseHeaders,
    shadow: bool,
    headers: &mut http::HeaderMap,
    ex: &mut Exchange,
) {
    let dropped = allowed.apply(headers, rt.identifier.identity_headers(), !shadow);
    ex.note_dropped_headers(dropped, shadow);
}

/// A filtered body is JSON: when the upstream's `Content-Type` was dropped
/// (its value was not in the grammar), the proxy names the media type it
/// checked the body against.
pub(super) fn ensure_json_type(headers: &mut http::HeaderMap) {
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
}

/// What an inspected response's head says of its body: refused here
/// (before a byte is passed on) when the proxy could not read it: an error
/// status, not JSON, an unknown coding, or declared over `limit`.
pub(super) fn check_head(parts: &http::response::Parts, limit: usize) -> Result<Encoding, Stop> {
    if !parts.status.is_success() {
        // Error bodies of legacy services can echo data; never relay them
        // on an inspected route.
        return Err(Stop {
            status: Some(parts.status),
            ..Stop::from(Refusal::UpstreamError)
        });
    }
    let encoding = body::encoding(&parts.headers);
    if encoding == Encoding::Unsupported || !headers::is_json(&parts.headers) {
        return Err(Refusal::UnreadableResponse.into());
    }
    if body::declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return Err(Refusal::ResponseTooLarge.into());
    }
    Ok(encoding)
}

/// Buffers and decodes an inspected response: its head, the raw bytes and,
/// when gzip-encoded, the decoded bytes. Anything the proxy cannot read is
/// refused here, before a byte is passed on.
pub(super) async fn read_inspected(
    proxy: &Proxy,
    rt: &Runtime,
    resp: Response<Incoming>,
) -> Result<(http::response::Parts, Bytes, Option<Vec<u8>>), Stop> {
    let (parts, body) = resp.into_parts();
    let limit = rt.decisions.limits.max_response_body_bytes;
    let encoding = check_head(&parts, limit)?;
    let read = tokio::time::timeout(
        proxy.upstream.response_timeout(),
        body::collect_limited(body, limit),
    )
    .await
    .map_err(|_| Stop::from(Refusal::UpstreamTimeout))?;
    let raw = read.map_err(too_large_or_unreadable)?;
    let decoded = decode(&raw, encoding, limit)?;
    Ok((parts, raw, decoded))
}

/// The decoded form of a gzip body (`None`: the raw bytes are the body).
pub(super) fn decode(
    raw: &[u8],
    encoding: Encoding,
    limit: usize,
) -> Result<Option<Vec<u8>>, Stop> {
    match encoding {
        Encoding::Gzip => Ok(Some(
            body::gunzip_limited(raw, limit).map_err(too_large_or_unreadable)?,
        )),
        _ => Ok(None),
    }
}

pub(super) fn too_large_or_unreadable(e: CollectError) -> Stop {
    match e {
        CollectError::TooLarge => Stop::from(Refusal::ResponseTooLarge),
        CollectError::Read => Stop::from(Refusal::UnreadableResponse),
    }
}

/// The filtered body under the upstream's head, minus what no longer holds
/// for it (encoding, validators, length).
pub(super) fn filtered_response(
    mut parts: http::response::Parts,
    out: Vec<u8>,
) -> Response<ProxyBody> {
    strip_rewritten(&mut parts.headers);
    ensure_json_type(&mut parts.headers);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Response::from_parts(parts, full(out))
}

/// Removes from a head whose body the proxy rewrote what no longer holds
/// for the new body (hop-by-hop headers, coding, validators, length).
pub(super) fn strip_rewritten(headers: &mut http::HeaderMap) {
    headers::strip_hop_by_hop(headers);
    for h in [
        header::CONTENT_ENCODING,
        header::ETAG,
        header::LAST_MODIFIED,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(h);
    }
    headers.remove("content-md5");
}

/// What the client learns of an upstream failure on an inspected route: on
/// a `hide_missing` route a 404 becomes the 403 an unreadable record gets,
/// so probing ids cannot tell "missing" from "not yours".
pub(super) fn upstream_failure(route: &Route, stop: Stop) -> Stop {
    if route.hide_missing
        && stop.refusal == Refusal::UpstreamError
        && stop.status == Some(StatusCode::NOT_FOUND)
    {
        return Stop::from(Refusal::Forbidden);
    }
    stop
}
