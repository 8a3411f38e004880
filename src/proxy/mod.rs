//! The reverse proxy: accepts HTTP/1.1 and h2c connections and runs each
//! request through [`handler`].

mod accounting;
mod admin_handle;
mod ambiguity;
pub mod body;
mod budgeting;
mod caller;
mod detached;
mod enforcement;
pub mod errors;
mod framing;
mod handler;
pub mod headers;
mod inspect;
pub mod reload;
/// The response-header allow-list (its rules live with the routes).
pub mod server;
mod shadow;
mod stall;
mod streaming;
pub mod upstream;

use crate::runtime::{Runtime, upstream_url};
use bytes::Bytes;
use fieldguard_core::error::ConfigError;
use http_body_util::combinators::BoxBody;
use std::sync::Arc;
use tokio::net::TcpListener;
use upstream::Upstream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type of everything the proxy sends: streamed or buffered.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Shared state of a running proxy.
pub struct Proxy {
    /// The active runtime. A reload swaps it whole; a request keeps the
    /// one it started with until it finishes.
    runtime: arc_swap::ArcSwap<Runtime>,
    /// Where reloads rebuild the runtime from, and how the last one went.
    pub(crate) reload: crate::proxy::reload::ReloadState,
    upstream: Upstream,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The audit trail; `None` only for proxies built without one (library
    /// users, tests): `fieldguard run` and `demo` always attach one.
    pub audit: Option<crate::audit::AuditLog>,
    /// Bulk-read budget counters (this process's, or the fleet's shared
    /// store): the proxy's, not a runtime's, so a reload does not reset
    /// what principals were disclosed.
    pub budgets: crate::budget::Counters,
    /// What observing routes saw of unnamed members (`/observed`).
    pub observed: crate::observed_store::ObservedStore,
}

impl Proxy {
    pub fn new(runtime: Runtime) -> Result<Self, ConfigError> {
        let base = upstream_url(&runtime.config)?;
        let upstream = Upstream::new(&runtime.config, &base)?;
        let metrics = crate::metrics::Metrics::new()
            .map_err(|e| ConfigError::file(&runtime.config.file, format!("metrics: {e}")))?;
        metrics.policy_loaded(runtime.metrics_view(), runtime.loaded_at);
        let budgets = crate::budget::Counters::new(
            crate::budget::system_clock(),
            metrics.budget_store.clone(),
        );
        Ok(Self {
            runtime: arc_swap::ArcSwap::from_pointee(runtime),
            reload: Default::default(),
            upstream,
            metrics: Arc::new(metrics),
            audit: None,
            budgets,
            observed: Default::default(),
        })
    }

    /// Counts budgets on `clock` (milliseconds) instead of the system's:
    /// tests move time instead of waiting for windows to pass.
    pub fn with_budget_clock(mut self, clock: crate::budget::Clock) -> Self {
        self.budgets = crate::budget::Counters::new(clock, self.metrics.budget_store.clone());
        self
    }

    /// Connects the shared budget store the active configuration names
    /// (`budgets.store`), if any: before serving, so a misconfigured or
    /// (unless the config allows it) unreachable store stops start-up with
    /// the file and line at fault.
    pub async fn connect_budget_store(&self) -> Result<(), ConfigError> {
        let rt = self.runtime();
        self.budgets
            .configure(&rt.config.config.budgets.store, rt.config.origin(), true)
            .await
    }

    /// The active runtime (policies, routes, catalogue, identity).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Makes `runtime` the active one; requests in flight finish on theirs.
    pub(crate) fn swap_runtime(&self, runtime: Runtime) {
        // The outgoing runtime's token cache counts go in before it goes.
        self.metrics
            .collect_token_cache(self.runtime().metrics_view());
        self.metrics
            .policy_loaded(runtime.metrics_view(), runtime.loaded_at);
        self.runtime.store(Arc::new(runtime));
    }

    /// Attaches the audit trail: from then on every request needs a slot in
    /// its queue and leaves a record.
    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }
}

/// Accepts plain connections until the task is dropped, within the
/// configured limits. HTTP/1.1 and HTTP/2 (prior knowledge, h2c) are both
/// served on the same port. [`server::Server`] adds TLS and graceful
/// shutdown.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) -> std::io::Result<()> {
    server::Server::new(proxy, None).serve(listener).await
}
