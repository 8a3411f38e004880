//! Everything a request needs, compiled from the configuration and policy
//! files and checked as a whole: routes, policies, catalogue, identity.
//! Built once at start-up (and, later, on reload); a [`Runtime`] that exists
//! is complete and valid.

mod route;

pub use route::{IdSource, ResourceRule, Route};

use crate::catalogue::Catalogue;
use crate::config::{LimitsConfig, LoadedConfig, UnmatchedPolicy, line_of};
use crate::error::ConfigError;
use crate::identity::Identifier;
use crate::policy::{Engine, load_bundle, load_bundle_except};
use crate::routing::Router;
use std::sync::Arc;

pub struct Runtime {
    pub config: LoadedConfig,
    pub engine: Engine,
    pub catalogue: Catalogue,
    pub identifier: Identifier,
    pub router: Router<Arc<Route>>,
    /// Every route in config order (for tools that enumerate them).
    pub routes: Vec<Arc<Route>>,
    pub unmatched: UnmatchedPolicy,
    pub limits: LimitsConfig,
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
    /// Shadow mode everywhere: nothing enforced, everything audited.
    pub shadow_all: bool,
    /// A second policy set decided beside the enforced one.
    pub observer: Option<Observer>,
}

/// A policy set evaluated beside the enforced one, never enforced.
pub struct Observer {
    pub kind: ObserverKind,
    pub engine: Engine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserverKind {
    /// The enforced set plus `policies.shadow_files`.
    ShadowPolicies,
    /// `policies.candidate`.
    Candidate,
}

impl ObserverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObserverKind::ShadowPolicies => "shadow_policies",
            ObserverKind::Candidate => "candidate",
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config.file)
            .field("policy_version", &self.engine.bundle.version)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Loads policies and compiles the config. Any error names a file and,
    /// where known, a line.
    pub fn build(loaded: LoadedConfig) -> Result<Self, ConfigError> {
        let cfg = &loaded.config;
        if cfg.listeners.is_empty() {
            return Err(ConfigError::file(&loaded.file, "`listeners` is empty"));
        }
        let shadow_all = cfg.shadow;
        let (dir, schema) = (
            loaded.resolve(&cfg.policies.directory),
            loaded.resolve(&cfg.policies.schema),
        );
        let engine_of = |bundle| Engine::new(bundle).map_err(|e| ConfigError::file(&schema, e));
        let engine = engine_of(load_bundle_except(
            &dir,
            &schema,
            &cfg.policies.shadow_files,
        )?)?;
        let observer = match (
            &cfg.policies.candidate,
            cfg.policies.shadow_files.is_empty(),
        ) {
            (Some(_), false) => {
                return Err(ConfigError::file(
                    &loaded.file,
                    "policies: use either `shadow_files` or `candidate`, not both",
                ));
            }
            (Some(c), true) => {
                let c_schema = c
                    .schema
                    .as_ref()
                    .map(|s| loaded.resolve(s))
                    .unwrap_or(schema.clone());
                Some(Observer {
                    kind: ObserverKind::Candidate,
                    engine: engine_of(load_bundle(&loaded.resolve(&c.directory), &c_schema)?)?,
                })
            }
            (None, false) => Some(Observer {
                kind: ObserverKind::ShadowPolicies,
                engine: engine_of(load_bundle(&dir, &schema)?)?,
            }),
            (None, true) => None,
        };
        let mut catalogue = Catalogue::build(&loaded)?;
        let identifier = Identifier::from_config(&cfg.identity, &loaded.base_dir, &loaded.file)?;
        let mut router = Router::new();
        let mut routes = Vec::new();
        for (position, rc) in cfg.routes.iter().enumerate() {
            let route = Arc::new(Route::compile(
                position,
                rc,
                &loaded,
                &engine,
                &mut catalogue,
            )?);
            routes.push(route.clone());
            router
                .insert(&rc.method.value, &rc.path.value, route)
                .map_err(|e| ConfigError::new(&loaded.file, line_of(&rc.path), e.to_string()))?;
        }
        upstream_url(&loaded)?;
        let key_fingerprint = fingerprint(&loaded.key_files());
        Ok(Self {
            engine,
            catalogue,
            identifier,
            router,
            routes,
            unmatched: cfg.unmatched,
            limits: cfg.limits.clone(),
            config: loaded,
            loaded_at: std::time::SystemTime::now(),
            generation: next_generation(),
            key_fingerprint,
            shadow_all,
            observer,
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
