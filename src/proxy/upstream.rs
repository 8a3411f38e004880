//! The pooled HTTP/1.1 client toward the protected service.

use super::ProxyBody;
use crate::config::UpstreamConfig;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Unavailable,
    Timeout,
}

pub struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    scheme: Scheme,
    pub authority: Authority,
    response_timeout: Duration,
    pub preserve_host: bool,
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig, base: &Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);
        Self {
            client,
            scheme: base.scheme().cloned().unwrap_or(Scheme::HTTP),
            // `runtime::upstream_url` checked the authority exists.
            authority: base
                .authority()
                .cloned()
                .unwrap_or_else(|| Authority::from_static("127.0.0.1")),
            response_timeout: Duration::from_millis(cfg.response_timeout_ms),
            preserve_host: cfg.preserve_host,
        }
    }

    /// The upstream URI for a canonical path and the client's raw query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let pq = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }

    /// Sends a request; the response head must arrive within the timeout.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                tracing::warn!("upstream request failed: {e}");
                Err(UpstreamError::Unavailable)
            }
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
}
