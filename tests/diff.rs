//! `fieldguard diff` (issue #22): real edits of the reference policies and
//! deployment in a scratch git repository, one test per kind of change,
//! each asserting the exact lines and the exit code of `--fail-on`; the
//! git base (from a subdirectory, outside a repository, an unknown
//! revision) and a folder base.

mod common;

use common::scratch_git::{commit, scratch_repo};
use common::{copy_dir, repo_path};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = "examples/demo/fieldguard.yaml";

/// Replaces `from` (which must be there) by `to` in a file.
fn edit(file: PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(from),
        "{}: {from:?} not found",
        file.display()
    );
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    /// The lines after the summary.
    fn changes(&self) -> Vec<&str> {
        self.out.lines().skip(1).collect()
    }
    fn summary(&self) -> &str {
        self.out.lines().next().unwrap_or_default()
    }
}

fn diff_in(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .arg("diff")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `diff --config CONFIG --base HEAD` in `repo`, plus `extra`.
fn diff(repo: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["--config", CONFIG, "--base", "HEAD"];
    args.extend_from_slice(extra);
    diff_in(repo, &args)
}

fn assert_summary(r: &Run, expected: &str) {
    assert!(
        r.summary().starts_with(&format!("{expected} (policy set ")),
        "{}{}",
        r.out,
        r.err
    );
}

#[test]
fn widening_a_field_for_a_role() {
    let repo = scratch_repo();
    let r = repo.path();
    // Support agents see contact details in full without MFA.
    edit(
        r.join("policies/support_agent.cedar"),
        "when { context.mfa && [\"phone\", \"email\"]",
        "when { [\"phone\", \"email\"]",
    );
    let run = diff(r, &[]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "2 changes in access: 2 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  support_agent: field Customer.email: masked (partial) -> full, for callers without MFA [identity, level 3] (policies: support-contact-masked, support-contact-with-mfa)",
            "widens  support_agent: field Customer.phone: masked (partial) -> full, for callers without MFA [identity, level 3] (policies: support-contact-masked, support-contact-with-mfa)",
        ]
    );
    // docs/policies.md shows this very run.
    let doc = std::fs::read_to_string(repo_path("docs/policies.md")).unwrap();
    let start = "<!-- diff-example:start -->\n```text\n";
    let a = doc.find(start).unwrap() + start.len();
    let b = doc[a..].find("```\n<!-- diff-example:end -->").unwrap() + a;
    assert_eq!(
        doc[a..b].trim_end(),
        run.out.trim_end(),
        "docs/policies.md's diff example is stale: paste this run's output"
    );
    assert_eq!(diff(r, &["--fail-on", "widen"]).code, 3);
    assert_eq!(diff(r, &["--fail-on", "widen:level>=3"]).code, 3);
    assert_eq!(diff(r, &["--fail-on", "widen:level>=4"]).code, 0);
    assert_eq!(diff(r, &["--fail-on", "widen:role=partner"]).code, 0);
    let gated = diff(
        r,
        &["--fail-on", "widen:role=support_agent,route-passthrough"],
    );
    assert_eq!(gated.code, 3);
    assert!(
        gated.err.contains("2 change(s) match --fail-on"),
        "{}",
        gated.err
    );
    assert_eq!(diff(r, &["--fail-on", "route-passthrough"]).code, 0);

    // The pull-request comment: summary first, grouped by role.
    let md = diff(r, &["--format", "md"]);
    let lines: Vec<&str> = md.out.lines().collect();
    assert!(
        lines[0].starts_with("**fieldguard diff: 2 changes in access: 2 widening, 0 narrowing"),
        "{}",
        md.out
    );
    assert_eq!(lines[2], "#### support_agent");
    assert_eq!(
        lines[4],
        "- **widens** field `Customer.email`: masked (partial) → full, for callers without MFA [identity, level 3] (policies: `support-contact-masked`, `support-contact-with-mfa`)"
    );

    // JSON for tools.
    let json: serde_json::Value =
        serde_json::from_str(&diff(r, &["--format", "json"]).out).unwrap();
    assert_eq!(json["widening"], 2);
    let first = &json["changes"][0];
    assert_eq!(first["direction"], "widens");
    assert_eq!(first["role"], "support_agent");
    assert_eq!(first["subject"], "Customer.email");
    assert_eq!(first["level"], 3);
    assert_eq!(first["category"], "identity");
    assert_eq!(first["callers"], "without MFA");
}

#[test]
fn a_new_masked_form() {
    let repo = scratch_repo();
    let r = repo.path();
    // Agents get the birth date masked (the year) where it was removed.
    edit(
        r.join("policies/support_agent.cedar"),
        "when { [\"phone\", \"email\"].contains(context.field.name) };",
        "when { [\"phone\", \"email\", \"birth_date\"].contains(context.field.name) };",
    );
    let run = diff(r, &["--fail-on", "widen:level>=4"]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "1 change in access: 1 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  support_agent: field Customer.birth_date: removed -> masked (year) [identity, level 3] (policies: support-contact-masked)"
        ]
    );
    assert_eq!(diff(r, &["--fail-on", "widen:level>=3"]).code, 3);
}

#[test]
fn a_consent_condition_dropped() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join("policies/marketing_analyst.cedar"),
        "resource has marketing_consent && resource.marketing_consent\n",
        "true\n",
    );
    let run = diff(r, &["--fail-on", "widen:role=marketing_analyst"]);
    assert_eq!(run.code, 3, "{}", run.err);
    assert_summary(&run, "3 changes in access: 3 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  marketing_analyst: records of BehaviorEvent: hidden -> visible, for callers with purpose=marketing, when no marketing_consent (policies: marketing-consented-records)",
            "widens  marketing_analyst: records of Customer: hidden -> visible, for callers with purpose=marketing, when no marketing_consent (policies: marketing-consented-records)",
            "widens  marketing_analyst: records of Order: hidden -> visible, for callers with purpose=marketing, when no marketing_consent (policies: marketing-consented-records)",
        ]
    );
}

#[test]
fn an_owner_check_removed() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join("policies/customer.cedar"),
        "permit (principal in Role::\"customer\", action == Action::\"record:read\", resource)\nwhen { resource has owner && resource.owner == principal };",
        "permit (principal in Role::\"customer\", action == Action::\"record:read\", resource);",
    );
    let run = diff(r, &["--fail-on", "widen:role=customer"]);
    assert_eq!(run.code, 3, "{}", run.err);
    assert_summary(&run, "4 changes in access: 4 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  customer: records of BehaviorEvent: hidden -> visible, when not own (policies: customer-own-records)",
            "widens  customer: records of Customer: hidden -> visible, when not own (policies: customer-own-records)",
            "widens  customer: records of Order: hidden -> visible, when not own (policies: customer-own-records)",
            "widens  customer: records of Ticket: hidden -> visible, when not own (policies: customer-own-records)",
        ]
    );
}

#[test]
fn a_write_right_removed() {
    let repo = scratch_repo();
    let r = repo.path();
    // Customers may no longer correct their birth date.
    edit(
        r.join("policies/customer.cedar"),
        "  ([\"name\", \"gender\", \"birth_date\", \"phone\",",
        "  ([\"name\", \"gender\", \"phone\",",
    );
    let run = diff(r, &["--fail-on", "widen"]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "1 change in access: 0 widening, 1 narrowing");
    assert_eq!(
        run.changes(),
        [
            "narrows customer: writing Customer.birth_date: writable -> not writable, through PATCH /customers/{id} on own records [identity, level 3] (policies: customer-correct-own-record)"
        ]
    );
    assert_eq!(diff(r, &["--fail-on", "any"]).code, 3);
}

#[test]
fn a_new_catalogue_field_and_who_sees_it() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join(CONFIG),
        "      gender: { category: identity, level: 1, shape: string }\n",
        "      gender: { category: identity, level: 1, shape: string }\n      nickname: { category: identity, level: 2, shape: string }\n",
    );
    let run = diff(r, &["--fail-on", "widen:level>=3"]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "3 changes in access: 3 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  (all roles): catalogue entry Customer.nickname: absent -> level 2, mask none [identity, level 2]",
            "widens  customer: field Customer.nickname: removed -> full, when own [identity, level 2] (policies: customer-own-fields-in-full)",
            "widens  data_protection_officer: field Customer.nickname: removed -> full, for callers with MFA [identity, level 2] (policies: dpo-fields-with-mfa)",
        ]
    );
    assert_eq!(diff(r, &["--fail-on", "widen:level>=2"]).code, 3);
}

#[test]
fn a_new_record_attribute_changes_nothing_until_a_rule_reads_it() {
    let repo = scratch_repo();
    let r = repo.path();
    // The two sides know different record attributes: their scenarios
    // differ, and are compared where they agree.
    edit(
        r.join(CONFIG),
        "      marketing_consent: { field: consent.marketing, type: bool, default: false }\n",
        "      marketing_consent: { field: consent.marketing, type: bool, default: false }\n      vip: { field: vip, type: bool, default: false }\n",
    );
    edit(
        r.join("policies/schema.cedarschema"),
        "entity Customer = { owner?: User, marketing_consent?: Bool };",
        "entity Customer = { owner?: User, marketing_consent?: Bool, vip?: Bool };",
    );
    let run = diff(r, &["--fail-on", "any"]);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.out.starts_with("no change in access"), "{}", run.out);
    // A rule on it: agents no longer see VIP customers.
    edit(
        r.join("policies/support_agent.cedar"),
        "when { resource is Customer || resource is Order || resource is Ticket };",
        "when { (resource is Customer && !(resource has vip && resource.vip)) || resource is Order || resource is Ticket };",
    );
    let run = diff(r, &[]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "1 change in access: 0 widening, 1 narrowing");
    assert_eq!(
        run.changes(),
        [
            "narrows support_agent: records of Customer: visible -> hidden, when vip (policies: support-records)"
        ]
    );
}

#[test]
fn a_route_made_passthrough() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join(CONFIG),
        "  - method: DELETE\n    path: /customers/{id}\n    action: customer:delete\n    resource: { type: Customer, id_param: id, owner_param: id }\n",
        "  - method: DELETE\n    path: /customers/{id}\n    passthrough: true\n",
    );
    let run = diff(r, &["--fail-on", "route-passthrough"]);
    assert_eq!(run.code, 3, "{}", run.err);
    assert_summary(&run, "1 change in access: 1 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  (all roles): route DELETE /customers/{id} (passthrough: no decision, no filtering): protected -> passthrough"
        ]
    );
    // Every role is affected.
    assert_eq!(diff(r, &["--fail-on", "widen:role=partner"]).code, 3);
}

#[test]
fn a_budget_raised() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join(CONFIG),
        "id: support-records-day, count: records, window_seconds: 86400, limit: 300,",
        "id: support-records-day, count: records, window_seconds: 86400, limit: 600,",
    );
    let run = diff(r, &["--fail-on", "widen:level>=3"]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "1 change in access: 1 widening, 0 narrowing");
    assert_eq!(
        run.changes(),
        [
            "widens  support_agent: budget support-records-day: 300 records per 86400 s, refuse -> 600 records per 86400 s, refuse"
        ]
    );
    assert_eq!(diff(r, &["--fail-on", "widen:role=support_agent"]).code, 3);
}

#[test]
fn a_pure_refactor_changes_nothing() {
    let repo = scratch_repo();
    let r = repo.path();
    // One policy moved to a file of its own, reformatted and commented.
    let policy = "@id(\"customer-register\")\n// CDM-3.1: registration is open to customers; which fields it may collect is\n// limited by the route's `collect` list and by customer-register-fields.\npermit (\n  principal in Role::\"customer\",\n  action == Action::\"customer:create\",\n  resource is CustomerDirectory\n);\n";
    edit(r.join("policies/customer.cedar"), policy, "");
    std::fs::write(
        r.join("policies/customer_registration.cedar"),
        "// Registration, moved out of customer.cedar.\n@id(\"customer-register\")\npermit (principal in Role::\"customer\", action == Action::\"customer:create\", resource is CustomerDirectory);\n",
    )
    .unwrap();
    let run = diff(r, &["--fail-on", "any"]);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert_eq!(run.changes(), Vec::<&str>::new());
    assert!(
        run.out.starts_with("no change in access (policy set "),
        "{}",
        run.out
    );
    // The version still tells the two sets apart.
    let versions = run
        .summary()
        .trim_end_matches(')')
        .rsplit("policy set ")
        .next()
        .unwrap();
    let (a, b) = versions.split_once(" -> ").unwrap();
    assert_ne!(a, b);
    let md = diff(r, &["--format", "md"]);
    assert!(
        md.out.starts_with("**fieldguard diff: no change in access"),
        "{}",
        md.out
    );
}

#[test]
fn a_git_base_from_a_subdirectory_and_clear_failures() {
    let repo = scratch_repo();
    let r = repo.path();
    edit(
        r.join("policies/support_agent.cedar"),
        "when { context.mfa && [\"phone\", \"email\"]",
        "when { [\"phone\", \"email\"]",
    );
    commit(r, "agents see contact details without MFA");
    // From a subdirectory, the committed change against its parent.
    let run = diff_in(
        &r.join("policies"),
        &[
            "--config",
            "../examples/demo/fieldguard.yaml",
            "--base",
            "HEAD~1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "2 changes in access: 2 widening, 0 narrowing");
    // The working tree is untouched (nothing checked out).
    let text = std::fs::read_to_string(r.join("policies/support_agent.cedar")).unwrap();
    assert!(!text.contains("context.mfa && [\"phone\""));

    let unknown = diff_in(r, &["--config", CONFIG, "--base", "no-such-rev"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.err.contains("--base no-such-rev: unknown revision"),
        "{}",
        unknown.err
    );

    let outside = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &outside.path().join("policies"));
    copy_dir(
        &repo_path("examples/demo"),
        &outside.path().join("examples/demo"),
    );
    let run = diff_in(outside.path(), &["--config", CONFIG, "--base", "HEAD~1"]);
    assert_eq!(run.code, 1);
    assert!(
        run.err.contains("is not in a git repository"),
        "{}",
        run.err
    );

    // A folder base: the same layout elsewhere (here: the unchanged copy).
    let run = diff_in(
        r,
        &[
            "--config",
            CONFIG,
            "--base",
            outside.path().to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert_summary(&run, "2 changes in access: 2 widening, 0 narrowing");
}
