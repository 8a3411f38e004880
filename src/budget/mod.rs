//! Bulk-read budgets (CDM-1.2.3: prevent leakage and abuse, including by
//! insiders): per role, how much a principal (or the whole role) may be
//! disclosed within a sliding window, counted from what responses actually
//! disclose (records shown, fields sent in full by category and level),
//! with limits that only alert or that refuse (429 naming the budget), in
//! enforce or shadow mode.
//!
//! [`config`] is the `budgets:` section, [`window`] the constant-memory
//! sliding window, [`state`] the bounded counters a proxy keeps across
//! reloads, [`redis_store`] the store a fleet of replicas shares and
//! [`counters`] which of them counts (with the fallback while the shared
//! one is away); this module decides what a request may take and what it
//! costs.

pub mod config;
pub mod counters;
pub mod redis_store;
pub mod state;
pub mod store_metrics;
pub mod window;

pub use config::{
    BudgetMode, BudgetScope, BudgetsConfig, Counted, OnExceed, OnStoreError, StoreConfig,
};
pub use counters::Counters;
pub use state::{BudgetState, Clock, system_clock};

use crate::identity::Principal;
use fieldguard_core::catalogue::Catalogue;
use fieldguard_core::config::{Category, Level};
use fieldguard_core::redact::Outcome;
use fieldguard_core::redact::report::FilterReport;
use state::{CounterKey, Who};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Largest fleet `budgets.replicas` accepts.
const MAX_REPLICAS: u64 = 10_000;

/// Longest window accepted (a year): longer is a configuration mistake.
const MAX_WINDOW_SECONDS: u64 = 366 * 24 * 3600;

/// One budget, compiled.
#[derive(Debug)]
pub struct Limit {
    pub id: Arc<str>,
    pub role: Arc<str>,
    pub counted: Counted,
    pub category: Option<Category>,
    pub min_level: Option<Level>,
    pub window_seconds: u64,
    pub limit: u64,
    pub on_exceed: OnExceed,
    pub scope: BudgetScope,
    pub mode: BudgetMode,
    /// What the budget does while the shared store cannot answer.
    pub on_store_error: OnStoreError,
}

impl Limit {
    pub fn window_ms(&self) -> u64 {
        self.window_seconds.saturating_mul(1000)
    }

    /// This budget's limit for one of `share` replicas counting alone
    /// (rounded down: the replicas together never exceed the limit).
    pub fn share(&self, share: u64) -> u64 {
        self.limit / share.max(1)
    }

    /// What this budget counts, for audit records: `records`, `fields`,
    /// `fields:identity`, `fields:identity:3+`.
    pub fn counts_label(&self) -> String {
        match self.counted {
            Counted::Records => "records".into(),
            Counted::Fields => {
                let mut s = String::from("fields");
                if let Some(c) = self.category {
                    s.push(':');
                    s.push_str(c.as_str());
                }
                if let Some(l) = self.min_level {
                    s.push_str(&format!(":{}+", l.0));
                }
                s
            }
        }
    }

    pub(crate) fn key(&self, principal: &Principal) -> CounterKey {
        CounterKey {
            budget: self.id.clone(),
            who: match self.scope {
                BudgetScope::Principal => Who::Principal(principal.id.as_str().into()),
                BudgetScope::Role => Who::Role,
            },
        }
    }

    /// Whether a refusal of this budget is enforced (not shadow mode,
    /// neither for the budget nor for the request's route).
    pub fn refuses(&self, enforce: bool) -> bool {
        self.on_exceed == OnExceed::Refuse && self.enforced(enforce)
    }

    /// Whether this budget acts at all (neither it nor the request's
    /// route is in shadow mode).
    pub fn enforced(&self, enforce: bool) -> bool {
        self.mode == BudgetMode::Enforce && enforce
    }
}

/// The `budgets:` section, compiled and checked.
#[derive(Debug, Default)]
pub struct Budgets {
    pub max_counters: usize,
    /// The fleet's size (`budgets.replicas`): the local fallback's divisor.
    pub replicas: u64,
    limits: Vec<Arc<Limit>>,
}

/// Why a `budgets` section is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("budgets.max_counters must be at least 1")]
    MaxCounters,
    #[error("budgets.replicas must be 1 to {MAX_REPLICAS} (the fleet's size)")]
    Replicas,
    #[error("budgets.roles: a role name is empty")]
    EmptyRole,
    #[error("budgets.roles.{role}: budget `{id}`: {problem}")]
    Limit {
        role: String,
        id: String,
        problem: LimitProblem,
    },
}

/// What is wrong with one budget of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitProblem {
    #[error("ids must be non-empty and unique across roles")]
    Id,
    #[error("window_seconds must be 1 to 31622400 (a year)")]
    Window,
    #[error("limit must be at least 1")]
    Zero,
    #[error("category and min_level apply to `count: fields` only")]
    FilterOnRecords,
}

impl Budgets {
    pub fn compile(cfg: &BudgetsConfig) -> Result<Self, BudgetError> {
        let mut ids = BTreeSet::new();
        let mut limits = Vec::new();
        if cfg.max_counters == 0 {
            return Err(BudgetError::MaxCounters);
        }
        if cfg.replicas == 0 || cfg.replicas > MAX_REPLICAS {
            return Err(BudgetError::Replicas);
        }
        for (role, rb) in &cfg.roles {
            let at = |id: &str, problem| BudgetError::Limit {
                role: role.clone(),
                id: id.to_string(),
                problem,
            };
            if role.trim().is_empty() {
                return Err(BudgetError::EmptyRole);
            }
            for l in &rb.limits {
                if l.id.trim().is_empty() || !ids.insert(l.id.clone()) {
                    return Err(at(&l.id, LimitProblem::Id));
                }
                if l.window_seconds == 0 || l.window_seconds > MAX_WINDOW_SECONDS {
                    return Err(at(&l.id, LimitProblem::Window));
                }
                if l.limit == 0 {
                    return Err(at(&l.id, LimitProblem::Zero));
                }
                if l.count == Counted::Records && (l.category.is_some() || l.min_level.is_some()) {
                    return Err(at(&l.id, LimitProblem::FilterOnRecords));
                }
                limits.push(Arc::new(Limit {
                    id: Arc::from(l.id.as_str()),
                    role: Arc::from(role.as_str()),
                    counted: l.count,
                    category: l.category,
                    min_level: l.min_level,
                    window_seconds: l.window_seconds,
                    limit: l.limit,
                    on_exceed: l.on_exceed,
                    scope: l.scope,
                    mode: rb.mode.unwrap_or(cfg.mode),
                    on_store_error: l.on_store_error.unwrap_or(cfg.on_store_error),
                }));
            }
        }
        Ok(Self {
            max_counters: cfg.max_counters,
            replicas: cfg.replicas,
            limits,
        })
    }

    /// Every budget, in config order (roles sorted).
    pub fn limits(&self) -> &[Arc<Limit>] {
        &self.limits
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// The budgets of the principal's roles.
    pub fn applicable<'a>(&'a self, p: &'a Principal) -> impl Iterator<Item = &'a Arc<Limit>> {
        self.limits
            .iter()
            .filter(move |l| p.roles.iter().any(|r| *r == *l.role))
    }
}

/// What one response disclosed, as budgets count it.
#[derive(Debug, Default, Clone)]
pub struct Disclosure {
    pub records: u64,
    /// Record fields sent in full: (category, level, how many).
    pub full_fields: Vec<(Category, Level, u64)>,
}

impl Disclosure {
    /// From a filtered body's report: the records shown, and the fields of
    /// records (not wrapper members) sent in full.
    pub fn of(report: &FilterReport, catalogue: &Catalogue) -> Self {
        let full_fields = report
            .outcomes
            .iter()
            .filter(|((_, o), _)| *o == Outcome::Full)
            .filter_map(|((f, _), n)| {
                let spec = catalogue.fields().get(*f as usize)?;
                spec.is_record_field()
                    .then_some((spec.category, spec.level, u64::from(*n)))
            })
            .collect();
        Self {
            records: u64::from(report.records.saturating_sub(report.records_dropped)),
            full_fields,
        }
    }

    /// What `self` disclosed beyond `earlier` (a streamed response is
    /// charged batch by batch, each time for what it added).
    pub fn since(&self, earlier: &Disclosure) -> Disclosure {
        let total = |d: &Disclosure, c: Category, lv: Level| -> u64 {
            (d.full_fields.iter())
                .filter(|(c2, lv2, _)| *c2 == c && *lv2 == lv)
                .map(|(_, _, n)| n)
                .sum()
        };
        let mut full_fields: Vec<(Category, Level, u64)> = Vec::new();
        for &(c, lv, _) in &self.full_fields {
            if full_fields
                .iter()
                .any(|(c2, lv2, _)| *c2 == c && *lv2 == lv)
            {
                continue;
            }
            let added = total(self, c, lv).saturating_sub(total(earlier, c, lv));
            if added > 0 {
                full_fields.push((c, lv, added));
            }
        }
        Disclosure {
            records: self.records.saturating_sub(earlier.records),
            full_fields,
        }
    }

    /// What this disclosure counts against `l`.
    pub fn amount(&self, l: &Limit) -> u64 {
        match l.counted {
            Counted::Records => self.records,
            Counted::Fields => self
                .full_fields
                .iter()
                .filter(|(c, lv, _)| {
                    l.category.is_none_or(|want| want == *c) && l.min_level.is_none_or(|m| *lv >= m)
                })
                .map(|(_, _, n)| n)
                .sum(),
        }
    }
}

/// Why a budget flagged a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    /// Over an alerting budget: served, counted, flagged.
    Alert,
    /// Over a refusing budget: answered 429.
    Refuse,
    /// Over a refusing budget in shadow mode: served, counted, flagged.
    WouldRefuse,
}

impl FlagAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagAction::Alert => "alert",
            FlagAction::Refuse => "refuse",
            FlagAction::WouldRefuse => "would_refuse",
        }
    }
}

/// A budget over its limit for one request: its state, for the audit record.
#[derive(Debug, Clone)]
pub struct Flag {
    pub limit: Arc<Limit>,
    pub action: FlagAction,
    /// Disclosed within the window before this request.
    pub used: u64,
    /// What this request disclosed (or would have).
    pub request: u64,
    /// The limit the count was held to: the budget's, or this replica's
    /// share of it while the shared store was unreachable
    /// (`on_store_error: local`).
    pub applied_limit: u64,
}

/// What the budgets did to one request.
#[derive(Debug, Clone, Default)]
pub struct BudgetReport {
    /// Budgets over their limit (audited only when non-empty).
    pub flags: Vec<Flag>,
    /// Amounts counted, by budget (for metrics).
    pub counted: Vec<(Arc<str>, u64)>,
    /// The shared store could not answer for this request: what the
    /// budgets did instead (each `on_store_error` taken, in order, once).
    pub store_fallback: Vec<OnStoreError>,
}

impl BudgetReport {
    /// Adds a later charge of the same request (a streamed response's
    /// next batch): amounts summed by budget; a budget flagged once, with
    /// what the whole request disclosed and the latest action.
    pub fn absorb(&mut self, later: BudgetReport) {
        for (id, n) in later.counted {
            match self.counted.iter_mut().find(|(i, _)| *i == id) {
                Some((_, total)) => *total = total.saturating_add(n),
                None => self.counted.push((id, n)),
            }
        }
        for flag in later.flags {
            match self.flags.iter_mut().find(|f| f.limit.id == flag.limit.id) {
                Some(f) => {
                    f.request = f.request.saturating_add(flag.request);
                    f.action = flag.action;
                    f.applied_limit = flag.applied_limit;
                }
                None => self.flags.push(flag),
            }
        }
        for fallback in later.store_fallback {
            self.note_fallback(fallback);
        }
    }

    /// Notes that a budget took `fallback` because the store failed.
    pub fn note_fallback(&mut self, fallback: OnStoreError) {
        if !self.store_fallback.contains(&fallback) {
            self.store_fallback.push(fallback);
        }
    }
}

/// A request refused by a budget: the 429's `budget` and `Retry-After`
/// (a 503 when the budget could not be checked at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub budget: String,
    pub retry_after_secs: u64,
    /// The shared store could not answer and the budget says
    /// `on_store_error: refuse`.
    pub store_unavailable: bool,
}

/// The outcome of checking or charging a request.
#[derive(Debug, Default)]
pub struct Charge {
    pub report: BudgetReport,
    pub refused: Option<Refused>,
}

/// What one budget's counter held when a request was checked or charged,
/// from whichever store counts it.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Within the window before this request.
    pub used: u64,
    /// When the count first drops, in milliseconds (0: nothing held).
    pub frees_in_ms: u64,
}

impl Reading {
    fn retry_after_secs(self) -> u64 {
        self.frees_in_ms.div_ceil(1000).max(1)
    }
}

impl Charge {
    /// The precheck of `l` against what its counter holds: a refusing
    /// budget already at its limit (`applied`) refuses.
    pub fn precheck_one(&mut self, l: &Arc<Limit>, reading: Reading, applied: u64) {
        if reading.used < applied {
            return;
        }
        self.report.flags.push(Flag {
            limit: l.clone(),
            action: FlagAction::Refuse,
            used: reading.used,
            request: 0,
            applied_limit: applied,
        });
        self.refused.get_or_insert_with(|| Refused {
            budget: l.id.to_string(),
            retry_after_secs: reading.retry_after_secs(),
            store_unavailable: false,
        });
    }

    /// The charge of `amount` to `l`, whose counter held `reading`: flagged
    /// when it takes the budget over `applied`; a refusing one refuses the
    /// whole response.
    pub fn judge_one(
        &mut self,
        l: &Arc<Limit>,
        reading: Reading,
        amount: u64,
        applied: u64,
        enforce: bool,
    ) {
        if reading.used.saturating_add(amount) <= applied {
            return;
        }
        let action = match (l.on_exceed, l.refuses(enforce)) {
            (OnExceed::Refuse, true) => FlagAction::Refuse,
            (OnExceed::Refuse, false) => FlagAction::WouldRefuse,
            (OnExceed::Alert, _) => FlagAction::Alert,
        };
        if action == FlagAction::Refuse && self.refused.is_none() {
            self.refused = Some(Refused {
                budget: l.id.to_string(),
                retry_after_secs: reading.retry_after_secs(),
                store_unavailable: false,
            });
        }
        self.report.flags.push(Flag {
            limit: l.clone(),
            action,
            used: reading.used,
            request: amount,
            applied_limit: applied,
        });
    }

    /// A budget that cannot be checked while the store is down and says
    /// `on_store_error: refuse`.
    pub fn refuse_unchecked(&mut self, l: &Limit, retry_after_secs: u64) {
        self.report.note_fallback(OnStoreError::Refuse);
        self.refused.get_or_insert_with(|| Refused {
            budget: l.id.to_string(),
            retry_after_secs,
            store_unavailable: true,
        });
    }
}

impl BudgetState {
    /// Before the upstream is asked: a refusing budget the principal has
    /// already used up refuses at once. `enforce`: false on shadow routes.
    pub fn precheck(&self, budgets: &Budgets, principal: &Principal, enforce: bool) -> Charge {
        let mut charge = Charge::default();
        let limits = budgets.applicable(principal);
        self.precheck_limits(limits, principal, enforce, 1, &mut charge);
        charge
    }

    /// [`BudgetState::precheck`] of `limits` held to `limit / share` (the
    /// local fallback of a fleet counts each replica's share).
    pub fn precheck_limits<'a>(
        &self,
        limits: impl IntoIterator<Item = &'a Arc<Limit>>,
        principal: &Principal,
        enforce: bool,
        share: u64,
        charge: &mut Charge,
    ) {
        let now = self.now();
        for l in limits.into_iter().filter(|l| l.refuses(enforce)) {
            let key = l.key(principal);
            let reading = self.reading(&key, l.window_ms(), now);
            charge.precheck_one(l, reading, l.share(share));
        }
    }

    /// After the response is filtered: what it disclosed is checked against
    /// every budget of the principal's roles. A refusing budget it would
    /// take over its limit refuses the whole response (nothing is counted);
    /// otherwise everything is counted, and budgets over their limit are
    /// flagged.
    pub fn charge(
        &self,
        budgets: &Budgets,
        principal: &Principal,
        disclosed: &Disclosure,
        enforce: bool,
    ) -> Charge {
        let mut charge = Charge::default();
        self.charge_limits(
            budgets.applicable(principal),
            budgets.max_counters,
            principal,
            disclosed,
            enforce,
            1,
            &mut charge,
        );
        charge
    }

    /// [`BudgetState::charge`] of `limits` held to `limit / share`; what
    /// another store already refused (`charge.refused`) counts nothing
    /// here either.
    #[allow(
        clippy::too_many_arguments,
        reason = "the charge's inputs, each one thing; a struct would only rename them"
    )]
    pub fn charge_limits<'a>(
        &self,
        limits: impl IntoIterator<Item = &'a Arc<Limit>>,
        max_counters: usize,
        principal: &Principal,
        disclosed: &Disclosure,
        enforce: bool,
        share: u64,
        charge: &mut Charge,
    ) {
        let now = self.now();
        let mut pending = Vec::new();
        for l in limits {
            let amount = disclosed.amount(l);
            if amount == 0 {
                continue;
            }
            let key = self.admit(l.key(principal), max_counters, now);
            let reading = self.reading(&key, l.window_ms(), now);
            charge.judge_one(l, reading, amount, l.share(share), enforce);
            pending.push((key, l, amount));
        }
        if charge.refused.is_none() {
            for (key, l, amount) in pending {
                self.add(key, l.window_ms(), now, amount);
                charge.report.counted.push((l.id.clone(), amount));
            }
        }
    }

    fn reading(&self, key: &CounterKey, window_ms: u64, now: u64) -> Reading {
        let used = self.used(key, window_ms, now);
        Reading {
            used,
            frees_in_ms: if used > 0 {
                self.frees_in_ms(key, now)
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests;
