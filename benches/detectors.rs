//! What the onboarding aids cost the response path: the detectors alone,
//! and the proxy's per-response work (route, decision, byte-stream
//! redaction) on the reference deployment with and without them enabled.
//!
//! Cases, each on the same bytes:
//! - `customers/*`: `GET /customers` (2,300 customers, ~1 MB) for a support
//!   agent. `off` is the reference route; `observe+backstop` turns on
//!   shape recording and every backstop detector on it (nothing is
//!   uncatalogued, so this is the cost of having them enabled).
//! - `customers_drift/*`: the same list with two uncatalogued members per
//!   record (an e-mail and a resident ID), in `unknown_fields: pass`:
//!   `pass` alone, `pass+observe`, `pass+observe+backstop` (every
//!   uncatalogued value scanned, and masked).
//! - `tickets/*`: a customer's tickets (messages are free text) for the
//!   owner: reference, then `messages` marked `free_text` under `backstop`.
//!
//! `cargo bench --bench detectors` runs it; `-- --test` runs every case
//! once as a smoke test. Figures: docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fieldguard::config::{self, Config, LoadedConfig};
use fieldguard::demo::data::{customer_id, customer_list_body, tickets_for};
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard::runtime::Runtime;
use fieldguard_core::config::{Backstop, UnknownFields};
use fieldguard_core::detect::{self, DetectorSet};
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

const CUSTOMERS: usize = 2_300;

fn runtime(modify: impl FnOnce(&mut Config)) -> Runtime {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml");
    let mut loaded: LoadedConfig = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    modify(&mut loaded.config);
    Runtime::build(loaded).unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Changes the route `method path` of a config.
fn on_route(
    c: &mut Config,
    method: &str,
    path: &str,
    f: impl FnOnce(&mut fieldguard_core::config::RouteConfig),
) {
    let r = c
        .routes
        .iter_mut()
        .find(|r| r.method.value == method && r.path.value == path)
        .unwrap_or_else(|| panic!("no route {method} {path}"));
    f(r);
}

fn principal(id: &str, role: &str) -> Principal {
    Principal {
        id: id.into(),
        roles: vec![role.into()],
        mfa: true,
        purpose: None,
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    }
}

fn respond(rt: &Runtime, who: &Principal, path: &str, body: &[u8]) -> (Vec<u8>, FilterReport) {
    let path = normalize(path).unwrap_or_else(|e| panic!("{e:?}"));
    let Routed::Route(m) = route(&rt.decisions, "GET", &path) else {
        panic!("no route");
    };
    let decided = decide(&rt.decisions, &m, who).unwrap_or_else(|_| panic!("denied"));
    let mut report = FilterReport::default();
    let out = filter_response_body(&rt.decisions, &decided, body, &mut report)
        .unwrap_or_else(|e| panic!("filter refused: {e:?}"));
    (out, report)
}

/// The customer list with two members the catalogue lacks in every record.
fn drifted_list() -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&customer_list_body(CUSTOMERS)).unwrap_or_default();
    if let Some(list) = doc["customers"].as_array_mut() {
        for (i, c) in list.iter_mut().enumerate() {
            c["backup_email"] = json!(format!("backup{i}@mail.example.org"));
            c["national_id"] = json!("110101199001010015");
        }
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Tickets of many customers, all re-assigned to c-1001 (so its owner
/// sees them in full), one message in each with a phone number typed in.
fn tickets_body() -> Vec<u8> {
    let mut tickets: Vec<Value> = (0..120).flat_map(tickets_for).collect();
    for t in &mut tickets {
        t["customer_id"] = json!(customer_id(0));
        if let Some(m) = t["messages"].as_array_mut() {
            m.push(json!({"from": "customer", "text": "Please call me back on 139 0013 1001."}));
        }
    }
    serde_json::to_vec(&json!({"customer_id": customer_id(0), "tickets": tickets}))
        .unwrap_or_default()
}

fn detectors_alone(c: &mut Criterion) {
    let mut g = c.benchmark_group("detect");
    g.measurement_time(Duration::from_secs(3));
    for (name, text) in [
        ("plain_word", "delivered"),
        ("timestamp", "2025-05-26T09:24:39Z"),
        ("phone", "+86 139 0013 1001"),
        ("email", "wang.lei1001@mail.example.org"),
        (
            "ticket_message",
            "My parcel o-10011 has not arrived since 2025-05-20; please call me on 139 0013 1001 or write to wang.lei1001@mail.example.org. ID 110101199001010015.",
        ),
        (
            "chinese_message",
            "客户说身份证110101199001010015,电话13900131001,地址北京市朝阳区建国路88号,请尽快处理。",
        ),
        ("fullwidth_phone", "电话：１３９·００１３·１００１"),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| detect::detect(black_box(text), DetectorSet::all()))
        });
    }
    g.finish();
}

fn response_path(c: &mut Criterion) {
    let agent = principal("agent-7", "support_agent");
    let list = customer_list_body(CUSTOMERS);
    let drifted = drifted_list();
    let tickets = tickets_body();
    let owner = principal(&customer_id(0), "customer");
    let tickets_path = format!("/customers/{}/tickets", customer_id(0));

    let reference = runtime(|_| {});
    let enabled = runtime(|c| {
        on_route(c, "GET", "/customers", |r| {
            r.observe = Some(true);
            r.backstop = Backstop(DetectorSet::all());
        })
    });
    let pass = |observe: bool, backstop: bool| {
        runtime(move |c| {
            on_route(c, "GET", "/customers", |r| {
                r.unknown_fields = UnknownFields::Pass;
                r.observe = Some(observe);
                if backstop {
                    r.backstop = Backstop(DetectorSet::all());
                }
            })
        })
    };
    let (pass_only, pass_observe, pass_all) =
        (pass(false, false), pass(true, false), pass(true, true));
    let free_text = runtime(|c| {
        if let Some(t) = c.entities.get_mut("Ticket")
            && let Some(f) = t.fields.get_mut("messages")
        {
            f.free_text = true;
        }
        on_route(c, "GET", "/customers/{id}/tickets", |r| {
            r.backstop = Backstop(DetectorSet::all());
        });
    });

    // The cases do the work they claim.
    let (_, r) = respond(&enabled, &agent, "/customers", &list);
    assert!(r.observed.is_empty() && r.backstop.is_empty());
    let (out, r) = respond(&pass_all, &agent, "/customers", &drifted);
    assert!(!r.observed.is_empty() && r.backstop.total() >= 2 * CUSTOMERS as u64);
    assert!(!String::from_utf8_lossy(&out).contains("110101199001010015"));
    let (_, r) = respond(&free_text, &owner, &tickets_path, &tickets);
    assert!(
        !r.backstop.is_empty(),
        "the ticket messages hold personal data"
    );

    let mut g = c.benchmark_group("customers");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(30);
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.bench_function("off", |b| {
        b.iter(|| respond(&reference, &agent, "/customers", black_box(&list)))
    });
    g.bench_function("observe+backstop", |b| {
        b.iter(|| respond(&enabled, &agent, "/customers", black_box(&list)))
    });
    g.finish();

    let mut g = c.benchmark_group("customers_drift");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(30);
    g.throughput(Throughput::Bytes(drifted.len() as u64));
    for (name, rt) in [
        ("pass", &pass_only),
        ("pass+observe", &pass_observe),
        ("pass+observe+backstop", &pass_all),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| respond(rt, &agent, "/customers", black_box(&drifted)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tickets");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(tickets.len() as u64));
    g.bench_function("off", |b| {
        b.iter(|| respond(&reference, &owner, &tickets_path, black_box(&tickets)))
    });
    g.bench_function("free_text+backstop", |b| {
        b.iter(|| respond(&free_text, &owner, &tickets_path, black_box(&tickets)))
    });
    g.finish();
}

criterion_group!(benches, detectors_alone, response_path);
criterion_main!(benches);
