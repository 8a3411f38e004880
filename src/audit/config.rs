//! The `audit:` section of the configuration and its resolved form.
//!
//! Defaults are the safe choice: with no `audit:` section records go to
//! stdout (a container's log shipper picks them up), every record is
//! fsynced, and a full queue makes requests wait (then 503) rather than run
//! unaudited.

use fieldguard_core::config::Origin;
use fieldguard_core::error::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Append-only JSON-lines file (relative paths resolve against the
    /// config's folder).
    pub file: Option<PathBuf>,
    /// Also (or only) write records to stdout, for log shippers. Defaults
    /// to `true` when no `file` is set, so records always go somewhere.
    pub stdout: Option<bool>,
    /// Rotate the file when the next record would make it larger.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Rotated files kept (`FILE.1` newest … `FILE.N` oldest).
    #[serde(default = "default_max_files")]
    pub max_files: u32,
    /// When records reach the disk.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// For `fsync: interval`: the longest a written record stays unsynced.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Records in flight: every request reserves a slot when it starts and
    /// fills it when it ends, so this also bounds concurrent requests.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// What a request does when no slot is free.
    #[serde(default)]
    pub on_full: OnFull,
    /// For `on_full: wait`: how long a request waits for a slot before 503.
    #[serde(default = "default_wait_timeout_ms")]
    pub wait_timeout_ms: u64,
    /// How often a failing sink is retried.
    #[serde(default = "default_retry_interval_ms")]
    pub retry_interval_ms: u64,
    /// On shutdown, how long to wait for the queue to drain.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Key (≥ 32 bytes) for HMAC-SHA256 record hashes: without it nobody can
    /// recompute a valid chain after editing the log.
    pub hmac_key_file: Option<PathBuf>,
    /// How much evidence the file sink keeps, and what happens when keeping
    /// the next record would mean deleting older records.
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Retention of the audit files: a decision, never an accident. By default
/// nothing is ever deleted: when the files are full, requests are refused
/// (503) until an operator (or a log shipper) moves rotated files away.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Bytes the current file and every rotated one may hold together
    /// (default: `max_files` × `max_file_bytes`).
    pub max_total_bytes: Option<u64>,
    /// Rotated files last written longer ago than this are deleted at the
    /// next rotation (a retention period chosen by the operator; counted
    /// and noted like any deletion). Unset: no file is deleted for its age.
    pub max_age_hours: Option<u64>,
    /// When keeping the next record would need the oldest file deleted.
    #[serde(default)]
    pub when_full: WhenFull,
}

/// What the file sink does when its retention is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Keep every record: the sink stops (requests get 503, as for any
    /// failing sink) until space is freed, then resumes by itself.
    #[default]
    Refuse,
    /// Delete the oldest file (opt-in): counted in
    /// `fieldguard_audit_files_deleted_total`, logged, and the deleted
    /// sequence range named in the next record.
    DeleteOldest,
}

impl WhenFull {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenFull::Refuse => "refuse",
            WhenFull::DeleteOldest => "delete_oldest",
        }
    }
}

/// The retention in effect, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_total_bytes: u64,
    pub max_age: Option<Duration>,
    pub when_full: WhenFull,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            file: None,
            stdout: None,
            max_file_bytes: default_max_file_bytes(),
            max_files: default_max_files(),
            fsync: FsyncPolicy::default(),
            fsync_interval_ms: default_fsync_interval_ms(),
            queue_capacity: default_queue_capacity(),
            on_full: OnFull::default(),
            wait_timeout_ms: default_wait_timeout_ms(),
            retry_interval_ms: default_retry_interval_ms(),
            shutdown_timeout_ms: default_shutdown_timeout_ms(),
            hmac_key_file: None,
            retention: RetentionConfig::default(),
        }
    }
}

fn default_max_file_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_max_files() -> u32 {
    10
}
fn default_fsync_interval_ms() -> u64 {
    200
}
fn default_queue_capacity() -> usize {
    8192
}
fn default_wait_timeout_ms() -> u64 {
    2_000
}
fn default_retry_interval_ms() -> u64 {
    500
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}

/// When written records are fsynced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every write (records written together share one fsync).
    #[default]
    EveryRecord,
    /// At most `fsync_interval_ms` after a write.
    Interval,
}

/// What a request does when the audit queue has no free slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Wait for a slot (backpressure), up to `wait_timeout_ms`, then 503.
    #[default]
    Wait,
    /// Refuse at once with 503.
    FailClosed,
}

/// Smallest accepted HMAC key: the key must be as strong as the hash.
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// The audit section, checked and with paths resolved and the key read.
#[derive(Clone)]
pub struct AuditSettings {
    pub file: Option<PathBuf>,
    pub stdout: bool,
    pub max_file_bytes: u64,
    pub max_files: u32,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub queue_capacity: usize,
    pub on_full: OnFull,
    pub wait_timeout: Duration,
    pub retry_interval: Duration,
    pub shutdown_timeout: Duration,
    pub hmac_key: Option<Vec<u8>>,
    pub retention: Retention,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("file", &self.file)
            .field("stdout", &self.stdout)
            .field("hmac", &self.hmac_key.is_some())
            .finish_non_exhaustive()
    }
}

impl AuditSettings {
    /// Checks the `audit:` section of a loaded config.
    pub fn from_config(c: &AuditConfig, loaded: Origin<'_>) -> Result<Self, ConfigError> {
        let err = |m: &str| ConfigError::file(loaded.file, format!("audit: {m}"));
        if c.queue_capacity == 0 {
            return Err(err("queue_capacity must be at least 1"));
        }
        if c.max_files == 0 {
            return Err(err("max_files must be at least 1"));
        }
        if c.max_file_bytes == 0 {
            return Err(err("max_file_bytes must be at least 1"));
        }
        if c.file.is_none() && c.stdout == Some(false) {
            return Err(err(
                "no sink: set `file`, or leave `stdout` on (records must go somewhere)",
            ));
        }
        let hmac_key = match &c.hmac_key_file {
            Some(p) => Some(read_hmac_key(&loaded.resolve(p))?),
            None => None,
        };
        let retention = retention(c);
        if retention.max_total_bytes < c.max_file_bytes {
            return Err(err(
                "retention.max_total_bytes is smaller than max_file_bytes: it could not hold one file",
            ));
        }
        Ok(Self {
            file: c.file.as_ref().map(|p| loaded.resolve(p)),
            stdout: c.stdout.unwrap_or(c.file.is_none()),
            max_file_bytes: c.max_file_bytes,
            max_files: c.max_files,
            fsync: c.fsync,
            fsync_interval: Duration::from_millis(c.fsync_interval_ms.max(1)),
            queue_capacity: c.queue_capacity,
            on_full: c.on_full,
            wait_timeout: Duration::from_millis(c.wait_timeout_ms),
            retry_interval: Duration::from_millis(c.retry_interval_ms.max(1)),
            shutdown_timeout: Duration::from_millis(c.shutdown_timeout_ms),
            hmac_key,
            retention,
        })
    }

    /// Settings for a file sink with every other value at its default.
    pub fn for_file(file: PathBuf) -> Self {
        let c = AuditConfig::default();
        Self {
            file: Some(file),
            stdout: false,
            max_file_bytes: c.max_file_bytes,
            max_files: c.max_files,
            fsync: c.fsync,
            fsync_interval: Duration::from_millis(c.fsync_interval_ms),
            queue_capacity: c.queue_capacity,
            on_full: c.on_full,
            wait_timeout: Duration::from_millis(c.wait_timeout_ms),
            retry_interval: Duration::from_millis(c.retry_interval_ms),
            shutdown_timeout: Duration::from_millis(c.shutdown_timeout_ms),
            hmac_key: None,
            retention: retention(&c),
        }
    }
}

/// The retention of an `audit:` section, with its default total.
fn retention(c: &AuditConfig) -> Retention {
    let r = &c.retention;
    Retention {
        max_total_bytes: r
            .max_total_bytes
            .unwrap_or_else(|| c.max_file_bytes.saturating_mul(u64::from(c.max_files))),
        max_age: r
            .max_age_hours
            .map(|h| Duration::from_secs(h.saturating_mul(3600))),
        when_full: r.when_full,
    }
}

/// Reads an HMAC key file (trailing whitespace trimmed).
pub fn read_hmac_key(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read audit HMAC key: {e}")))?;
    let key = bytes.trim_ascii_end().to_vec();
    if key.len() < MIN_HMAC_KEY_BYTES {
        return Err(ConfigError::file(
            path,
            format!(
                "audit HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes, got {}",
                key.len()
            ),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> crate::config::LoadedConfig {
        crate::config::load(&crate::demo::run::default_config_path()).unwrap()
    }

    #[test]
    fn the_section_refuses_unknown_keys_and_has_safe_defaults() {
        let c: AuditConfig = serde_saphyr::from_str("file: a.log\non_full: fail_closed\n").unwrap();
        assert_eq!(
            (c.on_full, c.fsync),
            (OnFull::FailClosed, FsyncPolicy::EveryRecord)
        );
        assert!(serde_saphyr::from_str::<AuditConfig>("fil: a.log\n").is_err());

        // No section at all: stdout, so records always go somewhere.
        let s = AuditSettings::from_config(&demo().config.audit, demo().origin()).unwrap();
        assert!(s.stdout && s.file.is_none() && s.hmac_key.is_none());
        assert_eq!(s.on_full, OnFull::Wait);
    }

    #[test]
    fn settings_resolve_paths_and_refuse_no_sink_or_weak_keys() {
        let mut loaded = demo();
        loaded.config.audit.file = Some("logs/audit.log".into());
        let s = AuditSettings::from_config(&loaded.config.audit, loaded.origin()).unwrap();
        assert_eq!(s.file, Some(loaded.base_dir.join("logs/audit.log")));
        assert!(!s.stdout, "a file alone means no stdout copy");

        loaded.config.audit.file = None;
        loaded.config.audit.stdout = Some(false);
        assert!(
            AuditSettings::from_config(&loaded.config.audit, loaded.origin())
                .unwrap_err()
                .message
                .contains("no sink")
        );

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "short\n").unwrap();
        loaded.config.audit.stdout = None;
        loaded.config.audit.hmac_key_file = Some(key.clone());
        assert!(
            AuditSettings::from_config(&loaded.config.audit, loaded.origin())
                .unwrap_err()
                .message
                .contains("at least 32")
        );
        std::fs::write(&key, format!("{}\n", "k".repeat(32))).unwrap();
        let s = AuditSettings::from_config(&loaded.config.audit, loaded.origin()).unwrap();
        assert_eq!(s.hmac_key.as_deref(), Some(&b"k".repeat(32)[..]));
    }
}
