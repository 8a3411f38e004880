//! CDM-3.2.3 third parties only within the scope the data was shared for:
//! a logistics partner's token names its carrier, and through the real
//! proxy in front of the real shop it sees the orders that carrier ships
//! and nothing else, however it walks the (sequential) order ids.

mod common;

use common::{start, token_with_claims};
use serde_json::Value;
use std::collections::BTreeSet;

fn partner(carrier: &str) -> String {
    token_with_claims("partner", "partner-1", false, None, &[("carrier", carrier)])
}

#[tokio::test]
async fn a_partner_is_refused_another_carriers_order() {
    let h = start().await;
    let sf = partner("SF Express");
    // o-10021 is shipped by SF Express, o-10011 by YTO Express.
    let own = h.get("/orders/o-10021", &sf).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["logistics"]["carrier"], "SF Express");
    let other = h.get("/orders/o-10011", &sf).await;
    assert_eq!(other.status, 403, "{}", other.text());
    let body = other.json();
    assert_eq!(body["error"], "forbidden");
    assert!(body["request_id"].is_string());
    // The same order for its own carrier.
    let yto = partner("YTO Express");
    assert_eq!(h.get("/orders/o-10011", &yto).await.status, 200);
    // A partner token without a carrier sees no order at all.
    let none = common::token("partner", "partner-1", false, None);
    assert_eq!(h.get("/orders/o-10021", &none).await.status, 403);
}

#[tokio::test]
async fn walking_order_ids_yields_only_the_partners_own_orders() {
    let h = start().await;
    let sf = partner("SF Express");
    let listing: Value = h.upstream_get("/orders").await.json();
    let mine: BTreeSet<String> = listing["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["logistics"]["carrier"] == "SF Express")
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert!(mine.len() > 5, "{mine:?}");
    // Every id the shop's numbering could produce for its 60 customers,
    // and beyond: o-10011 … o-10619.
    let mut seen = BTreeSet::new();
    for n in 10011..=10619 {
        let id = format!("o-{n}");
        let r = h.get(&format!("/orders/{id}"), &sf).await;
        match r.status.as_u16() {
            200 => {
                assert_eq!(r.json()["logistics"]["carrier"], "SF Express", "{id}");
                seen.insert(id);
            }
            // Another carrier's order and an order that does not exist
            // get the same answer: nothing tells them apart.
            403 => assert_eq!(r.json()["error"], "forbidden", "{id}"),
            other => panic!("{id}: unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!(seen, mine);
}
