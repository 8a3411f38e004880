//! Streamed list responses through the real proxy: a list too long to
//! buffer arrives filtered and complete (byte for byte what the buffering
//! path gives); a body that turns out malformed, truncated or over a
//! budget after its head was sent ends in an aborted response, never a
//! well-formed partial list, and its audit record says so.

mod common;

use bytes::Bytes;
use common::audited::{records, start_audited_in_front_of};
use common::token;
use fieldguard::audit::AuditSettings;
use fieldguard::budget::BudgetsConfig;
use fieldguard::config::Config;
use fieldguard::demo::shop;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(60);

/// What a client got: the status, whether the body ended cleanly, and the
/// bytes it received.
struct Got {
    status: u16,
    complete: bool,
    chunked: bool,
    body: Vec<u8>,
}

async fn get(proxy: SocketAddr, path: &str, bearer: &str) -> Got {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::get(format!("http://{proxy}{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, client.request(req))
        .await
        .expect("answered in time")
        .expect("answered");
    read(resp).await
}

/// The same over an h2c connection of its own.
async fn get_h2(proxy: SocketAddr, path: &str, bearer: &str) -> Got {
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    let conn_task = tokio::spawn(conn);
    let req = Request::get(format!("http://{proxy}{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("answered in time")
        .expect("answered");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let got = read(resp).await;
    conn_task.abort();
    got
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Got {
    let status = resp.status().as_u16();
    let chunked = resp.headers().get("content-length").is_none();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let complete = loop {
        match tokio::time::timeout(LIMIT, body.frame())
            .await
            .expect("body in time")
        {
            None => break true,
            Some(Err(_)) => break false,
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    got.extend_from_slice(&d);
                }
            }
        }
    };
    Got {
        status,
        complete,
        chunked,
        body: got,
    }
}

fn support() -> String {
    token("support_agent", "agent-7", true, None)
}

fn no_budgets(cfg: &mut Config) {
    cfg.budgets = BudgetsConfig::default();
}

async fn shop_with(customers: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = shop::serve(listener, shop::Shop::new(customers)).await;
    });
    (addr, task)
}

fn audit_settings(dir: &tempfile::TempDir) -> (AuditSettings, std::path::PathBuf) {
    let file = dir.path().join("audit.log");
    (AuditSettings::for_file(file.clone()), file)
}

/// The request records of an audit file, in order.
fn request_records(file: &std::path::Path) -> Vec<Value> {
    records(file)
        .into_iter()
        .filter(|r| r.get("request_id").is_some())
        .collect()
}

#[tokio::test]
async fn a_20000_customer_list_streams_filtered_and_complete() {
    let (shop_addr, shop_task) = shop_with(20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, file) = audit_settings(&dir);
    // The reference body limit (8 MiB) is below this body (~9 MB): only
    // streaming can answer it.
    let mut streamed =
        start_audited_in_front_of(shop_addr, settings, no_budgets, vec![shop_task]).await;
    // The same deployment buffering everything, as the reference.
    let buffered = common::start_in_front_of(
        shop_addr,
        |cfg| {
            no_budgets(cfg);
            cfg.limits.stream_responses_over_bytes = None;
            cfg.limits.max_response_body_bytes = 64 << 20;
        },
        vec![],
    )
    .await;
    let path = "/customers?limit=20000";
    let raw = streamed.h.upstream_get(path).await;
    assert!(
        raw.body.len() > 8 << 20,
        "the body is {} bytes",
        raw.body.len()
    );

    let got = get(streamed.h.proxy_addr, path, &support()).await;
    assert_eq!(got.status, 200);
    assert!(got.complete, "the stream ended cleanly");
    assert!(got.chunked, "a streamed answer has no Content-Length");
    let reference = get(buffered.proxy_addr, path, &support()).await;
    assert_eq!(reference.status, 200);
    assert!(!reference.chunked);
    assert!(
        got.body == reference.body,
        "streamed and buffered answers differ ({} vs {} bytes)",
        got.body.len(),
        reference.body.len()
    );
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    let customers = v["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 20_000);
    // Filtered: the upstream's records carry id card numbers, which the
    // support agent never sees.
    let raw_json = raw.json();
    assert!(raw_json["customers"][0].get("id_card_number").is_some());
    assert!(customers.iter().all(|c| c.get("id_card_number").is_none()));

    // A buffered-size list on the same proxy is not streamed.
    let small = get(streamed.h.proxy_addr, "/customers?limit=10", &support()).await;
    assert!(small.complete && !small.chunked);

    streamed.drain().await;
    let recs = request_records(&file);
    let big = recs
        .iter()
        .find(|r| r["response_streamed"] == Value::Bool(true))
        .expect("a streamed record");
    assert!(big.get("response_aborted").is_none(), "{big}");
    assert_eq!(big["status"], 200);
    assert_eq!(
        big["response_body"]["records"], 20_000,
        "{}",
        big["response_body"]
    );
    let small_rec = recs.last().unwrap();
    assert!(small_rec.get("response_streamed").is_none(), "{small_rec}");
}

/// An upstream that answers every request with a 200 JSON head, then
/// `chunks` (each sent as one chunk of a chunked body), then `end`.
async fn raw_upstream(
    chunks: Vec<Vec<u8>>,
    end: &'static [u8],
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    raw_upstream_with(chunks, end, "").await
}

/// [`raw_upstream`] with `extra` head lines (each ending in CRLF).
async fn raw_upstream_with(
    chunks: Vec<Vec<u8>>,
    end: &'static [u8],
    extra: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n{extra}\r\n"
                );
                let _ = conn.write_all(head.as_bytes()).await;
                for c in chunks {
                    let _ = conn
                        .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                        .await;
                    let _ = conn.write_all(&c).await;
                    let _ = conn.write_all(b"\r\n").await;
                }
                let _ = conn.write_all(end).await;
                let _ = conn.flush().await;
                // `end` empty: the connection closes mid-body.
            });
        }
    });
    (addr, task)
}

/// A customer list body from the demo shop, in pieces of about 32 KiB:
/// `{"customers":[` + records ... (without the closing part).
async fn list_pieces(customers: usize) -> Vec<Vec<u8>> {
    let (shop_addr, shop_task) = shop_with(customers).await;
    let h = common::start_in_front_of(shop_addr, |_| {}, vec![shop_task]).await;
    let body = h
        .upstream_get(&format!("/customers?limit={customers}"))
        .await
        .body;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut text = b"{\"customers\":[".to_vec();
    for (i, c) in v["customers"].as_array().unwrap().iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        text.extend_from_slice(&serde_json::to_vec(c).unwrap());
    }
    text.chunks(32 * 1024).map(|c| c.to_vec()).collect()
}

/// Sends one request for a list whose body `tail` ends, with streaming
/// from 64 KiB; returns what the client got and the request's record.
async fn stream_ending_with(tail: Vec<Vec<u8>>, end: &'static [u8]) -> (Got, Value) {
    let mut chunks = list_pieces(3000).await;
    chunks.extend(tail);
    let (up, up_task) = raw_upstream(chunks, end).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, file) = audit_settings(&dir);
    let mut a = start_audited_in_front_of(
        up,
        settings,
        |cfg| {
            no_budgets(cfg);
            cfg.limits.stream_responses_over_bytes = Some(64 * 1024);
        },
        vec![up_task],
    )
    .await;
    let got = get(a.h.proxy_addr, "/customers", &support()).await;
    a.drain().await;
    let rec = request_records(&file).pop().expect("a record");
    (got, rec)
}

/// What every aborted stream must look like to the client: the head said
/// 200, records were sent, and the body did not end cleanly nor parse.
fn assert_aborted(got: &Got) {
    assert_eq!(got.status, 200);
    assert!(!got.complete, "an aborted stream must not end cleanly");
    let text = String::from_utf8_lossy(&got.body);
    assert!(
        text.starts_with('{') && text.contains("\"customers\":[{"),
        "records were streamed before the fault: {}",
        &text[..text.len().min(200)]
    );
    assert!(
        serde_json::from_slice::<Value>(&got.body).is_err(),
        "a partial list must never be well-formed"
    );
    assert!(!got.body.ends_with(b"]}"));
}

#[tokio::test]
async fn a_list_malformed_in_its_middle_is_aborted_and_audited() {
    let tail = vec![b",{\"id\":\"c-9\",\"name\":}]}".to_vec()];
    let (got, rec) = stream_ending_with(tail, b"0\r\n\r\n").await;
    assert_aborted(&got);
    assert_eq!(rec["response_streamed"], true, "{rec}");
    assert_eq!(rec["response_aborted"], "unreadable_response", "{rec}");
    assert!(
        rec["response_body"]["records"].as_u64().unwrap() > 100,
        "{rec}"
    );
}

#[tokio::test]
async fn a_list_that_ends_early_is_aborted_and_audited() {
    // A clean end of the chunked body, but the JSON stops mid-list.
    let (got, rec) = stream_ending_with(vec![], b"0\r\n\r\n").await;
    assert_aborted(&got);
    assert_eq!(rec["response_aborted"], "unreadable_response", "{rec}");
}

#[tokio::test]
async fn an_upstream_that_drops_mid_body_is_aborted_and_audited() {
    let (got, rec) = stream_ending_with(vec![b",{\"id\":\"c-1".to_vec()], b"").await;
    assert_aborted(&got);
    assert_eq!(rec["response_aborted"], "upstream_failed", "{rec}");
}

#[tokio::test]
async fn a_record_over_the_record_limit_aborts() {
    let huge = format!(
        ",{{\"id\":\"c-9\",\"notes\":\"{}\"}}]}}",
        "x".repeat(2 << 20)
    );
    let (got, rec) = stream_ending_with(vec![huge.into_bytes()], b"0\r\n\r\n").await;
    assert_aborted(&got);
    assert_eq!(rec["response_aborted"], "record_too_large", "{rec}");
}

/// The reference deployment in front of an upstream sending a
/// 3,000-customer list (then `tail`), streaming from 64 KiB, with its
/// budgets; the answer to `bearer` and the request's record.
async fn list_with_budgets(tail: Vec<Vec<u8>>, bearer: &str) -> (Got, Value) {
    let mut chunks = list_pieces(3000).await;
    chunks.extend(tail);
    let (up, up_task) = raw_upstream(chunks, b"0\r\n\r\n").await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, file) = audit_settings(&dir);
    let mut a = start_audited_in_front_of(
        up,
        settings,
        |cfg| cfg.limits.stream_responses_over_bytes = Some(64 * 1024),
        vec![up_task],
    )
    .await;
    let got = get(a.h.proxy_addr, "/customers", bearer).await;
    a.drain().await;
    (got, request_records(&file).pop().unwrap())
}

#[tokio::test]
async fn a_refusing_budget_cuts_a_stream_before_the_records_it_would_exceed() {
    // The reference budgets refuse the support agent more than 300
    // records a day. Without MFA contact fields are masked, so records
    // are what counts; the stream is charged batch by batch, each before
    // it is sent.
    let bearer = token("support_agent", "agent-7", false, None);
    let (got, rec) = list_with_budgets(vec![b"]}".to_vec()], &bearer).await;
    assert_aborted(&got);
    let sent = got.body.windows(6).filter(|w| w == b"{\"id\":").count();
    assert!(sent > 0 && sent <= 300, "{sent} records reached the client");
    assert_eq!(rec["response_aborted"], "budget_exceeded", "{rec}");
    assert!(rec["budget"].is_array(), "the budget is named: {rec}");
}

#[tokio::test]
async fn a_budget_the_first_records_exceed_gets_a_clean_429() {
    // With MFA the agent sees contact fields in full, of which the
    // reference budget allows 200 a day: the part read before the head
    // is sent already exceeds it.
    let (got, rec) = list_with_budgets(vec![b"]}".to_vec()], &support()).await;
    assert_eq!(got.status, 429);
    assert!(got.complete);
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["error"], "budget_exceeded", "{v}");
    assert!(rec.get("response_streamed").is_none(), "{rec}");
    assert_eq!(rec["refusal"], "budget_exceeded", "{rec}");
}

#[tokio::test]
async fn a_body_that_is_not_the_routes_shape_before_its_list_gets_a_clean_502() {
    let mut chunks = vec![b"{\"customers\":{\"a\":1},\"pad\":\"".to_vec()];
    chunks.extend(std::iter::repeat_n(vec![b'x'; 32 * 1024], 4));
    chunks.push(b"\"}".to_vec());
    let (up, up_task) = raw_upstream(chunks, b"0\r\n\r\n").await;
    let h = common::start_in_front_of(
        up,
        |cfg| {
            no_budgets(cfg);
            cfg.limits.stream_responses_over_bytes = Some(64 * 1024);
        },
        vec![up_task],
    )
    .await;
    let got = get(h.proxy_addr, "/customers", &support()).await;
    assert_eq!(got.status, 502, "{}", String::from_utf8_lossy(&got.body));
    assert!(got.complete);
}

/// The proxy (streaming from 64 KiB, no budgets) in front of an upstream
/// sending `chunks` then `end`, with `extra` head lines.
async fn proxy_before(
    chunks: Vec<Vec<u8>>,
    end: &'static [u8],
    extra: &'static str,
) -> common::Harness {
    let (up, up_task) = raw_upstream_with(chunks, end, extra).await;
    common::start_in_front_of(
        up,
        |cfg| {
            no_budgets(cfg);
            cfg.limits.stream_responses_over_bytes = Some(64 * 1024);
        },
        vec![up_task],
    )
    .await
}

#[tokio::test]
async fn h2_clients_get_streamed_lists_and_see_aborts_as_resets() {
    let mut whole = list_pieces(3000).await;
    whole.push(b"]}".to_vec());
    let h = proxy_before(whole, b"0\r\n\r\n", "").await;
    let h1 = get(h.proxy_addr, "/customers", &support()).await;
    let h2 = get_h2(h.proxy_addr, "/customers", &support()).await;
    assert!(h1.complete && h2.complete);
    assert_eq!(h2.status, 200);
    assert!(h2.body == h1.body, "h2 and h1 answers differ");
    assert_eq!(
        serde_json::from_slice::<Value>(&h2.body).unwrap()["customers"]
            .as_array()
            .unwrap()
            .len(),
        3000
    );

    let mut broken = list_pieces(3000).await;
    broken.push(b",{\"id\":\"c-9\",\"name\":}]}".to_vec());
    let h = proxy_before(broken, b"0\r\n\r\n", "").await;
    let got = get_h2(h.proxy_addr, "/customers", &support()).await;
    assert_aborted(&got);
}

#[tokio::test]
async fn a_gzip_encoded_list_streams_decoded_and_redacted() {
    use std::io::Write;
    let mut plain: Vec<u8> = list_pieces(3000).await.concat();
    plain.extend_from_slice(b"]}");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    let gz = enc.finish().unwrap();
    let gz_chunks: Vec<Vec<u8>> = gz.chunks(8 * 1024).map(|c| c.to_vec()).collect();
    let plain_chunks: Vec<Vec<u8>> = plain.chunks(32 * 1024).map(|c| c.to_vec()).collect();
    let zipped = proxy_before(gz_chunks, b"0\r\n\r\n", "content-encoding: gzip\r\n").await;
    let unzipped = proxy_before(plain_chunks, b"0\r\n\r\n", "").await;
    let a = get(zipped.proxy_addr, "/customers", &support()).await;
    let b = get(unzipped.proxy_addr, "/customers", &support()).await;
    assert!(a.complete && b.complete);
    assert_eq!(a.status, 200);
    assert!(
        a.body == b.body,
        "a gzip body is redacted as the same body plain"
    );

    // Corrupt gzip mid-body: aborted, never completed.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0xff);
    let bad_chunks: Vec<Vec<u8>> = bad.chunks(8 * 1024).map(|c| c.to_vec()).collect();
    let h = proxy_before(bad_chunks, b"0\r\n\r\n", "content-encoding: gzip\r\n").await;
    let got = get(h.proxy_addr, "/customers", &support()).await;
    assert_aborted(&got);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_audited() {
    let (shop_addr, shop_task) = shop_with(20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, file) = audit_settings(&dir);
    let mut a = start_audited_in_front_of(shop_addr, settings, no_budgets, vec![shop_task]).await;
    let mut conn = tokio::net::TcpStream::connect(a.h.proxy_addr)
        .await
        .unwrap();
    let req = format!(
        "GET /customers?limit=20000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        support()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 256 * 1024 {
        let n = tokio::time::timeout(LIMIT, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the stream ended before the client left");
        got += n;
    }
    drop(conn);
    // The exchange finishes (its record is written) once the proxy sees
    // the client gone; draining waits for it.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let m = a.scrape().await;
        if m.0
            .contains("fieldguard_streamed_responses_total{outcome=\"client_gone\"} 1")
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
    }
    a.drain().await;
    let rec = request_records(&file).pop().expect("a record");
    assert_eq!(rec["response_streamed"], true, "{rec}");
    assert_eq!(rec["response_aborted"], "client_gone", "{rec}");
    assert_eq!(rec["client_aborted"], "after_upstream", "{rec}");
    let shown = rec["response_body"]["records"].as_u64().unwrap();
    assert!(shown > 0 && shown < 20_000, "{rec}");
}
