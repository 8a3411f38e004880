//! The operators' listener, apart from client traffic: `/metrics`
//! (Prometheus text format), `/healthz` (the process is alive), `/readyz`
//! (policies loaded and the audit sink writable: send traffic here),
//! `/policies` (what is enforced right now) and `/observed` (what
//! observing routes saw of members the configuration does not name, for
//! `fieldguard onboard observed`).
//!
//! Bind it to loopback or a management network: it says which policies are
//! loaded, though never any request data.
//!
//! The listener is given an [`AdminHandle`], not the proxy: it can read
//! what an operator may see and ask for a reload, and it cannot reach
//! client traffic, identities, the upstream or the audit writer.

use crate::observed_store::ObservedSnapshot;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin endpoints listen. Loopback by default: metrics and
    /// policy ids are for operators, not for the network at large.
    #[serde(default = "default_admin_address")]
    pub address: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: default_admin_address(),
        }
    }
}

fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

/// What the admin listener may see and do. The proxy implements it
/// (`proxy::admin_handle`); tests may implement it with fixed answers.
pub trait AdminHandle: Send + Sync + 'static {
    /// The version of the policy set being enforced.
    fn policy_version(&self) -> String;
    /// The policy set being enforced, described for `/policies`: its
    /// version, files, policies and routes.
    fn policies(&self) -> serde_json::Value;
    /// How the most recent reload went.
    fn last_reload(&self) -> ReloadStatus;
    /// Rebuilds the runtime from its files and swaps it in: the new
    /// version, or why not, with the old one still serving. Blocking (it
    /// parses and validates every file).
    fn reload(&self) -> Result<String, ReloadRefused>;
    /// The Prometheus exposition (text format), gauges sampled now.
    fn metrics_text(&self) -> Vec<u8>;
    /// The audit sink: `None` when none is configured, else whether it
    /// accepts records.
    fn audit_healthy(&self) -> Option<bool>;
    /// What observing routes saw (counts, never values).
    fn observed(&self) -> ObservedSnapshot;
}

/// Why `POST /reload` changed nothing.
#[derive(Debug)]
pub struct ReloadRefused {
    /// The one-line form (`file:line: reason (help: …)`).
    pub reason: String,
    /// The file error behind it, when a file was at fault: its position
    /// and help go into the answer as fields.
    pub config: Option<fieldguard_core::error::ConfigError>,
}

/// The outcome of the most recent reload attempt, as `/policies` shows it.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    pub at: Option<SystemTime>,
    /// `file:line: reason` of the last failed attempt, cleared by a success.
    pub error: Option<String>,
    pub attempts: u64,
}

/// Serves the admin endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, proxy: Arc<dyn AdminHandle>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                fieldguard_core::repeated_warn!(
                    fieldguard_core::repeated::Kind::Accept,
                    "admin accept failed: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move {
                    if req.uri().path() == "/reload" && req.method() == Method::POST {
                        return Ok::<_, Infallible>(reload(proxy).await);
                    }
                    Ok::<_, Infallible>(handle(proxy.as_ref(), &req))
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "admin connection ended: {e}");
            }
        });
    }
}

/// `POST /reload`: rebuild and swap the runtime; 422 with the reason (and
/// the version still serving) when the new files are invalid.
async fn reload(proxy: Arc<dyn AdminHandle>) -> Response<Full<Bytes>> {
    // Rebuilding parses and validates every file: off the async workers.
    let p = proxy.clone();
    let result = tokio::task::spawn_blocking(move || p.reload())
        .await
        .unwrap_or_else(|e| {
            Err(ReloadRefused {
                reason: format!("reload task failed: {e}"),
                config: None,
            })
        });
    match result {
        Ok(version) => json(
            StatusCode::OK,
            &serde_json::json!({"reloaded": true, "version": version}),
        ),
        Err(refused) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "reloaded": false,
                "error": refused.reason,
                // Where to look, for tools: the same as in the error text.
                "file": refused.config.as_ref().map(|e| e.file.display().to_string()),
                "line": refused.config.as_ref().and_then(|e| e.line),
                "column": refused.config.as_ref().and_then(|e| e.column()),
                "help": refused.config.as_ref().and_then(|e| e.help_text()),
                "active_version": proxy.policy_version(),
            }),
        ),
    }
}

fn handle(proxy: &dyn AdminHandle, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/reload" {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "method_not_allowed", "message": "use POST /reload"}),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "method_not_allowed"}),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(proxy.metrics_text())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" => {
            let audit = match proxy.audit_healthy() {
                None => "not_configured",
                Some(true) => "ok",
                Some(false) => "failing",
            };
            let ready = audit != "failing";
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                &serde_json::json!({
                    "ready": ready,
                    "policies": "loaded",
                    "policy_version": proxy.policy_version(),
                    "audit_sink": audit,
                }),
            )
        }
        "/policies" => json(StatusCode::OK, &policies(proxy)),
        // Counts only (never values): what observing routes saw of the
        // members their configuration does not name.
        "/observed" => match serde_json::to_value(proxy.observed()) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(_) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "internal"}),
            ),
        },
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found"}),
        ),
    }
}

/// `/policies`: the enforced set as it describes itself, and how the
/// most recent reload went.
fn policies(proxy: &dyn AdminHandle) -> serde_json::Value {
    let mut v = proxy.policies();
    let last = proxy.last_reload();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "last_reload".into(),
            serde_json::json!({
                "at": last.at.map(fieldguard_core::time::rfc3339_millis),
                "attempts": last.attempts,
                "error": last.error,
            }),
        );
    }
    v
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
