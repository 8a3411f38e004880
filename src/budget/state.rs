//! The counters behind the budgets, shared by every request of a proxy and
//! kept across reloads (a budget keeps its count while its `id` stays).
//!
//! Bounded: at most `budgets.max_counters` counters (about 130 bytes each;
//! 100,000 take ~13 MB), plus one overflow counter per budget. Counters whose window has emptied are dropped
//! when the bound is reached; if it is still reached, principals new to a
//! budget share one overflow counter per budget, which fills faster than
//! theirs would: the bound fails towards refusing, never towards
//! forgetting what was disclosed.

use super::window::Window;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds on a monotonic clock. Injectable so tests move time
/// instead of sleeping.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process's monotonic clock, in milliseconds since the first call.
pub fn system_clock() -> Clock {
    let start = std::time::Instant::now();
    Arc::new(move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// Whose counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    Principal(Box<str>),
    /// A role-scoped budget: every principal of the role.
    Role,
    /// Principals that found no room under the bound.
    Overflow,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub budget: Arc<str>,
    pub who: Who,
}

/// Hashes with foldhash, seeded per process: keys carry principal ids.
type Hasher = foldhash::fast::RandomState;

pub struct BudgetState {
    counters: DashMap<CounterKey, Window, Hasher>,
    clock: Clock,
    /// Charges that went to an overflow counter (exported as a metric).
    overflowed: AtomicU64,
    /// When counters were last swept for emptied windows (clock ms + 1).
    last_sweep: AtomicU64,
}

impl std::fmt::Debug for BudgetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetState")
            .field("counters", &self.counters.len())
            .finish_non_exhaustive()
    }
}

/// Sweeps for emptied windows at most this often when the bound is hit.
const SWEEP_EVERY_MS: u64 = 1_000;

impl BudgetState {
    pub fn new(clock: Clock) -> Self {
        Self {
            counters: DashMap::default(),
            clock,
            overflowed: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Charges that fell into an overflow counter so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The key a charge for `key` uses under the bound `max`: its own
    /// counter if it has one or there is room, else the budget's overflow.
    pub(super) fn admit(&self, key: CounterKey, max: usize, now: u64) -> CounterKey {
        if self.counters.contains_key(&key) || self.counters.len() < max {
            return key;
        }
        self.sweep(now);
        if self.counters.len() < max {
            return key;
        }
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        CounterKey {
            budget: key.budget,
            who: Who::Overflow,
        }
    }

    /// Drops counters whose window is empty (at most once per second).
    fn sweep(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if last != 0 && now < last.saturating_sub(1).saturating_add(SWEEP_EVERY_MS) {
            return;
        }
        self.last_sweep
            .store(now.saturating_add(1), Ordering::Relaxed);
        self.counters.retain(|_, w| w.used(now) > 0);
    }

    /// What `key`'s window holds at `now` (0 for a counter never charged).
    pub(super) fn used(&self, key: &CounterKey, window_ms: u64, now: u64) -> u64 {
        match self.counters.get_mut(key) {
            Some(mut w) if w.slot_ms() == Window::slot_ms_of(window_ms) => w.used(now),
            _ => 0,
        }
    }

    /// When `key`'s count first drops, in milliseconds from `now`.
    pub(super) fn frees_in_ms(&self, key: &CounterKey, now: u64) -> u64 {
        self.counters
            .get_mut(key)
            .map(|mut w| w.frees_in_ms(now))
            .unwrap_or(0)
    }

    /// Every counter with something in its window, with its slot length
    /// (the local fallback's counts, written to the shared store when it
    /// is back); the counters are emptied.
    pub fn drain_counts(&self) -> Vec<(CounterKey, u64, u64)> {
        let now = self.now();
        let mut out = Vec::new();
        self.counters.retain(|k, w| {
            let used = w.used(now);
            if used > 0 {
                out.push((k.clone(), w.slot_ms(), used));
            }
            false
        });
        out
    }

    /// Puts back counts [`BudgetState::drain_counts`] took that could not
    /// be written elsewhere (counted now: they stay a whole window).
    pub fn restore(&self, counts: &[(CounterKey, u64, u64)]) {
        let now = self.now();
        for (key, slot_ms, used) in counts {
            let window_ms = slot_ms.saturating_mul(super::window::SLOTS as u64);
            self.add(key.clone(), window_ms, now, *used);
        }
    }

    /// Adds `n` to `key`'s window (made, or remade if the budget's window
    /// length changed in a reload).
    pub(super) fn add(&self, key: CounterKey, window_ms: u64, now: u64, n: u64) {
        let mut w = self
            .counters
            .entry(key)
            .or_insert_with(|| Window::new(window_ms));
        if w.slot_ms() != Window::slot_ms_of(window_ms) {
            *w = Window::new(window_ms);
        }
        w.add(now, n);
    }
}
