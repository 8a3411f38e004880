//! The proxy's protocol behaviour, end to end: authentication failures,
//! gateway identity, path canonicalisation, fail-closed response handling,
//! request-body limits, pass-through fidelity, h2c and HEAD. Every test runs
//! the real proxy in front of the real demo shop on 127.0.0.1 and observes
//! the upstream through the shop's state or its `/echo` route.

mod common;

use common::wire::{
    RawReply, demo_claims, h2c, now, raw, raw_get, route, sign_hs256, unsigned_token,
};
use common::{Reply, demo_secret, keys, start, start_with, token};
use fieldguard::config::Config;
use fieldguard::demo::data;
use fieldguard::identity::GatewayConfig;
use fieldguard_core::config::UnmatchedPolicy;
use http::{Method, StatusCode, Version};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;

// ------------------------------------------------------------------ helpers

/// Asserts a proxy refusal: status, JSON `error` code, a request id that is
/// also in the `x-request-id` header, and nothing but the documented keys.
fn assert_refused(r: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status, status, "body: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"], code, "body: {body}");
    let id = body["request_id"].as_str().expect("request_id is a string");
    assert!(!id.is_empty());
    assert_eq!(r.headers["x-request-id"], id);
    assert_eq!(
        r.headers["content-type"], "application/json",
        "errors are JSON"
    );
    body
}

fn assert_raw_refused(r: &RawReply, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

fn add_routes(cfg: &mut Config, yaml: &[&str]) {
    cfg.routes.extend(yaml.iter().map(|y| route(y)));
}

/// `{method: "*", path: /echo, passthrough: true}`.
fn echo_passthrough(cfg: &mut Config) {
    add_routes(cfg, &[r#"{ method: "*", path: /echo, passthrough: true }"#]);
}

fn trust_gateway(cfg: &mut Config, cidr: &str) {
    cfg.identity.gateway = Some(GatewayConfig {
        trusted_peers: vec![cidr.parse().expect("CIDR")],
        ..GatewayConfig::default()
    });
}

/// Header names the upstream saw, from an `/echo` answer.
fn echoed_header_names(echo: &Value) -> Vec<String> {
    keys(&echo["headers"])
}

/// String values of a record that identify it (so a leak is recognisable).
fn distinctive_values(record: &Value) -> Vec<String> {
    ["name", "phone", "email", "id_card_number"]
        .iter()
        .map(|f| {
            record[*f]
                .as_str()
                .unwrap_or_else(|| panic!("{f} in {record}"))
                .to_string()
        })
        .collect()
}

fn assert_no_leak(body: &[u8], secrets: &[String], what: &str) {
    let text = String::from_utf8_lossy(body);
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what}: leaked {s:?} in {text}");
    }
}

// ----------------------------------------------------- 1. authentication

#[tokio::test]
async fn bad_credentials_get_401_and_reach_nothing() {
    let h = start().await;
    let secret = demo_secret();

    // Control: the hand-made signer produces tokens the proxy accepts, so each
    // refusal below is caused by the one defect it introduces.
    let good = sign_hs256(&secret, &demo_claims("c-1001", "customer"));
    assert_eq!(h.get("/customers/c-1001", &good).await.status, 200);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = demo_claims("c-1001", "customer");
        f(&mut c);
        c
    };
    let expired = sign_hs256(
        &secret,
        &with(&|c| {
            c["iat"] = json!(now() - 7200);
            c["exp"] = json!(now() - 3600);
        }),
    );
    let other_secret = sign_hs256(
        b"not-the-demo-secret-but-long-enough-0123456789",
        &demo_claims("c-1001", "customer"),
    );
    let alg_none = unsigned_token(&demo_claims("c-1001", "customer"));
    let wrong_iss = sign_hs256(&secret, &with(&|c| c["iss"] = json!("evil-idp")));
    let wrong_aud = sign_hs256(&secret, &with(&|c| c["aud"] = json!("another-service")));
    let not_yet = sign_hs256(&secret, &with(&|c| c["nbf"] = json!(now() + 3600)));
    // The demo token with its signature's last characters changed.
    let mut tampered = good.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("Bearer garbage".into())),
        ("three garbage parts", Some("Bearer aaa.bbb.ccc".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("basic scheme", Some("Basic YWdlbnQ6cGFzcw==".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("other secret", Some(format!("Bearer {other_secret}"))),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("wrong issuer", Some(format!("Bearer {wrong_iss}"))),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("not yet valid", Some(format!("Bearer {not_yet}"))),
        ("tampered signature", Some(format!("Bearer {tampered}"))),
    ];

    let before = h.upstream_get("/customers/c-1001").await.json();
    let patch = serde_json::to_vec(&json!({"phone": "+86 100 0000 0000"})).unwrap();
    for (label, auth) in &cases {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = auth {
            headers.push(("authorization", a.as_str()));
        }
        for (method, path, body) in [
            (Method::PATCH, "/customers/c-1001", Some(&patch[..])),
            (Method::GET, "/customers/c-1001", None),
            // Anonymous callers learn nothing about the route table.
            (Method::GET, "/no/such/route", None),
        ] {
            let r = h.send(method.clone(), path, None, &headers, body).await;
            let what = format!("{label}: {method} {path}");
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
            let body = assert_refused(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
            assert_eq!(r.headers["www-authenticate"], "Bearer", "{what}");
            assert_eq!(keys(&body), ["error", "message", "request_id"], "{what}");
            // The record never reaches a refused caller.
            assert_no_leak(&r.body, &distinctive_values(&before), &what);
            if let Some(a) = auth {
                let tok = a.split_once(' ').map(|(_, t)| t).unwrap_or("");
                assert!(
                    tok.len() < 8 || !r.text().contains(tok),
                    "{what}: the token is echoed"
                );
            }
        }
    }
    // Nothing reached the shop: the record is untouched...
    assert_eq!(h.upstream_get("/customers/c-1001").await.json(), before);
    // ...although the same PATCH with a valid token does change it.
    let ok = h
        .send_json(
            Method::PATCH,
            "/customers/c-1001",
            &good,
            &json!({"phone": "+86 100 0000 0000"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        h.upstream_get("/customers/c-1001").await.json()["phone"],
        "+86 100 0000 0000"
    );
}

// ---------------------------------------------------- 2. gateway identity

/// `GET /echo` as an authenticated (non-passthrough) route, so the proxy
/// identifies the caller and decides before forwarding.
const ECHO_AUTHENTICATED: &str = "{ method: GET, path: /echo, action: \"customer:list\", resource: { type: CustomerDirectory, id: all } }";
const ECHO_POST_PASSTHROUGH: &str = "{ method: POST, path: /echo, passthrough: true }";

const GATEWAY_HEADERS: [&str; 4] = [
    "x-fieldguard-subject",
    "x-fieldguard-roles",
    "x-fieldguard-mfa",
    "x-fieldguard-purpose",
];

#[tokio::test]
async fn trusted_gateway_headers_identify_the_caller_and_never_reach_upstream() {
    let h = start_with(|cfg| {
        trust_gateway(cfg, "127.0.0.1/32");
        add_routes(cfg, &[ECHO_AUTHENTICATED, ECHO_POST_PASSTHROUGH]);
    })
    .await;
    let raw_record = h.upstream_get("/customers/c-1001").await.json();
    let agent_mfa = [
        ("x-fieldguard-subject", "agent-7"),
        ("x-fieldguard-roles", "support_agent"),
        ("x-fieldguard-mfa", "true"),
    ];

    // A support agent with MFA, named by the gateway, sees the phone in full
    // (and still no ID card number).
    let r = h
        .send(Method::GET, "/customers/c-1001", None, &agent_mfa, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["phone"], raw_record["phone"]);
    assert_eq!(v["email"], raw_record["email"]);
    assert!(v.get("id_card_number").is_none(), "{v}");

    // Without the MFA header the same agent sees the masked phone.
    let r = h
        .send(
            Method::GET,
            "/customers/c-1001",
            None,
            &agent_mfa[..2],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let masked = r.json()["phone"].clone();
    assert!(masked.is_string(), "{masked}");
    assert_ne!(masked, raw_record["phone"]);

    // A customer named by the gateway gets their own record, not another's.
    let customer = [
        ("x-fieldguard-subject", "c-1001"),
        ("x-fieldguard-roles", "customer"),
    ];
    let own = h
        .send(Method::GET, "/customers/c-1001", None, &customer, None)
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json(), raw_record);
    let other = h
        .send(Method::GET, "/customers/c-1002", None, &customer, None)
        .await;
    assert_refused(&other, StatusCode::FORBIDDEN, "forbidden");

    // The gateway headers are stripped before the upstream, on a decided
    // route and on a passthrough route alike; other headers still pass.
    let mut all = agent_mfa.to_vec();
    all.push(("x-fieldguard-purpose", "support"));
    all.push(("x-other", "kept"));
    for method in [Method::GET, Method::POST] {
        let r = h.send(method.clone(), "/echo", None, &all, None).await;
        assert_eq!(r.status, 200, "{method} /echo: {}", r.text());
        let echo = r.json();
        assert_eq!(echo["method"], method.as_str());
        let names = echoed_header_names(&echo);
        for g in GATEWAY_HEADERS {
            assert!(
                !names.contains(&g.to_string()),
                "{method}: {g} reached upstream"
            );
        }
        assert_eq!(echo["headers"]["x-other"], "kept");
    }
}

#[tokio::test]
async fn gateway_headers_from_untrusted_peers_are_refused() {
    let h = start_with(|cfg| {
        trust_gateway(cfg, "10.0.0.0/8");
        echo_passthrough(cfg);
    })
    .await;
    let agent = token("support_agent", "agent-7", false, None);

    // Control: the JWT alone works.
    assert_eq!(h.get("/customers/c-1001", &agent).await.status, 200);

    // Any gateway header from 127.0.0.1 (not trusted) is an impersonation
    // attempt, refused even beside a valid token.
    let attempts: [&[(&str, &str)]; 3] = [
        &[
            ("x-fieldguard-subject", "dpo-1"),
            ("x-fieldguard-roles", "data_protection_officer"),
            ("x-fieldguard-mfa", "true"),
        ],
        &[("x-fieldguard-roles", "data_protection_officer")],
        &[("x-fieldguard-mfa", "1")],
    ];
    let record = h.upstream_get("/customers/c-1001").await.json();
    for headers in attempts {
        let r = h
            .send(
                Method::GET,
                "/customers/c-1001",
                Some(&agent),
                headers,
                None,
            )
            .await;
        assert_refused(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert_no_leak(&r.body, &distinctive_values(&record), "untrusted gateway");
    }

    // On a passthrough route nothing is identified, but the forged headers
    // are still stripped before the upstream.
    let r = h.send(Method::GET, "/echo", None, attempts[0], None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let names = echoed_header_names(&r.json());
    for g in GATEWAY_HEADERS {
        assert!(!names.contains(&g.to_string()), "{g} reached upstream");
    }
}

// ------------------------------------------------------ 3. routes and paths

#[tokio::test]
async fn unmatched_routes_are_denied_after_authentication() {
    let h = start().await;
    let dpo = token("data_protection_officer", "dpo-1", true, None);
    for path in ["/no/such/route", "/admin", "/customers/c-1001/secrets", "/"] {
        let r = h.get(path, &dpo).await;
        let body = assert_refused(&r, StatusCode::FORBIDDEN, "no_route");
        assert_eq!(keys(&body), ["error", "message", "request_id"]);
    }
    // A method no route names is unmatched too (PUT is not in the table).
    let r = h
        .send(
            Method::PUT,
            "/customers/c-1001",
            Some(&dpo),
            &[],
            Some(b"{}"),
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "no_route");
}

#[tokio::test]
async fn unmatched_passthrough_still_requires_identity() {
    let h = start_with(|cfg| cfg.unmatched = UnmatchedPolicy::Passthrough).await;
    let r = h.send(Method::GET, "/echo?a=1", None, &[], None).await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let tok = token("customer", "c-1001", false, None);
    let r = h.get("/echo?a=1", &tok).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo?a=1");
}

#[tokio::test]
async fn no_spelling_of_a_path_reaches_another_customers_record() {
    let h = start().await;
    let tok = token("customer", "c-1001", false, None);
    let victim = h.upstream_get("/customers/c-1002").await.json();
    let secrets = distinctive_values(&victim);

    let cases: [(&str, &str, u16, &str); 9] = [
        ("GET", "//customers/c-1002", 403, "forbidden"),
        ("GET", "/customers/./c-1002", 403, "forbidden"),
        ("GET", "/customers/c-1001/../c-1002", 403, "forbidden"),
        ("GET", "/customers/%63-1002", 403, "forbidden"),
        ("GET", "/customers/c-1002/", 403, "forbidden"),
        ("GET", "/customers/c-1001%2F..%2Fc-1002", 400, "bad_path"),
        ("GET", "/customers/c-1001%2f..%2fc-1002", 400, "bad_path"),
        ("GET", "/CUSTOMERS/c-1002", 403, "no_route"),
        ("get", "/customers/c-1002", 403, "no_route"),
    ];
    for (method, path, status, code) in cases {
        let r = raw(h.proxy_addr, &raw_get(method, path, Some(&tok))).await;
        let what = format!("{method} {path}");
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_raw_refused(&r, status, code);
        assert_no_leak(&r.body, &secrets, &what);
    }

    // The same spellings of the caller's own record work, which the shop
    // (splitting the raw path on '/') only answers if it got the canonical
    // path: the proxy forwards what it decided on.
    let own = h.upstream_get("/customers/c-1001").await.json();
    for path in [
        "//customers/c-1001",
        "/customers/./c-1001",
        "/customers/c-1002/../c-1001",
        "/customers/%63-1001",
        "/customers/c-1001/",
    ] {
        let r = raw(h.proxy_addr, &raw_get("GET", path, Some(&tok))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json(), own, "{path}");
    }
}

#[tokio::test]
async fn upstream_receives_the_canonical_path_and_the_raw_query() {
    let h = start_with(echo_passthrough).await;
    for (sent, seen) in [
        ("/echo", "/echo"),
        ("//echo", "/echo"),
        ("/./x/../echo?q=%2F..&b=a%20b", "/echo?q=%2F..&b=a%20b"),
        ("/%65cho?x=1", "/echo?x=1"),
    ] {
        let r = raw(h.proxy_addr, &raw_get("GET", sent, None)).await;
        assert_eq!(r.status, 200, "{sent}: {}", r.text());
        assert_eq!(r.json()["path"], seen, "{sent}");
    }
}

// ---------------------------------------------------- 4. response handling

#[tokio::test]
async fn unreadable_responses_fail_closed_and_gzip_is_redacted() {
    let h = start().await;
    let agent = token("support_agent", "agent-7", false, None);
    let raw_record = h.upstream_get("/customers/c-1001").await.json();
    let sensitive = [
        raw_record["id_card_number"].as_str().unwrap().to_string(),
        raw_record["phone"].as_str().unwrap().to_string(),
        raw_record["birth_date"].as_str().unwrap().to_string(),
    ];
    for format in ["text", "broken", "br"] {
        let r = h
            .get(&format!("/customers/c-1001?format={format}"), &agent)
            .await;
        assert_refused(&r, StatusCode::BAD_GATEWAY, "unreadable_response");
        assert!(r.headers.get("content-encoding").is_none(), "{format}");
        assert_no_leak(&r.body, &sensitive, format);
    }

    // gzip is decoded, filtered and sent uncompressed.
    let r = h.get("/customers/c-1001?format=gzip", &agent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(
        r.headers["content-length"],
        r.body.len().to_string().as_str()
    );
    let v = r.json();
    assert_eq!(v, h.get("/customers/c-1001", &agent).await.json());
    assert!(v.get("id_card_number").is_none(), "{v}");
    assert!(v.get("birth_date").is_none(), "{v}");
    assert_eq!(v["name"], raw_record["name"]);
    assert_no_leak(&r.body, &sensitive, "gzip");
}

#[tokio::test]
async fn responses_over_the_limit_are_refused() {
    // The limit sits between the gzip and the plain size of c-1001's record,
    // so both the declared length and decompression are checked.
    let plain = serde_json::to_vec(&data::customer(0)).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    let gz = enc.finish().unwrap();
    let limit = plain.len() - 1;
    assert!(gz.len() < limit, "the record compresses below the limit");

    let h = start_with(|cfg| cfg.limits.max_response_body_bytes = limit).await;
    let agent = token("support_agent", "agent-7", false, None);
    let raw_record = h.upstream_get("/customers/c-1001").await.json();
    for path in [
        "/customers/c-1001",
        "/customers/c-1001?format=gzip",
        "/customers",
    ] {
        let r = h.get(path, &agent).await;
        assert_refused(&r, StatusCode::BAD_GATEWAY, "response_too_large");
        assert_no_leak(&r.body, &distinctive_values(&raw_record), path);
    }
}

#[tokio::test]
async fn upstream_errors_on_inspected_routes_keep_the_status_not_the_body() {
    let h = start().await;
    let agent = token("support_agent", "agent-7", false, None);
    let upstream = h.upstream_get("/customers/c-9999").await;
    assert_eq!(upstream.status, 404);
    let r = h.get("/customers/c-9999", &agent).await;
    let body = assert_refused(&r, StatusCode::NOT_FOUND, "upstream_error");
    assert_ne!(r.body, upstream.body);
    assert_eq!(keys(&body), ["error", "message", "request_id"]);
}

// ------------------------------------------------------ 5. request bodies

#[tokio::test]
async fn request_bodies_are_bounded_typed_and_parsed_before_upstream() {
    const LIMIT: usize = 1024;
    let h = start_with(|cfg| cfg.limits.max_request_body_bytes = LIMIT).await;
    let tok = token("customer", "c-1001", false, None);
    let before = h.upstream_get("/customers/c-1001").await.json();

    // Over the limit, with Content-Length.
    let big = json!({"phone": "1".repeat(2 * LIMIT)});
    let r = h
        .send_json(Method::PATCH, "/customers/c-1001", &tok, &big)
        .await;
    assert_refused(&r, StatusCode::PAYLOAD_TOO_LARGE, "request_too_large");

    // Over the limit, chunked (no Content-Length to refuse up front).
    let big_bytes = serde_json::to_vec(&big).unwrap();
    let r = raw(h.proxy_addr, &chunked_patch(&tok, &big_bytes, 300)).await;
    assert_raw_refused(&r, 413, "request_too_large");

    // Not JSON by media type, though the bytes are valid JSON.
    let small = br#"{"phone":"+86 111 1111 1111"}"#;
    let r = h
        .send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&tok),
            &[("content-type", "text/plain")],
            Some(small),
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // No content type at all.
    let r = h
        .send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&tok),
            &[],
            Some(small),
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    // Malformed JSON.
    for bad in [&b"{\"phone\":"[..], b"not json", b""] {
        let r = h
            .send(
                Method::PATCH,
                "/customers/c-1001",
                Some(&tok),
                &[("content-type", "application/json")],
                Some(bad),
            )
            .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "malformed_request_body");
    }

    assert_eq!(h.upstream_get("/customers/c-1001").await.json(), before);

    // Control: a small chunked body passes and reaches the shop, so the
    // refusals above were about size, type and syntax.
    let r = raw(h.proxy_addr, &chunked_patch(&tok, small, 7)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        h.upstream_get("/customers/c-1001").await.json()["phone"],
        "+86 111 1111 1111"
    );
}

/// A chunked `PATCH /customers/c-1001` without Content-Length.
fn chunked_patch(token: &str, body: &[u8], chunk: usize) -> Vec<u8> {
    let mut req = format!(
        "PATCH /customers/c-1001 HTTP/1.1\r\nHost: proxy.test\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in body.chunks(chunk) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

// -------------------------------------------------- 6. pass-through fidelity

/// Sent by the client in the fidelity test; none may reach the upstream.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "x-secret",
    "keep-alive",
    "te",
    "upgrade",
    "proxy-authorization",
];

#[tokio::test]
async fn passthrough_forwards_body_and_headers_faithfully() {
    let h = start_with(echo_passthrough).await;
    let body: Vec<u8> = (0..=255u8).collect();
    let mut req = format!(
        "POST /echo?q=a%20b HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: x-secret\r\n\
         X-Secret: hop-only\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         X-Custom: Mixed Case  value; q=1\r\n\
         X-Multi: a\r\n\
         X-Multi: b\r\n\
         Authorization: Basic dXBzdHJlYW06b25seQ==\r\n\
         X-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\
         X-Request-Id: client-req-42\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = raw(h.proxy_addr, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = r.json();

    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo?q=a%20b");
    assert_eq!(echo["body_len"], 256);
    assert_eq!(echo["body_sha256"], hex::encode(Sha256::digest(&body)));

    let hdr = &echo["headers"];
    assert_eq!(hdr["x-custom"], "Mixed Case  value; q=1");
    assert_eq!(hdr["x-multi"], "a, b");
    assert_eq!(hdr["authorization"], "Basic dXBzdHJlYW06b25seQ==");
    assert_eq!(hdr["content-type"], "application/octet-stream");
    assert_eq!(hdr["host"], "shop.example", "preserve_host is the default");
    let names = echoed_header_names(&echo);
    // Control: sent straight to the shop, the same bytes do arrive with
    // these headers, so their absence above is the proxy's doing.
    let direct = raw(h.shop_addr, &req).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    let direct_names = echoed_header_names(&direct.json());
    for hop in HOP_BY_HOP {
        assert!(direct_names.contains(&hop.to_string()), "control: {hop}");
        assert!(!names.contains(&hop.to_string()), "{hop} reached upstream");
    }
    assert_eq!(
        hdr["x-forwarded-for"],
        "203.0.113.7, 198.51.100.2, 127.0.0.1"
    );
    assert_eq!(hdr["x-forwarded-proto"], "http");
    assert_eq!(hdr["x-request-id"], "client-req-42");
    assert_eq!(r.header("x-request-id"), Some("client-req-42"));
}

#[tokio::test]
async fn request_ids_are_generated_when_missing_or_unsafe() {
    let h = start_with(echo_passthrough).await;
    for (label, given) in [
        ("missing", None),
        ("unsafe", Some("bad id\"with spaces")),
        ("too long", Some(&*"a".repeat(200))),
    ] {
        let headers: Vec<(&str, &str)> = given.map(|g| ("x-request-id", g)).into_iter().collect();
        let r = h.send(Method::GET, "/echo", None, &headers, None).await;
        assert_eq!(r.status, 200, "{label}");
        let upstream_id = r.json()["headers"]["x-request-id"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no request id upstream"))
            .to_string();
        assert!(uuid_like(&upstream_id), "{label}: {upstream_id}");
        assert_eq!(r.headers["x-request-id"], upstream_id.as_str(), "{label}");
        // No XFF from the client: the chain starts with the peer.
        assert_eq!(r.json()["headers"]["x-forwarded-for"], "127.0.0.1");
    }
    // Two requests without ids get different ones.
    let a = h.send(Method::GET, "/echo", None, &[], None).await;
    let b = h.send(Method::GET, "/echo", None, &[], None).await;
    assert_ne!(a.headers["x-request-id"], b.headers["x-request-id"]);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        })
}

#[tokio::test]
async fn passthrough_response_bodies_are_byte_identical() {
    let h = start().await;
    let direct = h.upstream_get("/catalog/products").await;
    assert_eq!(direct.status, 200);
    // No token needed: the catalogue route is a passthrough.
    let proxied = h
        .send(Method::GET, "/catalog/products", None, &[], None)
        .await;
    assert_eq!(proxied.status, direct.status);
    assert_eq!(proxied.body, direct.body, "byte for byte");
    for name in ["content-type", "content-length"] {
        assert_eq!(
            proxied.headers.get(name),
            direct.headers.get(name),
            "{name}"
        );
    }
    assert!(proxied.headers.contains_key("x-request-id"));
}

// ------------------------------------------------------------------ 7. h2c

#[tokio::test]
async fn h2c_clients_get_the_same_filtered_view() {
    let h = start().await;
    let raw_record = h.upstream_get("/customers/c-1001").await.json();
    for (tok, path) in [
        (
            token("support_agent", "agent-7", false, None),
            "/customers/c-1001",
        ),
        (
            token("marketing_analyst", "analyst-2", false, Some("marketing")),
            "/customers?limit=3",
        ),
        (
            token("customer", "c-1001", false, None),
            "/customers/c-1001",
        ),
    ] {
        let h1 = h.get(path, &tok).await;
        let (version, h2) = h2c(h.proxy_addr, Method::GET, path, Some(&tok)).await;
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(h2.status, h1.status, "{}", h2.text());
        assert_eq!(h2.json(), h1.json());
    }
    // The filtered view really is filtered over h2 too.
    let agent = token("support_agent", "agent-7", false, None);
    let (_, r) = h2c(h.proxy_addr, Method::GET, "/customers/c-1001", Some(&agent)).await;
    assert!(r.json().get("id_card_number").is_none());
    assert_no_leak(
        &r.body,
        &[raw_record["id_card_number"].as_str().unwrap().to_string()],
        "h2c",
    );
    // And refusals are the same.
    let customer = token("customer", "c-1001", false, None);
    let (_, r) = h2c(
        h.proxy_addr,
        Method::GET,
        "/customers/c-1002",
        Some(&customer),
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden");
    let (_, r) = h2c(h.proxy_addr, Method::GET, "/customers/c-1001", None).await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

// ----------------------------------------------------------------- 8. HEAD

#[tokio::test]
async fn head_is_decided_like_get() {
    let h = start().await;
    let tok = token("customer", "c-1001", false, None);
    let other = h
        .send(Method::HEAD, "/customers/c-1002", Some(&tok), &[], None)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.body.is_empty());
    assert!(other.headers.contains_key("x-request-id"));

    let own = h
        .send(Method::HEAD, "/customers/c-1001", Some(&tok), &[], None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.body.is_empty());

    let anon = h
        .send(Method::HEAD, "/customers/c-1001", None, &[], None)
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert!(anon.body.is_empty());

    // Over the wire, too: no body bytes follow the head of a HEAD answer.
    let r = raw(
        h.proxy_addr,
        &raw_get("HEAD", "/customers/c-1002", Some(&tok)),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty());
}
