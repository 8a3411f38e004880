//! The path of one request, top to bottom:
//! canonical path → route → identity → Cedar request decision → request body
//! check → upstream → response body filter → client.
//! Decisions live in [`crate::pipeline`]; this module does the I/O around them
//! and records what happened in an [`Exchange`].

use super::ambiguity;
use super::body::{self, CollectError, Encoding};
use super::budgeting;
use super::detached::Reply;
use super::errors::{Denied, Refusal, Stop};
use super::exchange::{Disagreement, Exchange, ShadowReport, Stage, WouldDeny};
use super::headers;
use super::observe;
use super::response_headers::ResponseHeaders;
use super::stall::StallLimit;
use super::upstream::UpstreamError;
use super::{BoxError, Proxy, ProxyBody};
use crate::config::UnmatchedPolicy;
use crate::pipeline::{self, Decided, Routed};
use crate::redact::Outcome;
use crate::redact::response::FilterReport;
use crate::routing;
use crate::runtime::{Route, Runtime};
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

/// A client's request body on its way upstream as it arrives, ended with
/// an error if the client stalls (`limits.request_body_timeout_ms`).
fn streamed_request(rt: &Runtime, body: Incoming) -> ProxyBody {
    StallLimit::new(body, rt.decisions.limits.request_body_timeout()).boxed()
}

/// One request, from its audit slot to its record; the answer goes to
/// `reply`. Runs in its own task ([`super::detached`]): it finishes, and
/// its record is written, whether or not the client is still there.
pub(super) async fn handle(
    proxy: &Proxy,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: String,
    mut reply: Reply,
) {
    let rt = proxy.runtime();
    let mut ex = Exchange::new(request_id, peer, req.method().clone());
    let progress = ex.progress.clone();
    let work = async {
        // No audit slot, no service: nothing reaches the upstream unaudited.
        match observe::admit(proxy).await {
            Ok(slot) => (slot, process(proxy, &rt, req, &mut ex).await),
            Err((stop, _)) => (None, Err(stop)),
        }
    };
    let (slot, result) = reply.watch(&progress, work).await;
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
    reply.deliver(resp, &progress);
    observe::finish(proxy, &rt, &ex, slot);
    // `reply` goes last: a detached request counts as such until its
    // record is queued.
    drop(reply);
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
    // Decided for the method on the request line, so the upstream must not
    // be told another one (every route, passthrough included).
    ambiguity::method_override(&parts.headers, parts.uri.query())?;
    let routed = pipeline::route(&rt.decisions, parts.method.as_str(), &canonical);
    if let Routed::Passthrough = routed {
        ex.passthrough = true;
        strip_identity_headers(rt, &mut parts);
        return forward_streaming(proxy, rt, parts, body, canonical.as_str(), ex).await;
    }

    // Every other request needs an identity, even before we say there is no
    // route (anonymous callers learn nothing about the route table).
    let identified = super::server::identify(rt, &parts, ex.peer.ip());
    strip_identity_headers(rt, &mut parts);
    let shadow_route = match &routed {
        Routed::Route(m) => m.route.shadow,
        _ => false,
    };
    let principal = match identified {
        Ok(p) => p,
        Err(e) => {
            ex.identity_error = Some(e.reason());
            if rt.decisions.shadow_all || shadow_route {
                // Shadow mode: not enforced, but nothing can be decided
                // without a caller either; relay it and say so.
                would_deny(ex, Refusal::Unauthenticated, Vec::new());
                return forward_streaming(proxy, rt, parts, body, canonical.as_str(), ex).await;
            }
            return Err(Stop {
                message: Some(e.client_message()),
                ..Stop::from(Refusal::Unauthenticated)
            });
        }
    };
    ex.principal = Some(principal);

    let m = match routed {
        Routed::Route(m) => m,
        _ => {
            return match rt.decisions.unmatched {
                UnmatchedPolicy::Passthrough => {
                    ex.passthrough = true;
                    forward_streaming(proxy, rt, parts, body, canonical.as_str(), ex).await
                }
                UnmatchedPolicy::Deny if rt.decisions.shadow_all => {
                    would_deny(ex, Refusal::NoRoute, Vec::new());
                    forward_streaming(proxy, rt, parts, body, canonical.as_str(), ex).await
                }
                UnmatchedPolicy::Deny => Err(Refusal::NoRoute.into()),
            };
        }
    };
    ex.route = Some(m.route.template.clone());
    ex.action = Some(m.route.action.clone());
    let principal = ex.principal.as_ref().ok_or(Refusal::Internal)?;
    // Named before deciding, so a denied request's record says what was asked for.
    let rule = &m.route.resource;
    ex.resource = Some((rule.type_name.to_string(), rule.resolve(&m.params).0));
    let decide_started = Instant::now();
    let shadow = rt.decisions.shadow_all || m.route.shadow;
    let evaluated = pipeline::evaluate(&rt.decisions.engine, &m, principal);
    ex.decision_latency = Some(decide_started.elapsed());
    let decided = evaluated?;
    ex.resource = Some((decided.resource_type.clone(), decided.resource_id.clone()));
    ex.decision = Some(decided.decision.clone());
    let observed = match &rt.decisions.observer {
        Some(o) => {
            let d = pipeline::evaluate(&o.engine, &m, principal)?;
            let report = ex.shadow.get_or_insert_with(Default::default);
            report.kind = o.kind.as_str();
            report.observed_version = Some(o.engine.bundle.version.clone());
            if d.decision.allowed != decided.decision.allowed {
                report.disagreements.push(Disagreement {
                    subject: "request".into(),
                    enforced: allow_label(decided.decision.allowed),
                    observed: allow_label(d.decision.allowed),
                });
                if !d.decision.allowed {
                    report.would_deny = Some(WouldDeny {
                        reason: Refusal::Forbidden.code(),
                        policies: d.decision.policies.clone(),
                    });
                }
            }
            Some(d)
        }
        None => None,
    };
    if !decided.decision.allowed {
        if !shadow {
            return Err(Refusal::Forbidden.into());
        }
        would_deny(ex, Refusal::Forbidden, decided.decision.policies.clone());
    }

    if decided.route.inspects_response() {
        budgeting::precheck(proxy, rt, ex, !shadow)?;
    }
    let upstream_body = if decided.route.request.is_some() {
        if let Err(refusal) = ambiguity::checked_body(&parts.headers) {
            if !shadow {
                return Err(refusal.into());
            }
            if shadow_report(ex).would_deny.is_none() {
                would_deny(ex, refusal, Vec::new());
            }
        }
        let bytes = collect_request(rt, &parts, body).await?;
        // A DELETE may carry no body; any other inspected write must.
        if !(bytes.is_empty() && parts.method == Method::DELETE) {
            let is_json = headers::is_json(&parts.headers);
            let enforced = pipeline::check_request_body(&rt.decisions, &decided, is_json, &bytes);
            if let Some(o) = &observed {
                let seen = pipeline::check_request_body(&rt.decisions, o, is_json, &bytes);
                compare_writes(ex, &enforced, &seen);
            }
            match enforced {
                Ok(written) => ex.written = written,
                Err((stop, fields)) if !shadow => {
                    ex.refused_fields = fields;
                    return Err(stop.into());
                }
                Err((stop, fields)) => {
                    let report = shadow_report(ex);
                    report.would_refuse_fields = fields.into_iter().map(|f| f.field).collect();
                    if report.would_deny.is_none() {
                        report.would_deny = Some(WouldDeny {
                            reason: stop.refusal.code(),
                            policies: Vec::new(),
                        });
                    }
                }
            }
        }
        // The original bytes go upstream, unchanged.
        full(bytes)
    } else {
        streamed_request(rt, body)
    };

    let inspect = decided.route.inspects_response() && parts.method != Method::HEAD;
    let allowed_headers = decided.route.response_headers.as_ref();
    let req = upstream_request(proxy, parts, upstream_body, canonical.as_str(), ex, inspect)?;
    let resp = send(proxy, req, ex).await?;
    if !inspect || !has_body(resp.status()) {
        let mut resp = relay(resp);
        if let Some(allowed) = allowed_headers {
            limit_headers(allowed, shadow, resp.headers_mut(), ex);
        }
        return Ok(resp);
    }
    if shadow {
        return shadow_filter(proxy, rt, &decided, resp, ex).await;
    }
    let (mut parts, raw, decoded) = read_inspected(proxy, rt, resp)
        .await
        .map_err(|stop| upstream_failure(decided.route, stop))?;
    if let Some(allowed) = allowed_headers {
        limit_headers(allowed, false, &mut parts.headers, ex);
    }
    let json = decoded.as_deref().unwrap_or(&raw);
    let mut report = FilterReport::default();
    let filtered = pipeline::filter_response_body(&rt.decisions, &decided, json, &mut report);
    if let Some(o) = &observed {
        let mut seen = FilterReport::default();
        let observed_result = pipeline::filter_response_body(&rt.decisions, o, json, &mut seen);
        compare_filters(ex, rt, &filtered, &report, &observed_result, &seen);
    }
    if filtered.is_ok() {
        // Refused by a budget: nothing was disclosed, so no body report.
        budgeting::charge(proxy, rt, ex, &report, true)?;
    }
    ex.filter = Some(report);
    Ok(filtered_response(parts, filtered?))
}

fn allow_label(allowed: bool) -> String {
    if allowed { "allow" } else { "deny" }.to_string()
}

fn shadow_report(ex: &mut Exchange) -> &mut ShadowReport {
    let report = ex.shadow.get_or_insert_with(Default::default);
    if report.kind.is_empty() {
        report.kind = "shadow";
    }
    report
}

/// Shadow mode: record the refusal that enforcement would have made.
fn would_deny(ex: &mut Exchange, refusal: Refusal, policies: Vec<String>) {
    let report = shadow_report(ex);
    report.kind = "shadow";
    report.would_deny = Some(WouldDeny {
        reason: refusal.code(),
        policies,
    });
}

type WriteCheck = Result<Vec<u32>, (Denied, Vec<crate::redact::request::Refusal>)>;

/// Disagreements between the enforced and the observed write checks.
fn compare_writes(ex: &mut Exchange, enforced: &WriteCheck, observed: &WriteCheck) {
    let fields = |r: &WriteCheck| -> Vec<String> {
        match r {
            Ok(_) => Vec::new(),
            Err((_, f)) => f.iter().map(|x| x.field.clone()).collect(),
        }
    };
    let (e, o) = (fields(enforced), fields(observed));
    let report = ex.shadow.get_or_insert_with(Default::default);
    for f in e.iter().filter(|f| !o.contains(f)) {
        report.disagreements.push(Disagreement {
            subject: format!("write:{f}"),
            enforced: "refuse".into(),
            observed: "allow".into(),
        });
    }
    for f in o.iter().filter(|f| !e.contains(f)) {
        report.disagreements.push(Disagreement {
            subject: format!("write:{f}"),
            enforced: "allow".into(),
            observed: "refuse".into(),
        });
    }
    if report.would_deny.is_none()
        && enforced.is_ok()
        && let Err((stop, _)) = observed
    {
        report.would_deny = Some(WouldDeny {
            reason: stop.refusal.code(),
            policies: Vec::new(),
        });
    }
}

/// Disagreements between the enforced and the observed response filters:
/// per catalogued field, the outcome counts differ.
fn compare_filters(
    ex: &mut Exchange,
    rt: &Runtime,
    enforced: &Result<Vec<u8>, Denied>,
    e: &FilterReport,
    observed: &Result<Vec<u8>, Denied>,
    o: &FilterReport,
) {
    let report = ex.shadow.get_or_insert_with(Default::default);
    let outcome = |r: &Result<Vec<u8>, Denied>| match r {
        Ok(_) => "ok".to_string(),
        Err(s) => s.refusal.code().to_string(),
    };
    if outcome(enforced) != outcome(observed) {
        report.disagreements.push(Disagreement {
            subject: "response".into(),
            enforced: outcome(enforced),
            observed: outcome(observed),
        });
    }
    let summary = |r: &FilterReport, field: u32| -> String {
        let mut parts: Vec<String> = r
            .outcomes
            .iter()
            .filter(|((f, _), _)| *f == field)
            .map(|((_, out), n)| format!("{}:{n}", out.as_str()))
            .collect();
        parts.sort();
        parts.join(",")
    };
    let mut fields: Vec<u32> = e
        .outcomes
        .keys()
        .chain(o.outcomes.keys())
        .map(|(f, _)| *f)
        .collect();
    fields.sort_unstable();
    fields.dedup();
    for field in fields {
        let (se, so) = (summary(e, field), summary(o, field));
        if se != so {
            let spec = rt.decisions.catalogue.field(field);
            report.disagreements.push(Disagreement {
                subject: format!("field:{}.{}", spec.entity, spec.path),
                enforced: se,
                observed: so,
            });
        }
    }
    if e.records_dropped != o.records_dropped {
        report.disagreements.push(Disagreement {
            subject: "records_hidden".into(),
            enforced: e.records_dropped.to_string(),
            observed: o.records_dropped.to_string(),
        });
    }
    if o.outcomes
        .iter()
        .any(|((_, out), n)| *out != Outcome::Full && *n > 0)
        && report
            .disagreements
            .iter()
            .any(|d| d.subject.starts_with("field:"))
    {
        report.would_redact = Some(o.clone());
    }
}

/// Shadow mode on an inspected response: compute what filtering would do,
/// audit it, and relay the upstream's body unchanged.
async fn shadow_filter(
    proxy: &Proxy,
    rt: &Runtime,
    decided: &Decided<'_>,
    resp: Response<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, raw, decoded) = match read_inspected(proxy, rt, resp).await {
        Ok(x) => x,
        Err(stop) => {
            let stop = upstream_failure(decided.route, stop);
            // The body could not be inspected; relaying what was not read
            // is impossible, so this is the one refusal shadow mode keeps.
            would_deny(ex, stop.refusal, Vec::new());
            return Err(stop);
        }
    };
    let json = decoded.as_deref().unwrap_or(&raw);
    let mut report = FilterReport::default();
    if let Err(stop) = pipeline::filter_response_body(&rt.decisions, decided, json, &mut report) {
        would_deny(ex, stop.refusal, Vec::new());
    }
    // Counted as the filter would have disclosed; never refused here.
    let _ = budgeting::charge(proxy, rt, ex, &report, false);
    if report
        .outcomes
        .iter()
        .any(|((_, o), n)| *o != Outcome::Full && *n > 0)
        || report.records_dropped > 0
        || !report.unnamed.is_empty()
        || !report.misshapen.is_empty()
        || !report.backstop.is_empty()
    {
        shadow_report(ex).would_redact = Some(report);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(allowed) = &decided.route.response_headers {
        limit_headers(allowed, true, &mut parts.headers, ex);
    }
    Ok(Response::from_parts(parts, full(raw)))
}

/// Applies an inspected route's response-header allow-list to the
/// upstream's headers (hop-by-hop ones already gone): drops and records
/// what it does not allow, or in shadow mode records what it would drop.
fn limit_headers(
    allowed: &ResponseHeaders,
    shadow: bool,
    headers: &mut http::HeaderMap,
    ex: &mut Exchange,
) {
    let dropped = allowed.apply(headers, !shadow);
    if dropped.is_empty() {
        return;
    }
    if shadow {
        shadow_report(ex).would_drop_headers = dropped;
    } else {
        ex.dropped_headers = dropped;
    }
}

/// Gateway identity headers in every spelling a backend folds to the same
/// name: never forwarded.
fn strip_identity_headers(rt: &Runtime, parts: &mut Parts) {
    headers::strip_folded(&mut parts.headers, rt.identifier.identity_headers());
}

async fn collect_request(rt: &Runtime, parts: &Parts, body: Incoming) -> Result<Bytes, Stop> {
    let limit = rt.decisions.limits.max_request_body_bytes;
    if body::declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return Err(Refusal::RequestTooLarge.into());
    }
    // The whole inspected body (bounded in size) within the time limit.
    tokio::time::timeout(
        rt.decisions.limits.request_body_timeout(),
        body::collect_limited(body, limit),
    )
    .await
    .map_err(|_| Stop::from(Refusal::RequestBodyTimeout))?
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
    if ex.progress.client_gone() {
        // Nobody would get the answer; an unseen write is not started.
        return Err(Refusal::ClientClosedRequest.into());
    }
    ex.progress.reached(Stage::DuringUpstream);
    let started = Instant::now();
    let result = proxy.upstream.send(req).await;
    ex.upstream_latency = Some(started.elapsed());
    let resp = result.map_err(|e| match e {
        UpstreamError::Unavailable => Stop::from(Refusal::UpstreamUnavailable),
        UpstreamError::Timeout => Stop::from(Refusal::UpstreamTimeout),
        UpstreamError::RequestBodyStalled => Stop::from(Refusal::RequestBodyTimeout),
    })?;
    ex.progress.reached(Stage::AfterUpstream);
    ex.upstream_status = Some(resp.status().as_u16());
    Ok(resp)
}

async fn forward_streaming(
    proxy: &Proxy,
    rt: &Runtime,
    parts: Parts,
    body: Incoming,
    path: &str,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let req = upstream_request(proxy, parts, streamed_request(rt, body), path, ex, false)?;
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

/// Buffers and decodes an inspected response: its head, the raw bytes and,
/// when gzip-encoded, the decoded bytes. Anything the proxy cannot read is
/// refused here, before a byte is passed on.
async fn read_inspected(
    proxy: &Proxy,
    rt: &Runtime,
    resp: Response<Incoming>,
) -> Result<(http::response::Parts, Bytes, Option<Vec<u8>>), Stop> {
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        // Error bodies of legacy services can echo data; never relay them
        // on an inspected route.
        return Err(Stop {
            status: Some(parts.status),
            ..Stop::from(Refusal::UpstreamError)
        });
    }
    let limit = rt.decisions.limits.max_response_body_bytes;
    let unreadable = || Stop::from(Refusal::UnreadableResponse);
    let encoding = body::encoding(&parts.headers);
    if encoding == Encoding::Unsupported || !headers::is_json(&parts.headers) {
        return Err(unreadable());
    }
    if body::declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
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
    let decoded = match encoding {
        Encoding::Gzip => Some(body::gunzip_limited(&raw, limit).map_err(too_large_or_unreadable)?),
        _ => None,
    };
    Ok((parts, raw, decoded))
}

/// The filtered body under the upstream's head, minus what no longer holds
/// for it (encoding, validators, length).
fn filtered_response(mut parts: http::response::Parts, out: Vec<u8>) -> Response<ProxyBody> {
    headers::strip_hop_by_hop(&mut parts.headers);
    for h in [header::CONTENT_ENCODING, header::ETAG] {
        parts.headers.remove(h);
    }
    parts.headers.remove("content-md5");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Response::from_parts(parts, full(out))
}

/// What the client learns of an upstream failure on an inspected route: on
/// a `hide_missing` route a 404 becomes the 403 an unreadable record gets,
/// so probing ids cannot tell "missing" from "not yours".
fn upstream_failure(route: &Route, stop: Stop) -> Stop {
    if route.hide_missing
        && stop.refusal == Refusal::UpstreamError
        && stop.status == Some(StatusCode::NOT_FOUND)
    {
        return Stop::from(Refusal::Forbidden);
    }
    stop
}
