//! Every cell of the reference role table (README, issue "The enforcement
//! proxy"), checked through the real proxy in front of the real demo shop:
//! with the reference configuration, and with the configuration and schema
//! `fieldguard onboard openapi` drafts from the demo shop's OpenAPI
//! document (examples/onboarding/demo-shop.openapi.yaml) once the
//! reference policies are added (tests/common/drafted.rs).

mod common;

use common::{Harness, keys, leaf_paths, start, token, token_with_claims};
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn is_pseudonym(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn masked_to_last4(masked: &Value, raw: &Value) -> bool {
    let (m, r) = (masked.as_str().unwrap(), raw.as_str().unwrap());
    m.len() == r.len()
        && m.ends_with(&r[r.len() - 4..])
        && m[..m.len() - 4].chars().all(|c| c == '*')
}

async fn upstream_json(h: &Harness, path: &str) -> Value {
    h.upstream_get(path).await.json()
}

async fn assert_status(h: &Harness, tok: &str, paths: &[&str], status: StatusCode) {
    for p in paths {
        let r = h.get(p, tok).await;
        assert_eq!(r.status, status, "GET {p}: {}", r.text());
        if status == StatusCode::FORBIDDEN {
            let body = r.json();
            assert_eq!(body["error"], "forbidden");
            assert!(body["request_id"].is_string());
            // The error names no policy internals.
            assert_eq!(keys(&body), vec!["error", "message", "request_id"]);
        }
    }
}

async fn customer_sees_only_their_own_data_in_full(h: Harness) {
    let tok = token("customer", "c-1001", false, None);

    let own = h.get("/customers/c-1001", &tok).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json(), upstream_json(&h, "/customers/c-1001").await);

    let behavior = h.get("/customers/c-1001/behavior", &tok).await;
    assert_eq!(
        behavior.json(),
        upstream_json(&h, "/customers/c-1001/behavior").await
    );
    let tickets = h.get("/customers/c-1001/tickets", &tok).await;
    assert_eq!(
        tickets.json(),
        upstream_json(&h, "/customers/c-1001/tickets").await
    );

    let orders = h.get("/customers/c-1001/orders", &tok).await.json();
    let raw_orders = upstream_json(&h, "/customers/c-1001/orders").await;
    let (list, raw_list) = (
        orders["orders"].as_array().unwrap(),
        raw_orders["orders"].as_array().unwrap(),
    );
    assert!(!list.is_empty());
    assert_eq!(list.len(), raw_list.len());
    for (o, raw) in list.iter().zip(raw_list) {
        assert!(masked_to_last4(
            &o["payment"]["card_number"],
            &raw["payment"]["card_number"]
        ));
        let mut unmasked = o.clone();
        unmasked["payment"]["card_number"] = raw["payment"]["card_number"].clone();
        assert_eq!(&unmasked, raw, "everything but the card number in full");
    }
    // Their own order by id, in full but for the card.
    let own_order = raw_list[0]["id"].as_str().unwrap();
    let r = h.get(&format!("/orders/{own_order}"), &tok).await;
    assert_eq!(r.status, 200);
    assert!(masked_to_last4(
        &r.json()["payment"]["card_number"],
        &raw_list[0]["payment"]["card_number"]
    ));

    // Anyone else's: 403.
    let other_orders = upstream_json(&h, "/customers/c-1002/orders").await;
    let other_order = format!(
        "/orders/{}",
        other_orders["orders"][0]["id"].as_str().unwrap()
    );
    assert_status(
        &h,
        &tok,
        &[
            "/customers",
            "/customers/c-1002",
            "/customers/c-1002/orders",
            "/customers/c-1002/behavior",
            "/customers/c-1002/tickets",
            &other_order,
        ],
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// CDM-1.2.2 right to correct: name, gender, birth date and contact
/// details of their own record; identifiers stay write-protected.
async fn customer_corrects_their_own_record_but_never_its_identifiers(h: Harness) {
    let tok = token("customer", "c-1001", false, None);
    let patch = json!({
        "name": "Wang Leilei",
        "gender": "female",
        "birth_date": "1965-03-12",
        "phone": "+86 139 0000 0000",
        "email": "new@example.org",
        "address": {"city": "Suzhou", "street": "1 New Road"},
        "consent": {"marketing": false}
    });
    let r = h
        .send_json(Method::PATCH, "/customers/c-1001", &tok, &patch)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = upstream_json(&h, "/customers/c-1001").await;
    assert_eq!(stored["name"], "Wang Leilei");
    assert_eq!(stored["gender"], "female");
    assert_eq!(stored["birth_date"], "1965-03-12");
    assert_eq!(stored["phone"], "+86 139 0000 0000");
    assert_eq!(stored["address"]["city"], "Suzhou");
    assert_eq!(stored["consent"]["marketing"], false);

    for (body, field) in [
        (
            json!({"name": "X", "id_card_number": "1"}),
            "id_card_number",
        ),
        (json!({"id": "c-9999"}), "id"),
        (
            json!({"registered_at": "2020-01-01T00:00:00Z"}),
            "registered_at",
        ),
        (json!({"last_login": {"ip": "10.0.0.1"}}), "last_login"),
        (json!({"nickname": "x"}), "nickname"),
    ] {
        let r = h
            .send_json(Method::PATCH, "/customers/c-1001", &tok, &body)
            .await;
        assert_eq!(r.status, 403, "{body}");
        assert_eq!(r.json()["error"], "forbidden_fields");
        assert_eq!(r.json()["fields"], json!([field]), "{body}");
    }
    // The refused writes never reached the shop.
    let after = upstream_json(&h, "/customers/c-1001").await;
    assert_eq!(after, stored);

    let other = h
        .send_json(
            Method::PATCH,
            "/customers/c-1002",
            &tok,
            &json!({"phone": "1"}),
        )
        .await;
    assert_eq!(other.status, 403);

    let del_other = h
        .send(Method::DELETE, "/customers/c-1002", Some(&tok), &[], None)
        .await;
    assert_eq!(del_other.status, 403);
    let del_own = h
        .send(Method::DELETE, "/customers/c-1001", Some(&tok), &[], None)
        .await;
    assert_eq!(del_own.status, 204);
    assert_eq!(h.upstream_get("/customers/c-1001").await.status, 404);
}

async fn registration_collects_only_the_minimum(h: Harness) {
    let tok = token("customer", "new-user-1", false, None);
    let ok = json!({
        "name": "Li Na", "gender": "female", "birth_date": "1990-01-01",
        "phone": "+86 130 0000 0001", "email": "li.na@example.org",
        "address": {"province": "Zhejiang", "city": "Hangzhou", "street": "2 Lake Road", "postcode": "310000"},
        "consent": {"marketing": true}
    });
    let r = h.send_json(Method::POST, "/customers", &tok, &ok).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let before = upstream_json(&h, "/customers").await["total"].clone();
    let mut with_id_card = ok.clone();
    with_id_card["id_card_number"] = json!("110101199001010011");
    let r = h
        .send_json(Method::POST, "/customers", &tok, &with_id_card)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["fields"], json!(["id_card_number"]));
    let mut unknown = ok.clone();
    unknown["favourite_colour"] = json!("blue");
    let r = h
        .send_json(Method::POST, "/customers", &tok, &unknown)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["fields"], json!(["favourite_colour"]));
    assert_eq!(
        upstream_json(&h, "/customers").await["total"],
        before,
        "nothing reached the shop"
    );

    // Other roles cannot register anyone.
    let agent = token("support_agent", "agent-7", true, None);
    assert_eq!(
        h.send_json(Method::POST, "/customers", &agent, &ok)
            .await
            .status,
        403
    );
}

async fn support_agent_sees_contact_masked_unless_mfa(h: Harness) {
    let raw = upstream_json(&h, "/customers/c-1001").await;
    let tok = token("support_agent", "agent-7", false, None);
    let c = h.get("/customers/c-1001", &tok).await.json();
    assert_eq!(
        leaf_paths(&c),
        vec![
            "address.city",
            "address.province",
            "consent.marketing",
            "consent.updated_at",
            "email",
            "gender",
            "id",
            "name",
            "phone"
        ]
    );
    for f in ["id", "name", "gender", "consent"] {
        assert_eq!(c[f], raw[f]);
    }
    assert_eq!(c["address"]["city"], raw["address"]["city"]);
    for f in ["phone", "email"] {
        let (m, r) = (c[f].as_str().unwrap(), raw[f].as_str().unwrap());
        assert_ne!(m, r);
        assert!(m.contains('*'));
        assert_eq!(m.chars().count(), r.chars().count());
    }
    let mfa = token("support_agent", "agent-7", true, None);
    let c = h.get("/customers/c-1001", &mfa).await.json();
    assert_eq!(c["phone"], raw["phone"]);
    assert_eq!(c["email"], raw["email"]);
    assert!(c.get("birth_date").is_none() && c.get("id_card_number").is_none());
    assert!(c["address"].get("street").is_none());

    // The list: every record filtered the same way.
    let list = h.get("/customers", &tok).await.json();
    let customers = list["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 60);
    assert!(
        customers
            .iter()
            .all(|c| c.get("id_card_number").is_none() && c.get("birth_date").is_none())
    );

    let orders = h.get("/customers/c-1001/orders", &tok).await.json();
    for o in orders["orders"].as_array().unwrap() {
        assert_eq!(
            leaf_paths(o),
            vec![
                "customer_id",
                "id",
                "items",
                "logistics.carrier",
                "logistics.tracking_no",
                "shipping.recipient",
                "status"
            ]
        );
    }
    let tickets = h.get("/customers/c-1001/tickets", &tok).await;
    assert_eq!(
        tickets.json(),
        upstream_json(&h, "/customers/c-1001/tickets").await
    );
    assert_status(
        &h,
        &tok,
        &["/customers/c-1001/behavior"],
        StatusCode::FORBIDDEN,
    )
    .await;
    let r = h
        .send_json(
            Method::PATCH,
            "/customers/c-1001",
            &mfa,
            &json!({"phone": "1"}),
        )
        .await;
    assert_eq!(r.status, 403);
}

async fn fulfillment_sees_shipping_but_no_customers_or_payment(h: Harness) {
    let tok = token("fulfillment", "warehouse-3", false, None);
    assert_status(
        &h,
        &tok,
        &[
            "/customers",
            "/customers/c-1001",
            "/customers/c-1001/behavior",
            "/customers/c-1001/tickets",
        ],
        StatusCode::FORBIDDEN,
    )
    .await;
    let raw = upstream_json(&h, "/customers/c-1001/orders").await;
    let id = raw["orders"][0]["id"].as_str().unwrap().to_string();
    let by_id = h.get(&format!("/orders/{id}"), &tok).await.json();
    let listed = h.get("/customers/c-1001/orders", &tok).await.json();
    for o in [&by_id, &listed["orders"][0]] {
        assert_eq!(
            keys(o),
            vec![
                "created_at",
                "id",
                "items",
                "logistics",
                "shipping",
                "status"
            ]
        );
        assert_eq!(
            o["shipping"], raw["orders"][0]["shipping"],
            "shipping in full"
        );
        assert_eq!(o["items"], raw["orders"][0]["items"]);
        assert_eq!(o["logistics"], raw["orders"][0]["logistics"]);
    }
}

/// CDM-3.3.2, CDM-5.1: analysts read listings only; every record they
/// receive is of a customer who consented to marketing, and no raw customer
/// or order identifier reaches them on any route.
async fn marketing_analyst_sees_pseudonymised_consented_data_only(h: Harness) {
    let tok = token("marketing_analyst", "analyst-2", false, Some("marketing"));
    let raw = upstream_json(&h, "/customers").await;
    let raw = raw["customers"].as_array().unwrap();
    let consenting: Vec<&Value> = raw
        .iter()
        .filter(|c| c["consent"]["marketing"] == true)
        .collect();
    assert!(!consenting.is_empty() && consenting.len() < raw.len());

    let list = h.get("/customers", &tok).await;
    assert_eq!(list.status, 200);
    assert_no_raw_ids(&list.text());
    let got = list.json();
    let got = got["customers"].as_array().unwrap();
    assert_eq!(got.len(), consenting.len(), "only consenting customers");
    for (c, r) in got.iter().zip(&consenting) {
        assert!(is_pseudonym(&c["id"]), "{c}");
        assert_eq!(keys(c), vec!["address", "birth_date", "gender", "id"]);
        assert_eq!(c["gender"], r["gender"]);
        assert_eq!(c["address"], json!({"city": r["address"]["city"]}));
        assert_eq!(
            c["birth_date"].as_str().unwrap(),
            &r["birth_date"].as_str().unwrap()[..4]
        );
    }
    let pseudonyms: Vec<&Value> = got.iter().map(|c| &c["id"]).collect();

    // Orders and behaviour: consenting customers' only, joined by the
    // same pseudonym, with neither order nor event ids.
    for (path, key, fields) in [
        (
            "/orders",
            "orders",
            vec![
                "created_at",
                "customer_id",
                "items",
                "marketing_consent",
                "total",
            ],
        ),
        (
            "/behavior",
            "events",
            vec![
                "at",
                "customer_id",
                "dwell_ms",
                "marketing_consent",
                "target",
                "type",
            ],
        ),
    ] {
        let raw = upstream_json(&h, path).await;
        let expected = raw[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["marketing_consent"] == true)
            .count();
        let r = h.get(path, &tok).await;
        assert_eq!(r.status, 200, "{path}");
        assert_no_raw_ids(&r.text());
        let v = r.json();
        let records = v[key].as_array().unwrap();
        assert_eq!(records.len(), expected, "{path}: consenting customers only");
        assert!(expected > 0);
        for rec in records {
            assert_eq!(keys(rec), fields, "{path}");
            assert!(pseudonyms.contains(&&rec["customer_id"]), "{path}: {rec}");
            assert_eq!(rec["marketing_consent"], true);
        }
    }

    // No route that names a customer or an order: the raw id in the path
    // beside a pseudonym in the answer would rebuild the pseudonym table.
    assert_status(
        &h,
        &tok,
        &[
            "/customers/c-1001",
            "/customers/c-1002",
            "/customers/c-1001/orders",
            "/customers/c-1001/behavior",
            "/customers/c-1001/tickets",
            "/orders/o-10011",
        ],
        StatusCode::FORBIDDEN,
    )
    .await;
    // Without the marketing purpose: nothing.
    let no_purpose = token("marketing_analyst", "analyst-2", false, None);
    assert_status(
        &h,
        &no_purpose,
        &["/customers", "/orders", "/behavior"],
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// No customer id (`c-1001`), order id (`o-10011`) or event id
/// (`b-100101`) of the demo shop in a body.
fn assert_no_raw_ids(body: &str) {
    for prefix in ["\"c-1", "\"o-1", "\"b-1"] {
        assert!(!body.contains(prefix), "raw id ({prefix}) in {body}");
    }
}

/// CDM-1.2.4: the purpose of use comes from the identity provider. A
/// caller's own `X-Purpose` header does not count, unless the operator
/// opted in with `identity.jwt.purpose_fallback_header` (then it fills in
/// a missing claim, never overrides one).
#[tokio::test]
async fn the_purpose_comes_from_the_token_not_from_the_caller() {
    let no_purpose = token("marketing_analyst", "analyst-2", false, None);
    let support = token("marketing_analyst", "a", false, Some("support"));
    let h = start().await;
    for tok in [&no_purpose, &support] {
        let r = h
            .send(
                Method::GET,
                "/customers",
                Some(tok),
                &[("x-purpose", "marketing")],
                None,
            )
            .await;
        assert_eq!(r.status, 403, "the header named the purpose");
    }
    let opted_in = common::start_with(|c| {
        if let Some(j) = c.identity.jwt.as_mut() {
            j.purpose_fallback_header = Some(http::HeaderName::from_static("x-purpose"));
        }
    })
    .await;
    let header = [("x-purpose", "marketing")];
    let r = opted_in
        .send(Method::GET, "/customers", Some(&no_purpose), &header, None)
        .await;
    assert_eq!(r.status, 200, "opted in: the header fills a missing claim");
    let r = opted_in
        .send(Method::GET, "/customers", Some(&support), &header, None)
        .await;
    assert_eq!(r.status, 403, "never over the token's own claim");
}

async fn data_protection_officer_sees_everything_only_with_mfa(h: Harness) {
    let tok = token("data_protection_officer", "dpo-1", true, None);
    for p in [
        "/customers/c-1001",
        "/customers/c-1001/behavior",
        "/customers/c-1001/tickets",
        "/customers",
    ] {
        let r = h.get(p, &tok).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), upstream_json(&h, p).await, "{p} in full");
    }
    let raw = upstream_json(&h, "/customers/c-1001/orders").await;
    let got = h.get("/customers/c-1001/orders", &tok).await.json();
    for (o, r) in got["orders"]
        .as_array()
        .unwrap()
        .iter()
        .zip(raw["orders"].as_array().unwrap())
    {
        assert!(masked_to_last4(
            &o["payment"]["card_number"],
            &r["payment"]["card_number"]
        ));
        let mut unmasked = o.clone();
        unmasked["payment"]["card_number"] = r["payment"]["card_number"].clone();
        assert_eq!(&unmasked, r);
    }
    let no_mfa = token("data_protection_officer", "dpo-1", false, None);
    assert_status(
        &h,
        &no_mfa,
        &[
            "/customers/c-1001",
            "/customers",
            "/customers/c-1001/orders",
        ],
        StatusCode::FORBIDDEN,
    )
    .await;
    let r = h
        .send_json(
            Method::PATCH,
            "/customers/c-1001",
            &tok,
            &json!({"phone": "1"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .send(Method::DELETE, "/customers/c-1001", Some(&tok), &[], None)
        .await;
    assert_eq!(r.status, 403);
}

async fn partner_reads_order_status_and_logistics_by_id_only(h: Harness) {
    let tok = token_with_claims(
        "partner",
        "partner-sf-express",
        false,
        None,
        &[("carrier", "SF Express")],
    );
    let raw = upstream_json(&h, "/customers/c-1002/orders").await;
    let sf = raw["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["logistics"]["carrier"] == "SF Express")
        .unwrap();
    let id = sf["id"].as_str().unwrap();
    let o = h.get(&format!("/orders/{id}"), &tok).await.json();
    assert_eq!(keys(&o), vec!["id", "logistics", "status"]);
    assert_eq!(o["logistics"], sf["logistics"]);
    assert_status(
        &h,
        &tok,
        &[
            "/customers",
            "/customers/c-1001",
            "/customers/c-1001/orders",
            "/customers/c-1001/behavior",
            "/customers/c-1001/tickets",
            "/orders",
            "/behavior",
        ],
        StatusCode::FORBIDDEN,
    )
    .await;
}

async fn unknown_roles_get_nothing(h: Harness) {
    let tok = token("intern", "i-1", true, Some("marketing"));
    assert_status(
        &h,
        &tok,
        &["/customers", "/customers/c-1001", "/orders/o-10011"],
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// Each case against both deployments.
macro_rules! role_table {
    ($($case:ident),* $(,)?) => {
        mod reference {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::common::start().await).await
                }
            )*
        }
        mod drafted_from_openapi {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::common::drafted::start().await).await
                }
            )*
        }
    };
}

role_table!(
    customer_sees_only_their_own_data_in_full,
    customer_corrects_their_own_record_but_never_its_identifiers,
    registration_collects_only_the_minimum,
    support_agent_sees_contact_masked_unless_mfa,
    fulfillment_sees_shipping_but_no_customers_or_payment,
    marketing_analyst_sees_pseudonymised_consented_data_only,
    data_protection_officer_sees_everything_only_with_mfa,
    partner_reads_order_status_and_logistics_by_id_only,
    unknown_roles_get_nothing,
);
