//! The decision shortcuts (a request's memo, the engine's shared cache) must
//! never change a body: every filtered body is compared with the body
//! filtered by asking Cedar afresh for every decision (a traced report
//! explains each decision uncached).

use fieldguard::config;
use fieldguard::demo::data::{customer_id, customer_list_body, orders_for};
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn runtime() -> Runtime {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml");
    Runtime::build(config::load(&path).unwrap()).unwrap()
}

fn principal(id: &str, role: &str, mfa: bool, purpose: Option<&str>) -> Principal {
    Principal {
        id: id.to_string(),
        roles: vec![role.to_string()],
        mfa,
        purpose: purpose.map(str::to_string),
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    }
}

fn filter(rt: &Runtime, who: &Principal, path: &str, body: &[u8], traced: bool) -> Value {
    let path = normalize(path).unwrap();
    let Routed::Route(m) = route(&rt.decisions, "GET", &path) else {
        panic!("no route for {path:?}");
    };
    let Ok(decided) = decide(&rt.decisions, &m, who) else {
        panic!("{path:?} denied");
    };
    let mut report = if traced {
        FilterReport::traced()
    } else {
        FilterReport::default()
    };
    let out = filter_response_body(&rt.decisions, &decided, body, &mut report).unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// Filters `body` twice through the shortcuts (cold, then warm) and once
/// uncached; all three must agree.
fn agreed(rt: &Runtime, who: &Principal, path: &str, body: &[u8]) -> Value {
    let cold = filter(rt, who, path, body, false);
    let warm = filter(rt, who, path, body, false);
    let uncached = filter(rt, who, path, body, true);
    assert_eq!(cold, uncached, "{} on {path}: cold", who.roles[0]);
    assert_eq!(warm, uncached, "{} on {path}: warm", who.roles[0]);
    uncached
}

/// A `GET /customers/c-1001/orders` body holding the orders of customers
/// `1..n` and then, last, those of customer 0 (c-1001); with `own`, every
/// order is re-assigned to c-1001.
fn orders_body(n: usize, own: bool) -> Vec<u8> {
    let owner = customer_id(0);
    let mut orders: Vec<Value> = (1..n).chain([0]).flat_map(orders_for).collect();
    if own {
        for o in &mut orders {
            o["customer_id"] = json!(owner);
        }
    }
    serde_json::to_vec(&json!({ "customer_id": owner, "orders": orders })).unwrap()
}

fn records<'v>(doc: &'v Value, key: &str) -> &'v [Value] {
    doc[key].as_array().unwrap()
}

#[test]
fn customer_lists_match_uncached_decisions() {
    let rt = runtime();
    let body = customer_list_body(40);
    for who in [
        principal("agent-1", "support_agent", false, None),
        principal("agent-2", "support_agent", true, None),
        principal("dpo-1", "data_protection_officer", true, None),
    ] {
        let doc = agreed(&rt, &who, "/customers", &body);
        assert_eq!(records(&doc, "customers").len(), 40);
    }
    // Consent differs between records: the memo must keep both answers
    // (analysts see the consenting customers only, each with gender).
    let consenting = (0..40)
        .filter(|i| fieldguard::demo::data::customer(*i)["consent"]["marketing"] == true)
        .count();
    for name in ["analyst-1", "analyst-2"] {
        let analyst = principal(name, "marketing_analyst", false, Some("marketing"));
        let doc = agreed(&rt, &analyst, "/customers", &body);
        let shown = records(&doc, "customers");
        assert_eq!(shown.len(), consenting);
        assert!(consenting > 0 && consenting < 40, "{consenting} of 40");
        assert!(shown.iter().all(|c| c.get("gender").is_some()));
    }
}

#[test]
fn ownership_decisions_match_uncached_decisions() {
    let rt = runtime();
    let owner = customer_id(0);
    let customer = principal(&owner, "customer", false, None);
    let path = format!("/customers/{owner}/orders");

    // Twelve owners, the caller's orders last: by then the memo's slots
    // are full of other owners' answers.
    let mixed = agreed(&rt, &customer, &path, &orders_body(12, false));
    let kept = records(&mixed, "orders");
    assert_eq!(kept.len(), orders_for(0).len());
    assert!(kept.iter().all(|o| o["customer_id"] == json!(owner)));

    let own = agreed(&rt, &customer, &path, &orders_body(12, true));
    let kept = records(&own, "orders");
    let sent = (0..12).map(|i| orders_for(i).len()).sum::<usize>();
    assert_eq!(kept.len(), sent);
    assert!(kept.iter().all(|o| {
        o["payment"]["card_number"]
            .as_str()
            .is_some_and(|n| n.starts_with('*'))
    }));

    let agent = principal("agent-1", "support_agent", false, None);
    let doc = agreed(&rt, &agent, &path, &orders_body(12, false));
    assert_eq!(records(&doc, "orders").len(), sent);
}
