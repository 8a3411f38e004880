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

/// Why the two sides cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(
        "--base {base} is a folder: give --config as a path relative to the current folder, read at the same place in both"
    )]
    FolderNeedsRelative { base: String },
    /// The current config does not load.
    #[error("{0}")]
    Current(fieldguard_core::error::ConfigError),
    #[error("base ({base}): {source}")]
    Base {
        base: String,
        source: fieldguard_core::error::ConfigError,
    },
    /// A side that loads but does not build: `side` is `current` or
    /// `base (REV)`.
    #[error("{side}: {source}")]
    Build {
        side: String,
        source: fieldguard_core::error::ConfigError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--base {rev}: {} is not in a git repository (give --base a folder, or run in the repository)",
        config.display()
    )]
    NotInRepository { rev: String, config: PathBuf },
    #[error("--base {rev}: unknown revision in {}", top.display())]
    UnknownRevision { rev: String, top: PathBuf },
    #[error("{} is outside {}", file.display(), top.display())]
    Outside { file: PathBuf, top: PathBuf },
    #[error("cannot run git archive: {0}")]
    RunArchive(std::io::Error),
    #[error("git archive: no output")]
    NoArchiveOutput,
    #[error("cannot run tar: {0}")]
    RunTar(std::io::Error),
    #[error("git archive: {0}")]
    Archive(std::io::Error),
    /// `stderr`: what git and tar said, as they said it.
    #[error("cannot read revision {rev}: {stderr}")]
    Unreadable { rev: String, stderr: String },
    #[error("--base {rev}: {} does not exist at that revision", rel.display())]
    NotAtRevision { rev: String, rel: PathBuf },
}

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
enum GitError {
    #[error("cannot run git: {0}")]
    Run(std::io::Error),
    /// What git wrote to stderr, as it wrote it.
    #[error("{0}")]
    Failed(String),
}

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
pub fn load(config: &Path, base: &str) -> Result<Sides, BaseError> {
    let current = load_config(config).map_err(BaseError::Current)?;
    let (base_config, scratch) = if Path::new(base).is_dir() {
        if config.is_absolute() {
            return Err(BaseError::FolderNeedsRelative {
                base: base.to_string(),
            });
        }
        (Path::new(base).join(config), None)
    } else {
        let (file, scratch) = from_git(config, base)?;
        (file, Some(scratch))
    };
    let mut base_loaded = load_config(&base_config).map_err(|source| BaseError::Base {
        base: base.to_string(),
        source,
    })?;
    borrow_keys(&mut base_loaded, &current);
    let build = |l: LoadedConfig, side: &str| {
        Runtime::build(l).map_err(|source| BaseError::Build {
            side: side.to_string(),
            source,
        })
    };
    Ok(Sides {
        base: build(base_loaded, &format!("base ({base})"))?,
        current: build(current, "current")?,
        _scratch: scratch,
    })
}

fn load_config(file: &Path) -> Result<LoadedConfig, fieldguard_core::error::ConfigError> {
    let mut l = config::load(file)?;
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

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(GitError::Run)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(GitError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The config file of revision `rev`, in a scratch folder holding that
/// revision's tree.
fn from_git(config: &Path, rev: &str) -> Result<(PathBuf, Scratch), BaseError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BaseError::Io { path, source }
    };
    let file = std::fs::canonicalize(config).map_err(io(config))?;
    let dir = file.parent().unwrap_or(Path::new("/"));
    let top =
        git(dir, &["rev-parse", "--show-toplevel"]).map_err(|_| BaseError::NotInRepository {
            rev: rev.to_string(),
            config: config.to_path_buf(),
        })?;
    let top = std::fs::canonicalize(&top).map_err(io(Path::new(&top)))?;
    // Never an option to git, whatever the argument says.
    let unknown = || BaseError::UnknownRevision {
        rev: rev.to_string(),
        top: top.clone(),
    };
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
        .map_err(|_| BaseError::Outside {
            file: file.clone(),
            top: top.clone(),
        })?
        .to_path_buf();
    // A new folder of a random name (create_dir fails on anything already
    // there, e.g. a link planted in a shared temp folder).
    let scratch = std::env::temp_dir().join(format!("fieldguard-diff-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&scratch).map_err(io(&scratch))?;
    let scratch = Scratch(scratch);
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", &commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BaseError::RunArchive)?;
    let tar_in = archive.stdout.take().ok_or(BaseError::NoArchiveOutput)?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&scratch.0)
        .stdin(tar_in)
        .output()
        .map_err(BaseError::RunTar)?;
    let archived = archive.wait_with_output().map_err(BaseError::Archive)?;
    if !archived.status.success() || !tar.status.success() {
        return Err(BaseError::Unreadable {
            rev: rev.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&archived.stderr).trim(),
                String::from_utf8_lossy(&tar.stderr).trim()
            ),
        });
    }
    let base = scratch.0.join(&rel);
    if !base.is_file() {
        return Err(BaseError::NotAtRevision {
            rev: rev.to_string(),
            rel,
        });
    }
    Ok((base, scratch))
}
