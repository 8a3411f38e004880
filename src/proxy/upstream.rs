//! The pooled HTTP/1.1 client toward the protected service: plain HTTP
//! (the sidecar default, to a loopback service) or TLS with a configured CA
//! bundle, SNI name and optional client certificate.

use super::ProxyBody;
use crate::config::LoadedConfig;
use fieldguard_core::error::ConfigError;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Unavailable,
    Timeout,
    /// The client's request body stalled while it was being streamed
    /// (`limits.request_body_timeout_ms`): the client's fault, not the
    /// upstream's.
    RequestBodyStalled,
}

pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    scheme: Scheme,
    pub authority: Authority,
    response_timeout: Duration,
    pub preserve_host: bool,
}

impl Upstream {
    /// `base` is the checked `upstream.url` (`runtime::upstream_url`).
    pub fn new(loaded: &LoadedConfig, base: &Uri) -> Result<Self, ConfigError> {
        let cfg = &loaded.config.upstream;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        connector.enforce_http(false);
        let https = base.scheme() == Some(&Scheme::HTTPS);
        let connector = match (&cfg.tls, https) {
            (Some(tls), true) => {
                let builder = HttpsConnectorBuilder::new()
                    .with_tls_config(crate::tls::client_config(tls, loaded.origin())?)
                    .https_only();
                let builder = match &tls.server_name {
                    Some(name) => {
                        let name =
                            rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                                ConfigError::file(
                                    &loaded.file,
                                    format!(
                                        "upstream.tls.server_name: {name:?} is not a valid name"
                                    ),
                                )
                            })?;
                        builder.with_server_name_resolver(FixedServerNameResolver::new(name))
                    }
                    None => builder,
                };
                builder.enable_http1().wrap_connector(connector)
            }
            (None, true) => {
                return Err(ConfigError::file(
                    &loaded.file,
                    "upstream.tls: an https:// upstream needs `ca_file`",
                ));
            }
            (Some(_), false) => {
                return Err(ConfigError::file(
                    &loaded.file,
                    "upstream.tls is set but upstream.url is http://",
                ));
            }
            // Plain HTTP: the TLS config is never used (https is refused by
            // `upstream_url` without `upstream.tls`), so it trusts nothing.
            (None, false) => HttpsConnectorBuilder::new()
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                        .with_safe_default_protocol_versions()
                        .map_err(|e| ConfigError::file(&loaded.file, e.to_string()))?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);
        Ok(Self {
            client,
            scheme: base.scheme().cloned().unwrap_or(Scheme::HTTP),
            // `runtime::upstream_url` checked the authority exists.
            authority: base
                .authority()
                .cloned()
                .unwrap_or_else(|| Authority::from_static("127.0.0.1")),
            response_timeout: Duration::from_millis(cfg.response_timeout_ms),
            preserve_host: cfg.preserve_host,
        })
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
            Ok(Err(e)) if super::stall::is_stalled(&e) => {
                tracing::debug!("upstream request aborted: {e}");
                Err(UpstreamError::RequestBodyStalled)
            }
            Ok(Err(e)) => {
                fieldguard_core::repeated_warn!(
                    fieldguard_core::repeated::Kind::UpstreamFailed,
                    "upstream request failed: {e}"
                );
                Err(UpstreamError::Unavailable)
            }
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
}
