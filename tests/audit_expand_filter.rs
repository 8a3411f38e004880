//! `fieldguard audit expand` with filters (issue #24 item 6: the
//! runbook's first step for a budget alert): the real demo serves a
//! support agent who takes a budget over, a customer who is refused, and
//! reads of two routes; the filters pick exactly those records from its
//! audit log, in full.

mod common;

use common::audited::harness_for;
use common::demo_process::DemoProcess;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `audit expand ARGS FILE`: (success, records printed, stderr).
fn expand(file: &Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["audit", "expand"])
        .args(args)
        .arg(file)
        .output()
        .expect("the binary runs");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.success(),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn picked(file: &Path, args: &[&str]) -> Vec<Value> {
    let (ok, records, stderr) = expand(file, args);
    assert!(ok, "expand {args:?}: {stderr}");
    records
}

#[tokio::test]
async fn expand_prints_only_the_records_each_filter_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let demo = DemoProcess::start(&file);
    let h = harness_for(demo.proxy.parse().unwrap());
    let agent = &demo.tokens["TOKEN_SUPPORT_AGENT"];
    let customer = &demo.tokens["TOKEN_CUSTOMER"];
    // 60 records twice: the second listing takes the demo's
    // `support-records-hour` (100 records, alert) over its limit.
    for _ in 0..2 {
        assert_eq!(h.get("/customers?limit=100", agent).await.status, 200);
    }
    assert_eq!(h.get("/customers/c-1001", agent).await.status, 200);
    assert_eq!(h.get("/customers/c-1002", customer).await.status, 403);
    demo.stop();

    let all = picked(&file, &[]);
    assert!(all.len() >= 6, "genesis, 4 requests, seal: {}", all.len());

    // The second listing, and the read after it (the window still holds
    // more than the limit).
    let over = picked(&file, &["--budget", "support-records-hour"]);
    assert_eq!(over.len(), 2, "{over:#?}");
    assert_eq!(over[1]["route"], "/customers/{id}");
    let rec = &over[0];
    assert_eq!(rec["principal"]["id"], "agent-7");
    assert_eq!(rec["route"], "/customers");
    assert_eq!(rec["budget"][0]["budget"], "support-records-hour");
    assert_eq!(rec["budget"][0]["action"], "alert");
    assert!(
        rec["response_body"]["disclosed"].is_array(),
        "in full, with what it disclosed: {rec}"
    );
    assert!(picked(&file, &["--budget", "support-records-day"]).is_empty());

    assert_eq!(picked(&file, &["--principal", "agent-7"]).len(), 3);
    assert_eq!(picked(&file, &["--route", "GET /customers/{id}"]).len(), 2);
    assert_eq!(picked(&file, &["--route", "/customers/{id}"]).len(), 2);
    assert_eq!(picked(&file, &["--route", "GET /customers"]).len(), 2);
    let denied = picked(&file, &["--decision", "deny"]);
    assert_eq!(denied.len(), 1);
    // As `audit subject` spells it.
    assert_eq!(picked(&file, &["--decision", "denied"]), denied);
    assert_eq!(denied[0]["principal"]["id"], "c-1001");
    assert_eq!(denied[0]["resource"]["id"], "c-1002");
    // Together: all of them; repeated: any of the values.
    assert!(picked(&file, &["--principal", "c-1001", "--decision", "allow"]).is_empty());
    let either = ["--principal", "c-1001", "--principal", "agent-7"];
    assert_eq!(picked(&file, &either).len(), 4);

    // A value no record can have is an error, not an empty answer.
    let (ok, records, stderr) = expand(&file, &["--decision", "refused"]);
    assert!(!ok && records.is_empty());
    assert!(
        stderr.contains("expected one of allow, deny, passthrough"),
        "{stderr}"
    );
}
