//! The policy authors' tools: `fieldguard test`, `explain` and `matrix`
//! run the real policies, the docs show their current output, and what they
//! report is what the proxy does.

mod common;

use common::doc_edit::apply_edit;
use common::{copy_dir, repo_path, start, token, token_with_claims};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn fieldguard(args: &[&str], cwd: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run fieldguard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reference_policy_tests_pass() {
    let (ok, out, err) = fieldguard(&["test", "policies/tests"], &repo_path(""));
    assert!(ok, "{out}{err}");
    let summary = out.lines().last().unwrap_or_default();
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 40, "{summary}");
    // Every row of the reference role table has a file.
    for role in [
        "customer",
        "support_agent",
        "fulfillment",
        "marketing_analyst",
        "data_protection_officer",
        "partner",
    ] {
        assert!(
            out.contains(&format!("policies/tests/{role}.yaml")),
            "no tests for {role}"
        );
    }
}

#[test]
fn a_broken_policy_fails_the_policy_tests() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    // A "small" change: support agents see contact details without MFA.
    let file = dir.path().join("policies/support_agent.cedar");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replace(
        "when { context.mfa && [\"phone\", \"email\"]",
        "when { [\"phone\", \"email\"]",
    );
    assert_ne!(text, broken);
    std::fs::write(&file, broken).unwrap();
    let (ok, out, _) = fieldguard(&["test", "policies/tests"], dir.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAIL  policies/tests/support_agent.yaml: contact details masked without MFA"),
        "{out}"
    );
    assert!(
        out.contains("field `phone`: expected masked, got {\"full\"}"),
        "{out}"
    );
    let summary = out.lines().last().unwrap();
    assert!(
        summary.contains(" passed, ") && !summary.ends_with(" 0 failed"),
        "{summary}"
    );
}

/// Text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a file.
fn section(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(repo_path(file)).unwrap();
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("<!-- {name}:end -->");
    let a = text
        .find(&start)
        .unwrap_or_else(|| panic!("{file} has no {start}"))
        + start.len();
    let b = text[a..].find(&end).unwrap() + a;
    text[a..b].to_string()
}

fn unfence(s: &str) -> String {
    s.trim()
        .trim_start_matches("```text")
        .trim_end_matches("```")
        .trim()
        .to_string()
}

#[test]
fn the_readme_matrix_is_current() {
    let (ok, out, err) = fieldguard(
        &["matrix", "--config", "examples/demo/fieldguard.yaml"],
        &repo_path(""),
    );
    assert!(ok, "{err}");
    assert_eq!(
        section("README.md", "matrix").trim(),
        out.trim(),
        "README matrix is stale: regenerate with `cargo run -- matrix --config examples/demo/fieldguard.yaml`"
    );
}

#[test]
fn the_documented_explanation_is_current() {
    let (ok, out, err) = fieldguard(
        &[
            "explain",
            "--config",
            "examples/demo/fieldguard.yaml",
            "--role",
            "support_agent",
            "--sub",
            "agent-7",
            "GET",
            "/customers/c-1001",
            "--response",
            "policies/tests/fixtures/customer-c-1001.json",
        ],
        &repo_path(""),
    );
    assert!(ok, "{err}");
    assert_eq!(unfence(&section("docs/policies.md", "explain")), out.trim());
}

/// What `explain` says the response becomes is what the proxy sends.
#[tokio::test]
async fn explain_matches_the_proxy() {
    let h = start().await;
    for (role, sub, mfa, purpose, path, fixture) in [
        (
            "support_agent",
            "agent-7",
            false,
            None,
            "/customers/c-1001",
            "customer-c-1001.json",
        ),
        (
            "marketing_analyst",
            "analyst-2",
            false,
            Some("marketing"),
            "/customers?limit=4",
            "customers-first-4.json",
        ),
        (
            "partner",
            "partner-1",
            false,
            None,
            "/orders/o-10021",
            "order-o-10021.json",
        ),
        (
            "customer",
            "c-1001",
            false,
            None,
            "/customers/c-1001/orders",
            "orders-c-1001.json",
        ),
    ] {
        let fixture_path = format!("policies/tests/fixtures/{fixture}");
        let mut args = vec![
            "explain",
            "--config",
            "examples/demo/fieldguard.yaml",
            "--role",
            role,
            "--sub",
            sub,
        ];
        if mfa {
            args.push("--mfa");
        }
        if let Some(p) = purpose {
            args.extend(["--purpose", p]);
        }
        // A partner's token names its carrier (o-10021 is SF Express's).
        let carrier = [("carrier", "SF Express")];
        let claims: &[(&str, &str)] = if role == "partner" { &carrier } else { &[] };
        if role == "partner" {
            args.extend(["--attr", "carrier=SF Express"]);
        }
        // The route is matched on the path; a query only pages the shop.
        let route_path = path.split('?').next().unwrap();
        args.extend(["GET", route_path, "--response", &fixture_path]);
        let (ok, out, err) = fieldguard(&args, &repo_path(""));
        assert!(ok, "{err}");
        let explained: Value = serde_json::from_str(
            out.split("filtered body:\n")
                .nth(1)
                .unwrap_or_else(|| panic!("no body in:\n{out}"))
                .trim(),
        )
        .unwrap();
        // The fixtures are the shop's own answers, so the proxy must agree.
        assert_eq!(
            h.upstream_get(path).await.json(),
            serde_json::from_slice::<Value>(&std::fs::read(repo_path(&fixture_path)).unwrap())
                .unwrap()
        );
        let real = h
            .get(path, &token_with_claims(role, sub, mfa, purpose, claims))
            .await;
        assert_eq!(real.status, 200, "{role} {path}");
        assert_eq!(real.json(), explained, "{role} {path}");
    }
}

/// The matrix says, for every role variant and every customer field, what
/// a real request through the proxy shows; check it against the proxy.
#[tokio::test]
async fn the_matrix_matches_what_the_proxy_does() {
    let (ok, out, err) = fieldguard(
        &[
            "matrix",
            "--config",
            "examples/demo/fieldguard.yaml",
            "--format",
            "json",
        ],
        &repo_path(""),
    );
    assert!(ok, "{err}");
    let matrix: Value = serde_json::from_str(&out).unwrap();
    let h = start().await;
    let raw_customer = h.upstream_get("/customers/c-1001").await.json();
    let raw_order_list = h.upstream_get("/customers/c-1001/orders").await.json();
    let order_id = raw_order_list["orders"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let raw_order = h.upstream_get(&format!("/orders/{order_id}")).await.json();
    let mut checked = 0;
    for v in matrix["variants"].as_array().unwrap() {
        let (role, mfa, purpose) = (
            v["role"].as_str().unwrap(),
            v["mfa"].as_bool().unwrap(),
            v["purpose"].as_str().unwrap(),
        );
        // c-1001 has marketing consent; the caller is someone else.
        let tok = token(
            role,
            "someone-else-entirely",
            mfa,
            Some(purpose).filter(|p| !p.is_empty()),
        );
        for (entity, path, raw, scenario) in [
            (
                "Customer",
                "/customers/c-1001".to_string(),
                &raw_customer,
                "other,marketing_consent",
            ),
            // Orders by id carry no consent; the caller's token no carrier.
            (
                "Order",
                format!("/orders/{order_id}"),
                &raw_order,
                "other,other carrier,no marketing_consent",
            ),
        ] {
            let rows: Vec<&Value> = matrix["fields"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    let mut labels: Vec<&str> =
                        r["scenario"].as_str().unwrap().split(',').collect();
                    let mut want: Vec<&str> = scenario.split(',').collect();
                    labels.sort();
                    want.sort();
                    r["role"] == role
                        && r["mfa"] == mfa
                        && r["purpose"] == purpose
                        && r["entity"] == entity
                        && labels == want
                })
                .collect();
            assert!(!rows.is_empty());
            let route_allowed = matrix["routes"].as_array().unwrap().iter().any(|r| {
                r["role"] == role
                    && r["mfa"] == mfa
                    && r["purpose"] == purpose
                    && r["scenario"] == "other"
                    && r["allowed"] == true
                    && r["route"]
                        == if entity == "Customer" {
                            "GET /customers/{id}"
                        } else {
                            "GET /orders/{id}"
                        }
            });
            let reply = h.get(&path, &tok).await;
            let record_visible = rows
                .iter()
                .any(|r| r["field"] == "(record)" && r["outcome"] == "visible");
            if !route_allowed || !record_visible {
                assert_eq!(
                    reply.status, 403,
                    "{role} mfa={mfa} purpose={purpose} {path}: matrix says no access"
                );
                checked += 1;
                continue;
            }
            assert_eq!(reply.status, 200, "{role} {path}: {}", reply.text());
            let got = reply.json();
            for r in rows.iter().filter(|r| r["field"] != "(record)") {
                let field = r["field"].as_str().unwrap();
                let lookup = |v: &Value| {
                    field
                        .split('.')
                        .try_fold(v.clone(), |v, k| v.get(k).cloned())
                };
                let (g, w) = (lookup(&got), lookup(raw));
                let what = format!("{role} mfa={mfa} purpose={purpose} {entity}.{field}");
                match r["outcome"].as_str().unwrap() {
                    "full" => assert_eq!(g, w, "{what}: full"),
                    "masked" => assert!(g.is_some() && g != w, "{what}: masked, got {g:?}"),
                    "removed" => assert!(g.is_none(), "{what}: removed, got {g:?}"),
                    other => panic!("{what}: unexpected {other}"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "checked {checked} cells");
}

#[test]
fn validate_warns_about_policies_that_can_never_apply() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    // A rule for an action no route uses, and one naming a field no
    // catalogue entity has (a typo of `phone`).
    let schema = dir.path().join("policies/schema.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(&schema, format!("{text}\naction \"customer:export\" appliesTo {{ principal: User, resource: CustomerDirectory, context: RequestContext }};\n")).unwrap();
    std::fs::write(
        dir.path().join("policies/extra.cedar"),
        "@id(\"export-for-dpo\")\npermit (principal in Role::\"data_protection_officer\", action == Action::\"customer:export\", resource);\n\n@id(\"typo\")\npermit (principal in Role::\"support_agent\", action == Action::\"field:read\", resource is Customer)\nwhen { context.field.name == \"phnoe\" };\n\n@id(\"never-applies\")\npermit (principal in Role::\"support_agent\", action == Action::\"customer:read\", resource)\nwhen { false };\n",
    )
    .unwrap();
    // A catalogue field no policy names.
    let config = dir.path().join("examples/demo/fieldguard.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let gender = "      gender: { category: identity, level: 1, shape: string }\n";
    assert!(text.contains(gender));
    std::fs::write(
        &config,
        text.replace(
            gender,
            &format!("{gender}      nickname: {{ category: identity, level: 1, shape: string }}\n"),
        )
        // A field of any kind, and a mask on an object.
        .replace("gender: { category: identity, level: 1, shape: string }", "gender: { category: identity, level: 1, shape: any }")
        .replace(
            "shape: object, of: { province: string, city: string, street: string, postcode: string } }",
            "shape: object, mask: { kind: null } }",
        ),
    )
    .unwrap();
    let (ok, out, err) = fieldguard(
        &["validate", "--config", "examples/demo/fieldguard.yaml"],
        dir.path(),
    );
    assert!(ok, "warnings do not fail validation: {err}");
    assert!(out.contains(": ok ("), "{out}");
    let (strict, strict_out, strict_err) = fieldguard(
        &[
            "validate",
            "--strict",
            "--config",
            "examples/demo/fieldguard.yaml",
        ],
        dir.path(),
    );
    assert!(!strict, "--strict fails on warnings");
    // Cedar's own warnings are warnings of validate, named by @id and line.
    assert!(
        strict_err.contains("extra.cedar:8: for policy `never-applies`, policy is impossible"),
        "{strict_err}"
    );
    assert!(!strict_err.contains("policy0"), "{strict_err}");
    // What it prints says the same as its exit code.
    assert!(!strict_out.contains(": ok ("), "{strict_out}");
    assert!(strict_err.contains("not ok: "), "{strict_err}");
    assert!(err.contains("extra.cedar:1: policy `export-for-dpo` can never apply: no route uses action(s) customer:export"), "{err}");
    assert!(
        err.contains(
            "extra.cedar:4: policy `typo` names field `phnoe`, which no catalogue entity has"
        ),
        "{err}"
    );
    assert!(
        err.contains("catalogue field Customer.nickname is mentioned by no policy"),
        "{err}"
    );
    assert!(
        err.contains("catalogue field Customer.gender has `shape: any`"),
        "{err}"
    );
    assert!(
        err.contains("catalogue field Order.shipping.address is an object with a mask"),
        "{err}"
    );
    assert!(
        err.contains("catalogue field Order.shipping.address is an object without `of`"),
        "{err}"
    );
    // Every warning says what to do about it.
    for w in err.lines().filter(|l| l.starts_with("warning: ")) {
        assert!(w.contains("; "), "a warning without advice: {w}");
    }
}

/// CDM-4.1.2: `validate` reports any policy set that lets a caller see a
/// level-4 field of someone else's record in full without MFA; the
/// reference set passes because of `baseline-level-4-needs-mfa`.
#[test]
fn validate_reports_a_level_4_field_shown_in_full_without_mfa() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    let validate = |dir: &Path| {
        fieldguard(
            &["validate", "--config", "examples/demo/fieldguard.yaml"],
            dir,
        )
    };
    // A well-meant rule: agents see ID card numbers (to verify callers).
    std::fs::write(
        dir.path().join("policies/extra.cedar"),
        "@id(\"support-verify-id-card\")\npermit (principal in Role::\"support_agent\", action == Action::\"field:read\", resource is Customer)\nwhen { context.field.name == \"id_card_number\" };\n",
    )
    .unwrap();
    let (ok, _, err) = validate(dir.path());
    assert!(ok, "{err}");
    assert!(!err.contains("level-4"), "the baseline forbid holds: {err}");
    // Without the baseline, the rule shows ID card numbers to agents
    // without MFA: reported.
    let baseline = dir.path().join("policies/baseline.cedar");
    let text = std::fs::read_to_string(&baseline).unwrap();
    let at = text.find("@id(\"baseline-level-4-needs-mfa\")").unwrap();
    std::fs::write(&baseline, &text[..at]).unwrap();
    let (ok, _, err) = validate(dir.path());
    assert!(ok, "{err}");
    assert!(
        err.contains(
            "role `support_agent` sees level-4 field Customer.id_card_number of others' records in full without MFA"
        ),
        "{err}"
    );
    // With MFA required in the rule itself, nothing to report.
    std::fs::write(
        dir.path().join("policies/extra.cedar"),
        "@id(\"support-verify-id-card\")\npermit (principal in Role::\"support_agent\", action == Action::\"field:read\", resource is Customer)\nwhen { context.mfa && context.field.name == \"id_card_number\" };\n",
    )
    .unwrap();
    let (ok, _, err) = validate(dir.path());
    assert!(ok, "{err}");
    assert!(!err.contains("level-4"), "{err}");
}

/// CDM-1.2.4: the header fallback for the purpose of use is an opt-in
/// that `validate` warns about.
#[test]
fn validate_warns_about_a_purpose_header_fallback() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    let config = dir.path().join("examples/demo/fieldguard.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let claim = "    purpose_claim: purpose\n";
    assert!(text.contains(claim));
    std::fs::write(
        &config,
        text.replace(
            claim,
            &format!("{claim}    purpose_fallback_header: X-Purpose\n"),
        ),
    )
    .unwrap();
    let (ok, _, err) = fieldguard(
        &["validate", "--config", "examples/demo/fieldguard.yaml"],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("identity.jwt.purpose_fallback_header is set"),
        "{err}"
    );
}

/// One block of a recipe in docs/policies.md.
enum Step {
    /// A `diff PATH` block: context lines (` `), removed (`-`), added (`+`).
    Edit { path: String, lines: Vec<String> },
    /// A `LANG PATH` block: a new file.
    Create { path: String, text: String },
    /// A `sh` (or `sh fails`) block's `fieldguard` commands.
    Run { commands: Vec<String>, fails: bool },
}

/// The blocks of the recipe between `<!-- recipe:NAME:start -->` and its
/// end, in order, with the list item's indentation removed.
fn recipe(name: &str) -> Vec<Step> {
    let text = section("docs/policies.md", &format!("recipe:{name}"));
    let lines: Vec<&str> = text.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(info) = line.trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let mut body = Vec::new();
        i += 1;
        while !lines[i].trim_start().starts_with("```") {
            let l = lines[i];
            body.push(l.get(indent..).unwrap_or("").to_string());
            i += 1;
        }
        i += 1;
        let words: Vec<&str> = info.split_whitespace().collect();
        match words.as_slice() {
            ["sh", rest @ ..] => steps.push(Step::Run {
                commands: body
                    .iter()
                    .filter(|l| l.starts_with("fieldguard "))
                    .cloned()
                    .collect(),
                fails: rest == ["fails"],
            }),
            ["diff", path] => steps.push(Step::Edit {
                path: path.to_string(),
                lines: body,
            }),
            [_, path] => steps.push(Step::Create {
                path: path.to_string(),
                text: body.join("\n") + "\n",
            }),
            other => panic!("recipe {name}: a block without a file: {other:?}"),
        }
    }
    steps
}

/// Follows a recipe of docs/policies.md on `root` (a copy of the
/// repository's policies and examples); returns each command's output.
fn follow(name: &str, root: &Path) -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    for step in recipe(name) {
        match step {
            Step::Edit { path, lines } => apply_edit(&root.join(path), &lines),
            Step::Create { path, text } => {
                let file = root.join(&path);
                assert!(!file.exists(), "recipe {name} creates {path}, which exists");
                std::fs::write(file, text).unwrap();
            }
            Step::Run { commands, fails } => {
                for cmd in commands {
                    assert!(
                        !cmd.contains(['"', '\'']),
                        "keep recipe commands unquoted: {cmd}"
                    );
                    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
                    let (ok, out, err) = fieldguard(&args, root);
                    assert_eq!(ok, !fails, "recipe {name}: `{cmd}`\n{out}{err}");
                    outputs.push((cmd.clone(), format!("{out}{err}")));
                }
            }
        }
    }
    outputs
}

/// docs/policies.md's "add a role" and "add a field" recipes, followed as
/// written on a copy of the reference files: each step applies, every
/// command succeeds (or fails where the recipe says so), and the result is
/// what the recipe promises.
#[test]
fn the_policy_author_recipes_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));

    let out = follow("add-a-role", dir.path());
    let output = |cmd: &str| {
        out.iter()
            .find(|(c, _)| c.contains(cmd))
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| panic!("the recipe runs no `{cmd}`"))
    };
    assert!(
        !output("validate").contains("warning"),
        "{}",
        output("validate")
    );
    assert!(output("test --config").contains("policies/tests/auditor.yaml: nothing without MFA"));
    assert!(output("test --config").ends_with(" 0 failed\n"));
    assert!(
        output("matrix").contains("auditor +MFA"),
        "{}",
        output("matrix")
    );
    assert!(output("explain").contains("payment.card_number      masked"));

    let out = follow("add-a-field", dir.path());
    assert!(
        out[0]
            .1
            .contains("catalogue field Customer.loyalty_tier is mentioned by no policy")
    );
    let last = &out.last().unwrap().1;
    assert!(last.contains("loyalty_tier.yaml: analysts see it for consenting customers only"));
    assert!(last.ends_with(" 0 failed\n"), "{last}");
}

/// `fieldguard test --config`: a test folder copied anywhere runs against
/// the configuration given, whatever its files' own `config:` says.
#[test]
fn policy_tests_run_against_the_config_given() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies/tests"), &dir.path().join("my-tests"));
    let config = repo_path("examples/demo/fieldguard.yaml");
    let (ok, out, err) = fieldguard(
        &["test", "--config", config.to_str().unwrap(), "my-tests"],
        dir.path(),
    );
    assert!(ok, "{out}{err}");
    assert!(out.ends_with(" 0 failed\n"), "{out}");
    // Without --config the copies point at a config that is not there.
    let (ok, _, err) = fieldguard(&["test", "my-tests"], dir.path());
    assert!(!ok);
    assert!(err.contains("fieldguard.yaml"), "{err}");
}

/// `fieldguard matrix … | head`: the reader goes away after a few bytes;
/// the command ends quietly with success (no panic, no error message), as
/// Unix tools do on a closed pipe. The JSON matrix (over 1 MB) is far
/// larger than a pipe's buffer, so the write does meet the closed pipe.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args([
            "matrix",
            "--config",
            repo_path("examples/demo/fieldguard.yaml").to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
