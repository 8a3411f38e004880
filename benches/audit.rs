//! What the audit trail adds to one request.
//!
//! `build` turns a finished request's `Exchange` into a record (on the
//! request's task); `build_and_seal` adds what the writer does per record
//! (canonical JSON, SHA-256 chain hash, line); `enqueue_and_write` runs the
//! real path end to end: reserve a slot, build, submit, and let the real
//! writer task seal and append to a file (`fsync: interval`), sustained, so
//! the figure includes any backpressure from the writer.
//!
//! The request is the demo's marketing analyst listing 60 customers: a
//! decision with policy ids and a filter report touching every Customer
//! field, the largest record the reference deployment writes.
//!
//! `cargo bench --bench audit`; `-- --test` runs each case once.
//! Figures: docs/audit-and-metrics.md.

use criterion::{Criterion, criterion_group, criterion_main};
use fieldguard::audit::chain::{ChainKey, ChainState};
use fieldguard::audit::log::seal_record;
use fieldguard::audit::{AuditRecord, AuditSettings, FsyncPolicy};
use fieldguard::config;
use fieldguard::demo::data::customer_list_body;
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard::metrics::Metrics;
use fieldguard::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard::proxy::exchange::Exchange;
use fieldguard::redact::response::FilterReport;
use fieldguard::routing::normalize;
use fieldguard::runtime::Runtime;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn runtime() -> Runtime {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml");
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("reference config: {e}"));
    Runtime::build(loaded).unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// The exchange of `GET /customers` (60 records) by the marketing analyst,
/// as the handler leaves it.
fn exchange(rt: &Runtime) -> Exchange {
    let principal = Principal {
        id: "analyst-2".into(),
        roles: vec!["marketing_analyst".into()],
        mfa: false,
        purpose: Some("marketing".into()),
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    };
    let path = normalize("/customers").unwrap_or_else(|e| panic!("path: {e:?}"));
    let Routed::Route(m) = route(&rt.decisions, "GET", &path) else {
        panic!("GET /customers has a route");
    };
    let decided =
        decide(&rt.decisions, &m, &principal).unwrap_or_else(|_| panic!("analyst may list"));
    let mut report = FilterReport::default();
    filter_response_body(
        &rt.decisions,
        &decided,
        &customer_list_body(60),
        &mut report,
    )
    .unwrap_or_else(|_| panic!("list filters"));
    let mut ex = Exchange::new(
        "0f9c2a4e-4b8e-4c57-9d2b-3e1f7a6b5c4d".into(),
        "10.0.0.7:51234".parse().unwrap_or_else(|e| panic!("{e}")),
        http::Method::GET,
    );
    ex.route = Some(m.route.template.clone());
    ex.action = Some(m.route.action.clone());
    ex.resource = Some((decided.resource_type.clone(), decided.resource_id.clone()));
    ex.decision = Some(decided.decision.clone());
    ex.principal = Some(principal);
    ex.filter = Some(report);
    ex.upstream_status = Some(200);
    ex.upstream_latency = Some(Duration::from_micros(850));
    ex.status = 200;
    ex
}

fn bench_audit(c: &mut Criterion) {
    let rt = runtime();
    let ex = exchange(&rt);
    let sample = AuditRecord::from_exchange(&ex, &rt);
    let mut line = Vec::new();
    seal_record(
        sample,
        &mut ChainState::genesis(),
        &ChainKey::new(None),
        &mut line,
    );
    eprintln!("audit record: {} bytes", line.len());

    let mut g = c.benchmark_group("audit");
    g.bench_function("build", |b| {
        b.iter(|| black_box(AuditRecord::from_exchange(black_box(&ex), &rt)))
    });
    for (name, key) in [
        ("build_and_seal_sha256", ChainKey::new(None)),
        ("build_and_seal_hmac", ChainKey::new(Some(&[7u8; 32]))),
    ] {
        let mut chain = ChainState::genesis();
        let mut out = Vec::with_capacity(4096);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let r = AuditRecord::from_exchange(black_box(&ex), &rt);
                seal_record(r, &mut chain, &key, &mut out);
                black_box(out.len())
            })
        });
    }

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut settings = AuditSettings::for_file(dir.path().join("audit.log"));
    settings.fsync = FsyncPolicy::Interval;
    settings.max_file_bytes = 64 * 1024 * 1024;
    settings.max_files = 2;
    let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
    let (log, writer) = tokio_rt
        .block_on(async { fieldguard::audit::start(&settings, metrics.audit.clone()) })
        .unwrap_or_else(|e| panic!("audit: {e}"));
    g.bench_function("enqueue_and_write", |b| {
        b.iter(|| {
            tokio_rt.block_on(async {
                let slot = log.reserve().await.unwrap_or_else(|e| panic!("{e:?}"));
                log.submit(Some(slot), AuditRecord::from_exchange(&ex, &rt));
            })
        })
    });
    g.finish();
    tokio_rt.block_on(writer.shutdown());
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
