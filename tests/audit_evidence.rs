//! The audit trail as evidence (CDM-4.2.3 every access, change and
//! deletion traceable; CDM-1.2.5 every redaction with its reason), through
//! the real proxy in front of the real shop: list reads name the records
//! they disclosed, allowed writes the fields they wrote, every masked or
//! removed field the policy that decided it, and `fieldguard audit subject`
//! answers "who read, changed or deleted customer c-1001's data".

mod common;

use common::audited::{records, start_audited};
use common::token;
use fieldguard::audit::AuditSettings;
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn request_id(r: &common::Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_string()
}

fn record_of<'a>(recs: &'a [Value], reply: &common::Reply) -> &'a Value {
    let id = request_id(reply);
    recs.iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no record for {id}"))
}

/// `response_body.redacted` as (entity.field, outcome) → policies.
fn deciders(rec: &Value) -> Vec<(String, String, Value)> {
    rec["response_body"]["redacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                format!(
                    "{}.{}",
                    x["entity"].as_str().unwrap(),
                    x["field"].as_str().unwrap()
                ),
                x["outcome"].as_str().unwrap().to_string(),
                x["policies"].clone(),
            )
        })
        .collect()
}

fn decided(rec: &Value, field: &str, outcome: &str) -> Value {
    deciders(rec)
        .into_iter()
        .find(|(f, o, _)| f == field && o == outcome)
        .unwrap_or_else(|| panic!("{field} {outcome} not in {rec}"))
        .2
}

#[tokio::test]
async fn list_reads_name_the_records_they_disclosed_compactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut a = start_audited(AuditSettings::for_file(file.clone())).await;
    let agent = token("support_agent", "agent-7", false, None);
    let analyst = token("marketing_analyst", "analyst-2", false, Some("marketing"));
    let page = a.h.get("/customers?limit=10&offset=20", &agent).await;
    assert_eq!(page.status, 200);
    let orders = a.h.get("/customers/c-1002/orders", &agent).await;
    assert_eq!(orders.status, 200);
    let listing = a.h.get("/customers", &analyst).await;
    assert_eq!(listing.status, 200);
    let shown = listing.json()["customers"].as_array().unwrap().len();
    let upstream = a.h.upstream_get("/customers").await.json();
    let consenting: Vec<String> = upstream["customers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["consent"]["marketing"] == true)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    a.drain().await;
    let recs = records(&file);

    // Ten consecutive customers: one run, two ids.
    assert_eq!(
        record_of(&recs, &page)["response_body"]["disclosed"],
        json!([{"count": 10, "entity": "Customer", "ids": [["c-1021", "c-1030"]]}])
    );
    // Orders name their ids and the customer they are about.
    let d = &record_of(&recs, &orders)["response_body"]["disclosed"][0];
    assert_eq!(d["entity"], "Order");
    assert_eq!(d["subjects"], json!({"ids": ["c-1002"]}));
    assert_eq!(d["ids"][0][0], "o-10021");
    // The analyst saw pseudonyms; the audit trail names who they were,
    // and only those (the customers without consent were not disclosed).
    let d = &record_of(&recs, &listing)["response_body"]["disclosed"][0];
    assert_eq!(d["count"].as_u64(), Some(shown as u64));
    assert_eq!(shown, consenting.len());
    let named: Vec<String> = d["ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| match run {
            Value::String(s) => vec![s.clone()],
            Value::Array(ends) => {
                let n = |v: &Value| v.as_str().unwrap()[2..].parse::<u32>().unwrap();
                (n(&ends[0])..=n(&ends[1]))
                    .map(|i| format!("c-{i}"))
                    .collect()
            }
            _ => panic!("{run}"),
        })
        .collect();
    assert_eq!(named, consenting);
}

#[tokio::test]
async fn writes_name_their_fields_and_redactions_their_policies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut a = start_audited(AuditSettings::for_file(file.clone())).await;
    let customer = token("customer", "c-1001", false, None);
    let agent = token("support_agent", "agent-7", false, None);
    let write =
        a.h.send_json(
            Method::PATCH,
            "/customers/c-1001",
            &customer,
            &json!({"phone": "+86 139 0000 1234", "consent": {"marketing": false}}),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.text());
    let read = a.h.get("/customers/c-1001", &agent).await;
    let own_order = a.h.get("/orders/o-10011", &customer).await;
    assert_eq!(own_order.status, 200);
    a.drain().await;
    let recs = records(&file);

    let w = record_of(&recs, &write);
    assert_eq!(w["written"], json!(["phone", "consent.marketing"]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("0000 1234"), "names, never values");
    assert!(record_of(&recs, &read).get("written").is_none());

    let r = record_of(&recs, &read);
    assert_eq!(
        decided(r, "Customer.phone", "masked"),
        json!(["support-contact-masked"])
    );
    assert_eq!(
        decided(r, "Customer.id_card_number", "removed"),
        json!(["baseline-level-4-needs-mfa"])
    );
    // No policy allows it at all: Cedar's default deny, an empty list.
    assert_eq!(decided(r, "Customer.birth_date", "removed"), json!([]));
    let o = record_of(&recs, &own_order);
    assert_eq!(
        decided(o, "Order.payment.card_number", "masked"),
        json!([
            "baseline-card-number-never-in-full",
            "customer-own-fields-masked"
        ])
    );
}

fn fieldguard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .output()
        .expect("run fieldguard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn audit_subject_names_who_read_changed_and_deleted_a_customers_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut a = start_audited(AuditSettings::for_file(file.clone())).await;
    let agent = token("support_agent", "agent-7", false, None);
    let other_agent = token("support_agent", "agent-8", false, None);
    let customer = token("customer", "c-1001", false, None);
    let stranger = token("customer", "c-1002", false, None);
    let fulfillment = token("fulfillment", "warehouse-3", false, None);
    let steps = [
        a.h.get("/customers/c-1001", &agent).await.status,
        // A page of the list that holds c-1001 (and one that does not).
        a.h.get("/customers?limit=5", &other_agent).await.status,
        a.h.get("/customers?limit=5&offset=5", &other_agent)
            .await
            .status,
        // Its orders, fetched by id: the record names whom it is about.
        a.h.get("/orders/o-10011", &fulfillment).await.status,
        a.h.get("/customers/c-1001", &stranger).await.status,
        a.h.send_json(
            Method::PATCH,
            "/customers/c-1001",
            &customer,
            &json!({"email": "new@example.org"}),
        )
        .await
        .status,
        a.h.get("/customers/c-1002", &agent).await.status,
        a.h.send(
            Method::DELETE,
            "/customers/c-1001",
            Some(&customer),
            &[],
            None,
        )
        .await
        .status,
    ];
    let steps: Vec<u16> = steps.iter().map(|s| s.as_u16()).collect();
    assert_eq!(steps, [200, 200, 200, 200, 403, 200, 200, 204]);
    a.drain().await;
    let path = file.to_str().unwrap();

    let (ok, out, err) = fieldguard(&["audit", "subject", "c-1001", path]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6 + 1, "six requests and a summary:\n{out}");
    assert!(lines[0].contains("read") && lines[0].contains("agent-7 [support_agent]"));
    assert!(
        lines[0].contains("GET /customers/{id} -> 200 allowed"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("agent-8") && lines[1].contains("shown: Customer"));
    assert!(lines[2].contains("warehouse-3") && lines[2].contains("shown: Order"));
    assert!(lines[3].contains("c-1002 [customer]") && lines[3].contains("403 forbidden"));
    assert!(lines[4].contains("change") && lines[4].contains("wrote email"));
    assert!(lines[5].contains("delete") && lines[5].contains("-> 204 allowed"));
    assert!(
        lines[6].starts_with("c-1001: 3 reads, 1 changes, 1 deletions allowed, 1 refused; chain ok: 8 records verified"),
        "{}",
        lines[6]
    );

    let (ok, out, _) = fieldguard(&["audit", "subject", "c-1001", path, "--format", "json"]);
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    let first = &report["events"][0];
    assert_eq!(first["principal"], "agent-7");
    assert_eq!(first["access"], "read");
    assert_eq!(first["matched"], "resource");
    assert_eq!(first["route"], "/customers/{id}");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    // A tampered log is not reported on: its chain is checked first. (Line
    // 1 is the chain's genesis, line 2 the definition the agent's read
    // refers to; the read is line 3.)
    tamper(&file);
    let (ok, out, err) = fieldguard(&["audit", "subject", "c-1001", path]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("audit chain broken at") && err.contains(":3:"),
        "{err}"
    );
}

/// Edits the first record (the agent's read now claims another principal).
fn tamper(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let edited = text.replacen("\"agent-7\"", "\"agent-9\"", 1);
    assert_ne!(text, edited);
    std::fs::write(file, edited).unwrap();
}
