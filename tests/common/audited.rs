//! The harness with the audit trail and the admin listener attached, as
//! `fieldguard run` starts them, plus readers for audit files and scrapes.

use super::{Harness, Reply};
use bytes::Bytes;
use fieldguard::audit::{self, AuditSettings, AuditWriter};
use fieldguard::config::Config;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::proxy::{self, Proxy};
use fieldguard::tools::audit::expand::Resolver;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Audited {
    pub h: Harness,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    writer: Option<AuditWriter>,
}

/// The demo shop and an audited proxy with the reference config.
pub async fn start_audited(settings: AuditSettings) -> Audited {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    start_audited_in_front_of(shop_addr, settings, |_| {}, vec![shop_task]).await
}

/// The demo shop and an audited proxy with a modified reference config,
/// counting bulk-read budgets on `clock` (milliseconds the test moves).
pub async fn start_audited_with_clock(
    settings: AuditSettings,
    modify: impl FnOnce(&mut Config),
    clock: fieldguard::budget::Clock,
) -> Audited {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    let proxy = Proxy::new(super::reference_runtime(shop_addr, modify))
        .unwrap()
        .with_budget_clock(clock);
    serve_audited(proxy, shop_addr, settings, vec![shop_task]).await
}

/// An audited proxy (and its admin listener) in front of any upstream.
pub async fn start_audited_in_front_of(
    upstream: SocketAddr,
    settings: AuditSettings,
    modify: impl FnOnce(&mut Config),
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Audited {
    let proxy = Proxy::new(super::reference_runtime(upstream, modify)).unwrap();
    serve_audited(proxy, upstream, settings, tasks).await
}

async fn serve_audited(
    proxy: Proxy,
    upstream: SocketAddr,
    settings: AuditSettings,
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Audited {
    let version = proxy.runtime().decisions.engine.bundle.version.clone();
    let (log, writer) = audit::start(&settings, proxy.metrics.audit.clone(), &version).unwrap();
    let proxy = Arc::new(proxy.with_audit(log));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let p = proxy.clone();
    tasks.push(tokio::spawn(async move {
        let _ = proxy::serve(listener, p).await;
    }));
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let p = proxy.clone();
    tasks.push(tokio::spawn(async move {
        let _ = fieldguard::admin::serve(admin, p).await;
    }));
    Audited {
        h: Harness {
            proxy_addr,
            shop_addr: upstream,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            tasks,
        },
        admin_addr,
        proxy,
        writer: Some(writer),
    }
}

impl Audited {
    /// Drains the audit queue and stops the writer (as on SIGTERM); the
    /// servers keep running (new requests get 503) until dropped.
    pub async fn drain(&mut self) {
        if let Some(w) = self.writer.take() {
            w.shutdown().await;
        }
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let req = Request::builder()
            .uri(format!("http://{}{}", self.admin_addr, path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
            .await
            .expect("admin answered within 10 s")
            .expect("admin request sent");
        Reply::from_response(resp).await
    }

    /// A scrape of `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        let r = self.admin_get("/metrics").await;
        assert_eq!(r.status, 200);
        Scrape(r.text())
    }
}

/// Every record of an audit file (requests and events), parsed, with its
/// definition merged in: what it says in full. The definition records
/// themselves are not returned, nor the genesis and seal records that
/// begin and end each writer run's chain ([`chain_marks`] has those); each
/// definition must come before the records that use it, in the same file
/// (the writer's promise), or this panics. One file's lines are taken as
/// one writer's (runs one after the other), not interleaved.
pub fn records(path: &Path) -> Vec<Value> {
    let mut defs = Resolver::default();
    let mut out = Vec::new();
    for r in chain_records(path) {
        let defined = defs.define(&r);
        if !defined.unwrap_or_else(|e| panic!("{}: {e}", path.display())) && !is_mark(&r) {
            let full = defs.expand(r);
            out.push(full.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }
    out
}

/// Whether a line is a chain's genesis or seal record.
pub fn is_mark(r: &Value) -> bool {
    matches!(r["event"].as_str(), Some("genesis" | "seal"))
}

/// The genesis and seal records of an audit file, in order.
pub fn chain_marks(path: &Path) -> Vec<Value> {
    chain_records(path).into_iter().filter(is_mark).collect()
}

/// Every line of an audit file as written, parsed: definitions included,
/// references not expanded (for tests of the chain itself).
pub fn chain_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
        .collect()
}

/// One `/metrics` scrape in the text format.
pub struct Scrape(pub String);

impl Scrape {
    /// Sum of the samples of `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut total = 0.0;
        for line in self.0.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (n, lbls) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                continue;
            }
            let have: Vec<(String, String)> = split_labels(lbls);
            if labels
                .iter()
                .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            {
                total += value.parse::<f64>().unwrap();
            }
        }
        total
    }

    /// Metric family names in the scrape.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect()
    }
}

/// `a="x",b="y"` (values without commas or escaped quotes, as ours are).
fn split_labels(s: &str) -> Vec<(String, String)> {
    s.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// A harness speaking to an already running proxy (a child process).
pub fn harness_for(proxy_addr: SocketAddr) -> Harness {
    Harness {
        proxy_addr,
        shop_addr: proxy_addr,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        tasks: Vec::new(),
    }
}

/// `GET url`: status and body text.
pub async fn plain_get(url: &str) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::builder()
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .expect("answered within 10 s")
        .expect("request sent");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
