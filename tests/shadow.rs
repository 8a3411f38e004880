//! Shadow mode (global and per route), shadow policy files and a candidate
//! policy set: decisions are computed and audited, never enforced, and
//! every disagreement is counted.

mod common;

use common::audited::{Audited, records, start_audited_in_front_of};
use common::{repo_path, token};
use fieldguard::audit::AuditSettings;
use fieldguard::config::Config;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard_core::config::CandidateConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

async fn start(dir: &Path, modify: impl FnOnce(&mut Config)) -> Audited {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    let mut settings = AuditSettings::for_file(dir.join("audit.log"));
    settings.retry_interval = Duration::from_millis(20);
    start_audited_in_front_of(shop_addr, settings, modify, vec![shop_task]).await
}

fn copy_policies(to: &Path) -> PathBuf {
    let dir = to.join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(repo_path("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

async fn drained_records(a: &mut Audited, dir: &Path) -> HashMap<String, Value> {
    a.drain().await;
    records(&dir.join("audit.log"))
        .into_iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), r))
        .collect()
}

fn rid(r: &common::Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn global_shadow_relays_everything_and_audits_what_it_would_have_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = start(dir.path(), |c| c.shadow = true).await;
    let customer = token("customer", "c-1001", false, None);
    let agent = token("support_agent", "agent-7", false, None);

    let other = a.h.get("/customers/c-1002", &customer).await;
    assert_eq!(other.status, 200, "not enforced");
    assert_eq!(
        other.json(),
        a.h.upstream_get("/customers/c-1002").await.json()
    );
    let seen = a.h.get("/customers/c-1001", &agent).await;
    assert_eq!(
        seen.json(),
        a.h.upstream_get("/customers/c-1001").await.json(),
        "not redacted"
    );
    let anonymous =
        a.h.send(http::Method::GET, "/customers/c-1001", None, &[], None)
            .await;
    assert_eq!(anonymous.status, 200);

    let recs = drained_records(&mut a, dir.path()).await;
    let r = &recs[&rid(&other)];
    assert_eq!(r["decision"], "allow", "enforced: nothing");
    assert_eq!(r["shadow"]["kind"], "shadow");
    assert_eq!(r["shadow"]["would_deny"]["reason"], "forbidden");
    let r = &recs[&rid(&seen)];
    let redacted = r["shadow"]["would_redact"]["redacted"].as_array().unwrap();
    assert!(
        redacted
            .iter()
            .any(|f| f["field"] == "id_card_number" && f["outcome"] == "removed")
    );
    assert!(
        redacted
            .iter()
            .any(|f| f["field"] == "phone" && f["outcome"] == "masked")
    );
    assert!(
        r["response_body"].is_null(),
        "nothing was actually redacted"
    );
    let r = &recs[&rid(&anonymous)];
    assert_eq!(r["shadow"]["would_deny"]["reason"], "unauthenticated");
    // The other customer's record and the unidentified caller's request,
    // both on the route they asked for.
    let text = String::from_utf8(a.proxy.metrics.render()).unwrap();
    assert!(text.contains("fieldguard_shadow_events_total{action=\"customer:read\",event=\"would_deny\",kind=\"shadow\",route=\"/customers/{id}\"} 2"), "{text}");
}

#[tokio::test]
async fn route_shadow_only_relaxes_that_route() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), |c| {
        for r in c
            .routes
            .iter_mut()
            .filter(|r| r.path.value == "/customers/{id}" && r.method.value == "GET")
        {
            r.shadow = true;
        }
    })
    .await;
    let agent = token("support_agent", "agent-7", false, None);
    let record = a.h.get("/customers/c-1001", &agent).await.json();
    assert!(
        record["id_card_number"].is_string(),
        "shadow route: not redacted"
    );
    let orders = a.h.get("/customers/c-1001/orders", &agent).await.json();
    assert!(
        orders["orders"][0].get("payment").is_none(),
        "other routes still enforced"
    );
    let customer = token("customer", "c-1001", false, None);
    assert_eq!(
        a.h.get("/customers/c-1002/orders", &customer).await.status,
        403
    );
}

#[tokio::test]
async fn shadow_policy_files_are_audited_but_not_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let policies = copy_policies(dir.path());
    std::fs::write(
        policies.join("tighten.cedar"),
        r#"@id("tighten-no-names-for-support")
forbid (principal in Role::"support_agent", action == Action::"field:read", resource is Customer)
when { context.field.name == "name" };

@id("tighten-no-c-1002")
forbid (principal in Role::"support_agent", action == Action::"customer:read", resource == Customer::"c-1002");
"#,
    )
    .unwrap();
    let mut a = start(dir.path(), |c| {
        c.policies.directory = policies.clone();
        c.policies.shadow_files = vec!["tighten.cedar".into()];
    })
    .await;
    let agent = token("support_agent", "agent-7", false, None);
    let c1 = a.h.get("/customers/c-1001", &agent).await;
    assert_eq!(
        c1.json()["name"],
        "Wang Lei",
        "the shadow rule is not enforced"
    );
    let c2 = a.h.get("/customers/c-1002", &agent).await;
    assert_eq!(c2.status, 200);

    let recs = drained_records(&mut a, dir.path()).await;
    let s = &recs[&rid(&c1)]["shadow"];
    assert_eq!(s["kind"], "shadow_policies");
    let d = s["disagreements"].as_array().unwrap();
    assert!(
        d.iter().any(|x| x["subject"] == "field:Customer.name"
            && x["enforced"] == "full:1"
            && x["observed"] == "removed:1"),
        "{d:?}"
    );
    let s = &recs[&rid(&c2)]["shadow"];
    assert_eq!(
        s["would_deny"]["policies"],
        serde_json::json!(["tighten-no-c-1002"])
    );
    assert!(
        s["disagreements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["subject"] == "request"
                && x["enforced"] == "allow"
                && x["observed"] == "deny")
    );
    assert_ne!(s["observed_version"], recs[&rid(&c2)]["policy_version"]);
}

#[tokio::test]
async fn a_candidate_set_is_decided_beside_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let candidate = copy_policies(dir.path());
    let file = candidate.join("support_agent.cedar");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "when { context.mfa && [\"phone\", \"email\"]",
            "when { [\"phone\", \"email\"]",
            1,
        ),
    )
    .unwrap();
    let mut a = start(dir.path(), |c| {
        c.policies.candidate = Some(CandidateConfig {
            directory: candidate.clone(),
            schema: None,
        });
    })
    .await;
    let agent = token("support_agent", "agent-7", false, None);
    let list = a.h.get("/customers", &agent).await;
    let customers = list.json()["customers"].as_array().unwrap().clone();
    assert!(
        customers
            .iter()
            .all(|c| c["phone"].as_str().unwrap().contains('*')),
        "the active set is enforced"
    );
    // o-10011 is shipped by YTO Express: a partner of that carrier.
    let partner =
        common::token_with_claims("partner", "p-1", false, None, &[("carrier", "YTO Express")]);
    let same = a.h.get("/orders/o-10011", &partner).await;
    assert_eq!(same.status, 200);

    let recs = drained_records(&mut a, dir.path()).await;
    let s = &recs[&rid(&list)]["shadow"];
    assert_eq!(s["kind"], "candidate");
    let d = s["disagreements"].as_array().unwrap();
    assert!(
        d.iter().any(|x| x["subject"] == "field:Customer.phone"
            && x["enforced"] == "masked:60"
            && x["observed"] == "full:60"),
        "{d:?}"
    );
    assert!(d.iter().any(|x| x["subject"] == "field:Customer.email"));
    assert!(
        recs[&rid(&same)]["shadow"]["disagreements"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no disagreement, none reported"
    );
    let text = String::from_utf8(a.proxy.metrics.render()).unwrap();
    assert!(
        text.contains("event=\"disagreement\",kind=\"candidate\",route=\"/customers\"} 1"),
        "{text}"
    );
}

#[test]
fn shadow_files_and_a_candidate_together_are_refused() {
    let mut loaded = fieldguard::config::load(&common::demo_config_path()).unwrap();
    loaded.config.policies.shadow_files = vec!["partner.cedar".into()];
    loaded.config.policies.candidate = Some(CandidateConfig {
        directory: repo_path("policies"),
        schema: None,
    });
    let err = fieldguard::runtime::Runtime::build(loaded).unwrap_err();
    assert!(
        err.to_string()
            .contains("either `shadow_files` or `candidate`"),
        "{err}"
    );
    let mut loaded = fieldguard::config::load(&common::demo_config_path()).unwrap();
    loaded.config.policies.shadow_files = vec!["nope.cedar".into()];
    let err = fieldguard::runtime::Runtime::build(loaded).unwrap_err();
    assert!(err.to_string().contains("nope.cedar"), "{err}");
}

/// In global shadow mode a caller that cannot be identified is relayed,
/// yet its request is decided as the unidentified caller: the audit
/// record names the route and resource (so `fieldguard audit subject`
/// counts the read of that customer), the body is observed (`/observed`
/// counts what the catalogue lacks), and the refusal enforcement would
/// have made is still `unauthenticated`.
#[tokio::test]
async fn an_unidentified_callers_relayed_request_is_audited_and_observed_on_its_route() {
    use common::scripted::{Answer, Scripted};
    use std::sync::Arc;
    let upstream = Scripted::start(Arc::new(|seen| {
        let body = if seen.target.starts_with("/customers/c-1001") {
            serde_json::json!({"id": "c-1001", "name": "Wang Lei", "alt_email": "wl@mail.example.net"})
        } else {
            serde_json::json!({"customers": [{"id": "c-1002", "alt_email": "x@mail.example.net"}]})
        };
        Answer::json(&body)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = AuditSettings::for_file(dir.path().join("audit.log"));
    settings.retry_interval = Duration::from_millis(20);
    let mut a =
        start_audited_in_front_of(upstream.addr, settings, |c| c.shadow = true, vec![]).await;
    let bad = [("authorization", "Bearer not-a-token")];
    let one =
        a.h.send(http::Method::GET, "/customers/c-1001", None, &[], None)
            .await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(
        one.json()["alt_email"],
        "wl@mail.example.net",
        "relayed as it is"
    );
    let list =
        a.h.send(http::Method::GET, "/customers", None, &bad, None)
            .await;
    assert_eq!(list.status, 200, "{}", list.text());

    let observed = a.admin_get("/observed").await.json();
    let counted = |route: &str| {
        observed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["route"] == route && e["field"] == "alt_email")
    };
    assert!(counted("GET /customers/{id}"), "{observed}");
    assert!(counted("GET /customers"), "{observed}");

    let recs = drained_records(&mut a, dir.path()).await;
    let r = &recs[&rid(&one)];
    assert_eq!(r["route"], "/customers/{id}", "{r}");
    assert_eq!(r["resource"]["type"], "Customer", "{r}");
    assert_eq!(r["resource"]["id"], "c-1001", "{r}");
    assert_eq!(
        r["shadow"]["would_deny"]["reason"], "unauthenticated",
        "{r}"
    );
    let r = &recs[&rid(&list)];
    assert_eq!(r["route"], "/customers", "{r}");
    assert_eq!(
        r["shadow"]["would_deny"]["reason"], "unauthenticated",
        "{r}"
    );
}
