//! Hot reload of the configuration, schema and policies, without a restart.
//!
//! Triggers: a change under the watched files and folders (`notify`; a
//! Kubernetes ConfigMap's `..data` symlink swap shows up as a change in its
//! folder), SIGHUP, and `POST /reload` on the admin listener. A reload
//! builds a complete [`Runtime`] first and swaps it in only if everything
//! is valid; requests in flight finish on the runtime they started with. A
//! bad change keeps the last good set running, and its error (file, line,
//! reason) is logged, counted and shown by `/policies`.
//!
//! What a reload does not change: listeners, TLS, the upstream, the admin
//! listener and the audit sink are bound at start; changes to them are
//! logged as needing a restart.

use super::Proxy;
use crate::config::{self, LoadedConfig};
use crate::runtime::{BuildError, Runtime};
use fieldguard_core::error::ConfigError;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Adjusts a freshly read config before it is built (the demo overrides its
/// addresses and policy folder this way).
pub type Adjust = Box<dyn Fn(&mut LoadedConfig) + Send + Sync>;

#[derive(Default)]
pub struct ReloadState {
    source: Mutex<Option<Source>>,
    last: Mutex<LastReload>,
}

struct Source {
    config: PathBuf,
    adjust: Adjust,
}

/// The outcome of the most recent reload attempt.
#[derive(Debug, Clone, Default)]
pub struct LastReload {
    pub at: Option<SystemTime>,
    /// `file:line: reason` of the last failed attempt, cleared by a success.
    pub error: Option<String>,
    pub attempts: u64,
}

/// Why a reload did not swap the runtime; the previous one keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A config, schema, policy or key file cannot be used.
    #[error(transparent)]
    Invalid(#[from] fieldguard_core::error::ConfigError),
    /// Built in a test or embedded without a file (no `set_reload_source`).
    #[error("this proxy has no configuration file to reload from")]
    NoSource,
    /// A thread panicked while holding the reload state.
    #[error("reload state poisoned")]
    Poisoned,
}

/// The file watcher cannot start (`reload.watch: true`): start-up stops,
/// since the operator asked for reloads that would silently not happen.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.as_ref().map_or("files".to_string(), |p| p.display().to_string()))]
pub struct WatchError {
    pub path: Option<PathBuf>,
    pub source: notify::Error,
}

/// Why a reload was asked for (for logs).
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Watch,
    Signal,
    Admin,
}

impl Proxy {
    /// Remembers where the runtime came from, so it can be rebuilt.
    pub fn set_reload_source(&self, config: PathBuf, adjust: Adjust) {
        if let Ok(mut s) = self.reload.source.lock() {
            *s = Some(Source { config, adjust });
        }
    }

    pub fn last_reload(&self) -> LastReload {
        self.reload
            .last
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Rebuilds and swaps the runtime. Watch-triggered reloads skip sets
    /// identical to the active one; explicit ones always rebuild. Returns
    /// the active policy version.
    pub fn reload(&self, trigger: Trigger) -> Result<String, ReloadError> {
        let built = {
            let source = self
                .reload
                .source
                .lock()
                .map_err(|_| ReloadError::Poisoned)?;
            let Some(src) = source.as_ref() else {
                return Err(ReloadError::NoSource);
            };
            config::load(&src.config)
                .map_err(BuildError::Invalid)
                .and_then(|mut loaded| {
                    (src.adjust)(&mut loaded);
                    Runtime::build_checked(loaded)
                })
        };
        if let Err(BuildError::Refused(r)) = &built {
            self.metrics.policy_signature_refused(r.reason);
        }
        let built = built.map_err(ConfigError::from);
        let mut last = self.reload.last.lock().map_err(|_| ReloadError::Poisoned)?;
        last.attempts += 1;
        last.at = Some(SystemTime::now());
        // A changed `budgets.store` connects before anything is swapped: a
        // store that cannot be used refuses the reload (the running one
        // keeps counting); an unchanged one keeps its connection.
        let built = built.and_then(|rt| self.configure_budget_store(&rt).map(|()| rt));
        match built {
            Ok(rt) => {
                let active = self.runtime();
                if matches!(trigger, Trigger::Watch) && same_set(&active, &rt) {
                    last.error = None;
                    return Ok(active.decisions.engine.bundle.version.clone());
                }
                warn_restart_only(&active.config, &rt.config);
                let version = rt.decisions.engine.bundle.version.clone();
                self.swap_runtime(rt);
                last.error = None;
                // Once per reload that swapped, at the default level: an
                // operator sees that the change took (a refused one is an
                // error below).
                crate::logging::notice(format_args!(
                    "fieldguard: reloaded ({trigger:?}): policy set version {version}"
                ));
                Ok(version)
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(
                    ?trigger,
                    "reload refused, the previous set keeps serving: {msg}"
                );
                self.metrics.policy_load_failed();
                last.error = Some(msg);
                Err(ReloadError::Invalid(e))
            }
        }
    }
}

impl Proxy {
    /// The budget store `rt` names, connected (from the blocking thread a
    /// reload runs on).
    fn configure_budget_store(&self, rt: &Runtime) -> Result<(), ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::file(
                &rt.config.file,
                "budgets.store: a reload outside the proxy's runtime cannot connect the store",
            )
        })?;
        handle.block_on(self.budgets.configure(
            &rt.config.config.budgets.store,
            rt.config.origin(),
            false,
        ))
    }
}

/// Same policies and schema, configuration text and keys, by content:
/// nothing to swap.
fn same_set(a: &Runtime, b: &Runtime) -> bool {
    a.decisions.engine.bundle.version == b.decisions.engine.bundle.version
        && a.key_fingerprint == b.key_fingerprint
        && a.config.content.sha256 == b.config.content.sha256
}

/// Sections bound at start: a reload cannot apply them.
const RESTART_ONLY: [&str; 5] = ["listeners", "upstream", "tls", "admin", "audit"];

fn warn_restart_only(old: &LoadedConfig, new: &LoadedConfig) {
    for section in RESTART_ONLY {
        if old.content.section_changed(&new.content, section) {
            tracing::warn!("`{section}` changed: it takes effect on restart, not on reload");
        }
    }
}

/// Which changed paths can matter. The watched folders may hold other busy
/// files (an audit log beside the config): their writes must not wake the
/// reloader on every request.
struct Relevant {
    /// (folder as watched, file name) of the config and the schema.
    files: Vec<(PathBuf, std::ffi::OsString)>,
    policy_dir: PathBuf,
}

impl Relevant {
    fn of(rt: &Runtime) -> Self {
        let cfg = &rt.config;
        let split = |p: &Path| {
            (
                canonical_folder(p),
                p.file_name().map(|n| n.to_os_string()).unwrap_or_default(),
            )
        };
        let mut files = vec![
            split(&cfg.file),
            split(&cfg.resolve(&cfg.config.policies.schema)),
        ];
        files.extend(cfg.key_files().iter().map(|f| split(f)));
        Self {
            files,
            policy_dir: canonical(&cfg.resolve(&cfg.config.policies.directory)),
        }
    }

    /// The config, schema or a key file, anything in the policy folder, or a
    /// Kubernetes ConfigMap's `..data` / `..<timestamp>` entries (swapped
    /// to update every file at once). Event paths are the watched (canonical)
    /// folder joined with a name, so no file-system call is needed here.
    fn matches(&self, path: &Path) -> bool {
        let (parent, name) = (path.parent(), path.file_name());
        self.files
            .iter()
            .any(|(dir, file)| parent == Some(dir.as_path()) && name == Some(file.as_os_str()))
            || parent == Some(self.policy_dir.as_path())
            || name
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".."))
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

fn canonical_folder(p: &Path) -> PathBuf {
    canonical(p.parent().unwrap_or_else(|| Path::new(".")))
}

/// What a change under which reloads: the config file's folder, the policy
/// folder, the schema's and the key files' folders (folders, so symlink
/// swaps are seen).
fn watched_paths(rt: &Runtime) -> Vec<PathBuf> {
    let cfg = &rt.config;
    // Canonical, so event paths compare equal to [`Relevant`]'s.
    let mut paths = vec![
        canonical_folder(&cfg.file),
        canonical(&cfg.resolve(&cfg.config.policies.directory)),
        canonical_folder(&cfg.resolve(&cfg.config.policies.schema)),
    ];
    paths.extend(cfg.key_files().iter().map(|f| canonical_folder(f)));
    paths.sort();
    paths.dedup();
    paths
}

/// Watches the files the runtime came from and reloads on change, after a
/// short quiet period (editors and ConfigMap updates write several files).
/// The returned watcher must be kept alive.
pub fn watch(
    proxy: Arc<Proxy>,
    debounce: Duration,
) -> Result<notify::RecommendedWatcher, WatchError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let relevant = Relevant::of(&proxy.runtime());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(|p| relevant.matches(p))) {
            let _ = tx.send(());
        }
    })
    .map_err(|source| WatchError { path: None, source })?;
    for path in watched_paths(&proxy.runtime()) {
        watcher
            .watch(&path, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: Some(path.clone()),
                source,
            })?;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Quiet period: absorb the burst of events of one change.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let p = proxy.clone();
            let _ = tokio::task::spawn_blocking(move || p.reload(Trigger::Watch)).await;
        }
    });
    Ok(watcher)
}

/// Reloads on every SIGHUP until the task is dropped.
pub async fn reload_on_sighup(proxy: Arc<Proxy>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP; reload with POST /reload instead");
            return;
        };
        while hup.recv().await.is_some() {
            let p = proxy.clone();
            let _ = tokio::task::spawn_blocking(move || p.reload(Trigger::Signal)).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = proxy;
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference deployment, from `text` written beside the real file
    /// (so its relative paths resolve).
    fn runtime_of(text: &str, dir: &Path) -> Runtime {
        let file = dir.join("fieldguard.yaml");
        std::fs::write(&file, text).unwrap();
        Runtime::build(config::load(&file).unwrap()).unwrap()
    }

    fn reference_text() -> (String, PathBuf) {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
        let text = std::fs::read_to_string(demo.join("fieldguard.yaml")).unwrap();
        (text, demo)
    }

    #[test]
    fn a_rebuild_is_the_same_set_only_when_the_content_is() {
        let (text, demo) = reference_text();
        let dir = tempfile::tempdir().unwrap();
        let text = text
            .replace(
                "../../policies",
                &demo.join("../../policies").display().to_string(),
            )
            .replace("secrets/", &format!("{}/secrets/", demo.display()));
        let a = runtime_of(&text, dir.path());
        let b = runtime_of(&text, dir.path());
        assert!(same_set(&a, &b));
        // Only a limit changes (same policies, same keys): a different set.
        let c = runtime_of(
            &text.replace(
                "max_request_body_bytes: 65536",
                "max_request_body_bytes: 65537",
            ),
            dir.path(),
        );
        assert!(!same_set(&a, &c));
    }

    #[test]
    fn restart_only_sections_are_compared_by_content() {
        let base = "listeners:\n  - address: 127.0.0.1:8080\nupstream: { url: http://127.0.0.1:9000, connect_timeout_ms: 5 }\n";
        let moved = "upstream: { connect_timeout_ms: 5, url: http://127.0.0.1:9000 }\n\n\nlisteners:\n  - address: 127.0.0.1:8080\n";
        let other = "listeners:\n  - address: 127.0.0.1:8081\nupstream: { url: http://127.0.0.1:9000, connect_timeout_ms: 5 }\n";
        let (a, b, c) = (
            config::Content::of(base),
            config::Content::of(moved),
            config::Content::of(other),
        );
        assert!(!a.section_changed(&b, "listeners") && !a.section_changed(&b, "upstream"));
        assert!(a.section_changed(&c, "listeners") && !a.section_changed(&c, "upstream"));
        assert_ne!(a.sha256, b.sha256);
    }
}
