//! CDM-1.2.2 (withdrawing consent) and CDM-3.3.2 (consent for marketing
//! use), end to end through the real proxy in front of the real shop: a
//! customer withdraws consent through fieldguard, and the marketing
//! analyst's very next request no longer receives anything of theirs, on
//! any listing. No decision cache may serve the old answer.

mod common;

use common::{Harness, start, token};
use http::Method;
use serde_json::{Value, json};

/// The pseudonyms (or pseudonymised customer ids) an analyst receives
/// from `path`, whose records are under `key` with the id in `id`.
async fn pseudonyms(h: &Harness, tok: &str, path: &str, key: &str, id: &str) -> Vec<Value> {
    let r = h.get(path, tok).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|rec| rec[id].clone())
        .collect()
}

async fn consent(h: &Harness, customer: &str, marketing: bool) {
    let tok = token("customer", customer, false, None);
    let r = h
        .send_json(
            Method::PATCH,
            &format!("/customers/{customer}"),
            &tok,
            &json!({"consent": {"marketing": marketing}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn withdrawn_consent_hides_the_customer_from_the_analysts_very_next_request() {
    let h = start().await;
    let analyst = token("marketing_analyst", "analyst-2", false, Some("marketing"));
    let listings = [
        ("/customers", "customers", "id"),
        ("/orders", "orders", "customer_id"),
        ("/behavior", "events", "customer_id"),
    ];
    // c-1001 consented: its pseudonym is in every listing. Each listing is
    // asked twice first, so every decision about c-1001 is cached.
    let before = pseudonyms(&h, &analyst, "/customers", "customers", "id").await;
    let c1001 = before[0].clone();
    for (path, key, id) in listings {
        for _ in 0..2 {
            let seen = pseudonyms(&h, &analyst, path, key, id).await;
            assert!(seen.contains(&c1001), "{path} before withdrawal");
        }
    }

    consent(&h, "c-1001", false).await;
    for (path, key, id) in listings {
        let seen = pseudonyms(&h, &analyst, path, key, id).await;
        assert!(
            !seen.contains(&c1001),
            "{path}: the very next request after withdrawal still shows c-1001"
        );
        assert!(!seen.is_empty(), "{path}: other consenting customers stay");
    }
    let after = pseudonyms(&h, &analyst, "/customers", "customers", "id").await;
    assert_eq!(after.len(), before.len() - 1);

    // Consent given again: back at once, the same pseudonym.
    consent(&h, "c-1001", true).await;
    for (path, key, id) in listings {
        let seen = pseudonyms(&h, &analyst, path, key, id).await;
        assert!(seen.contains(&c1001), "{path} after consenting again");
    }
}
