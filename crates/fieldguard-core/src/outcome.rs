//! What the decisions conclude when a request may not go on: a typed
//! refusal with a stable code. The proxy maps each to an HTTP answer in one
//! place at its edge (`proxy::respond`); offline tools read them as they
//! are.

use crate::policy::RequestDecision;

/// Why a request is answered by fieldguard instead of the upstream.
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
    /// The shared budget store cannot answer and a budget the request
    /// counts against says `on_store_error: refuse`: fail closed.
    BudgetStoreUnavailable,
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
    /// The HTTP status of each refusal: the one place refusals become
    /// HTTP, here in the core so the offline tools (`explain`, policy
    /// tests) answer exactly as the proxy does without importing it.
    pub fn status(self) -> http::StatusCode {
        use http::StatusCode;
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
            Refusal::AuditUnavailable | Refusal::Overloaded | Refusal::BudgetStoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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
            Refusal::BudgetStoreUnavailable => "budget_store_unavailable",
            Refusal::MethodOverride => "method_override",
            Refusal::AmbiguousContentType => "ambiguous_content_type",
            Refusal::UnsupportedContentEncoding => "unsupported_content_encoding",
            Refusal::ClientClosedRequest => "client_closed_request",
            Refusal::Internal => "internal_error",
        }
    }

    /// The client's message when nothing more specific is given: short,
    /// and never carrying internals.
    pub fn default_message(self) -> &'static str {
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
            Refusal::BudgetStoreUnavailable => {
                "a bulk-read budget of the caller cannot be checked right now; retry shortly"
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

/// A request the decisions do not let through.
#[derive(Debug, Clone)]
pub struct Denied {
    pub refusal: Refusal,
    /// Overrides the default client message; never carries internals.
    pub message: Option<&'static str>,
    /// Refused field paths, for `forbidden_fields`.
    pub fields: Vec<String>,
    /// The request-level decision, when Cedar made one (for the audit
    /// record: the policies that denied it). Boxed: denials travel by
    /// value on every path, most without one.
    pub decision: Option<Box<RequestDecision>>,
}

impl From<Refusal> for Denied {
    fn from(refusal: Refusal) -> Self {
        Denied {
            refusal,
            message: None,
            fields: Vec::new(),
            decision: None,
        }
    }
}
