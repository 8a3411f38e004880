//! An upstream the test scripts: it answers every request with what the
//! script returns (status, headers in order, body), records what reached
//! it, counts arrivals, and can hold its answers until released.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// 200 with a JSON body and `Content-Type: application/json`.
    pub fn json(body: &serde_json::Value) -> Self {
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("JSON"),
        }
    }

    /// The same answer with one more header.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub type Script = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

pub struct Scripted {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<AtomicUsize>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    pub async fn start(script: Script) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(AtomicUsize::new(0));
        let (hold, gate) = watch::channel(false);
        let (log, count) = (seen.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                let (log, count, script, gate) =
                    (log.clone(), count.clone(), script.clone(), gate.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, count, script, mut gate) =
                            (log.clone(), count.clone(), script.clone(), gate.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let seen = Seen {
                                method: parts.method,
                                target: parts.uri.to_string(),
                                headers: parts.headers,
                                body: body.unwrap_or_default(),
                            };
                            log.lock().unwrap().push(seen.clone());
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = gate.wait_for(|held| !*held).await;
                            Ok::<_, std::convert::Infallible>(respond(&script(&seen)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            arrived,
            hold,
            task,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests that arrived so far (answered or held).
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// From now on, answers wait until [`Scripted::release`].
    pub fn hold(&self) {
        self.hold.send_replace(true);
    }

    /// Answers every held request, and from now on answers at once.
    pub fn release(&self) {
        self.hold.send_replace(false);
    }
}

fn respond(a: &Answer) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(a.body.clone())));
    *resp.status_mut() = StatusCode::from_u16(a.status).expect("status");
    for (k, v) in &a.headers {
        resp.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    resp
}

/// Polls `done` every few milliseconds until it holds; panics with `what`
/// after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
