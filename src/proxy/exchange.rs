//! What happened to one request, gathered along its path: the raw material
//! of audit records and metrics. It holds names, ids and counts, never field
//! values, tokens or query strings.

use crate::identity::Principal;
use crate::policy::RequestDecision;
use crate::redact::request::Refusal as FieldRefusal;
use crate::redact::response::FilterReport;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug)]
pub struct Exchange {
    pub request_id: String,
    pub time: SystemTime,
    pub started: Instant,
    pub peer: SocketAddr,
    pub method: http::Method,
    /// Route template, when a route matched.
    pub route: Option<String>,
    pub passthrough: bool,
    pub action: Option<String>,
    /// Request-level resource (type, id).
    pub resource: Option<(String, String)>,
    pub principal: Option<Principal>,
    /// Why identification failed (`IdentityError::reason`).
    pub identity_error: Option<&'static str>,
    pub decision: Option<RequestDecision>,
    /// Time the request-level decision took.
    pub decision_latency: Option<Duration>,
    /// The proxy's own refusal code, when it answered itself.
    pub refusal: Option<&'static str>,
    pub refused_fields: Vec<FieldRefusal>,
    /// What response filtering did.
    pub filter: Option<FilterReport>,
    pub upstream_status: Option<u16>,
    pub upstream_latency: Option<Duration>,
    /// Status sent to the client.
    pub status: u16,
}

impl Exchange {
    pub fn new(request_id: String, peer: SocketAddr, method: http::Method) -> Self {
        Self {
            request_id,
            time: SystemTime::now(),
            started: Instant::now(),
            peer,
            method,
            route: None,
            passthrough: false,
            action: None,
            resource: None,
            principal: None,
            identity_error: None,
            decision: None,
            decision_latency: None,
            refusal: None,
            refused_fields: Vec::new(),
            filter: None,
            upstream_status: None,
            upstream_latency: None,
            status: 0,
        }
    }

    /// "allow" when the request reached the upstream under a decision,
    /// "deny" when refused, "passthrough" for unprotected routes.
    pub fn decision_label(&self) -> &'static str {
        if self.refusal.is_some() {
            "deny"
        } else if self.passthrough {
            "passthrough"
        } else {
            "allow"
        }
    }
}
