//! Everything a request's decisions need, compiled from the configuration
//! and the policy files and checked as a whole: the policy set (and an
//! observed one beside it), the field catalogue, the routes and the route
//! table. Built at start-up and on reload; a [`Decisions`] that exists is
//! complete and valid. The serving parts (identity, budgets, the audit
//! trail) are built beside it in the proxy crate.

use crate::catalogue::Catalogue;
use crate::config::{DecisionConfig, LimitsConfig, UnmatchedPolicy, line_of};
use crate::error::ConfigError;
use crate::policy::{Engine, load_bundle, load_bundle_except};
use crate::route::{Route, RouteEntry};
use crate::routing::Router;
use std::sync::Arc;

pub struct Decisions {
    pub engine: Engine,
    pub catalogue: Catalogue,
    pub router: Router<RouteEntry>,
    /// Every protected route in config order (for tools that enumerate
    /// them; passthrough routes are only in the router).
    pub routes: Vec<Arc<Route>>,
    pub unmatched: UnmatchedPolicy,
    pub limits: LimitsConfig,
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

impl std::fmt::Debug for Decisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decisions")
            .field("policy_version", &self.engine.bundle.version)
            .finish_non_exhaustive()
    }
}

impl Decisions {
    /// Loads the policies and compiles the catalogue and the routes. Any
    /// error names a file and, where known, a line.
    pub fn build(cfg: DecisionConfig<'_>) -> Result<Self, ConfigError> {
        let (dir, schema) = (
            cfg.resolve(&cfg.policies.directory),
            cfg.resolve(&cfg.policies.schema),
        );
        let engine_of =
            |bundle| Engine::new(bundle).map_err(|e| ConfigError::file(&schema, e.to_string()));
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
                    cfg.file,
                    "policies: use either `shadow_files` or `candidate`, not both",
                ));
            }
            (Some(c), true) => {
                let c_schema = c
                    .schema
                    .as_ref()
                    .map(|s| cfg.resolve(s))
                    .unwrap_or(schema.clone());
                Some(Observer {
                    kind: ObserverKind::Candidate,
                    engine: engine_of(load_bundle(&cfg.resolve(&c.directory), &c_schema)?)?,
                })
            }
            (None, false) => Some(Observer {
                kind: ObserverKind::ShadowPolicies,
                engine: engine_of(load_bundle(&dir, &schema)?)?,
            }),
            (None, true) => None,
        };
        let mut catalogue = Catalogue::build(&cfg)?;
        let mut router = Router::new();
        let mut routes = Vec::new();
        for (position, rc) in cfg.routes.iter().enumerate() {
            let entry = Route::compile(position, rc, &cfg, &engine, &mut catalogue)?;
            if let RouteEntry::Protected(route) = &entry {
                routes.push(route.clone());
            }
            router
                .insert(&rc.method.value, &rc.path.value, entry)
                .map_err(|e| ConfigError::new(cfg.file, line_of(&rc.path), e.to_string()))?;
        }
        Ok(Self {
            engine,
            catalogue,
            router,
            routes,
            unmatched: cfg.unmatched,
            limits: cfg.limits.clone(),
            shadow_all: cfg.shadow,
            observer,
        })
    }
}
