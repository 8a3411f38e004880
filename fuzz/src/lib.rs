//! Fuzz targets: plain functions over `&[u8]` that panic when an invariant
//! breaks. The stable driver (`src/bin/fuzz.rs`) runs them over a corpus
//! and random mutations; the same functions can be wrapped in
//! `libfuzzer_sys::fuzz_target!` for cargo-fuzz where nightly is available.

use fieldguard_core::catalogue::FieldNode;
use fieldguard::identity::{IdentitySource, Principal};
use fieldguard_core::policy::RequestPrincipal;
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::redact::tree::filter_response;
use fieldguard_core::redact::bytes::{self, StreamError};
use fieldguard_core::redact::{BodyError, BodyRules, parse_json, parse_json_unique};
use fieldguard_core::routing;
use fieldguard::runtime::{Route, Runtime};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The reference deployment (demo config and policies).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/demo/fieldguard.yaml");
        let loaded = fieldguard::config::load(&path).expect("demo config");
        Runtime::build(loaded).expect("demo runtime")
    })
}

/// The path normaliser: never panics; its output is canonical (normalising
/// it again changes nothing) and holds no dot segments, empty segments or
/// encoded slashes.
pub fn normalize(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(canonical) = routing::normalize(text) else {
        return;
    };
    let s = canonical.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    for seg in s.split('/').skip(1) {
        assert!(seg != "." && seg != "..", "dot segment in {s:?}");
    }
    assert!(!s.contains("//"), "empty segment in {s:?}");
    let lower = s.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%5c"),
        "encoded slash in {s:?}"
    );
    let again = routing::normalize(s).expect("a canonical path normalises");
    assert_eq!(again.as_str(), s, "not idempotent");
}

/// The route matcher: first byte picks a method, the rest is a path. Never
/// panics; a match's template has as many segments as the path.
pub fn route(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let methods = [
        "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "get",
    ];
    let method = methods[usize::from(m) % methods.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(canonical) = routing::normalize(text) else {
        return;
    };
    let rt = runtime();
    if let Some(found) = rt.decisions.router.at(method, &canonical) {
        let segments = |p: &str| p.split('/').filter(|s| !s.is_empty()).count();
        assert_eq!(
            segments(found.template),
            segments(canonical.as_str()),
            "{method} {} matched {}",
            canonical.as_str(),
            found.template
        );
    }
}

/// Request-body parsing: never panics; the strict parser agrees with the
/// lenient one except where it finds a duplicate key.
pub fn request_json(data: &[u8]) {
    let lenient = parse_json(data, 64);
    match (parse_json_unique(data, 64), lenient) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        // A duplicate is refused even in a body that is broken further on.
        (Err(BodyError::DuplicateKey), _) => {}
        (Ok(_), Err(e)) => panic!("strict parser accepted what the lenient refused: {e}"),
        (Err(e), Ok(_)) => panic!("strict parser refused a valid body: {e}"),
        (Err(_), Err(_)) => {}
    }
}

/// `GET /customers` and a support agent without MFA (who never reads ID
/// card numbers in full) on it.
fn support_agent_listing_customers() -> (&'static Route, RequestPrincipal) {
    let Some(route) = runtime()
        .decisions
        .routes
        .iter()
        .find(|r| r.method == "GET" && r.template == "/customers")
    else {
        panic!("reference route missing")
    };
    let who = Principal {
        id: "agent-7".into(),
        roles: vec!["support_agent".into()],
        mfa: false,
        purpose: None,
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    };
    let rp = RequestPrincipal::new(&who, &route.action).expect("principal");
    (route, rp)
}

/// Response redaction on arbitrary bodies for a support agent on
/// `GET /customers`: never panics; when it succeeds the output is JSON and
/// no ID card number survives in full (support agents never read it).
pub fn response_filter(data: &[u8]) {
    let rt = runtime();
    let Ok(mut doc) = parse_json(data, rt.decisions.limits.max_json_depth) else {
        return;
    };
    let (route, rp) = support_agent_listing_customers();
    let mut decider = rt.decisions.engine.decider(&rp);
    let originals: Vec<Value> = doc["customers"]
        .as_array()
        .map(|a| a.iter().map(|r| r["id_card_number"].clone()).collect())
        .unwrap_or_default();
    let mut report = FilterReport::default();
    let rules = listing_rules(route);
    if filter_response(&mut doc, &rules, &mut decider, &rt.decisions.catalogue, &mut report).is_err() {
        return;
    }
    let out = serde_json::to_vec(&doc).expect("serialises");
    serde_json::from_slice::<Value>(&out).expect("output is JSON");
    assert_allow_listed(&doc, route);
    if let Some(list) = doc["customers"].as_array() {
        for r in list {
            if let Some(v) = r.get("id_card_number").filter(|v| v.is_string())
                && v.as_str().is_some_and(|s| s.len() > 4)
            {
                assert!(
                    !originals.contains(v) || v.as_str().is_some_and(|s| s.starts_with('*')),
                    "ID card number survived in full: {v}"
                );
            }
        }
    }
}

/// The byte-stream redactor the proxy uses, on arbitrary bodies for a
/// support agent on `GET /customers`: never panics; it accepts exactly the
/// bodies serde_json accepts (or refuses them for their shape); its output
/// is JSON; and on a body without repeated keys it agrees with the tree
/// walk.
pub fn response_stream(data: &[u8]) {
    let rt = runtime();
    let (route, rp) = support_agent_listing_customers();
    let depth = rt.decisions.limits.max_json_depth;
    let mut report = FilterReport::default();
    let mut decider = rt.decisions.engine.decider(&rp);
    let rules = listing_rules(route);
    let streamed = bytes::redact(
        data,
        &rules,
        &mut decider,
        &rt.decisions.catalogue,
        &mut report,
        depth,
    );
    let parsed = parse_json(data, depth);
    match (&streamed, &parsed) {
        (Err(StreamError::Unreadable), Ok(_)) => panic!("refused a readable body"),
        (Ok(_) | Err(StreamError::Filter(_)), Err(e)) => panic!("accepted an unreadable body: {e}"),
        _ => {}
    }
    let Ok(out) = streamed else { return };
    let got: Value = serde_json::from_slice(&out).expect("output is JSON");
    assert_allow_listed(&got, route);
    if parse_json_unique(data, depth).is_err() {
        return;
    }
    let mut doc = parsed.expect("checked above");
    let mut decider = rt.decisions.engine.decider(&rp);
    let mut tree_report = FilterReport::default();
    filter_response(
        &mut doc,
        &rules,
        &mut decider,
        &rt.decisions.catalogue,
        &mut tree_report,
    )
    .expect("the tree walk accepts what the stream accepted");
    assert_eq!(got, doc, "stream and tree walk disagree");
}

/// The rules of `GET /customers` (resource `CustomerDirectory::"all"`).
fn listing_rules(route: &Route) -> BodyRules<'_> {
    route.body_rules("all", &[]).expect("an inspected route")
}

/// Nothing outside the allow-list survived a filtered listing: the body
/// holds only the declared members, every record key is catalogued, every
/// catalogued container is an object or a list of objects.
fn assert_allow_listed(doc: &Value, route: &Route) {
    let Value::Object(top) = doc else {
        panic!("the body is not an object: {doc}")
    };
    for key in top.keys() {
        assert!(
            key == "customers" || key == "total",
            "undeclared `{key}` survived"
        );
    }
    let entity = &route.selectors()[0].entity;
    for record in top
        .get("customers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert_catalogued(record, &entity.root, "");
    }
}

fn assert_catalogued(v: &Value, node: &FieldNode, at: &str) {
    let Value::Object(map) = v else {
        panic!("`{at}` survived as {v}, not an object")
    };
    for (key, value) in map {
        let path = format!("{at}.{key}");
        let child = node
            .child(key)
            .unwrap_or_else(|| panic!("uncatalogued `{path}` survived"));
        if child.field.is_some() {
            continue;
        }
        match value {
            Value::Array(items) => items
                .iter()
                .for_each(|i| assert_catalogued(i, child, &path)),
            other => assert_catalogued(other, child, &path),
        }
    }
}

/// Write checks on arbitrary bodies, for a customer correcting their own
/// record (`PATCH /customers/c-1001`): never panics, and a body that
/// passes carries only catalogued leaves of the catalogued shape that the
/// route collects.
pub fn request_write(data: &[u8]) {
    let rt = runtime();
    let Ok(canonical) = routing::normalize("/customers/c-1001") else {
        return;
    };
    let fieldguard_core::pipeline::Routed::Route(m) =
        fieldguard_core::pipeline::route(&rt.decisions, "PATCH", &canonical)
    else {
        panic!("reference route missing")
    };
    let who = Principal {
        id: "c-1001".into(),
        roles: vec!["customer".into()],
        mfa: false,
        purpose: None,
        attributes: BTreeMap::new(),
        source: IdentitySource::Jwt,
    };
    let Ok(decided) = fieldguard_core::pipeline::decide(&rt.decisions, &m, &who) else {
        panic!("a customer may correct their own record")
    };
    if fieldguard_core::pipeline::check_request_body(&rt.decisions, &decided, true, data).is_err() {
        return;
    }
    let doc = parse_json_unique(data, rt.decisions.limits.max_json_depth).expect("accepted bodies parse");
    let Some(rules) = &decided.route.request else {
        panic!("a write route")
    };
    assert_written_catalogued(&doc, &rules.entity.root, "", rules.collect.as_deref());
}

fn assert_written_catalogued(v: &Value, node: &FieldNode, at: &str, collect: Option<&[String]>) {
    let Value::Object(map) = v else {
        panic!("`{at}` was written as {v}, not an object")
    };
    for (key, value) in map {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        let child = node
            .child(key)
            .unwrap_or_else(|| panic!("uncatalogued `{path}` was let through"));
        if let Some(field) = child.field {
            let spec = runtime().decisions.catalogue.field(field);
            assert!(spec.shape.accepts(value), "`{path}` written as {value}");
            let collected = collect.is_none_or(|c| {
                c.iter()
                    .any(|c| *c == path || path.starts_with(&format!("{c}.")))
            });
            assert!(collected, "`{path}` is not collected by the route");
            continue;
        }
        match value {
            Value::Array(items) => items
                .iter()
                .for_each(|i| assert_written_catalogued(i, child, &path, collect)),
            other => assert_written_catalogued(other, child, &path, collect),
        }
    }
}

/// A fuzz target: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("normalize", normalize),
    ("route", route),
    ("request_json", request_json),
    ("request_write", request_write),
    ("response_filter", response_filter),
    ("response_stream", response_stream),
];
