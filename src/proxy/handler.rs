//! The path of one request, in named phases driven in order by
//! [`process`]: route → identify → decide → check body → forward → filter;
//! [`handle`] records it (audit and metrics). The decisions themselves live
//! in the core crate ([`fieldguard_core::pipeline`]); the phases do the I/O around
//! them and note what happened in an [`Exchange`]. Shadow mode and an
//! observed policy set are noted by [`super::shadow`].

use super::accounting;
use super::ambiguity;
use super::body::{self, CollectError, full, streamed};
use super::budgeting;
use super::detached::Reply;
use super::enforcement::Enforcement;
use super::errors::{Refusal, Stop};
use super::headers;
use super::inspect::{filtered_response, limit_headers, read_inspected, upstream_failure};
use super::shadow;
use super::stall::StallLimit;
use super::streaming::{self, Start, Streamed};
use super::upstream::UpstreamError;
use super::{Proxy, ProxyBody};
use crate::exchange::{Exchange, Stage};
use crate::runtime::Runtime;
use bytes::Bytes;
use fieldguard_core::config::UnmatchedPolicy;
use fieldguard_core::pipeline::{self, Decided, RouteMatch, Routed};
use fieldguard_core::principal::Principal;
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::{self, CanonicalPath};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Instant;

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
        match accounting::admit(proxy).await {
            Ok(slot) => (slot, process(proxy, &rt, req, &mut ex).await),
            Err((stop, _)) => (None, Err(stop)),
        }
    };
    let (slot, result) = reply.watch(&progress, work).await;
    match result {
        Ok(Answer::Whole(resp)) => reply.answer(Ok(resp), &mut ex),
        Ok(Answer::Streamed(head, streamed)) => {
            streamed
                .deliver(head, proxy, &rt, &mut ex, &mut reply)
                .await
        }
        Err(stop) => reply.answer(Err(stop), &mut ex),
    }
    accounting::finish(proxy, &rt, &ex, slot);
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
    accounting::finish(proxy, &rt, &ex, None);
    resp
}

/// What [`process`] answers: a whole response, or a streamed list's head
/// with what sends its body ([`streaming`]).
enum Answer<'rt> {
    Whole(Response<ProxyBody>),
    Streamed(Response<ProxyBody>, Box<Streamed<'rt>>),
}

impl From<Response<ProxyBody>> for Answer<'_> {
    fn from(resp: Response<ProxyBody>) -> Self {
        Answer::Whole(resp)
    }
}

/// The phases of one request, in order. Each returns what the next needs,
/// or a [`Stop`] (the proxy's own answer).
async fn process<'rt>(
    proxy: &Proxy,
    rt: &'rt Runtime,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Result<Answer<'rt>, Stop> {
    let (mut parts, body) = req.into_parts();
    let path = canonical_path(&parts)?;
    let routed = pipeline::route(&rt.decisions, parts.method.as_str(), &path);
    let Some(m) = identify(rt, &mut parts, routed, ex)? else {
        return relay_request(proxy, rt, parts, body, &path, ex)
            .await
            .map(Answer::from);
    };
    let verdict = decide(rt, &m, ex)?;
    let upstream_body = check_body(proxy, rt, &parts, body, &verdict, ex).await?;
    let inspect = verdict.decided.route.inspects_response() && parts.method != Method::HEAD;
    if verdict.decided.route.response_headers.is_some()
        && !verdict.enforcement.is_shadow()
        && (parts.method == Method::GET || parts.method == Method::HEAD)
    {
        // The client can only hold a filtered view, which the upstream
        // cannot validate; a 304 must not tell a cache to reuse another
        // caller's view. Writes keep their preconditions (lost updates).
        headers::strip_conditional(&mut parts.headers);
    }
    let resp = forward(proxy, parts, upstream_body, &path, inspect, ex).await?;
    filter(proxy, rt, verdict, resp, inspect, ex).await
}

/// The path as decided and forwarded: one canonical spelling. A request
/// that asks for another method than its request line (override headers,
/// `_method`) is refused on every route: the upstream could run that one.
fn canonical_path(parts: &Parts) -> Result<CanonicalPath, Stop> {
    let path = routing::normalize(parts.uri.path()).map_err(|_| Stop::from(Refusal::BadPath))?;
    ambiguity::method_override(&parts.headers, parts.uri.query())?;
    Ok(path)
}

/// Who is calling, and the protected route they called; `None`: forward
/// the request as it is (a passthrough route, unmatched requests passed
/// through, or shadow mode relaying what it cannot decide). Every request
/// but a passthrough one needs an identity, even before it is told there
/// is no route (anonymous callers learn nothing about the route table).
/// Identity headers are never forwarded.
fn identify<'rt>(
    rt: &'rt Runtime,
    parts: &mut Parts,
    routed: Routed<'rt>,
    ex: &mut Exchange,
) -> Result<Option<RouteMatch<'rt>>, Stop> {
    if let Routed::Passthrough = routed {
        ex.passthrough = true;
        strip_identity_headers(rt, parts);
        return Ok(None);
    }
    let identified = super::caller::identify(rt, parts, ex.peer.ip());
    strip_identity_headers(rt, parts);
    let route_shadow = matches!(&routed, Routed::Route(m) if m.route.shadow);
    match identified {
        Ok(p) => ex.principal = Some(p),
        Err(e) => {
            ex.identity_error = Some(e.reason());
            let stop = Stop {
                message: Some(e.client_message()),
                ..Stop::from(Refusal::Unauthenticated)
            };
            Enforcement::of(rt, route_shadow).refuse(ex, stop, Vec::new())?;
            // Shadow mode: relayed, and on a route decided as the
            // unidentified caller, so its record names the route and
            // resource (`audit subject` counts it) and its body is
            // observed (`/observed`).
            if matches!(routed, Routed::Route(_)) {
                ex.principal = Some(Principal::unidentified());
            }
        }
    }
    match routed {
        Routed::Route(m) => Ok(Some(m)),
        _ => match rt.decisions.unmatched {
            UnmatchedPolicy::Passthrough => {
                ex.passthrough = true;
                Ok(None)
            }
            UnmatchedPolicy::Deny => {
                Enforcement::of(rt, false).refuse(ex, Refusal::NoRoute, Vec::new())?;
                Ok(None)
            }
        },
    }
}

/// The request-level decision, and the observed set's beside it.
struct Verdict<'rt> {
    decided: Decided<'rt>,
    observed: Option<Decided<'rt>>,
    enforcement: Enforcement,
}

/// Cedar's request-level decision (default deny): refused unless allowed
/// or in shadow mode, where it is noted instead.
fn decide<'rt>(
    rt: &'rt Runtime,
    m: &RouteMatch<'_>,
    ex: &mut Exchange,
) -> Result<Verdict<'rt>, Stop> {
    ex.route = Some(m.route.template.clone());
    ex.action = Some(m.route.action.clone());
    // Named before deciding, so a denied request's record says what was asked for.
    let rule = &m.route.resource;
    ex.resource = Some((rule.type_name.to_string(), rule.resolve(&m.params).0));
    let principal = ex.principal.clone().ok_or(Refusal::Internal)?;
    let started = Instant::now();
    let evaluated = pipeline::evaluate(&rt.decisions.engine, m, &principal);
    ex.decision_latency = Some(started.elapsed());
    let decided = evaluated?;
    ex.resource = Some((decided.resource_type.clone(), decided.resource_id.clone()));
    ex.decision = Some(decided.decision.clone());
    let observed = shadow::observe_request(rt, m, &principal, &decided, ex)?;
    let enforcement = Enforcement::of(rt, m.route.shadow);
    if !decided.decision.allowed {
        let policies = decided.decision.policies.clone();
        enforcement.refuse(ex, Refusal::Forbidden, policies)?;
    }
    Ok(Verdict {
        decided,
        observed,
        enforcement,
    })
}

/// What goes upstream: an inspected write's body, buffered and checked
/// (every value catalogued, collected and writable; one media type, no
/// content coding), or any other body streamed as it arrives. A route
/// whose responses a bulk-read budget counts is refused here when the
/// budget is used up.
async fn check_body(
    proxy: &Proxy,
    rt: &Runtime,
    parts: &Parts,
    body: Incoming,
    verdict: &Verdict<'_>,
    ex: &mut Exchange,
) -> Result<ProxyBody, Stop> {
    let (decided, enforcement) = (&verdict.decided, verdict.enforcement);
    if decided.route.inspects_response() {
        budgeting::precheck(proxy, rt, ex, !enforcement.is_shadow()).await?;
    }
    if decided.route.request.is_none() {
        return Ok(streamed_request(rt, body));
    }
    if let Err(refusal) = ambiguity::checked_body(&parts.headers) {
        enforcement.refuse(ex, refusal, Vec::new())?;
    }
    let bytes = collect_request(rt, parts, body).await?;
    // A DELETE may carry no body; any other inspected write must.
    if !(bytes.is_empty() && parts.method == Method::DELETE) {
        let is_json = headers::is_json(&parts.headers);
        let enforced = pipeline::check_request_body(&rt.decisions, decided, is_json, &bytes);
        if let Some(o) = &verdict.observed {
            let seen = pipeline::check_request_body(&rt.decisions, o, is_json, &bytes);
            shadow::compare_writes(ex, &enforced, &seen);
        }
        match enforced {
            Ok(written) => ex.written = written,
            Err((denied, fields)) => {
                if enforcement.is_shadow() {
                    ex.shadow_report().would_refuse_fields =
                        fields.into_iter().map(|f| f.field).collect();
                } else {
                    ex.refused_fields = fields;
                }
                enforcement.refuse(ex, denied, Vec::new())?;
            }
        }
    }
    // The original bytes go upstream, unchanged.
    Ok(full(bytes))
}

/// Sends the request upstream (canonical path, forwarding headers; asking
/// for an uncompressed body when the response will be inspected).
async fn forward(
    proxy: &Proxy,
    parts: Parts,
    body: ProxyBody,
    path: &CanonicalPath,
    inspect: bool,
    ex: &mut Exchange,
) -> Result<Response<Incoming>, Stop> {
    let req = upstream_request(proxy, parts, body, path.as_str(), ex, inspect)?;
    send(proxy, req, ex).await
}

/// How an upstream answer goes back, chosen once per response.
enum ResponseMode {
    /// Not inspected (or without a body): relayed as it streams, headers
    /// allow-listed on an inspected route.
    Relay,
    /// Shadow mode: relayed whole, with what filtering would have done
    /// noted ([`shadow::shadow_filter`]).
    Shadow,
    /// A long list, filtered and sent record by record ([`streaming`]).
    Streamed,
    /// Read whole, filtered record by record and field by field.
    Whole,
}

impl ResponseMode {
    fn of(rt: &Runtime, verdict: &Verdict<'_>, inspect: bool, status: StatusCode) -> Self {
        if !inspect || !has_body(status) {
            ResponseMode::Relay
        } else if verdict.enforcement.is_shadow() {
            ResponseMode::Shadow
        } else if streaming::streams(rt, &verdict.decided, verdict.observed.is_some()) {
            ResponseMode::Streamed
        } else {
            ResponseMode::Whole
        }
    }
}

/// The upstream's answer as the caller may see it, by its
/// [`ResponseMode`].
async fn filter<'rt>(
    proxy: &Proxy,
    rt: &'rt Runtime,
    verdict: Verdict<'rt>,
    resp: Response<Incoming>,
    inspect: bool,
    ex: &mut Exchange,
) -> Result<Answer<'rt>, Stop> {
    match ResponseMode::of(rt, &verdict, inspect, resp.status()) {
        ResponseMode::Relay => relay_answer(rt, &verdict, resp, ex).map(Answer::from),
        ResponseMode::Shadow => shadow::shadow_filter(proxy, rt, &verdict.decided, resp, ex)
            .await
            .map(Answer::from),
        ResponseMode::Streamed => streamed_answer(proxy, rt, verdict, resp, ex).await,
        ResponseMode::Whole => {
            let read = read_inspected(proxy, rt, resp)
                .await
                .map_err(|stop| upstream_failure(&verdict.decided.route, stop))?;
            whole_answer(proxy, rt, &verdict, read, ex)
                .await
                .map(Answer::from)
        }
    }
}

/// [`ResponseMode::Relay`].
fn relay_answer(
    rt: &Runtime,
    verdict: &Verdict<'_>,
    resp: Response<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let allowed_headers = verdict.decided.route.response_headers.as_ref();
    let shadow = verdict.enforcement.is_shadow();
    if allowed_headers.is_some() && !shadow && resp.status() == StatusCode::NOT_MODIFIED {
        // Conditional headers were not forwarded ([`forward`]): a 304
        // here validates something the client never got from the
        // proxy, perhaps another caller's view in a shared cache.
        return Err(Refusal::UpstreamError.into());
    }
    let mut resp = relay(resp);
    if let Some(allowed) = allowed_headers {
        limit_headers(rt, allowed, shadow, resp.headers_mut(), ex);
    }
    Ok(resp)
}

/// [`ResponseMode::Streamed`]: the head, with the list's redactor to feed
/// its body; a body that turns out short enough is filtered whole.
async fn streamed_answer<'rt>(
    proxy: &Proxy,
    rt: &'rt Runtime,
    verdict: Verdict<'rt>,
    resp: Response<Incoming>,
    ex: &mut Exchange,
) -> Result<Answer<'rt>, Stop> {
    let started = streaming::start(proxy, rt, &verdict.decided, resp)
        .await
        .map_err(|stop| upstream_failure(&verdict.decided.route, stop))?;
    match started {
        Start::Whole(parts, raw, decoded) => {
            let read = (parts, raw, decoded);
            whole_answer(proxy, rt, &verdict, read, ex)
                .await
                .map(Answer::from)
        }
        Start::Stream(mut parts, pending) => {
            if let Some(allowed) = &verdict.decided.route.response_headers {
                limit_headers(rt, allowed, false, &mut parts.headers, ex);
            }
            let (resp, streamed) = streaming::respond(parts, verdict.decided, pending);
            Ok(Answer::Streamed(resp, Box::new(streamed)))
        }
    }
}

/// [`ResponseMode::Whole`] (and a short streamed one): the body filtered,
/// beside the observed set's filtering when there is one, charged to
/// budgets, its headers allow-listed.
async fn whole_answer(
    proxy: &Proxy,
    rt: &Runtime,
    verdict: &Verdict<'_>,
    (mut parts, raw, decoded): (http::response::Parts, Bytes, Option<Vec<u8>>),
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let decided = &verdict.decided;
    if let Some(allowed) = &decided.route.response_headers {
        limit_headers(rt, allowed, false, &mut parts.headers, ex);
    }
    let json = decoded.as_deref().unwrap_or(&raw);
    let mut report = FilterReport::default();
    let filtered = pipeline::filter_response_body(&rt.decisions, decided, json, &mut report);
    if let Some(o) = &verdict.observed {
        let mut seen = FilterReport::default();
        let observed_result = pipeline::filter_response_body(&rt.decisions, o, json, &mut seen);
        shadow::compare_filters(ex, rt, &filtered, &report, &observed_result, &seen);
    }
    if filtered.is_ok() {
        // Refused by a budget: nothing was disclosed, so no body report.
        budgeting::charge(proxy, rt, ex, &report, true).await?;
    }
    ex.filter = Some(report);
    Ok(filtered_response(parts, filtered?))
}

/// A request forwarded as it is, its answer streamed back.
async fn relay_request(
    proxy: &Proxy,
    rt: &Runtime,
    parts: Parts,
    body: Incoming,
    path: &CanonicalPath,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let req = upstream_request(
        proxy,
        parts,
        streamed_request(rt, body),
        path.as_str(),
        ex,
        false,
    )?;
    Ok(relay(send(proxy, req, ex).await?))
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
    let proto = super::caller::scheme(&parts);
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
