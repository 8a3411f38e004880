//! `fieldguard onboard openapi` as an operator runs it (issue #24, item 6):
//! the "next:" line it prints passes when run exactly as printed (the
//! draft brings its own keyed-hash secret), `--deployment` accepts every
//! section docs/onboarding.md lists for it, `--shadow` drafts a
//! configuration that starts in global shadow mode, and the demo shop's
//! draft passes the reference policy tests unedited, as the docs say.

mod common;

use common::fieldguard;

use common::repo_path;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard_core::config::UnknownFields;
use http::Method;
use std::path::Path;
use std::process::Command;
use tokio::net::TcpListener;

fn demo_spec() -> String {
    repo_path("examples/onboarding/demo-shop.openapi.yaml")
        .display()
        .to_string()
}

/// The command of the `next:` line (after "then run: ", before the
/// reference to the docs).
fn next_command(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("next: "))
        .unwrap_or_else(|| panic!("no next: line in {stdout}"));
    let cmd = line
        .split_once("then run: ")
        .unwrap_or_else(|| panic!("no command in {line}"))
        .1;
    cmd.split("   (").next().unwrap().trim().to_string()
}

#[test]
fn the_printed_next_step_passes_as_printed_with_a_fresh_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = demo_spec();
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &["onboard", "openapi", &spec, "--out", "shop-draft"],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "wrote shop-draft/secrets/hash.key (a new random keyed-hash secret, mode 0600)"
        ),
        "{stdout}"
    );
    let key_file = dir.path().join("shop-draft/secrets/hash.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    }

    // Exactly what is printed, through a shell, from the same folder.
    let cmd = next_command(&stdout);
    assert!(
        cmd.ends_with("validate --config shop-draft/fieldguard.yaml"),
        "{cmd}"
    );
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Another draft into a second folder gets another key; re-drafting
    // with --force keeps the first (every pseudonym depends on it).
    let (ok, stdout, stderr) =
        fieldguard(dir.path(), &["onboard", "openapi", &spec, "--out", "other"]);
    assert!(ok, "{stdout}{stderr}");
    let other = std::fs::read_to_string(dir.path().join("other/secrets/hash.key")).unwrap();
    assert_ne!(key, other, "each draft gets its own random key");
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &[
            "onboard",
            "openapi",
            &spec,
            "--out",
            "shop-draft",
            "--force",
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("kept shop-draft/secrets/hash.key"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}

/// The printed command is pasted into a shell: a folder whose name holds
/// a space or a quote is quoted in it.
#[test]
fn the_printed_next_step_quotes_what_a_shell_would_split() {
    let dir = tempfile::tempdir().unwrap();
    let spec = demo_spec();
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &["onboard", "openapi", &spec, "--out", "the team's draft"],
    );
    assert!(ok, "{stdout}{stderr}");
    let cmd = next_command(&stdout);
    assert!(
        cmd.ends_with(r"--config 'the team'\''s draft/fieldguard.yaml'"),
        "{cmd}"
    );
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sections docs/onboarding.md says `--deployment` copies, read from
/// the sentence that lists them, so the docs and this test agree.
fn documented_sections() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_path("docs/onboarding.md")).unwrap();
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let list = flat
        .split("copies the deployment's own sections (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("docs/onboarding.md lists the deployment sections");
    list.split(',').map(|s| s.trim().to_string()).collect()
}

/// A sample of each documented section, valid for `validate` (paths
/// relative to the draft folder, as the docs say they are read).
fn section_sample(name: &str, certs: &Path) -> String {
    let jwt = repo_path("examples/demo/secrets/jwt-hs256.key");
    match name {
        "listeners" => "listeners:\n  - address: 127.0.0.1:18080\n".into(),
        "upstream" => {
            "upstream:\n  url: http://127.0.0.1:19000\n  response_timeout_ms: 5000\n".into()
        }
        "identity" => format!(
            "identity:\n  jwt:\n    hs256_secret_file: {}\n    issuer: fieldguard-demo\n    audience: demo-shop\n",
            jwt.display()
        ),
        "redaction" => "redaction:\n  hash_key_file: my-secrets/hash.key\n".into(),
        "limits" => "limits:\n  max_request_body_bytes: 65536\n".into(),
        "audit" => "audit:\n  file: audit/audit.log\n".into(),
        "admin" => "admin:\n  address: 127.0.0.1:19090\n".into(),
        "tls" => format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        ),
        "reload" => "reload:\n  watch: false\n".into(),
        "unmatched" => "unmatched: passthrough\n".into(),
        other => panic!("docs/onboarding.md lists `{other}`: add a sample of it here"),
    }
}

#[test]
fn deployment_files_may_set_every_section_the_docs_list() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(certs.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(certs.join("key.pem"), key.serialize_pem()).unwrap();

    let sections = documented_sections();
    assert_eq!(
        sections,
        fieldguard::onboard::deployment::SECTIONS,
        "docs/onboarding.md lists what `--deployment` accepts"
    );
    let required = ["listeners", "upstream", "identity"];
    let base: String = required.iter().map(|s| section_sample(s, &certs)).collect();
    // Each optional section alone beside the required ones, then all of
    // them at once.
    let mut cases: Vec<(String, String)> = sections
        .iter()
        .filter(|s| !required.contains(&s.as_str()))
        .map(|s| (s.clone(), format!("{base}{}", section_sample(s, &certs))))
        .collect();
    let all: String = sections.iter().map(|s| section_sample(s, &certs)).collect();
    cases.push(("all".into(), all));
    let spec = demo_spec();
    for (name, text) in cases {
        let deployment = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&deployment, &text).unwrap();
        let out = format!("draft-{name}");
        let (ok, stdout, stderr) = fieldguard(
            dir.path(),
            &[
                "onboard",
                "openapi",
                &spec,
                "--out",
                &out,
                "--deployment",
                deployment.to_str().unwrap(),
            ],
        );
        assert!(ok, "deployment with {name}: {stdout}{stderr}");
        let draft = dir.path().join(&out);
        if text.contains("hash_key_file: my-secrets/hash.key") {
            // The deployment's key is the deployment's business: the draft
            // names no other and makes none.
            assert!(!draft.join("secrets/hash.key").exists(), "{name}");
            let k = draft.join("my-secrets");
            std::fs::create_dir_all(&k).unwrap();
            std::fs::write(k.join("hash.key"), "a-key-of-at-least-sixteen-bytes\n").unwrap();
        } else {
            assert!(draft.join("secrets/hash.key").exists(), "{name}: key made");
        }
        let config = draft.join("fieldguard.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("unmatched:")).count(),
            1,
            "{name}: one `unmatched`"
        );
        if name == "unmatched" || name == "all" {
            assert!(
                text.contains("unmatched: passthrough"),
                "{name}: as written"
            );
        }
        let (ok, stdout, stderr) = fieldguard(
            dir.path(),
            &["validate", "--config", config.to_str().unwrap()],
        );
        assert!(ok, "validate the draft with {name}: {stdout}{stderr}");
    }
}

#[test]
fn a_deployment_redaction_without_its_key_is_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = ["listeners", "upstream", "identity"]
        .iter()
        .map(|s| section_sample(s, dir.path()))
        .collect::<String>()
        + "redaction: {}\n";
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(&deployment, text).unwrap();
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &[
            "onboard",
            "openapi",
            &demo_spec(),
            "--out",
            "draft",
            "--deployment",
            deployment.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{stdout}");
    // The file, at its `redaction` line (after the three required
    // sections' lines), and what to do.
    let at = format!("{}:", deployment.display());
    assert!(
        stderr.contains(&at)
            && stderr.contains(": `redaction` names no `hash_key_file`")
            && stderr.contains("leave `redaction` out and `onboard` writes a new key"),
        "{stderr}"
    );
    let line: usize = stderr
        .split(&at)
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a line number: {stderr}"));
    let text = std::fs::read_to_string(&deployment).unwrap();
    assert!(
        text.lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("redaction:"),
        "{stderr}"
    );
    assert!(!dir.path().join("draft").exists(), "nothing written");
}

#[tokio::test]
async fn a_shadow_draft_starts_in_global_shadow_mode_and_relays_everything() {
    let dir = tempfile::tempdir().unwrap();
    let spec = demo_spec();
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &[
            "onboard",
            "openapi",
            &spec,
            "--out",
            "shadow-draft",
            "--shadow",
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    let config = dir.path().join("shadow-draft/fieldguard.yaml");
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &["validate", "--config", "shadow-draft/fieldguard.yaml"],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("unknown_fields: pass"),
        "validate warns about the routes left passing: {stderr}"
    );
    let loaded = fieldguard::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.config.shadow, "global shadow mode");
    assert!(loaded.config.routes.iter().any(|r| r.response.is_some()));
    for r in loaded.config.routes.iter().filter(|r| r.response.is_some()) {
        assert_eq!(r.unknown_fields, UnknownFields::Pass, "{:?}", r.path);
    }

    // Behind it, the baseline that permits nothing enforces nothing: a
    // caller gets what the shop answers, unchanged.
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    let h = common::start_config_in_front_of(&config, shop_addr, vec![shop_task]).await;
    let headers = [
        ("x-fieldguard-subject", "agent-7"),
        ("x-fieldguard-roles", "support_agent"),
    ];
    let got = h
        .send(Method::GET, "/customers/c-1001", None, &headers, None)
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let raw = reqwest_free_get(shop_addr, "/customers/c-1001").await;
    assert_eq!(got.json(), raw, "relayed unchanged under shadow mode");

    // Without --shadow the same draft refuses (its baseline permits nothing).
    let (ok, stdout, stderr) = fieldguard(
        dir.path(),
        &["onboard", "openapi", &spec, "--out", "enforcing"],
    );
    assert!(ok, "{stdout}{stderr}");
    let text = std::fs::read_to_string(dir.path().join("enforcing/fieldguard.yaml")).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l == "shadow: true" || l.trim() == "unknown_fields: pass"),
        "{text}"
    );
}

/// The shop's own answer (no proxy in between).
async fn reqwest_free_get(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// docs/onboarding.md: with the reference policies and the demo's JWT
/// settings as `--deployment`, the demo shop's draft needs no edit: it
/// validates and passes every case of `policies/tests/` (the role table
/// through the real proxy is tests/role_table.rs).
#[test]
fn the_demo_shops_draft_passes_the_reference_policy_tests_unedited() {
    let draft = common::drafted::draft_dir();
    let config = draft.join("fieldguard.yaml").display().to_string();
    let cases = repo_path("policies/tests").display().to_string();
    let (ok, stdout, stderr) = fieldguard(draft, &["validate", "--config", &config]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        !stderr.contains("impossible"),
        "the schema declares what the policies compare: {stderr}"
    );
    let (ok, stdout, stderr) = fieldguard(draft, &["test", "--config", &config, &cases]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
