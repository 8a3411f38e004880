//! Start-up and shutdown of a serving process (`fieldguard run`, `demo`):
//! attach the audit trail, start the admin listener, and on SIGTERM or
//! Ctrl-C stop accepting and drain the audit queue before exiting.

use crate::audit::{self, AuditSettings, AuditWriter};
use crate::proxy::Proxy;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why a serving process could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {address} (admin): {source}")]
    AdminListen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A bound socket without an address (or a listener that failed).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a listener stopped")]
    ListenerStopped,
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Drain(#[from] crate::proxy::server::DrainTimedOut),
    #[error("{0}")]
    Watch(#[from] crate::proxy::reload::WatchError),
}

/// Starts the audit writer and attaches the trail to `proxy`; also starts
/// the flusher of repeated-warning summaries (a serving process's log).
pub fn attach_audit(
    proxy: Proxy,
    settings: &AuditSettings,
) -> Result<(Proxy, AuditWriter), audit::StartError> {
    crate::logging::spawn_repeated_flusher();
    let version = proxy.runtime().decisions.engine.bundle.version.clone();
    let (log, writer) = audit::start(settings, proxy.metrics.audit.clone(), &version)?;
    Ok((proxy.with_audit(log), writer))
}

/// Binds and serves the admin listener; returns its bound address.
pub async fn spawn_admin(
    address: SocketAddr,
    proxy: Arc<Proxy>,
) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), ServiceError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServiceError::AdminListen { address, source })?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(crate::admin::serve(listener, proxy))))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves until a task ends (an error) or a shutdown signal arrives; then
/// stops the listeners, lets `server` finish every request in flight,
/// including those whose client already left (within
/// `limits.shutdown_grace_ms`), and drains the audit queue.
pub async fn serve_until_shutdown(
    server: &Arc<crate::proxy::server::Server>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    writer: AuditWriter,
) -> Result<(), ServiceError> {
    let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
    let mut set = tokio::task::JoinSet::new();
    for t in tasks {
        set.spawn(t);
    }
    let first_end = async {
        match set.join_next().await {
            None => std::future::pending().await,
            Some(Ok(Ok(Ok(())))) => Err(ServiceError::ListenerStopped),
            Some(Ok(Ok(Err(e)))) => Err(ServiceError::Io(e)),
            Some(Ok(Err(e)) | Err(e)) => Err(ServiceError::Task(e)),
        }
    };
    let result: Result<(), ServiceError> = tokio::select! {
        r = first_end => r,
        _ = shutdown_signal() => {
            crate::logging::notice(format_args!(
                "fieldguard: shutting down, draining the audit queue"
            ));
            Ok(())
        }
    };
    // Requests in flight finish (and their records are queued), whether or
    // not their client is still there, before the audit queue is drained.
    let drained = server.drain().await;
    for a in aborts {
        a.abort();
    }
    // The chain's seal says why it ended.
    writer
        .shutdown_because(if result.is_ok() { "shutdown" } else { "error" })
        .await;
    result.and(drained.map_err(ServiceError::Drain))
}

/// Makes the proxy reloadable from `config` (after `adjust`), starts the
/// file watcher when the config asks for it, and reloads on SIGHUP. The
/// returned watcher must live as long as the process serves.
pub fn start_reloading(
    proxy: &Arc<Proxy>,
    config: std::path::PathBuf,
    adjust: crate::proxy::reload::Adjust,
) -> Result<Option<notify::RecommendedWatcher>, ServiceError> {
    proxy.set_reload_source(config, adjust);
    tokio::spawn(crate::proxy::reload::reload_on_sighup(proxy.clone()));
    let reload = proxy.runtime().config.config.reload.clone();
    if !reload.watch {
        return Ok(None);
    }
    crate::proxy::reload::watch(
        proxy.clone(),
        std::time::Duration::from_millis(reload.debounce_ms),
    )
    .map(Some)
    .map_err(ServiceError::Watch)
}
