//! The reverse proxy: accepts HTTP/1.1 and h2c connections and runs each
//! request through [`handler`].

pub mod body;
pub mod errors;
pub mod exchange;
mod handler;
pub mod headers;
pub mod upstream;

use crate::error::ConfigError;
use crate::runtime::{Runtime, upstream_url};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use upstream::Upstream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type of everything the proxy sends: streamed or buffered.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Shared state of a running proxy.
pub struct Proxy {
    pub runtime: Arc<Runtime>,
    upstream: Upstream,
}

impl Proxy {
    pub fn new(runtime: Runtime) -> Result<Self, ConfigError> {
        let base = upstream_url(&runtime.config)?;
        let upstream = Upstream::new(&runtime.config.config.upstream, &base);
        Ok(Self {
            runtime: Arc::new(runtime),
            upstream,
        })
    }
}

/// Accepts connections until the task is dropped. HTTP/1.1 and HTTP/2
/// (prior knowledge, h2c) are both served on the same port.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handler::handle(&proxy, req, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
