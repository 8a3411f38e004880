//! The response-header allow-list of inspected routes (routes with a
//! `response:` section).
//!
//! A legacy service's headers can carry what its body filter removes: a
//! session cookie, `X-Customer-Email`, a debug header echoing the record.
//! On an inspected route the client therefore gets only the standard
//! representation and caching headers ([`STANDARD`]), the headers the
//! route's config names (`response.headers`), and the proxy's own
//! (`Content-Length` of the filtered body, `X-Request-Id`). Everything else
//! from the upstream is dropped, and the names dropped are audited and
//! counted. Headers that describe the upstream's bytes rather than what the
//! client receives ([`REPLACED`]) are removed without being reported:
//! removing them is part of filtering, not a finding.
//!
//! An allowed name is not enough: its *value* must also parse in the
//! header's grammar ([`check_value`]), else it is dropped, audited and
//! counted by name exactly like a header the allow-list does not name.
//!
//! A filtered answer is one caller's view, so it is made private
//! ([`ResponseHeaders::apply`]): `Cache-Control` is rebuilt from the
//! upstream's directives through an allow-list and always says `private`
//! (or `no-store`), `Vary` names the credential headers, and the
//! validators (`ETag`, `Last-Modified`) of the unfiltered representation
//! are removed.

use crate::error::ConfigError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request id header: the proxy sets it on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// RFC 9110 §7.6.1 hop-by-hop headers, plus the legacy ones proxies drop.
pub const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// True for the fixed hop-by-hop names ([`strip_hop_by_hop`] also removes
/// the ones a `Connection` header lists).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == "proxy-connection"
}

use serde_saphyr::Spanned;
use std::path::Path;

/// Representation and caching metadata every inspected response may keep
/// (each only with a value in its grammar, see [`check_value`]): none of
/// it is data about a customer, and clients and caches need it.
pub const STANDARD: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::PRAGMA,
    header::VARY,
    header::DATE,
    header::AGE,
];

/// Removed without being reported: the proxy sets its own (`Content-Length`
/// of what it sends, `X-Request-Id`), or they describe the upstream's
/// bytes, not the filtered ones (encoding, digest, and the validators
/// `ETag` and `Last-Modified`: a conditional request must never validate
/// another caller's view).
pub const REPLACED: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    HeaderName::from_static("content-md5"),
    X_REQUEST_ID,
];

/// Request headers that make the upstream answer for a representation the
/// client already holds (304, 412) or for part of one (206). On an enforced
/// inspected route's `GET` and `HEAD` they are not forwarded
/// ([`strip_conditional`]): what the client holds is a filtered view the
/// upstream never saw, so the upstream cannot validate it, and a 304 would
/// tell a shared cache to serve what it stored, possibly another caller's
/// view. The proxy sends no validators on those routes, so a well-behaved
/// client sends none of these either.
pub const CONDITIONAL: [HeaderName; 6] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// Removes the [`CONDITIONAL`] request headers.
pub fn strip_conditional(headers: &mut HeaderMap) {
    for h in &CONDITIONAL {
        headers.remove(h);
    }
}

/// Request headers a `Vary` from the upstream may name (besides the
/// credential headers the proxy adds): content negotiation and CORS.
/// Any other name makes the upstream's `Vary` a bad value.
pub const VARY_NAMES: [HeaderName; 12] = [
    header::ACCEPT,
    header::ACCEPT_CHARSET,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::ACCESS_CONTROL_REQUEST_HEADERS,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    HeaderName::from_static("prefer"),
    header::USER_AGENT,
    HeaderName::from_static("x-requested-with"),
];

/// Longest value (all lines of a header together) of a [`STANDARD`]
/// header that is parsed at all; longer is a bad value.
pub const MAX_STANDARD_VALUE: usize = 1024;
/// Largest `Age` passed on (a year): an answer older than that is not
/// one a cache in front of the upstream would still serve, and a larger
/// number is more likely data than an age.
pub const MAX_AGE: u64 = 365 * 24 * 3600;
/// Longest value of a header a route names in `response.headers`.
pub const MAX_EXTRA_VALUE: usize = 512;

pub use crate::config::CacheMode;

/// One inspected route's allow-list: [`STANDARD`] plus the names its
/// config lists, and how its answers may be cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    extra: Vec<HeaderName>,
    cache: CacheMode,
}

impl ResponseHeaders {
    /// Compiles `response.headers`; `route` names the route in errors.
    /// A name that is not an HTTP header name, or one the proxy never
    /// passes on (hop-by-hop, [`REPLACED`]), is an error at its line.
    pub fn compile(
        names: &[Spanned<String>],
        file: &Path,
        route: &str,
    ) -> Result<Self, ConfigError> {
        let mut extra = Vec::with_capacity(names.len());
        for n in names {
            let err = |why: &str| {
                ConfigError::new(
                    file,
                    crate::config::line_of(n),
                    format!("route {route}: response.headers: `{}` {why}", n.value),
                )
            };
            let name = HeaderName::from_bytes(n.value.trim().as_bytes())
                .map_err(|_| err("is not an HTTP header name"))?;
            if REPLACED.contains(&name) {
                return Err(err(
                    "is set or removed by the proxy for the filtered body and cannot be passed on",
                ));
            }
            if is_hop_by_hop(&name) {
                return Err(err("is hop-by-hop and never forwarded"));
            }
            if !STANDARD.contains(&name) && !extra.contains(&name) {
                extra.push(name);
            }
        }
        Ok(Self {
            extra,
            cache: CacheMode::Private,
        })
    }

    /// The same allow-list with the route's `response.cache`.
    pub fn with_cache(mut self, cache: CacheMode) -> Self {
        self.cache = cache;
        self
    }

    pub fn cache(&self) -> CacheMode {
        self.cache
    }

    /// Whether the upstream's `name` may reach the client (its value is
    /// still checked).
    pub fn allows(&self, name: &HeaderName) -> bool {
        STANDARD.contains(name) || self.extra.contains(name)
    }

    /// The upstream's headers not allowed, and the allowed ones whose value
    /// is not in the header's grammar (each name once, [`REPLACED`] ones
    /// not listed). When `enforce`, they and the [`REPLACED`] ones are
    /// removed, the values kept are set in their canonical form, and the
    /// answer is made private: `Cache-Control` rebuilt ([`CacheDirectives`]),
    /// `Vary` naming `Authorization` and `credentials` (the gateway
    /// identity headers) besides the upstream's checked names. Shadow mode
    /// passes `enforce: false`: it only reports.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        credentials: &[HeaderName],
        enforce: bool,
    ) -> Vec<HeaderName> {
        let mut reported: Vec<HeaderName> = Vec::new();
        let mut canonical: Vec<(HeaderName, Vec<HeaderValue>)> = Vec::new();
        // Absent: no directives (the answer is still made private).
        let mut directives = CacheDirectives::default();
        let mut vary = VaryList::Names(Vec::new());
        // Validators are removed silently, unless their value was not even
        // a validator (free text where a date belongs): that is reported.
        let mut bad_validators: Vec<HeaderName> = Vec::new();
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            if !self.allows(&name) {
                if !valid_validator(&name, headers.get_all(&name)) {
                    bad_validators.push(name.clone());
                }
                reported.push(name);
                continue;
            }
            let values = headers.get_all(&name);
            let checked = if name == header::CACHE_CONTROL {
                joined(values, MAX_STANDARD_VALUE)
                    .and_then(|v| CacheDirectives::parse(&v))
                    .map(|d| directives = d)
                    .ok_or(())
            } else if name == header::VARY {
                joined(values, MAX_STANDARD_VALUE)
                    .and_then(|v| VaryList::parse(&v, credentials))
                    .map(|v| vary = v)
                    .ok_or(())
            } else {
                match check_value(&name, values) {
                    Some(v) => {
                        canonical.push((name.clone(), v));
                        Ok(())
                    }
                    None => Err(()),
                }
            };
            if checked.is_err() {
                if name == header::CACHE_CONTROL {
                    // Fail closed: what the upstream meant is unknown.
                    directives = CacheDirectives {
                        no_store: true,
                        ..CacheDirectives::default()
                    };
                }
                reported.push(name);
            }
        }
        if enforce {
            for name in reported.iter().chain(REPLACED.iter()) {
                headers.remove(name);
            }
            for (name, values) in canonical {
                headers.remove(&name);
                for v in values {
                    headers.append(name.clone(), v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&directives.private_value(self.cache)) {
                headers.insert(header::CACHE_CONTROL, v);
            }
            if let Ok(v) = HeaderValue::from_str(&vary.value(credentials)) {
                headers.insert(header::VARY, v);
            }
        }
        reported.retain(|n| !REPLACED.contains(n));
        reported.extend(bad_validators);
        reported
    }
}

/// False for an `ETag` that is not an entity-tag (RFC 9110 §8.8.3) or a
/// `Last-Modified` that is not an HTTP date; true for any other header.
fn valid_validator(name: &HeaderName, values: header::GetAll<'_, HeaderValue>) -> bool {
    match *name {
        header::LAST_MODIFIED => single(values).and_then(http_date).is_some(),
        header::ETAG => single(values).is_some_and(entity_tag),
        _ => true,
    }
}

/// RFC 9110 `entity-tag`: `[W/] "etagc*"`, visible ASCII, at most 256 bytes.
pub fn entity_tag(s: &str) -> bool {
    let s = s.trim_matches([' ', '\t']);
    let opaque = s.strip_prefix("W/").unwrap_or(s);
    s.len() <= 256
        && opaque.len() >= 2
        && opaque.starts_with('"')
        && opaque.ends_with('"')
        && opaque[1..opaque.len() - 1]
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
}

/// All lines of a list header joined with commas, when every line is
/// visible ASCII and all of them fit in `max` bytes.
fn joined(values: header::GetAll<'_, HeaderValue>, max: usize) -> Option<String> {
    let mut out = String::new();
    for v in values {
        let s = v.to_str().ok()?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(s);
        if out.len() > max {
            return None;
        }
    }
    Some(out)
}

/// The only line of a header that must not repeat.
fn single(values: header::GetAll<'_, HeaderValue>) -> Option<&str> {
    let mut it = values.iter();
    let v = it.next()?;
    if it.next().is_some() || v.len() > MAX_STANDARD_VALUE {
        return None;
    }
    v.to_str().ok()
}

/// An allowed header's value in its canonical form, `None` when it is not
/// in the header's grammar (the header is then dropped and reported):
/// - `Content-Type`: one of [`JSON_MEDIA_TYPES`] with at most a `charset`
///   parameter, and that only `utf-8` (JSON is UTF-8; the filtered body is
///   written so): no other parameter, so nothing can ride in one
///   ([`media_type`]);
/// - `Content-Language`: up to 8 language tags ([`language_tag`]);
/// - `Expires`, `Date`: an HTTP date in any of its three formats, set as an
///   IMF-fixdate; an `Expires` that is an integer (`0`, `-1`) means "already
///   expired" (RFC 9111 §5.3) and becomes the epoch;
/// - `Pragma`: only `no-cache`;
/// - `Age`: delta-seconds up to [`MAX_AGE`];
/// - `Cache-Control` and `Vary` are parsed by [`CacheDirectives::parse`]
///   and [`VaryList::parse`];
/// - a header the route names (free-form): visible ASCII, spaces and tabs
///   only, each line at most [`MAX_EXTRA_VALUE`] bytes.
pub fn check_value(
    name: &HeaderName,
    values: header::GetAll<'_, HeaderValue>,
) -> Option<Vec<HeaderValue>> {
    let one = |s: String| HeaderValue::from_str(&s).ok().map(|v| vec![v]);
    match *name {
        header::CONTENT_TYPE => one(media_type(single(values)?)?),
        header::CONTENT_LANGUAGE => one(language_list(&joined(values, MAX_STANDARD_VALUE)?)?),
        header::EXPIRES => {
            let s = single(values)?.trim();
            let integer = s.strip_prefix('-').unwrap_or(s);
            if !integer.is_empty()
                && integer.len() <= 10
                && integer.bytes().all(|b| b.is_ascii_digit())
            {
                one(httpdate::fmt_http_date(std::time::UNIX_EPOCH))
            } else {
                one(http_date(s)?)
            }
        }
        header::DATE | header::LAST_MODIFIED => one(http_date(single(values)?)?),
        header::PRAGMA => {
            let list = joined(values, MAX_STANDARD_VALUE)?;
            let mut elements = list.split(',').map(str::trim).filter(|e| !e.is_empty());
            let ok = elements.clone().next().is_some()
                && elements.all(|e| e.eq_ignore_ascii_case("no-cache"));
            ok.then(|| vec![HeaderValue::from_static("no-cache")])
        }
        header::AGE => {
            let s = single(values)?.trim();
            let ok = !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_digit());
            let secs: u64 = s.parse().ok().filter(|n| ok && *n <= MAX_AGE)?;
            one(secs.to_string())
        }
        header::CACHE_CONTROL => {
            let v = joined(values, MAX_STANDARD_VALUE)?;
            one(CacheDirectives::parse(&v)?.private_value(CacheMode::Private))
        }
        header::VARY => {
            let v = joined(values, MAX_STANDARD_VALUE)?;
            one(VaryList::parse(&v, &[])?.value(&[]))
        }
        _ => {
            let all: Vec<HeaderValue> = values.iter().cloned().collect();
            all.iter().all(free_form).then_some(all)
        }
    }
}

/// A free-form value: visible ASCII, spaces and tabs, at most
/// [`MAX_EXTRA_VALUE`] bytes.
pub fn free_form(v: &HeaderValue) -> bool {
    v.len() <= MAX_EXTRA_VALUE
        && v.as_bytes()
            .iter()
            .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The media types an inspected answer may name: its body is JSON (the
/// proxy refuses any other before filtering), so `application/json` and
/// the common registered `+json` types. A vendor type (`vnd.…`) or any
/// other name can carry arbitrary text and is a bad value; the filtered
/// body then goes out as `application/json`.
pub const JSON_MEDIA_TYPES: [&str; 9] = [
    "application/json",
    "application/problem+json",
    "application/hal+json",
    "application/vnd.api+json",
    "application/ld+json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/geo+json",
    "application/schema+json",
];

/// A `Content-Type` value as one of [`JSON_MEDIA_TYPES`] (lower case),
/// with `; charset=utf-8` if the value had it; `None` for anything else:
/// another type, another parameter or charset, a repeated or malformed
/// parameter, a list.
pub fn media_type(s: &str) -> Option<String> {
    let mut parts = s.split(';');
    let essence = parts.next()?.trim_matches([' ', '\t']).to_ascii_lowercase();
    let known = JSON_MEDIA_TYPES.iter().find(|t| **t == essence)?;
    let mut out = (*known).to_string();
    let mut charset = false;
    for p in parts {
        let (k, v) = p.trim_matches([' ', '\t']).split_once('=')?;
        if charset || !k.eq_ignore_ascii_case("charset") {
            return None;
        }
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if !v.eq_ignore_ascii_case("utf-8") {
            return None;
        }
        charset = true;
        out.push_str("; charset=utf-8");
    }
    Some(out)
}

/// A comma list of 1 to 8 language tags ([`language_tag`]), joined with
/// `, `.
pub fn language_list(s: &str) -> Option<String> {
    let tags: Vec<&str> = s
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() || tags.len() > 8 || !tags.iter().all(|t| language_tag(t)) {
        return None;
    }
    Some(tags.join(", "))
}

/// ISO 15924 scripts a language tag may name (the ones in common use).
const SCRIPTS: [&str; 32] = [
    "Arab", "Armn", "Beng", "Cyrl", "Deva", "Ethi", "Geor", "Grek", "Gujr", "Guru", "Hang", "Hani",
    "Hans", "Hant", "Hebr", "Hira", "Jpan", "Kana", "Khmr", "Knda", "Kore", "Laoo", "Latn", "Mlym",
    "Mong", "Mymr", "Orya", "Sinh", "Taml", "Telu", "Thaa", "Thai",
];

/// A BCP 47 language tag of the common shape: a 2–3 letter language, an
/// optional script from [`SCRIPTS`], an optional region (2 letters or 3
/// digits), an optional 4-digit variant (`de-CH-1996`); at most 35 bytes.
/// Extended language subtags, letter variants, extensions, private use
/// (`x-…`) and grandfathered tags are refused: they can carry arbitrary
/// text (`en-wanglei` is a well-formed variant).
pub fn language_tag(t: &str) -> bool {
    if t.len() > 35 || !t.is_ascii() {
        return false;
    }
    let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mut subtags = t.split('-');
    let Some(lang) = subtags.next() else {
        return false;
    };
    if !(2..=3).contains(&lang.len()) || !alpha(lang) {
        return false;
    }
    // What may follow: 0 script, 1 region, 2 variant, 3 nothing.
    let mut stage = 0;
    for s in subtags {
        let n = s.len();
        if stage == 0 && n == 4 && SCRIPTS.iter().any(|k| k.eq_ignore_ascii_case(s)) {
            stage = 1;
        } else if stage <= 1 && ((n == 2 && alpha(s)) || (n == 3 && digit(s))) {
            stage = 2;
        } else if stage <= 2 && n == 4 && digit(s) {
            stage = 3;
        } else {
            return false;
        }
    }
    true
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime) as an IMF-fixdate.
pub fn http_date(s: &str) -> Option<String> {
    let s = s.trim_matches([' ', '\t']);
    if s.len() > 64 {
        return None;
    }
    httpdate::parse_http_date(s)
        .ok()
        .map(httpdate::fmt_http_date)
}

/// What an upstream's `Cache-Control` keeps on an inspected route. Only
/// directives that narrow caching survive; `public`, `s-maxage`,
/// `proxy-revalidate`, `immutable`, `stale-while-revalidate`,
/// `stale-if-error` and `must-understand` (all RFC 9111 or registered) are
/// removed without a report; any other directive (an extension), a
/// directive with an argument it does not take or without one it needs, or
/// a malformed list makes the whole value bad: it is reported and the
/// answer says `no-store` (fail closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    pub no_store: bool,
    pub no_cache: bool,
    /// Delta-seconds, at most 2147483648 (RFC 9111 §1.2.2).
    pub max_age: Option<u64>,
    pub must_revalidate: bool,
    pub no_transform: bool,
}

impl CacheDirectives {
    /// Parses a `Cache-Control` value (all lines joined); `None` when it
    /// is bad. `no-cache` and `private` with a field-name list become the
    /// bare (stricter) directive; a repeated `max-age` keeps the smallest.
    pub fn parse(s: &str) -> Option<Self> {
        if !s.is_ascii() {
            return None;
        }
        let b = s.as_bytes();
        let ows = |i: &mut usize| {
            while b.get(*i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                *i += 1;
            }
        };
        let mut d = Self::default();
        let mut i = 0;
        loop {
            while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b',')) {
                i += 1;
            }
            if i >= b.len() {
                return Some(d);
            }
            let start = i;
            while b.get(i).copied().is_some_and(is_tchar) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let name = s[start..i].to_ascii_lowercase();
            let mut arg = None;
            if b.get(i) == Some(&b'=') {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    i += 1;
                    let mut v = String::new();
                    loop {
                        match *b.get(i)? {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\\' => {
                                let c = *b.get(i + 1)?;
                                if !(c == b'\t' || (0x20..=0x7e).contains(&c)) {
                                    return None;
                                }
                                v.push(char::from(c));
                                i += 2;
                            }
                            c if c == b'\t' || (0x20..=0x7e).contains(&c) => {
                                v.push(char::from(c));
                                i += 1;
                            }
                            _ => return None,
                        }
                    }
                    arg = Some(v);
                } else {
                    let vs = i;
                    while b.get(i).copied().is_some_and(is_tchar) {
                        i += 1;
                    }
                    if i == vs {
                        return None;
                    }
                    arg = Some(s[vs..i].to_string());
                }
            }
            ows(&mut i);
            if i < b.len() && b[i] != b',' {
                return None;
            }
            let field_names = |a: &str| {
                a.split(',')
                    .map(|n| n.trim_matches([' ', '\t']))
                    .all(|n| n.is_empty() || is_token(n))
            };
            match (name.as_str(), arg.as_deref()) {
                ("no-store", None) => d.no_store = true,
                ("no-cache", a) if a.is_none_or(field_names) => d.no_cache = true,
                ("private", a) if a.is_none_or(field_names) => {}
                ("max-age", Some(a)) => {
                    let n = delta_seconds(a)?;
                    d.max_age = Some(d.max_age.map_or(n, |m| m.min(n)));
                }
                ("must-revalidate", None) => d.must_revalidate = true,
                ("no-transform", None) => d.no_transform = true,
                ("public" | "proxy-revalidate" | "immutable" | "must-understand", None) => {}
                ("s-maxage" | "stale-while-revalidate" | "stale-if-error", Some(a)) => {
                    delta_seconds(a)?;
                }
                _ => return None,
            }
        }
    }

    /// The `Cache-Control` the client gets: `no-store` when the upstream
    /// or the route says so, else `private` and the kept directives.
    pub fn private_value(&self, mode: CacheMode) -> String {
        if self.no_store || mode == CacheMode::NoStore {
            return "no-store".to_string();
        }
        let mut out = String::from("private");
        if self.no_cache {
            out.push_str(", no-cache");
        }
        if let Some(n) = self.max_age {
            out.push_str(&format!(", max-age={n}"));
        }
        if self.must_revalidate {
            out.push_str(", must-revalidate");
        }
        if self.no_transform {
            out.push_str(", no-transform");
        }
        out
    }
}

/// RFC 9111 delta-seconds: digits (at most 19), capped at 2147483648.
fn delta_seconds(a: &str) -> Option<u64> {
    if a.is_empty() || a.len() > 19 || !a.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    a.parse::<u64>().ok().map(|n| n.min(2_147_483_648))
}

/// An upstream's `Vary`, checked: `*`, or names from [`VARY_NAMES`] and
/// the credential headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaryList {
    Any,
    Names(Vec<HeaderName>),
}

impl VaryList {
    /// Parses a `Vary` value (all lines joined); `None` when an element is
    /// neither `*` nor an allowed header name, or there are more than 16.
    pub fn parse(s: &str, credentials: &[HeaderName]) -> Option<Self> {
        let mut names: Vec<HeaderName> = Vec::new();
        let mut any = false;
        for e in s.split(',').map(|e| e.trim_matches([' ', '\t'])) {
            if e.is_empty() {
                continue;
            }
            if e == "*" {
                any = true;
                continue;
            }
            if !is_token(e) {
                return None;
            }
            let name = HeaderName::from_bytes(e.as_bytes()).ok()?;
            if !VARY_NAMES.contains(&name) && !credentials.contains(&name) {
                return None;
            }
            if !names.contains(&name) {
                names.push(name);
            }
            if names.len() > 16 {
                return None;
            }
        }
        Some(if any { Self::Any } else { Self::Names(names) })
    }

    /// The `Vary` the client gets: `*`, or these names plus
    /// `Authorization` and the credential headers (each once).
    pub fn value(&self, credentials: &[HeaderName]) -> String {
        match self {
            Self::Any => "*".to_string(),
            Self::Names(names) => {
                let mut all: Vec<&HeaderName> = names.iter().collect();
                for c in std::iter::once(&header::AUTHORIZATION).chain(credentials) {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                }
                all.iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(
            s.to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    }

    #[test]
    fn only_standard_and_named_headers_survive() {
        let rules = ResponseHeaders::compile(
            &[spanned("X-Allowed"), spanned("x-allowed")],
            Path::new("f.yaml"),
            "GET /x",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("set-cookie", "sid=1"),
            ("x-customer-email", "a@b.c"),
            ("x-allowed", "yes"),
            ("content-length", "10"),
            ("etag", "\"x\""),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        h.append("set-cookie", HeaderValue::from_static("other=2"));
        let mut shadow = h.clone();
        let dropped = rules.apply(&mut h, &[], true);
        assert_eq!(dropped, ["set-cookie", "x-customer-email"]);
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["cache-control", "content-type", "vary", "x-allowed"]);
        assert_eq!(rules.apply(&mut shadow, &[], false), dropped);
        assert_eq!(shadow.len(), 8, "shadow mode removes nothing");
    }

    #[test]
    fn bad_or_unforwardable_names_are_config_errors() {
        for bad in [
            "bad name",
            "x:y",
            "",
            "content-length",
            "ETag",
            "connection",
        ] {
            let e = ResponseHeaders::compile(&[spanned(bad)], Path::new("f.yaml"), "GET /x")
                .unwrap_err();
            assert!(e.message.contains("response.headers"), "{bad}: {e}");
        }
    }

    fn applied(
        pairs: &[(&str, &str)],
        credentials: &[HeaderName],
        cache: CacheMode,
    ) -> (HeaderMap, Vec<HeaderName>) {
        let rules = ResponseHeaders::compile(&[spanned("X-Allowed")], Path::new("f"), "GET /x")
            .unwrap()
            .with_cache(cache);
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let dropped = rules.apply(&mut h, credentials, true);
        (h, dropped)
    }

    #[test]
    fn answers_are_made_private() {
        let gw = [HeaderName::from_static("x-gw-subject")];
        let (h, dropped) = applied(
            &[
                ("cache-control", "public, max-age=600, s-maxage=3600"),
                (
                    "cache-control",
                    "proxy-revalidate, immutable, must-revalidate",
                ),
                ("vary", "Accept-Encoding"),
                ("etag", "\"v1\""),
                ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ],
            &gw,
            CacheMode::Private,
        );
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(h["cache-control"], "private, max-age=600, must-revalidate");
        assert_eq!(h["vary"], "accept-encoding, authorization, x-gw-subject");
        assert!(!h.contains_key("etag") && !h.contains_key("last-modified"));

        // Nothing from the upstream: still private, still varied.
        let (h, _) = applied(&[], &[], CacheMode::Private);
        assert_eq!(h["cache-control"], "private");
        assert_eq!(h["vary"], "authorization");
        let (h, _) = applied(&[("cache-control", "max-age=5")], &[], CacheMode::NoStore);
        assert_eq!(h["cache-control"], "no-store");
        let (h, _) = applied(
            &[("cache-control", "no-store, public")],
            &[],
            CacheMode::Private,
        );
        assert_eq!(h["cache-control"], "no-store");
        let (h, _) = applied(&[("vary", "*")], &gw, CacheMode::Private);
        assert_eq!(h["vary"], "*");
    }

    #[test]
    fn values_outside_their_grammar_are_dropped_and_reported() {
        let bad: &[(&str, &str)] = &[
            ("content-type", "application/json; name=\"Wang Lei\""),
            ("content-type", "application/json; charset=wanglei"),
            ("content-type", "application/json, text/html"),
            ("content-type", "wang/lei"),
            ("content-type", "application/vnd.wanglei-13900131001+json"),
            ("content-type", "text/plain"),
            ("content-language", "en-wanglei"),
            ("content-language", "zh-lei"),
            ("content-language", "zh-Wang"),
            ("age", "94000000"),
            ("last-modified", "Wang Lei 13900131001"),
            ("etag", "13900131001 Wang"),
            ("cache-control", "private, x-phone=13900131001"),
            ("cache-control", "max-age=13900131001x"),
            ("cache-control", "private=\"unterminated"),
            ("cache-control", "no-store=\"x\""),
            ("vary", "alice@example.com"),
            ("vary", "X-Customer-13900131001"),
            ("content-language", "alice@example.com"),
            ("content-language", "WangLei"),
            ("content-language", "x-wanglei"),
            ("content-language", "en-13900131001"),
            ("expires", "call 13900131001"),
            ("date", "yesterday, Wang Lei"),
            ("pragma", "no-cache, phone=13900131001"),
            ("age", "13900131001x"),
            ("x-allowed", "caf\u{e9}"),
        ];
        for (k, v) in bad {
            let (h, dropped) = applied(&[(k, v)], &[], CacheMode::Private);
            assert_eq!(dropped, [*k], "{k}: {v}");
            assert!(!h.contains_key(*k) || ["cache-control", "vary"].contains(k));
            let text = format!("{h:?}");
            for secret in ["Wang", "13900131001", "alice", "wanglei", "caf"] {
                assert!(!text.contains(secret), "{k}: {v}: {text}");
            }
            if *k == "cache-control" {
                assert_eq!(h["cache-control"], "no-store", "fails closed");
            }
        }
        let long = "a".repeat(MAX_EXTRA_VALUE + 1);
        let (_, dropped) = applied(&[("x-allowed", &long)], &[], CacheMode::Private);
        assert_eq!(dropped, ["x-allowed"]);
        let (h, dropped) = applied(
            &[
                ("content-type", "application/json"),
                ("content-type", "application/json"),
            ],
            &[],
            CacheMode::Private,
        );
        assert_eq!(dropped, ["content-type"], "a repeated single header");
        assert!(!h.contains_key("content-type"));
    }

    #[test]
    fn valid_values_pass_in_canonical_form() {
        let good: &[(&str, &str, &str)] = &[
            ("content-type", "application/json", "application/json"),
            (
                "content-type",
                "Application/JSON; Charset=\"UTF-8\"",
                "application/json; charset=utf-8",
            ),
            (
                "content-type",
                "application/problem+json;charset=utf-8",
                "application/problem+json; charset=utf-8",
            ),
            ("content-language", "en", "en"),
            (
                "content-language",
                "zh-Hans-CN,en-GB , de-CH-1996",
                "zh-Hans-CN, en-GB, de-CH-1996",
            ),
            ("content-language", "es-419", "es-419"),
            (
                "expires",
                "Tue, 01 Dec 2026 11:00:00 GMT",
                "Tue, 01 Dec 2026 11:00:00 GMT",
            ),
            ("expires", "0", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("expires", "-1", "Thu, 01 Jan 1970 00:00:00 GMT"),
            (
                "expires",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT",
            ),
            (
                "date",
                "Sun Nov  6 08:49:37 1994",
                "Sun, 06 Nov 1994 08:49:37 GMT",
            ),
            ("pragma", "No-Cache", "no-cache"),
            ("age", "42", "42"),
            (
                "x-allowed",
                "any visible text, even; this",
                "any visible text, even; this",
            ),
        ];
        for (k, v, want) in good {
            let (h, dropped) = applied(&[(k, v)], &[], CacheMode::Private);
            assert!(dropped.is_empty(), "{k}: {v}: {dropped:?}");
            assert_eq!(h[*k], *want, "{k}: {v}");
        }
        for (v, want) in [
            (
                "no-cache=\"Set-Cookie, X-A\", private=\"X\"",
                "private, no-cache",
            ),
            ("max-age=99999999999, max-age=60", "private, max-age=60"),
            ("max-age=99999999999", "private, max-age=2147483648"),
            (" , no-transform ,,", "private, no-transform"),
            (
                "stale-if-error=60, stale-while-revalidate=30, must-understand",
                "private",
            ),
        ] {
            let (h, dropped) = applied(&[("cache-control", v)], &[], CacheMode::Private);
            assert!(dropped.is_empty(), "{v}");
            assert_eq!(h["cache-control"], want, "{v}");
        }
    }

    #[test]
    fn response_cache_is_read_from_the_config() {
        let r: crate::config::ResponseBodyConfig =
            serde_saphyr::from_str("records: []\ncache: no_store\n").unwrap();
        assert_eq!(r.cache, CacheMode::NoStore);
        let r: crate::config::ResponseBodyConfig = serde_saphyr::from_str("records: []\n").unwrap();
        assert_eq!(r.cache, CacheMode::Private);
        for bad in ["cache: public", "cache: s-maxage"] {
            let text = format!("records: []\n{bad}\n");
            assert!(serde_saphyr::from_str::<crate::config::ResponseBodyConfig>(&text).is_err());
        }
    }

    #[test]
    fn conditional_request_headers_are_stripped() {
        let mut h = HeaderMap::new();
        for k in [
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            "range",
            "accept",
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static("x"));
        }
        strip_conditional(&mut h);
        assert_eq!(h.len(), 1);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsers_never_panic(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
                let lossy = String::from_utf8_lossy(&b);
                for s in [s.as_str(), &lossy] {
                    let _ = media_type(s);
                    let _ = language_list(s);
                    let _ = http_date(s);
                    let _ = CacheDirectives::parse(s);
                    let _ = VaryList::parse(s, &[]);
                    let _ = entity_tag(s);
                }
                if let Ok(v) = HeaderValue::from_bytes(&b) {
                    for name in STANDARD.iter().chain([HeaderName::from_static("x-a")].iter()) {
                        let mut h = HeaderMap::new();
                        h.insert(name.clone(), v.clone());
                        let rules = ResponseHeaders::default();
                        let mut shadow = h.clone();
                        let _ = rules.apply(&mut h, &[], true);
                        let _ = rules.apply(&mut shadow, &[], false);
                        prop_assert_eq!(shadow.len(), 1);
                    }
                }
            }

            #[test]
            fn cache_control_in_grammar_always_comes_out_private(
                ds in proptest::collection::vec(prop_oneof![
                    Just("public".to_string()), Just("no-cache".to_string()),
                    Just("must-revalidate".to_string()), Just("proxy-revalidate".to_string()),
                    Just("private".to_string()), Just("no-transform".to_string()),
                    Just("immutable".to_string()),
                    (0u64..10_000_000_000).prop_map(|n| format!("max-age={n}")),
                    (0u64..100_000).prop_map(|n| format!("s-maxage={n}")),
                ], 0..6),
            ) {
                let v = ds.join(", ");
                let d = CacheDirectives::parse(&v).expect("in grammar");
                let out = d.private_value(CacheMode::Private);
                prop_assert!(out.starts_with("private"));
                prop_assert!(!out.contains("public") && !out.contains("s-maxage") && !out.contains("proxy-"));
                prop_assert_eq!(CacheDirectives::parse(&out), Some(d));
            }

            #[test]
            fn language_tags_of_the_common_shape_pass(
                lang in "[a-z]{2,3}", script in proptest::option::of(proptest::sample::select(&SCRIPTS[..])),
                region in proptest::option::of(prop_oneof!["[A-Z]{2}", "[0-9]{3}"]),
            ) {
                let mut t = lang;
                for s in [script.map(str::to_string), region].into_iter().flatten() {
                    t = format!("{t}-{s}");
                }
                prop_assert!(language_tag(&t), "{}", t);
            }

            #[test]
            fn every_date_round_trips(secs in 0u64..253_402_300_799) {
                let d = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
                prop_assert_eq!(http_date(&d), Some(d.clone()));
            }

            #[test]
            fn media_types_with_other_parameters_fail(name in "[a-z]{1,10}", value in "[ -~]{0,20}") {
                prop_assume!(!name.eq_ignore_ascii_case("charset"));
                let v = format!("application/json; {name}={value}");
                prop_assert_eq!(media_type(&v), None);
            }
        }
    }
}
