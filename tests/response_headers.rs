//! The response-header allow-list of inspected routes, through the real
//! proxy in front of an upstream the test scripts: `Set-Cookie` and custom
//! headers from the upstream never reach the client on a route with a
//! `response:` section (filtered bodies, relayed 204/HEAD answers, HTTP/1.1
//! and h2c alike), standard and configured headers do, the names dropped
//! are audited and counted with a bounded label, shadow mode only reports,
//! and routes without a `response:` section are unchanged. Filtered answers
//! are private (no shared caching, `Vary` on the credentials, no
//! validators, conditional requests never answered 304), and the values
//! of allowed headers must parse in their grammar, on buffered records,
//! lists and streamed lists.

mod common;

use bytes::Bytes;
use common::audited::{Audited, Scrape, records, start_audited_in_front_of};
use common::scripted::{Answer, Scripted, Seen};
use common::wire::h2c_request;
use common::{Reply, token};
use fieldguard::audit::AuditSettings;
use fieldguard::config::Config;
use fieldguard::tools::audit::{VerifyOptions, verify_files};
use http::{HeaderMap, Method, Request, Version};
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Names and values only an upstream can have put there.
const LEAKY: [(&str, &str); 4] = [
    ("set-cookie", "session=legacy-secret-1; HttpOnly"),
    ("x-customer-email", "alice.secret@example.com"),
    ("x-powered-by", "LegacyShop/1.2"),
    ("x-debug-record", "id_card_number=110101199001011234"),
];

/// Standard representation and caching headers, as the upstream sends them
/// (and the client gets them).
const STANDARD: [(&str, &str); 4] = [
    ("cache-control", "private, max-age=60"),
    ("content-language", "en"),
    ("vary", "authorization"),
    ("expires", "Tue, 01 Dec 2026 11:00:00 GMT"),
];

/// The upstream's validators: they describe the unfiltered body.
const VALIDATORS: [(&str, &str); 2] = [
    ("etag", "\"v1\""),
    ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
];

fn customer_record() -> Value {
    json!({
        "id": "c-1001", "name": "Alice Example", "email": "alice.secret@example.com",
        "phone": "13800000000", "id_card_number": "110101199001011234",
    })
}

/// The upstream: every answer carries the leaky and the standard headers,
/// one configured for the read route (`x-allowed`), validators and its own
/// request id; `?many=N` adds 80 distinct custom headers. It answers 304
/// to a conditional request (and to `?stale`, unasked).
fn script(seen: &Seen) -> Answer {
    let conditional = seen.headers.contains_key("if-none-match")
        || seen.headers.contains_key("if-modified-since")
        || seen.target.contains("stale");
    let mut a = match (&seen.method, seen.target.as_str()) {
        (&Method::GET | &Method::HEAD, _) if conditional => Answer {
            status: 304,
            headers: vec![],
            body: vec![],
        },
        (&Method::PATCH | &Method::DELETE, _) => Answer {
            status: 204,
            headers: vec![],
            body: vec![],
        },
        (_, t) if t.starts_with("/catalog") => Answer::json(&json!({"products": []})),
        _ => Answer::json(&customer_record()),
    };
    for (k, v) in LEAKY.iter().chain(STANDARD.iter()).chain(VALIDATORS.iter()) {
        a = a.with(k, v);
    }
    a = a
        .with("set-cookie", "second=also-secret")
        .with("x-allowed", "configured")
        .with("x-request-id", "upstream-made-id");
    if let Some(batch) = seen.target.split("many=").nth(1) {
        for i in 0..80 {
            a = a.with(&format!("x-h-{batch}-{i}"), "1");
        }
    }
    a
}

/// `response.headers: [X-Allowed]` on `GET /customers/{id}`.
fn allow_x_allowed(cfg: &mut Config) {
    let read = cfg
        .routes
        .iter_mut()
        .find(|r| r.method.value == "GET" && r.path.value == "/customers/{id}")
        .expect("the reference config reads customers");
    read.response
        .as_mut()
        .expect("an inspected route")
        .headers
        .push(serde_saphyr::Spanned::new(
            "X-Allowed".to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        ));
}

async fn start(dir: &Path, modify: impl FnOnce(&mut Config)) -> (Audited, Scripted) {
    let up = Scripted::start(Arc::new(script)).await;
    let a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.join("audit.log")),
        modify,
        vec![],
    )
    .await;
    (a, up)
}

fn customer() -> String {
    token("customer", "c-1001", false, None)
}

/// Header names of a response, sorted.
fn names(h: &HeaderMap) -> BTreeSet<String> {
    h.keys().map(|k| k.as_str().to_string()).collect()
}

/// What an inspected route's answer may carry from the upstream.
fn assert_only_allowed(what: &str, r: &Reply, configured: bool) {
    for (k, _) in LEAKY {
        assert!(!r.headers.contains_key(k), "{what}: {k} reached the client");
    }
    let text = format!("{:?}", r.headers);
    for secret in [
        "legacy-secret",
        "also-secret",
        "alice.secret",
        "110101199001011234",
    ] {
        assert!(!text.contains(secret), "{what}: {secret} in {text}");
    }
    for (k, _) in VALIDATORS {
        assert!(!r.headers.contains_key(k), "{what}: {k} of the raw body");
    }
    assert_ne!(r.headers["x-request-id"], "upstream-made-id", "{what}");
    for (k, v) in STANDARD {
        assert_eq!(r.headers[k], v, "{what}: standard header {k}");
    }
    assert_eq!(r.headers.contains_key("x-allowed"), configured, "{what}");
    let allowed: BTreeSet<&str> = [
        "cache-control",
        "content-language",
        "vary",
        "expires",
        "content-type",
        "content-length",
        "date",
        "x-request-id",
        "x-allowed",
    ]
    .into();
    for n in names(&r.headers) {
        assert!(
            allowed.contains(n.as_str()),
            "{what}: unexpected header {n}"
        );
    }
}

fn by_request_id(recs: &[Value]) -> HashMap<String, Value> {
    recs.iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn rid(r: &Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_string()
}

fn dropped(record: &Value) -> BTreeSet<String> {
    record["response_headers_dropped"]["names"]
        .as_array()
        .unwrap_or_else(|| panic!("no response_headers_dropped in {record}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

fn leaky_names() -> BTreeSet<String> {
    LEAKY.iter().map(|(k, _)| k.to_string()).collect()
}

async fn h2c(a: &Audited, method: Method, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", a.h.proxy_addr))
        .header("authorization", format!("Bearer {}", customer()));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let (version, reply) =
        h2c_request(a.h.proxy_addr, req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(version, Version::HTTP_2);
    reply
}

#[tokio::test]
async fn inspected_routes_pass_only_standard_configured_and_own_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _up) = start(dir.path(), allow_x_allowed).await;
    let tok = customer();
    let mut cases: Vec<(&str, Reply, bool)> = Vec::new();

    // A filtered body, over HTTP/1.1 and h2c.
    let r = a.h.get("/customers/c-1001", &tok).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "c-1001");
    assert_eq!(
        r.headers["content-length"],
        r.body.len().to_string().as_str()
    );
    assert_eq!(r.headers["content-type"], "application/json");
    cases.push(("GET", r, true));
    let r = h2c(&a, Method::GET, "/customers/c-1001", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    cases.push(("GET over h2c", r, true));

    // Relayed answers without a body: HEAD, 304, 204.
    let r =
        a.h.send(Method::HEAD, "/customers/c-1001", Some(&tok), &[], None)
            .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    cases.push(("HEAD", r, true));
    // A conditional GET with the upstream's validators is not forwarded as
    // conditional: the client gets the filtered body, never a 304.
    let inm = [
        ("if-none-match", "\"v1\""),
        ("if-modified-since", "Tue, 01 Dec 2026 10:00:00 GMT"),
    ];
    let r =
        a.h.send(Method::GET, "/customers/c-1001", Some(&tok), &inm, None)
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "c-1001");
    cases.push(("conditional GET", r, true));
    let r = h2c(&a, Method::GET, "/customers/c-1001", &inm).await;
    assert_eq!(r.status, 200);
    cases.push(("conditional GET over h2c", r, true));
    let r =
        a.h.send_json(
            Method::PATCH,
            "/customers/c-1001",
            &tok,
            &json!({"phone": "+86 1"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // `x-allowed` is configured for the read route only.
    cases.push(("PATCH 204", r, false));

    for (what, r, configured) in &cases {
        assert_only_allowed(what, r, *configured);
    }

    // Every dropped name is in the audit record (names only) and counted.
    a.drain().await;
    let file = dir.path().join("audit.log");
    let recs = by_request_id(&records(&file));
    for (what, r, configured) in &cases {
        let rec = &recs[&rid(r)];
        let mut expected = leaky_names();
        if !configured {
            expected.insert("x-allowed".into());
        }
        assert_eq!(dropped(rec), expected, "{what}: {rec}");
        assert_eq!(
            rec["response_headers_dropped"]["count"],
            expected.len(),
            "{what}"
        );
        assert!(rec["shadow"].is_null(), "{what}");
        let text = rec.to_string();
        for secret in ["legacy-secret", "alice.secret@", "LegacyShop"] {
            assert!(!text.contains(secret), "{what}: a header value in {text}");
        }
    }
    verify_files(&[file], &VerifyOptions::default()).unwrap();
    let m = a.scrape().await;
    let count = |route: &str, header: &str| {
        m.value(
            "fieldguard_response_headers_dropped_total",
            &[("route", route), ("header", header)],
        )
    };
    assert_eq!(count("/customers/{id}", "set-cookie"), 6.0);
    assert_eq!(count("/customers/{id}", "x-debug-record"), 6.0);
    assert_eq!(count("/customers/{id}", "last-modified"), 0.0);
    assert_eq!(count("/customers/{id}", "x-allowed"), 1.0, "PATCH only");
    assert_eq!(
        count("/customers/{id}", "etag"),
        0.0,
        "replaced, not reported"
    );
}

#[tokio::test]
async fn routes_without_a_response_section_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _up) = start(dir.path(), |_| {}).await;
    let tok = customer();
    // DELETE /customers/{id} has no `response:` section; /catalog/products
    // is passthrough.
    let del =
        a.h.send(Method::DELETE, "/customers/c-1001", Some(&tok), &[], None)
            .await;
    assert_eq!(del.status, 204, "{}", del.text());
    let public =
        a.h.send(Method::GET, "/catalog/products", None, &[], None)
            .await;
    assert_eq!(public.status, 200);
    for (what, r) in [("DELETE", &del), ("passthrough", &public)] {
        for (k, v) in LEAKY {
            assert_eq!(r.headers[k], v, "{what}: {k}");
        }
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2, "{what}");
        assert_eq!(r.headers["etag"], "\"v1\"", "{what}");
    }
    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    for r in [&del, &public] {
        assert!(recs[&rid(r)]["response_headers_dropped"].is_null());
    }
    let m = a.scrape().await;
    assert_eq!(
        m.value("fieldguard_response_headers_dropped_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn shadow_mode_relays_the_headers_and_records_what_would_be_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _up) = start(dir.path(), |cfg| {
        for r in cfg
            .routes
            .iter_mut()
            .filter(|r| r.path.value == "/customers/{id}")
        {
            r.shadow = true;
        }
    })
    .await;
    let r = a.h.get("/customers/c-1001", &customer()).await;
    assert_eq!(r.status, 200);
    for (k, v) in LEAKY {
        assert_eq!(r.headers[k], v, "shadow mode enforces nothing: {k}");
    }
    let head =
        a.h.send(
            Method::HEAD,
            "/customers/c-1001",
            Some(&customer()),
            &[],
            None,
        )
        .await;
    assert_eq!(head.headers["x-powered-by"], "LegacyShop/1.2");

    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    let mut expected = leaky_names();
    expected.insert("x-allowed".into());
    for reply in [&r, &head] {
        let rec = &recs[&rid(reply)];
        assert!(rec["response_headers_dropped"].is_null(), "{rec}");
        let would: BTreeSet<String> = rec["shadow"]["would_drop_headers"]
            .as_array()
            .unwrap_or_else(|| panic!("{rec}"))
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        assert_eq!(would, expected, "{rec}");
    }
    let m = a.scrape().await;
    assert_eq!(
        m.value("fieldguard_response_headers_dropped_total", &[]),
        0.0
    );
    assert_eq!(
        m.value(
            "fieldguard_shadow_events_total",
            &[("event", "would_drop_headers")]
        ),
        2.0
    );
}

/// Header series per route are capped; odd or long names never become
/// labels; the record lists a bounded number of names with the exact count.
#[tokio::test]
async fn dropped_header_labels_and_record_names_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start(Arc::new(|seen: &Seen| {
        let mut a = script(seen);
        a.headers
            .retain(|(k, _)| !k.starts_with("x-") || k.starts_with("x-h-"));
        a.with("x.odd", "1")
            .with(&format!("x-{}", "l".repeat(70)), "1")
    }))
    .await;
    let mut a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.path().join("audit.log")),
        |_| {},
        vec![],
    )
    .await;
    let mut ids = Vec::new();
    for batch in 0..4 {
        let r =
            a.h.get(&format!("/customers/c-1001?many={batch}"), &customer())
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.headers.keys().any(|k| k.as_str().starts_with("x-h-")));
        ids.push(rid(&r));
    }
    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    for id in &ids {
        let d = &recs[id]["response_headers_dropped"];
        // 80 custom + set-cookie + the two odd ones.
        assert_eq!(d["count"], 83, "{d}");
        let listed = d["names"].as_array().unwrap();
        assert_eq!(listed.len(), 16, "{d}");
        assert!(
            listed.iter().all(|n| n.as_str().unwrap().len() <= 64 + 3),
            "{d}"
        );
    }
    let m = a.scrape().await;
    let series: Vec<&str> =
        m.0.lines()
            .filter(|l| l.starts_with("fieldguard_response_headers_dropped_total{"))
            .collect();
    let cap = fieldguard::metrics::MAX_HEADER_SERIES;
    assert_eq!(series.len(), cap + 1, "{} series", series.len());
    assert_eq!(
        m.value("fieldguard_response_headers_dropped_total", &[]),
        4.0 * 83.0
    );
    let other = m.value(
        "fieldguard_response_headers_dropped_total",
        &[("header", fieldguard::metrics::OTHER_HEADER)],
    );
    // Every request's two odd names, and whatever came after the cap (the
    // first request's set-cookie series counts all four requests).
    assert_eq!(other, 4.0 * 83.0 - (cap as f64 + 3.0));
    assert!(!m.0.contains("x.odd") && !m.0.contains(&"l".repeat(70)));
    promtool_clean(&m);
}

/// The scrape with capped labels is still valid exposition.
fn promtool_clean(m: &Scrape) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(m.0.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let problems = String::from_utf8_lossy(&out.stderr);
    // Lint hints (no `_total`, help text) are not what this checks.
    assert!(!problems.contains("error"), "promtool: {problems}");
}

fn support() -> String {
    token("support_agent", "agent-7", true, None)
}

/// A customer list of `n` records (`{"customers": [...], "total": n}`).
fn customer_list(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = customer_record();
            r["id"] = json!(format!("c-{i}"));
            r
        })
        .collect();
    json!({"customers": records, "total": n})
}

/// The body for `seen`: a record, or a list of `?n=N` records on
/// `/customers`.
fn body_for(seen: &Seen) -> Answer {
    let n = seen
        .target
        .split("n=")
        .nth(1)
        .and_then(|n| n.split('&').next()?.parse().ok())
        .unwrap_or(1);
    if seen.target.starts_with("/customers?") || seen.target == "/customers" {
        Answer::json(&customer_list(n))
    } else {
        Answer::json(&customer_record())
    }
}

/// An upstream that asks for shared caching and sends validators; it
/// answers 304 to any conditional request that reaches it, and to `?stale`
/// unasked.
fn caching_script(seen: &Seen) -> Answer {
    let conditional = ["if-none-match", "if-modified-since", "if-match", "if-range"]
        .iter()
        .any(|h| seen.headers.contains_key(*h))
        || seen.target.contains("stale");
    let a = if conditional {
        Answer {
            status: 304,
            headers: vec![],
            body: vec![],
        }
    } else {
        body_for(seen)
    };
    a.with(
        "cache-control",
        "public, max-age=600, s-maxage=3600, proxy-revalidate",
    )
    .with("cache-control", "immutable, stale-while-revalidate=60")
    .with("vary", "Accept-Encoding")
    .with("etag", "\"13900131001\"")
    .with("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT")
    .with("expires", "Tue, 01 Dec 2026 11:00:00 GMT")
}

/// Streams lists over 512 bytes; `GET /customers` says `cache: no_store`.
fn streaming_and_no_store(cfg: &mut Config) {
    cfg.limits.stream_responses_over_bytes = Some(512);
    let list = cfg
        .routes
        .iter_mut()
        .find(|r| r.method.value == "GET" && r.path.value == "/customers")
        .expect("the reference config lists customers");
    list.response.as_mut().expect("inspected").cache =
        fieldguard_core::response_headers::CacheMode::NoStore;
}

#[tokio::test]
async fn filtered_answers_are_private_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start(Arc::new(caching_script)).await;
    let mut a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.path().join("audit.log")),
        streaming_and_no_store,
        vec![],
    )
    .await;
    let (tok, sup) = (customer(), support());
    let validators = [
        ("if-none-match", "\"13900131001\""),
        ("if-modified-since", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("if-match", "\"13900131001\""),
        ("if-unmodified-since", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("if-range", "\"13900131001\""),
        ("range", "bytes=0-10"),
    ];
    let mut cases: Vec<(&str, Reply, &str)> = Vec::new();
    let private = "private, max-age=600";
    let r = a.h.get("/customers/c-1001", &tok).await;
    cases.push(("record", r, private));
    let r =
        a.h.send(
            Method::GET,
            "/customers/c-1001",
            Some(&tok),
            &validators,
            None,
        )
        .await;
    cases.push(("conditional record", r, private));
    let r = h2c(&a, Method::GET, "/customers/c-1001", &validators).await;
    cases.push(("conditional record over h2c", r, private));
    let r =
        a.h.send(
            Method::HEAD,
            "/customers/c-1001",
            Some(&tok),
            &validators,
            None,
        )
        .await;
    cases.push(("conditional HEAD", r, private));
    let r = a.h.get("/customers?n=1", &sup).await;
    cases.push(("buffered list", r, "no-store"));
    let r =
        a.h.send(
            Method::GET,
            "/customers?n=40",
            Some(&sup),
            &validators,
            None,
        )
        .await;
    assert!(!r.headers.contains_key("content-length"), "streamed");
    cases.push(("streamed list", r, "no-store"));
    for (what, r, cache) in &cases {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        if *what != "conditional HEAD" {
            assert!(r.json().is_object(), "{what}: the filtered body");
        }
        assert_eq!(r.headers["cache-control"], *cache, "{what}");
        assert_eq!(r.headers.get_all("cache-control").iter().count(), 1);
        assert_eq!(
            r.headers["vary"], "accept-encoding, authorization",
            "{what}"
        );
        for v in ["etag", "last-modified"] {
            assert!(!r.headers.contains_key(v), "{what}: {v}");
        }
        assert_eq!(r.headers["expires"], "Tue, 01 Dec 2026 11:00:00 GMT");
        assert!(
            !format!("{:?}", r.headers).contains("13900131001"),
            "{what}"
        );
    }
    // No conditional header reached the upstream on a GET or HEAD.
    for seen in up.seen() {
        for (h, _) in validators {
            assert!(!seen.headers.contains_key(h), "{h} forwarded: {seen:?}");
        }
    }
    // A 304 the upstream sends unasked is not relayed: it would validate
    // whatever a cache holds.
    let r = a.h.get("/customers/c-1001?stale", &tok).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.headers["cache-control"], "no-store");
    let r =
        a.h.send(
            Method::HEAD,
            "/customers/c-1001?stale",
            Some(&tok),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 502);

    // Privatising is not a finding: nothing is reported dropped.
    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    for (what, r, _) in &cases {
        let rec = &recs[&rid(r)];
        assert!(rec["response_headers_dropped"].is_null(), "{what}: {rec}");
    }
    assert!(
        recs.values().any(|r| r["response_streamed"] == true),
        "the long list streamed"
    );
    let m = a.scrape().await;
    assert_eq!(
        m.value("fieldguard_response_headers_dropped_total", &[]),
        0.0
    );
}

/// Personal data in the values of allowed headers: a media-type
/// parameter, a cache directive extension, `Vary`, `Content-Language`,
/// `Expires`, `Pragma`, `Age`, `Date`, a configured header with non-ASCII.
const HOSTILE: [(&str, &str); 9] = [
    ("cache-control", "private, x-phone=13900131001"),
    ("vary", "Accept, wang.lei@example.com"),
    ("content-language", "wang.lei@example.com"),
    ("expires", "call Wang Lei on 13900131001"),
    ("pragma", "no-cache, x-phone=13900131001"),
    ("age", "13900131001 Wang"),
    ("date", "Wang Lei"),
    ("last-modified", "Wang Lei 13900131001"),
    ("x-allowed", "Wáng Lei 13900131001"),
];

fn hostile_script(seen: &Seen) -> Answer {
    let mut a = body_for(seen);
    a.headers.retain(|(k, _)| k != "content-type");
    a = a.with("content-type", "application/json; name=\"Wang Lei\"");
    for (k, v) in HOSTILE {
        a = a.with(k, v);
    }
    a
}

/// Names of the headers whose value is reported (`last-modified` is a
/// validator, always removed, but reported when it is not even a date).
fn hostile_names(configured: bool) -> BTreeSet<String> {
    let mut n: BTreeSet<String> = HOSTILE
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| configured || k != "x-allowed")
        .collect();
    n.insert("content-type".into());
    n
}

async fn hostile_requests(a: &Audited) -> Vec<(&'static str, Reply, bool)> {
    let (tok, sup) = (customer(), support());
    let mut cases = Vec::new();
    cases.push(("record", a.h.get("/customers/c-1001", &tok).await, true));
    let r = h2c(a, Method::GET, "/customers/c-1001", &[]).await;
    cases.push(("record over h2c", r, true));
    let r =
        a.h.send(Method::HEAD, "/customers/c-1001", Some(&tok), &[], None)
            .await;
    cases.push(("HEAD", r, true));
    cases.push((
        "buffered list",
        a.h.get("/customers?n=1", &sup).await,
        false,
    ));
    cases.push((
        "streamed list",
        a.h.get("/customers?n=40", &sup).await,
        false,
    ));
    cases
}

#[tokio::test]
async fn header_values_outside_their_grammar_are_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start(Arc::new(hostile_script)).await;
    let mut a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.path().join("audit.log")),
        |cfg| {
            allow_x_allowed(cfg);
            cfg.limits.stream_responses_over_bytes = Some(512);
        },
        vec![],
    )
    .await;
    let cases = hostile_requests(&a).await;
    for (what, r, _) in &cases {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let text = format!("{:?}", r.headers);
        for secret in ["Wang", "wang", "13900131001"] {
            assert!(!text.contains(secret), "{what}: {secret} in {text}");
        }
        // A bad Cache-Control fails closed; the proxy names the media type
        // it checked; Vary names only the credentials.
        assert_eq!(r.headers["cache-control"], "no-store", "{what}");
        assert_eq!(r.headers["vary"], "authorization", "{what}");
        if *what != "HEAD" {
            assert_eq!(r.headers["content-type"], "application/json", "{what}");
        }
        for gone in [
            "content-language",
            "expires",
            "pragma",
            "age",
            "last-modified",
            "x-allowed",
        ] {
            assert!(!r.headers.contains_key(gone), "{what}: {gone}");
        }
        // The upstream's Date was dropped; the proxy's own is a real date.
        if let Some(d) = r.headers.get("date") {
            assert!(fieldguard_core::response_headers::http_date(d.to_str().unwrap()).is_some());
        }
    }
    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    for (what, r, configured) in &cases {
        let rec = &recs[&rid(r)];
        let mut expected = hostile_names(*configured);
        if *what == "HEAD" {
            // A HEAD answer is relayed: its Content-Type is checked too.
            assert!(expected.contains("content-type"));
        }
        if !configured {
            // Not named by the list route: dropped as not allowed.
            expected.insert("x-allowed".into());
        }
        assert_eq!(dropped(rec), expected, "{what}: {rec}");
        let text = rec.to_string();
        assert!(
            !text.contains("Wang") && !text.contains("13900131001"),
            "{text}"
        );
    }
    let m = a.scrape().await;
    let count = |route: &str, header: &str| {
        m.value(
            "fieldguard_response_headers_dropped_total",
            &[("route", route), ("header", header)],
        )
    };
    assert_eq!(count("/customers/{id}", "content-type"), 3.0);
    assert_eq!(count("/customers/{id}", "cache-control"), 3.0);
    assert_eq!(count("/customers", "vary"), 2.0);
    assert_eq!(count("/customers", "x-allowed"), 2.0);
    assert_eq!(count("/customers/{id}", "last-modified"), 3.0);
}

#[tokio::test]
async fn shadow_mode_reports_bad_values_and_relays_them() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start(Arc::new(hostile_script)).await;
    let mut a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.path().join("audit.log")),
        |cfg| {
            allow_x_allowed(cfg);
            cfg.limits.stream_responses_over_bytes = Some(512);
            for r in cfg.routes.iter_mut() {
                r.shadow = true;
            }
        },
        vec![],
    )
    .await;
    let cases = hostile_requests(&a).await;
    for (what, r, _) in &cases {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(
            r.headers["cache-control"], "private, x-phone=13900131001",
            "{what}: shadow mode changes nothing"
        );
        assert_eq!(r.headers["content-language"], "wang.lei@example.com");
    }
    a.drain().await;
    let recs = by_request_id(&records(&dir.path().join("audit.log")));
    for (what, r, configured) in &cases {
        let rec = &recs[&rid(r)];
        assert!(rec["response_headers_dropped"].is_null(), "{what}: {rec}");
        let would: BTreeSet<String> = rec["shadow"]["would_drop_headers"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {rec}"))
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let mut expected = hostile_names(*configured);
        if !configured {
            expected.insert("x-allowed".into());
        }
        assert_eq!(would, expected, "{what}: {rec}");
    }
    let m = a.scrape().await;
    assert_eq!(
        m.value("fieldguard_response_headers_dropped_total", &[]),
        0.0
    );
}

/// With gateway identity configured, a filtered answer varies on the
/// gateway's identity headers too: a cache keyed without them could serve
/// one gateway-identified caller's view to another.
#[tokio::test]
async fn vary_names_the_gateway_identity_headers() {
    let dir = tempfile::tempdir().unwrap();
    let gw = fieldguard::identity::GatewayConfig::default();
    let (subject, roles) = (gw.subject_header.clone(), gw.roles_header.clone());
    let (a, _up) = start(dir.path(), |cfg| {
        cfg.identity.gateway = Some(fieldguard::identity::GatewayConfig {
            // No peer is trusted: callers here still use their token.
            trusted_peers: vec!["10.0.0.0/8".parse().expect("CIDR")],
            ..gw
        });
    })
    .await;
    let r = a.h.get("/customers/c-1001", &customer()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let vary: Vec<&str> = r.headers["vary"].to_str().unwrap().split(", ").collect();
    for name in ["authorization", subject.as_str(), roles.as_str()] {
        assert!(vary.contains(&name), "{name} not in {vary:?}");
    }
    assert_eq!(r.headers["cache-control"], "private, max-age=60");
}
