//! The audit trail (CDM-4.2.3, CDM-1.2.5): one tamper-evident JSON line per
//! request saying who did what to which resource, under which policies and
//! policy-set version, and what was hidden from them — names, ids and
//! counts only, never the data itself.
//!
//! [`record`] builds a record from a finished request, [`log`] queues and
//! writes it, [`chain`] links records by hash, [`sink`] owns the file and
//! its rotation, [`verify`] checks a written log, [`subject`] finds what it
//! says about one customer.

pub mod chain;
pub mod config;
pub mod log;
pub mod record;
pub mod sink;
pub mod subject;
/// Timestamps (shared with the core crate, whose warnings carry them).
pub use fieldguard_core::time;
pub mod verify;

pub use config::{AuditConfig, AuditSettings, FsyncPolicy, OnFull, Retention, WhenFull};
pub use log::{AuditLog, AuditWriter, Slot, Unavailable, start};
pub use record::AuditRecord;
pub use verify::{VerifyFailure, VerifyOptions, VerifyReport, verify_files};
