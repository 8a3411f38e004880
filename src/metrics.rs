//! Prometheus metrics: one [`prometheus::Registry`] per proxy (no global
//! state, so tests and several proxies in one process stay apart).
//!
//! Label values are bounded by configuration: route templates, action ids,
//! catalogue entities and fields, refusal codes and identity-failure reasons.
//! User ids, resource ids and raw paths are never labels. The one label an
//! upstream chooses, the name of a dropped response header, is bounded here
//! ([`HeaderLabels`]).

use crate::exchange::{Exchange, Stage};
use crate::identity::CacheStats;
use fieldguard_core::redact::Outcome;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::SystemTime;

mod known_series;

/// What the metrics read of a loaded runtime: its decisions (routes,
/// catalogue, policy set), budgets and identity (token cache), and its
/// generation (metric handles cached by field index are dropped when it
/// changes, since a reload renumbers fields). A view rather than the
/// runtime itself, so metrics depend on the parts, not on the whole that
/// composes them.
#[derive(Clone, Copy)]
pub struct RuntimeView<'a> {
    pub decisions: &'a fieldguard_core::decisions::Decisions,
    pub budgets: &'a crate::budget::Budgets,
    pub identifier: &'a crate::identity::Identifier,
    pub generation: u64,
}

/// Latency buckets (seconds): 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Cedar evaluation buckets (seconds): 5 µs to 50 ms.
const DECISION_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
];

/// Label of requests no route matched (or matched a passthrough route).
pub const NO_ROUTE: &str = "none";

/// The `header` label of a dropped response header that is not
/// token-shaped, too long, or new after [`MAX_HEADER_SERIES`].
pub const OTHER_HEADER: &str = "_other";
/// Longest header name used as a label value.
const MAX_HEADER_LABEL: usize = 64;
/// Distinct `(route, header)` series of
/// `fieldguard_response_headers_dropped_total` before new names share
/// [`OTHER_HEADER`]: the upstream chooses header names, and each new one
/// would otherwise be a new series for as long as the process lives.
pub const MAX_HEADER_SERIES: usize = 256;

/// `fieldguard_streamed_responses_total{outcome}` values: `complete` and
/// every reason a streamed response is cut off.
const STREAM_OUTCOMES: [&str; 10] = [
    "complete",
    "unreadable_response",
    "record_too_large",
    "response_too_large",
    "upstream_timeout",
    "upstream_failed",
    "budget_exceeded",
    "budget_store_unavailable",
    "client_stalled",
    "client_gone",
];

pub struct Metrics {
    pub registry: Registry,
    /// Every metric family registered (a scrape omits labelled families
    /// that have no samples yet).
    families: Vec<String>,
    exchange: ExchangeMetrics,
    redaction: RedactionMetrics,
    failures: FailureMetrics,
    policy: PolicyMetrics,
    token_cache: TokenCacheMetrics,
    budgets: BudgetMetrics,
    pub audit: AuditMetrics,
    pub budget_store: BudgetStoreMetrics,
}

/// Every request: counts, latencies and request-level decisions (and what
/// shadow mode would have done).
struct ExchangeMetrics {
    shadow_events: IntCounterVec,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    decisions: IntCounterVec,
    decision_duration: HistogramVec,
    policy_errors: IntCounterVec,
}

/// What redaction did to bodies, field by field.
struct RedactionMetrics {
    field_outcomes: IntCounterVec,
    /// `field_outcomes` series resolved by field index for the runtime of
    /// that generation, so counting a body's fields does not hash four
    /// label strings per field.
    field_handles: Mutex<FieldHandles>,
    records_hidden: IntCounterVec,
    uncatalogued: IntCounterVec,
    misshapen: IntCounterVec,
    backstop: IntCounterVec,
    /// Label sets of `uncatalogued` and `misshapen` in use: member names
    /// come from upstream bodies, so their number is capped.
    member_labels: Mutex<BoundedLabels>,
    refused_write_fields: IntCounterVec,
}

/// Requests refused, failed or cut short.
struct FailureMetrics {
    identity_failures: IntCounterVec,
    body_rejections: IntCounterVec,
    upstream_errors: IntCounterVec,
    refusals: IntCounterVec,
    http_refusals: IntCounterVec,
    client_aborts: IntCounterVec,
    streamed_responses: IntCounterVec,
    headers_dropped: IntCounterVec,
    header_labels: Mutex<HeaderLabels>,
}

/// The loaded policy set and its loads.
struct PolicyMetrics {
    policy_info: IntGaugeVec,
    policy_loads: IntCounterVec,
    policy_signature_refusals: IntCounterVec,
    policy_last_success: Gauge,
    policies_loaded: IntGauge,
}

/// The verified-token cache.
struct TokenCacheMetrics {
    jwt_cache_lookups: IntCounterVec,
    jwt_cache_entries: IntGauge,
    /// The verified-token cache counters last added to `jwt_cache_lookups`,
    /// and the runtime they came from: each runtime has its own cache.
    jwt_cache_seen: Mutex<(u64, CacheStats)>,
}

/// Bulk-read budgets.
struct BudgetMetrics {
    budget_exceeded: IntCounterVec,
    budget_disclosed: IntCounterVec,
    budget_counters: IntGauge,
    budget_overflow: IntCounter,
}

pub use crate::budget::store_metrics::{BUDGET_STORE_ERROR_REASONS, BudgetStoreMetrics};

/// The audit trail's metrics, shared with its writer task.
#[derive(Clone)]
pub struct AuditMetrics {
    pub queue_depth: IntGauge,
    pub queue_capacity: IntGauge,
    pub records_written: IntCounter,
    pub definitions_written: IntCounter,
    pub write_failures: IntCounter,
    pub refused_requests: IntCounterVec,
    pub records_lost: IntCounter,
    pub sink_up: IntGauge,
    pub last_write: Gauge,
    pub files_deleted: IntCounter,
    pub retention_remaining_bytes: IntGauge,
    pub retention_capacity_bytes: IntGauge,
    /// The audit chain this process writes (value 1), by id.
    pub chain_info: IntGaugeVec,
}

/// A registry that remembers what was registered.
struct Reg {
    registry: Registry,
    names: std::cell::RefCell<Vec<String>>,
}

impl Reg {
    fn add(&self, name: &str, c: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(c)?;
        self.names.borrow_mut().push(name.to_string());
        Ok(())
    }
}

fn counter(r: &Reg, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.add(name, Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    r: &Reg,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    r.add(name, Box::new(h.clone()))?;
    Ok(h)
}

fn int_gauge(r: &Reg, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.add(name, Box::new(g.clone()))?;
    Ok(g)
}

fn gauge(r: &Reg, name: &str, help: &str) -> prometheus::Result<Gauge> {
    let g = Gauge::new(name, help)?;
    r.add(name, Box::new(g.clone()))?;
    Ok(g)
}

fn int_counter(r: &Reg, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.add(name, Box::new(c.clone()))?;
    Ok(c)
}

/// Registers the shared budget store's metrics.
fn budget_store_metrics(r: &Reg) -> prometheus::Result<BudgetStoreMetrics> {
    {
        let up = int_gauge(
            r,
            "fieldguard_budget_store_up",
            "1 while the bulk-read budget store answers (always 1 for the memory store), 0 while budgets follow on_store_error.",
        )?;
        up.set(1);
        let errors = counter(
            r,
            "fieldguard_budget_store_errors_total",
            "Calls to the shared budget store that failed, by reason (timeout, connection, refused: authentication or a read-only replica, script).",
            &["reason"],
        )?;
        for reason in BUDGET_STORE_ERROR_REASONS {
            errors.with_label_values(&[reason]);
        }
        let duration = histogram(
            r,
            "fieldguard_budget_store_duration_seconds",
            "Round trip of a shared budget store call that answered (a precheck or a charge).",
            &[],
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            ],
        )?
        .with_label_values::<&str>(&[]);
        Ok(BudgetStoreMetrics {
            up,
            errors,
            duration,
        })
    }
}

impl AuditMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        let audit = Self {
            queue_depth: int_gauge(
                r,
                "fieldguard_audit_queue_depth",
                "Audit queue slots taken: records waiting to be written plus requests in flight.",
            )?,
            queue_capacity: int_gauge(
                r,
                "fieldguard_audit_queue_capacity",
                "Audit queue size (audit.queue_capacity).",
            )?,
            records_written: int_counter(
                r,
                "fieldguard_audit_records_written_total",
                "Audit records (requests and events) written to every configured sink.",
            )?,
            definitions_written: int_counter(
                r,
                "fieldguard_audit_definitions_written_total",
                "Audit definition records written: what records of one kind share, written once per file (and again when the writer's bounded memory of them forgot one).",
            )?,
            write_failures: int_counter(
                r,
                "fieldguard_audit_write_failures_total",
                "Failed attempts to write or fsync audit records (each is retried).",
            )?,
            refused_requests: counter(
                r,
                "fieldguard_audit_refused_requests_total",
                "Requests refused with 503 because the audit trail could not take their record.",
                &["reason"],
            )?,
            records_lost: int_counter(
                r,
                "fieldguard_audit_records_lost_total",
                "Records of refused requests that found no room in the audit queue.",
            )?,
            sink_up: int_gauge(
                r,
                "fieldguard_audit_sink_up",
                "1 while the audit sink accepts writes, 0 while it fails (requests are refused).",
            )?,
            last_write: gauge(
                r,
                "fieldguard_audit_last_write_timestamp_seconds",
                "Unix time of the last successful audit write.",
            )?,
            files_deleted: int_counter(
                r,
                "fieldguard_audit_files_deleted_total",
                "Audit files deleted by retention (audit.retention: when_full: delete_oldest, or max_age_hours). Any increase is evidence leaving the node.",
            )?,
            retention_remaining_bytes: int_gauge(
                r,
                "fieldguard_audit_retention_remaining_bytes",
                "Bytes the audit file retention can still take before it is full (then requests are refused, or the oldest file deleted).",
            )?,
            retention_capacity_bytes: int_gauge(
                r,
                "fieldguard_audit_retention_capacity_bytes",
                "Bytes the audit files may hold in all (audit.retention.max_total_bytes); 0 without a file sink.",
            )?,
            chain_info: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "fieldguard_audit_chain_info",
                        "The audit chain this process writes (value 1): its id, as `audit verify` reports it.",
                    ),
                    &["chain"],
                )?;
                r.add("fieldguard_audit_chain_info", Box::new(g.clone()))?;
                g
            },
        };
        for reason in ["sink_failed", "queue_full", "closed"] {
            audit.refused_requests.with_label_values(&[reason]);
        }
        Ok(audit)
    }
}

impl ExchangeMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        Ok(Self {
            shadow_events: counter(
                r,
                "fieldguard_shadow_events_total",
                "Decisions computed but not enforced: would_deny, would_redact and would_refuse (shadow mode), and disagreements of an observed policy set (shadow policy files, candidate set).",
                &["route", "action", "kind", "event"],
            )?,
            requests: counter(
                r,
                "fieldguard_requests_total",
                "Requests by route template, action, decision and status class.",
                &["route", "action", "decision", "status_class"],
            )?,
            request_duration: histogram(
                r,
                "fieldguard_request_duration_seconds",
                "Time from a request's arrival to its response head, including the upstream.",
                &["route", "action"],
                LATENCY_BUCKETS,
            )?,
            upstream_duration: histogram(
                r,
                "fieldguard_upstream_duration_seconds",
                "Upstream round trip (to the response head).",
                &["route", "action"],
                LATENCY_BUCKETS,
            )?,
            decisions: counter(
                r,
                "fieldguard_policy_decisions_total",
                "Request-level Cedar decisions by action.",
                &["action", "decision"],
            )?,
            decision_duration: histogram(
                r,
                "fieldguard_policy_evaluation_duration_seconds",
                "Time to reach a request-level decision.",
                &["action"],
                DECISION_BUCKETS,
            )?,
            policy_errors: counter(
                r,
                "fieldguard_policy_evaluation_errors_total",
                "Policies that failed to evaluate in a request-level decision (they count as not applying).",
                &["action"],
            )?,
        })
    }
}

impl RedactionMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        Ok(Self {
            field_outcomes: counter(
                r,
                "fieldguard_field_outcomes_total",
                "Catalogued response fields by outcome (full, masked, removed).",
                &["entity", "category", "field", "outcome"],
            )?,
            field_handles: Mutex::new(FieldHandles::default()),
            records_hidden: counter(
                r,
                "fieldguard_records_hidden_total",
                "Response records hidden whole (record:read denied).",
                &["route"],
            )?,
            uncatalogued: counter(
                r,
                "fieldguard_uncatalogued_fields_total",
                "Response members the configuration does not name (removed, or passed on a route with unknown_fields: pass), by route, entity ((wrapper) for the body around the records) and member path; paths beyond the label cap count as _other.",
                &["route", "entity", "field"],
            )?,
            misshapen: counter(
                r,
                "fieldguard_misshapen_values_total",
                "Catalogued containers (and declared wrapper objects or arrays) whose value had another shape, removed, by route, entity and path.",
                &["route", "entity", "field"],
            )?,
            backstop: counter(
                r,
                "fieldguard_backstop_matches_total",
                "Values masked by a route's backstop (detector matches in passed uncatalogued members and free_text fields), by route and detector.",
                &["route", "detector"],
            )?,
            member_labels: Mutex::new(BoundedLabels::default()),
            refused_write_fields: counter(
                r,
                "fieldguard_refused_write_fields_total",
                "Request-body fields refused (not catalogued, wrong shape, not collectable, or not writable by the caller).",
                &["route", "reason"],
            )?,
        })
    }
}

impl FailureMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        let m = Self {
            identity_failures: counter(
                r,
                "fieldguard_identity_failures_total",
                "Requests refused with 401, by reason.",
                &["reason"],
            )?,
            body_rejections: counter(
                r,
                "fieldguard_body_rejections_total",
                "Bodies refused because they were too large or could not be read or parsed.",
                &["direction", "reason"],
            )?,
            upstream_errors: counter(
                r,
                "fieldguard_upstream_errors_total",
                "Upstream failures: unreachable, timed out, or an error status on an inspected route.",
                &["route", "kind"],
            )?,
            refusals: counter(
                r,
                "fieldguard_refusals_total",
                "Requests the proxy answered itself, by refusal code.",
                &["code"],
            )?,
            http_refusals: counter(
                r,
                "fieldguard_http_refusals_total",
                "Requests hyper's HTTP layer refused before the proxy's handler saw them (it answered 400/431 itself, or a request head did not arrive in time), by reason.",
                &["reason"],
            )?,
            client_aborts: counter(
                r,
                "fieldguard_client_aborts_total",
                "Requests whose client left before getting the answer, by how far the exchange had got (the work still finished and was audited).",
                &["stage"],
            )?,
            streamed_responses: counter(
                r,
                "fieldguard_streamed_responses_total",
                "Long list responses redacted and sent record by record, by outcome: `complete`, or why the response was cut off after its head was sent (the client got an incomplete body).",
                &["outcome"],
            )?,
            headers_dropped: counter(
                r,
                "fieldguard_response_headers_dropped_total",
                "Upstream response headers dropped by an inspected route's allow-list (not allowed, or a value outside the header's grammar), by route and header name (bounded: see docs).",
                &["route", "header"],
            )?,
            header_labels: Mutex::new(HeaderLabels::default()),
        };
        for reason in HTTP_REFUSAL_REASONS {
            m.http_refusals.with_label_values(&[reason]);
        }
        for stage in [
            Stage::BeforeUpstream,
            Stage::DuringUpstream,
            Stage::AfterUpstream,
        ] {
            m.client_aborts.with_label_values(&[stage.as_str()]);
        }
        for outcome in STREAM_OUTCOMES {
            m.streamed_responses.with_label_values(&[outcome]);
        }
        Ok(m)
    }
}

impl PolicyMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        let m = Self {
            policy_info: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "fieldguard_policy_set_info",
                        "The loaded policy set (value 1): version and schema hashes.",
                    ),
                    &["version", "schema_hash"],
                )?;
                r.add("fieldguard_policy_set_info", Box::new(g.clone()))?;
                g
            },
            policy_loads: counter(
                r,
                "fieldguard_policy_loads_total",
                "Policy-set loads by result.",
                &["result"],
            )?,
            policy_signature_refusals: counter(
                r,
                "fieldguard_policy_signature_refusals_total",
                "Policy sets refused because their signature does not hold under policies.verify_keys (the last good set keeps serving), by reason.",
                &["reason"],
            )?,
            policy_last_success: gauge(
                r,
                "fieldguard_policy_last_load_success_timestamp_seconds",
                "Unix time of the last successful policy-set load.",
            )?,
            policies_loaded: int_gauge(
                r,
                "fieldguard_policies_loaded",
                "Policies in the loaded policy set.",
            )?,
        };
        for result in ["success", "failure"] {
            m.policy_loads.with_label_values(&[result]);
        }
        for reason in crate::policy_set::Reason::ALL {
            m.policy_signature_refusals
                .with_label_values(&[reason.as_str()]);
        }
        Ok(m)
    }
}

impl TokenCacheMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        Ok(Self {
            jwt_cache_lookups: counter(
                r,
                "fieldguard_jwt_cache_lookups_total",
                "Bearer tokens looked up in the verified-token cache, by result (hit: not verified again).",
                &["result"],
            )?,
            jwt_cache_entries: int_gauge(
                r,
                "fieldguard_jwt_cache_entries",
                "Verified tokens held in the cache of the active runtime.",
            )?,
            jwt_cache_seen: Mutex::new((0, CacheStats::default())),
        })
    }
}

impl BudgetMetrics {
    /// Registers this group's metrics with `r`.
    fn register(r: &Reg) -> prometheus::Result<Self> {
        Ok(Self {
            budget_exceeded: counter(
                r,
                "fieldguard_budget_exceeded_total",
                "Requests that took a bulk-read budget over its limit, by budget, role and action (alert: served and flagged; refuse: answered 429; would_refuse: shadow mode). Principals are never labels: the audit record names them.",
                &["budget", "role", "action"],
            )?,
            budget_disclosed: counter(
                r,
                "fieldguard_budget_disclosed_total",
                "What bulk-read budgets counted (records or fields, as each budget counts), by budget: sum across replicas for the cluster's rate.",
                &["budget"],
            )?,
            budget_counters: int_gauge(
                r,
                "fieldguard_budget_counters",
                "Bulk-read budget counters held (bounded by budgets.max_counters, plus one overflow counter per budget).",
            )?,
            budget_overflow: int_counter(
                r,
                "fieldguard_budget_overflow_total",
                "Budget charges that found no room under budgets.max_counters and went to the budget's shared overflow counter.",
            )?,
        })
    }
}

impl Metrics {
    /// Registers every metric, subsystem by subsystem (in this order, so
    /// `families` lists them as before). Names and labels are constants, so
    /// this only fails on a programming error.
    pub fn new() -> prometheus::Result<Self> {
        let r = Reg {
            registry: Registry::new(),
            names: std::cell::RefCell::new(Vec::new()),
        };
        let audit = AuditMetrics::register(&r)?;
        let exchange = ExchangeMetrics::register(&r)?;
        let redaction = RedactionMetrics::register(&r)?;
        let failures = FailureMetrics::register(&r)?;
        let policy = PolicyMetrics::register(&r)?;
        let token_cache = TokenCacheMetrics::register(&r)?;
        let budgets = BudgetMetrics::register(&r)?;
        let budget_store = budget_store_metrics(&r)?;
        Ok(Self {
            exchange,
            redaction,
            failures,
            policy,
            token_cache,
            budgets,
            budget_store,
            audit,
            families: r.names.into_inner(),
            registry: r.registry,
        })
    }

    /// Records a successfully loaded policy set.
    pub fn policy_loaded(&self, rt: RuntimeView<'_>, at: SystemTime) {
        let b = &rt.decisions.engine.bundle;
        self.policy.policy_info.reset();
        self.policy
            .policy_info
            .with_label_values(&[b.version.as_str(), b.schema_hash.as_str()])
            .set(1);
        self.policy
            .policy_loads
            .with_label_values(&["success"])
            .inc();
        self.policy
            .policy_last_success
            .set(fieldguard_core::time::unix_seconds(at));
        self.policy.policies_loaded.set(b.info.len() as i64);
        self.init_known_series(rt);
    }

    /// Records a policy set that failed to load (the previous one stays).
    pub fn policy_load_failed(&self) {
        self.policy
            .policy_loads
            .with_label_values(&["failure"])
            .inc();
    }

    /// A policy set refused for its signature (also a failed load).
    pub fn policy_signature_refused(&self, reason: crate::policy_set::Reason) {
        self.policy
            .policy_signature_refusals
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A request hyper's HTTP layer refused (`reason`: one of
    /// [`HTTP_REFUSAL_REASONS`]).
    pub fn http_refused(&self, reason: &'static str) {
        self.failures
            .http_refusals
            .with_label_values(&[reason])
            .inc();
    }

    /// Everything one finished request contributes, subsystem by subsystem.
    pub fn observe(&self, ex: &Exchange, rt: RuntimeView<'_>) {
        let route = ex.route.as_deref().unwrap_or(NO_ROUTE);
        let action = ex.action.as_deref().unwrap_or(NO_ROUTE);
        self.failures.observe_delivery(ex, route);
        self.exchange.observe(ex, route, action);
        self.redaction.observe(ex, rt, route);
        self.budgets.observe(ex);
        self.failures.observe_refusal(ex, route);
    }

    /// Brings the verified-token cache metrics up to date with `rt`'s
    /// cache: at every scrape, and for the outgoing runtime just before a
    /// reload replaces it (lookups by requests still finishing on it after
    /// that are not counted). The counter only ever grows across reloads.
    pub fn collect_token_cache(&self, rt: RuntimeView<'_>) {
        let Some(now) = rt.identifier.token_cache_stats() else {
            self.token_cache.jwt_cache_entries.set(0);
            return;
        };
        let mut seen = self
            .token_cache
            .jwt_cache_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.0 != rt.generation {
            *seen = (rt.generation, CacheStats::default());
        }
        let (hits, misses) = (
            now.hits.saturating_sub(seen.1.hits),
            now.misses.saturating_sub(seen.1.misses),
        );
        self.token_cache
            .jwt_cache_lookups
            .with_label_values(&["hit"])
            .inc_by(hits);
        self.token_cache
            .jwt_cache_lookups
            .with_label_values(&["miss"])
            .inc_by(misses);
        self.token_cache
            .jwt_cache_entries
            .set(i64::try_from(now.entries).unwrap_or(i64::MAX));
        seen.1 = now;
    }

    /// Brings the budget-state gauges up to date (at every scrape).
    pub fn collect_budgets(&self, state: &crate::budget::BudgetState) {
        self.budgets
            .budget_counters
            .set(i64::try_from(state.len()).unwrap_or(i64::MAX));
        let seen = self.budgets.budget_overflow.get();
        self.budgets
            .budget_overflow
            .inc_by(state.overflowed().saturating_sub(seen));
    }

    /// Names of every metric family this proxy exports.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        use prometheus::Encoder;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("metrics encoding failed: {e}");
        }
        out
    }
}

impl ExchangeMetrics {
    /// The request's count and latencies, its request-level decision, and
    /// what shadow mode would have done to it.
    fn observe(&self, ex: &Exchange, route: &str, action: &str) {
        if let Some(s) = &ex.shadow {
            let events = [
                ("would_deny", s.would_deny.is_some()),
                ("would_redact", s.would_redact.is_some()),
                ("would_refuse", !s.would_refuse_fields.is_empty()),
                ("would_drop_headers", !s.would_drop_headers.is_empty()),
                ("disagreement", !s.disagreements.is_empty()),
            ];
            for (event, happened) in events {
                if happened {
                    self.shadow_events
                        .with_label_values(&[route, action, s.kind, event])
                        .inc();
                }
            }
        }
        let class = status_class(ex.status);
        self.requests
            .with_label_values(&[route, action, ex.decision_label(), class])
            .inc();
        self.request_duration
            .with_label_values(&[route, action])
            .observe(ex.started.elapsed().as_secs_f64());
        if let Some(d) = ex.upstream_latency {
            self.upstream_duration
                .with_label_values(&[route, action])
                .observe(d.as_secs_f64());
        }
        if let Some(d) = &ex.decision {
            let label = if d.allowed { "allow" } else { "deny" };
            self.decisions.with_label_values(&[action, label]).inc();
            if !d.errors.is_empty() {
                self.policy_errors
                    .with_label_values(&[action])
                    .inc_by(d.errors.len() as u64);
            }
        }
        if let Some(d) = ex.decision_latency {
            self.decision_duration
                .with_label_values(&[action])
                .observe(d.as_secs_f64());
        }
    }
}

impl RedactionMetrics {
    /// Field outcomes, backstop matches and hidden records of the
    /// response, members it had that the catalogue does not name, and
    /// request-body fields refused.
    fn observe(&self, ex: &Exchange, rt: RuntimeView<'_>, route: &str) {
        if let Some(f) = &ex.filter {
            if !f.outcomes.is_empty() {
                // A poisoned lock only means a panic elsewhere mid-update of
                // a cache; the handles in it are still valid.
                let mut handles = self.field_handles.lock().unwrap_or_else(|p| p.into_inner());
                for (&(field, outcome), &count) in &f.outcomes {
                    if let Some(c) = handles.counter(&self.field_outcomes, rt, field, outcome) {
                        c.inc_by(u64::from(count));
                    }
                }
            }
            for (detector, n) in f.backstop.iter() {
                self.backstop
                    .with_label_values(&[route, detector.as_str()])
                    .inc_by(u64::from(n));
            }
            if f.records_dropped > 0 {
                self.records_hidden
                    .with_label_values(&[route])
                    .inc_by(u64::from(f.records_dropped));
            }
        }
        self.observe_members(ex, rt, route);
        for r in &ex.refused_fields {
            self.refused_write_fields
                .with_label_values(&[route, r.reason.as_str()])
                .inc();
        }
    }

    /// Uncatalogued and misshapen response members. Shadow mode filters
    /// nothing, but what it would have removed is counted all the same:
    /// that is how a catalogue is completed.
    fn observe_members(&self, ex: &Exchange, rt: RuntimeView<'_>, route: &str) {
        let members = ex
            .filter
            .as_ref()
            .or_else(|| ex.shadow.as_ref().and_then(|s| s.would_redact.as_ref()));
        let Some(f) = members.filter(|f| !f.unnamed.is_empty() || !f.misshapen.is_empty()) else {
            return;
        };
        let mut labels = self.member_labels.lock().unwrap_or_else(|p| p.into_inner());
        for (family, names) in [
            (&self.uncatalogued, &f.unnamed),
            (&self.misshapen, &f.misshapen),
        ] {
            for (scope, path, count) in names.sorted() {
                let entity = rt.decisions.catalogue.scope_name(scope);
                let field = labels.admit(route, entity, path);
                family
                    .with_label_values(&[route, entity, field])
                    .inc_by(u64::from(count));
            }
            if names.overflow > 0 {
                family
                    .with_label_values(&[route, "(any)", OTHER_LABEL])
                    .inc_by(u64::from(names.overflow));
            }
        }
    }
}

impl FailureMetrics {
    /// How the response got to the client: the client leaving early, a
    /// streamed response's outcome, response headers dropped.
    fn observe_delivery(&self, ex: &Exchange, route: &str) {
        if let Some(stage) = ex.progress.aborted_at() {
            self.client_aborts
                .with_label_values(&[stage.as_str()])
                .inc();
        }
        if ex.response_streamed {
            let outcome = ex.response_aborted.unwrap_or("complete");
            self.streamed_responses.with_label_values(&[outcome]).inc();
        }
        if !ex.dropped_headers.is_empty() {
            let mut labels = self.header_labels.lock().unwrap_or_else(|p| p.into_inner());
            for name in &ex.dropped_headers {
                let header = labels.label(route, name.as_str());
                self.headers_dropped
                    .with_label_values(&[route, header])
                    .inc();
            }
        }
    }

    /// Why the proxy answered the request itself, if it did.
    fn observe_refusal(&self, ex: &Exchange, route: &str) {
        if let Some(reason) = ex.identity_error {
            self.identity_failures.with_label_values(&[reason]).inc();
        }
        if let Some(code) = ex.refusal {
            self.refusals.with_label_values(&[code]).inc();
            if let Some((direction, reason)) = body_rejection(code) {
                self.body_rejections
                    .with_label_values(&[direction, reason])
                    .inc();
            }
            if let Some(kind) = upstream_error(code) {
                self.upstream_errors.with_label_values(&[route, kind]).inc();
            }
        }
    }
}

impl BudgetMetrics {
    /// Budgets the request took over their limit, and what it disclosed.
    fn observe(&self, ex: &Exchange) {
        let Some(b) = &ex.budget else { return };
        for f in &b.flags {
            self.budget_exceeded
                .with_label_values(&[&*f.limit.id, &*f.limit.role, f.action.as_str()])
                .inc();
        }
        for (budget, n) in &b.counted {
            self.budget_disclosed
                .with_label_values(&[budget])
                .inc_by(*n);
        }
    }
}

/// The `reason` values of `fieldguard_http_refusals_total`.
pub const HTTP_REFUSAL_REASONS: [&str; 3] = ["malformed", "head_too_large", "header_timeout"];

/// Which dropped-header names are label values: token-shaped (lower-case
/// letters, digits, `-`, `_`; HTTP/1 and HTTP/2 deliver names lower-cased),
/// at most [`MAX_HEADER_LABEL`] long, and among the first
/// [`MAX_HEADER_SERIES`] `(route, header)` pairs seen; everything else is
/// counted as [`OTHER_HEADER`].
#[derive(Default)]
struct HeaderLabels {
    admitted: HashSet<(String, String)>,
}

impl HeaderLabels {
    fn label<'a>(&mut self, route: &str, name: &'a str) -> &'a str {
        let token_shaped = !name.is_empty()
            && name.len() <= MAX_HEADER_LABEL
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !token_shaped {
            return OTHER_HEADER;
        }
        let key = (route.to_string(), name.to_string());
        if self.admitted.contains(&key) {
            return name;
        }
        if self.admitted.len() < MAX_HEADER_SERIES {
            self.admitted.insert(key);
            return name;
        }
        OTHER_HEADER
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn body_rejection(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "request_too_large" => ("request", "too_large"),
        "malformed_request_body" => ("request", "malformed"),
        "unsupported_media_type" => ("request", "unsupported_media_type"),
        "ambiguous_content_type" => ("request", "ambiguous_content_type"),
        "unsupported_content_encoding" => ("request", "unsupported_content_encoding"),
        "response_too_large" => ("response", "too_large"),
        "unreadable_response" => ("response", "unreadable"),
        _ => return None,
    })
}

fn upstream_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "upstream_unavailable" => "unavailable",
        "upstream_timeout" => "timeout",
        "upstream_error" => "error_status",
        _ => return None,
    })
}

/// The label standing for member paths beyond the cap.
const OTHER_LABEL: &str = "_other";
/// Distinct (route, entity, path) label sets of the member metrics.
const MAX_MEMBER_LABELS: usize = 1_000;

/// The member-path label sets handed out so far.
#[derive(Default)]
struct BoundedLabels {
    seen: std::collections::HashSet<(String, String, String)>,
}

impl BoundedLabels {
    /// `path` as the label to use: itself while the cap allows a new label
    /// set (or it is one already in use), else [`OTHER_LABEL`].
    fn admit<'a>(&mut self, route: &str, entity: &str, path: &'a str) -> &'a str {
        let key = (route.to_string(), entity.to_string(), path.to_string());
        if self.seen.contains(&key) {
            return path;
        }
        if self.seen.len() < MAX_MEMBER_LABELS {
            self.seen.insert(key);
            return path;
        }
        OTHER_LABEL
    }
}

/// Resolved `fieldguard_field_outcomes_total` series of one runtime.
#[derive(Default)]
struct FieldHandles {
    generation: u64,
    /// By field index, then outcome (full, masked, removed).
    by_field: Vec<[Option<IntCounter>; 3]>,
}

impl FieldHandles {
    fn counter(
        &mut self,
        family: &IntCounterVec,
        rt: RuntimeView<'_>,
        field: u32,
        outcome: Outcome,
    ) -> Option<&IntCounter> {
        if self.generation != rt.generation {
            self.generation = rt.generation;
            self.by_field.clear();
            self.by_field
                .resize_with(rt.decisions.catalogue.fields().len(), Default::default);
        }
        let spec = rt.decisions.catalogue.fields().get(field as usize)?;
        let slot = self
            .by_field
            .get_mut(field as usize)?
            .get_mut(outcome_index(outcome))?;
        Some(slot.get_or_insert_with(|| {
            family.with_label_values(&[
                &*spec.entity,
                spec.category.as_str(),
                spec.path.as_str(),
                outcome.as_str(),
            ])
        }))
    }
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Full => 0,
        Outcome::Masked => 1,
        Outcome::Removed => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_labels_are_bounded() {
        let mut l = HeaderLabels::default();
        assert_eq!(l.label("/r", "x-ok_1"), "x-ok_1");
        assert_eq!(l.label("/r", "x.dot"), OTHER_HEADER);
        assert_eq!(l.label("/r", &"a".repeat(65)), OTHER_HEADER);
        assert_eq!(l.label("/r", &"a".repeat(64)), "a".repeat(64));
        for i in 0..MAX_HEADER_SERIES {
            l.label("/r", &format!("x-{i}"));
        }
        assert_eq!(l.label("/r", "x-new"), OTHER_HEADER);
        // Already admitted pairs keep their label.
        assert_eq!(l.label("/r", "x-ok_1"), "x-ok_1");
        assert_eq!(l.label("/other", "x-ok_1"), OTHER_HEADER);
    }
}
