//! The process log as a pod's log pipeline sees it: the real binary with
//! stderr on a pipe (not a terminal). Text carries no colour codes; JSON
//! is one object per line, the start-up notices and the final error
//! included; a bad FIELDGUARD_LOG_FORMAT stops start-up.
//!
//! `fieldguard run` is made to stop by itself: its listener's port is
//! already taken, so it loads the policies, binds the admin listener, logs,
//! and exits with "cannot listen" (no signal, no timing).

mod common;

use common::repo_path;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The reference config with absolute paths, its listener on `busy`'s
/// (taken) port, the admin listener on an ephemeral port and the audit log
/// in `dir`.
fn config_on_busy_port(dir: &Path, busy: &TcpListener) -> PathBuf {
    let mut text =
        common::reference_config_text(&busy.local_addr().unwrap().to_string(), "127.0.0.1:9000");
    text.push_str(&format!(
        "\naudit:\n  file: {}\n  stdout: false\nadmin:\n  address: 127.0.0.1:0\nreload:\n  watch: false\n",
        dir.join("audit.log").display()
    ));
    let path = dir.join("fieldguard.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `fieldguard run` to its "cannot listen" exit; `args` go before
/// `--config`, `env` is added to a cleaned logging environment.
fn run_until_it_fails(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config_on_busy_port(dir.path(), &busy);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldguard"));
    cmd.arg("run")
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("FIELDGUARD_LOG_FORMAT")
        .env("FIELDGUARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    drop(busy);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "run should fail on a taken port");
    (out, stderr)
}

#[test]
fn text_log_has_no_colour_codes_off_a_terminal() {
    let (_, stderr) = run_until_it_fails(&[], &[]);
    assert!(stderr.contains("policies loaded"), "{stderr}");
    assert!(stderr.contains("fieldguard admin on http://"), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in:\n{stderr}");
}

/// Every stderr line as JSON; panics naming a line that is not.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn assert_json_log(stderr: &str) {
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in:\n{stderr}");
    let lines = json_lines(stderr);
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_string();
    let has = |level: &str, text: &str| {
        lines
            .iter()
            .any(|l| l["level"] == level && message(l).contains(text))
    };
    assert!(has("INFO", "policies loaded"), "{stderr}");
    assert!(has("INFO", "fieldguard admin on http://"), "{stderr}");
    assert!(has("ERROR", "cannot listen on"), "{stderr}");
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
}

#[test]
fn json_log_is_one_object_per_line_with_the_option() {
    let (_, stderr) = run_until_it_fails(&["--log-format", "json"], &[]);
    assert_json_log(&stderr);
}

#[test]
fn json_log_from_the_environment_as_the_helm_chart_sets_it() {
    let (_, stderr) = run_until_it_fails(&[], &[("FIELDGUARD_LOG_FORMAT", "json")]);
    assert_json_log(&stderr);
}

#[test]
fn the_option_wins_over_the_environment() {
    let (_, stderr) = run_until_it_fails(
        &["--log-format", "text"],
        &[("FIELDGUARD_LOG_FORMAT", "json")],
    );
    assert!(stderr.contains("fieldguard: cannot listen on"), "{stderr}");
    assert!(serde_json::from_str::<serde_json::Value>(stderr.lines().next().unwrap()).is_err());
}

#[test]
fn an_unknown_log_format_stops_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["validate", "--config"])
        .arg(repo_path("examples/demo/fieldguard.yaml"))
        .env("FIELDGUARD_LOG_FORMAT", "logfmt")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FIELDGUARD_LOG_FORMAT=\"logfmt\": expected `text` or `json`"),
        "{stderr}"
    );
}
