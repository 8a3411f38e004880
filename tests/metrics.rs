//! Metrics and admin endpoints through the real proxy: counters move with
//! real traffic, the exposition passes `promtool`, and the dashboard and
//! alerting rules name only metrics the proxy exports.

mod common;

use common::audited::{Audited, start_audited, start_audited_in_front_of};
use common::{repo_path, token};
use fieldguard::audit::AuditSettings;
use http::Method;
use serde_json::json;

async fn audited() -> (Audited, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let a = start_audited(AuditSettings::for_file(dir.path().join("audit.log"))).await;
    (a, dir)
}

#[tokio::test]
async fn counters_move_with_real_traffic() {
    let (mut a, _dir) = audited().await;
    let agent = token("support_agent", "agent-7", false, None);
    let customer = token("customer", "c-1001", false, None);
    let before = a.scrape().await;
    assert_eq!(before.value("fieldguard_requests_total", &[]), 0.0);

    for _ in 0..3 {
        assert_eq!(a.h.get("/customers/c-1001", &agent).await.status, 200);
    }
    assert_eq!(a.h.get("/customers/c-1002", &customer).await.status, 403);
    let anonymous =
        a.h.send(Method::GET, "/customers/c-1001", None, &[], None)
            .await;
    assert_eq!(anonymous.status, 401);
    let refused =
        a.h.send_json(
            Method::PATCH,
            "/customers/c-1001",
            &customer,
            &json!({"id_card_number": "Eve", "nickname": "x"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    let malformed =
        a.h.send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&customer),
            &[("content-type", "application/json")],
            Some(b"{"),
        )
        .await;
    assert_eq!(malformed.status, 400);
    let big = vec![b' '; 70_000];
    let too_large =
        a.h.send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&customer),
            &[("content-type", "application/json")],
            Some(&big),
        )
        .await;
    assert_eq!(too_large.status, 413);

    let m = a.scrape().await;
    let read = [("route", "/customers/{id}"), ("action", "customer:read")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        read.iter().chain(extra).copied().collect()
    };
    assert_eq!(
        m.value(
            "fieldguard_requests_total",
            &with(&[("decision", "allow"), ("status_class", "2xx")])
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "fieldguard_requests_total",
            &with(&[("decision", "deny"), ("status_class", "4xx")])
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "fieldguard_requests_total",
            &[("route", "none"), ("status_class", "4xx")]
        ),
        1.0
    );
    assert_eq!(m.value("fieldguard_requests_total", &[]), 8.0);
    assert_eq!(
        m.value("fieldguard_request_duration_seconds_count", &read),
        4.0
    );
    assert_eq!(
        m.value("fieldguard_upstream_duration_seconds_count", &read),
        3.0
    );
    assert_eq!(
        m.value(
            "fieldguard_policy_decisions_total",
            &[("action", "customer:read"), ("decision", "allow")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "fieldguard_policy_decisions_total",
            &[("action", "customer:read"), ("decision", "deny")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "fieldguard_policy_evaluation_duration_seconds_count",
            &[("action", "customer:read")]
        ),
        4.0
    );
    let field = |f: &'static str, outcome: &'static str| {
        m.value(
            "fieldguard_field_outcomes_total",
            &[
                ("entity", "Customer"),
                ("category", "identity"),
                ("field", f),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(field("phone", "masked"), 3.0);
    assert_eq!(field("birth_date", "removed"), 3.0);
    assert_eq!(field("name", "full"), 3.0);
    assert_eq!(
        m.value(
            "fieldguard_identity_failures_total",
            &[("reason", "missing")]
        ),
        1.0
    );
    let route = ("route", "/customers/{id}");
    assert_eq!(
        m.value(
            "fieldguard_refused_write_fields_total",
            &[route, ("reason", "not_collected")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "fieldguard_refused_write_fields_total",
            &[route, ("reason", "not_catalogued")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "fieldguard_body_rejections_total",
            &[("direction", "request"), ("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "fieldguard_body_rejections_total",
            &[("direction", "request"), ("reason", "too_large")]
        ),
        1.0
    );
    assert_eq!(
        m.value("fieldguard_refusals_total", &[("code", "forbidden")]),
        1.0
    );
    let version = a.proxy.runtime().decisions.engine.bundle.version.clone();
    assert_eq!(
        m.value("fieldguard_policy_set_info", &[("version", &version)]),
        1.0
    );
    assert_eq!(
        m.value("fieldguard_policy_loads_total", &[("result", "success")]),
        1.0
    );
    assert!(m.value("fieldguard_policy_last_load_success_timestamp_seconds", &[]) > 1.6e9);
    assert_eq!(m.value("fieldguard_audit_sink_up", &[]), 1.0);
    assert_eq!(m.value("fieldguard_audit_queue_capacity", &[]), 8192.0);

    a.drain().await;
    let m = a.scrape().await;
    assert_eq!(m.value("fieldguard_audit_records_written_total", &[]), 8.0);
    assert_eq!(m.value("fieldguard_audit_queue_depth", &[]), 0.0);
    assert_eq!(m.value("fieldguard_audit_write_failures_total", &[]), 0.0);
}

#[tokio::test]
async fn upstream_failures_are_counted_per_route() {
    // A port with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = start_audited_in_front_of(
        closed,
        AuditSettings::for_file(dir.path().join("audit.log")),
        |_| {},
        Vec::new(),
    )
    .await;
    let tok = token("customer", "c-1001", false, None);
    assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 502);
    let m = a.scrape().await;
    assert_eq!(
        m.value(
            "fieldguard_upstream_errors_total",
            &[("route", "/customers/{id}"), ("kind", "unavailable")]
        ),
        1.0
    );
    assert_eq!(
        m.value("fieldguard_requests_total", &[("status_class", "5xx")]),
        1.0
    );
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_policies() {
    let (a, _dir) = audited().await;
    let health = a.admin_get("/healthz").await;
    assert_eq!(
        (health.status.as_u16(), health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = a.admin_get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["audit_sink"], "ok");
    let p = a.admin_get("/policies").await.json();
    let rt = a.proxy.runtime();
    let bundle = &rt.decisions.engine.bundle;
    assert_eq!(p["version"], bundle.version.as_str());
    assert_eq!(p["schema_hash"], bundle.schema_hash.as_str());
    assert!(p["loaded_at"].as_str().unwrap().ends_with('Z'));
    let ids: Vec<&str> = p["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        bundle.info.keys().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        p["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f.as_str().unwrap().ends_with(".cedar"))
    );
    let metrics = a.admin_get("/metrics").await;
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(a.admin_get("/nope").await.status, 404);
}

/// `fieldguard_…` names in a text (PromQL in JSON or YAML).
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("fieldguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let (a, _dir) = audited().await;
    let families = a.proxy.metrics.families().to_vec();
    let exported = |name: &str| {
        families.iter().any(|f| f == name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| families.iter().any(|f| f == base))
            })
    };
    // What a scrape shows is what `families` says.
    let tok = token("support_agent", "agent-7", false, None);
    assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    for name in a.scrape().await.names() {
        assert!(families.contains(&name), "{name} missing from families()");
    }

    let dashboard_text =
        std::fs::read_to_string(repo_path("examples/monitoring/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let mut exprs = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 20);
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "query names no fieldguard metric: {e}");
        for n in names {
            assert!(
                exported(&n),
                "dashboard query uses {n}, which the proxy does not export"
            );
        }
    }
    let used = metric_names(&dashboard_text);
    for topic in [
        "fieldguard_requests_total",
        "fieldguard_policy_decisions_total",
        "fieldguard_field_outcomes_total",
        "fieldguard_request_duration_seconds_bucket",
        "fieldguard_upstream_duration_seconds_bucket",
        "fieldguard_policy_loads_total",
        "fieldguard_audit_sink_up",
        "fieldguard_audit_queue_depth",
    ] {
        assert!(used.iter().any(|u| u == topic), "dashboard lacks {topic}");
    }

    // The alerting rules (alerts.yaml, the PrometheusRule, is generated from
    // rules.yaml and checked equal in tests/alert_rules.rs).
    let alerts = std::fs::read_to_string(repo_path("examples/monitoring/rules.yaml")).unwrap();
    let names = metric_names(&alerts);
    for n in &names {
        assert!(
            exported(n),
            "alert rule uses {n}, which the proxy does not export"
        );
    }
    for needed in [
        "fieldguard_audit_sink_up",
        "fieldguard_policy_loads_total",
        "fieldguard_upstream_errors_total",
    ] {
        assert!(names.iter().any(|n| n == needed), "no alert on {needed}");
    }
    assert!(alerts.contains("decision=\"deny\""), "no denial-rate alert");
}

/// The README's list of metrics and docs/audit-and-metrics.md's table name
/// exactly the metric families the proxy registers (what a scrape shows is
/// among them), once each; the table's type is the one a scrape declares.
#[tokio::test]
async fn documents_list_exactly_the_exported_metrics() {
    let (mut a, _dir) = audited().await;
    let families: std::collections::BTreeSet<String> =
        a.proxy.metrics.families().iter().cloned().collect();
    assert_eq!(families.len(), a.proxy.metrics.families().len());
    let agent = token("support_agent", "agent-7", false, None);
    assert_eq!(a.h.get("/customers/c-1001", &agent).await.status, 200);
    assert_eq!(a.h.get("/customers/c-1001", "bad").await.status, 401);
    a.drain().await;
    let scrape = a.scrape().await;
    for name in scrape.names() {
        assert!(families.contains(&name), "{name} missing from families()");
    }
    let declared: std::collections::BTreeMap<&str, &str> = scrape
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();

    let check = |document: &str, listed: Vec<String>| {
        let set: std::collections::BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(set.len(), listed.len(), "{document} lists a metric twice");
        let missing: Vec<_> = families.difference(&set).collect();
        let unknown: Vec<_> = set.difference(&families).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "{document}: missing {missing:?}, not exported {unknown:?}"
        );
    };

    // README: "The metrics: `a`, `b`, … ." in "Audit trail and metrics".
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let (_, list) = readme
        .split_once("The metrics: ")
        .expect("README lists the metrics");
    let list = &list[..list.find(".\n").expect("the list ends a sentence")];
    let listed: Vec<String> = list
        .split(", ")
        .map(|m| m.trim().trim_matches('`').to_string())
        .collect();
    check("README.md's metric list", listed);

    // docs/audit-and-metrics.md: the table of "## Metrics".
    let doc = std::fs::read_to_string(repo_path("docs/audit-and-metrics.md")).unwrap();
    let (_, metrics) = doc.split_once("\n## Metrics\n").expect("a Metrics section");
    let mut listed = Vec::new();
    for row in metrics.lines().filter(|l| l.starts_with("| `fieldguard_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let kind = cells[2].split(' ').next().unwrap();
        if let Some(declared) = declared.get(name) {
            assert_eq!(kind, *declared, "docs/audit-and-metrics.md: type of {name}");
        }
        listed.push(name.to_string());
    }
    check("docs/audit-and-metrics.md's metrics table", listed);
}

/// `promtool check metrics` on a scrape after real traffic (the alerting
/// rules' promtool checks and unit tests are in tests/alert_rules.rs). CI
/// installs Debian's `prometheus` package and sets
/// FIELDGUARD_REQUIRE_PROMTOOL=1; elsewhere the check runs when `promtool`
/// is on PATH.
#[tokio::test]
async fn scrape_passes_promtool_check_metrics() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let (mut a, _dir) = audited().await;
    let agent = token("support_agent", "agent-7", false, None);
    assert_eq!(a.h.get("/customers", &agent).await.status, 200);
    assert_eq!(a.h.get("/customers/c-1001", "bad").await.status, 401);
    a.drain().await;
    let scrape = a.scrape().await;
    use std::io::Write;
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.0.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The verified-token cache is visible to operators: a token's first use is
/// a miss (verified in full, then cached), its reuse a hit.
#[tokio::test]
async fn jwt_cache_lookups_and_entries_are_exported() {
    let (a, _dir) = audited().await;
    let tok = token("support_agent", "agent-7", false, None);
    for _ in 0..3 {
        assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    }
    let other = token("customer", "c-1001", false, None);
    assert_eq!(a.h.get("/customers/c-1001", &other).await.status, 200);
    let m = a.scrape().await;
    let lookups = |result| m.value("fieldguard_jwt_cache_lookups_total", &[("result", result)]);
    assert_eq!(lookups("miss"), 2.0);
    assert_eq!(lookups("hit"), 2.0);
    assert_eq!(m.value("fieldguard_jwt_cache_entries", &[]), 2.0);
    // A second scrape adds nothing that did not happen.
    let again = a.scrape().await;
    assert_eq!(
        again.value("fieldguard_jwt_cache_lookups_total", &[("result", "hit")]),
        2.0
    );
}

/// The samples of `name` in a scrape, as (labels, value).
fn series(scrape: &str, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, labels) = head.split_once('{').unwrap_or((head, ""));
        if n != name {
            continue;
        }
        let labels = labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        out.push((labels, value.parse().unwrap()));
    }
    out
}

/// A fresh proxy's scrape already has the labelled counters whose labels
/// the configuration fixes, at 0, so dashboards and alerts see "0" rather
/// than "No data" before the first failure.
#[tokio::test]
async fn a_fresh_scrape_shows_known_label_sets_at_zero() {
    let (a, _dir) = audited().await;
    let m = a.scrape().await;
    let has_zero = |name: &str, want: &[(&str, &str)]| {
        let found = series(&m.0, name).into_iter().find(|(labels, _)| {
            want.len() == labels.len()
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        });
        match found {
            Some((_, value)) => assert_eq!(value, 0.0, "{name} {want:?}"),
            None => panic!("{name} {want:?} absent from a fresh scrape:\n{}", m.0),
        }
    };
    for kind in ["unavailable", "timeout", "error_status"] {
        has_zero(
            "fieldguard_upstream_errors_total",
            &[("route", "/customers/{id}"), ("kind", kind)],
        );
    }
    // Passthrough routes (the catalogue) are counted under "none".
    has_zero(
        "fieldguard_upstream_errors_total",
        &[("route", "none"), ("kind", "unavailable")],
    );
    for route in ["/customers", "/customers/{id}", "/orders/{id}"] {
        has_zero("fieldguard_records_hidden_total", &[("route", route)]);
    }
    // DELETE /customers/{id} inspects nothing, yet shares its template with
    // inspecting routes; a passthrough route gets no series of its own.
    assert!(
        series(&m.0, "fieldguard_records_hidden_total")
            .iter()
            .all(|(l, _)| l["route"] != "/catalog/products")
    );
    for reason in ["not_collected", "not_permitted"] {
        has_zero(
            "fieldguard_refused_write_fields_total",
            &[("route", "/customers/{id}"), ("reason", reason)],
        );
    }
    has_zero(
        "fieldguard_body_rejections_total",
        &[("direction", "response"), ("reason", "too_large")],
    );
    // Still a valid exposition with promtool's lint (checked in CI by
    // `scrape_passes_promtool_check_metrics`): only the values changed.
    assert_eq!(m.value("fieldguard_requests_total", &[]), 0.0);
}
