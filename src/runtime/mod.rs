//! Everything a request needs, compiled from the configuration, the policy
//! and key files, and checked as a whole: the decisions (core crate), who
//! the callers are, and the bulk-read budgets. Built once at start-up (and
//! on reload); a [`Runtime`] that exists is complete and valid.

pub use fieldguard_core::decisions::{Decisions, Observer, ObserverKind};
pub use fieldguard_core::route::{IdSource, ResourceRule, Route};

mod describe;

use crate::config::LoadedConfig;
use crate::identity::Identifier;
use fieldguard_core::config::line_of;
use fieldguard_core::error::ConfigError;

pub struct Runtime {
    pub config: LoadedConfig,
    /// Policies, catalogue and routes: what decides each request.
    pub decisions: Decisions,
    pub identifier: Identifier,
    /// When this runtime was built (shown by `/policies`).
    pub loaded_at: std::time::SystemTime,
    /// Unique per runtime built in this process: what caches derived from
    /// one runtime (metric handles by field index) key on, since a reload
    /// renumbers fields.
    pub generation: u64,
    /// SHA-256 over the key files as read at build time
    /// ([`LoadedConfig::key_files`]): a reload whose config and policies are
    /// unchanged still swaps when a key was rotated.
    pub key_fingerprint: [u8; 32],
    /// The bulk-read budgets (their counters live in the proxy, so they
    /// survive reloads).
    pub budgets: crate::budget::Budgets,
    /// The id of the key whose signature this set carries (checked against
    /// `policies.verify_keys`); `None` when no verify keys are configured.
    pub signed_by: Option<String>,
}

/// Why a runtime was not built: a file that cannot be used, or a policy
/// set whose signature does not hold (counted apart, by reason).
#[derive(Debug)]
pub enum BuildError {
    Invalid(ConfigError),
    Refused(crate::policy_set::Refused),
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        Self::Invalid(e)
    }
}

impl From<BuildError> for ConfigError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Invalid(e) => e,
            BuildError::Refused(r) => r.error,
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config.file)
            .field("policy_version", &self.decisions.engine.bundle.version)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// What audit records of this runtime's requests name: its policy set
    /// and the key that signed it.
    pub fn decided_by(&self) -> crate::audit::DecidedBy<'_> {
        crate::audit::DecidedBy {
            decisions: &self.decisions,
            signed_by: self.signed_by.as_deref(),
        }
    }

    /// What the metrics read of this runtime.
    pub fn metrics_view(&self) -> crate::metrics::RuntimeView<'_> {
        crate::metrics::RuntimeView {
            decisions: &self.decisions,
            budgets: &self.budgets,
            identifier: &self.identifier,
            generation: self.generation,
        }
    }

    /// Loads policies and keys and compiles the config. Any error names a
    /// file and, where known, a line.
    pub fn build(loaded: LoadedConfig) -> Result<Self, ConfigError> {
        Self::build_checked(loaded).map_err(ConfigError::from)
    }

    /// As [`Runtime::build`], telling a refused signature apart.
    pub fn build_checked(loaded: LoadedConfig) -> Result<Self, BuildError> {
        let cfg = &loaded.config;
        if cfg.listeners.is_empty() {
            return Err(ConfigError::file(&loaded.file, "`listeners` is empty").into());
        }
        let mut decisions = Decisions::build(loaded.decision_config())?;
        // The version names the whole signed set, not only the policy files.
        let sections = &loaded.content.sections;
        let message = crate::policy_set::canonical(sections, &decisions.engine.bundle.sources);
        let version = crate::policy_set::version(&message);
        let expected = crate::policy_set::Expected {
            config_file: &loaded.file,
            verify_keys: (cfg.policies.verify_keys.iter())
                .map(|f| loaded.resolve(f))
                .collect(),
            signature_file: loaded.signature_file(),
        };
        let signed_by =
            crate::policy_set::check(&expected, &message, &version).map_err(BuildError::Refused)?;
        decisions.engine.bundle.version = version;
        // An observed set (shadow files, a candidate) is versioned the same
        // way, so its version compares with the enforced one's.
        if let Some(o) = &mut decisions.observer {
            o.engine.bundle.version = crate::policy_set::version(&crate::policy_set::canonical(
                sections,
                &o.engine.bundle.sources,
            ));
        }
        let identifier = Identifier::from_config(&cfg.identity, &loaded.base_dir, &loaded.file)?;
        upstream_url(&loaded)?;
        let budgets = crate::budget::Budgets::compile(&cfg.budgets)
            .map_err(|e| BuildError::Invalid(ConfigError::file(&loaded.file, e.to_string())))?;
        check_budget_store(&loaded)?;
        let key_fingerprint = fingerprint(&loaded.key_files());
        Ok(Self {
            decisions,
            identifier,
            config: loaded,
            loaded_at: std::time::SystemTime::now(),
            generation: next_generation(),
            key_fingerprint,
            budgets,
            signed_by,
        })
    }
}

/// The upstream base URL, checked: `http://host:port` with no path.
pub fn upstream_url(loaded: &LoadedConfig) -> Result<http::Uri, ConfigError> {
    let raw = &loaded.config.upstream.url;
    let err = |m: &str| ConfigError::new(&loaded.file, line_of(raw), format!("upstream.url: {m}"));
    let uri: http::Uri = raw.value.parse().map_err(|_| err("not a valid URL"))?;
    match (uri.scheme_str(), &loaded.config.upstream.tls) {
        (Some("http"), None) | (Some("https"), Some(_)) => {}
        (Some("https"), None) => {
            return Err(err(
                "https:// needs an `upstream.tls` section (with `ca_file`)",
            ));
        }
        (Some("http"), Some(_)) => {
            return Err(err("`upstream.tls` is set: use an https:// URL"));
        }
        _ => return Err(err("only http:// and https:// are supported")),
    }
    if uri.authority().is_none() {
        return Err(err("missing host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(err("must not have a path or query"));
    }
    Ok(uri)
}

/// `budgets.store`, checked without connecting: a URL, mode and files a
/// connection could use (the proxy connects before it serves).
fn check_budget_store(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    use crate::budget::config::StoreKind;
    let store = &loaded.config.budgets.store;
    match (store.kind, &store.redis) {
        (StoreKind::Memory, None) => Ok(()),
        (StoreKind::Memory, Some(_)) => Err(ConfigError::file(
            &loaded.file,
            "budgets.store: a `redis` section with `type: memory` (the default): set `type: redis` to use it, or remove it",
        )),
        (StoreKind::Redis, None) => Err(ConfigError::file(
            &loaded.file,
            "budgets.store: `type: redis` needs a `redis` section",
        )),
        (StoreKind::Redis, Some(r)) => {
            crate::budget::redis_store::RedisStore::check(r, loaded.origin())
        }
    }
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A digest of the files' paths and contents (an unreadable file counts as
/// its error, so it differs from any content).
fn fingerprint(files: &[std::path::PathBuf]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        match std::fs::read(f) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) => h.update(format!("unreadable: {e}")),
        }
    }
    h.finalize().into()
}
