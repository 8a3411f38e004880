//! Labelled counters whose label sets the configuration already fixes are
//! created at 0 when a runtime is loaded (at start and on every reload).
//!
//! Why: Prometheus only sees a labelled series after its first increment,
//! so a dashboard panel or an alert on `fieldguard_upstream_errors_total`
//! shows "No data" (and `rate()` has nothing to compare against) until the
//! first failure. A series at 0 makes "nothing went wrong" visible, and the
//! first increment a real 0 → 1 step.
//!
//! Only bounded, configuration-derived labels are created here: route
//! templates from the route table and the fixed reason/kind values of each
//! family. Series of routes removed by a reload stay (a counter must not
//! vanish mid-scrape history); they simply stop moving.

use super::RuntimeView;
use super::{Metrics, NO_ROUTE};

/// `fieldguard_upstream_errors_total{kind}` values on every route.
const UPSTREAM_STREAMING_KINDS: [&str; 2] = ["unavailable", "timeout"];
/// On routes that inspect responses the upstream's error status is counted
/// too.
const UPSTREAM_INSPECTED_KINDS: [&str; 3] = ["unavailable", "timeout", "error_status"];
/// `fieldguard_refused_write_fields_total{reason}` values.
const WRITE_REFUSAL_REASONS: [&str; 2] = ["not_collected", "not_permitted"];
/// `fieldguard_body_rejections_total{direction, reason}` (see
/// `body_rejection` in the parent module).
const BODY_REJECTIONS: [(&str, &str); 7] = [
    ("request", "too_large"),
    ("request", "malformed"),
    ("request", "unsupported_media_type"),
    ("request", "ambiguous_content_type"),
    ("request", "unsupported_content_encoding"),
    ("response", "too_large"),
    ("response", "unreadable"),
];

impl Metrics {
    /// Creates, at 0, every series of the families above that `rt`'s route
    /// table can produce. Idempotent: existing series keep their values.
    pub(super) fn init_known_series(&self, rt: RuntimeView<'_>) {
        for kind in UPSTREAM_STREAMING_KINDS {
            // Passthrough routes and unmatched requests are labelled "none".
            self.failures
                .upstream_errors
                .with_label_values(&[NO_ROUTE, kind]);
        }
        for route in rt.decisions.routes.iter() {
            let template = route.template.as_str();
            if route.inspects_response() {
                for kind in UPSTREAM_INSPECTED_KINDS {
                    self.failures
                        .upstream_errors
                        .with_label_values(&[template, kind]);
                }
                self.redaction.records_hidden.with_label_values(&[template]);
                for detector in route.response.iter().flat_map(|p| p.backstop.iter()) {
                    self.redaction
                        .backstop
                        .with_label_values(&[template, detector.as_str()]);
                }
            } else {
                for kind in UPSTREAM_STREAMING_KINDS {
                    self.failures
                        .upstream_errors
                        .with_label_values(&[template, kind]);
                }
            }
            if route.request.is_some() {
                for reason in WRITE_REFUSAL_REASONS {
                    self.redaction
                        .refused_write_fields
                        .with_label_values(&[template, reason]);
                }
            }
        }
        for (direction, reason) in BODY_REJECTIONS {
            self.failures
                .body_rejections
                .with_label_values(&[direction, reason]);
        }
        // Every configured budget, so an alert on a breach has a series
        // at 0 to rise from.
        for l in rt.budgets.limits() {
            self.budgets.budget_disclosed.with_label_values(&[&*l.id]);
            let actions: &[&str] = match l.on_exceed {
                crate::budget::OnExceed::Alert => &["alert"],
                crate::budget::OnExceed::Refuse => &["refuse", "would_refuse"],
            };
            for action in actions {
                self.budgets
                    .budget_exceeded
                    .with_label_values(&[&*l.id, &*l.role, action]);
            }
        }
    }
}
