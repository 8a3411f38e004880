//! Warnings that repeat once per request when something outside the proxy
//! is wrong (the upstream is down, it answers in an unexpected shape, the
//! audit sink fails) are summarised instead of logged per request: the
//! first of a kind is logged as it happens, then at most one summary line
//! per interval says how many more there were. A 30-second upstream outage
//! at thousands of requests per second is then a handful of lines, not
//! hundreds of thousands; the metrics keep the exact counts.
//!
//! Summaries are written when the next warning of the kind arrives after
//! the interval, and by [`flush`] (the proxy calls it every second) once an
//! interval has passed with warnings still untold (so a burst that stops is
//! reported too).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Environment variable: seconds between two summaries of one kind.
pub const INTERVAL_ENV: &str = "FIELDGUARD_LOG_REPEAT_SECONDS";
const DEFAULT_INTERVAL_SECS: u64 = 10;

/// The kinds of per-request warnings, each summarised on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The upstream could not be reached (connection refused, reset, …).
    UpstreamFailed,
    /// An inspected response did not have the route's shape (502).
    ResponseShape,
    /// A record lacked an attribute its decisions read (hidden).
    RecordAttribute,
    /// A decision could not be made (denied, fail closed).
    DecisionFailed,
    /// A policy failed to evaluate (it counted as not applying).
    PolicyEvaluation,
    /// The audit sink refused a write (retried; requests refused meanwhile).
    AuditSink,
    /// A listener could not accept a connection.
    Accept,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::UpstreamFailed,
        Kind::ResponseShape,
        Kind::RecordAttribute,
        Kind::DecisionFailed,
        Kind::PolicyEvaluation,
        Kind::AuditSink,
        Kind::Accept,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UpstreamFailed => "upstream_failed",
            Kind::ResponseShape => "response_shape",
            Kind::RecordAttribute => "record_attribute",
            Kind::DecisionFailed => "decision_failed",
            Kind::PolicyEvaluation => "policy_evaluation",
            Kind::AuditSink => "audit_sink",
            Kind::Accept => "accept",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One kind's current window: when its last logged line was, and how many
/// warnings were held back since.
#[derive(Debug, Clone, Copy)]
struct Window {
    logged_at: Option<Instant>,
    since: SystemTime,
    suppressed: u64,
}

const IDLE: Window = Window {
    logged_at: None,
    since: SystemTime::UNIX_EPOCH,
    suppressed: 0,
};

static WINDOWS: [Mutex<Window>; Kind::ALL.len()] = [const { Mutex::new(IDLE) }; Kind::ALL.len()];
static INTERVAL_MS: AtomicU64 = AtomicU64::new(DEFAULT_INTERVAL_SECS * 1000);

/// Sets the interval between two summaries of one kind (at least 1 ms).
pub fn set_interval(interval: Duration) {
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    INTERVAL_MS.store(ms, Ordering::Relaxed);
}

/// The interval from `FIELDGUARD_LOG_REPEAT_SECONDS` (unset or empty: the
/// default, 10 s); anything but a whole number of seconds ≥ 1 is an error.
pub fn interval_from_env(value: Option<&str>) -> Result<Duration, BadInterval> {
    match value.map(str::trim) {
        None | Some("") => Ok(Duration::from_secs(DEFAULT_INTERVAL_SECS)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Duration::from_secs(n)),
            _ => Err(BadInterval(v.to_string())),
        },
    }
}

/// A `FIELDGUARD_LOG_REPEAT_SECONDS` that is not a whole number of
/// seconds of at least 1 (the value given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{INTERVAL_ENV}={0:?}: expected a whole number of seconds, at least 1")]
pub struct BadInterval(pub String);

fn interval() -> Duration {
    Duration::from_millis(INTERVAL_MS.load(Ordering::Relaxed))
}

/// Logs a warning of `kind`, or counts it for the kind's next summary.
pub fn warn(kind: Kind, message: fmt::Arguments<'_>) {
    let now = Instant::now();
    let mut w = lock(kind);
    if let Some(at) = w.logged_at
        && now.duration_since(at) < interval()
    {
        w.suppressed += 1;
        return;
    }
    let untold = summary(kind, &mut w);
    *w = Window {
        logged_at: Some(now),
        since: SystemTime::now(),
        suppressed: 0,
    };
    drop(w);
    if let Some(line) = untold {
        tracing::warn!(kind = kind.as_str(), "{line}");
    }
    tracing::warn!(kind = kind.as_str(), "{message}");
}

/// Writes the summary of every kind whose interval has passed with
/// warnings untold.
pub fn flush() {
    let now = Instant::now();
    for kind in Kind::ALL {
        let mut w = lock(kind);
        let due = w
            .logged_at
            .is_some_and(|at| now.duration_since(at) >= interval());
        if !due {
            continue;
        }
        let untold = summary(kind, &mut w);
        // The next warning of the kind starts a new window (and is logged).
        *w = IDLE;
        drop(w);
        if let Some(line) = untold {
            tracing::warn!(kind = kind.as_str(), "{line}");
        }
    }
}

/// The summary line for what `w` held back, if anything.
fn summary(kind: Kind, w: &mut Window) -> Option<String> {
    (w.suppressed > 0).then(|| {
        format!(
            "{} more `{}` warnings since {} (not logged one by one; the metrics count each)",
            w.suppressed,
            kind.as_str(),
            crate::time::rfc3339_millis(w.since)
        )
    })
}

fn lock(kind: Kind) -> std::sync::MutexGuard<'static, Window> {
    // A poisoned lock only means a panic mid-update of two counters.
    WINDOWS[kind.index()]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `repeated_warn!(Kind::X, "format", args…)`: [`warn`] with a format.
#[macro_export]
macro_rules! repeated_warn {
    ($kind:expr, $($arg:tt)+) => {
        $crate::repeated::warn($kind, format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_setting() {
        assert_eq!(interval_from_env(None), Ok(Duration::from_secs(10)));
        assert_eq!(interval_from_env(Some("3")), Ok(Duration::from_secs(3)));
        for bad in ["0", "-1", "1.5", "ten"] {
            assert!(interval_from_env(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_window_holds_back_repeats_and_the_summary_tells_them() {
        let mut w = Window {
            logged_at: Some(Instant::now()),
            since: SystemTime::UNIX_EPOCH,
            suppressed: 41,
        };
        let line = summary(Kind::UpstreamFailed, &mut w).unwrap();
        assert!(
            line.starts_with("41 more `upstream_failed` warnings since 1970-01-01T00:00:00.000Z"),
            "{line}"
        );
        w.suppressed = 0;
        assert_eq!(summary(Kind::UpstreamFailed, &mut w), None);
    }
}
