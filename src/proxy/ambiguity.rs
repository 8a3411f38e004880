//! Requests the upstream could act on differently from how the proxy
//! decided them, refused before anything is forwarded:
//!
//! - **Method overrides.** Many frameworks run a `POST` as the method named
//!   in `X-HTTP-Method-Override`, `X-HTTP-Method` or `X-Method-Override`
//!   (in any case, and with `_` for `-` where the server folds names), or in
//!   a `_method` parameter (Symfony, Laravel). The proxy decides the method
//!   on the request line; an override would have the upstream delete what
//!   was allowed as an update. Refused on every request, passthrough
//!   included: 400 `method_override`.
//! - **Several media types** on a route whose body is checked: two
//!   `Content-Type` headers, or one that lists several types. The proxy
//!   checks the body as JSON because of the first; a framework that reads
//!   the last (or the other) could parse it as a form. 400
//!   `ambiguous_content_type`.
//! - **Encoded bodies** on such a route: the proxy checks the bytes it sees,
//!   so a body the upstream would decompress first (`Content-Encoding:
//!   gzip`) is not what was checked. 415 `unsupported_content_encoding`.

use super::errors::Refusal;
use super::headers::same_after_folding;
use http::{HeaderMap, header};

/// Header names by which frameworks let a request name another method.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Refuses a method override, in a header or in the query's `_method`.
pub(super) fn method_override(headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
    let in_header = headers.keys().any(|k| {
        METHOD_OVERRIDE_HEADERS
            .iter()
            .any(|o| same_after_folding(k.as_str(), o))
    });
    if in_header || query.is_some_and(has_method_parameter) {
        return Err(Refusal::MethodOverride);
    }
    Ok(())
}

/// True when some parameter of `query` names `_method` as a framework
/// would read it: percent-decoded, `+` as space, case ignored, PHP's
/// mangling applied (leading spaces dropped, ` ` and `.` read as `_`, an
/// array suffix `[…]` ignored), so `%5Fmethod`, `.method` and `_method[]`
/// count too.
fn has_method_parameter(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let plus_decoded = key.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&plus_decoded).decode_utf8_lossy();
        let name = decoded.trim_start();
        let name = name.split_once('[').map_or(name, |(base, _)| base);
        name.len() == "_method".len()
            && name
                .bytes()
                .map(|b| match b {
                    b' ' | b'.' => b'_',
                    b => b.to_ascii_lowercase(),
                })
                .eq("_method".bytes())
    })
}

/// Refuses request-body headers that leave the body's meaning open: see
/// the module docs. For routes whose request body is checked.
pub(super) fn checked_body(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (Some(_), Some(_)) => return Err(Refusal::AmbiguousContentType),
        (Some(only), None) if lists_several(only.as_bytes()) => {
            return Err(Refusal::AmbiguousContentType);
        }
        _ => {}
    }
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(Refusal::UnsupportedContentEncoding);
        };
        // RFC 9110 §5.6.1: empty list elements are ignored.
        let encoded = text
            .split(',')
            .map(str::trim)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        if encoded {
            return Err(Refusal::UnsupportedContentEncoding);
        }
    }
    Ok(())
}

/// True when a `Content-Type` value holds a list separator outside a
/// quoted parameter value (`application/json, text/plain`); a comma inside
/// quotes (`; x="a,b"`) does not separate types.
fn lists_several(value: &[u8]) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for &b in value {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => quoted = false,
            (false, _, b'"') => quoted = true,
            (false, _, b',') => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn override_headers_in_every_spelling_are_refused() {
        for name in [
            "x-http-method-override",
            "x_http_method_override",
            "X-HTTP-Method",
            "x-method-override",
            "X_Method_Override",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("DELETE"),
            );
            assert_eq!(
                method_override(&h, None),
                Err(Refusal::MethodOverride),
                "{name}"
            );
        }
        let h = with(&[("x-http-method-overrides", "x"), ("x-method", "x")]);
        assert_eq!(method_override(&h, None), Ok(()));
    }

    #[test]
    fn method_parameters_as_frameworks_read_them_are_refused() {
        for q in [
            "_method=DELETE",
            "a=1&_method=PUT",
            "%5Fmethod=DELETE",
            "_%6Dethod=DELETE",
            "_METHOD=DELETE",
            ".method=DELETE",
            "+_method=DELETE",
            "_method[]=DELETE",
            "_method",
            "a=1;_method=PUT",
        ] {
            assert_eq!(
                method_override(&HeaderMap::new(), Some(q)),
                Err(Refusal::MethodOverride),
                "{q}"
            );
        }
        for q in ["method=DELETE", "x=_method", "_methods=1", "a_method=1", ""] {
            assert_eq!(method_override(&HeaderMap::new(), Some(q)), Ok(()), "{q}");
        }
    }

    #[test]
    fn one_json_type_passes_and_lists_or_repeats_are_refused() {
        assert_eq!(
            checked_body(&with(&[("content-type", "application/json")])),
            Ok(())
        );
        assert_eq!(
            checked_body(&with(&[("content-type", r#"application/json; x="a,b""#)])),
            Ok(())
        );
        assert_eq!(checked_body(&HeaderMap::new()), Ok(()));
        for h in [
            with(&[(
                "content-type",
                "application/json, application/x-www-form-urlencoded",
            )]),
            with(&[("content-type", r#"application/json; x="a\"", text/plain"#)]),
            with(&[
                ("content-type", "application/json"),
                ("content-type", "application/json"),
            ]),
        ] {
            assert_eq!(
                checked_body(&h),
                Err(Refusal::AmbiguousContentType),
                "{h:?}"
            );
        }
    }

    #[test]
    fn only_identity_encoded_bodies_pass() {
        for ok in ["identity", "IDENTITY", " identity , ", ""] {
            assert_eq!(
                checked_body(&with(&[("content-encoding", ok)])),
                Ok(()),
                "{ok}"
            );
        }
        for bad in ["gzip", "identity, gzip", "br", "x-custom"] {
            assert_eq!(
                checked_body(&with(&[("content-encoding", bad)])),
                Err(Refusal::UnsupportedContentEncoding),
                "{bad}"
            );
        }
    }
}
