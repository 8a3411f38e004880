//! The two sides of a diff, built as the proxy builds them. The base is
//! either a folder with the same layout (the config read at
//! `BASE/<--config as given>`) or a git revision of the repository the
//! config is in, read with `git archive` into a temporary folder: nothing
//! is checked out, the working tree is untouched.
//!
//! What does not decide access is made equal on both sides so that a side
//! can be built wherever it is read: signatures are not required (`diff`
//! reviews, it does not deploy), the budget store is the in-memory one,
//! and key files the base lacks (secrets are rarely committed) are the
//! current config's.

use crate::config::{self, LoadedConfig};
use crate::runtime::Runtime;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A folder removed when dropped (the extracted revision).
pub struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Both sides, built.
pub struct Sides {
    pub base: Runtime,
    pub current: Runtime,
    /// Holds the extracted revision until the report is made.
    _scratch: Option<Scratch>,
}

/// Loads the current config and the base named by `base`.
pub fn load(config: &Path, base: &str) -> Result<Sides, String> {
    let current = load_config(config)?;
    let (base_config, scratch) = if Path::new(base).is_dir() {
        if config.is_absolute() {
            return Err(format!(
                "--base {base} is a folder: give --config as a path relative to the current folder, read at the same place in both"
            ));
        }
        (Path::new(base).join(config), None)
    } else {
        let (file, scratch) = from_git(config, base)?;
        (file, Some(scratch))
    };
    let mut base_loaded = load_config(&base_config).map_err(|e| format!("base ({base}): {e}"))?;
    borrow_keys(&mut base_loaded, &current);
    let build = |l: LoadedConfig, side: &str| Runtime::build(l).map_err(|e| format!("{side}: {e}"));
    Ok(Sides {
        base: build(base_loaded, &format!("base ({base})"))?,
        current: build(current, "current")?,
        _scratch: scratch,
    })
}

fn load_config(file: &Path) -> Result<LoadedConfig, String> {
    let mut l = config::load(file).map_err(|e| e.to_string())?;
    l.config.policies.verify_keys.clear();
    l.config.budgets.store = Default::default();
    Ok(l)
}

/// Key files the base names but does not have: the current config's.
fn borrow_keys(base: &mut LoadedConfig, current: &LoadedConfig) {
    let missing =
        |l: &LoadedConfig, p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !l.resolve(p).exists());
    let resolved = |p: &Option<PathBuf>| p.as_ref().map(|p| current.resolve(p));
    if let (Some(b), Some(c)) = (
        base.config.identity.jwt.clone(),
        &current.config.identity.jwt,
    ) {
        let mut b = b;
        if missing(base, &b.hs256_secret_file) {
            b.hs256_secret_file = resolved(&c.hs256_secret_file);
        }
        if missing(base, &b.jwks_file) {
            b.jwks_file = resolved(&c.jwks_file);
        }
        if b.public_keys
            .iter()
            .any(|k| !base.resolve(&k.file).exists())
        {
            b.public_keys = c.public_keys.clone();
            for k in &mut b.public_keys {
                k.file = current.resolve(&k.file);
            }
        }
        base.config.identity.jwt = Some(b);
    }
    if missing(base, &base.config.redaction.hash_key_file.clone()) {
        base.config.redaction.hash_key_file = resolved(&current.config.redaction.hash_key_file);
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The config file of revision `rev`, in a scratch folder holding that
/// revision's tree.
fn from_git(config: &Path, rev: &str) -> Result<(PathBuf, Scratch), String> {
    let file = std::fs::canonicalize(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let dir = file.parent().unwrap_or(Path::new("/"));
    let top = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|_| {
        format!(
            "--base {rev}: {} is not in a git repository (give --base a folder, or run in the repository)",
            config.display()
        )
    })?;
    let top = std::fs::canonicalize(&top).map_err(|e| format!("{top}: {e}"))?;
    // Never an option to git, whatever the argument says.
    let unknown = || format!("--base {rev}: unknown revision in {}", top.display());
    if rev.starts_with('-') {
        return Err(unknown());
    }
    let commit = git(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| unknown())?;
    let rel = file
        .strip_prefix(&top)
        .map_err(|_| format!("{} is outside {}", file.display(), top.display()))?
        .to_path_buf();
    // A new folder of a random name (create_dir fails on anything already
    // there, e.g. a link planted in a shared temp folder).
    let scratch = std::env::temp_dir().join(format!("fieldguard-diff-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let scratch = Scratch(scratch);
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", &commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git archive: {e}"))?;
    let tar_in = archive.stdout.take().ok_or("git archive: no output")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&scratch.0)
        .stdin(tar_in)
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let archived = archive
        .wait_with_output()
        .map_err(|e| format!("git archive: {e}"))?;
    if !archived.status.success() || !tar.status.success() {
        return Err(format!(
            "cannot read revision {rev}: {}{}",
            String::from_utf8_lossy(&archived.stderr).trim(),
            String::from_utf8_lossy(&tar.stderr).trim()
        ));
    }
    let base = scratch.0.join(&rel);
    if !base.is_file() {
        return Err(format!(
            "--base {rev}: {} does not exist at that revision",
            rel.display()
        ));
    }
    Ok((base, scratch))
}
