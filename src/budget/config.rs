//! The `budgets:` section of the configuration: bulk-read budgets per role
//! (CDM-1.2.3 prevent abuse and leakage; the source text's insider duty).
//!
//! ```yaml
//! budgets:
//!   mode: enforce              # or shadow: count and flag, never refuse
//!   max_counters: 100000       # memory bound (principal x budget counters)
//!   roles:
//!     support_agent:
//!       # mode: shadow          # per-role override
//!       limits:
//!         - id: support-records-day
//!           count: records      # records disclosed, or `fields` shown in full
//!           window_seconds: 86400
//!           limit: 300
//!           on_exceed: refuse   # or alert (metric and audit flag only)
//!           # scope: principal  # or role: every caller of the role together
//!           # category: identity   # fields only: of this category
//!           # min_level: 3         # fields only: of this level or higher
//!           # on_store_error: refuse  # overrides budgets.on_store_error
//! ```
//!
//! A fleet of replicas counts in one shared store ([`StoreConfig`]):
//!
//! ```yaml
//! budgets:
//!   replicas: 3                # the fleet's size: `local` divides limits by it
//!   on_store_error: local      # local | refuse | allow, when the store fails
//!   store:
//!     type: redis              # memory (the default: this process alone)
//!     redis:
//!       url: redis://valkey:6379/0
//!       password_file: /etc/fieldguard/budget-store/password
//! ```

use fieldguard_core::config::{Category, Level};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// `enforce` (refusing budgets refuse) or `shadow` (nothing is refused;
    /// what would be is flagged `would_refuse`).
    #[serde(default)]
    pub mode: BudgetMode,
    /// Counters held at most (one per principal and budget, one per
    /// role-scoped budget). Beyond it, principals new to a budget share
    /// one overflow counter per budget, which fills faster: the bound
    /// fails towards refusing, never towards forgetting.
    #[serde(default = "default_max_counters")]
    pub max_counters: usize,
    /// Budgets by role name (as in the tokens' roles claim).
    #[serde(default)]
    pub roles: BTreeMap<String, RoleBudgetsConfig>,
    /// Where the counts live: this process's memory, or a store every
    /// replica shares.
    #[serde(default)]
    pub store: StoreConfig,
    /// How many replicas serve the same principals. Only the `local`
    /// fallback uses it: while the shared store is unreachable each
    /// replica allows `limit / replicas`, so the fleet together stays
    /// within the limit.
    #[serde(default = "default_replicas")]
    pub replicas: u64,
    /// What a budget does while the shared store is unreachable (each
    /// budget may override it).
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            mode: BudgetMode::default(),
            max_counters: default_max_counters(),
            roles: BTreeMap::new(),
            store: StoreConfig::default(),
            replicas: default_replicas(),
            on_store_error: OnStoreError::default(),
        }
    }
}

fn default_max_counters() -> usize {
    100_000
}

fn default_replicas() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBudgetsConfig {
    /// Overrides `budgets.mode` for this role's limits.
    pub mode: Option<BudgetMode>,
    pub limits: Vec<LimitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Unique across all roles: named in 429 errors, audit records and
    /// the `budget` label of metrics.
    pub id: String,
    pub count: Counted,
    /// For `count: fields`: only fields of this category.
    pub category: Option<Category>,
    /// For `count: fields`: only fields of this sensitivity level or higher.
    pub min_level: Option<Level>,
    /// The sliding window the count covers.
    pub window_seconds: u64,
    /// The most a principal (or the role, with `scope: role`) may be
    /// disclosed within the window.
    pub limit: u64,
    pub on_exceed: OnExceed,
    #[serde(default)]
    pub scope: BudgetScope,
    /// Overrides `budgets.on_store_error` for this budget.
    pub on_store_error: Option<OnStoreError>,
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// Records shown (a hidden record is not disclosed).
    Records,
    /// Fields of shown records sent in full (masked or removed ones are
    /// not), optionally of one category and from a level up.
    Fields,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    #[default]
    Enforce,
    Shadow,
}

/// What happens to a request that would take a budget over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExceed {
    /// Served, counted, and flagged (audit record, metric).
    Alert,
    /// Answered 429 naming the budget; nothing is disclosed or counted.
    Refuse,
}

/// Whose disclosures a budget adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// Each principal of the role on its own.
    #[default]
    Principal,
    /// Every principal of the role together.
    Role,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Principal => "principal",
            BudgetScope::Role => "role",
        }
    }
}

/// What a budget does when the shared store cannot answer (down, too slow,
/// failing over).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Count in this replica's memory against `limit / budgets.replicas`:
    /// the fleet together still stays within the limit.
    #[default]
    Local,
    /// Refuse what the budget would count (503): fail closed.
    Refuse,
    /// Serve without counting (the budget does nothing until the store is
    /// back).
    Allow,
}

impl OnStoreError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Local => "local",
            OnStoreError::Refuse => "refuse",
            OnStoreError::Allow => "allow",
        }
    }
}

/// `budgets.store`: where the counters live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default, rename = "type")]
    pub kind: StoreKind,
    /// With `type: redis`.
    pub redis: Option<RedisConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// This process's memory: one replica, or a fleet that accepts
    /// per-replica counts.
    #[default]
    Memory,
    /// Redis or Valkey, shared by every replica.
    Redis,
}

/// A Redis or Valkey deployment: one node (`url`), Sentinel (`nodes` are
/// the sentinels, `master_name` the monitored master) or Cluster (`nodes`
/// are seed nodes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default)]
    pub mode: RedisMode,
    /// `redis://host:port/db` or `rediss://` (TLS), for `mode: standalone`.
    pub url: Option<Spanned<String>>,
    /// Sentinels (`mode: sentinel`) or cluster seed nodes (`mode:
    /// cluster`), as `redis://` or `rediss://` URLs.
    #[serde(default)]
    pub nodes: Vec<Spanned<String>>,
    /// The master set the sentinels monitor.
    pub master_name: Option<String>,
    /// ACL user (Redis 6+); with `password_file`.
    pub username: Option<String>,
    /// A file holding the password (mounted from a Secret); surrounding
    /// whitespace is ignored. Never in the URL or this file.
    pub password_file: Option<PathBuf>,
    pub tls: Option<RedisTlsConfig>,
    /// How long one store call may take before the request goes on with
    /// `on_store_error` (tens of milliseconds: it sits on every request).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long connecting may take (start-up, reconnects).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Prefix of every key (several deployments may share one store).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// `false`: start even when the store cannot be reached (the budgets
    /// then follow `on_store_error` until it can). Misconfiguration
    /// (a bad URL, a refused password, a TLS failure) always stops start-up.
    #[serde(default = "default_true")]
    pub required_at_start: bool,
}

/// TLS to the store: `rediss://` URLs, verified against `ca_file` (else
/// the system's roots).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTlsConfig {
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    #[default]
    Standalone,
    Sentinel,
    Cluster,
}

impl RedisMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Sentinel => "sentinel",
            RedisMode::Cluster => "cluster",
        }
    }
}

fn default_timeout_ms() -> u64 {
    50
}

fn default_connect_timeout_ms() -> u64 {
    1_000
}

fn default_key_prefix() -> String {
    "fieldguard".into()
}

fn default_true() -> bool {
    true
}
