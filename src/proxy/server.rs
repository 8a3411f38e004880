//! The listener side of the proxy: accepting connections within the
//! configured limits, TLS handshakes, per-connection timeouts, the
//! concurrency limit, and graceful shutdown.
//!
//! One [`Server`] serves any number of listeners and owns the limits they
//! share (open connections, requests in flight). [`Server::shutdown`] stops
//! every accept loop and asks every connection to finish what it is doing;
//! [`Server::drained`] resolves once the last connection has closed and the
//! last request's work (which outlives a client that left, see
//! [`super::detached`]) has finished.

use super::detached::{self, InFlight};
use super::errors::Refusal;
use super::framing::{Framing, FramingIo, Tracker, TrackerLimits};
use super::{Proxy, ProxyBody, handler, headers};
use crate::tls::{ServerTls, TlsConnection};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Headers by which TLS-terminating proxies tell an upstream about a client
/// certificate. fieldguard never sets them, so one on a client request can
/// only be forged; they are removed, in every spelling a backend folds to
/// the same name (`X_SSL_Client_Cert`), before anything else sees the
/// request.
const FORGEABLE_CERT_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-forwarded-client-cert"),
    HeaderName::from_static("x-client-cert"),
    HeaderName::from_static("x-ssl-client-cert"),
    HeaderName::from_static("x-ssl-client-dn"),
    HeaderName::from_static("ssl-client-cert"),
];

/// Limits of the listener side, from `limits:`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
    max_headers: usize,
}

impl Limits {
    /// hyper's HTTP/1 read buffer: the largest request head it accepts.
    fn max_buf_size(&self) -> usize {
        self.max_header_bytes.max(8192)
    }
}

/// Shared state of every listener of one proxy.
pub struct Server {
    proxy: Arc<Proxy>,
    tls: Option<Arc<ServerTls>>,
    limits: Limits,
    connections: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    stop: watch::Sender<bool>,
    /// Open connections.
    open: Arc<InFlight>,
    /// Requests' work under way, whether or not their client is still there.
    work: Arc<InFlight>,
}

impl Server {
    /// `tls`: terminate TLS on every listener with this config.
    pub fn new(proxy: Arc<Proxy>, tls: Option<Arc<ServerTls>>) -> Arc<Self> {
        let rt = proxy.runtime();
        let l = &rt.decisions.limits;
        let limits = Limits {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms.max(1)),
            max_header_bytes: l.max_header_bytes,
            max_headers: l.max_headers.max(1),
        };
        let connections = Arc::new(Semaphore::new(l.max_connections.max(1)));
        let requests = Arc::new(Semaphore::new(l.max_concurrent_requests.max(1)));
        if let Some(t) = &tls {
            t.spawn_reloader();
        }
        Arc::new(Self {
            proxy,
            tls,
            limits,
            connections,
            requests,
            stop: watch::channel(false).0,
            open: Arc::default(),
            work: Arc::default(),
        })
    }

    /// Accepts connections until [`Server::shutdown`]; then returns, and the
    /// listener is closed (new clients are refused by the kernel).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return Ok(());
            }
            // Waiting for a connection slot before accepting leaves excess
            // clients in the kernel's bounded backlog.
            let permit = tokio::select! {
                p = self.connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
                _ = stop.changed() => return Ok(()),
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        fieldguard_core::repeated_warn!(fieldguard_core::repeated::Kind::Accept, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let open = self.open.enter();
            let server = self.clone();
            tokio::spawn(async move {
                server.connection(stream, peer, permit).await;
                drop(open);
            });
        }
    }

    /// Stops accepting on every listener and asks every open connection to
    /// close once its requests in flight are answered.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves when no connection is open and no request's work is under
    /// way (after [`Server::shutdown`]: when every request in flight has
    /// finished and queued its audit record, including those whose client
    /// left). No new work starts once the connections are closed.
    pub async fn drained(&self) {
        self.open.none_left().await;
        self.work.none_left().await;
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.count()
    }

    /// Requests whose work is under way (answered or not, client there or not).
    pub fn requests_in_progress(&self) -> usize {
        self.work.count()
    }

    /// Of those, requests whose client has left (seen by their work): they
    /// finish, unanswered, for their upstream exchange and audit record.
    pub fn detached_requests(&self) -> usize {
        self.work.detached()
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        _slot: OwnedSemaphorePermit,
    ) {
        let Some(tls) = self.tls.clone() else {
            self.serve_connection(stream, peer, None).await;
            return;
        };
        let handshake = tls.acceptor().accept(stream);
        let stream = match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let info = tls.connection_info(stream.get_ref().1);
        self.serve_connection(stream, peer, Some(info)).await;
    }

    async fn serve_connection<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        tls: Option<TlsConnection>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let started = Instant::now();
        let activity = Arc::new(Activity {
            started,
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let io = ActivityIo {
            inner: io,
            activity: activity.clone(),
        };
        let framing = Framing::new();
        let io = FramingIo::new(
            io,
            Tracker::new(
                framing.clone(),
                TrackerLimits {
                    // hyper's read buffer can overshoot its maximum by a read.
                    max_head_bytes: self.limits.max_buf_size().saturating_mul(2),
                    max_headers: self.limits.max_headers,
                },
            ),
        );
        let server = self.clone();
        let conn_activity = activity.clone();
        let framing_seen = framing.clone();
        // The request's work starts here, when hyper hands the request over,
        // not when hyper first polls the future: hyper drops the future of
        // a client that left without polling it, and that request must
        // still be recorded.
        let service = service_fn(move |req| {
            let busy = conn_activity.busy();
            let started = server.start(req, peer, tls.clone(), &framing);
            async move {
                let _busy = busy;
                Ok::<_, Infallible>(started.response().await)
            }
        });

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(self.limits.max_buf_size())
            .max_headers(self.limits.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);

        let mut stop = self.stop.subscribe();
        let mut tick =
            tokio::time::interval((self.limits.idle_timeout / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        if *stop.borrow_and_update() {
            conn.as_mut().graceful_shutdown();
            closing = true;
        }
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "connection ended: {e}");
                        if let Some(reason) = refused_by_http_layer(&*e, &framing_seen) {
                            self.proxy.metrics.http_refused(reason);
                        }
                    }
                    return;
                }
                _ = stop.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tick.tick(), if !closing => {
                    if activity.idle_for() >= self.limits.idle_timeout {
                        tracing::debug!(%peer, "closing idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }

    /// One request, as hyper hands it over: limits first (refused at
    /// once), then its work in a task of its own that holds the request's
    /// concurrency permit until it is done, even if the client leaves.
    fn start(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        tls: Option<TlsConnection>,
        framing: &Framing,
    ) -> Started {
        if framing.refuse_next() {
            // HTTP/1 only; hyper closes such a connection anyway, and the
            // bytes after this head must never be read as a request.
            let mut resp = handler::refuse(&self.proxy, req, peer, Refusal::AmbiguousFraming);
            close_connection(&mut resp);
            return Started::Refused(resp);
        }
        let http1 = req.version() < Version::HTTP_2;
        headers::strip_folded(req.headers_mut(), &FORGEABLE_CERT_HEADERS);
        if req.headers().len() > self.limits.max_headers {
            // HTTP/1.1 is refused by hyper already; this covers HTTP/2.
            return Started::Refused(handler::refuse(
                &self.proxy,
                req,
                peer,
                Refusal::HeadersTooLarge,
            ));
        }
        let Ok(permit) = self.requests.clone().try_acquire_owned() else {
            return Started::Refused(handler::refuse(&self.proxy, req, peer, Refusal::Overloaded));
        };
        if let Some(t) = tls {
            req.extensions_mut().insert(t);
        }
        let request_id = headers::request_id(req.headers());
        let (reply, waiting) = detached::channel(request_id.clone(), &self.work);
        let work = self.work.enter();
        let proxy = self.proxy.clone();
        tokio::spawn(async move {
            handler::handle(&proxy, req, peer, request_id, reply).await;
            drop(permit);
            drop(work);
        });
        Started::Working { waiting, http1 }
    }
}

/// A request as [`Server::start`] left it.
enum Started {
    Refused(Response<ProxyBody>),
    Working {
        waiting: detached::Waiting,
        http1: bool,
    },
}

impl Started {
    async fn response(self) -> Response<ProxyBody> {
        match self {
            Started::Refused(resp) => resp,
            Started::Working { waiting, http1 } => {
                let mut resp = waiting.response().await;
                if http1 && resp.status() == StatusCode::REQUEST_TIMEOUT {
                    // The rest of a late body may still be on its way: the
                    // connection is not reused (RFC 9110 §15.5.9).
                    close_connection(&mut resp);
                }
                resp
            }
        }
    }
}

/// The `reason` label of a connection error that is a refusal by hyper's
/// HTTP layer (it answered 400/431 itself, or gave up waiting for a head),
/// for `fieldguard_http_refusals_total`. Clients that leave (resets,
/// closes mid-message) and idle kept-alive connections timing out are not
/// refusals: `None`.
fn refused_by_http_layer(
    e: &(dyn std::error::Error + 'static),
    framing: &Framing,
) -> Option<&'static str> {
    let h = e.downcast_ref::<hyper::Error>()?;
    if h.is_parse_too_large() {
        Some("head_too_large")
    } else if h.is_parse() {
        Some("malformed")
    } else if h.is_timeout() && framing.head_started() {
        Some("header_timeout")
    } else {
        None
    }
}

/// Tells an HTTP/1 client (and hyper) that the connection ends with this
/// response.
fn close_connection(resp: &mut Response<ProxyBody>) {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// When a connection last moved bytes and how many requests it has open.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Zero while a request is being processed.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.clone())
    }
}

struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Records progress on the connection's socket for the idle timeout.
struct ActivityIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Server {
    /// Graceful shutdown: stops accepting, asks every connection to close
    /// after its requests in flight, and waits up to
    /// `limits.shutdown_grace_ms` for them. `Err` when that deadline passed
    /// with connections still open (their requests are cut off).
    pub async fn drain(&self) -> Result<(), DrainTimedOut> {
        let grace = Duration::from_millis(self.proxy.runtime().decisions.limits.shutdown_grace_ms);
        self.shutdown();
        if tokio::time::timeout(grace, self.drained()).await.is_err() {
            return Err(DrainTimedOut {
                grace_ms: grace.as_millis(),
                connections: self.open_connections(),
                requests: self.requests_in_progress(),
                detached: self.detached_requests(),
            });
        }
        Ok(())
    }
}

/// Shutdown's grace period ended with work still under way (cut off).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "shutdown deadline of {grace_ms} ms passed with {connections} connection(s) still open and {requests} request(s) under way ({detached} of them after their client left)"
)]
pub struct DrainTimedOut {
    pub grace_ms: u128,
    pub connections: usize,
    pub requests: usize,
    /// Requests whose client had left, finished for the audit trail.
    pub detached: usize,
}
