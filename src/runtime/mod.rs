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
use crate::policy::{Engine, load_bundle};
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
        let bundle = load_bundle(
            &loaded.resolve(&cfg.policies.directory),
            &loaded.resolve(&cfg.policies.schema),
        )?;
        let engine = Engine::new(bundle)
            .map_err(|e| ConfigError::file(loaded.resolve(&cfg.policies.schema), e))?;
        let catalogue = Catalogue::build(&loaded)?;
        let identifier = Identifier::from_config(&cfg.identity, &loaded.base_dir, &loaded.file)?;
        let mut router = Router::new();
        let mut routes = Vec::new();
        for (position, rc) in cfg.routes.iter().enumerate() {
            let route = Arc::new(Route::compile(position, rc, &loaded, &engine, &catalogue)?);
            routes.push(route.clone());
            router
                .insert(&rc.method.value, &rc.path.value, route)
                .map_err(|e| ConfigError::new(&loaded.file, line_of(&rc.path), e.to_string()))?;
        }
        upstream_url(&loaded)?;
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
