use super::*;
use fieldguard_core::config::*;
use std::path::Path;

fn err(text: &str) -> ConfigError {
    match parse(text, Path::new("f.yaml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

const MINIMAL: &str = r#"
listeners:
  - address: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:9000
identity:
  jwt:
    hs256_secret_file: k
policies:
  directory: p
  schema: p/s.cedarschema
routes: []
"#;

#[test]
fn minimal_config_parses_with_safe_defaults() {
    let c = parse(MINIMAL, Path::new("f.yaml")).unwrap();
    assert_eq!(c.unmatched, UnmatchedPolicy::Deny);
    assert_eq!(c.limits.max_request_body_bytes, 1024 * 1024);
    assert!(c.upstream.preserve_host);
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let text = MINIMAL.replace("routes: []", "routes: []\nrouets: []");
    let e = err(&text);
    assert_eq!(e.line, Some(13), "{e}");
    assert!(e.message.contains("rouets"), "{e}");
    assert!(e.to_string().starts_with("f.yaml:13: "), "{e}");
}

#[test]
fn bad_values_are_refused_with_their_line() {
    let text = MINIMAL.replace("127.0.0.1:8080", "not-an-address");
    let e = err(&text);
    assert_eq!(e.line, Some(3), "{e}");
    let text = format!(
        "{MINIMAL}entities:\n  Customer:\n    fields:\n      phone: {{ category: identity, level: 7 }}\n"
    );
    let e = err(&text);
    assert_eq!(e.line, Some(16), "{e}");
    assert!(e.message.contains("level"), "{e}");
    let text = format!(
        "{MINIMAL}entities:\n  Customer:\n    fields:\n      phone: {{ category: secret, level: 1 }}\n"
    );
    assert_eq!(err(&text).line, Some(16));
}

#[test]
fn backstop_detectors_are_named_and_an_unknown_one_is_refused_with_its_line() {
    let route = "routes:\n  - method: GET\n    path: /x\n    action: a\n    resource: { type: T, id: all }\n    backstop: [email, cn_resident_id]\n    response: { records: [] }\n";
    let c = parse(&MINIMAL.replace("routes: []\n", route), Path::new("f.yaml")).unwrap();
    let set = c.routes[0].backstop.0;
    assert!(set.contains(fieldguard_core::detect::Detector::Email));
    assert!(set.contains(fieldguard_core::detect::Detector::CnResidentId));
    assert!(!set.contains(fieldguard_core::detect::Detector::Iban));
    let all = parse(
        &MINIMAL.replace(
            "routes: []\n",
            &route.replace("[email, cn_resident_id]", "[all]"),
        ),
        Path::new("f.yaml"),
    )
    .unwrap();
    assert_eq!(
        all.routes[0].backstop.0,
        fieldguard_core::detect::DetectorSet::all()
    );
    let e = err(&MINIMAL.replace("routes: []\n", &route.replace("cn_resident_id", "ssn")));
    assert_eq!(e.line, Some(17), "{e}");
    assert!(e.message.contains("unknown backstop detector `ssn`"), "{e}");
}
