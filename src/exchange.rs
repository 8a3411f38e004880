//! What happened to one request, gathered along its path: the raw material
//! of audit records and metrics. It holds names, ids and counts, never field
//! values, tokens or query strings.

use crate::identity::Principal;
use fieldguard_core::policy::RequestDecision;
use fieldguard_core::redact::Refusal as FieldRefusal;
use fieldguard_core::redact::report::FilterReport;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
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
    /// What shadow mode or an observed policy set would have done.
    pub shadow: Option<ShadowReport>,
    /// The proxy's own refusal code, when it answered itself.
    pub refusal: Option<&'static str>,
    pub refused_fields: Vec<FieldRefusal>,
    /// Catalogue indexes of the fields an allowed write forwarded upstream.
    pub written: Vec<u32>,
    /// What response filtering did.
    pub filter: Option<FilterReport>,
    /// What the bulk-read budgets counted and flagged.
    pub budget: Option<crate::budget::BudgetReport>,
    pub upstream_status: Option<u16>,
    /// The response body was redacted and sent record by record.
    pub response_streamed: bool,
    /// Why a streamed response was cut off after its head was sent.
    pub response_aborted: Option<&'static str>,
    pub upstream_latency: Option<Duration>,
    /// Upstream response headers the route's allow-list dropped (names).
    pub dropped_headers: Vec<http::HeaderName>,
    /// How far the exchange got, and whether the client left before its
    /// answer: shared with the task that watches the client.
    pub progress: Arc<Progress>,
    /// Status of the proxy's answer (sent to the client unless
    /// `progress` says the client had left).
    pub status: u16,
}

impl Exchange {
    /// The report of what was computed but not enforced, made on first
    /// use (kind `shadow` unless an observed set named it).
    pub fn shadow_report(&mut self) -> &mut ShadowReport {
        let report = self.shadow.get_or_insert_with(Default::default);
        if report.kind.is_empty() {
            report.kind = "shadow";
        }
        report
    }

    /// Shadow mode: notes the refusal that enforcement would have made:
    /// the first one (enforcement stops there), so an unidentified
    /// caller's request stays `unauthenticated` though it is then decided
    /// (and denied) as an unidentified principal.
    pub fn would_deny(
        &mut self,
        refusal: fieldguard_core::outcome::Refusal,
        policies: Vec<String>,
    ) {
        let report = self.shadow_report();
        report.kind = "shadow";
        if report.would_deny.is_some() {
            return;
        }
        report.would_deny = Some(WouldDeny {
            reason: refusal.code(),
            policies,
        });
    }

    /// Notes the response headers an inspected route's allow-list dropped
    /// (or, in shadow mode, would have dropped).
    pub fn note_dropped_headers(&mut self, dropped: Vec<http::HeaderName>, shadow: bool) {
        if dropped.is_empty() {
            return;
        }
        if shadow {
            self.shadow_report().would_drop_headers = dropped;
        } else {
            self.dropped_headers = dropped;
        }
    }

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
            shadow: None,
            refusal: None,
            refused_fields: Vec::new(),
            written: Vec::new(),
            filter: None,
            budget: None,
            upstream_status: None,
            response_streamed: false,
            response_aborted: None,
            upstream_latency: None,
            dropped_headers: Vec::new(),
            progress: Arc::default(),
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

/// Decisions computed but not enforced: shadow mode (`shadow`), shadow
/// policy files (`shadow_policies`) or a candidate policy set (`candidate`).
#[derive(Debug, Default)]
pub struct ShadowReport {
    pub kind: &'static str,
    /// Version of the observed policy set (shadow files or candidate).
    pub observed_version: Option<String>,
    /// The request would have been refused: why, and by which policies.
    pub would_deny: Option<WouldDeny>,
    /// Write fields that would have been refused.
    pub would_refuse_fields: Vec<String>,
    /// What filtering would have done to the response body.
    pub would_redact: Option<FilterReport>,
    /// Upstream response headers the allow-list would have dropped.
    pub would_drop_headers: Vec<http::HeaderName>,
    /// Where the observed set decides differently from the enforced one.
    pub disagreements: Vec<Disagreement>,
}

#[derive(Debug, Clone)]
pub struct WouldDeny {
    pub reason: &'static str,
    pub policies: Vec<String>,
}

/// One difference between the enforced and the observed decision:
/// `subject` is `request`, `write:<field>` or `field:<Entity>.<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    pub subject: String,
    pub enforced: String,
    pub observed: String,
}

/// How far an exchange got: the stages an aborted client's record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Nothing sent upstream yet (and, once the client is gone, nothing
    /// will be).
    BeforeUpstream,
    /// The request is on its way to, or being worked on by, the upstream.
    DuringUpstream,
    /// The upstream's response head arrived.
    AfterUpstream,
}

impl Stage {
    /// The audit record's `client_aborted` value and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::BeforeUpstream => "before_upstream",
            Stage::DuringUpstream => "during_upstream",
            Stage::AfterUpstream => "after_upstream",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Stage::BeforeUpstream,
            1 => Stage::DuringUpstream,
            _ => Stage::AfterUpstream,
        }
    }
}

/// The exchange's stage and, once the client is seen gone, the stage it
/// was at then. Written by the request's work and by the task watching
/// its client (the same task: atomics only because both hold a reference).
#[derive(Debug, Default)]
pub struct Progress {
    stage: AtomicU8,
    /// 0 while the client is there; else 1 + the stage at which it left.
    left_at: AtomicU8,
}

impl Progress {
    pub fn reached(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Relaxed))
    }

    /// Notes that the client is gone (the first time only).
    pub fn client_left(&self) {
        let at = self.stage.load(Ordering::Relaxed) + 1;
        let _ = self
            .left_at
            .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn client_gone(&self) -> bool {
        self.left_at.load(Ordering::Relaxed) != 0
    }

    /// The stage at which the client was found gone, if it was.
    pub fn aborted_at(&self) -> Option<Stage> {
        match self.left_at.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Stage::from_u8(n - 1)),
        }
    }
}
