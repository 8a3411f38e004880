//! Errors clients see: JSON with a stable code, a short message and the
//! request id; never policy ids, stack traces or upstream internals.

use super::ProxyBody;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
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

/// Why the proxy answered itself instead of relaying the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadPath,
    Unauthenticated,
    Forbidden,
    NoRoute,
    ForbiddenFields,
    RequestTooLarge,
    UnsupportedMediaType,
    MalformedRequestBody,
    ResponseTooLarge,
    UnreadableResponse,
    UpstreamError,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The audit trail cannot take the request's record (sink failing,
    /// queue full): nothing is served unaudited.
    AuditUnavailable,
    /// More requests in flight than `limits.max_concurrent_requests`.
    Overloaded,
    /// More header fields than `limits.max_headers`.
    HeadersTooLarge,
    /// An HTTP/1 request with both `Content-Length` and
    /// `Transfer-Encoding` (or a framing the proxy could not follow):
    /// where it ends depends on who reads it, so nobody does.
    AmbiguousFraming,
    /// The request body did not arrive within `limits.request_body_timeout_ms`.
    RequestBodyTimeout,
    /// The response would take the caller over a refusing bulk-read
    /// budget (or it is used up): nothing is disclosed.
    BudgetExceeded,
    /// A method-override header or `_method` parameter: the upstream could
    /// run another method than the one decided.
    MethodOverride,
    /// Several `Content-Type` headers, or one listing several media types,
    /// on a route whose request body is checked.
    AmbiguousContentType,
    /// A non-identity `Content-Encoding` on a route whose request body is
    /// checked: the upstream would decode bytes the proxy did not check.
    UnsupportedContentEncoding,
    /// The client went away before the request was sent upstream, so it
    /// was not sent (nginx's 499; nobody receives this answer).
    ClientClosedRequest,
    Internal,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadPath
            | Refusal::MalformedRequestBody
            | Refusal::AmbiguousFraming
            | Refusal::MethodOverride
            | Refusal::AmbiguousContentType => StatusCode::BAD_REQUEST,
            Refusal::ClientClosedRequest => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Refusal::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden | Refusal::NoRoute | Refusal::ForbiddenFields => {
                StatusCode::FORBIDDEN
            }
            Refusal::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedMediaType | Refusal::UnsupportedContentEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Refusal::ResponseTooLarge
            | Refusal::UnreadableResponse
            | Refusal::UpstreamError
            | Refusal::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::AuditUnavailable | Refusal::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::BudgetExceeded => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (also used as the audit/metrics reason).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::BadPath => "bad_path",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
            Refusal::NoRoute => "no_route",
            Refusal::ForbiddenFields => "forbidden_fields",
            Refusal::RequestTooLarge => "request_too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::MalformedRequestBody => "malformed_request_body",
            Refusal::ResponseTooLarge => "response_too_large",
            Refusal::UnreadableResponse => "unreadable_response",
            Refusal::UpstreamError => "upstream_error",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::AuditUnavailable => "audit_unavailable",
            Refusal::Overloaded => "overloaded",
            Refusal::HeadersTooLarge => "headers_too_large",
            Refusal::AmbiguousFraming => "ambiguous_framing",
            Refusal::RequestBodyTimeout => "request_body_timeout",
            Refusal::BudgetExceeded => "budget_exceeded",
            Refusal::MethodOverride => "method_override",
            Refusal::AmbiguousContentType => "ambiguous_content_type",
            Refusal::UnsupportedContentEncoding => "unsupported_content_encoding",
            Refusal::ClientClosedRequest => "client_closed_request",
            Refusal::Internal => "internal_error",
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Refusal::BadPath => "the request path is not acceptable",
            Refusal::Unauthenticated => "missing or invalid credentials",
            Refusal::Forbidden => "access denied by policy",
            Refusal::NoRoute => "no route is configured for this request",
            Refusal::ForbiddenFields => "the request body carries fields that may not be written",
            Refusal::RequestTooLarge => "the request body is too large",
            Refusal::UnsupportedMediaType => "the request body must be application/json",
            Refusal::MalformedRequestBody => "the request body is not valid JSON",
            Refusal::ResponseTooLarge => "the upstream response is too large to inspect",
            Refusal::UnreadableResponse => "the upstream response could not be inspected",
            Refusal::UpstreamError => "the upstream answered with an error",
            Refusal::UpstreamUnavailable => "the upstream service is unavailable",
            Refusal::UpstreamTimeout => "the upstream service did not answer in time",
            Refusal::AuditUnavailable => "the service is temporarily unavailable",
            Refusal::Overloaded => "too many requests in progress; retry shortly",
            Refusal::HeadersTooLarge => "the request has too many header fields",
            Refusal::AmbiguousFraming => {
                "the request's length is ambiguous (Content-Length with Transfer-Encoding)"
            }
            Refusal::RequestBodyTimeout => "the request body was not received in time",
            Refusal::BudgetExceeded => {
                "this response would exceed a bulk-read budget of the caller; retry later"
            }
            Refusal::MethodOverride => {
                "method override headers and the _method parameter are not accepted"
            }
            Refusal::AmbiguousContentType => "the request must carry exactly one media type",
            Refusal::UnsupportedContentEncoding => "the request body must not be content-encoded",
            Refusal::ClientClosedRequest => "the client closed the request",
            Refusal::Internal => "internal error",
        }
    }
}

/// The 429 of a refusing bulk-read budget: the usual JSON error plus the
/// budget's id, and `Retry-After` (when the budget's count first drops).
fn budget_response(request_id: &str, b: &crate::budget::Refused) -> Response<ProxyBody> {
    let mut resp = error_response(Refusal::BudgetExceeded, request_id, None, &[]);
    let body = serde_json::json!({
        "budget": b.budget,
        "error": Refusal::BudgetExceeded.code(),
        "message": Refusal::BudgetExceeded.default_message(),
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
