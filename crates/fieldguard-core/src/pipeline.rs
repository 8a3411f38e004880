//! The decisions of one request, free of I/O: route, request-level Cedar
//! decision, request-body check, response-body filter. The HTTP handler
//! calls these around its network steps; offline tools (benchmarks, policy
//! tests, explanations) call them directly, so both run the same code.

use crate::catalogue::AttrValue;
use crate::decisions::Decisions;
use crate::outcome::{Denied, Refusal};
use crate::policy::{Engine, RequestDecision, RequestPrincipal};
use crate::principal::Principal;
use crate::redact::bytes::{self, StreamError};
use crate::redact::report::{FilterError, FilterReport};
use crate::redact::request::{Refusal as FieldRefusal, check_write};
use crate::redact::tree::filter_response;
use crate::redact::{BodyError, BodyRules, parse_json, parse_json_unique};
use crate::route::{Route, RouteEntry};
use crate::routing::{CanonicalPath, Match, Params};
use std::sync::Arc;

/// What the route table says about a request.
pub enum Routed<'rt> {
    /// Forward without identity or decision.
    Passthrough,
    /// No route: denied unless the config passes unmatched requests through.
    Unmatched,
    Route(RouteMatch<'rt>),
}

/// A protected route matched, with the path's parameters.
pub struct RouteMatch<'rt> {
    pub route: &'rt Arc<Route>,
    pub params: Params<'rt>,
}

pub fn route<'rt>(rt: &'rt Decisions, method: &str, path: &'rt CanonicalPath) -> Routed<'rt> {
    match rt.router.at(method, path) {
        Some(Match {
            value: RouteEntry::Protected(route),
            params,
            ..
        }) => Routed::Route(RouteMatch { route, params }),
        Some(_) => Routed::Passthrough,
        None => Routed::Unmatched,
    }
}

/// A request that passed the request-level decision, with what its body
/// checks need. It owns its route (one reference count), so it lives as
/// long as the policy set that decided it, not as long as the request
/// path its route was matched on: a streamed body outlives that path.
pub struct Decided<'rt> {
    pub route: Arc<Route>,
    pub who: RequestPrincipal,
    pub resource_type: String,
    pub resource_id: String,
    resource_values: Vec<AttrValue>,
    pub decision: RequestDecision,
    /// The policy set that decided, and decides this request's bodies.
    pub engine: &'rt Engine,
}

impl Decided<'_> {
    /// The request's resource, as a write's fields are decided on
    /// (`field:write`): for tools that ask without a body.
    pub fn target(&self) -> crate::policy::ResourceRef<'_> {
        self.route
            .resource
            .resource_ref(&self.resource_id, &self.resource_values)
    }
}

/// The request-level decision. `Err` carries the refusal and, when Cedar
/// decided, its decision (for audit).
pub fn decide<'rt>(
    rt: &'rt Decisions,
    m: &RouteMatch<'rt>,
    principal: &Principal,
) -> Result<Decided<'rt>, Denied> {
    let decided = evaluate(&rt.engine, m, principal)?;
    if !decided.decision.allowed {
        return Err(Denied {
            decision: Some(Box::new(decided.decision)),
            ..Denied::from(Refusal::Forbidden)
        });
    }
    Ok(decided)
}

/// The request-level decision of `engine`, allowed or not (shadow mode and
/// observed policy sets need the denied ones too). `Err` only when no
/// decision could be made.
pub fn evaluate<'e>(
    engine: &'e Engine,
    m: &RouteMatch<'_>,
    principal: &Principal,
) -> Result<Decided<'e>, Denied> {
    let route: &Route = m.route;
    let internal = || Denied::from(Refusal::Internal);
    let who = RequestPrincipal::new(principal, &route.action).map_err(|e| {
        crate::repeated_warn!(
            crate::repeated::Kind::DecisionFailed,
            "principal entity failed: {e}"
        );
        internal()
    })?;
    let rule = &route.resource;
    let (resource_id, resource_values) = rule.resolve(&m.params);
    let decision = engine.decide_route(
        &who,
        &route.action,
        &rule.resource_ref(&resource_id, &resource_values),
    );
    Ok(Decided {
        route: m.route.clone(),
        who,
        resource_type: rule.type_name.to_string(),
        resource_id,
        resource_values,
        decision,
        engine,
    })
}

/// Checks a write's body (minimal collection and `field:write`). `is_json`:
/// whether the request declared a JSON media type. `Ok` holds the
/// catalogue indexes of the fields an allowed write carries.
pub fn check_request_body(
    rt: &Decisions,
    d: &Decided<'_>,
    is_json: bool,
    bytes: &[u8],
) -> Result<Vec<u32>, (Denied, Vec<FieldRefusal>)> {
    let Some(rules) = &d.route.request else {
        return Ok(Vec::new());
    };
    let plain = |r: Refusal| (Denied::from(r), Vec::new());
    if !is_json {
        return Err(plain(Refusal::UnsupportedMediaType));
    }
    // Duplicate keys are refused: the upstream might read the other copy.
    let doc = parse_json_unique(bytes, rt.limits.max_json_depth).map_err(|e| {
        let message = match e {
            BodyError::Malformed => None,
            BodyError::TooDeep(_) => Some("the request body nests too deeply"),
            BodyError::DuplicateKey => Some("the request body repeats a key in an object"),
        };
        (
            Denied {
                message,
                ..Denied::from(Refusal::MalformedRequestBody)
            },
            Vec::new(),
        )
    })?;
    let rule = &d.route.resource;
    let target = rule.resource_ref(&d.resource_id, &d.resource_values);
    let mut decider = d.engine.decider(&d.who);
    let check = check_write(&doc, rules, &mut decider, &rt.catalogue, &target);
    let refused = check.refused;
    if refused.is_empty() {
        return Ok(check.written);
    }
    let stop = Denied {
        fields: refused.iter().map(|r| r.field.clone()).collect(),
        ..Denied::from(Refusal::ForbiddenFields)
    };
    Err((stop, refused))
}

/// Filters an (uncompressed) JSON response body for the caller.
///
/// The proxy redacts from bytes to bytes ([`bytes::redact`]); a report
/// that asks for a trace (explanations, policy tests) goes through the tree
/// walk, which explains every decision in catalogue order. Both decide
/// alike (a property test holds them to it).
pub fn filter_response_body(
    rt: &Decisions,
    d: &Decided<'_>,
    bytes: &[u8],
    report: &mut FilterReport,
) -> Result<Vec<u8>, Denied> {
    let unreadable = || Denied::from(Refusal::UnreadableResponse);
    let refused = |e: FilterError| match e {
        FilterError::Forbidden => Denied::from(Refusal::Forbidden),
        FilterError::Shape(m) => {
            crate::repeated_warn!(
                crate::repeated::Kind::ResponseShape,
                "unexpected response shape on route {}: {m}",
                d.route.template
            );
            unreadable()
        }
    };
    let Some(plan) = &d.route.response else {
        return Err(Denied::from(Refusal::Internal));
    };
    let rule = &d.route.resource;
    let rules = BodyRules {
        plan,
        resource: rule.resource_ref(&d.resource_id, &d.resource_values),
    };
    let mut decider = d.engine.decider(&d.who);
    if report.trace.is_none() {
        return bytes::redact(
            bytes,
            &rules,
            &mut decider,
            &rt.catalogue,
            report,
            rt.limits.max_json_depth,
        )
        .map_err(|e| match e {
            StreamError::Unreadable => unreadable(),
            StreamError::Filter(f) => refused(f),
        });
    }
    let mut doc = parse_json(bytes, rt.limits.max_json_depth).map_err(|_| unreadable())?;
    filter_response(&mut doc, &rules, &mut decider, &rt.catalogue, report).map_err(refused)?;
    serde_json::to_vec(&doc).map_err(|_| unreadable())
}

/// A streamed list response's redactor for the caller ([`ListStream`]),
/// when the route's bodies stream (see its module docs).
pub fn stream_response_body<'a>(
    rt: &'a Decisions,
    d: &'a Decided<'_>,
) -> Option<crate::redact::list_stream::ListStream<'a, 'a>> {
    use crate::redact::list_stream::{ListStream, StreamLimits};
    let plan = d.route.response.as_deref()?;
    let place = plan.stream.as_ref()?;
    let rules = BodyRules {
        plan,
        resource: d
            .route
            .resource
            .resource_ref(&d.resource_id, &d.resource_values),
    };
    let limits = StreamLimits {
        max_depth: rt.limits.max_json_depth,
        max_record_bytes: rt.limits.max_record_bytes,
        max_body_bytes: rt.limits.max_streamed_response_bytes,
    };
    ListStream::new(
        rules,
        d.engine.decider(&d.who),
        &rt.catalogue,
        place,
        limits,
    )
}
