//! Signed policy sets (issue #22): `fieldguard sign` and
//! `policies.verify_keys`, with real `fieldguard run` processes in front of
//! the demo shop.
//!
//! - A signed set loads; `/policies` and the audit's definition records
//!   name the signing key beside the version.
//! - One byte changed in a policy file, in the schema, or a catalogue
//!   entry changed in the config: refused at start (non-zero exit naming
//!   the reason) and on reload (422 naming it, the last good set still
//!   serving, `fieldguard_policy_signature_refusals_total` counting).
//! - Rotation: with two verify keys either signs; a set signed by a key
//!   rotated out of `verify_keys` is refused, at start and on reload.
//! - The version covers the catalogue and routes, not deployment sections;
//!   a catalogue change alone gives a new version in `/policies`,
//!   `fieldguard_policy_set_info` and the audit records.
//! - The commands docs/policies.md shows (`fieldguard sign
//!   --generate-key`, the openssl alternative) run as written.

mod common;

use common::fleet::{Replica, get, post, replica_config, start_shop, text_metric_sum};
use common::{copy_dir, repo_path, token};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BUDGETS: &str = "budgets:\n  mode: shadow\n";

fn fieldguard(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run fieldguard")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A new key pair made with the documented command; its id.
fn generate_key(dir: &Path, name: &str) -> String {
    let out = fieldguard(&["sign", "--generate-key", name], dir);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    t.trim().rsplit(' ').next().unwrap().to_string()
}

/// The replica config edit: the policies copied into `dir`, and
/// `verify_keys` (file names in `dir`).
fn edit_for(dir: &Path, keys: &[&str]) -> impl Fn(String) -> String {
    let repo_policies = repo_path("policies").display().to_string();
    let own = dir.join("policies").display().to_string();
    let keys: Vec<String> = keys
        .iter()
        .map(|k| dir.join(k).display().to_string())
        .collect();
    move |t: String| {
        let schema_line = format!("  schema: {own}/schema.cedarschema\n");
        let t = t.replace(&repo_policies, &own);
        assert!(t.contains(&schema_line), "reference config changed");
        // Reloads only when the test asks (POST /reload): a watch-triggered
        // one in between would be counted too.
        t.replace(
            &schema_line,
            &format!("{schema_line}  verify_keys: [{}]\n", keys.join(", ")),
        ) + "reload:\n  watch: false\n"
    }
}

/// A deployment in `dir`: the reference policies copied, and a config
/// (`signer.yaml`) with the same signed sections as the replicas', to
/// sign from.
fn deployment(dir: &Path, keys: &[&str]) -> PathBuf {
    copy_dir(&repo_path("policies"), &dir.join("policies"));
    let unused = "127.0.0.1:1".parse().unwrap();
    replica_config(
        dir,
        "signer",
        unused,
        unused,
        unused,
        BUDGETS,
        &edit_for(dir, keys),
    )
}

fn sign(dir: &Path, config: &Path, key: &str) {
    let out = fieldguard(
        &["sign", "--config", config.to_str().unwrap(), "--key", key],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// Changes one byte of a file (its last newline becomes a space); returns
/// the original bytes.
fn change_one_byte(file: &Path) -> Vec<u8> {
    let original = std::fs::read(file).unwrap();
    let mut changed = original.clone();
    let last = changed.len() - 1;
    assert_eq!(changed[last], b'\n');
    changed[last] = b' ';
    std::fs::write(file, changed).unwrap();
    original
}

/// Lowers the phone number's level in the catalogue of `config`; returns
/// the original text.
fn change_catalogue(config: &Path) -> Vec<u8> {
    let original = std::fs::read(config).unwrap();
    let t = String::from_utf8(original.clone()).unwrap();
    let from = "phone: { category: identity, level: 3,";
    assert!(t.contains(from));
    std::fs::write(
        config,
        t.replace(from, "phone: { category: identity, level: 2,"),
    )
    .unwrap();
    original
}

async fn policies(pod: &Replica) -> Value {
    let (status, body) = get(pod.admin, "/policies", None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn refusals(pod: &Replica, reason: &str) -> f64 {
    let (_, metrics) = get(pod.admin, "/metrics", None).await;
    text_metric_sum(
        &metrics,
        "fieldguard_policy_signature_refusals_total",
        &format!("reason=\"{reason}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_set_loads_and_any_change_to_it_is_refused_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = generate_key(d, "k1");
    let signer = deployment(d, &["k1.pub"]);
    sign(d, &signer, "k1");
    let (shop, _shop) = start_shop().await;
    let mut pod = Replica::start_edited(d, "pod", shop, BUDGETS, &edit_for(d, &["k1.pub"])).await;

    let before = policies(&pod).await;
    assert_eq!(before["signed_by"], key.as_str(), "{before}");
    let version = before["version"].as_str().unwrap().to_string();
    let customer = token("customer", "c-1001", false, None);
    assert_eq!(
        get(pod.addr, "/customers/c-1001", Some(&customer)).await.0,
        200
    );

    // Each change is refused on reload: 422 naming why, the signed set
    // still serving, the refusal counted.
    let changes: [(&str, PathBuf); 3] = [
        ("policy", d.join("policies/customer.cedar")),
        ("schema", d.join("policies/schema.cedarschema")),
        ("catalogue", pod.config.clone()),
    ];
    for (n, (what, file)) in changes.iter().enumerate() {
        let original = if *what == "catalogue" {
            change_catalogue(file)
        } else {
            change_one_byte(file)
        };
        let (status, body) = post(pod.admin, "/reload").await;
        assert_eq!(status, 422, "{what}: {body}");
        assert!(
            body.contains("does not match this policy set") && body.contains(&key),
            "{what}: {body}"
        );
        let now = policies(&pod).await;
        assert_eq!(now["version"], version.as_str(), "{what}");
        assert!(
            now["last_reload"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("fieldguard.sig")),
            "{what}: {now}"
        );
        assert_eq!(
            get(pod.addr, "/customers/c-1001", Some(&customer)).await.0,
            200
        );
        assert_eq!(refusals(&pod, "mismatch").await, (n + 1) as f64, "{what}");
        std::fs::write(file, original).unwrap();
    }
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 200, "restored: {body}");

    // The signing key's id beside the version in the audit definitions.
    pod.stop();
    let records = pod.audit_records();
    let decided: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("decision").is_some())
        .filter(|r| {
            r.get("policy_version")
                .is_some_and(|v| v == version.as_str())
        })
        .collect();
    assert!(!decided.is_empty(), "no record names version {version}");
    for r in decided {
        assert_eq!(r["policy_signed_by"], key.as_str(), "{r}");
    }

    // At start: the same changes stop the process with the reason.
    for (what, file) in &changes {
        let original = if *what == "catalogue" {
            change_catalogue(file)
        } else {
            change_one_byte(file)
        };
        let out = fieldguard(&["run", "--config", pod.config.to_str().unwrap()], d);
        assert!(!out.status.success(), "{what}: started");
        let t = text(&out);
        assert!(t.contains("does not match this policy set"), "{what}: {t}");
        std::fs::write(file, original).unwrap();
    }
    // Unsigned: refused too.
    std::fs::remove_file(d.join("policies/fieldguard.sig")).unwrap();
    let out = fieldguard(&["run", "--config", pod.config.to_str().unwrap()], d);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("policy set not signed"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_a_second_key_signs_and_a_rotated_out_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = generate_key(d, "old");
    let new = generate_key(d, "new");
    let signer = deployment(d, &["old.pub", "new.pub"]);
    // The second key of two works.
    sign(d, &signer, "new");
    let (shop, _shop) = start_shop().await;
    let pod = Replica::start_edited(
        d,
        "pod",
        shop,
        BUDGETS,
        &edit_for(d, &["old.pub", "new.pub"]),
    )
    .await;
    assert_eq!(policies(&pod).await["signed_by"], new.as_str());

    // The old key rotated out of verify_keys (a config change: reloads),
    // then a set signed with it: refused on reload, and at start.
    let config = std::fs::read_to_string(&pod.config).unwrap();
    let only_new = config.replace(&format!("{}, ", d.join("old.pub").display()), "");
    assert_ne!(config, only_new);
    std::fs::write(&pod.config, &only_new).unwrap();
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 200, "{body}");
    sign(d, &signer, "old");
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!(
            "signed by key {old}, which is not among policies.verify_keys"
        )),
        "{body}"
    );
    assert_eq!(policies(&pod).await["signed_by"], new.as_str());
    assert_eq!(refusals(&pod, "unknown_key").await, 1.0);
    drop(pod);
    let out = fieldguard(
        &["run", "--config", d.join("pod.yaml").to_str().unwrap()],
        d,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not among policies.verify_keys"),
        "{}",
        text(&out)
    );
}

/// `fieldguard validate`'s version of a config.
fn version_of(config: &Path) -> String {
    let out = fieldguard(
        &["validate", "--config", config.to_str().unwrap()],
        Path::new("."),
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    t.trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_version_covers_catalogue_and_routes_but_not_deployment_sections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = deployment(d, &[]);
    // No verify keys: the edit adds an empty list.
    let v0 = version_of(&base);
    let text = std::fs::read_to_string(&base).unwrap();
    let write = |name: &str, t: String| {
        assert_ne!(t, text, "{name}: no change");
        let p = d.join(name);
        std::fs::write(&p, t).unwrap();
        p
    };
    let catalogue = write(
        "catalogue.yaml",
        text.replace(
            "phone: { category: identity, level: 3,",
            "phone: { category: identity, level: 2,",
        ),
    );
    let route = write(
        "route.yaml",
        text.replacen("hide_missing: true", "hide_missing: false", 1),
    );
    let listener = write("listener.yaml", text.replace("127.0.0.1:1", "127.0.0.1:2"));
    assert_ne!(version_of(&catalogue), v0, "catalogue");
    assert_ne!(version_of(&route), v0, "route");
    assert_eq!(version_of(&listener), v0, "listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_change_alone_gives_a_new_version_in_policies_metrics_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(&repo_path("policies"), &d.join("policies"));
    let (shop, _shop) = start_shop().await;
    let mut pod = Replica::start_edited(d, "pod", shop, BUDGETS, &edit_for(d, &[])).await;
    let customer = token("customer", "c-1001", false, None);
    let v0 = policies(&pod).await["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(pod.addr, "/customers/c-1001", Some(&customer)).await.0,
        200
    );

    // Only the catalogue changes: no policy file, no schema.
    change_catalogue(&pod.config);
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 200, "{body}");
    let v1 = policies(&pod).await["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v0, v1);
    let (_, metrics) = get(pod.admin, "/metrics", None).await;
    assert_eq!(
        text_metric_sum(
            &metrics,
            "fieldguard_policy_set_info",
            &format!("version=\"{v1}\"")
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        text_metric_sum(
            &metrics,
            "fieldguard_policy_set_info",
            &format!("version=\"{v0}\"")
        ),
        0.0
    );
    assert_eq!(
        get(pod.addr, "/customers/c-1001", Some(&customer)).await.0,
        200
    );
    pod.stop();
    let versions: Vec<String> = pod
        .audit_records()
        .iter()
        .filter(|r| r.get("decision").is_some())
        .map(|r| r["policy_version"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(versions, [v0, v1]);
}

/// The shell lines of a `<!-- NAME:start -->` block of docs/policies.md.
fn doc_commands(name: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(repo_path("docs/policies.md")).unwrap();
    let start = format!("<!-- {name}:start -->\n");
    let a = doc.find(&start).unwrap() + start.len();
    let b = doc[a..].find(&format!("<!-- {name}:end -->")).unwrap() + a;
    doc[a..b]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the documented commands in a copy of the demo deployment, then
/// checks that the proxy's checks accept the signed set.
fn run_documented(block: &str) {
    if block.contains("openssl") && Command::new("openssl").arg("version").output().is_err() {
        eprintln!("*** SKIPPED {block}: openssl not installed ***");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(
        &repo_path("examples/demo"),
        &dir.path().join("examples/demo"),
    );
    let deploy = dir.path().join("examples/demo");
    std::fs::rename(
        deploy.join("fieldguard.yaml"),
        deploy.join("fieldguard.yaml.orig"),
    )
    .unwrap();
    let config = std::fs::read_to_string(deploy.join("fieldguard.yaml.orig")).unwrap();
    let schema_line = "  schema: ../../policies/schema.cedarschema\n";
    assert!(config.contains(schema_line));
    std::fs::write(
        deploy.join("fieldguard.yaml"),
        config.replace(
            schema_line,
            &format!("{schema_line}  verify_keys: [signing.key.pub]\n"),
        ),
    )
    .unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fieldguard"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in doc_commands(block) {
        let out = Command::new("sh")
            .args(["-c", &line])
            .current_dir(&deploy)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{block}: `{line}`: {}", text(&out));
    }
    assert!(dir.path().join("policies/fieldguard.sig").is_file());
    let out = fieldguard(&["validate", "--config", "fieldguard.yaml"], &deploy);
    assert!(out.status.success(), "{block}: {}", text(&out));
    // A key is never overwritten.
    let before = std::fs::read(deploy.join("signing.key")).unwrap();
    let again = fieldguard(&["sign", "--generate-key", "signing.key"], &deploy);
    assert!(!again.status.success());
    assert_eq!(std::fs::read(deploy.join("signing.key")).unwrap(), before);
}

#[test]
fn the_documented_signing_commands_run() {
    run_documented("signing");
    run_documented("signing-openssl");
}
