//! Hostile input through the real proxy, in front of a recording upstream:
//! every case shows the fail-closed answer and what the upstream saw
//! (usually nothing). Covers JSON bodies, paths and methods, tokens,
//! request smuggling, forged identity headers, and the listener's limits.

mod common;

use bytes::Bytes;
use common::audited::{records, start_audited_in_front_of};
use common::wire::{self, raw, raw_get, sign_hs256, unsigned_token};
use common::{Harness, demo_secret, start_in_front_of, token};
use fieldguard::audit::AuditSettings;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What reached the upstream.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: HeaderMap,
    body: Bytes,
    /// The body arrived whole (not cut off by the proxy).
    body_complete: bool,
}

type Respond = Arc<dyn Fn(&Seen) -> (u16, Vec<u8>) + Send + Sync>;

/// An upstream that records every request and answers with `respond`;
/// while `hold` is true, it waits before answering.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(respond: Respond) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (hold, gate) = watch::channel(false);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                let (log, respond, gate) = (log.clone(), respond.clone(), gate.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, respond, mut gate) = (log.clone(), respond.clone(), gate.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let s = Seen {
                                target: parts.uri.to_string(),
                                headers: parts.headers,
                                body_complete: body.is_ok(),
                                body: body.unwrap_or_default(),
                            };
                            log.lock().unwrap().push(s.clone());
                            let _ = gate.wait_for(|held| !*held).await;
                            let (status, bytes) = respond(&s);
                            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
                            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
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
        Self {
            addr,
            seen,
            hold,
            task,
        }
    }

    /// Answers like the demo shop would for a customer, whatever is asked.
    async fn customer_json() -> Self {
        Self::start(Arc::new(|_| {
            (
                200,
                serde_json::to_vec(&json!({
                    "id": "c-1001", "name": "Alice Example", "email": "alice.secret@example.com",
                    "phone": "13800000000", "id_card_number": "110101199001011234",
                }))
                .unwrap(),
            )
        }))
        .await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn assert_saw_nothing(&self, case: &str) {
        let seen = self.seen();
        assert!(seen.is_empty(), "{case}: upstream saw {seen:?}");
    }
}

async fn proxy_for(up: &Upstream) -> Harness {
    start_in_front_of(up.addr, |_| {}, vec![]).await
}

fn customer() -> String {
    token("customer", "c-1001", false, None)
}

// ------------------------------------------------------------ JSON bodies

#[tokio::test]
async fn hostile_request_bodies_are_refused_before_the_upstream() {
    let up = Upstream::customer_json().await;
    let h = proxy_for(&up).await;
    let tok = customer();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!("{{\"name\":{}1{}}}", "{\"a\":".repeat(200), "}".repeat(200));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // A duplicate key: the proxy would check one copy, the upstream might store the other.
        (
            "duplicate key",
            br#"{"name":"ok","id_card_number":"1","id_card_number":"2"}"#.to_vec(),
            400,
            "repeats a key",
        ),
        (
            "duplicate allowed key hiding a forbidden value",
            br#"{"name":"x","name":"y"}"#.to_vec(),
            400,
            "repeats a key",
        ),
        ("deep array", deep.into_bytes(), 400, "nests too deeply"),
        (
            "deep object",
            deep_obj.into_bytes(),
            400,
            "nests too deeply",
        ),
        (
            "huge number",
            br#"{"name":1e400}"#.to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "invalid UTF-8",
            b"{\"name\":\"\xff\xfe\"}".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "JSON then text",
            br#"{"name":"x"} trailing"#.to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "two documents",
            br#"{"name":"x"}{"id_card_number":"1"}"#.to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "text then JSON",
            br#"name=x {"name":"x"}"#.to_vec(),
            400,
            "not valid JSON",
        ),
        ("empty body", Vec::new(), 400, "not valid JSON"),
    ];
    for (case, body, status, message) in cases {
        let r = h
            .send(
                Method::PATCH,
                "/customers/c-1001",
                Some(&tok),
                &[("content-type", "application/json")],
                Some(&body),
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text());
        let j = r.json();
        assert_eq!(j["error"], "malformed_request_body", "{case}");
        assert!(
            j["message"].as_str().unwrap().contains(message),
            "{case}: {j}"
        );
        assert!(j["request_id"].is_string());
    }
    // Huge strings: bounded by the body limit (64 KiB in the reference config).
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(200_000));
    let r = h
        .send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&tok),
            &[("content-type", "application/json")],
            Some(huge.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    up.assert_saw_nothing("hostile bodies");

    // A JSON body with a wrong or missing Content-Type is not inspected
    // under another reading: 415.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = h
            .send(
                Method::PATCH,
                "/customers/c-1001",
                Some(&tok),
                &headers,
                Some(br#"{"id_card_number":"110101199001011234"}"#),
            )
            .await;
        assert_eq!(r.status, 415, "{ct:?}: {}", r.text());
        assert_eq!(r.json()["error"], "unsupported_media_type");
    }
    up.assert_saw_nothing("wrong content type");

    // The same body, well-formed, does reach the upstream unchanged.
    let ok = br#"{"phone":"13900000000"}"#;
    let r = h
        .send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&tok),
            &[("content-type", "application/json")],
            Some(ok),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(&seen[0].body[..], ok);
}

#[tokio::test]
async fn a_response_with_duplicate_keys_has_every_copy_redacted() {
    let up = Upstream::start(Arc::new(|req| {
        let body: &[u8] = if req.target == "/customers/c-1001" {
            br#"{"id":"c-1001","name":"Alice","id_card_number":"110101199001011234","id_card_number":"220202200002022345","email":"first.secret@example.com","email":"second.secret@example.com"}"#
        } else {
            // The record's id (which decides whose record it is) twice.
            br#"{"id":"c-1002","name":"Bob","id":"c-1001"}"#
        };
        (200, body.to_vec())
    }))
    .await;
    let h = proxy_for(&up).await;
    // A support agent without MFA does not read ID card numbers in full.
    let r = h
        .get(
            "/customers/c-1001",
            &token("support_agent", "agent-7", false, None),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for raw in [
        "110101199001011234",
        "220202200002022345",
        "first.secret@example.com",
        "second.secret@example.com",
    ] {
        assert!(
            !text.contains(raw),
            "an unredacted copy got through: {text}"
        );
    }
    // Each copy in the form the caller may see: ID numbers removed, emails
    // masked.
    assert!(!text.contains("id_card_number"), "{text}");
    assert_eq!(text.matches("\"email\":\"f****").count(), 1, "{text}");
    assert_eq!(text.matches("\"email\":\"s****").count(), 1, "{text}");

    // Which customer a record is must not be ambiguous: decisions (whose
    // record, which fields) would rest on one copy, a client may read the
    // other.
    let r = h
        .get(
            "/customers/c-1002",
            &token("support_agent", "agent-7", true, None),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("Bob"));
}

#[tokio::test]
async fn a_response_nested_too_deeply_is_not_relayed() {
    let up = Upstream::start(Arc::new(|_| {
        let deep = format!(
            "{{\"id\":\"c-1001\",\"x\":{}1{}}}",
            "[".repeat(500),
            "]".repeat(500)
        );
        (200, deep.into_bytes())
    }))
    .await;
    let h = proxy_for(&up).await;
    let r = h.get("/customers/c-1001", &customer()).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "unreadable_response");
}

// ------------------------------------------------------------ paths and methods

#[tokio::test]
async fn path_tricks_never_reach_the_upstream_in_another_spelling() {
    let up = Upstream::customer_json().await;
    let h = proxy_for(&up).await;
    let tok = customer();
    let long = format!("/customers/{}", "a".repeat(20_000));
    let tricky = [
        "/customers/c-1002",
        "/customers/c-1001/../c-1002",
        "/customers/c-1001/%2e%2e/c-1002",
        "/customers/c-1001%2F..%2Fc-1002",
        "/customers/c-1001%2f..%2fc-1002",
        "/customers/%63-1002",
        "/customers//c-1002",
        "/customers/c-1001/./../c-1002",
        "/customers/c-1001%00",
        "/customers/c-1001%252F..%252Fc-1002",
        "/Customers/c-1002",
        "/customers/c-1001;/../c-1002",
        "/customers/c-1001\\..\\c-1002",
        long.as_str(),
    ];
    for path in tricky {
        let r = raw(h.proxy_addr, &raw_get("GET", path, Some(&tok))).await;
        if r.status == 200 {
            // Only ever the caller's own record.
            assert_eq!(r.json()["id"], "c-1001", "{path}");
        } else {
            assert!((400..500).contains(&r.status), "{path}: {}", r.status);
        }
    }
    for s in up.seen() {
        let t = s.target.to_ascii_lowercase();
        assert!(
            !t.contains("%2f")
                && !t.contains("..")
                && !t.contains("//c")
                && !t.contains("%2e")
                && !t.contains("c-1002")
                && !t.contains('\\')
                && !t.contains("%00"),
            "upstream saw {t}"
        );
    }
}

#[tokio::test]
async fn method_case_head_and_options_on_protected_routes_need_the_same_rights() {
    let up = Upstream::customer_json().await;
    let h = proxy_for(&up).await;
    let other = token("customer", "c-1002", false, None);
    let cases: [(&str, Option<&str>, u16); 6] = [
        ("HEAD", None, 401),
        ("OPTIONS", None, 401),
        ("get", None, 401),
        ("HEAD", Some(&other), 403),
        ("OPTIONS", Some(&other), 403),
        ("get", Some(&other), 403),
    ];
    for (method, tok, status) in cases {
        let r = raw(h.proxy_addr, &raw_get(method, "/customers/c-1001", tok)).await;
        assert_eq!(r.status, status, "{method} {tok:?}: {}", r.text());
    }
    up.assert_saw_nothing("methods");
}

// ------------------------------------------------------------ tokens

#[tokio::test]
async fn forged_and_stale_tokens_are_refused_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let public_pem = rsa.public_key_pem();
    let key_file = dir.path().join("rs256.pub.pem");
    std::fs::write(&key_file, &public_pem).unwrap();

    let up = Upstream::customer_json().await;
    let h = start_in_front_of(
        up.addr,
        |c| {
            if let Some(jwt) = c.identity.jwt.as_mut() {
                jwt.public_keys.push(fieldguard::identity::PublicKeyConfig {
                    file: key_file.clone(),
                    algorithm: fieldguard::identity::PublicKeyAlgorithm::RS256,
                    kid: None,
                });
            }
        },
        vec![],
    )
    .await;
    let now = wire::now();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = wire::demo_claims("c-1001", "customer");
        f(&mut c);
        c
    };
    let secret = demo_secret();
    let cases: Vec<(&str, String)> = vec![
        ("alg none", unsigned_token(&claims(&|_| {}))),
        // Algorithm confusion: the RS256 public key used as an HS256 secret.
        (
            "rs256 key as hs256 secret",
            sign_hs256(public_pem.as_bytes(), &claims(&|_| {})),
        ),
        (
            "expired",
            sign_hs256(&secret, &claims(&|c| c["exp"] = json!(now - 3600))),
        ),
        (
            "not yet valid",
            sign_hs256(&secret, &claims(&|c| c["nbf"] = json!(now + 3600))),
        ),
        (
            "wrong audience",
            sign_hs256(&secret, &claims(&|c| c["aud"] = json!("another-app"))),
        ),
        (
            "wrong issuer",
            sign_hs256(&secret, &claims(&|c| c["iss"] = json!("evil"))),
        ),
        (
            "oversized",
            sign_hs256(&secret, &claims(&|c| c["pad"] = json!("x".repeat(16_000)))),
        ),
        ("garbage", "not.a.token".into()),
    ];
    for (case, t) in cases {
        let r = h.get("/customers/c-1001", &t).await;
        assert_eq!(r.status, 401, "{case}: {}", r.text());
        let j = r.json();
        assert_eq!(j["error"], "unauthenticated", "{case}");
        assert!(!r.text().contains("secret"), "{case}: {j}");
    }
    // The control: a valid token gets through.
    let ok = sign_hs256(&secret, &claims(&|_| {}));
    assert_eq!(h.get("/customers/c-1001", &ok).await.status, 200);
    assert_eq!(
        up.seen().len(),
        1,
        "only the valid token reached the upstream"
    );
}

// ------------------------------------------------------------ smuggling and headers

/// Writes `request` and reads until the proxy closes the connection
/// (bounded); a reset after the answer counts as closed.
async fn exchange_until_closed(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the proxy left the connection open: {}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// The status codes of the responses in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, m)| text[i + m.len()..].get(..3)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn conflicting_message_framing_is_refused() {
    let up = Upstream::customer_json().await;
    let h = proxy_for(&up).await;
    let tok = customer();
    let body = r#"{"phone":"x"}"#;
    let head = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\n"
    );
    // Refused by hyper's parser: two lengths, a length with a sign, a
    // transfer coding other than a final `chunked`.
    let refused = [
        format!(
            "{head}Content-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
            body.len()
        ),
        format!("{head}Content-Length: +{}\r\n\r\n{body}", body.len()),
        format!(
            "{head}Transfer-Encoding: chunked, identity\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ),
        format!("{head}Transfer-Encoding: gzip\r\n\r\n{body}"),
    ];
    for (i, req) in refused.iter().enumerate() {
        let r = raw(h.proxy_addr, req.as_bytes()).await;
        assert_eq!(r.status, 400, "case {i}: {}", r.text());
    }
    up.assert_saw_nothing("framing");

    // Content-Length with Transfer-Encoding, in any order or spelling:
    // refused by the proxy (hyper alone would take the chunked framing and
    // drop the length), the connection closed, and the request smuggled
    // behind the body never read.
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let smuggled = "GET /customers/c-1002 HTTP/1.1\r\nHost: x\r\n\r\n";
    let both = [
        format!("{head}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}{smuggled}"),
        format!(
            "{head}Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{chunked}{smuggled}",
            chunked.len()
        ),
        format!("{head}content-length: 0\r\ntransfer-encoding: CHUNKED\r\n\r\n{chunked}{smuggled}"),
        format!(
            "{head}Content-Length: {}\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}{smuggled}",
            body.len()
        ),
    ];
    for (i, req) in both.iter().enumerate() {
        let text = exchange_until_closed(h.proxy_addr, req.as_bytes()).await;
        assert_eq!(statuses(&text), vec![400], "case {i}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "case {i}: {text}"
        );
    }
    let r = raw(h.proxy_addr, both[0].as_bytes()).await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["error"], "ambiguous_framing", "{j}");
    let id = j["request_id"].as_str().expect("a request id");
    assert_eq!(r.header("x-request-id"), Some(id));
    up.assert_saw_nothing("content-length with transfer-encoding");

    // Pipelined behind a clean request on the same connection: the clean
    // one is served, the ambiguous one refused, nothing after it read.
    let clean =
        format!("GET /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n");
    let text = exchange_until_closed(h.proxy_addr, format!("{clean}{}", both[1]).as_bytes()).await;
    assert_eq!(statuses(&text), vec![200, 400], "{text}");
    assert!(text.contains("ambiguous_framing"), "{text}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/customers/c-1001");
    assert!(seen[0].body.is_empty());

    // The control: the same request framed once is served, over the same
    // kind of connection.
    let one = format!("{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}");
    let text = exchange_until_closed(h.proxy_addr, one.as_bytes()).await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(&seen[1].body[..], body.as_bytes());
}

/// The JSON body of the one response in `text`.
fn only_body_json(text: &str) -> Value {
    let (_, body) = text.split_once("\r\n\r\n").expect("a response head");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Waits (bounded) until the upstream has recorded `n` requests.
async fn upstream_saw(up: &Upstream, n: usize) -> Vec<Seen> {
    for _ in 0..1000 {
        if up.seen().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    up.seen()
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_gets_408_and_never_reaches_the_upstream_whole() {
    let up = Upstream::customer_json().await;
    let h = start_in_front_of(
        up.addr,
        |c| {
            c.limits.request_body_timeout_ms = 200;
            c.routes.push(wire::route(
                "method: POST\npath: /uploads\npassthrough: true",
            ));
        },
        vec![],
    )
    .await;
    let tok = customer();

    // Inspected: the head and part of the body, then nothing. The proxy
    // gives up on the body and the upstream hears nothing at all.
    let inspected = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"phone\":"
    );
    let text = exchange_until_closed(h.proxy_addr, inspected.as_bytes()).await;
    assert_eq!(statuses(&text), vec![408], "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    let j = only_body_json(&text);
    assert_eq!(j["error"], "request_body_timeout", "{j}");
    assert!(j["request_id"].is_string(), "{j}");
    up.assert_saw_nothing("stalled inspected body");

    // Streamed: the upstream already has the head and the first bytes; the
    // stall aborts its request, so it never gets a complete body.
    let streamed = "POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nthe first part";
    let text = exchange_until_closed(h.proxy_addr, streamed.as_bytes()).await;
    assert_eq!(statuses(&text), vec![408], "{text}");
    assert_eq!(only_body_json(&text)["error"], "request_body_timeout");
    let seen = upstream_saw(&up, 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/uploads");
    assert!(
        !seen[0].body_complete,
        "the upstream got a whole body: {seen:?}"
    );

    // The control: the same requests with their whole bodies are served.
    let body = r#"{"phone":"13900000000"}"#;
    let whole = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw(h.proxy_addr, whole.as_bytes()).await.status, 200);
    let upload = "POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(raw(h.proxy_addr, upload.as_bytes()).await.status, 200);
    let seen = upstream_saw(&up, 3).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[1].body_complete && seen[2].body_complete);
    assert_eq!(&seen[1].body[..], body.as_bytes());
    assert_eq!(&seen[2].body[..], b"hello");
}

#[tokio::test]
async fn framing_and_body_timeout_refusals_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let up = Upstream::customer_json().await;
    let mut a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(file.clone()),
        |c| c.limits.request_body_timeout_ms = 200,
        vec![],
    )
    .await;
    let tok = customer();
    let ambiguous = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         X-Request-Id: framing-1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let text = exchange_until_closed(a.h.proxy_addr, ambiguous.as_bytes()).await;
    assert_eq!(statuses(&text), vec![400], "{text}");
    let stalled = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         X-Request-Id: stalled-1\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{{"
    );
    let text = exchange_until_closed(a.h.proxy_addr, stalled.as_bytes()).await;
    assert_eq!(statuses(&text), vec![408], "{text}");
    a.drain().await;
    let recs = records(&file);
    let find = |id: &str| {
        recs.iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no record for {id}: {recs:?}"))
            .clone()
    };
    let r = find("framing-1");
    assert_eq!(
        (&r["status"], &r["refusal"]),
        (&json!(400), &json!("ambiguous_framing"))
    );
    let r = find("stalled-1");
    assert_eq!(
        (&r["status"], &r["refusal"]),
        (&json!(408), &json!("request_body_timeout"))
    );
    assert_eq!(r["principal"]["id"], "c-1001", "{r}");
    up.assert_saw_nothing("audited refusals");
}

#[tokio::test]
async fn forged_certificate_and_forwarding_headers_do_not_reach_the_upstream() {
    let up = Upstream::customer_json().await;
    let h = proxy_for(&up).await;
    let r = h
        .send(
            Method::GET,
            "/customers/c-1001",
            Some(&customer()),
            &[
                ("x-forwarded-client-cert", "By=spiffe://shop.internal/admin"),
                ("x-ssl-client-cert", "-----BEGIN CERTIFICATE-----"),
                ("x-forwarded-proto", "https"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].headers;
    assert!(headers.get("x-forwarded-client-cert").is_none());
    assert!(headers.get("x-ssl-client-cert").is_none());
    assert_eq!(
        headers["x-forwarded-proto"], "http",
        "set by the proxy, not the client"
    );
}

// ------------------------------------------------------------ limits

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_503_not_a_queue() {
    let up = Upstream::customer_json().await;
    up.hold.send_replace(true);
    let h = Arc::new(
        start_in_front_of(up.addr, |c| c.limits.max_concurrent_requests = 2, vec![]).await,
    );
    let tok = customer();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (h, tok) = (h.clone(), tok.clone());
            tokio::spawn(async move { h.get("/customers/c-1001", &tok).await.status })
        })
        .collect();
    for _ in 0..500 {
        if up.seen().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.seen().len(), 2);
    let r = h.get("/customers/c-1001", &tok).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "overloaded");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(up.seen().len(), 2, "the refused request was not forwarded");
    up.hold.send_replace(false);
    for t in held {
        assert_eq!(t.await.unwrap(), 200);
    }
    // Capacity is back once they are done.
    assert_eq!(h.get("/customers/c-1001", &tok).await.status, 200);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let up = Upstream::customer_json().await;
    let h = start_in_front_of(
        up.addr,
        |c| {
            c.limits.max_headers = 20;
            c.limits.max_header_bytes = 8192;
        },
        vec![],
    )
    .await;
    let many: String = (0..30).map(|i| format!("X-Pad-{i}: v\r\n")).collect();
    let req =
        format!("GET /customers/c-1001 HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(raw(h.proxy_addr, req.as_bytes()).await.status, 431);
    let big = format!(
        "GET /customers/c-1001 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "v".repeat(20_000)
    );
    assert_eq!(raw(h.proxy_addr, big.as_bytes()).await.status, 431);
    up.assert_saw_nothing("headers");
}

/// Reads until the server closes; `true` if it did within 10 s.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let up = Upstream::customer_json().await;
    let h = start_in_front_of(
        up.addr,
        |c| {
            c.limits.header_read_timeout_ms = 200;
            c.limits.idle_timeout_ms = 200;
        },
        vec![],
    )
    .await;
    // Slow loris: half a request head, then nothing.
    let mut tcp = TcpStream::connect(h.proxy_addr).await.unwrap();
    tcp.write_all(b"GET /customers/c-1001 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut tcp).await,
        "slow header connection left open"
    );

    // Idle after a request on a kept-alive connection.
    let mut tcp = TcpStream::connect(h.proxy_addr).await.unwrap();
    let req = format!(
        "GET /customers/c-1001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        customer()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    assert!(
        closed_by_server(&mut tcp).await,
        "idle connection left open"
    );
    assert_eq!(up.seen().len(), 1);
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
