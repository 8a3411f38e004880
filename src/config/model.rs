//! The configuration file's shape. Defaults are the safe choice: deny
//! unmatched routes, bounded bodies, upstream on loopback.

use crate::identity::IdentityConfig;
use fieldguard_core::config::*;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect (HTTP/1.1 and h2c on the same port).
    pub listeners: Vec<ListenerConfig>,
    /// TLS termination on the listeners (CDM-4.2.1). Absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    pub identity: IdentityConfig,
    pub policies: PoliciesConfig,
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// What happens to a request no route matches. `deny` unless an operator
    /// explicitly chooses `passthrough`.
    #[serde(default)]
    pub unmatched: UnmatchedPolicy,
    /// Shadow mode for everything: decisions and redactions are computed and
    /// audited (`would_deny`, `would_redact`) but not enforced. For putting
    /// fieldguard in front of a live legacy API on day one.
    #[serde(default)]
    pub shadow: bool,
    pub routes: Vec<RouteConfig>,
    /// The field catalogue, by Cedar entity type.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityConfig>,
    /// The tamper-evident audit trail (CDM-4.2.3). Absent: records go to
    /// stdout, never nowhere.
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// Bulk-read budgets per role (CDM-1.2.3): how much a principal may
    /// be disclosed within a sliding window. Absent: none.
    #[serde(default)]
    pub budgets: crate::budget::BudgetsConfig,
    /// The operators' listener: metrics, health, loaded policies.
    #[serde(default)]
    pub admin: crate::admin::AdminConfig,
    /// Hot reload of this file, the schema and the policies.
    #[serde(default)]
    pub reload: ReloadConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` of the protected service (plain HTTP to a loopback
    /// service is the sidecar default).
    pub url: Spanned<String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    #[serde(default = "default_pool_idle_timeout_ms")]
    pub pool_idle_timeout_ms: u64,
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Forward the client's `Host` header (legacy services often route or
    /// build links by it). When false the upstream's own authority is sent.
    #[serde(default = "default_true")]
    pub preserve_host: bool,
    /// TLS toward an `https://` upstream (required for one).
    #[serde(default)]
    pub tls: Option<crate::tls::UpstreamTlsConfig>,
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_response_timeout_ms() -> u64 {
    30_000
}
fn default_pool_idle_timeout_ms() -> u64 {
    90_000
}
fn default_pool_max_idle() -> usize {
    256
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the config file, the policy folder and the schema for changes.
    /// SIGHUP and `POST /reload` (admin listener) work either way.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Quiet period after a change before reloading (one change often
    /// writes several files).
    #[serde(default = "default_reload_debounce_ms")]
    pub debounce_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            debounce_ms: default_reload_debounce_ms(),
        }
    }
}

fn default_reload_debounce_ms() -> u64 {
    300
}
