//! Every cell of the reference role table (README, issue "The enforcement
//! proxy"), checked through the real proxy in front of the real demo shop:
//! with the reference configuration, and with the configuration and schema
//! `fieldguard onboard openapi` drafts from the demo shop's OpenAPI
//! document (examples/onboarding/demo-shop.openapi.yaml) once the
//! reference policies are added (tests/common/drafted.rs).

mod common;

use common::{Harness, keys, leaf_paths, token};
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

async fn customer_writes_only_their_own_contact_details_and_consent(h: Harness) {
    let tok = token("customer", "c-1001", false, None);
    let patch = json!({
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
    assert_eq!(stored["phone"], "+86 139 0000 0000");
    assert_eq!(stored["address"]["city"], "Suzhou");
    assert_eq!(stored["consent"]["marketing"], false);

    for (body, field) in [
        (json!({"name": "Someone Else"}), "name"),
        (
            json!({"phone": "1", "birth_date": "2000-01-01"}),
            "birth_date",
        ),
        (json!({"id_card_number": "1"}), "id_card_number"),
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
    assert_eq!(after["name"], stored["name"]);
    assert_eq!(after["phone"], "+86 139 0000 0000");

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

async fn marketing_analyst_sees_pseudonymised_consented_data_only(h: Harness) {
    let tok = token("marketing_analyst", "analyst-2", false, Some("marketing"));
    let raw = upstream_json(&h, "/customers").await;
    let list = h.get("/customers", &tok).await.json();
    let (got, raw) = (
        list["customers"].as_array().unwrap(),
        raw["customers"].as_array().unwrap(),
    );
    assert_eq!(got.len(), raw.len());
    let mut consented = 0;
    for (c, r) in got.iter().zip(raw) {
        assert!(is_pseudonym(&c["id"]), "{c}");
        assert_ne!(c["id"], r["id"]);
        if r["consent"]["marketing"] == true {
            consented += 1;
            assert_eq!(keys(c), vec!["address", "birth_date", "gender", "id"]);
            assert_eq!(c["gender"], r["gender"]);
            assert_eq!(c["address"], json!({"city": r["address"]["city"]}));
            assert_eq!(
                c["birth_date"].as_str().unwrap(),
                &r["birth_date"].as_str().unwrap()[..4]
            );
        } else {
            assert_eq!(keys(c), vec!["id"], "no consent: only the pseudonym");
        }
    }
    assert!(consented > 0 && consented < got.len());

    // Same pseudonym everywhere: analysts can join orders to customers.
    let c1001 = &got[0];
    let orders = h.get("/customers/c-1001/orders", &tok).await.json();
    for o in orders["orders"].as_array().unwrap() {
        assert_eq!(keys(o), vec!["created_at", "customer_id", "items", "total"]);
        assert_eq!(o["customer_id"], c1001["id"]);
    }

    // Behaviour: only with consent (c-1001 consented, c-1002 did not).
    let b = h.get("/customers/c-1001/behavior", &tok).await.json();
    let events = b["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["customer_id"] == c1001["id"]));
    let b2 = h.get("/customers/c-1002/behavior", &tok).await.json();
    assert_eq!(b2["events"], json!([]));

    assert_status(
        &h,
        &tok,
        &["/customers/c-1001/tickets"],
        StatusCode::FORBIDDEN,
    )
    .await;
    // Without the marketing purpose: nothing.
    let no_purpose = token("marketing_analyst", "analyst-2", false, None);
    assert_status(
        &h,
        &no_purpose,
        &["/customers", "/customers/c-1001/orders"],
        StatusCode::FORBIDDEN,
    )
    .await;
    // A purpose header does not override a token's own purpose claim.
    let r = h
        .send(
            Method::GET,
            "/customers",
            Some(&token("marketing_analyst", "a", false, Some("support"))),
            &[("x-purpose", "marketing")],
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    // Without a purpose claim, the header states it.
    let r = h
        .send(
            Method::GET,
            "/customers",
            Some(&no_purpose),
            &[("x-purpose", "marketing")],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
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
    let tok = token("partner", "partner-sf-express", false, None);
    let raw = upstream_json(&h, "/customers/c-1001/orders").await;
    let id = raw["orders"][0]["id"].as_str().unwrap();
    let o = h.get(&format!("/orders/{id}"), &tok).await.json();
    assert_eq!(keys(&o), vec!["id", "logistics", "status"]);
    assert_eq!(o["logistics"], raw["orders"][0]["logistics"]);
    assert_status(
        &h,
        &tok,
        &[
            "/customers",
            "/customers/c-1001",
            "/customers/c-1001/orders",
            "/customers/c-1001/behavior",
            "/customers/c-1001/tickets",
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
    customer_writes_only_their_own_contact_details_and_consent,
    registration_collects_only_the_minimum,
    support_agent_sees_contact_masked_unless_mfa,
    fulfillment_sees_shipping_but_no_customers_or_payment,
    marketing_analyst_sees_pseudonymised_consented_data_only,
    data_protection_officer_sees_everything_only_with_mfa,
    partner_reads_order_status_and_logistics_by_id_only,
    unknown_roles_get_nothing,
);
