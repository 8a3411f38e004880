//! Requests are decided for what the upstream will do, through the real
//! proxy in front of an upstream the test scripts and watches: a method
//! override (header in any spelling, or a `_method` parameter) is refused
//! on every route; a checked write body with two media types or a content
//! coding is refused; gateway identity headers and forgeable client-cert
//! headers are recognised and stripped in every spelling a backend folds to
//! the same name. HTTP/1.1 (exact bytes) and h2c.

mod common;

use bytes::Bytes;
use common::audited::{Audited, records, start_audited_in_front_of};
use common::scripted::{Answer, Scripted, Seen};
use common::wire::{RawReply, h2c_request, raw, route};
use common::{Reply, token};
use fieldguard::audit::AuditSettings;
use fieldguard::config::Config;
use fieldguard::identity::GatewayConfig;
use http::{Method, Request, StatusCode, Version};
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const GATEWAY_HEADERS: [&str; 4] = [
    "x-fieldguard-subject",
    "x-fieldguard-roles",
    "x-fieldguard-mfa",
    "x-fieldguard-purpose",
];

const CERT_HEADERS: [&str; 5] = [
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-dn",
    "ssl-client-cert",
];

fn script(_: &Seen) -> Answer {
    Answer::json(&json!({"id": "c-1001", "name": "Alice Example", "phone": "13800000000"}))
}

/// The reference config, a passthrough `/echo`, and `modify`.
async fn start(dir: &Path, modify: impl FnOnce(&mut Config)) -> (Audited, Scripted) {
    let up = Scripted::start(Arc::new(script)).await;
    let a = start_audited_in_front_of(
        up.addr,
        AuditSettings::for_file(dir.join("audit.log")),
        |cfg| {
            cfg.routes
                .push(route(r#"{ method: "*", path: /echo, passthrough: true }"#));
            modify(cfg);
        },
        vec![],
    )
    .await;
    (a, up)
}

fn customer() -> String {
    token("customer", "c-1001", false, None)
}

/// An HTTP/1.1 request exactly as written (`Connection: close`).
fn http1(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{method} {target} HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PATCH" || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn over_h2c(
    a: &Audited,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{target}", a.h.proxy_addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let (version, reply) = h2c_request(a.h.proxy_addr, req).await;
    assert_eq!(version, Version::HTTP_2);
    reply
}

/// The JSON error every refusal is: code, request id in body and header.
fn assert_raw_refused(what: &str, r: &RawReply, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    let id = body["request_id"].as_str().expect("request id").to_string();
    assert_eq!(r.header("x-request-id"), Some(id.as_str()), "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    id
}

fn assert_refused(what: &str, r: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    let id = body["request_id"].as_str().expect("request id").to_string();
    assert_eq!(r.headers["x-request-id"], id.as_str(), "{what}");
    id
}

async fn records_by_id(a: &mut Audited, dir: &Path) -> HashMap<String, Value> {
    a.drain().await;
    records(&dir.join("audit.log"))
        .into_iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), r))
        .collect()
}

#[tokio::test]
async fn method_overrides_are_refused_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, up) = start(dir.path(), |_| {}).await;
    let tok = customer();
    let auth = format!("Bearer {tok}");
    let json = ("Content-Type", "application/json");
    let body = br#"{"phone":"+86 1"}"#;
    let mut ids = Vec::new();

    for spelling in [
        "X-HTTP-Method-Override",
        "x_http_method_override",
        "X-HTTP-Method",
        "X_HTTP_METHOD",
        "x-method-override",
        "X_Method_Override",
    ] {
        let over = (spelling, "DELETE");
        for (method, target, headers, body) in [
            (
                "PATCH",
                "/customers/c-1001",
                vec![("Authorization", auth.as_str()), json, over],
                &body[..],
            ),
            (
                "GET",
                "/customers/c-1001",
                vec![("Authorization", auth.as_str()), over],
                &b""[..],
            ),
            ("POST", "/echo", vec![json, over], &body[..]),
            ("GET", "/nowhere", vec![over], &b""[..]),
        ] {
            let what = format!("{spelling} on {method} {target}");
            let r = raw(a.h.proxy_addr, &http1(method, target, &headers, body)).await;
            ids.push(assert_raw_refused(&what, &r, 400, "method_override"));
        }
    }
    for target in [
        "/customers/c-1001?_method=DELETE",
        "/customers/c-1001?x=1&%5Fmethod=DELETE",
        "/echo?_METHOD=PUT",
        "/echo?.method=DELETE",
        "/echo?_method[]=DELETE",
        "/echo?a=1;_method=DELETE",
    ] {
        let r = raw(
            a.h.proxy_addr,
            &http1("POST", target, &[("Authorization", &auth), json], body),
        )
        .await;
        ids.push(assert_raw_refused(target, &r, 400, "method_override"));
    }
    // The same over h2c.
    for name in [
        "x-http-method-override",
        "x_http_method_override",
        "x_method_override",
    ] {
        let r = over_h2c(
            &a,
            Method::PATCH,
            "/customers/c-1001",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                (name, "DELETE"),
            ],
            body,
        )
        .await;
        ids.push(assert_refused(
            name,
            &r,
            StatusCode::BAD_REQUEST,
            "method_override",
        ));
    }
    let r = over_h2c(&a, Method::POST, "/echo?_method=DELETE", &[], b"").await;
    ids.push(assert_refused(
        "h2c _method",
        &r,
        StatusCode::BAD_REQUEST,
        "method_override",
    ));
    assert!(up.seen().is_empty(), "the upstream saw {:?}", up.seen());

    // Names and parameters that merely look alike still pass.
    for (target, header) in [
        (
            "/echo?method=DELETE&x=_method",
            ("x-http-method-overrides", "1"),
        ),
        ("/echo?_methods=1&a_method=2", ("x-method", "DELETE")),
    ] {
        let r = raw(a.h.proxy_addr, &http1("POST", target, &[header], b"")).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
    }
    assert_eq!(up.seen().len(), 2);
    assert!(up.seen().iter().all(|s| s.method == Method::POST));

    let recs = records_by_id(&mut a, dir.path()).await;
    for id in &ids {
        let rec = &recs[id];
        assert_eq!(rec["refusal"], "method_override", "{rec}");
        assert_eq!(rec["status"], 400);
        assert!(rec["upstream_status"].is_null());
    }
    let m = a.scrape().await;
    assert_eq!(
        m.value("fieldguard_refusals_total", &[("code", "method_override")]),
        ids.len() as f64
    );
}

#[tokio::test]
async fn checked_write_bodies_need_one_media_type_and_no_content_coding() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, up) = start(dir.path(), |_| {}).await;
    let auth = format!("Bearer {}", customer());
    let body = br#"{"phone":"+86 1"}"#;
    let gzipped = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    };
    let patch = |extra: &[(&'static str, &'static str)], body: &[u8]| {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        http1("PATCH", "/customers/c-1001", &h, body)
    };
    let mut refused = Vec::new();
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        (
            "two Content-Type headers",
            patch(
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                body,
            ),
            400,
            "ambiguous_content_type",
        ),
        (
            "the same type twice",
            patch(
                &[
                    ("Content-Type", "application/json"),
                    ("content-type", "application/json"),
                ],
                body,
            ),
            400,
            "ambiguous_content_type",
        ),
        (
            "a list of types",
            patch(&[("Content-Type", "application/json, text/plain")], body),
            400,
            "ambiguous_content_type",
        ),
        (
            "gzip",
            patch(
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "gzip"),
                ],
                &gzipped,
            ),
            415,
            "unsupported_content_encoding",
        ),
        (
            "identity then gzip",
            patch(
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "identity, gzip"),
                ],
                &gzipped,
            ),
            415,
            "unsupported_content_encoding",
        ),
        (
            "a route whose body is not checked (DELETE) forwards a coding",
            http1(
                "DELETE",
                "/customers/c-1001",
                &[("Authorization", auth.as_str()), ("Content-Encoding", "br")],
                b"",
            ),
            // DELETE /customers/{id} has no `request:` section: forwarded.
            204,
            "",
        ),
    ];
    for (what, bytes, status, code) in cases {
        let r = raw(a.h.proxy_addr, &bytes).await;
        if code.is_empty() {
            assert_ne!(r.status, 415, "{what}: {}", r.text());
            continue;
        }
        refused.push((assert_raw_refused(what, &r, status, code), code));
    }
    let deletes = up
        .seen()
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .count();
    assert_eq!(
        up.seen().len(),
        deletes,
        "only the DELETE went upstream: {:?}",
        up.seen()
    );

    // Over h2c: two content-type fields.
    let r = over_h2c(
        &a,
        Method::PATCH,
        "/customers/c-1001",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
        ],
        body,
    )
    .await;
    refused.push((
        assert_refused("h2c", &r, StatusCode::BAD_REQUEST, "ambiguous_content_type"),
        "ambiguous_content_type",
    ));
    assert_eq!(up.seen().len(), deletes);

    // Controls: one type (with a quoted comma in a parameter), identity coding.
    for extra in [
        &[("Content-Type", "application/json; charset=\"utf-8,x\"")][..],
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "identity"),
        ][..],
    ] {
        let r = raw(a.h.proxy_addr, &patch(extra, body)).await;
        assert_eq!(r.status, 200, "{extra:?}: {}", r.text());
    }
    assert_eq!(up.seen().len(), deletes + 2);
    // Routes whose body is not checked forward such requests as they are.
    let r = raw(
        a.h.proxy_addr,
        &http1(
            "POST",
            "/echo",
            &[
                ("Content-Type", "application/json"),
                ("Content-Type", "text/plain"),
            ],
            body,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let recs = records_by_id(&mut a, dir.path()).await;
    for (id, code) in refused {
        assert_eq!(recs[&id]["refusal"], code, "{}", recs[&id]);
        assert!(recs[&id]["upstream_status"].is_null());
    }
    let m = a.scrape().await;
    assert_eq!(
        m.value(
            "fieldguard_body_rejections_total",
            &[
                ("direction", "request"),
                ("reason", "ambiguous_content_type")
            ]
        ),
        4.0
    );
}

#[tokio::test]
async fn in_shadow_mode_an_ambiguous_body_is_audited_and_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, up) = start(dir.path(), |cfg| cfg.shadow = true).await;
    let auth = format!("Bearer {}", customer());
    let r = raw(
        a.h.proxy_addr,
        &http1(
            "PATCH",
            "/customers/c-1001",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Content-Type", "text/plain"),
            ],
            br#"{"phone":"+86 1"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.seen().len(), 1);
    // A method override is refused even in shadow mode: it is not a policy
    // decision but a request the proxy cannot decide at all.
    let r = raw(
        a.h.proxy_addr,
        &http1(
            "GET",
            "/customers/c-1001",
            &[
                ("Authorization", &auth),
                ("X_HTTP_Method_Override", "DELETE"),
            ],
            b"",
        ),
    )
    .await;
    assert_raw_refused("shadow override", &r, 400, "method_override");
    assert_eq!(up.seen().len(), 1);
    let recs = records_by_id(&mut a, dir.path()).await;
    let patch = recs
        .values()
        .find(|r| r["method"] == "PATCH")
        .expect("the PATCH record");
    assert_eq!(
        patch["shadow"]["would_deny"]["reason"], "ambiguous_content_type",
        "{patch}"
    );
    assert!(patch["refusal"].is_null());
}

fn trust_gateway(cfg: &mut Config, cidr: &str) {
    cfg.identity.gateway = Some(GatewayConfig {
        trusted_peers: vec![cidr.parse().expect("CIDR")],
        ..GatewayConfig::default()
    });
}

/// Header names of `s` that fold to one of `names`.
fn folded_hits(s: &Seen, names: &[&str]) -> Vec<String> {
    s.headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| {
            names
                .iter()
                .any(|n| k.replace('_', "-").eq_ignore_ascii_case(n))
        })
        .collect()
}

#[tokio::test]
async fn gateway_headers_in_any_spelling_from_an_untrusted_peer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, up) = start(dir.path(), |cfg| trust_gateway(cfg, "10.0.0.0/8")).await;
    let auth = format!("Bearer {}", token("support_agent", "agent-7", false, None));
    // Control: the token alone works.
    let r = raw(
        a.h.proxy_addr,
        &http1("GET", "/customers/c-1001", &[("Authorization", &auth)], b""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen_before = up.seen().len();
    let mut ids = Vec::new();
    for (name, value) in [
        ("X_Fieldguard_Subject", "dpo-1"),
        ("x_fieldguard_roles", "data_protection_officer"),
        ("X-FIELDGUARD_MFA", "true"),
        ("x_FIELDGUARD-purpose", "audit"),
    ] {
        let r = raw(
            a.h.proxy_addr,
            &http1(
                "GET",
                "/customers/c-1001",
                &[("Authorization", &auth), (name, value)],
                b"",
            ),
        )
        .await;
        ids.push(assert_raw_refused(name, &r, 401, "unauthenticated"));
    }
    let r = over_h2c(
        &a,
        Method::GET,
        "/customers/c-1001",
        &[
            ("authorization", &auth),
            ("x_fieldguard_roles", "data_protection_officer"),
        ],
        b"",
    )
    .await;
    ids.push(assert_refused(
        "h2c",
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    ));
    assert_eq!(
        up.seen().len(),
        seen_before,
        "refused requests reached the upstream"
    );

    // On a passthrough route nothing is identified, but every spelling is
    // stripped before the upstream.
    let r = raw(
        a.h.proxy_addr,
        &http1(
            "POST",
            "/echo",
            &[
                ("X_Fieldguard_Subject", "dpo-1"),
                ("x-fieldguard-roles", "data_protection_officer"),
                ("x_fieldguard_mfa", "1"),
                ("X-Fieldguard_Purpose", "audit"),
                ("x_other", "kept"),
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen();
    let echo = seen.last().expect("the passthrough request");
    assert_eq!(folded_hits(echo, &GATEWAY_HEADERS), Vec::<String>::new());
    assert_eq!(echo.headers["x_other"], "kept");

    let recs = records_by_id(&mut a, dir.path()).await;
    for id in ids {
        assert_eq!(
            recs[&id]["identity_error"], "untrusted_gateway_headers",
            "{}",
            recs[&id]
        );
    }
}

#[tokio::test]
async fn folded_identity_and_certificate_headers_never_reach_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (a, up) = start(dir.path(), |cfg| trust_gateway(cfg, "127.0.0.1/32")).await;
    let forged: Vec<(&str, &str)> = vec![
        // A trusted gateway that forwards what it does not recognise: the
        // dashed subject is the gateway's, the folded roles are the client's.
        ("x-fieldguard-subject", "c-1001"),
        ("x-fieldguard-roles", "customer"),
        ("X_Fieldguard_Roles", "data_protection_officer"),
        ("x_fieldguard_mfa", "true"),
        ("X_Forwarded_Client_Cert", "By=spiffe://evil;Hash=1"),
        ("x_ssl_client_cert", "-----BEGIN CERTIFICATE-----"),
        ("X-SSL-CLIENT_DN", "CN=admin"),
        ("ssl_client_cert", "forged"),
        ("x_client_cert", "forged"),
    ];
    for (method, target) in [("GET", "/customers/c-1001"), ("POST", "/echo")] {
        let r = raw(a.h.proxy_addr, &http1(method, target, &forged, b"")).await;
        assert_eq!(r.status, 200, "{method} {target}: {}", r.text());
        // The customer identity the gateway asserted, not the forged roles.
        assert_eq!(r.json()["id"], "c-1001");
    }
    let r = over_h2c(
        &a,
        Method::GET,
        "/customers/c-1001",
        &forged
            .iter()
            .map(|(k, v)| (k.to_string().to_ascii_lowercase(), *v))
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(
            folded_hits(s, &GATEWAY_HEADERS),
            Vec::<String>::new(),
            "{s:?}"
        );
        assert_eq!(folded_hits(s, &CERT_HEADERS), Vec::<String>::new(), "{s:?}");
    }
}
