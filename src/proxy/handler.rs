//! The path of one request, top to bottom:
//! canonical path → route → identity → Cedar request decision → request body
//! check → upstream → response body filter → client.
//! Decisions live in [`crate::pipeline`]; this module does the I/O around them
//! and records what happened in an [`Exchange`].

use super::body::{self, CollectError, Encoding};
use super::errors::{Refusal, Stop};
use super::exchange::Exchange;
use super::headers;
use super::observe;
use super::upstream::UpstreamError;
use super::{BoxError, Proxy, ProxyBody};
use crate::config::UnmatchedPolicy;
use crate::pipeline::{self, Decided, Routed};
use crate::redact::response::FilterReport;
use crate::routing;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Instant;

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

fn streamed(body: Incoming) -> ProxyBody {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

pub async fn handle(
    proxy: &Proxy,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let rt = proxy.runtime();
    let request_id = headers::request_id(req.headers());
    let mut ex = Exchange::new(request_id, peer, req.method().clone());
    // No audit slot, no service: nothing reaches the upstream unaudited.
    let (slot, result) = match observe::admit(proxy).await {
        Ok(slot) => (slot, process(proxy, &rt, req, &mut ex).await),
        Err((stop, _)) => (None, Err(stop)),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(stop) => {
            ex.refusal = Some(stop.refusal.code());
            stop.into_response(&ex.request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
        resp.headers_mut().insert(headers::X_REQUEST_ID, v);
    }
    ex.status = resp.status().as_u16();
    observe::finish(proxy, &rt, &ex, slot);
    resp
}

/// A request the listener refuses before processing it (over the
/// concurrency limit, too many headers): answered with the JSON error and
/// recorded like any other request.
pub(super) fn refuse(
    proxy: &Proxy,
    req: Request<Incoming>,
    peer: SocketAddr,
    refusal: Refusal,
) -> Response<ProxyBody> {
    let rt = proxy.runtime();
    let mut ex = Exchange::new(
        headers::request_id(req.headers()),
        peer,
        req.method().clone(),
    );
    ex.refusal = Some(refusal.code());
    let resp = Stop::from(refusal).into_response(&ex.request_id);
    ex.status = resp.status().as_u16();
    observe::finish(proxy, &rt, &ex, None);
    resp
}

async fn process(
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, body) = req.into_parts();
    let canonical =
        routing::normalize(parts.uri.path()).map_err(|_| Stop::from(Refusal::BadPath))?;
    let routed = pipeline::route(rt, parts.method.as_str(), &canonical);
    if let Routed::Passthrough = routed {
        ex.passthrough = true;
        strip_identity_headers(rt, &mut parts);
        return forward_streaming(proxy, parts, body, canonical.as_str(), ex).await;
    }

    // Every other request needs an identity, even before we say there is no
    // route (anonymous callers learn nothing about the route table).
    let identified = super::server::identify(rt, &parts, ex.peer.ip());
    strip_identity_headers(rt, &mut parts);
    let principal = identified.map_err(|e| {
        ex.identity_error = Some(e.reason());
        Stop {
            message: Some(e.client_message()),
            ..Stop::from(Refusal::Unauthenticated)
        }
    })?;
    ex.principal = Some(principal);

    let m = match routed {
        Routed::Route(m) => m,
        _ => {
            return match rt.unmatched {
                UnmatchedPolicy::Passthrough => {
                    ex.passthrough = true;
                    forward_streaming(proxy, parts, body, canonical.as_str(), ex).await
                }
                UnmatchedPolicy::Deny => Err(Refusal::NoRoute.into()),
            };
        }
    };
    ex.route = Some(m.value.template.clone());
    ex.action = Some(m.value.action.clone());
    let principal = ex.principal.as_ref().ok_or(Refusal::Internal)?;
    // Named before deciding, so a denied request's record says what was asked for.
    if let Some(rule) = &m.value.resource {
        ex.resource = Some((rule.type_name.to_string(), rule.resolve(&m.params).0));
    }
    let decide_started = Instant::now();
    let decided = pipeline::decide(rt, &m, principal);
    ex.decision_latency = Some(decide_started.elapsed());
    let decided = decided.map_err(|(stop, decision)| {
        ex.decision = decision;
        stop
    })?;
    ex.resource = Some((decided.resource_type.clone(), decided.resource_id.clone()));
    ex.decision = Some(decided.decision.clone());

    let upstream_body = if decided.route.request.is_some() {
        let bytes = collect_request(rt, &parts, body).await?;
        // A DELETE may carry no body; any other inspected write must.
        if !(bytes.is_empty() && parts.method == Method::DELETE) {
            pipeline::check_request_body(rt, &decided, headers::is_json(&parts.headers), &bytes)
                .map_err(|(stop, fields)| {
                    ex.refused_fields = fields;
                    stop
                })?;
        }
        // The original bytes go upstream, unchanged.
        full(bytes)
    } else {
        streamed(body)
    };

    let inspect = decided.route.inspects_response() && parts.method != Method::HEAD;
    let req = upstream_request(proxy, parts, upstream_body, canonical.as_str(), ex, inspect)?;
    let resp = send(proxy, req, ex).await?;
    if !inspect || !has_body(resp.status()) {
        return Ok(relay(resp));
    }
    let mut report = FilterReport::default();
    let filtered = filter(proxy, rt, &decided, resp, &mut report).await;
    ex.filter = Some(report);
    filtered
}

fn strip_identity_headers(rt: &Runtime, parts: &mut Parts) {
    for h in rt.identifier.identity_headers() {
        parts.headers.remove(h);
    }
}

async fn collect_request(rt: &Runtime, parts: &Parts, body: Incoming) -> Result<Bytes, Stop> {
    let limit = rt.limits.max_request_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::RequestTooLarge.into());
    }
    body::collect_limited(body, limit)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge => Stop::from(Refusal::RequestTooLarge),
            CollectError::Read => Stop::from(Refusal::MalformedRequestBody),
        })
}

/// Builds the upstream request: canonical path, client's query, headers
/// minus hop-by-hop, forwarding headers set.
fn upstream_request(
    proxy: &Proxy,
    mut parts: Parts,
    body: ProxyBody,
    path: &str,
    ex: &Exchange,
    inspect_response: bool,
) -> Result<Request<ProxyBody>, Stop> {
    let up = &proxy.upstream;
    let uri = up
        .uri(path, parts.uri.query())
        .map_err(|_| Stop::from(Refusal::BadPath))?;
    let client_authority = parts.uri.authority().cloned();
    headers::strip_hop_by_hop(&mut parts.headers);
    let proto = super::server::scheme(&parts);
    headers::set_forwarding(&mut parts.headers, ex.peer.ip(), proto, &ex.request_id);
    if up.preserve_host {
        if !parts.headers.contains_key(header::HOST) {
            // HTTP/2 clients send :authority instead of Host.
            if let Some(a) = client_authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert(header::HOST, a);
            }
        }
    } else if let Ok(v) = HeaderValue::from_str(up.authority.as_str()) {
        parts.headers.insert(header::HOST, v);
    }
    if inspect_response {
        // Ask for a body the proxy can read; gzip is still decoded if sent.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    let mut req = Request::from_parts(parts, body);
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    Ok(req)
}

async fn send(
    proxy: &Proxy,
    req: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Result<Response<Incoming>, Stop> {
    let started = Instant::now();
    let result = proxy.upstream.send(req).await;
    ex.upstream_latency = Some(started.elapsed());
    let resp = result.map_err(|e| match e {
        UpstreamError::Unavailable => Stop::from(Refusal::UpstreamUnavailable),
        UpstreamError::Timeout => Stop::from(Refusal::UpstreamTimeout),
    })?;
    ex.upstream_status = Some(resp.status().as_u16());
    Ok(resp)
}

async fn forward_streaming(
    proxy: &Proxy,
    parts: Parts,
    body: Incoming,
    path: &str,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let req = upstream_request(proxy, parts, streamed(body), path, ex, false)?;
    Ok(relay(send(proxy, req, ex).await?))
}

/// Relays an upstream response as it streams.
fn relay(resp: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, streamed(body))
}

fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Buffers, decodes and redacts an inspected response.
async fn filter(
    proxy: &Proxy,
    rt: &Runtime,
    decided: &Decided<'_>,
    resp: Response<Incoming>,
    report: &mut FilterReport,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        // Error bodies of legacy services can echo data; never relay them
        // on an inspected route.
        return Err(Stop {
            status: Some(parts.status),
            ..Stop::from(Refusal::UpstreamError)
        });
    }
    let limit = rt.limits.max_response_body_bytes;
    let unreadable = || Stop::from(Refusal::UnreadableResponse);
    let encoding = body::encoding(&parts.headers);
    if encoding == Encoding::Unsupported || !headers::is_json(&parts.headers) {
        return Err(unreadable());
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::ResponseTooLarge.into());
    }
    let read = tokio::time::timeout(
        proxy.upstream.response_timeout(),
        body::collect_limited(body, limit),
    )
    .await
    .map_err(|_| Stop::from(Refusal::UpstreamTimeout))?;
    let too_large_or_unreadable = |e| match e {
        CollectError::TooLarge => Stop::from(Refusal::ResponseTooLarge),
        CollectError::Read => unreadable(),
    };
    let raw = read.map_err(too_large_or_unreadable)?;
    let decoded;
    let json: &[u8] = match encoding {
        Encoding::Gzip => {
            decoded = body::gunzip_limited(&raw, limit).map_err(too_large_or_unreadable)?;
            &decoded
        }
        _ => &raw,
    };
    let out = pipeline::filter_response_body(rt, decided, json, report)?;
    headers::strip_hop_by_hop(&mut parts.headers);
    for h in [header::CONTENT_ENCODING, header::ETAG] {
        parts.headers.remove(h);
    }
    parts.headers.remove("content-md5");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(parts, full(out)))
}
