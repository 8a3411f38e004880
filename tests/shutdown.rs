//! Graceful shutdown of the real binary: `fieldguard run` with a config in a
//! temporary folder, requests held in flight at the upstream, SIGTERM. Every
//! accepted request must be answered, the listener must stop accepting,
//! every request must have its audit record, and the exit code must be 0;
//! past the deadline, the process gives up with a non-zero code.

mod common;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const REQUESTS: usize = 16;

/// An upstream that counts arrivals and answers only once released.
struct HeldUpstream {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

async fn held_upstream() -> HeldUpstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let (release, gate) = watch::channel(false);
    let count = arrived.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let count = count.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let count = count.clone();
                    let mut gate = gate.clone();
                    async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        let mut resp = Response::new(Full::new(Bytes::from_static(
                            br#"{"products":[{"id":"p-1"}]}"#,
                        )));
                        resp.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    HeldUpstream {
        addr,
        arrived,
        release,
    }
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The reference config, rewritten for this run: absolute paths, the
/// test's ports, an audit file, and the given grace period.
fn write_config(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    grace_ms: u64,
) -> std::path::PathBuf {
    let text = common::reference_config_text(&listen.to_string(), &upstream.to_string());
    let replace = |t: String, from: &str, to: &str| {
        assert!(
            t.contains(from),
            "reference config changed: {from:?} not found"
        );
        t.replace(from, to)
    };
    let mut text = text;
    text = replace(
        text,
        "\nlimits:\n",
        &format!("\nlimits:\n  shutdown_grace_ms: {grace_ms}\n"),
    );
    text.push_str(&format!(
        "\naudit:\n  file: {}\n  stdout: false\n  shutdown_timeout_ms: 1000\nadmin:\n  address: 127.0.0.1:0\n",
        dir.join("audit.log").display()
    ));
    let path = dir.join("fieldguard.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_proxy(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls until the proxy accepts connections (bounded).
async fn wait_listening(addr: SocketAddr, child: &mut Child) {
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("fieldguard exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fieldguard did not start listening on {addr}");
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    for _ in 0..1000 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    panic!("fieldguard did not exit within 20 s of SIGTERM");
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Starts `REQUESTS` requests and waits until the upstream holds them all
/// (so each has certainly been accepted by the proxy).
async fn requests_in_flight(
    proxy: SocketAddr,
    up: &HeldUpstream,
) -> Vec<tokio::task::JoinHandle<Result<(u16, String), String>>> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let req = Request::builder()
                    .uri(format!("http://{proxy}/catalog/products"))
                    .header("x-request-id", format!("shutdown-test-{i}"))
                    .body(Empty::new())
                    .unwrap();
                let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((
                    status,
                    String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                ))
            })
        })
        .collect();
    for _ in 0..500 {
        if up.arrived.load(Ordering::SeqCst) == REQUESTS {
            return tasks;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "only {} of {REQUESTS} requests reached the upstream",
        up.arrived.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_in_flight_writes_their_audit_records_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let up = held_upstream().await;
    let listen = free_port();
    let config = write_config(dir.path(), listen, up.addr, 15_000);
    let mut child = spawn_proxy(&config);
    wait_listening(listen, &mut child).await;

    let in_flight = requests_in_flight(listen, &up).await;
    sigterm(&child);

    // The listener closes while the requests are still held upstream.
    let mut refused = false;
    for _ in 0..500 {
        if TcpStream::connect(listen).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still accepting connections after SIGTERM");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with requests in flight"
    );

    up.release.send_replace(true);
    for t in in_flight {
        let (status, body) = t
            .await
            .unwrap()
            .expect("every accepted request is answered");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("p-1"), "{body}");
    }
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "exit status {status}");

    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    for i in 0..REQUESTS {
        let id = format!("\"shutdown-test-{i}\"");
        assert_eq!(
            audit.matches(&id).count(),
            1,
            "audit record for request {i}:\n{audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_running_at_the_deadline_make_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let up = held_upstream().await;
    let listen = free_port();
    let config = write_config(dir.path(), listen, up.addr, 300);
    let mut child = spawn_proxy(&config);
    wait_listening(listen, &mut child).await;

    let in_flight = requests_in_flight(listen, &up).await;
    sigterm(&child);
    let status = wait_exit(&mut child).await;
    assert!(
        !status.success(),
        "cut-off requests must not look like a clean exit"
    );
    for t in in_flight {
        // Cut off, or answered with an error while the runtime stopped;
        // never with the upstream's data, which was never released.
        if let Ok((status, body)) = t.await.unwrap() {
            assert!(status >= 500, "{status} {body}");
        }
    }
    up.release.send_replace(true);
}
