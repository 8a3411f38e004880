//! The demo shop HTTP server: a legacy e-commerce JSON API with no access
//! control at all.
//!
//! It exists so that `fieldguard demo`, the integration tests and the
//! benchmarks have a realistic upstream to protect. It is deliberately naive
//! (it returns and stores every field it is given), but it is deterministic
//! and cheap to run, and it offers a few diagnostic routes that let proxy tests
//! observe exactly what reached the upstream and provoke malformed responses.

use std::convert::Infallible;
use std::io::{self, Write};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::data;

/// Timestamp given to customers created through `POST /customers`; fixed so
/// that test expectations do not depend on the clock.
pub const CREATED_AT: &str = "2025-07-01T00:00:00Z";

/// Request bodies above this are refused, so a misbehaving client cannot make
/// the demo upstream buffer unbounded data.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

type ShopResponse = Response<Full<Bytes>>;

/// The legacy service's in-memory state.
///
/// Customers live behind a lock because `POST`/`PATCH`/`DELETE` mutate them;
/// orders, behaviour and tickets are historical and recomputed on demand from
/// the deterministic generators, which keeps start-up cheap for benchmark-size
/// shops.
pub struct Shop {
    /// Customers generated at start-up; only these have orders, behaviour and
    /// tickets.
    initial: usize,
    state: RwLock<State>,
}

struct State {
    /// Keyed by id; insertion-ordered (serde_json `preserve_order`), so
    /// listings keep id order and new customers are appended.
    customers: Map<String, Value>,
    /// Number used for the next `POST /customers`; never reused after delete.
    next_number: usize,
    /// `GET /customers` body, cached because benchmarks hit it hard;
    /// invalidated by every mutation.
    list_json: Option<Bytes>,
    /// Gzip-compressed form of `list_json`, cached for the same reason.
    list_gzip: Option<Bytes>,
}

impl Shop {
    /// Returns an `Arc` because the server shares one shop across all
    /// connection tasks, and callers (tests, `fieldguard demo`) keep a handle.
    pub fn new(n_customers: usize) -> Arc<Self> {
        Self::build(n_customers, false)
    }

    /// The shop after an upgrade its fieldguard catalogue has not caught
    /// up with: every customer also carries `alt_email` and an
    /// `emergency_contact` (name and mobile number). For onboarding demos
    /// and tests (`fieldguard shop --extra-fields`).
    pub fn with_extra_fields(n_customers: usize) -> Arc<Self> {
        Self::build(n_customers, true)
    }

    fn build(n_customers: usize, extra_fields: bool) -> Arc<Self> {
        let mut customers = Map::new();
        for (index, mut record) in data::customers(n_customers).into_iter().enumerate() {
            if extra_fields && let Some(fields) = record.as_object_mut() {
                fields.insert(
                    "alt_email".into(),
                    json!(format!("backup{}@mail.example.net", 1001 + index)),
                );
                fields.insert(
                    "emergency_contact".into(),
                    json!({
                        "name": "Zhang Min",
                        "phone": format!("+86 138 {:04} {:04}", index / 10_000, index % 10_000),
                    }),
                );
            }
            let id = record["id"].as_str().unwrap_or_default().to_owned();
            customers.insert(id, record);
        }
        Arc::new(Shop {
            initial: n_customers,
            state: RwLock::new(State {
                customers,
                next_number: data::FIRST_CUSTOMER_NUMBER + n_customers,
                list_json: None,
                list_gzip: None,
            }),
        })
    }

    // A poisoned lock only means another request panicked mid-update; the
    // demo data is still usable, so recover rather than propagate the panic.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn customer(&self, id: &str) -> Option<Value> {
        self.read().customers.get(id).cloned()
    }

    /// Generator index of an initial customer, `None` for customers created
    /// later (they have no history).
    fn history_index(&self, id: &str) -> Option<usize> {
        data::customer_index(id).filter(|&i| i < self.initial)
    }

    fn full_list(&self, gzip: bool) -> io::Result<Bytes> {
        {
            let state = self.read();
            let cached = if gzip {
                &state.list_gzip
            } else {
                &state.list_json
            };
            if let Some(bytes) = cached {
                return Ok(bytes.clone());
            }
        }
        let mut state = self.write();
        let json = match &state.list_json {
            Some(bytes) => bytes.clone(),
            None => {
                let bytes = Bytes::from(data::encode_customer_list(
                    state.customers.values(),
                    state.customers.len(),
                ));
                state.list_json = Some(bytes.clone());
                bytes
            }
        };
        if !gzip {
            return Ok(json);
        }
        if let Some(bytes) = &state.list_gzip {
            return Ok(bytes.clone());
        }
        let compressed = Bytes::from(gzip_bytes(&json)?);
        state.list_gzip = Some(compressed.clone());
        Ok(compressed)
    }
}

/// Serves HTTP/1.1 (and h2c via `hyper_util::server::conn::auto`) on the
/// listener until the future is dropped.
///
/// Connections are owned by the returned future, so dropping it (or aborting
/// its task) also closes every open connection, which keeps tests isolated.
/// Accept errors such as descriptor exhaustion under benchmark load are logged
/// and retried instead of returned, so the upstream does not vanish mid-run.
pub async fn serve(listener: TcpListener, shop: Arc<Shop>) -> io::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small JSON responses; Nagle would only add latency.
                    let _ = stream.set_nodelay(true);
                    let shop = Arc::clone(&shop);
                    let builder = builder.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&shop), req));
                        if let Err(error) =
                            builder.serve_connection(TokioIo::new(stream), service).await
                        {
                            tracing::debug!(%error, "demo shop connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "demo shop accept failed");
                    if !matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(shop: Arc<Shop>, req: http::Request<Incoming>) -> Result<ShopResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Ok(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        Err(_) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "could not read request body",
            ));
        }
    };
    Ok(route(&shop, &parts, &body))
}

fn route(shop: &Shop, parts: &http::request::Parts, body: &Bytes) -> ShopResponse {
    let method = &parts.method;
    let query = parts.uri.query().unwrap_or("");
    let segments: Vec<&str> = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    // HEAD behaves like GET; hyper drops the body on the wire.
    let get = *method == Method::GET || *method == Method::HEAD;

    match segments.as_slice() {
        ["echo"] => echo(parts, body),
        ["healthz"] if get => json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        ["catalog", "products"] if get => json_value(StatusCode::OK, &data::products()),
        ["customers"] if get => list_customers(shop, &parts.headers, query),
        ["customers"] if *method == Method::POST => create_customer(shop, body),
        ["customers", id] if get => get_customer(shop, id, query),
        ["customers", id] if *method == Method::PATCH => patch_customer(shop, id, body),
        ["customers", id] if *method == Method::DELETE => delete_customer(shop, id),
        ["customers", id, "orders"] if get => customer_orders(shop, id),
        ["customers", id, "behavior"] if get => customer_behavior(shop, id),
        ["customers", id, "tickets"] if get => customer_tickets(shop, id),
        ["orders", id] if get => get_order(shop, id),
        ["orders"] if get => list_orders(shop, query),
        ["behavior"] if get => list_behavior(shop, query),
        ["healthz"]
        | ["catalog", "products"]
        | ["customers", _, "orders" | "behavior" | "tickets"]
        | ["orders"]
        | ["behavior"]
        | ["orders", _] => method_not_allowed("GET, HEAD"),
        ["customers"] => method_not_allowed("GET, HEAD, POST"),
        ["customers", _] => method_not_allowed("GET, HEAD, PATCH, DELETE"),
        _ => error_response(StatusCode::NOT_FOUND, "not found"),
    }
}

// ---------------------------------------------------------------- customers

fn list_customers(shop: &Shop, headers: &HeaderMap, query: &str) -> ShopResponse {
    let limit = match parse_usize_param(query, "limit") {
        Ok(v) => v,
        Err(message) => return bad_request(&message),
    };
    let offset = match parse_usize_param(query, "offset") {
        Ok(v) => v,
        Err(message) => return bad_request(&message),
    };
    // Legacy behaviour: any mention of gzip counts, q-values are ignored.
    let gzip = headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("gzip"))
    });

    let (bytes, already_compressed) = if limit.is_none() && offset.is_none() {
        match shop.full_list(gzip) {
            Ok(bytes) => (bytes, gzip),
            Err(_) => return internal_error(),
        }
    } else {
        let state = shop.read();
        let page = state
            .customers
            .values()
            .skip(offset.unwrap_or(0))
            .take(limit.unwrap_or(usize::MAX));
        let bytes = data::encode_customer_list(page, state.customers.len());
        (Bytes::from(bytes), false)
    };

    let mut resp = if gzip && !already_compressed {
        match gzip_bytes(&bytes) {
            Ok(compressed) => json_response(StatusCode::OK, compressed),
            Err(_) => return internal_error(),
        }
    } else {
        json_response(StatusCode::OK, bytes)
    };
    if gzip {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// `?format=` variants exist only for proxy tests: each produces a response
/// the proxy cannot safely filter, so the tests can prove it fails closed.
fn get_customer(shop: &Shop, id: &str, query: &str) -> ShopResponse {
    let Some(record) = shop.customer(id) else {
        return not_found();
    };
    let bytes = match serde_json::to_vec(&record) {
        Ok(bytes) => bytes,
        Err(_) => return internal_error(),
    };
    match query_param(query, "format") {
        None | Some("json") => json_response(StatusCode::OK, bytes),
        Some("text") => {
            let mut resp = json_response(StatusCode::OK, bytes);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        Some("broken") => {
            let half = bytes.len() / 2;
            json_response(StatusCode::OK, bytes[..half].to_vec())
        }
        Some("gzip") => match gzip_bytes(&bytes) {
            Ok(compressed) => with_encoding(json_response(StatusCode::OK, compressed), "gzip"),
            Err(_) => internal_error(),
        },
        // Not really brotli: the point is an encoding the proxy cannot decode.
        Some("br") => with_encoding(json_response(StatusCode::OK, bytes), "br"),
        Some(_) => error_response(
            StatusCode::BAD_REQUEST,
            "unknown format (expected json, text, broken, gzip or br)",
        ),
    }
}

/// Legacy semantics: whatever fields the client sends are stored verbatim,
/// including ones it should never be allowed to set (this is what the proxy's
/// request-body checks are for). Only `id` and `registered_at` are assigned.
fn create_customer(shop: &Shop, body: &[u8]) -> ShopResponse {
    let fields = match parse_object(body) {
        Ok(fields) => fields,
        Err(message) => return bad_request(&message),
    };
    let mut state = shop.write();
    let id = format!("c-{}", state.next_number);
    state.next_number += 1;

    let mut record = Map::new();
    record.insert("id".to_owned(), Value::String(id.clone()));
    for (key, value) in fields {
        if key != "id" {
            record.insert(key, value);
        }
    }
    record.insert(
        "registered_at".to_owned(),
        Value::String(CREATED_AT.to_owned()),
    );
    let record = Value::Object(record);
    state.customers.insert(id.clone(), record.clone());
    invalidate(&mut state);
    drop(state);

    let mut resp = json_value(StatusCode::CREATED, &record);
    if let Ok(location) = HeaderValue::from_str(&format!("/customers/{id}")) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    resp
}

/// Shallow merge: top-level fields replace, object fields (address, consent,
/// last_login) are merged one level deep. `id` cannot be changed because it
/// is the storage key.
fn patch_customer(shop: &Shop, id: &str, body: &[u8]) -> ShopResponse {
    let patch = match parse_object(body) {
        Ok(patch) => patch,
        Err(message) => return bad_request(&message),
    };
    let mut state = shop.write();
    let Some(Value::Object(record)) = state.customers.get_mut(id) else {
        return not_found();
    };
    for (key, value) in patch {
        if key == "id" {
            continue;
        }
        if let (Some(Value::Object(existing)), Value::Object(incoming)) =
            (record.get_mut(&key), &value)
        {
            for (k, v) in incoming {
                existing.insert(k.clone(), v.clone());
            }
            continue;
        }
        record.insert(key, value);
    }
    let updated = Value::Object(record.clone());
    invalidate(&mut state);
    drop(state);
    json_value(StatusCode::OK, &updated)
}

fn delete_customer(shop: &Shop, id: &str) -> ShopResponse {
    let mut state = shop.write();
    if state.customers.shift_remove(id).is_none() {
        return not_found();
    }
    invalidate(&mut state);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn invalidate(state: &mut State) {
    state.list_json = None;
    state.list_gzip = None;
}

// ------------------------------------------------------------------ history

fn customer_orders(shop: &Shop, id: &str) -> ShopResponse {
    if shop.customer(id).is_none() {
        return not_found();
    }
    let orders = shop
        .history_index(id)
        .map(data::orders_for)
        .unwrap_or_default();
    json_value(
        StatusCode::OK,
        &json!({ "customer_id": id, "orders": orders }),
    )
}

/// Joins the customer's current marketing consent into each event
/// (`marketing_consent`), because that is the attribute policies use to
/// decide whether behaviour data may be released; a missing flag reads as
/// no consent. The listing (`GET /behavior`) does the same.
fn customer_behavior(shop: &Shop, id: &str) -> ShopResponse {
    let Some(record) = shop.customer(id) else {
        return not_found();
    };
    let consent = record["consent"]["marketing"].as_bool().unwrap_or(false);
    let events: Vec<Value> = shop
        .history_index(id)
        .map(data::behavior_for)
        .unwrap_or_default()
        .into_iter()
        .map(|e| with_consent(e, consent))
        .collect();
    json_value(
        StatusCode::OK,
        &json!({ "customer_id": id, "events": events }),
    )
}

/// A history record with its customer's marketing consent joined in.
fn with_consent(mut record: Value, consent: bool) -> Value {
    if let Value::Object(map) = &mut record {
        map.insert("marketing_consent".to_owned(), Value::Bool(consent));
    }
    record
}

fn customer_tickets(shop: &Shop, id: &str) -> ShopResponse {
    if shop.customer(id).is_none() {
        return not_found();
    }
    let tickets = shop
        .history_index(id)
        .map(data::tickets_for)
        .unwrap_or_default();
    json_value(
        StatusCode::OK,
        &json!({ "customer_id": id, "tickets": tickets }),
    )
}

/// Orders are historical records: they stay readable by id even after their
/// customer is deleted (as in many legacy systems).
fn get_order(shop: &Shop, id: &str) -> ShopResponse {
    let order = id
        .strip_prefix("o-")
        .and_then(data::parse_canonical_number)
        .and_then(|n| n.checked_sub(data::ORDER_NUMBER_BASE + 1))
        .map(|rel| (rel / 10, rel % 10))
        .filter(|&(index, k)| index < shop.initial && k < data::order_count(index))
        .and_then(|(index, k)| data::orders_for(index).into_iter().nth(k));
    match order {
        Some(order) => json_value(StatusCode::OK, &order),
        None => not_found(),
    }
}

// ---------------------------------------------------------------- listings

/// `GET /orders?limit=&offset=`: every order of the shop's customers, in
/// customer order, as an analytics export would list them. Each order
/// carries its customer's *current* marketing consent (`marketing_consent`,
/// joined in by the shop, false when the customer is gone or never said),
/// the attribute consent-bound callers are decided on.
fn list_orders(shop: &Shop, query: &str) -> ShopResponse {
    listing(shop, query, "orders", data::orders_for)
}

/// `GET /behavior?limit=&offset=`: every behaviour event, likewise joined
/// with its customer's current marketing consent.
fn list_behavior(shop: &Shop, query: &str) -> ShopResponse {
    listing(shop, query, "events", data::behavior_for)
}

/// A paginated listing of the initial customers' history records of one
/// kind under `key`, each with `marketing_consent` joined in, and `total`.
fn listing(shop: &Shop, query: &str, key: &str, records: fn(usize) -> Vec<Value>) -> ShopResponse {
    let (limit, offset) = match (
        parse_usize_param(query, "limit"),
        parse_usize_param(query, "offset"),
    ) {
        (Ok(l), Ok(o)) => (l.unwrap_or(usize::MAX), o.unwrap_or(0)),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    let consent: Vec<bool> = {
        let state = shop.read();
        (0..shop.initial)
            .map(|i| {
                state
                    .customers
                    .get(&data::customer_id(i))
                    .and_then(|c| c["consent"]["marketing"].as_bool())
                    .unwrap_or(false)
            })
            .collect()
    };
    let mut all = Vec::new();
    for (index, consented) in consent.iter().enumerate() {
        all.extend(
            records(index)
                .into_iter()
                .map(|r| with_consent(r, *consented)),
        );
    }
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(page));
    body.insert("total".to_owned(), json!(total));
    json_value(StatusCode::OK, &Value::Object(body))
}

// --------------------------------------------------------------- diagnostics

/// Diagnostic route for proxy tests: reports exactly what reached the
/// upstream (method, raw path and query, headers, body digest), so tests can
/// assert what the proxy forwarded or stripped.
fn echo(parts: &http::request::Parts, body: &[u8]) -> ShopResponse {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    json_value(
        StatusCode::OK,
        &json!({
            "method": parts.method.as_str(),
            "path": path,
            "headers": headers,
            "body_len": body.len(),
            "body_sha256": hex::encode(Sha256::digest(body)),
        }),
    )
}

// ------------------------------------------------------------------ helpers

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A request the shop refuses with a 400; the message is the body's.
#[derive(Debug, thiserror::Error)]
enum BadRequest {
    #[error("{0} must be a non-negative integer")]
    NotACount(String),
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
}

fn parse_usize_param(query: &str, name: &str) -> Result<Option<usize>, BadRequest> {
    match query_param(query, name) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| BadRequest::NotACount(name.to_string())),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BadRequest::NotAnObject),
        Err(error) => Err(BadRequest::Json(error)),
    }
}

fn bad_request(message: impl std::fmt::Display) -> ShopResponse {
    error_response(StatusCode::BAD_REQUEST, &message.to_string())
}

fn gzip_bytes(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> ShopResponse {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json_value(status: StatusCode, value: &Value) -> ShopResponse {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(status, bytes),
        Err(_) => internal_error(),
    }
}

fn with_encoding(mut resp: ShopResponse, encoding: &'static str) -> ShopResponse {
    resp.headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    resp
}

fn error_response(status: StatusCode, message: &str) -> ShopResponse {
    json_value(status, &json!({ "error": message }))
}

fn not_found() -> ShopResponse {
    error_response(StatusCode::NOT_FOUND, "not found")
}

fn internal_error() -> ShopResponse {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        br#"{"error":"internal error"}"#.to_vec(),
    )
}

fn method_not_allowed(allow: &'static str) -> ShopResponse {
    let mut resp = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use http::Request;
    use std::io::Read;
    use std::net::SocketAddr;
    use tokio::net::TcpStream;

    struct Running {
        addr: SocketAddr,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn start(n: usize) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, Shop::new(n)));
        Running { addr, task }
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "shop.test");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        send(addr, "GET", path, &[], b"").await
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn list_and_pagination() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let r = get(shop.addr, "/customers").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert!(r.headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(r.body, data::customer_list_body(data::DEMO_CUSTOMERS));
        let v = r.json();
        assert_eq!(v["total"], 60);
        assert_eq!(v["customers"][0]["id"], "c-1001");

        let page = get(shop.addr, "/customers?limit=5&offset=10").await.json();
        assert_eq!(page["total"], 60);
        assert_eq!(page["customers"].as_array().unwrap().len(), 5);
        assert_eq!(page["customers"][0]["id"], "c-1011");
        let tail = get(shop.addr, "/customers?offset=58").await.json();
        assert_eq!(tail["customers"].as_array().unwrap().len(), 2);

        let bad = get(shop.addr, "/customers?limit=-1").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.json()["error"].is_string());
    }

    #[tokio::test]
    async fn get_404_and_static_routes() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let r = get(shop.addr, "/customers/c-1001").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json(), data::customer(0));

        for path in [
            "/customers/c-9999",
            "/nope",
            "/customers/c-1001/unknown",
            "/orders/o-10019",
        ] {
            let r = get(shop.addr, path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
            assert_eq!(r.json(), json!({ "error": "not found" }));
        }

        assert_eq!(
            get(shop.addr, "/healthz").await.json(),
            json!({ "status": "ok" })
        );
        let catalog = get(shop.addr, "/catalog/products").await.json();
        assert_eq!(catalog["products"][0]["sku"], "SKU-1001");

        let r = send(shop.addr, "PUT", "/customers/c-1001", &[], b"{}").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn history_routes() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let orders = get(shop.addr, "/customers/c-1001/orders").await.json();
        assert_eq!(orders["customer_id"], "c-1001");
        assert_eq!(orders["orders"], Value::Array(data::orders_for(0)));
        let order = get(shop.addr, "/orders/o-10011").await;
        assert_eq!(order.status, StatusCode::OK);
        assert_eq!(order.json(), data::orders_for(0)[0]);

        let behavior = get(shop.addr, "/customers/c-1002/behavior").await.json();
        let events = behavior["events"].as_array().unwrap();
        assert_eq!(events.len(), data::behavior_for(1).len());
        for (e, raw) in events.iter().zip(data::behavior_for(1)) {
            assert_eq!(e["marketing_consent"], false);
            assert_eq!(e["id"], raw["id"]);
        }
        let tickets = get(shop.addr, "/customers/c-1003/tickets").await.json();
        assert_eq!(tickets["tickets"], Value::Array(data::tickets_for(2)));
    }

    #[tokio::test]
    async fn listings_join_each_record_with_its_customers_current_consent() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let orders = get(shop.addr, "/orders").await.json();
        let all: usize = (0..data::DEMO_CUSTOMERS).map(data::order_count).sum();
        assert_eq!(orders["total"], all);
        let first = &orders["orders"][0];
        assert_eq!(first["id"], data::orders_for(0)[0]["id"]);
        assert_eq!(first["marketing_consent"], true, "c-1001 consented");
        let page = get(shop.addr, "/orders?limit=2&offset=1").await.json();
        assert_eq!(page["orders"].as_array().unwrap().len(), 2);
        assert_eq!(page["orders"][0]["id"], orders["orders"][1]["id"]);
        let events = get(shop.addr, "/behavior").await.json();
        assert_eq!(events["events"][0]["id"], data::behavior_for(0)[0]["id"]);
        // Withdrawn consent shows in the very next listing.
        let r = send(
            shop.addr,
            "PATCH",
            "/customers/c-1001",
            &[],
            br#"{"consent":{"marketing":false}}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let orders = get(shop.addr, "/orders?limit=1").await.json();
        assert_eq!(orders["orders"][0]["marketing_consent"], false);
        let events = get(shop.addr, "/behavior?limit=1").await.json();
        assert_eq!(events["events"][0]["marketing_consent"], false);
        assert_eq!(get(shop.addr, "/orders?limit=x").await.status, 400);
    }

    #[tokio::test]
    async fn patch_then_get() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let before = data::customer(1);
        let r = send(
            shop.addr,
            "PATCH",
            "/customers/c-1002",
            &[("content-type", "application/json")],
            br#"{"name":"Renamed","consent":{"marketing":true},"id":"c-1"}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let updated = r.json();
        assert_eq!(updated["id"], "c-1002");
        assert_eq!(updated["name"], "Renamed");
        assert_eq!(updated["consent"]["marketing"], true);
        assert_eq!(
            updated["consent"]["updated_at"],
            before["consent"]["updated_at"]
        );
        assert_eq!(updated["phone"], before["phone"]);

        assert_eq!(get(shop.addr, "/customers/c-1002").await.json(), updated);
        let behavior = get(shop.addr, "/customers/c-1002/behavior").await.json();
        assert_eq!(behavior["events"][0]["marketing_consent"], true);
        // The cached list must reflect the change.
        let list = get(shop.addr, "/customers").await.json();
        assert_eq!(list["customers"][1]["name"], "Renamed");

        let bad = send(shop.addr, "PATCH", "/customers/c-1002", &[], b"{oops").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let missing = send(shop.addr, "PATCH", "/customers/c-9999", &[], b"{}").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn post_creates_next_id_and_stores_everything() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let r = send(
            shop.addr,
            "POST",
            "/customers",
            &[("content-type", "application/json")],
            br#"{"name":"New Person","id_card_number":"110101199001011234","registered_at":"x"}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers[header::LOCATION], "/customers/c-1061");
        let created = r.json();
        assert_eq!(
            created,
            json!({
                "id": "c-1061",
                "name": "New Person",
                "id_card_number": "110101199001011234",
                "registered_at": CREATED_AT,
            })
        );
        assert_eq!(get(shop.addr, "/customers/c-1061").await.json(), created);
        let orders = get(shop.addr, "/customers/c-1061/orders").await.json();
        assert_eq!(orders["orders"], json!([]));

        let second = send(shop.addr, "POST", "/customers", &[], br#"{"name":"B"}"#).await;
        assert_eq!(second.json()["id"], "c-1062");
        assert_eq!(get(shop.addr, "/customers").await.json()["total"], 62);

        for bad in [&b"not json"[..], b"[1,2]"] {
            let r = send(shop.addr, "POST", "/customers", &[], bad).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert!(r.json()["error"].is_string());
        }
    }

    #[tokio::test]
    async fn delete_removes_customer() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let r = send(shop.addr, "DELETE", "/customers/c-1003", &[], b"").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.body.is_empty());
        assert_eq!(
            get(shop.addr, "/customers/c-1003").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(shop.addr, "/customers/c-1003/orders").await.status,
            StatusCode::NOT_FOUND
        );
        let again = send(shop.addr, "DELETE", "/customers/c-1003", &[], b"").await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        let list = get(shop.addr, "/customers").await.json();
        assert_eq!(list["total"], 59);
        assert_eq!(list["customers"][2]["id"], "c-1004");
        // Ids are never reused.
        let created = send(shop.addr, "POST", "/customers", &[], b"{}")
            .await
            .json();
        assert_eq!(created["id"], "c-1061");
    }

    #[tokio::test]
    async fn gzip_and_diagnostic_formats() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let expected = data::customer_list_body(data::DEMO_CUSTOMERS);
        for path in ["/customers", "/customers?limit=100"] {
            let r = send(
                shop.addr,
                "GET",
                path,
                &[("accept-encoding", "br, GZIP")],
                b"",
            )
            .await;
            assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip", "{path}");
            assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
            assert!(r.body.len() < expected.len() / 2);
            assert_eq!(gunzip(&r.body), expected, "{path}");
        }

        let record = serde_json::to_vec(&data::customer(0)).unwrap();
        let r = get(shop.addr, "/customers/c-1001?format=gzip").await;
        assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gunzip(&r.body), record);

        let r = get(shop.addr, "/customers/c-1001?format=br").await;
        assert_eq!(r.headers[header::CONTENT_ENCODING], "br");
        assert_eq!(r.body, record);

        let r = get(shop.addr, "/customers/c-1001?format=text").await;
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(r.body, record);

        let r = get(shop.addr, "/customers/c-1001?format=broken").await;
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert!(serde_json::from_slice::<Value>(&r.body).is_err());
        assert!(record.starts_with(&r.body));
    }

    #[tokio::test]
    async fn echo_reports_what_arrived() {
        let shop = start(data::DEMO_CUSTOMERS).await;
        let r = send(
            shop.addr,
            "POST",
            "/echo?x=1&y=%20z",
            &[
                ("x-test", "a"),
                ("x-test", "b"),
                ("authorization", "Bearer t"),
            ],
            b"hello",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let v = r.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/echo?x=1&y=%20z");
        assert_eq!(v["headers"]["x-test"], "a, b");
        assert_eq!(v["headers"]["authorization"], "Bearer t");
        assert_eq!(v["headers"]["host"], "shop.test");
        assert_eq!(v["body_len"], 5);
        assert_eq!(
            v["body_sha256"],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["method", "path", "headers", "body_len", "body_sha256"]
        );

        let r = send(shop.addr, "DELETE", "/echo", &[], b"").await.json();
        assert_eq!(r["method"], "DELETE");
        assert_eq!(r["body_len"], 0);
    }

    #[tokio::test]
    async fn serves_h2c() {
        let shop = start(3).await;
        let stream = TcpStream::connect(shop.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(format!("http://{}/customers", shop.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, data::customer_list_body(3));
    }
}
