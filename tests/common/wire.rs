//! Wire-level helpers for the protocol tests: raw HTTP/1.1 over TCP (exact
//! request bytes, chunked bodies, odd methods and paths no client library
//! would send), an h2c prior-knowledge client, hand-made JWTs, and route
//! snippets for `start_with`.

use super::Reply;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use fieldguard_core::config::RouteConfig;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single exchange in these helpers.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A route of the config file, written as YAML (as an operator would).
pub fn route(yaml: &str) -> RouteConfig {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad route snippet: {e}\n{yaml}"))
}

/// A response read off the wire by [`raw`].
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Names lower-cased, in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `request` byte for byte to `addr` and reads one response
/// (Content-Length, chunked, or until the server closes; no body for HEAD).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawReply {
    let head = request.starts_with(b"HEAD ");
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(reply) = parse_response(&buf, head, false) {
                return reply;
            }
            let n = stream.read(&mut chunk).await.expect("read response");
            if n == 0 {
                return parse_response(&buf, head, true).unwrap_or_else(|| {
                    panic!(
                        "connection closed mid-response: {:?}",
                        String::from_utf8_lossy(&buf)
                    )
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("raw exchange finished within 10 s")
}

/// A GET with the given path spelling, exactly as written.
pub fn raw_get(method: &str, path: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("{method} {path} HTTP/1.1\r\nHost: proxy.test\r\n{auth}Connection: close\r\n\r\n")
        .into_bytes()
}

/// `Some` once `buf` holds a complete response; `eof` allows a body
/// delimited by the connection closing; `head`: the answer to a HEAD.
fn parse_response(buf: &[u8], head: bool, eof: bool) -> Option<RawReply> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = std::str::from_utf8(&buf[..head_end]).expect("response head is UTF-8");
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let rest = &buf[head_end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body = if head || status == 204 || status == 304 {
        Vec::new()
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if find("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        dechunk(rest)?
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(RawReply {
        status,
        headers,
        body,
    })
}

/// Decodes a complete chunked body; `None` while incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).expect("chunk size");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailer section, then the final CRLF.
            return data.windows(2).position(|w| w == b"\r\n").map(|_| out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// One request over an HTTP/2 prior-knowledge (h2c) connection.
pub async fn h2c(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (Version, Reply) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    h2c_request(addr, req.body(Full::new(Bytes::new())).expect("request")).await
}

/// `req` (absolute URI) over its own h2c connection.
pub async fn h2c_request(addr: SocketAddr, req: Request<Full<Bytes>>) -> (Version, Reply) {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2c handshake");
        let conn_task = tokio::spawn(conn);
        let resp = sender.send_request(req).await.expect("h2 response");
        let version = resp.version();
        let status = resp.status();
        let headers: HeaderMap = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("h2 body")
            .to_bytes();
        conn_task.abort();
        (
            version,
            Reply {
                status,
                headers,
                body,
            },
        )
    })
    .await
    .expect("h2c exchange finished within 10 s")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"))
}

/// An HS256 JWT with exactly these claims (no library defaults), so tests
/// can make tokens the minting helper refuses to make (expired ones).
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64_json(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        b64_json(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// An unsigned `alg: none` token: header, claims, empty signature.
pub fn unsigned_token(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64_json(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64_json(claims)
    )
}

/// Claims the reference config would accept, apart from whatever the caller
/// changes afterwards.
pub fn demo_claims(sub: &str, role: &str) -> Value {
    let now = now();
    serde_json::json!({
        "sub": sub,
        "roles": [role],
        "amr": ["pwd"],
        "iss": "fieldguard-demo",
        "aud": "demo-shop",
        "iat": now,
        "exp": now + 600,
    })
}
