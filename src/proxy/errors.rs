//! Errors clients see: JSON with a stable code, a short message and the
//! request id; never policy ids, stack traces or upstream internals.

use super::ProxyBody;
use bytes::Bytes;
pub use fieldguard_core::outcome::{Denied, Refusal};
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, Full};

/// The proxy's own answer instead of the upstream's.
#[derive(Debug, Clone)]
pub struct Stop {
    pub refusal: Refusal,
    /// Overrides the default client message; never carries internals.
    pub message: Option<&'static str>,
    /// Refused field names, for `forbidden_fields`.
    pub fields: Vec<String>,
    /// Keep the upstream's status (upstream errors on inspected routes).
    pub status: Option<http::StatusCode>,
    /// For `budget_exceeded`: the budget (named in the body) and when to
    /// retry (`Retry-After`).
    /// Boxed: refusals are returned by value on every path.
    pub budget: Option<Box<crate::budget::Refused>>,
}

impl From<Denied> for Stop {
    fn from(d: Denied) -> Self {
        Stop {
            message: d.message,
            fields: d.fields,
            ..Stop::from(d.refusal)
        }
    }
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop {
            refusal,
            message: None,
            fields: Vec::new(),
            status: None,
            budget: None,
        }
    }
}

impl Stop {
    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let mut r = error_response(self.refusal, request_id, self.message, &self.fields);
        if let Some(s) = self.status {
            *r.status_mut() = s;
        }
        if let Some(b) = &self.budget {
            r = budget_response(request_id, b);
        }
        r
    }
}

/// The 429 of a refusing bulk-read budget (or the 503 of one that cannot
/// be checked while the shared store is down): the usual JSON error plus
/// the budget's id, and `Retry-After` (when the budget's count first
/// drops, or when the store is worth asking again).
fn budget_response(request_id: &str, b: &crate::budget::Refused) -> Response<ProxyBody> {
    let refusal = if b.store_unavailable {
        Refusal::BudgetStoreUnavailable
    } else {
        Refusal::BudgetExceeded
    };
    let mut resp = error_response(refusal, request_id, None, &[]);
    let body = serde_json::json!({
        "budget": b.budget,
        "error": refusal.code(),
        "message": refusal.default_message(),
        "request_id": request_id,
        "retry_after_seconds": b.retry_after_secs,
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    *resp.body_mut() = Full::new(Bytes::from(bytes))
        .map_err(|e| match e {})
        .boxed();
    if let Ok(v) = HeaderValue::from_str(&b.retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Builds the JSON error response. `message` overrides the default text
/// (it must never carry internals); `fields` lists refused field names.
pub fn error_response(
    refusal: Refusal,
    request_id: &str,
    message: Option<&str>,
    fields: &[String],
) -> Response<ProxyBody> {
    let mut body = serde_json::json!({
        "error": refusal.code(),
        "message": message.unwrap_or(refusal.default_message()),
        "request_id": request_id,
    });
    if !fields.is_empty() {
        body["fields"] = serde_json::json!(fields);
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::new(
        Full::new(Bytes::from(bytes))
            .map_err(|e| match e {})
            .boxed(),
    );
    *resp.status_mut() = refusal.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if refusal == Refusal::Unauthenticated {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if refusal == Refusal::Overloaded {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(super::headers::X_REQUEST_ID, v);
    }
    resp
}
