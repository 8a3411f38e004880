//! Test harness: the real demo shop and the real proxy on 127.0.0.1
//! ephemeral ports, spoken to over real HTTP.
#![allow(
    dead_code,
    reason = "each test binary uses only part of the shared harness"
)]

pub mod audited;
pub mod demo_process;
pub mod doc_edit;
pub mod drafted;
pub mod fleet;
pub mod scratch_git;
pub mod scripted;
pub mod wire;

use bytes::Bytes;
use fieldguard::config::{self, Config, ListenerConfig};
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::identity::mint::{TokenRequest, mint_hs256, mint_hs256_with_claims};
use fieldguard::proxy::{self, Proxy};
use fieldguard::runtime::Runtime;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The `promtool` to run (FIELDGUARD_PROMTOOL, else the one on PATH), or
/// `None` after saying the check is skipped; with
/// FIELDGUARD_REQUIRE_PROMTOOL set (CI) a missing one fails the test.
pub fn promtool() -> Option<String> {
    let promtool = std::env::var("FIELDGUARD_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let available = std::process::Command::new(&promtool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("FIELDGUARD_REQUIRE_PROMTOOL").is_none(),
            "FIELDGUARD_REQUIRE_PROMTOOL is set but `{promtool}` cannot run"
        );
        eprintln!("promtool not found: check skipped");
        return None;
    }
    Some(promtool)
}

pub fn demo_config_path() -> PathBuf {
    repo_path("examples/demo/fieldguard.yaml")
}

/// The reference configuration's text for a `fieldguard run` process of a
/// test: its listener on `listen`, its upstream at `upstream`, and the
/// policy, schema and key paths made absolute (the file is written
/// elsewhere). Each replacement must find its text: a changed reference
/// config fails here, not in a confusing start-up.
pub fn reference_config_text(listen: &str, upstream: &str) -> String {
    let demo = repo_path("examples/demo");
    let policies = repo_path("policies");
    let text = std::fs::read_to_string(demo_config_path()).unwrap();
    let replace = |t: String, from: &str, to: &str| {
        assert!(
            t.contains(from),
            "reference config changed: {from:?} not found"
        );
        t.replace(from, to)
    };
    let mut text = replace(
        text,
        "  - address: 127.0.0.1:8080",
        &format!("  - address: {listen}"),
    );
    text = replace(
        text,
        "  url: http://127.0.0.1:9000",
        &format!("  url: http://{upstream}"),
    );
    text = replace(
        text,
        "directory: ../../policies",
        &format!("directory: {}", policies.display()),
    );
    text = replace(
        text,
        "schema: ../../policies/schema.cedarschema",
        &format!("schema: {}", policies.join("schema.cedarschema").display()),
    );
    replace(text, "secrets/", &format!("{}/secrets/", demo.display()))
}

pub struct Harness {
    pub proxy_addr: SocketAddr,
    pub shop_addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads a whole response.
    pub async fn from_response(resp: http::Response<hyper::body::Incoming>) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Starts the demo shop and the proxy with the reference config.
pub async fn start() -> Harness {
    start_with(|_| {}).await
}

/// Starts them with a modified reference config.
pub async fn start_with(modify: impl FnOnce(&mut Config)) -> Harness {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    start_in_front_of(shop_addr, modify, vec![shop_task]).await
}

/// The reference deployment's runtime, in front of `upstream`, changed by
/// `modify`.
pub fn reference_runtime(upstream: SocketAddr, modify: impl FnOnce(&mut Config)) -> Runtime {
    let mut loaded = config::load(&demo_config_path()).unwrap();
    loaded.config.upstream.url.value = format!("http://{upstream}");
    loaded.config.listeners = vec![ListenerConfig {
        address: "127.0.0.1:0".parse().unwrap(),
    }];
    modify(&mut loaded.config);
    Runtime::build(loaded).unwrap()
}

/// Starts the proxy in front of any upstream.
pub async fn start_in_front_of(
    upstream: SocketAddr,
    modify: impl FnOnce(&mut Config),
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Harness {
    serve_runtime(reference_runtime(upstream, modify), upstream, tasks).await
}

/// Starts the proxy with the configuration file `config` in front of
/// `upstream` (its listener and upstream address replaced).
pub async fn start_config_in_front_of(
    config_file: &std::path::Path,
    upstream: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Harness {
    let mut loaded = config::load(config_file).unwrap_or_else(|e| panic!("{e}"));
    loaded.config.upstream.url.value = format!("http://{upstream}");
    loaded.config.listeners = vec![ListenerConfig {
        address: "127.0.0.1:0".parse().unwrap(),
    }];
    let rt = Runtime::build(loaded).unwrap_or_else(|e| panic!("{e}"));
    serve_runtime(rt, upstream, tasks).await
}

async fn serve_runtime(
    rt: Runtime,
    upstream: SocketAddr,
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Harness {
    let proxy = Arc::new(Proxy::new(rt).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    tasks.push(tokio::spawn(async move {
        let _ = proxy::serve(listener, proxy).await;
    }));
    Harness {
        proxy_addr,
        shop_addr: upstream,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        tasks,
    }
}

/// The reference config's HS256 secret (for hand-made tokens).
pub fn demo_secret() -> Vec<u8> {
    let raw = std::fs::read(repo_path("examples/demo/secrets/jwt-hs256.key")).unwrap();
    raw.trim_ascii_end().to_vec()
}

/// A token the reference config accepts.
pub fn token(role: &str, sub: &str, mfa: bool, purpose: Option<&str>) -> String {
    mint_hs256(
        &demo_secret(),
        &TokenRequest {
            sub: sub.into(),
            roles: vec![role.into()],
            mfa,
            purpose: purpose.map(str::to_string),
            ttl_secs: 600,
            issuer: Some("fieldguard-demo".into()),
            audience: Some("demo-shop".into()),
        },
    )
    .unwrap()
}

/// A token the reference config accepts, with further string claims (a
/// partner's `carrier`).
pub fn token_with_claims(
    role: &str,
    sub: &str,
    mfa: bool,
    purpose: Option<&str>,
    claims: &[(&str, &str)],
) -> String {
    let extra = claims
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    mint_hs256_with_claims(
        &demo_secret(),
        &TokenRequest {
            sub: sub.into(),
            roles: vec![role.into()],
            mfa,
            purpose: purpose.map(str::to_string),
            ttl_secs: 600,
            issuer: Some("fieldguard-demo".into()),
            audience: Some("demo-shop".into()),
        },
        &extra,
    )
    .unwrap()
}

impl Harness {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.proxy_addr, path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .unwrap();
        let resp =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.client.request(req))
                .await
                .expect("proxy answered within 10 s")
                .expect("request sent");
        Reply::from_response(resp).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), &[], None).await
    }

    pub async fn send_json(&self, method: Method, path: &str, token: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            method,
            path,
            Some(token),
            &[("content-type", "application/json")],
            Some(&bytes),
        )
        .await
    }

    /// Straight to the shop, bypassing the proxy (to compare).
    pub async fn upstream_get(&self, path: &str) -> Reply {
        let req = Request::builder()
            .uri(format!("http://{}{}", self.shop_addr, path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        Reply::from_response(resp).await
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Every dot path to a leaf value (arrays are descended into without indexes).
pub fn leaf_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(x, &p, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// Copies a folder tree (tests edit copies of `policies/` and `examples/`).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs the `fieldguard` binary with `args` in `cwd`: (success, stdout,
/// stderr).
pub fn fieldguard(cwd: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
