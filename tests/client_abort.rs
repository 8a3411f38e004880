//! Every exchange that reached the upstream leaves its audit record, even
//! when its client leaves first: HTTP/1.1 clients that close the connection
//! right after writing a request, h2 clients that reset the stream or drop
//! the connection. The proxy runs in front of an upstream the test holds
//! and counts; records, upstream arrivals and the aborted stage must agree,
//! and the chain must verify. Also: the concurrency permit stays with the
//! detached work, and graceful shutdown waits for it.
//!
//! Deterministic: the upstream holds every answer until the proxy has seen
//! every client of the phase go (`Server::detached_requests`), so no answer
//! can reach a client; the tests only read counters and records.

mod common;

use bytes::Bytes;
use common::audited::{Scrape, records};
use common::scripted::{Answer, Scripted, wait_until};
use common::token;
use fieldguard::audit::{self, AuditSettings, AuditWriter};
use fieldguard::config::Config;
use fieldguard::proxy::Proxy;
use fieldguard::proxy::server::Server;
use fieldguard::tools::audit::{VerifyOptions, verify_files};
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Upper bound on any wait in these tests.
const LIMIT: Duration = Duration::from_secs(30);
/// Requests per phase.
const N: usize = 100;
const BODY: &[u8] = br#"{"phone":"+86 139 0000 1001"}"#;

/// The proxy (audited, with its `Server` in reach) in front of a scripted
/// upstream.
struct Rig {
    up: Scripted,
    server: Arc<Server>,
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    writer: Option<AuditWriter>,
    file: PathBuf,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn rig(modify: impl FnOnce(&mut Config)) -> Rig {
    let up = Scripted::start(Arc::new(|_| {
        Answer::json(&json!({"id": "c-1001", "name": "Alice", "phone": "+86 139 0000 1001"}))
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let proxy = Proxy::new(common::reference_runtime(up.addr, modify)).unwrap();
    let (log, writer) = audit::start(
        &AuditSettings::for_file(file.clone()),
        proxy.metrics.audit.clone(),
        "test",
    )
    .unwrap();
    let proxy = Arc::new(proxy.with_audit(log));
    let server = Server::new(proxy.clone(), None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(server.clone().serve(listener));
    Rig {
        up,
        server,
        proxy,
        addr,
        writer: Some(writer),
        file,
        task,
        _dir: dir,
    }
}

impl Rig {
    fn scrape(&self) -> Scrape {
        Scrape(String::from_utf8(self.proxy.metrics.render()).unwrap())
    }

    /// Requests the proxy has finished (recorded).
    fn finished(&self) -> usize {
        self.scrape().value("fieldguard_requests_total", &[]) as usize
    }

    /// Waits until the proxy has taken `total` requests so far and every
    /// one still under way has seen its client go.
    async fn settle(&self, what: &str, total: usize) {
        wait_until(what, LIMIT, || {
            let busy = self.server.requests_in_progress();
            busy + self.finished() == total && self.server.detached_requests() == busy
        })
        .await;
    }

    /// Lets the upstream answer, and waits until no work is left.
    async fn release(&self, what: &str) {
        self.up.release();
        wait_until(what, LIMIT, || self.server.requests_in_progress() == 0).await;
        self.up.hold();
    }

    /// Graceful shutdown as `fieldguard run` does it; the records.
    async fn shut_down(&mut self) -> Vec<Value> {
        self.server
            .drain()
            .await
            .expect("drained within the grace period");
        if let Some(w) = self.writer.take() {
            w.shutdown().await;
        }
        records(&self.file)
    }
}

fn patch_bytes(token: &str, request_id: &str) -> Vec<u8> {
    let mut out = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nX-Request-Id: {request_id}\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    )
    .into_bytes();
    out.extend_from_slice(BODY);
    out
}

fn patch_request(addr: SocketAddr, token: &str, request_id: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::PATCH)
        .uri(format!("http://{addr}/customers/c-1001"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap()
}

/// An h2c connection, and a handle on its socket that closes it whatever
/// hyper's client does (it runs the connection in tasks of its own).
async fn h2_connection(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    std::net::TcpStream,
) {
    let std_tcp = std::net::TcpStream::connect(addr).unwrap();
    std_tcp.set_nonblocking(true).unwrap();
    let killer = std_tcp.try_clone().unwrap();
    let tcp = TcpStream::from_std(std_tcp).unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, killer)
}

/// Spawns `n` requests on one h2 connection; each task holds its response
/// future (aborting the task resets the stream) and ends with whether an
/// answer came (none may: the upstream holds them all).
fn h2_streams(
    sender: &hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    token: &str,
    phase: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<bool>> {
    (0..n)
        .map(|i| {
            let mut s = sender.clone();
            let req = patch_request(addr, token, &format!("{phase}-{i}"));
            tokio::spawn(async move { s.send_request(req).await.is_ok() })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_of_a_client_that_left_is_recorded() {
    let mut rig = rig(|_| {}).await;
    let tok = token("customer", "c-1001", false, None);
    rig.up.hold();
    let mut sent = 0;

    // A: HTTP/1.1, the socket closed right after the request is written.
    for i in 0..N {
        let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
        tcp.write_all(&patch_bytes(&tok, &format!("a-{i}")))
            .await
            .unwrap();
        drop(tcp);
    }
    sent += N;
    rig.settle("A: every HTTP/1.1 client gone", sent).await;
    rig.release("A: released").await;

    // B: HTTP/1.1, closed once the upstream is working on every request.
    let before = rig.up.arrived();
    let mut open = Vec::new();
    for i in 0..N {
        let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
        tcp.write_all(&patch_bytes(&tok, &format!("b-{i}")))
            .await
            .unwrap();
        open.push(tcp);
    }
    sent += N;
    wait_until("B: upstream has every request", LIMIT, || {
        rig.up.arrived() == before + N
    })
    .await;
    drop(open);
    rig.settle("B: every HTTP/1.1 client gone", sent).await;
    rig.release("B: released").await;

    // C: h2, each stream reset (RST_STREAM) right after the proxy has it.
    let (sender, socket) = h2_connection(rig.addr).await;
    let streams = h2_streams(&sender, rig.addr, &tok, "c", N);
    sent += N;
    wait_until("C: the proxy has every stream", LIMIT, || {
        rig.server.requests_in_progress() + rig.finished() == sent
    })
    .await;
    for s in &streams {
        s.abort();
    }
    rig.settle("C: every stream reset", sent).await;
    drop(sender);
    let _ = socket.shutdown(std::net::Shutdown::Both);
    rig.release("C: released").await;

    // D: h2, the connection dropped while the upstream works on every stream.
    let before = rig.up.arrived();
    let (sender, socket) = h2_connection(rig.addr).await;
    let streams = h2_streams(&sender, rig.addr, &tok, "d", N);
    sent += N;
    wait_until("D: upstream has every request", LIMIT, || {
        rig.up.arrived() == before + N
    })
    .await;
    socket.shutdown(std::net::Shutdown::Both).unwrap();
    drop(sender);
    for s in streams {
        let answered = tokio::time::timeout(LIMIT, s).await.expect("stream ended");
        assert!(!answered.unwrap(), "a held request was answered");
    }
    rig.settle("D: every connection gone", sent).await;
    rig.release("D: released").await;

    let recs = rig.shut_down().await;
    let file = rig.file.clone();

    // One record per request sent, and one with an upstream status per
    // request the upstream received.
    assert_eq!(recs.len(), sent, "records vs requests sent");
    let upstream_answered = recs
        .iter()
        .filter(|r| !r["upstream_status"].is_null())
        .count();
    assert_eq!(
        upstream_answered,
        rig.up.arrived(),
        "records with an upstream status"
    );
    let mut during = 0;
    for r in &recs {
        let id = r["request_id"].as_str().unwrap();
        let phase = &id[..1];
        assert_eq!(r["route"], "/customers/{id}", "{r}");
        match r["client_aborted"].as_str() {
            Some("during_upstream") => {
                during += 1;
                assert_eq!(r["upstream_status"], 200, "{r}");
                assert_eq!(r["status"], 200, "the answer nobody got: {r}");
                assert_eq!(r["decision"], "allow", "{r}");
            }
            Some("before_upstream") => {
                assert!(["a", "c"].contains(&phase), "{r}");
                assert!(r["upstream_status"].is_null(), "{r}");
                // Stopped before sending; or the body was cut with the
                // connection before it could be checked.
                match r["refusal"].as_str() {
                    Some("client_closed_request") => assert_eq!(r["status"], 499, "{r}"),
                    Some("malformed_request_body") => assert_eq!(r["status"], 400, "{r}"),
                    other => panic!("unexpected refusal {other:?}: {r}"),
                }
            }
            other => panic!("a record of a client that left says {other:?}: {r}"),
        }
        if ["b", "d"].contains(&phase) {
            assert_eq!(r["client_aborted"], "during_upstream", "{r}");
        }
    }
    assert!(
        during >= 2 * N,
        "{during} exchanges recorded during the upstream"
    );
    let report = verify_files(&[file], &VerifyOptions::default()).expect("the chain verifies");
    assert_eq!(report.records, sent as u64);

    let m = rig.scrape();
    assert_eq!(m.value("fieldguard_client_aborts_total", &[]), sent as f64);
    assert_eq!(
        m.value(
            "fieldguard_client_aborts_total",
            &[("stage", "during_upstream")]
        ),
        during as f64
    );
    assert_eq!(
        m.value("fieldguard_audit_records_written_total", &[]),
        sent as f64
    );
}

#[tokio::test]
async fn the_concurrency_permit_stays_with_work_whose_client_left() {
    let mut rig = rig(|cfg| cfg.limits.max_concurrent_requests = 2).await;
    let tok = token("customer", "c-1001", false, None);
    rig.up.hold();
    let mut open = Vec::new();
    for i in 0..2 {
        let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
        tcp.write_all(&patch_bytes(&tok, &format!("held-{i}")))
            .await
            .unwrap();
        open.push(tcp);
    }
    wait_until("both at the upstream", LIMIT, || rig.up.arrived() == 2).await;
    drop(open);
    rig.settle("both clients gone", 2).await;
    assert_eq!(rig.server.detached_requests(), 2);

    // The two detached exchanges still hold both permits.
    let get = format!(
        "GET /customers/c-1001 HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {tok}\r\nConnection: close\r\n\r\n"
    );
    let r = common::wire::raw(rig.addr, get.as_bytes()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "overloaded");

    rig.release("the held work finished").await;
    rig.up.release();
    let r = common::wire::raw(rig.addr, get.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let recs = rig.shut_down().await;
    let held: Vec<&Value> = recs
        .iter()
        .filter(|r| r["request_id"].as_str().unwrap().starts_with("held-"))
        .collect();
    assert_eq!(held.len(), 2);
    for r in held {
        assert_eq!(r["client_aborted"], "during_upstream", "{r}");
        assert_eq!(r["upstream_status"], 200);
    }
}

#[tokio::test]
async fn graceful_shutdown_waits_for_work_whose_client_left() {
    let mut rig = rig(|_| {}).await;
    let tok = token("customer", "c-1001", false, None);
    rig.up.hold();
    let mut open = Vec::new();
    for i in 0..3 {
        let mut tcp = TcpStream::connect(rig.addr).await.unwrap();
        tcp.write_all(&patch_bytes(&tok, &format!("late-{i}")))
            .await
            .unwrap();
        open.push(tcp);
    }
    wait_until("all at the upstream", LIMIT, || rig.up.arrived() == 3).await;
    drop(open);
    rig.settle("all clients gone", 3).await;
    assert_eq!(rig.server.open_connections(), 0);

    // No connection is open, but three exchanges are under way: the drain
    // waits for them.
    let server = rig.server.clone();
    let drain = tokio::spawn(async move { server.drain().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!drain.is_finished(), "drained with work under way");
    rig.up.release();
    tokio::time::timeout(LIMIT, drain)
        .await
        .expect("drain finished once the work did")
        .unwrap()
        .expect("within the grace period");
    let recs = rig.shut_down().await;
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["client_aborted"], "during_upstream", "{r}");
        assert_eq!(r["upstream_status"], 200, "{r}");
    }
}
