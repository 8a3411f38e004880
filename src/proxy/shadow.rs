//! Decisions computed but not enforced: shadow mode (globally or per route)
//! and an observed policy set (shadow policy files or a candidate set)
//! decided beside the enforced one. The request path calls in here to note
//! what enforcement would have done, or where the observed set disagrees;
//! nothing here changes what the client gets, except the one refusal shadow
//! mode keeps (a response body it could not read).

use super::body::full;
use super::budgeting;
use super::errors::{Denied, Refusal, Stop};
use super::headers;
use super::inspect::{limit_headers, read_inspected, upstream_failure};
use super::{Proxy, ProxyBody};
use crate::exchange::{Disagreement, Exchange, WouldDeny};
use crate::runtime::Runtime;
use fieldguard_core::pipeline::{self, Decided, RouteMatch};
use fieldguard_core::principal::Principal;
use fieldguard_core::redact::Outcome;
use fieldguard_core::redact::report::FilterReport;
use http::Response;
use hyper::body::Incoming;

/// The observed policy set's request-level decision beside the enforced
/// one, with any disagreement noted; `None` without an observed set.
pub(super) fn observe_request<'rt>(
    rt: &'rt Runtime,
    m: &RouteMatch<'_>,
    principal: &Principal,
    enforced: &Decided<'_>,
    ex: &mut Exchange,
) -> Result<Option<Decided<'rt>>, Stop> {
    let Some(o) = &rt.decisions.observer else {
        return Ok(None);
    };
    let d = pipeline::evaluate(&o.engine, m, principal)?;
    let report = ex.shadow.get_or_insert_with(Default::default);
    report.kind = o.kind.as_str();
    report.observed_version = Some(o.engine.bundle.version.clone());
    if d.decision.allowed != enforced.decision.allowed {
        report.disagreements.push(Disagreement {
            subject: "request".into(),
            enforced: allow_label(enforced.decision.allowed),
            observed: allow_label(d.decision.allowed),
        });
        if !d.decision.allowed {
            report.would_deny = Some(WouldDeny {
                reason: Refusal::Forbidden.code(),
                policies: d.decision.policies.clone(),
            });
        }
    }
    Ok(Some(d))
}

fn allow_label(allowed: bool) -> String {
    if allowed { "allow" } else { "deny" }.to_string()
}

pub(super) type WriteCheck = Result<Vec<u32>, (Denied, Vec<fieldguard_core::redact::Refusal>)>;

/// Disagreements between the enforced and the observed write checks.
pub(super) fn compare_writes(ex: &mut Exchange, enforced: &WriteCheck, observed: &WriteCheck) {
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
pub(super) fn compare_filters(
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
pub(super) async fn shadow_filter(
    proxy: &Proxy,
    rt: &Runtime,
    decided: &Decided<'_>,
    resp: Response<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Stop> {
    let (mut parts, raw, decoded) = match read_inspected(proxy, rt, resp).await {
        Ok(x) => x,
        Err(stop) => {
            let stop = upstream_failure(&decided.route, stop);
            // The body could not be inspected; relaying what was not read
            // is impossible, so this is the one refusal shadow mode keeps.
            ex.would_deny(stop.refusal, Vec::new());
            return Err(stop);
        }
    };
    let json = decoded.as_deref().unwrap_or(&raw);
    let mut report = FilterReport::default();
    if let Err(stop) = pipeline::filter_response_body(&rt.decisions, decided, json, &mut report) {
        ex.would_deny(stop.refusal, Vec::new());
    }
    // Counted as the filter would have disclosed; never refused here.
    let _ = budgeting::charge(proxy, rt, ex, &report, false).await;
    if report
        .outcomes
        .iter()
        .any(|((_, o), n)| *o != Outcome::Full && *n > 0)
        || report.records_dropped > 0
        || !report.unnamed.is_empty()
        || !report.misshapen.is_empty()
        || !report.backstop.is_empty()
    {
        ex.shadow_report().would_redact = Some(report);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(allowed) = &decided.route.response_headers {
        limit_headers(rt, allowed, true, &mut parts.headers, ex);
    }
    Ok(Response::from_parts(parts, full(raw)))
}
