//! `fieldguard explain`: why a request is allowed or denied, and field by
//! field what a response would look like, with the deciding policies.

use crate::identity::Principal;
use crate::runtime::Runtime;
use fieldguard_core::pipeline::{self, Decided, Routed};
use fieldguard_core::redact::report::{FilterReport, TraceEntry};
use fieldguard_core::routing;
use std::fmt::Write as _;

/// Why there is no explanation.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The path is one the proxy refuses before routing.
    #[error("path refused: {0}")]
    PathRefused(routing::PathError),
}

/// The explanation as text. `response` is an upstream response body to
/// filter (JSON), `body` a request body to check.
pub fn explain(
    rt: &Runtime,
    principal: &Principal,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    response: Option<&[u8]>,
) -> Result<String, ExplainError> {
    let mut out = String::new();
    let w = &mut out;
    let canonical = routing::normalize(path).map_err(ExplainError::PathRefused)?;
    let _ = writeln!(w, "request:   {method} {path}");
    if canonical.as_str() != path {
        let _ = writeln!(w, "canonical: {}", canonical.as_str());
    }
    write_principal(w, principal);
    let m = match pipeline::route(&rt.decisions, method, &canonical) {
        Routed::Passthrough => {
            let _ = writeln!(
                w,
                "route:     passthrough (no identity, decision or inspection)"
            );
            return Ok(out);
        }
        Routed::Unmatched => {
            let _ = writeln!(
                w,
                "route:     none matched → {:?} (config `unmatched`)",
                rt.decisions.unmatched
            );
            return Ok(out);
        }
        Routed::Route(m) => m,
    };
    let route = m.route;
    let _ = writeln!(w, "route:     {} {}", route.method, route.template);
    let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !params.is_empty() {
        let _ = writeln!(w, "params:    {}", params.join(", "));
    }
    let decided = match pipeline::decide(&rt.decisions, &m, principal) {
        Ok(d) => d,
        Err(denied) => {
            let _ = writeln!(w, "action:    Action::\"{}\"", route.action);
            let _ = writeln!(w, "decision:  DENY ({})", denied.refusal.code());
            if let Some(d) = denied.decision {
                write_policies(rt, w, &d.policies, &d.errors);
            }
            return Ok(out);
        }
    };
    let _ = writeln!(
        w,
        "cedar:     principal=User::\"{}\" action=Action::\"{}\" resource={}::\"{}\"{} context={{mfa: {}, purpose: \"{}\"}}",
        principal.id,
        route.action,
        decided.resource_type,
        decided.resource_id,
        route
            .resource
            .owner_param
            .as_ref()
            .and_then(|p| m.params.get(p))
            .map(|o| format!(" {{owner: User::\"{o}\"}}"))
            .unwrap_or_default(),
        principal.mfa,
        principal.purpose.as_deref().unwrap_or("")
    );
    let _ = writeln!(w, "decision:  ALLOW");
    write_policies(rt, w, &decided.decision.policies, &decided.decision.errors);

    if let Some(body) = body {
        write_request_body(rt, w, &decided, body);
    }
    if let Some(response) = response {
        write_response(rt, w, &decided, response);
    }
    Ok(out)
}

/// The caller as Cedar sees it.
fn write_principal(w: &mut String, principal: &Principal) {
    let _ = writeln!(
        w,
        "principal: User::\"{}\" in [{}], mfa={}, purpose=\"{}\"",
        principal.id,
        principal
            .roles
            .iter()
            .map(|r| format!("Role::\"{r}\""))
            .collect::<Vec<_>>()
            .join(", "),
        principal.mfa,
        principal.purpose.as_deref().unwrap_or("")
    );
}

/// Whether the request body would be taken, and which fields it writes.
fn write_request_body(rt: &Runtime, w: &mut String, decided: &Decided<'_>, body: &[u8]) {
    let _ = writeln!(w, "\nrequest body:");
    match pipeline::check_request_body(&rt.decisions, decided, true, body) {
        Ok(written) => {
            let _ = writeln!(
                w,
                "  allowed (every value catalogued, of its shape, collectable and writable)"
            );
            for f in written {
                let _ = writeln!(w, "  {:<28} written", rt.decisions.catalogue.field(f).path);
            }
        }
        Err((stop, refused)) => {
            let _ = writeln!(w, "  refused: {}", stop.refusal.code());
            for r in refused {
                let _ = writeln!(w, "  {:<28} {}", r.field, r.reason.as_str());
            }
        }
    }
}

/// The response body filtered, record by record and field by field, with
/// the members the configuration does not name.
fn write_response(rt: &Runtime, w: &mut String, decided: &Decided<'_>, response: &[u8]) {
    let _ = writeln!(w, "\nresponse:");
    if !decided.route.inspects_response() {
        let _ = writeln!(w, "  not inspected on this route: passed through as is");
        return;
    }
    let mut report = FilterReport::traced();
    let result = pipeline::filter_response_body(&rt.decisions, decided, response, &mut report);
    for t in report.trace.as_deref().unwrap_or_default() {
        write_trace(rt, w, t);
    }
    let fate = if report.unknown_passed {
        "passed: unknown_fields is `pass` on this route"
    } else {
        "removed"
    };
    for (what, names, fate) in [
        ("not named by the configuration", &report.unnamed, fate),
        (
            "catalogued, but of another shape",
            &report.misshapen,
            "removed",
        ),
    ] {
        for (scope, path, count) in names.sorted() {
            let _ = writeln!(
                w,
                "  {what}: {} {path} ×{count} ({fate})",
                rt.decisions.catalogue.scope_name(scope)
            );
        }
    }
    match result {
        Ok(body) => {
            let _ = writeln!(w, "\nfiltered body:\n{}", String::from_utf8_lossy(&body));
        }
        Err(stop) => {
            let _ = writeln!(w, "  → {} ({})", stop.refusal.code(), stop.refusal.status());
        }
    }
}

fn write_trace(rt: &Runtime, w: &mut String, t: &TraceEntry) {
    match &t.field {
        None => {
            let _ = writeln!(
                w,
                "  record {} {}::\"{}\": {}{}",
                t.record,
                t.entity,
                t.record_id,
                t.outcome,
                by(rt, &t.policies)
            );
        }
        Some(f) => {
            let _ = writeln!(w, "    {:<24} {:<8}{}", f, t.outcome, by(rt, &t.policies));
        }
    }
    for e in &t.errors {
        let _ = writeln!(
            w,
            "      evaluation error (policy counted as not applying): {e}"
        );
    }
}

fn by(rt: &Runtime, policies: &[String]) -> String {
    if policies.is_empty() {
        return " (no policy permits it: default deny)".into();
    }
    let described: Vec<String> = policies
        .iter()
        .map(|id| match rt.decisions.engine.bundle.info.get(id) {
            Some(i) => format!("{} [{}]", id, i.effect),
            None => id.clone(),
        })
        .collect();
    format!(" by {}", described.join(", "))
}

fn write_policies(rt: &Runtime, w: &mut String, policies: &[String], errors: &[String]) {
    if policies.is_empty() {
        let _ = writeln!(w, "  no policy permits it: default deny");
    }
    for id in policies {
        match rt.decisions.engine.bundle.info.get(id) {
            Some(i) => {
                let _ = writeln!(
                    w,
                    "  {} @id(\"{}\") at {}:{}",
                    i.effect,
                    id,
                    i.file.display(),
                    i.line
                );
                if !i.comment.is_empty() {
                    let _ = writeln!(w, "    // {}", i.comment);
                }
            }
            None => {
                let _ = writeln!(w, "  {id}");
            }
        }
    }
    for e in errors {
        let _ = writeln!(
            w,
            "  evaluation error (policy counted as not applying): {e}"
        );
    }
}
