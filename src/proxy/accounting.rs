//! The two ends of every request as the audit trail and metrics see them:
//! [`admit`] reserves the request's audit slot before anything else happens
//! (no slot, no service: 503), [`finish`] records what happened.

use super::Proxy;
use super::errors::{Refusal, Stop};
use crate::audit::{AuditRecord, Slot, Unavailable};
use crate::exchange::Exchange;
use crate::runtime::Runtime;

/// Whether the request may proceed: `Ok(None)` when the proxy has no audit
/// trail attached, `Ok(Some(slot))` with its reserved record slot.
pub(super) async fn admit(proxy: &Proxy) -> Result<Option<Slot>, (Stop, Unavailable)> {
    let Some(audit) = &proxy.audit else {
        return Ok(None);
    };
    match audit.reserve().await {
        Ok(slot) => Ok(Some(slot)),
        Err(why) => {
            audit.count_refusal(why);
            Err((Stop::from(Refusal::AuditUnavailable), why))
        }
    }
}

/// The end of every request: the operator log line, metrics, and the audit
/// record (into the request's slot; a request refused for want of a slot
/// is still recorded if the queue has room, else counted as lost).
pub(super) fn finish(proxy: &Proxy, rt: &Runtime, ex: &Exchange, slot: Option<Slot>) {
    tracing::info!(
        request_id = %ex.request_id,
        method = %ex.method,
        route = ex.route.as_deref().unwrap_or("-"),
        principal = ex.principal.as_ref().map(|p| p.id.as_str()).unwrap_or("-"),
        decision = ex.decision_label(),
        refusal = ex.refusal.unwrap_or("-"),
        status = ex.status,
        "request"
    );
    proxy.metrics.observe(ex, rt.metrics_view());
    record_observed(proxy, rt, ex);
    if let Some(audit) = &proxy.audit {
        audit.submit(slot, AuditRecord::from_exchange(ex, rt.decided_by()));
    }
}

/// Adds what the body's unnamed members looked like to the proxy's
/// observations: from the filter, or from what shadow mode would have
/// filtered (a shadow route relays the body but observes it all the same).
fn record_observed(proxy: &Proxy, rt: &Runtime, ex: &Exchange) {
    let report = ex
        .filter
        .as_ref()
        .or_else(|| ex.shadow.as_ref().and_then(|s| s.would_redact.as_ref()));
    if let (Some(f), Some(route)) = (report, &ex.route)
        && !f.observed.is_empty()
    {
        proxy.observed.record(
            &format!("{} {route}", ex.method),
            &rt.decisions.catalogue,
            &f.observed,
        );
    }
}
