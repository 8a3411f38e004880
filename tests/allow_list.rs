//! The catalogue is an allow-list, in both directions, through the real
//! proxy: a response member the configuration does not name (in a record,
//! nested in one, or in the body around the records) is removed; a value of
//! another shape than the catalogue's is removed; a write that carries an
//! unnamed or misshapen value is refused before the upstream sees it. Each
//! member that is not named is counted and named in the audit record.

mod common;

use common::audited::{records, start_audited_in_front_of};
use common::scripted::{Answer, Scripted};
use common::{start, start_in_front_of, token};
use fieldguard::audit::AuditSettings;
use fieldguard_core::config::{MisshapenValues, UnknownFields};
use http::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// An upstream whose answers the test sets per path (as a legacy API whose
/// answers drift would), recording what it received.
struct Drifting {
    addr: SocketAddr,
    /// Answer bodies by path, as bytes (a body may repeat a key).
    answers: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    upstream: Scripted,
}

impl Drifting {
    async fn start() -> Self {
        let answers: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let script = answers.clone();
        let upstream = Scripted::start(Arc::new(move |seen| {
            let path = seen.target.split('?').next().unwrap_or_default();
            let mut answer = Answer::json(&json!({}));
            if let Some(body) = script.lock().unwrap().get(path) {
                answer.body = body.clone();
            }
            answer
        }))
        .await;
        Self {
            addr: upstream.addr,
            answers,
            upstream,
        }
    }

    fn answer(&self, path: &str, body: Value) {
        self.answer_raw(path, &body.to_string());
    }

    fn answer_raw(&self, path: &str, body: &str) {
        let body = body.as_bytes().to_vec();
        self.answers.lock().unwrap().insert(path.into(), body);
    }

    fn received(&self) -> usize {
        self.upstream.arrived()
    }
}

fn agent() -> String {
    token("support_agent", "agent-7", false, None)
}

fn dpo() -> String {
    token("data_protection_officer", "dpo-1", true, None)
}

/// The issue's example, against the demo shop itself: a registration may
/// not smuggle an ID card number in under a collected container, so the
/// agent can never read it back.
#[tokio::test]
async fn a_key_the_catalogue_does_not_name_cannot_be_registered_under_a_collected_container() {
    let h = start().await;
    let customer = token("customer", "c-1001", false, None);
    let r = h
        .send_json(
            Method::POST,
            "/customers",
            &customer,
            &json!({"name": "Li Na", "address": {"city": "X", "id_card_number": "110101199001010011"}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["fields"], json!(["address.id_card_number"]));
    // Nothing was created upstream.
    assert_eq!(h.upstream_get("/customers/c-1061").await.status, 404);
    // The same registration without the smuggled key goes through.
    let ok = h
        .send_json(
            Method::POST,
            "/customers",
            &customer,
            &json!({"name": "Li Na", "address": {"city": "X"}}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text());
}

#[tokio::test]
async fn uncatalogued_members_are_removed_at_every_depth_for_every_role() {
    let up = Drifting::start().await;
    up.answer(
        "/customers/c-1001",
        json!({
            "id": "c-1001", "name": "Wang Lei", "nickname": "wl",
            "address": {"city": "Nanjing", "id_card_number": "110101199001010011", "geo": {"lat": 1}},
            "consent": {"marketing": true, "source": "web"},
            "vip": {"tier": 3},
        }),
    );
    up.answer(
        "/customers",
        json!({
            "customers": [{"id": "c-1001", "name": "Wang Lei", "ssn": "123-45-6789"}],
            "total": 1,
            "next_page_token": "c-1002",
            "debug": {"sql": "select * from customers"},
        }),
    );
    up.answer(
        "/customers/c-1001/behavior",
        json!({
            "customer_id": "c-1001", "phone": "13900131001",
            "events": [{"id": "b-1", "customer_id": "c-1001", "type": "view", "ip": "10.0.0.1",
                        "marketing_consent": true}],
        }),
    );
    let h = start_in_front_of(up.addr, |_| {}, vec![]).await;
    for (who, tok) in [("agent", agent()), ("dpo", dpo())] {
        let one = h.get("/customers/c-1001", &tok).await;
        assert_eq!(one.status, 200, "{who}");
        let v = one.json();
        for gone in ["nickname", "vip"] {
            assert!(v.get(gone).is_none(), "{who}: `{gone}` survived: {v}");
        }
        assert!(v["address"].get("id_card_number").is_none(), "{who}: {v}");
        assert!(v["address"].get("geo").is_none(), "{who}: {v}");
        assert!(v["consent"].get("source").is_none(), "{who}: {v}");
        assert_eq!(v["name"], "Wang Lei", "{who}");

        let list = h.get("/customers", &tok).await.json();
        assert_eq!(common::keys(&list), ["customers", "total"], "{who}: {list}");
        assert!(list["customers"][0].get("ssn").is_none(), "{who}: {list}");
    }
    // The DPO may read behaviour: the wrapper keeps only its declared members.
    let b = h.get("/customers/c-1001/behavior", &dpo()).await.json();
    assert_eq!(common::keys(&b), ["customer_id", "events"], "{b}");
    assert!(b["events"][0].get("ip").is_none(), "{b}");
}

#[tokio::test]
async fn catalogued_values_of_another_shape_are_removed() {
    let up = Drifting::start().await;
    let h = start_in_front_of(up.addr, |_| {}, vec![]).await;
    // A container (`address`) as a string, a number, a list of strings, a
    // mixed list: never copied, even for a role that may read everything.
    for address in [
        json!("Jiangsu Nanjing Zhongshan Rd 1"),
        json!(210000),
        json!(["Jiangsu", "Nanjing"]),
        json!([{"city": "Nanjing"}, "Zhongshan Rd 1"]),
    ] {
        up.answer(
            "/customers/c-1001",
            json!({"id": "c-1001", "name": "Wang Lei", "address": address}),
        );
        for tok in [agent(), dpo()] {
            let v = h.get("/customers/c-1001", &tok).await.json();
            assert!(v.get("address").is_none(), "{address} survived: {v}");
            assert_eq!(v["name"], "Wang Lei");
        }
    }
    // A leaf (`phone`, a string: masked for an agent without MFA, in full
    // with MFA) sent as an object or a list: removed for every caller.
    for phone in [json!({"mobile": "13900131001"}), json!(["13900131001"])] {
        up.answer("/customers/c-1001", json!({"id": "c-1001", "phone": phone}));
        let mfa = token("support_agent", "agent-7", true, None);
        for tok in [agent(), mfa, dpo()] {
            let v = h.get("/customers/c-1001", &tok).await.json();
            assert!(v.get("phone").is_none(), "{phone} survived: {v}");
        }
    }
}

/// Every catalogued field names its JSON kind: a value of another kind is
/// removed wherever it sits (a single record, a list, a streamed list, a
/// wrapper member), for a caller who may read the field in full, and is
/// counted and audited as misshapen; values of the right kind (and
/// `null`) are untouched.
#[tokio::test]
async fn values_of_another_kind_are_removed_on_every_path_counted_and_audited() {
    let up = Drifting::start().await;
    // Wrong kinds for a string (gender), a boolean (consent.marketing), a
    // number (the wrapper's total), beside right ones.
    let customer = |n: u32| {
        json!({
            "id": format!("c-100{n}"), "name": "Wang Lei",
            "gender": {"code": "F", "id_card_number": "110101199001010011"},
            "email": null,
            "consent": {"marketing": "yes, phone 13900131001"},
            "address": {"city": ["Nanjing", "13900131001"]},
        })
    };
    up.answer("/customers/c-1001", customer(1));
    up.answer(
        "/customers",
        json!({"customers": (1..=9).map(customer).collect::<Vec<_>>(), "total": "13900131001"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_audited_in_front_of(
        up.addr,
        audit_settings(&dir),
        |c| c.limits.stream_responses_over_bytes = Some(256),
        vec![],
    )
    .await;
    let single = a.h.get("/customers/c-1001", &dpo()).await;
    assert_eq!(single.status, 200, "{}", single.text());
    let v = single.json();
    assert_eq!(
        v,
        json!({"id": "c-1001", "name": "Wang Lei", "email": null}),
        "{v}"
    );
    // The list is over 256 bytes: streamed record by record.
    let list = a.h.get("/customers", &dpo()).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let v = list.json();
    assert_eq!(
        common::keys(&v),
        ["customers"],
        "the wrong-kind total survived: {v}"
    );
    assert_eq!(v["customers"].as_array().unwrap().len(), 9);
    for c in v["customers"].as_array().unwrap() {
        assert_eq!(common::keys(c), ["email", "id", "name"], "{c}");
    }
    let text = list.text();
    assert!(
        !text.contains("13900131001") && !text.contains("110101"),
        "{text}"
    );

    let m = a.scrape().await;
    let count = |entity: &'static str, field: &'static str| {
        m.value(
            "fieldguard_misshapen_values_total",
            &[
                ("route", "/customers"),
                ("entity", entity),
                ("field", field),
            ],
        )
    };
    assert_eq!(count("Customer", "gender"), 9.0);
    assert_eq!(count("Customer", "consent.marketing"), 9.0);
    assert_eq!(count("Customer", "address.city"), 9.0);
    assert_eq!(count("(wrapper)", "$.total"), 1.0);
    a.drain().await;
    let recs = records(&dir.path().join("audit.log"));
    let listed = recs
        .iter()
        .rev()
        .find(|r| r["route"] == "/customers" && r["method"] == "GET")
        .expect("the list's audit record");
    assert_eq!(listed["response_streamed"], true, "{listed}");
    let names: Vec<String> = listed["response_body"]["misshapen"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{}:{}:{}",
                n["entity"].as_str().unwrap(),
                n["field"].as_str().unwrap(),
                n["count"]
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "Customer:address.city:9",
            "Customer:consent.marketing:9",
            "Customer:gender:9",
            "(wrapper):$.total:1"
        ]
    );
    let line = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(
        !line.contains("13900131001"),
        "a value reached the audit trail"
    );
}

/// An `array` or `object` field is one value, decided once: it holds only
/// what its `of` names. An order item carrying an ID number, a shipping
/// address with an extra key or a key twice, an item that is a list: the
/// whole value goes, for a role that may read it in full; the items as
/// the catalogue describes them are shown.
#[tokio::test]
async fn a_list_or_object_field_holds_only_what_its_of_names() {
    let up = Drifting::start().await;
    let h = start_in_front_of(up.addr, |_| {}, vec![]).await;
    let fulfillment = token("fulfillment", "ops-1", false, None);
    let order = |items: Value, address: Value| {
        json!({"id": "o-10011", "customer_id": "c-1001", "status": "paid",
               "items": items, "shipping": {"recipient": "Wang Lei", "address": address}})
    };
    let good_items = json!([{"sku": "A-1", "name": "Kettle", "qty": 1, "price": 12.5}]);
    let good_address = json!({"province": "Jiangsu", "city": "Nanjing", "street": "Zhongshan Rd 1", "postcode": "210000"});
    up.answer(
        "/orders/o-10011",
        order(good_items.clone(), good_address.clone()),
    );
    let v = h.get("/orders/o-10011", &fulfillment).await.json();
    assert_eq!(v["items"], good_items, "{v}");
    assert_eq!(v["shipping"]["address"], good_address, "{v}");
    for (items, address) in [
        (
            json!([{"sku": "A-1", "buyer_id_card": "110101199001010011"}]),
            good_address.clone(),
        ),
        (
            json!([{"sku": {"phone": "13900131001"}}]),
            good_address.clone(),
        ),
        (json!([["A-1", "13900131001"]]), good_address.clone()),
        (json!(["13900131001"]), good_address.clone()),
        (
            good_items.clone(),
            json!({"city": "Nanjing", "phone": "13900131001"}),
        ),
        (
            good_items.clone(),
            json!({"city": "Nanjing", "street": {"id": "110101199001010011"}}),
        ),
    ] {
        up.answer("/orders/o-10011", order(items.clone(), address.clone()));
        let r = h.get("/orders/o-10011", &fulfillment).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        assert!(
            !text.contains("13900131001") && !text.contains("110101"),
            "{items} {address} leaked: {text}"
        );
        assert_eq!(r.json()["status"], "paid", "the rest of the record stays");
    }
    // A repeated key: parsed, the last copy would hide the first.
    let raw = r#"{"id":"o-10011","status":"paid","shipping":{"address":{"city":"Nanjing","city":{"phone":"13900131001"}}}}"#;
    up.answer_raw("/orders/o-10011", raw);
    let r = h.get("/orders/o-10011", &fulfillment).await;
    assert!(!r.text().contains("13900131001"), "{}", r.text());
}

/// `response.misshapen: refuse`: a value of another kind refuses the whole
/// answer (502 for a buffered one, an aborted stream for a streamed one);
/// the same body without it passes.
#[tokio::test]
async fn a_route_that_refuses_misshapen_values_refuses_the_answer() {
    let up = Drifting::start().await;
    let h = start_in_front_of(
        up.addr,
        |c| {
            for r in c
                .routes
                .iter_mut()
                .filter(|r| r.path.value.starts_with("/customers"))
            {
                if let Some(resp) = r.response.as_mut() {
                    resp.misshapen = MisshapenValues::Refuse;
                }
            }
        },
        vec![],
    )
    .await;
    up.answer("/customers/c-1001", json!({"id": "c-1001", "gender": 1}));
    let r = h.get("/customers/c-1001", &dpo()).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("\"gender\":1"), "{}", r.text());
    assert!(r.json()["request_id"].is_string(), "{}", r.text());
    up.answer("/customers/c-1001", json!({"id": "c-1001", "gender": "F"}));
    let r = h.get("/customers/c-1001", &dpo()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["gender"], "F");
}

#[tokio::test]
async fn writes_carry_only_named_values_of_the_named_shape() {
    let up = Drifting::start().await;
    up.answer("/customers/c-1001", json!({"id": "c-1001"}));
    let h = start_in_front_of(up.addr, |_| {}, vec![]).await;
    let customer = token("customer", "c-1001", false, None);
    let cases = [
        (
            json!({"address": {"city": "X", "id_card_number": "110101199001010011"}}),
            vec!["address.id_card_number"],
        ),
        (json!({"phone": {"number": "13900131001"}}), vec!["phone"]),
        (json!({"phone": ["13900131001"]}), vec!["phone"]),
        (json!({"address": "Nanjing"}), vec!["address"]),
        (json!({"address": ["Nanjing"]}), vec!["address"]),
        (json!({"consent": true}), vec!["consent"]),
        (json!({"nickname": "x", "email": "a@b.c"}), vec!["nickname"]),
        (json!({"address": {"geo": {"lat": 1}}}), vec!["address.geo"]),
    ];
    for (body, fields) in cases {
        let r = h
            .send_json(Method::PATCH, "/customers/c-1001", &customer, &body)
            .await;
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        assert_eq!(r.json()["error"], "forbidden_fields");
        assert_eq!(r.json()["fields"], json!(fields), "{body}");
    }
    assert_eq!(up.received(), 0, "the upstream saw a refused write");
    let ok = h
        .send_json(
            Method::PATCH,
            "/customers/c-1001",
            &customer,
            &json!({"phone": "13900131001", "address": {"city": "X"}, "consent": {"marketing": false}}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(up.received(), 1);
}

fn audit_settings(dir: &tempfile::TempDir) -> AuditSettings {
    let mut s = AuditSettings::for_file(dir.path().join("audit.log"));
    s.retry_interval = std::time::Duration::from_millis(20);
    s
}

#[tokio::test]
async fn unnamed_members_are_counted_and_named_in_the_audit_record() {
    let up = Drifting::start().await;
    up.answer(
        "/customers",
        json!({
            "customers": [
                {"id": "c-1001", "nickname": "a", "address": {"city": "X", "geo": 1}},
                {"id": "c-1002", "nickname": "b", "address": "flat"},
            ],
            "total": 2,
            "13900131001": true,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_audited_in_front_of(up.addr, audit_settings(&dir), |_| {}, vec![]).await;
    let r = a.h.get("/customers", &agent()).await;
    assert_eq!(r.status, 200);
    let m = a.scrape().await;
    let count = |field: &'static str, entity: &'static str| {
        m.value(
            "fieldguard_uncatalogued_fields_total",
            &[
                ("route", "/customers"),
                ("entity", entity),
                ("field", field),
            ],
        )
    };
    assert_eq!(count("nickname", "Customer"), 2.0);
    assert_eq!(count("address.geo", "Customer"), 1.0);
    // A key that does not look like a name is not written out.
    assert_eq!(count("$.?", "(wrapper)"), 1.0);
    assert_eq!(
        m.value(
            "fieldguard_misshapen_values_total",
            &[
                ("route", "/customers"),
                ("entity", "Customer"),
                ("field", "address")
            ],
        ),
        1.0
    );
    a.drain().await;
    let recs = records(&dir.path().join("audit.log"));
    let body = &recs.last().unwrap()["response_body"];
    assert_eq!(body["uncatalogued"]["fate"], "removed");
    assert_eq!(body["uncatalogued"]["count"], 4);
    let names: Vec<String> = body["uncatalogued"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}:{}:{}", n["entity"], n["field"], n["count"]))
        .collect();
    assert_eq!(
        names,
        [
            r#""Customer":"address.geo":1"#,
            r#""Customer":"nickname":2"#,
            r#""(wrapper)":"$.?":1"#
        ]
    );
    assert_eq!(body["misshapen"]["names"][0]["field"], "address");
    // Names, never values.
    let line = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(
        !line.contains("13900131001") && !line.contains("flat"),
        "{line}"
    );
}

#[tokio::test]
async fn a_route_in_pass_mode_relays_unnamed_members_but_still_counts_them() {
    let up = Drifting::start().await;
    up.answer(
        "/customers",
        json!({"customers": [{"id": "c-1001", "nickname": "a", "id_card_number": "110101199001010011"}], "cursor": "x"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_audited_in_front_of(
        up.addr,
        audit_settings(&dir),
        |c| {
            let route = c
                .routes
                .iter_mut()
                .find(|r| r.path.value == "/customers" && r.method.value == "GET")
                .unwrap();
            route.unknown_fields = UnknownFields::Pass;
        },
        vec![],
    )
    .await;
    let v = a.h.get("/customers", &agent()).await.json();
    // Unnamed members pass; catalogued ones are still decided.
    assert_eq!(v["cursor"], "x");
    assert_eq!(v["customers"][0]["nickname"], "a");
    assert!(v["customers"][0].get("id_card_number").is_none(), "{v}");
    let m = a.scrape().await;
    assert_eq!(
        m.value(
            "fieldguard_uncatalogued_fields_total",
            &[
                ("route", "/customers"),
                ("entity", "(wrapper)"),
                ("field", "$.cursor")
            ],
        ),
        1.0
    );
    let policies = a.admin_get("/policies").await.json();
    let route = policies["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/customers" && r["method"] == "GET")
        .cloned()
        .unwrap();
    assert_eq!(route["unknown_fields"], "pass");
    a.drain().await;
    let recs = records(&dir.path().join("audit.log"));
    assert_eq!(
        recs.last().unwrap()["response_body"]["uncatalogued"]["fate"],
        "passed"
    );
}
