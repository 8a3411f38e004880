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
//! ```

use fieldguard_core::config::{Category, Level};
use serde::Deserialize;
use std::collections::BTreeMap;

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
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            mode: BudgetMode::default(),
            max_counters: default_max_counters(),
            roles: BTreeMap::new(),
        }
    }
}

fn default_max_counters() -> usize {
    100_000
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
