//! The CI recipe (issue #22 item 2) runs as written: the GitHub Actions
//! workflow's `run:` scripts (examples/ci/fieldguard-policy-review.yml) in
//! a scratch git repository with a base commit and a pull request's
//! commit, with the environment GitHub would give them; and each hook of
//! .pre-commit-hooks.yaml as pre-commit would call it.

mod common;

use common::repo_path;
use common::scratch_git::{git, scratch_repo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const WORKFLOW: &str = "examples/ci/fieldguard-policy-review.yml";

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn path_with_fieldguard() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_fieldguard"))
        .parent()
        .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A job's steps by id.
fn steps(workflow: &Value, job: &str) -> BTreeMap<String, Value> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s.get("id")?.as_str()?.to_string(), s.clone())))
        .collect()
}

/// Runs a step's script as GitHub does (`bash --noprofile --norc -eo
/// pipefail`), with the workflow's env, the step's literal env, and `env`.
fn run_step(workflow: &Value, step: &Value, cwd: &Path, env: &[(&str, &str)]) -> Output {
    let script = step["run"].as_str().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", path_with_fieldguard());
    for vars in [&workflow["env"], &step["env"]] {
        for (k, v) in vars.as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            if !v.contains("${{") {
                cmd.env(k, v);
            }
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_scripts_use_only_environment_variables() {
    let w = yaml(WORKFLOW);
    for (job, j) in w["jobs"].as_object().unwrap() {
        for s in j["steps"].as_array().unwrap() {
            if let Some(run) = s.get("run").and_then(Value::as_str) {
                assert!(
                    !run.contains("${{"),
                    "{job}: expressions in a script: {run}"
                );
            }
        }
    }
}

#[test]
fn the_review_job_validates_tests_diffs_and_gates_a_pull_request() {
    let w = yaml(WORKFLOW);
    let steps = steps(&w, "review");
    let repo = scratch_repo();
    let r = repo.path();
    let base = git(r, &["rev-parse", "HEAD"]);
    // The pull request: support agents see contact details (level 3)
    // without MFA.
    let file = r.join("policies/support_agent.cedar");
    let policy = std::fs::read_to_string(&file).unwrap();
    let widened = policy.replacen(
        "when { context.mfa && [\"phone\", \"email\"]",
        "when { [\"phone\", \"email\"]",
        1,
    );
    assert_ne!(policy, widened);
    std::fs::write(&file, widened).unwrap();
    // The policy tests say it too; the review must still report the diff.
    git(
        r,
        &["commit", "-qam", "agents see contact details without MFA"],
    );
    let out_file = r.join("github-output");
    let env = [
        ("BASE_SHA", base.as_str()),
        ("GITHUB_OUTPUT", out_file.to_str().unwrap()),
    ];

    let validate = run_step(&w, &steps["validate"], r, &env);
    assert!(validate.status.success(), "{}", text(&validate));
    let test = run_step(&w, &steps["test"], r, &env);
    assert!(
        !test.status.success(),
        "the policy tests catch the change: {}",
        text(&test)
    );
    assert!(
        text(&test).contains("FAIL  policies/tests/support_agent.yaml"),
        "{}",
        text(&test)
    );

    let diff = run_step(&w, &steps["diff"], r, &env);
    assert!(diff.status.success(), "{}", text(&diff));
    let md = std::fs::read_to_string(r.join("fieldguard-diff.md")).unwrap();
    assert!(
        md.starts_with("**fieldguard diff: 2 changes in access: 2 widening, 0 narrowing"),
        "{md}"
    );
    assert!(md.contains("#### support_agent"), "{md}");
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(outputs.trim(), "code=3");
    let gate = run_step(&w, &steps["gate"], r, &[("CODE", "3")]);
    assert!(!gate.status.success());
    assert!(
        text(&gate).contains("needs a security review"),
        "{}",
        text(&gate)
    );

    // A pull request that changes no access passes the gate.
    std::fs::write(&out_file, "").unwrap();
    let head = git(r, &["rev-parse", "HEAD"]);
    let env = [
        ("BASE_SHA", head.as_str()),
        ("GITHUB_OUTPUT", out_file.to_str().unwrap()),
    ];
    let diff = run_step(&w, &steps["diff"], r, &env);
    assert!(diff.status.success(), "{}", text(&diff));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().trim(), "code=0");
    let md = std::fs::read_to_string(r.join("fieldguard-diff.md")).unwrap();
    assert!(
        md.starts_with("**fieldguard diff: no change in access"),
        "{md}"
    );
    let gate = run_step(&w, &steps["gate"], r, &[("CODE", "0")]);
    assert!(gate.status.success(), "{}", text(&gate));
}

#[test]
fn the_sign_job_signs_what_merged() {
    let w = yaml(WORKFLOW);
    let steps = steps(&w, "sign");
    let repo = scratch_repo();
    let r = repo.path();
    let keys = tempfile::tempdir().unwrap();
    let made = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["sign", "--generate-key"])
        .arg(keys.path().join("ci.key"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let private = std::fs::read_to_string(keys.path().join("ci.key")).unwrap();
    let runner_temp = tempfile::tempdir().unwrap();
    let env = [
        ("FIELDGUARD_SIGNING_KEY", private.trim_end()),
        ("RUNNER_TEMP", runner_temp.path().to_str().unwrap()),
    ];
    for id in ["validate", "sign"] {
        let out = run_step(&w, &steps[id], r, &env);
        assert!(out.status.success(), "{id}: {}", text(&out));
    }
    assert!(r.join("policies/fieldguard.sig").is_file());
    // The key did not stay on the runner.
    assert_eq!(std::fs::read_dir(runner_temp.path()).unwrap().count(), 0);
    // A proxy with the public key accepts the set.
    let config = r.join("examples/demo/fieldguard.yaml");
    let t = std::fs::read_to_string(&config).unwrap();
    let line = "  schema: ../../policies/schema.cedarschema\n";
    std::fs::write(
        &config,
        t.replace(
            line,
            &format!(
                "{line}  verify_keys: [{}]\n",
                keys.path().join("ci.key.pub").display()
            ),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let id = text(&made).trim().rsplit(' ').next().unwrap().to_string();
    assert!(
        text(&out).contains(&format!(", signed by key {id})")),
        "validate names the signing key {id}: {}",
        text(&out)
    );
}

/// A hook's command line as pre-commit builds it (`pass_filenames: false`):
/// entry, then args (the hook's defaults, or the user's).
fn hook_command(hook: &Value, args: Option<&[&str]>) -> Vec<String> {
    assert_eq!(hook["pass_filenames"], false);
    let mut cmd: Vec<String> = hook["entry"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    match args {
        Some(a) => cmd.extend(a.iter().map(|s| s.to_string())),
        None => cmd.extend(
            hook["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.as_str().unwrap().to_string()),
        ),
    }
    cmd
}

fn run_hook(cmd: &[String], cwd: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("exec \"$@\"")
        .arg("hook")
        .args(cmd)
        .current_dir(cwd)
        .env("PATH", path_with_fieldguard())
        .output()
        .unwrap()
}

#[test]
fn the_pre_commit_hooks_pass_a_good_set_and_fail_a_broken_one() {
    let hooks = yaml(".pre-commit-hooks.yaml");
    let hooks: BTreeMap<String, Value> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h.clone()))
        .collect();
    assert_eq!(
        hooks.keys().collect::<Vec<_>>(),
        ["fieldguard-test", "fieldguard-validate"]
    );
    let repo = scratch_repo();
    let r = repo.path();
    // The user's args, as the file's header shows them.
    let validate = hook_command(
        &hooks["fieldguard-validate"],
        Some(&["--config", "examples/demo/fieldguard.yaml"]),
    );
    let test = hook_command(&hooks["fieldguard-test"], None);
    for cmd in [&validate, &test] {
        let out = run_hook(cmd, r);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    }
    // The default args: `fieldguard.yaml` in the folder it runs in.
    let out = run_hook(
        &hook_command(&hooks["fieldguard-validate"], None),
        &r.join("examples/demo"),
    );
    assert!(out.status.success(), "{}", text(&out));

    // A policy that does not validate fails both.
    let file = r.join("policies/partner.cedar");
    let t = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        t.replacen("resource is Order", "resource is Ordr", 1),
    )
    .unwrap();
    for cmd in [&validate, &test] {
        let out = run_hook(cmd, r);
        assert!(!out.status.success(), "{cmd:?} passed a broken policy");
        assert!(
            text(&out).contains("partner.cedar"),
            "{cmd:?}: {}",
            text(&out)
        );
    }
}
