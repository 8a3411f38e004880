//! Where a proxy's budget counts live: its own memory (`budgets.store.type:
//! memory`), or a store the fleet shares ([`RedisStore`]), with this
//! process's memory as the fallback while the shared store cannot answer.
//!
//! The fallback, budget by budget (`on_store_error`):
//! - `local`: counted here against `limit / budgets.replicas`, so the
//!   replicas together stay within the limit for what they disclose while
//!   the store is away; when it answers again those counts are written to
//!   it (nothing disclosed is forgotten);
//! - `refuse`: a request the budget counts is answered 503;
//! - `allow`: served uncounted.
//!
//! The store going away and coming back is logged once each way, shown by
//! `fieldguard_budget_store_up`, and noted in every audit record it
//! affected (`budget_store_fallback`). While it is away no request waits
//! for it: a probe asks it every [`PROBE_EVERY`] and switches back.

use super::redis_store::{ConnectError, Failure, Op, RedisStore};
use super::store_metrics::BudgetStoreMetrics;
use super::{BudgetState, Budgets, Charge, Clock, Disclosure, Limit, OnStoreError};
use crate::identity::Principal;
use arc_swap::ArcSwapOption;
use fieldguard_core::config::Origin;
use fieldguard_core::error::ConfigError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a store that failed is asked again.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// `Retry-After` of a 503 while the store is away (a probe interval or so).
const STORE_RETRY_AFTER_SECS: u64 = 1;

pub struct Counters {
    /// The memory store, or the shared store's local fallback.
    memory: Arc<BudgetState>,
    /// Refusing budgets this replica's charges found used up in the shared
    /// store, until their count first drops: the precheck's answer.
    used_up: UsedUp,
    shared: ArcSwapOption<Shared>,
    metrics: BudgetStoreMetrics,
}

/// A shared store and whether it is answering.
struct Shared {
    store: RedisStore,
    up: AtomicBool,
    /// A probe is running (at most one).
    probing: AtomicBool,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("memory", &self.memory)
            .field("shared", &self.shared.load().as_ref().map(|s| &s.store))
            .finish()
    }
}

impl Counters {
    /// Counts in this process's memory (on `clock`) until a shared store is
    /// attached.
    pub fn new(clock: Clock, metrics: BudgetStoreMetrics) -> Self {
        Self {
            used_up: UsedUp::default(),
            memory: Arc::new(BudgetState::new(clock)),
            shared: ArcSwapOption::empty(),
            metrics,
        }
    }

    /// The memory store (or the fallback's counters): for metrics and tests.
    pub fn memory(&self) -> &BudgetState {
        &self.memory
    }

    /// Makes the counters match `budgets.store` (`store`, from the file of
    /// `origin`): connects a
    /// shared store when it is new or its section (or a file it names)
    /// changed, keeps the one in use otherwise. On error nothing changes.
    /// `starting`: a store that cannot be reached is an error unless its
    /// section says `required_at_start: false`; on reload it always is
    /// (the running store keeps counting).
    pub async fn configure(
        &self,
        cfg: &super::config::StoreConfig,
        origin: Origin<'_>,
        starting: bool,
    ) -> Result<(), ConfigError> {
        let redis = match cfg.kind {
            super::config::StoreKind::Memory => {
                if let Some(old) = self.shared.swap(None) {
                    tracing::warn!(
                        store = %old.store.describe,
                        "budgets.store is now `memory`: each replica counts alone"
                    );
                }
                self.metrics.up.set(1);
                return Ok(());
            }
            super::config::StoreKind::Redis => cfg.redis.as_ref().ok_or_else(|| {
                ConfigError::file(
                    origin.file,
                    "budgets.store: `type: redis` needs a `redis` section",
                )
            })?,
        };
        let store = RedisStore::prepare(redis, origin, self.metrics.clone())?;
        if let Some(current) = self.shared.load().as_ref()
            && current.store.fingerprint == store.fingerprint
        {
            // The same store: keep its connection and state.
            return Ok(());
        }
        let up = match store.connect().await {
            Ok(()) => true,
            Err(ConnectError::Unreachable(e)) if starting && !redis.required_at_start => {
                tracing::error!(
                    "{}: starting without the budget store; budgets follow on_store_error until it answers",
                    e.headline()
                );
                false
            }
            Err(e) => return Err(e.into_config_error()),
        };
        let describe = store.describe.clone();
        let shared = Arc::new(Shared {
            store,
            up: AtomicBool::new(up),
            probing: AtomicBool::new(false),
        });
        self.metrics.up.set(i64::from(up));
        self.shared.store(Some(shared.clone()));
        if up {
            crate::logging::notice(format_args!(
                "fieldguard: budgets are counted in the shared store ({describe})"
            ));
        } else {
            self.spawn_probe(shared);
        }
        Ok(())
    }

    /// Before the upstream is asked: a refusing budget the principal has
    /// already used up refuses at once.
    pub async fn precheck(
        &self,
        budgets: &Budgets,
        principal: &Principal,
        enforce: bool,
    ) -> Charge {
        let Some(shared) = self.shared.load_full() else {
            return self.memory.precheck(budgets, principal, enforce);
        };
        let limits: Vec<&Arc<Limit>> = budgets
            .applicable(principal)
            .filter(|l| l.refuses(enforce))
            .collect();
        let mut charge = Charge::default();
        if limits.is_empty() {
            return charge;
        }
        if shared.up.load(Ordering::Acquire) {
            // Answered from what this replica's charges learned: no round
            // trip (the charge is the check that counts, see `used_up`).
            let now = self.memory.now();
            for l in &limits {
                if let Some(reading) = self.used_up.reading(l, principal, now) {
                    charge.precheck_one(l, reading, l.limit);
                }
            }
            return charge;
        }
        for l in limits {
            match l.on_store_error {
                OnStoreError::Local => {
                    charge.report.note_fallback(OnStoreError::Local);
                    let share = budgets.replicas;
                    self.memory
                        .precheck_limits([l], principal, enforce, share, &mut charge);
                }
                OnStoreError::Refuse => charge.refuse_unchecked(l, STORE_RETRY_AFTER_SECS),
                OnStoreError::Allow => charge.report.note_fallback(OnStoreError::Allow),
            }
        }
        charge
    }

    /// After the response is filtered (or before a streamed batch is
    /// sent): what it disclosed is counted in one atomic step, or refused
    /// whole when it would take a refusing budget over its limit.
    pub async fn charge(
        &self,
        budgets: &Budgets,
        principal: &Principal,
        disclosed: &Disclosure,
        enforce: bool,
    ) -> Charge {
        let Some(shared) = self.shared.load_full() else {
            return self.memory.charge(budgets, principal, disclosed, enforce);
        };
        let limits: Vec<(&Arc<Limit>, u64)> = budgets
            .applicable(principal)
            .map(|l| (l, disclosed.amount(l)))
            .filter(|(_, amount)| *amount > 0)
            .collect();
        let mut charge = Charge::default();
        if limits.is_empty() {
            return charge;
        }
        if shared.up.load(Ordering::Acquire) {
            let ops: Vec<Op> = (limits.iter())
                .map(|(l, amount)| {
                    let mut op = Op::of(&shared.store.prefix, l, principal);
                    op.amount = *amount;
                    op.refusing = l.refuses(enforce);
                    op
                })
                .collect();
            match shared.store.call("charge", &ops).await {
                Ok(reply) => {
                    let now = self.memory.now();
                    for ((l, amount), reading) in limits.iter().zip(reply.readings) {
                        charge.judge_one(l, reading, *amount, l.limit, enforce);
                        if l.refuses(enforce) {
                            let after = if reply.refused {
                                reading.used
                            } else {
                                reading.used.saturating_add(*amount)
                            };
                            self.used_up.learn(l, principal, after, reading, now);
                        }
                    }
                    if charge.refused.is_none() {
                        for (l, amount) in &limits {
                            charge.report.counted.push((l.id.clone(), *amount));
                        }
                    }
                    return charge;
                }
                Err(f) => self.went_down(&shared, f),
            }
        }
        // The store is away: budget by budget, as each says. A refusing
        // one refuses the response before anything is counted locally; in
        // shadow mode (the budget's or the route's) nothing is refused, so
        // it counts locally to show what would have happened.
        let fallback = |l: &Limit| match l.on_store_error {
            OnStoreError::Refuse if !l.enforced(enforce) => OnStoreError::Local,
            f => f,
        };
        for (l, _) in limits
            .iter()
            .filter(|(l, _)| fallback(l) == OnStoreError::Refuse)
        {
            charge.refuse_unchecked(l, STORE_RETRY_AFTER_SECS);
        }
        let local: Vec<&Arc<Limit>> = (limits.iter())
            .filter(|(l, _)| fallback(l) == OnStoreError::Local)
            .map(|(l, _)| *l)
            .collect();
        if !local.is_empty() {
            charge.report.note_fallback(OnStoreError::Local);
            self.memory.charge_limits(
                local,
                budgets.max_counters,
                principal,
                disclosed,
                enforce,
                budgets.replicas,
                &mut charge,
            );
        }
        if limits
            .iter()
            .any(|(l, _)| l.on_store_error == OnStoreError::Allow)
        {
            charge.report.note_fallback(OnStoreError::Allow);
        }
        charge
    }

    /// The store failed a call: budgets fall back from now on (logged
    /// once), and a probe waits for it to answer again.
    fn went_down(&self, shared: &Arc<Shared>, failure: Failure) {
        if shared.up.swap(false, Ordering::AcqRel) {
            self.metrics.up.set(0);
            tracing::error!(
                store = %shared.store.describe,
                reason = failure.as_str(),
                "budget store unavailable: budgets follow on_store_error until it answers"
            );
        }
        self.spawn_probe(shared.clone());
    }

    /// Asks the store every [`PROBE_EVERY`] until it answers; then writes
    /// back what was counted locally meanwhile and switches back (logged
    /// once). Stops when the store is replaced or dropped by a reload.
    fn spawn_probe(&self, shared: Arc<Shared>) {
        if shared.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let memory = self.memory.clone();
        let metrics = self.metrics.clone();
        let current = Arc::downgrade(&shared);
        drop(shared);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(shared) = current.upgrade() else {
                    return;
                };
                let answered = match shared.store.reconnect().await {
                    Ok(()) => shared.store.ping().await,
                    Err(f) => Err(f),
                };
                if answered.is_err() {
                    continue;
                }
                let written = write_back(&shared.store, &memory).await;
                if let Err(f) = written {
                    tracing::debug!(reason = f.as_str(), "budget store: write-back failed");
                    continue;
                }
                shared.probing.store(false, Ordering::Release);
                shared.up.store(true, Ordering::Release);
                metrics.up.set(1);
                tracing::warn!(
                    store = %shared.store.describe,
                    "budget store answering again: budgets are counted in it"
                );
                return;
            }
        });
    }
}

/// Adds what the local fallback counted to the shared store, so a
/// principal's total includes what it was shown while the store was away.
async fn write_back(store: &RedisStore, memory: &BudgetState) -> Result<(), Failure> {
    let counts = memory.drain_counts();
    for (i, (key, slot_ms, used)) in counts.iter().enumerate() {
        // Principals that found no room under max_counters share the
        // overflow counter: it names nobody to write back to.
        if matches!(key.who, super::state::Who::Overflow) {
            continue;
        }
        let mut op = Op::for_key(&store.prefix, key, *slot_ms);
        op.amount = *used;
        if let Err(f) = store.call("add", std::slice::from_ref(&op)).await {
            // Put back what was not written: the next probe tries again.
            memory.restore(&counts[i..]);
            return Err(f);
        }
    }
    Ok(())
}

/// The precheck of a shared store, answered locally: the refusing budgets
/// this replica's last charge found at (or over) their limit, and until
/// when their count holds (the store's `frees_in_ms`, or a whole window
/// when the charge filled an empty one).
///
/// Why not ask the store: the precheck only spares the upstream a request
/// whose answer would be refused; it decides nothing a refusing budget
/// guarantees, since the charge, one atomic step in the store, refuses
/// whatever would go over the limit. A budget another replica used up is
/// therefore refused at the charge (the upstream was asked once, nothing
/// is disclosed), and from then on at the precheck. That halves the store
/// round trips per request (docs/benchmarks.md).
///
/// Bounded: [`MAX_USED_UP`] entries; beyond it, expired ones are dropped,
/// and if none has expired nothing more is remembered (the charge still
/// refuses).
#[derive(Default)]
struct UsedUp {
    /// By budget and principal (empty for a role-scoped budget): what the
    /// window held, and until when (the memory clock's ms).
    until: dashmap::DashMap<super::state::CounterKey, (u64, u64), foldhash::fast::RandomState>,
}

/// Entries [`UsedUp`] keeps at most.
const MAX_USED_UP: usize = 100_000;

impl UsedUp {
    /// What the last charge said of a used-up budget, while it holds.
    fn reading(&self, l: &Limit, principal: &Principal, now: u64) -> Option<super::Reading> {
        let key = l.key(principal);
        let (used, until) = *self.until.get(&key)?;
        if now >= until {
            self.until.remove(&key);
            return None;
        }
        Some(super::Reading {
            used,
            frees_in_ms: until - now,
        })
    }

    /// Remembers (or forgets) a budget after a charge: `used` is what the
    /// window holds now.
    fn learn(
        &self,
        l: &Limit,
        principal: &Principal,
        used: u64,
        reading: super::Reading,
        now: u64,
    ) {
        let key = l.key(principal);
        if used < l.limit {
            self.until.remove(&key);
            return;
        }
        if self.until.len() >= MAX_USED_UP {
            self.until.retain(|_, (_, until)| *until > now);
            if self.until.len() >= MAX_USED_UP {
                return;
            }
        }
        let holds = match reading.frees_in_ms {
            0 => l.window_ms(),
            ms => ms,
        };
        self.until.insert(key, (used, now.saturating_add(holds)));
    }
}
