//! Response redaction throughput, through the code the proxy runs.
//!
//! Per-field Cedar decisions on large lists are the proxy's hot path, so each
//! iteration does what the proxy does for one response once the upstream's
//! bytes are in memory: route, request-level decision, parse, walk with record
//! and field decisions, serialise (`fieldguard_core::pipeline`). Next to it,
//! `serde_json_baseline` parses and serialises the same bytes: the floor a
//! redacting proxy is compared to (target: redaction <= 2x the baseline).
//!
//! The runtime, and so the engine's decision cache, lives across iterations,
//! as it does in a running proxy; the `cold_cache` group builds a fresh
//! runtime (outside the timing) before every iteration, to show the cost of
//! the first such response after a start or a policy reload.
//!
//! `cargo bench --bench redaction` runs it; `-- --test` runs every case once
//! (its output checks included) as a smoke test. Figures: docs/benchmarks.md.

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use fieldguard::config::{self, LoadedConfig};
use fieldguard::demo::data::{customer, customer_id, customer_list_body, orders_for};
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{
    Routed, decide, filter_response_body, route, stream_response_body,
};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::{CanonicalPath, normalize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// Customers in the large list: the demo shop's `GET /customers` at this size
/// is about 2.2 MB.
const LARGE_LIST: usize = 5_000;
/// Customers in the list closest to the 1 MB reference body.
const REFERENCE_LIST: usize = 2_300;

fn reference_config() -> LoadedConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml");
    config::load(&path).unwrap_or_else(|e| panic!("reference config: {e}"))
}

fn build_runtime(loaded: &LoadedConfig) -> Runtime {
    Runtime::build(loaded.clone()).unwrap_or_else(|e| panic!("runtime: {e}"))
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

/// One caller asking for one path.
struct Request {
    principal: Principal,
    path: CanonicalPath,
}

impl Request {
    fn new(principal: Principal, path: &str) -> Self {
        let path = normalize(path).unwrap_or_else(|e| panic!("path {path}: {e:?}"));
        Self { principal, path }
    }
}

/// The proxy's per-response work for a `GET`: route, request-level decision,
/// filter (parse, walk and decisions, serialise).
fn respond(rt: &Runtime, req: &Request, body: &[u8]) -> Vec<u8> {
    let Routed::Route(m) = route(&rt.decisions, "GET", &req.path) else {
        panic!("no route for {}", req.path.as_str());
    };
    let Ok(decided) = decide(&rt.decisions, &m, &req.principal) else {
        panic!("request-level decision denied {}", req.path.as_str());
    };
    let mut report = FilterReport::default();
    match filter_response_body(&rt.decisions, &decided, body, &mut report) {
        Ok(out) => out,
        Err(stop) => panic!("filter refused: {stop:?}"),
    }
}

/// The same as [`respond`], through the streamed-list redactor the proxy
/// uses for long lists, fed in 16 KiB pieces as the proxy feeds it.
fn respond_streamed(rt: &Runtime, req: &Request, body: &[u8]) -> Vec<u8> {
    let Routed::Route(m) = route(&rt.decisions, "GET", &req.path) else {
        panic!("no route for {}", req.path.as_str());
    };
    let Ok(decided) = decide(&rt.decisions, &m, &req.principal) else {
        panic!("request-level decision denied {}", req.path.as_str());
    };
    let Some(mut list) = stream_response_body(&rt.decisions, &decided) else {
        panic!("{} does not stream", req.path.as_str());
    };
    let mut out = Vec::with_capacity(body.len());
    for piece in body.chunks(16 * 1024) {
        if let Err(e) = list.feed(piece, &mut out) {
            panic!("stream refused: {e:?}");
        }
    }
    if let Err(e) = list.finish(&mut out) {
        panic!("stream refused: {e:?}");
    }
    out
}

/// The floor: what any JSON-rewriting proxy pays for the same bytes.
fn parse_and_serialise(body: &[u8]) -> Vec<u8> {
    let doc: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("body: {e}"));
    serde_json::to_vec(&doc).unwrap_or_else(|e| panic!("serialise: {e}"))
}

/// Bodies the benchmark filters, each built once.
struct Bodies {
    customers_large: Vec<u8>,
    customers_reference: Vec<u8>,
    /// `GET /customers/c-1001/orders` as if c-1001 had placed thousands of
    /// orders: every record owned by the caller.
    own_orders_large: Vec<u8>,
    own_orders_reference: Vec<u8>,
    /// The same route answered with orders of ~1,800 different customers (an
    /// upstream leaking other customers' records): one owner per few records.
    mixed_orders_large: Vec<u8>,
    /// `GET /customers/c-1001`.
    single_customer: Vec<u8>,
}

impl Bodies {
    fn build() -> Self {
        let customers_large = customer_list_body(LARGE_LIST);
        let customers_reference = customer_list_body(REFERENCE_LIST);
        let own_orders_large = orders_body(customers_large.len(), true);
        let own_orders_reference = orders_body(customers_reference.len(), true);
        let mixed_orders_large = orders_body(customers_large.len(), false);
        let single_customer = serde_json::to_vec(&customer(0)).unwrap_or_default();
        Self {
            customers_large,
            customers_reference,
            own_orders_large,
            own_orders_reference,
            mixed_orders_large,
            single_customer,
        }
    }
}

/// A `GET /customers/c-1001/orders` body of at least `min_len` bytes, shaped
/// as the demo shop sends it, from the generated order histories of
/// customers 0, 1, 2, ...; with `own`, every order is re-assigned to c-1001
/// (order ids stay unique).
fn orders_body(min_len: usize, own: bool) -> Vec<u8> {
    let owner = customer_id(0);
    let mut orders = Vec::new();
    let mut len = 0;
    let mut index = 0;
    while len < min_len {
        for mut order in orders_for(index) {
            if own {
                order["customer_id"] = json!(owner);
            }
            len += serde_json::to_vec(&order).map_or(0, |b| b.len()) + 1;
            orders.push(order);
        }
        index += 1;
    }
    serde_json::to_vec(&json!({ "customer_id": owner, "orders": orders })).unwrap_or_default()
}

/// Records under `key` of a filtered body.
fn records<'v>(body: &'v Value, key: &str) -> &'v [Value] {
    body[key].as_array().map_or(&[], Vec::as_slice)
}

fn parse(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("filtered body is not JSON: {e}"))
}

/// Checks that a case filters what the reference policies say it should: a
/// benchmark of the wrong work measures nothing. Run once per benchmark,
/// before timing it (and so in `--test` mode too).
fn check_case(case: &str, sent: &[u8], out: &[u8]) {
    let doc = parse(out);
    let sent_doc = parse(sent);
    let customers = records(&doc, "customers");
    let orders = records(&doc, "orders");
    let ok = match case {
        "support_agent" => {
            customers.len() == records(&sent_doc, "customers").len()
                && customers.iter().all(|c| {
                    c.get("name").is_some()
                        && c.get("id_card_number").is_none()
                        && c.get("birth_date").is_none()
                        && c["phone"].as_str().is_some_and(|p| p.contains('*'))
                })
        }
        // Only customers who consent to marketing, each under a pseudonym,
        // with no name or phone (records without consent are dropped whole).
        "marketing_analyst" => {
            let sent_customers = records(&sent_doc, "customers");
            let consenting = sent_customers
                .iter()
                .filter(|c| c["consent"]["marketing"] == json!(true))
                .count();
            let sent_ids: std::collections::HashSet<&Value> =
                sent_customers.iter().map(|c| &c["id"]).collect();
            consenting > 0
                && consenting < sent_customers.len()
                && customers.len() == consenting
                && customers.iter().all(|c| {
                    c.get("name").is_none()
                        && c.get("phone").is_none()
                        && c["id"].is_string()
                        && !sent_ids.contains(&c["id"])
                })
                && customers.iter().any(|c| c.get("gender").is_some())
        }
        // Everything in full: the filter must give back the parsed body.
        "data_protection_officer" => out == parse_and_serialise(sent),
        "customer_owner_rules" => {
            let owner = json!(customer_id(0));
            let own_sent = records(&sent_doc, "orders")
                .iter()
                .filter(|o| o["customer_id"] == owner)
                .count();
            orders.len() == own_sent
                && orders.iter().all(|o| {
                    o["customer_id"] == owner
                        && o.get("total").is_some()
                        && o["payment"]["card_number"]
                            .as_str()
                            .is_some_and(|n| n.starts_with('*'))
                })
        }
        "small_request" => doc["name"].is_string() && doc.get("id_card_number").is_none(),
        other => panic!("no check for case {other}"),
    };
    assert!(
        ok,
        "case {case} did not filter as the reference policies say"
    );
}

/// Benchmarks `respond` for one request and body, checking the output the
/// first time criterion runs it (criterion skips filtered-out benchmarks
/// entirely, so a filtered run checks only what it measures).
fn bench_respond(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    case: &str,
    rt: &Runtime,
    req: &Request,
    body: &[u8],
) {
    g.throughput(Throughput::Bytes(body.len() as u64));
    let mut checked = false;
    g.bench_function(id, |b| {
        if !checked {
            check_case(case, body, &respond(rt, req, body));
            checked = true;
        }
        b.iter(|| respond(rt, req, black_box(body)))
    });
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, flat: bool) {
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    if flat {
        // Large bodies take milliseconds: equal-sized samples keep the run
        // short where linear sampling would need hundreds of iterations.
        g.sampling_mode(SamplingMode::Flat);
    }
}

fn bench_redaction(c: &mut Criterion) {
    let loaded = reference_config();
    let rt = build_runtime(&loaded);
    let bodies = Bodies::build();

    let support = Request::new(
        principal("agent-7", "support_agent", false, None),
        "/customers",
    );
    let marketing = Request::new(
        principal("analyst-3", "marketing_analyst", false, Some("marketing")),
        "/customers",
    );
    let dpo = Request::new(
        principal("dpo-1", "data_protection_officer", true, None),
        "/customers",
    );
    let owner_id = customer_id(0);
    let customer = Request::new(
        principal(&owner_id, "customer", false, None),
        &format!("/customers/{owner_id}/orders"),
    );
    let support_single = Request::new(
        principal("agent-7", "support_agent", false, None),
        &format!("/customers/{owner_id}"),
    );

    let baseline_bodies: [(&str, &[u8]); 6] = [
        ("customers_5000", &bodies.customers_large),
        ("customers_2300", &bodies.customers_reference),
        ("orders_own_large", &bodies.own_orders_large),
        ("orders_own_reference", &bodies.own_orders_reference),
        ("orders_mixed_large", &bodies.mixed_orders_large),
        ("customer_c-1001", &bodies.single_customer),
    ];
    let mut g = c.benchmark_group("serde_json_baseline");
    for (id, body) in baseline_bodies {
        configure(&mut g, body.len() > 100_000);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(id, |b| b.iter(|| parse_and_serialise(black_box(body))));
    }
    g.finish();

    let list_cases: [(&str, &Request); 3] = [
        ("support_agent", &support),
        ("marketing_analyst", &marketing),
        ("data_protection_officer", &dpo),
    ];
    for (case, req) in list_cases {
        let mut g = c.benchmark_group(format!("filter/{case}"));
        configure(&mut g, true);
        bench_respond(
            &mut g,
            "customers_5000",
            case,
            &rt,
            req,
            &bodies.customers_large,
        );
        bench_respond(
            &mut g,
            "customers_2300",
            case,
            &rt,
            req,
            &bodies.customers_reference,
        );
        g.finish();
    }

    // The streamed-list path (bodies over `stream_responses_over_bytes`):
    // the same output, record by record.
    let mut g = c.benchmark_group("streamed/support_agent");
    configure(&mut g, true);
    let body = &bodies.customers_large;
    g.throughput(Throughput::Bytes(body.len() as u64));
    let mut checked = false;
    g.bench_function("customers_5000", |b| {
        if !checked {
            assert!(
                respond_streamed(&rt, &support, body) == respond(&rt, &support, body),
                "streamed and whole redaction differ"
            );
            checked = true;
        }
        b.iter(|| respond_streamed(&rt, &support, black_box(body)))
    });
    g.finish();

    let case = "customer_owner_rules";
    let mut g = c.benchmark_group(format!("filter/{case}"));
    configure(&mut g, true);
    for (id, body) in [
        ("orders_own_large", &bodies.own_orders_large),
        ("orders_own_reference", &bodies.own_orders_reference),
        ("orders_mixed_large", &bodies.mixed_orders_large),
    ] {
        bench_respond(&mut g, id, case, &rt, &customer, body);
    }
    g.finish();

    let mut g = c.benchmark_group("small_request");
    configure(&mut g, false);
    bench_respond(
        &mut g,
        "support_agent/customer_c-1001",
        "small_request",
        &rt,
        &support_single,
        &bodies.single_customer,
    );
    g.finish();

    // A fresh runtime per iteration: the engine's analyses and decision
    // cache start empty, as after a start or a policy reload. Building it is
    // setup, outside the timing; dropping it happens outside too.
    let cold_cases: [(&str, &Request, &[u8]); 5] = [
        (
            "support_agent/customers_5000",
            &support,
            &bodies.customers_large,
        ),
        (
            "marketing_analyst/customers_5000",
            &marketing,
            &bodies.customers_large,
        ),
        (
            "customer_owner_rules/orders_own_large",
            &customer,
            &bodies.own_orders_large,
        ),
        (
            "customer_owner_rules/orders_mixed_large",
            &customer,
            &bodies.mixed_orders_large,
        ),
        (
            "small_request/support_agent",
            &support_single,
            &bodies.single_customer,
        ),
    ];
    let mut g = c.benchmark_group("cold_cache");
    for (id, req, body) in cold_cases {
        configure(&mut g, true);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(id, |b| {
            b.iter_batched_ref(
                || build_runtime(&loaded),
                |fresh| respond(fresh, req, black_box(body)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_redaction);
criterion_main!(benches);
