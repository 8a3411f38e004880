//! Scratch git repositories for the tests of what reads git (`fieldguard
//! diff --base REV`, the CI recipe): real `git`, run in a temporary
//! folder, with an identity of its own.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir` (failing the test if git fails): its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits everything in `dir`.
pub fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// A repository holding a copy of the reference deployment (policies and
/// `examples/demo`), one commit ("base").
pub fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    super::copy_dir(&super::repo_path("policies"), &dir.path().join("policies"));
    super::copy_dir(
        &super::repo_path("examples/demo"),
        &dir.path().join("examples/demo"),
    );
    git(dir.path(), &["init", "-q"]);
    commit(dir.path(), "base");
    dir
}
