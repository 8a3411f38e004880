//! Onboarding a legacy API (issue #15), end to end: the real binary drafts
//! from OpenAPI documents and reads observations; the real proxy in front
//! of the real demo shop (upgraded with fields its catalogue lacks)
//! observes, names and backstops them.

mod common;

use common::fieldguard;

use common::audited::{Audited, records, start_audited_in_front_of};
use common::{copy_dir, repo_path, token};
use fieldguard::audit::AuditSettings;
use fieldguard::config::Config;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard_core::config::{Backstop, UnknownFields};
use fieldguard_core::detect::DetectorSet;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::net::TcpListener;

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn the_demo_shops_draft_is_a_configuration_validate_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(&deployment, common::drafted::deployment_yaml()).unwrap();
    let spec = repo_path("examples/onboarding/demo-shop.openapi.yaml");
    let out = dir.path().join("draft");
    let args = [
        "onboard",
        "openapi",
        path_arg(&spec),
        "--out",
        path_arg(&out),
        "--deployment",
        path_arg(&deployment),
    ];
    let (ok, stdout, stderr) = fieldguard(dir.path(), &args);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("fieldguard.yaml"), "{stdout}");
    let config = out.join("fieldguard.yaml");
    let (ok, stdout, stderr) = fieldguard(dir.path(), &["validate", "--config", path_arg(&config)]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(": ok (0 policies"),
        "the baseline permits nothing: {stdout}"
    );

    // A reviewed draft is not overwritten by accident.
    let (ok, _, stderr) = fieldguard(dir.path(), &args);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let mut forced = args.to_vec();
    forced.push("--force");
    let (ok, stdout, stderr) = fieldguard(dir.path(), &forced);
    assert!(ok, "{stdout}{stderr}");

    // The proposals a reviewer starts from, with why.
    let text = std::fs::read_to_string(&config).unwrap();
    for line in [
        "id_card_number: { category: identity, level: 4, shape: string, mask: { kind: partial, keep_last: 4 } }",
        "birth_date: { category: identity, level: 3, shape: string, mask: { kind: year } }",
        "messages: { category: interaction, level: 3, shape: array, of: { from: string, text: string }, free_text: true }",
        "collect: [name, gender, birth_date, phone, email, address, consent]",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains(
        "# string: proposed identity/4: the name `id_card_number` reads as a government ID number"
    ));
}

/// Regenerate with `cargo run -- onboard openapi
/// examples/onboarding/retail-platform.openapi.yaml --out
/// examples/onboarding/retail-platform-draft --force` (the key it makes in
/// `secrets/` there is ignored by git: a draft's key is never checked in).
#[test]
fn the_retail_platforms_checked_in_draft_is_what_drafting_gives() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo_path("examples/onboarding/retail-platform.openapi.yaml");
    let out = dir.path().join("draft");
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &[
            "onboard",
            "openapi",
            path_arg(&spec),
            "--out",
            path_arg(&out),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    let checked_in = repo_path("examples/onboarding/retail-platform-draft");
    for rel in [
        "fieldguard.yaml",
        "policies/schema.cedarschema",
        "policies/baseline.cedar",
    ] {
        let fresh = std::fs::read_to_string(out.join(rel)).unwrap();
        let kept = std::fs::read_to_string(checked_in.join(rel)).unwrap_or_default();
        assert!(
            fresh == kept,
            "examples/onboarding/retail-platform-draft/{rel} is stale: regenerate it (see this test's doc)"
        );
    }
    let config = std::fs::read_to_string(out.join("fieldguard.yaml")).unwrap();
    assert!(config.matches("\n  - method: ").count() >= 30);
    // allOf, oneOf and $ref chains were followed.
    for line in [
        "national_id_number: { category: identity, level: 4",
        "payment.iban: { category: account_transaction, level: 4",
        "home_address.postal_code: { category: identity, level: 2, shape: string }",
        "children: { category: account_transaction, level: 2, shape: array }",
    ] {
        assert!(config.contains(line), "missing `{line}`");
    }
    // It loads as written: the draft made the hash key it names.
    assert!(out.join("secrets/hash.key").is_file());
    let cfg = out.join("fieldguard.yaml");
    let (ok, stdout, stderr) = fieldguard(dir.path(), &["validate", "--config", path_arg(&cfg)]);
    assert!(ok, "{stdout}{stderr}");
}

#[test]
fn documents_that_cannot_be_drafted_are_refused_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "cycle.yaml",
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: { $ref: '#/components/schemas/A' }\ncomponents:\n  schemas:\n    A: { $ref: '#/components/schemas/B' }\n    B: { $ref: '#/components/schemas/A' }\n",
            "`$ref` cycle: #/components/schemas/A -> #/components/schemas/B -> #/components/schemas/A",
        ),
        (
            "external.yaml",
            "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: { $ref: 'other.yaml#/A' }\n",
            "points outside the document",
        ),
        (
            "swagger.yaml",
            "swagger: '2.0'\npaths: {}\n",
            "not an OpenAPI 3 document",
        ),
        (
            "broken.yaml",
            "openapi: 3.0.0\npaths:\n  /a: [\n",
            "broken.yaml:",
        ),
        (
            "empty.json",
            "{\"openapi\": \"3.0.0\", \"paths\": {}}",
            "no operations",
        ),
    ];
    for (name, text, expected) in cases {
        let spec = dir.path().join(name);
        std::fs::write(&spec, text).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let (ok, stdout, stderr) = fieldguard(
            dir.path(),
            &[
                "onboard",
                "openapi",
                path_arg(&spec),
                "--out",
                path_arg(&out),
            ],
        );
        assert!(!ok, "{name}: {stdout}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!out.exists(), "{name}: nothing is written");
    }
}

/// The shop with fields its catalogue lacks, and an audited proxy with
/// the reference configuration changed by `modify`.
async fn upgraded_shop(dir: &tempfile::TempDir, modify: impl FnOnce(&mut Config)) -> Audited {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = shop::serve(l, shop::Shop::with_extra_fields(DEMO_CUSTOMERS)).await;
    });
    let mut settings = AuditSettings::for_file(dir.path().join("audit.log"));
    settings.retry_interval = std::time::Duration::from_millis(20);
    start_audited_in_front_of(addr, settings, modify, vec![task]).await
}

fn on_customer_routes(c: &mut Config, f: impl Fn(&mut fieldguard_core::config::RouteConfig)) {
    for r in c
        .routes
        .iter_mut()
        .filter(|r| r.method.value == "GET" && r.path.value.starts_with("/customers"))
        .filter(|r| matches!(r.path.value.as_str(), "/customers" | "/customers/{id}"))
    {
        f(r);
    }
}

/// The reference deployment laid out in `root` as in the repository (the
/// config refers to ../../policies).
fn reference_copy(root: &Path) -> PathBuf {
    copy_dir(&repo_path("examples/demo"), &root.join("examples/demo"));
    copy_dir(&repo_path("policies"), &root.join("policies"));
    root.join("examples/demo/fieldguard.yaml")
}

#[tokio::test]
async fn observed_traffic_names_the_field_the_catalogue_lacks_with_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = upgraded_shop(&dir, |c| {
        on_customer_routes(c, |r| r.unknown_fields = UnknownFields::Pass)
    })
    .await;
    let dpo = token("data_protection_officer", "dpo-1", true, None);
    for i in 1001..1006 {
        let r = a.h.get(&format!("/customers/c-{i}"), &dpo).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // `pass`: what the catalogue lacks reaches the caller while onboarding.
        assert!(r.json()["alt_email"].is_string(), "{}", r.text());
    }
    assert_eq!(a.h.get("/customers", &dpo).await.status, 200);

    let observed = a.admin_get("/observed").await;
    assert_eq!(observed.status, 200);
    let text = observed.text();
    // Counts and kinds, never values.
    assert!(
        !text.contains("@mail.example.net") && !text.contains("+86"),
        "{text}"
    );
    let snapshot = observed.json();
    let entry = |route: &str, field: &str| -> Value {
        snapshot["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["route"] == route && e["field"] == field)
            .cloned()
            .unwrap_or_else(|| panic!("no {route} {field} in {snapshot}"))
    };
    let one = entry("GET /customers/{id}", "alt_email");
    assert_eq!(
        (
            &one["entity"],
            &one["type"],
            &one["count"],
            &one["detected"]["email"]
        ),
        (
            &Value::from("Customer"),
            &Value::from("string"),
            &Value::from(5),
            &Value::from(5)
        )
    );
    let list = entry("GET /customers", "emergency_contact.phone");
    assert_eq!(list["count"], DEMO_CUSTOMERS as u64);
    assert_eq!(list["detected"]["cn_mobile"], DEMO_CUSTOMERS as u64);

    // `onboard observed` against the live admin listener.
    let root = tempfile::tempdir().unwrap();
    let config = reference_copy(root.path());
    let admin = format!("http://{}", a.admin_addr);
    let cfg = config.to_str().unwrap().to_string();
    let cwd = root.path().to_path_buf();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        fieldguard(
            &cwd,
            &["onboard", "observed", "--admin", &admin, "--config", &cfg],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}{stderr}");
    for line in [
        "alt_email: { category: identity, level: 3, shape: string, mask: { kind: partial, keep_first: 1, keep_last: 4 } }",
        "emergency_contact.phone: { category: identity, level: 3, shape: string, mask: { kind: partial, keep_first: 3, keep_last: 2 } }",
        "emergency_contact.name: { category: identity, level: 2, shape: string, mask: { kind: partial, keep_first: 1 } }",
        "its values look like e-mail addresses (email) in 65 of 65 values",
        "its values look like mobile numbers (cn_mobile)",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in\n{stdout}");
    }

    // The same from a saved state file, as a patch to the configuration:
    // applied, the configuration validates and nothing is missing.
    std::fs::write(root.path().join("observed.json"), &text).unwrap();
    let rel = "examples/demo/fieldguard.yaml";
    let (ok, patch, stderr) = fieldguard(
        root.path(),
        &[
            "onboard",
            "observed",
            "--state",
            "observed.json",
            "--config",
            rel,
            "--format",
            "patch",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        patch.starts_with(
            "--- a/examples/demo/fieldguard.yaml\n+++ b/examples/demo/fieldguard.yaml\n@@ "
        ),
        "{patch}"
    );
    std::fs::write(root.path().join("observed.patch"), &patch).unwrap();
    let applied = Command::new("git")
        .args(["apply", "observed.patch"])
        .current_dir(root.path())
        .output()
        .expect("git runs");
    assert!(
        applied.status.success(),
        "{}\n{patch}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let (ok, stdout, stderr) = fieldguard(root.path(), &["validate", "--config", rel]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, _) = fieldguard(
        root.path(),
        &[
            "onboard",
            "observed",
            "--state",
            "observed.json",
            "--config",
            rel,
        ],
    );
    assert!(ok && stdout.contains("Nothing missing"), "{stdout}");
    a.drain().await;
}

#[tokio::test]
async fn the_backstop_masks_detected_values_and_the_audit_names_only_the_detector() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = upgraded_shop(&dir, |c| {
        on_customer_routes(c, |r| {
            r.unknown_fields = UnknownFields::Pass;
            r.backstop = Backstop(DetectorSet::all());
        })
    })
    .await;
    let dpo = token("data_protection_officer", "dpo-1", true, None);
    let raw = a.h.upstream_get("/customers/c-1001").await.json();
    let r = a.h.get("/customers/c-1001", &dpo).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let masked = v["alt_email"].as_str().unwrap();
    assert_eq!(masked.len(), raw["alt_email"].as_str().unwrap().len());
    assert!(masked.chars().all(|c| c == '*'), "{masked}");
    let phone = v["emergency_contact"]["phone"].as_str().unwrap();
    assert!(!phone.chars().any(|c| c.is_ascii_digit()), "{phone}");
    assert_eq!(
        v["emergency_contact"]["name"],
        raw["emergency_contact"]["name"]
    );
    // Catalogued fields are decided by policy, as before: the DPO reads them.
    assert_eq!(v["phone"], raw["phone"]);
    assert_eq!(v["email"], raw["email"]);

    let m = a.scrape().await;
    for detector in ["email", "cn_mobile"] {
        assert_eq!(
            m.value(
                "fieldguard_backstop_matches_total",
                &[("route", "/customers/{id}"), ("detector", detector)]
            ),
            1.0
        );
    }
    a.drain().await;
    let recs = records(&dir.path().join("audit.log"));
    let rec = recs
        .iter()
        .find(|r| r["route"] == "/customers/{id}")
        .expect("the request's audit record");
    assert_eq!(
        rec["response_body"]["backstop"],
        serde_json::json!({"count": 2, "detectors": {"cn_mobile": 1, "email": 1}})
    );
    let line = serde_json::to_string(rec).unwrap();
    assert!(!line.contains(raw["alt_email"].as_str().unwrap()), "{line}");
}

#[tokio::test]
async fn a_shadow_route_observes_what_it_relays_and_an_enforcing_one_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = upgraded_shop(&dir, |c| {
        for r in c
            .routes
            .iter_mut()
            .filter(|r| r.path.value == "/customers/{id}")
        {
            r.shadow = true;
        }
    })
    .await;
    let dpo = token("data_protection_officer", "dpo-1", true, None);
    let raw = a.h.upstream_get("/customers/c-1002").await.json();
    // Shadow mode relays the body as the upstream sent it ...
    assert_eq!(a.h.get("/customers/c-1002", &dpo).await.json(), raw);
    // ... and an enforcing route without `observe` removes the members the
    // catalogue lacks without recording their shapes.
    let list = a.h.get("/customers", &dpo).await.json();
    assert!(list["customers"][0].get("alt_email").is_none());
    let snapshot = a.admin_get("/observed").await.json();
    let routes: Vec<&str> = snapshot["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["route"].as_str().unwrap())
        .collect();
    assert!(
        !routes.is_empty() && routes.iter().all(|r| *r == "GET /customers/{id}"),
        "{snapshot}"
    );
    let fields: Vec<&str> = snapshot["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "alt_email",
            "emergency_contact.name",
            "emergency_contact.phone"
        ]
    );
    a.drain().await;
}

/// Under a baseline that permits nothing (as a draft starts), every record
/// is hidden from every caller: shadow mode must still show what the
/// records hold, or onboarding would learn nothing.
#[tokio::test]
async fn records_hidden_from_the_caller_are_observed_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = upgraded_shop(&dir, |c| {
        for r in c
            .routes
            .iter_mut()
            .filter(|r| r.path.value == "/customers/{id}")
        {
            r.shadow = true;
        }
    })
    .await;
    // A partner may not read customers at all: denied, relayed in shadow.
    let partner = token("partner", "partner-sf-express", false, None);
    let r = a.h.get("/customers/c-1003", &partner).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["alt_email"].is_string());
    let snapshot = a.admin_get("/observed").await.json();
    let alt = snapshot["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "alt_email")
        .unwrap_or_else(|| panic!("{snapshot}"));
    assert_eq!(
        (&alt["count"], &alt["detected"]["email"]),
        (&Value::from(1), &Value::from(1))
    );
    a.drain().await;
}
