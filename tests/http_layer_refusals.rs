//! Requests hyper's HTTP layer refuses before the proxy's handler sees them
//! (no audit record is possible: there is no request) are counted in
//! `fieldguard_http_refusals_total{reason}`: an oversized head (431), a
//! malformed request (400), a head that does not arrive within
//! `limits.header_read_timeout_ms`. A kept-alive connection that simply
//! sends no next request, and clients that connect and leave, are not
//! refusals and are not counted.

mod common;

use common::audited::Scrape;
use common::scripted::{Answer, Scripted, wait_until};
use fieldguard::proxy::Proxy;
use fieldguard::proxy::server::Server;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

async fn start() -> (Arc<Server>, Arc<Proxy>, SocketAddr, Scripted) {
    let up = Scripted::start(Arc::new(|_| Answer::json(&json!({"products": []})))).await;
    let rt = common::reference_runtime(up.addr, |cfg| {
        cfg.limits.header_read_timeout_ms = 300;
        cfg.limits.max_header_bytes = 8192;
    });
    let proxy = Arc::new(Proxy::new(rt).unwrap());
    let server = Server::new(proxy.clone(), None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));
    (server, proxy, addr, up)
}

/// Writes `bytes` and reads until the proxy closes the connection.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut out))
        .await
        .expect("the proxy closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

fn refusals(proxy: &Proxy, reason: &str) -> f64 {
    Scrape(String::from_utf8(proxy.metrics.render()).unwrap())
        .value("fieldguard_http_refusals_total", &[("reason", reason)])
}

#[tokio::test]
async fn refusals_by_the_http_layer_are_counted_by_reason() {
    let (server, proxy, addr, up) = start().await;
    for reason in ["malformed", "head_too_large", "header_timeout"] {
        assert_eq!(
            refusals(&proxy, reason),
            0.0,
            "{reason} is exported at zero"
        );
    }

    let big = format!(
        "GET /catalog/products HTTP/1.1\r\nHost: p\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let answer = exchange(addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = exchange(
        addr,
        b"GET /catalog/products HTTP/1.1\r\nHost: p\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = exchange(addr, b"\x16\x03\x01 not http at all\r\n\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Half a head, then nothing: closed after the header timeout.
    let answer = exchange(addr, b"GET /catalog/products HTTP/1.1\r\nHost: p\r\n").await;
    assert!(!answer.contains("200"), "{answer}");

    // Not refusals: a kept-alive connection idle past the header timeout
    // after a complete exchange, and a client that connects and leaves.
    let mut keep = TcpStream::connect(addr).await.unwrap();
    keep.write_all(b"GET /catalog/products HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = keep.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, keep.read_to_end(&mut rest))
        .await
        .expect("the idle connection was closed")
        .ok();
    drop(TcpStream::connect(addr).await.unwrap());
    assert_eq!(up.arrived(), 1);

    // Counted when each connection's end has been handled.
    wait_until("every connection closed", LIMIT, || {
        server.open_connections() == 0
    })
    .await;
    assert_eq!(refusals(&proxy, "head_too_large"), 1.0);
    assert_eq!(refusals(&proxy, "malformed"), 2.0);
    assert_eq!(refusals(&proxy, "header_timeout"), 1.0);
}
