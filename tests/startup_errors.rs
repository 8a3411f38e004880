//! A broken configuration or policy set stops the real binary before it
//! serves anything, with `file:line: reason` naming the file and line to fix.
//!
//! Each case copies the reference deployment (`examples/demo/` and
//! `policies/`) into a temporary folder, breaks exactly one thing, and runs
//! `fieldguard validate` (or, once, `fieldguard run`) on the copy.

mod common;

use common::repo_path;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound on one CLI run; failing start-up takes milliseconds.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A disposable copy of the reference deployment.
struct Sandbox {
    _dir: tempfile::TempDir,
    config: PathBuf,
    policies: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(
            &repo_path("examples/demo"),
            &dir.path().join("examples/demo"),
        );
        copy_dir(&repo_path("policies"), &dir.path().join("policies"));
        let sandbox = Sandbox {
            config: dir.path().join("examples/demo/fieldguard.yaml"),
            policies: dir.path().join("policies"),
            _dir: dir,
        };
        // Never collide with a real listener should start-up go ahead.
        let text = std::fs::read_to_string(&sandbox.config).unwrap();
        let listen = text
            .lines()
            .find(|l| l.trim_start().starts_with("- address:"))
            .expect("the reference config has a listener")
            .to_string();
        let indent = &listen[..listen.len() - listen.trim_start().len()];
        edit(
            &sandbox.config,
            &listen,
            &format!("{indent}- address: 127.0.0.1:0"),
        );
        sandbox
    }

    fn policy(&self, name: &str) -> PathBuf {
        self.policies.join(name)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces the one occurrence of `from` in `file`.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once in {}",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

fn append(file: &Path, text: &str) {
    let mut old = std::fs::read_to_string(file).unwrap();
    old.push('\n');
    old.push_str(text);
    std::fs::write(file, old).unwrap();
}

/// 1-based line numbers of the lines of `file` containing `marker`.
fn lines_with(file: &Path, marker: &str) -> Vec<usize> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect()
}

/// The one line of `file` containing `marker`.
fn line_with(file: &Path, marker: &str) -> usize {
    let found = lines_with(file, marker);
    assert_eq!(
        found.len(),
        1,
        "{marker:?} in {}: {found:?}",
        file.display()
    );
    found[0]
}

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Kills the child if the test panics while it runs.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the real binary, bounded by [`CLI_TIMEOUT`] (killed after it).
fn fieldguard(args: &[&str]) -> Outcome {
    let child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .env("FIELDGUARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fieldguard");
    let mut reaper = Reaper(Some(child));
    let child = reaper.0.as_mut().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < CLI_TIMEOUT,
            "fieldguard {args:?} still running after {CLI_TIMEOUT:?}: start-up did not refuse"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    reaper.0 = None;
    Outcome {
        success: status.success(),
        stdout,
        stderr,
    }
}

fn validate(sb: &Sandbox) -> Outcome {
    fieldguard(&["validate", "--config", sb.config.to_str().unwrap()])
}

/// `file`, `line` and reason of the first `file:line: reason` in `text`.
fn location(text: &str) -> Option<(PathBuf, usize, String)> {
    for line in text.lines() {
        let rest = line.strip_prefix("fieldguard: ").unwrap_or(line);
        for (i, _) in rest.match_indices(':') {
            let after = &rest[i + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && after[digits..].starts_with(": ") {
                let n = after[..digits].parse().ok()?;
                let reason = after[digits + 2..].to_string();
                return Some((PathBuf::from(&rest[..i]), n, reason));
            }
        }
    }
    None
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The run failed and its error points at `file:line` with a reason
/// mentioning `reason`.
fn assert_points_at(out: &Outcome, file: &Path, line: usize, reason: &str) {
    assert!(
        !out.success,
        "expected failure; stdout: {} stderr: {}",
        out.stdout, out.stderr
    );
    let (f, l, r) = location(&out.stderr)
        .unwrap_or_else(|| panic!("no `file:line: reason` in stderr: {}", out.stderr));
    assert!(
        same_file(&f, file),
        "error names {} instead of {}: {}",
        f.display(),
        file.display(),
        out.stderr
    );
    assert_eq!(l, line, "wrong line: {}", out.stderr);
    assert!(
        r.contains(reason),
        "reason lacks {reason:?}: {}",
        out.stderr
    );
    assert!(!out.stdout.contains(": ok"), "stdout: {}", out.stdout);
}

// ------------------------------------------------------------ the config

#[test]
fn the_untouched_copy_is_valid() {
    // Control: every case below breaks exactly one thing of a copy that
    // validates as it is.
    let sb = Sandbox::new();
    let out = validate(&sb);
    assert!(out.success, "stderr: {}", out.stderr);
    assert!(out.stdout.contains(": ok ("), "stdout: {}", out.stdout);
}

#[test]
fn unknown_config_key() {
    let sb = Sandbox::new();
    edit(&sb.config, "\nupstream:\n", "\nupstream:\n  retries: 3\n");
    let line = line_with(&sb.config, "retries: 3");
    assert_points_at(&validate(&sb), &sb.config, line, "retries");
}

#[test]
fn bad_config_value() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "id_card_number: { category: identity, level: 4",
        "id_card_number: { category: identity, level: 7",
    );
    let line = line_with(&sb.config, "level: 7");
    assert_points_at(&validate(&sb), &sb.config, line, "7");
}

#[test]
fn bad_jsonpath_in_a_route() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "{ path: \"$.orders[*]\", entity: Order }\n      members:\n        $.customer_id",
        "{ path: \"$.orders[*\", entity: Order }\n      members:\n        $.customer_id",
    );
    let line = line_with(&sb.config, "$.orders[*\"");
    assert_points_at(&validate(&sb), &sb.config, line, "JSONPath");
}

#[test]
fn bad_response_header_name_in_a_route() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "- { path: \"$.orders[*]\", entity: Order }\n      members:\n        $.customer_id",
        "- { path: \"$.orders[*]\", entity: Order }\n      headers: [x-trace-id, \"x trace\"]\n      members:\n        $.customer_id",
    );
    let line = line_with(&sb.config, "\"x trace\"");
    assert_points_at(&validate(&sb), &sb.config, line, "not an HTTP header name");
}

#[test]
fn route_action_missing_from_the_schema() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "action: customer:tickets",
        "action: customer:nonesuch",
    );
    let line = line_with(&sb.config, "customer:nonesuch");
    assert_points_at(&validate(&sb), &sb.config, line, "customer:nonesuch");
}

#[test]
fn missing_key_file() {
    // A file that does not exist has no line: the error names the file the
    // operator must provide (ConfigError::file, "file: reason").
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "secrets/jwt-hs256.key",
        "secrets/missing-jwt.key",
    );
    let out = validate(&sb);
    assert!(!out.success, "stdout: {}", out.stdout);
    let missing = sb.config.parent().unwrap().join("secrets/missing-jwt.key");
    let named = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("fieldguard: "))
        .unwrap_or_else(|| panic!("no error line: {}", out.stderr));
    let (file, reason) = named
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `file: reason`: {named}"));
    assert_eq!(Path::new(file), missing, "{named}");
    assert!(reason.contains("HS256"), "{named}");
}

// ---------------------------------------------------------- the policies

#[test]
fn policy_syntax_error() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "@id(\"syntax-error-case\")\npermit (\n  principal,\n  action,\n  resource oops\n);\n",
    );
    let line = line_with(&file, "resource oops");
    assert_points_at(&validate(&sb), &file, line, "oops");
}

#[test]
fn policy_failing_strict_validation() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "@id(\"validation-error-case\")\n\
         permit (principal, action == Action::\"customer:read\", resource is Customer)\n\
         when { resource.no_such_attr == \"x\" };\n",
    );
    let line = line_with(&file, "no_such_attr");
    assert_points_at(&validate(&sb), &file, line, "no_such_attr");
}

/// The first `@id("...")` of a policy file.
fn first_id(file: &Path) -> (String, usize) {
    let text = std::fs::read_to_string(file).unwrap();
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with("@id(\""))
        .expect("a policy with an @id");
    let id = line.trim().trim_start_matches("@id(\"");
    let id = &id[..id.find('"').unwrap()];
    (id.to_string(), i + 1)
}

#[test]
fn duplicate_policy_id_across_files() {
    let sb = Sandbox::new();
    // Files load in name order: customer.cedar first, support_agent.cedar later.
    let original = sb.policy("customer.cedar");
    let (id, original_line) = first_id(&original);
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        &format!(
            "@id(\"{id}\")\n\
             permit (principal in Role::\"support_agent\", action == Action::\"customer:list\", resource);\n"
        ),
    );
    let line = *lines_with(&file, &format!("@id(\"{id}\")")).last().unwrap();
    let out = validate(&sb);
    assert_points_at(&out, &file, line, "duplicate");
    assert!(out.stderr.contains(&id), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("customer.cedar:{original_line})")),
        "names the first definition: {}",
        out.stderr
    );
}

#[test]
fn duplicate_policy_id_in_one_file() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "@id(\"twice\")\n\
         permit (principal in Role::\"support_agent\", action == Action::\"customer:list\", resource);\n\
         \n\
         @id(\"twice\")\n\
         permit (principal in Role::\"support_agent\", action == Action::\"customer:read\", resource);\n",
    );
    let at = lines_with(&file, "@id(\"twice\")");
    assert_eq!(at.len(), 2);
    let out = validate(&sb);
    // The second definition is the one to fix; the first is named beside it.
    assert_points_at(&out, &file, at[1], "duplicate");
    assert!(
        out.stderr
            .contains(&format!("support_agent.cedar:{})", at[0])),
        "names the first definition: {}",
        out.stderr
    );
}

#[test]
fn policy_without_id() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "// A policy nobody can cite in an audit record.\n\
         forbid (principal, action == Action::\"customer:list\", resource) when { context.purpose == \"no-id-case\" };\n",
    );
    let line = line_with(&file, "no-id-case");
    assert_points_at(&validate(&sb), &file, line, "@id");
}

// ------------------------------------------------------------ `run` itself

#[test]
fn run_refuses_to_start_on_a_broken_policy() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "@id(\"validation-error-case\")\n\
         permit (principal, action == Action::\"customer:read\", resource is Customer)\n\
         when { resource.no_such_attr == \"x\" };\n",
    );
    let line = line_with(&file, "no_such_attr");
    let out = fieldguard(&["run", "--config", sb.config.to_str().unwrap()]);
    assert_points_at(&out, &file, line, "no_such_attr");
    assert!(
        !out.stderr.contains("listening"),
        "it must not serve: {}",
        out.stderr
    );
}

#[test]
fn run_refuses_to_start_on_a_broken_config() {
    let sb = Sandbox::new();
    edit(&sb.config, "\nupstream:\n", "\nupstream:\n  retries: 3\n");
    let line = line_with(&sb.config, "retries: 3");
    let out = fieldguard(&["run", "--config", sb.config.to_str().unwrap()]);
    assert_points_at(&out, &sb.config, line, "retries");
    assert!(!out.stderr.contains("listening"), "{}", out.stderr);
}

// ------------------------------------------------ diagnostics for operators
//
// `fieldguard validate` renders a config or policy error as a diagnostic:
// the `file:line: reason` line, then the snippet with the file, line and
// column in its header and the offending text underlined, then help.

/// The run failed with a diagnostic at `file:line:column` whose help
/// contains `help`, underlining `snippet` on that line.
fn assert_diagnostic(out: &Outcome, file: &Path, line: usize, snippet: &str, help: &str) {
    assert!(!out.success, "expected failure; stderr: {}", out.stderr);
    let text = std::fs::read_to_string(file).unwrap();
    let source_line = text.lines().nth(line - 1).unwrap();
    let column = source_line[..source_line.find(snippet).expect("snippet on the line")]
        .chars()
        .count()
        + 1;
    let header = format!("[{}:{line}:{column}]", file.display());
    assert!(
        out.stderr.contains(&header),
        "no snippet header {header} in:\n{}",
        out.stderr
    );
    // The offending line is quoted under its number, and underlined.
    assert!(
        out.stderr.contains(&format!("{line} │ {source_line}")),
        "line {line} not quoted in:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("╰── here"), "{}", out.stderr);
    // Help may wrap at the report's width: compare without line breaks.
    let flat: String = out.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("help: {help}")),
        "no help {help:?} in:\n{}",
        out.stderr
    );
}

#[test]
fn diagnostic_for_a_misspelt_key_suggests_the_key() {
    let sb = Sandbox::new();
    // The first route with a `response:` section, misspelt.
    let text = std::fs::read_to_string(&sb.config).unwrap();
    let at = text
        .find("\n    response:\n")
        .expect("a route response section");
    let mut broken = text.clone();
    broken.replace_range(at..at + "\n    response:\n".len(), "\n    respones:\n");
    std::fs::write(&sb.config, broken).unwrap();
    let line = line_with(&sb.config, "    respones:");
    let out = validate(&sb);
    assert_points_at(&out, &sb.config, line, "unknown field `respones`");
    assert_diagnostic(
        &out,
        &sb.config,
        line,
        "respones",
        "did you mean `response`?",
    );
}

#[test]
fn diagnostic_for_an_unknown_resource_type_lists_the_schema_types() {
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(&sb.config).unwrap();
    std::fs::write(
        &sb.config,
        text.replacen(
            "resource: { type: Customer,",
            "resource: { type: Custmer,",
            1,
        ),
    )
    .unwrap();
    let line = line_with(&sb.config, "type: Custmer,");
    let out = validate(&sb);
    assert_points_at(&out, &sb.config, line, "route names entity `Custmer`");
    assert_diagnostic(
        &out,
        &sb.config,
        line,
        "Custmer",
        "did you mean `Customer`? known: BehaviorDirectory, BehaviorEvent, Customer,",
    );
}

#[test]
fn diagnostic_for_an_unknown_catalogue_entity_lists_the_catalogue() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "{ path: \"$.orders[*]\", entity: Order }\n      members:\n        $.customer_id",
        "{ path: \"$.orders[*]\", entity: Ordr }\n      members:\n        $.customer_id",
    );
    let line = line_with(&sb.config, "entity: Ordr }");
    let out = validate(&sb);
    assert_points_at(
        &out,
        &sb.config,
        line,
        "entity `Ordr` is not in the `entities` catalogue",
    );
    assert_diagnostic(
        &out,
        &sb.config,
        line,
        "Ordr",
        "did you mean `Order`? known: BehaviorEvent, Customer, Order, Ticket",
    );
}

#[test]
fn diagnostic_for_an_unknown_action_suggests_the_action() {
    let sb = Sandbox::new();
    edit(
        &sb.config,
        "action: customer:tickets",
        "action: customer:tikcets",
    );
    let line = line_with(&sb.config, "customer:tikcets");
    let out = validate(&sb);
    assert_diagnostic(
        &out,
        &sb.config,
        line,
        "customer:tikcets",
        "did you mean `customer:tickets`?",
    );
}

#[test]
fn diagnostic_for_a_bad_policy_underlines_it_with_cedars_help() {
    let sb = Sandbox::new();
    let file = sb.policy("support_agent.cedar");
    append(
        &file,
        "\n@id(\"misspelt-effect\")\npermt (\n  principal,\n  action,\n  resource\n);\n",
    );
    let line = line_with(&file, "permt (");
    let out = validate(&sb);
    assert_points_at(&out, &file, line, "invalid policy effect: permt");
    assert_diagnostic(
        &out,
        &file,
        line,
        "permt",
        "effect must be either `permit` or `forbid`",
    );
}
