//! The audit trail (CDM-4.2.3, CDM-1.2.5): one tamper-evident JSON line per
//! request saying who did what to which resource, under which policies and
//! policy-set version, and what was hidden from them — names, ids and
//! counts only, never the data itself.
//!
//! [`record`] builds a record from a finished request, [`log`] queues and
//! writes it, [`seal`] chains it and writes what requests of one kind share
//! once per file as a definition ([`define`] remembers which), [`chain`]
//! links records by hash, and [`sink`] owns the file and its rotation. The
//! readers (verify, expand, filter, subject) are offline tools and live in
//! `crate::tools::audit`; the serving code never imports them. Each writer
//! run is a chain of its own ([`origin`] names it), from a genesis record
//! to a seal record; `fieldguard audit verify` sorts the lines of many
//! chains (a fleet's files, merged streams) into their chains and checks
//! each.

pub mod chain;
pub mod config;
pub mod define;
pub mod log;
pub mod origin;
pub mod record;
pub mod seal;
pub mod sink;

pub use config::{AuditConfig, AuditSettings, FsyncPolicy, OnFull, Retention, WhenFull};
pub use log::{AuditLog, AuditWriter, Slot, StartError, Unavailable, start, start_chain};
pub use origin::ChainOrigin;
pub use record::{AuditRecord, DecidedBy};
pub use sink::{ResumeError, TailProblem};
