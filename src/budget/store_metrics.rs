//! The shared budget store's metrics: the handles its client updates
//! (registered with the proxy's others in [`crate::metrics`]).

use prometheus::{IntCounterVec, IntGauge};

/// The shared budget store's metrics, shared with the store's client.
#[derive(Clone)]
pub struct BudgetStoreMetrics {
    /// 1 while the shared store answers (or no shared store is configured:
    /// the memory store is always up), 0 while budgets follow
    /// `on_store_error`.
    pub up: IntGauge,
    /// Store calls that failed, by reason (`timeout`, `connection`,
    /// `refused`, `script`).
    pub errors: IntCounterVec,
    /// Round trips of store calls that answered.
    pub duration: prometheus::Histogram,
}

/// `fieldguard_budget_store_errors_total{reason}` values.
pub const BUDGET_STORE_ERROR_REASONS: [&str; 4] = ["timeout", "connection", "refused", "script"];
