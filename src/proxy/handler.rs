//! The path of one request, top to bottom:
//! canonical path → route → identity → Cedar request decision → request body
//! check → upstream → response body filter → client.

use super::body::{self, CollectError, Encoding};
use super::errors::{Refusal, error_response};
use super::headers;
use super::upstream::UpstreamError;
use super::{BoxError, Proxy, ProxyBody};
use crate::config::UnmatchedPolicy;
use crate::policy::{RequestPrincipal, ResourceRef};
use crate::redact::request::check_write;
use crate::redact::response::{FilterError, FilterReport, filter_response};
use crate::redact::{BodyError, parse_json};
use crate::routing::{self, Params};
use crate::runtime::{Route, Runtime};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;

/// The proxy's own answer instead of the upstream's.
struct Stop {
    refusal: Refusal,
    message: Option<&'static str>,
    fields: Vec<String>,
    /// Keep the upstream's status (for upstream errors on inspected routes).
    status: Option<StatusCode>,
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop {
            refusal,
            message: None,
            fields: Vec::new(),
            status: None,
        }
    }
}

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
    let rt = proxy.runtime.clone();
    let request_id = headers::request_id(req.headers());
    let method = req.method().clone();
    let mut resp = match process(proxy, &rt, req, peer, &request_id).await {
        Ok(resp) => resp,
        Err(stop) => {
            tracing::info!(
                request_id,
                %method,
                reason = stop.refusal.code(),
                fields = ?stop.fields,
                "refused"
            );
            let mut r = error_response(stop.refusal, &request_id, stop.message, &stop.fields);
            if let Some(s) = stop.status {
                *r.status_mut() = s;
            }
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(headers::X_REQUEST_ID, v);
    }
    resp
}

async fn process(
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, body) = req.into_parts();
    let canonical = routing::normalize(parts.uri.path()).map_err(|e| {
        tracing::debug!(request_id, "bad path: {e}");
        Stop::from(Refusal::BadPath)
    })?;
    let matched = rt.router.at(parts.method.as_str(), &canonical);

    if let Some(m) = &matched {
        if m.value.passthrough {
            strip_identity_headers(rt, &mut parts);
            return forward_streaming(proxy, parts, body, canonical.as_str(), peer, request_id)
                .await;
        }
    }

    // Every other request needs an identity, even before we say there is no
    // route (anonymous callers learn nothing about the route table).
    let principal = rt
        .identifier
        .identify(&parts.headers, peer.ip())
        .map_err(|e| {
            tracing::debug!(request_id, reason = e.reason(), "identity refused");
            Stop {
                refusal: Refusal::Unauthenticated,
                message: Some(e.client_message()),
                fields: Vec::new(),
                status: None,
            }
        })?;
    strip_identity_headers(rt, &mut parts);

    let Some(m) = matched else {
        return match rt.unmatched {
            UnmatchedPolicy::Passthrough => {
                forward_streaming(proxy, parts, body, canonical.as_str(), peer, request_id).await
            }
            UnmatchedPolicy::Deny => Err(Refusal::NoRoute.into()),
        };
    };
    let route = m.value;

    let who = RequestPrincipal::new(&principal, &route.action).map_err(|e| {
        tracing::warn!(request_id, "principal entity failed: {e}");
        Stop::from(Refusal::Internal)
    })?;
    let Some(rule) = &route.resource else {
        return Err(Refusal::Internal.into());
    };
    let (resource_id, resource_values) = rule.resolve(&m.params);
    let resource = crate::policy::resource_for(rule, &resource_id, &resource_values)
        .map_err(|_| Stop::from(Refusal::Internal))?;
    let decision = rt.engine.decide_request(&who, &route.action, resource);
    tracing::debug!(
        request_id,
        principal = %principal.id,
        action = %route.action,
        allowed = decision.allowed,
        policies = ?decision.policies,
        "request decision"
    );
    if !decision.allowed {
        return Err(Refusal::Forbidden.into());
    }

    let mut decider = rt.engine.decider(&who);
    let upstream_body = match &route.request {
        Some(rules) => {
            let bytes = collect_request(rt, &parts, body).await?;
            if !bytes.is_empty() || parts.method != Method::DELETE {
                if !headers::is_json(&parts.headers) {
                    return Err(Refusal::UnsupportedMediaType.into());
                }
                let mut doc = parse_json(&bytes, rt.limits.max_json_depth)
                    .map_err(|_: BodyError| Stop::from(Refusal::MalformedRequestBody))?;
                let target = ResourceRef {
                    type_name: &rule.type_name,
                    type_key: rule.type_key,
                    id: &resource_id,
                    sources: &rule.sources,
                    values: &resource_values,
                };
                let refused = check_write(&mut doc, rules, &mut decider, &rt.catalogue, &target);
                if !refused.is_empty() {
                    return Err(Stop {
                        refusal: Refusal::ForbiddenFields,
                        message: None,
                        fields: refused.into_iter().map(|r| r.field).collect(),
                        status: None,
                    });
                }
            }
            // The original bytes go upstream, unchanged.
            full(bytes)
        }
        None => streamed(body),
    };

    let inspect = route.inspects_response() && parts.method != Method::HEAD;
    let upstream_req = upstream_request(
        proxy,
        parts,
        upstream_body,
        canonical.as_str(),
        peer,
        request_id,
        inspect,
    )?;
    let resp = send(proxy, upstream_req).await?;
    if !inspect || !has_body(resp.status()) {
        return Ok(relay(resp));
    }
    filter(proxy, rt, route, &m.params, &mut decider, resp).await
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
    peer: SocketAddr,
    request_id: &str,
    inspect_response: bool,
) -> Result<Request<ProxyBody>, Stop> {
    let up = &proxy.upstream;
    let uri = up
        .uri(path, parts.uri.query())
        .map_err(|_| Stop::from(Refusal::BadPath))?;
    let client_authority = parts.uri.authority().cloned();
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::set_forwarding(&mut parts.headers, peer.ip(), "http", request_id);
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

async fn send(proxy: &Proxy, req: Request<ProxyBody>) -> Result<Response<Incoming>, Stop> {
    proxy.upstream.send(req).await.map_err(|e| match e {
        UpstreamError::Unavailable => Stop::from(Refusal::UpstreamUnavailable),
        UpstreamError::Timeout => Stop::from(Refusal::UpstreamTimeout),
    })
}

async fn forward_streaming(
    proxy: &Proxy,
    parts: Parts,
    body: Incoming,
    path: &str,
    peer: SocketAddr,
    request_id: &str,
) -> Result<Response<ProxyBody>, Stop> {
    let req = upstream_request(proxy, parts, streamed(body), path, peer, request_id, false)?;
    Ok(relay(send(proxy, req).await?))
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

/// Buffers, decodes, parses and redacts an inspected response.
async fn filter(
    proxy: &Proxy,
    rt: &Runtime,
    route: &Route,
    _params: &Params<'_>,
    decider: &mut crate::policy::Decider<'_>,
    resp: Response<Incoming>,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        // Error bodies of legacy services can echo data; never relay them
        // on an inspected route.
        return Err(Stop {
            refusal: Refusal::UpstreamError,
            message: None,
            fields: Vec::new(),
            status: Some(parts.status),
        });
    }
    let limit = rt.limits.max_response_body_bytes;
    let unreadable = || Stop::from(Refusal::UnreadableResponse);
    let encoding = body::encoding(&parts.headers);
    if encoding == Encoding::Unsupported || !headers::is_json(&parts.headers) {
        return Err(unreadable());
    }
    let read = tokio::time::timeout(
        proxy.upstream.response_timeout(),
        body::collect_limited(body, limit),
    )
    .await
    .map_err(|_| Stop::from(Refusal::UpstreamTimeout))?;
    let raw = read.map_err(|e| match e {
        CollectError::TooLarge => Stop::from(Refusal::ResponseTooLarge),
        CollectError::Read => unreadable(),
    })?;
    let decoded;
    let json_bytes: &[u8] = match encoding {
        Encoding::Gzip => {
            decoded = body::gunzip_limited(&raw, limit).map_err(|e| match e {
                CollectError::TooLarge => Stop::from(Refusal::ResponseTooLarge),
                CollectError::Read => unreadable(),
            })?;
            &decoded
        }
        _ => &raw,
    };
    let mut doc = parse_json(json_bytes, rt.limits.max_json_depth).map_err(|_| unreadable())?;
    let mut report = FilterReport::default();
    filter_response(
        &mut doc,
        &route.response,
        decider,
        &rt.catalogue,
        &mut report,
    )
    .map_err(|e| match e {
        FilterError::Forbidden => Stop::from(Refusal::Forbidden),
        FilterError::Shape(m) => {
            tracing::warn!(route = %route.template, "unexpected response shape: {m}");
            unreadable()
        }
    })?;
    let out = serde_json::to_vec(&doc).map_err(|_| unreadable())?;
    headers::strip_hop_by_hop(&mut parts.headers);
    for h in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::ETAG,
    ] {
        parts.headers.remove(h);
    }
    parts.headers.remove("content-md5");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(parts, full(out)))
}
