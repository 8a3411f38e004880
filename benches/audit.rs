//! What the audit trail adds to one request.
//!
//! `build` turns a finished request's `Exchange` into a record (on the
//! request's task); `build_and_seal` adds what the writer does per record
//! (canonical JSON of its shared part and the lookup of its definition,
//! canonical JSON of its line, SHA-256 chain hash; the definition itself is
//! written once, before the first iteration); `enqueue_and_write` runs the
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
use fieldguard::audit::chain::ChainKey;
use fieldguard::audit::seal::{Sealed, Sealer};
use fieldguard::audit::{AuditRecord, AuditSettings, FsyncPolicy, OnFull, WhenFull};
use fieldguard::config;
use fieldguard::demo::data::customer_list_body;
use fieldguard::exchange::Exchange;
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard::metrics::Metrics;
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
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
    let mut sealer = Sealer::new(
        fieldguard::audit::origin::new_tag(),
        ChainKey::new(None),
        None,
    );
    let mut first = Sealed::default();
    sealer.seal(AuditRecord::from_exchange(&ex, rt.decided_by()), &mut first);
    let mut next = Sealed::default();
    sealer.seal(AuditRecord::from_exchange(&ex, rt.decided_by()), &mut next);
    eprintln!(
        "audit record: {} bytes (its definition, written once per file: {} bytes)",
        next.bytes.len(),
        first.bytes.len() - next.bytes.len()
    );

    let mut g = c.benchmark_group("audit");
    g.bench_function("build", |b| {
        b.iter(|| black_box(AuditRecord::from_exchange(black_box(&ex), rt.decided_by())))
    });
    for (name, key) in [
        ("build_and_seal_sha256", ChainKey::new(None)),
        ("build_and_seal_hmac", ChainKey::new(Some(&[7u8; 32]))),
    ] {
        let mut sealer = Sealer::new(fieldguard::audit::origin::new_tag(), key, None);
        let mut out = Sealed::default();
        sealer.seal(AuditRecord::from_exchange(&ex, rt.decided_by()), &mut out);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.bytes.clear();
                let r = AuditRecord::from_exchange(black_box(&ex), rt.decided_by());
                sealer.seal(r, &mut out);
                black_box(out.bytes.len())
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
    // Sustained: when the writer falls behind, requests wait for a slot
    // (backpressure, timed) rather than being refused (which would end the
    // run: on a loaded machine the writer can lag behind this loop).
    settings.on_full = OnFull::Wait;
    settings.wait_timeout = Duration::from_secs(60);
    settings.max_file_bytes = 64 * 1024 * 1024;
    settings.max_files = 2;
    // Millions of iterations outgrow any retention: the oldest file goes
    // (under `refuse`, the default, the sink would stop the run).
    settings.retention.when_full = WhenFull::DeleteOldest;
    let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
    let (log, writer) = tokio_rt
        .block_on(async { fieldguard::audit::start(&settings, metrics.audit.clone(), "bench") })
        .unwrap_or_else(|e| panic!("audit: {e}"));
    g.bench_function("enqueue_and_write", |b| {
        b.iter(|| {
            tokio_rt.block_on(async {
                let slot = log.reserve().await.unwrap_or_else(|e| panic!("{e:?}"));
                log.submit(Some(slot), AuditRecord::from_exchange(&ex, rt.decided_by()));
            })
        })
    });
    g.finish();
    tokio_rt.block_on(writer.shutdown());
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
