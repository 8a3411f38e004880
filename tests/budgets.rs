//! Bulk-read budgets (CDM-1.2.3) through the real proxy in front of the
//! real demo shop, with the audit trail and metrics attached: a refusing
//! budget answers 429 naming the budget in enforce mode and only flags in
//! shadow mode, an alerting budget serves and flags, windows slide (on a
//! clock the test moves, no sleeping), and principals count apart.

mod common;

use common::audited::{Audited, records, start_audited, start_audited_with_clock};
use common::token;
use fieldguard::audit::AuditSettings;
use fieldguard::budget::{BudgetMode, BudgetsConfig};
use fieldguard::config::Config;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Support agents: 100 records a minute refused, 50 a minute flagged.
fn small_budgets(mode: &str) -> impl FnOnce(&mut Config) {
    let yaml = format!(
        "
mode: {mode}
roles:
  support_agent:
    limits:
      - {{ id: agent-records-minute, count: records, window_seconds: 60, limit: 100, on_exceed: refuse }}
      - {{ id: agent-records-alert, count: records, window_seconds: 60, limit: 50, on_exceed: alert }}
"
    );
    move |c: &mut Config| {
        c.budgets = serde_saphyr::from_str::<BudgetsConfig>(&yaml).unwrap();
    }
}

struct Setup {
    a: Audited,
    now: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

async fn setup(modify: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let now = Arc::new(AtomicU64::new(0));
    let clock = now.clone();
    let a = start_audited_with_clock(
        AuditSettings::for_file(file.clone()),
        modify,
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
    .await;
    Setup {
        a,
        now,
        _dir: dir,
        file,
    }
}

fn budget_flags(rec: &Value) -> Vec<(String, String)> {
    rec["budget"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .map(|f| {
                    (
                        f["budget"].as_str().unwrap().to_string(),
                        f["action"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_refusing_budget_answers_429_naming_the_budget_in_enforce_mode() {
    let mut s = setup(small_budgets("enforce")).await;
    let agent = token("support_agent", "agent-7", false, None);
    // 60 records: within both budgets.
    let first = s.a.h.get("/customers", &agent).await;
    assert_eq!(first.status, 200);
    // 60 more would make 120 > 100: refused whole, nothing disclosed.
    let second = s.a.h.get("/customers", &agent).await;
    assert_eq!(second.status, 429, "{}", second.text());
    let body = second.json();
    assert_eq!(body["error"], "budget_exceeded");
    assert_eq!(body["budget"], "agent-records-minute");
    assert!(body["request_id"].is_string());
    assert!(body.get("customers").is_none());
    let retry: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // A single record still fits (60 + 1 <= 100) and is flagged by the
    // alerting budget (61 > 50).
    let one = s.a.h.get("/customers/c-1001", &agent).await;
    assert_eq!(one.status, 200);
    // Another agent has budgets of its own.
    let other = token("support_agent", "agent-8", false, None);
    assert_eq!(s.a.h.get("/customers", &other).await.status, 200);
    // A minute later the window has slid past the first list.
    s.now.store(61_000, Ordering::SeqCst);
    assert_eq!(s.a.h.get("/customers", &agent).await.status, 200);

    let scrape = s.a.scrape().await;
    let exceeded = |action: &str| {
        scrape.value(
            "fieldguard_budget_exceeded_total",
            &[("budget", "agent-records-minute"), ("action", action)],
        )
    };
    assert_eq!(exceeded("refuse"), 1.0);
    assert_eq!(exceeded("would_refuse"), 0.0);
    assert!(
        scrape.value(
            "fieldguard_budget_exceeded_total",
            &[("budget", "agent-records-alert"), ("action", "alert")]
        ) >= 1.0
    );
    assert_eq!(
        scrape.value(
            "fieldguard_budget_disclosed_total",
            &[("budget", "agent-records-minute")]
        ),
        60.0 + 1.0 + 60.0 + 60.0
    );
    assert!(!scrape.0.contains("agent-7"), "no principal in any label");

    s.a.drain().await;
    let recs = records(&s.file);
    let refused = recs.iter().find(|r| r["status"] == 429).unwrap();
    assert_eq!(refused["refusal"], "budget_exceeded");
    assert!(refused["response_body"].is_null(), "nothing was disclosed");
    let flag = refused["budget"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["budget"] == "agent-records-minute")
        .unwrap();
    assert_eq!(flag["action"], "refuse");
    assert_eq!(flag["used"], 60);
    assert_eq!(flag["request"], 60);
    assert_eq!(flag["limit"], 100);
    assert_eq!(flag["window_seconds"], 60);
    assert_eq!(flag["scope"], "principal");
    assert_eq!(refused["principal"]["id"], "agent-7");
    let single = recs
        .iter()
        .find(|r| r["route"] == "/customers/{id}")
        .unwrap();
    assert_eq!(
        budget_flags(single),
        [("agent-records-alert".to_string(), "alert".to_string())]
    );
}

#[tokio::test]
async fn in_shadow_mode_the_same_budget_only_flags() {
    let mut s = setup(small_budgets("shadow")).await;
    let agent = token("support_agent", "agent-7", false, None);
    for _ in 0..3 {
        let r = s.a.h.get("/customers", &agent).await;
        assert_eq!(r.status, 200, "shadow mode never refuses");
        assert_eq!(r.json()["customers"].as_array().unwrap().len(), 60);
    }
    let scrape = s.a.scrape().await;
    let exceeded = |action: &str| {
        scrape.value(
            "fieldguard_budget_exceeded_total",
            &[("budget", "agent-records-minute"), ("action", action)],
        )
    };
    assert_eq!(exceeded("refuse"), 0.0);
    assert_eq!(exceeded("would_refuse"), 2.0);
    s.a.drain().await;
    let recs = records(&s.file);
    let flagged: Vec<Vec<(String, String)>> = recs.iter().map(budget_flags).collect();
    // 60 records: over the alerting 50 at once, within the refusing 100.
    assert_eq!(flagged[0], [("agent-records-alert".into(), "alert".into())]);
    for f in &flagged[1..] {
        assert!(
            f.contains(&("agent-records-minute".into(), "would_refuse".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("agent-records-alert".into(), "alert".into())),
            "{f:?}"
        );
    }
    let _ = s.now;
}

/// The reference deployment: a support agent may read a few hundred
/// customers a day, and is flagged past a hundred an hour.
#[tokio::test]
async fn the_reference_budgets_stop_a_support_agent_reading_customers_in_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut a = start_audited(AuditSettings::for_file(file.clone())).await;
    assert_eq!(
        a.proxy.runtime().config.config.budgets.mode,
        BudgetMode::Enforce
    );
    let agent = token("support_agent", "agent-7", false, None);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(a.h.get("/customers", &agent).await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429],
        "300 records a day"
    );
    a.drain().await;
    let recs = records(&file);
    assert_eq!(budget_flags(&recs[0]), []);
    assert!(budget_flags(&recs[1]).contains(&("support-records-hour".into(), "alert".into())));
    assert!(budget_flags(&recs[5]).contains(&("support-records-day".into(), "refuse".into())));
}
