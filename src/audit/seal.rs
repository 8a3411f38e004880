//! Sealing: the writer's step that chains records in order and lays them
//! out in files.
//!
//! Each record's `shared` part is written once per file, as a definition
//! record right before the first record that refers to it; the record's
//! line names it by id. Because a file must hold the definitions its
//! records use, the sealer decides where the file sink starts a new file
//! (with the sink's own rule, [`Layout`]): a record and the definition it
//! needs are one group, never split between files, and a group that starts
//! a file carries its definition again.
//!
//! So a file's first line is always a definition (or a retention, genesis
//! or seal record), which names the previous record's hash (`prev`) and
//! the key (`alg`); request lines leave both out (record formats 3 and 4):
//! their link is the line of their chain before them, which
//! [`super::verify`] hashes them with.
//!
//! A writer run is one chain (format 4): the sealer starts it with a
//! genesis record ([`Sealer::seal_genesis`]), puts the chain's tag on
//! every line, and ends it on a clean shutdown with a seal record
//! ([`Sealer::seal_end`]).

use super::chain::{self, ChainKey, ChainState};
use super::define::{Definitions, MAX_DEFINITIONS};
use super::origin::ChainOrigin;
use super::record::{
    AuditRecord, DEFINITION_EVENT, DefinitionRecord, GENESIS_EVENT, GenesisRecord, PodRecord,
    RECORD_VERSION, RETENTION_EVENT, RetentionEvent, SEAL_EVENT, SealRecord, Shared,
};
use super::sink::Deleted;
use super::sink::Layout;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fieldguard_core::time::rfc3339_millis;
use serde::Serialize;
use std::time::SystemTime;

/// Lines sealed for the sinks, and where the file sink starts new files.
#[derive(Debug, Default)]
pub struct Sealed {
    pub bytes: Vec<u8>,
    /// Offsets in `bytes` where a new file starts (ascending).
    pub new_files: Vec<usize>,
    /// Request and event records in `bytes`.
    pub records: u64,
    /// Definition records in `bytes`.
    pub definitions: u64,
}

pub struct Sealer {
    chain: ChainState,
    /// The chain's tag, on every line.
    tag: std::sync::Arc<str>,
    /// Request and event records sealed in this chain (what the seal
    /// counts).
    count: u64,
    key: ChainKey,
    defs: Definitions<Shared>,
    /// The file sink's current file as sealed so far; `None` without one
    /// (stdout alone: one stream, no files to keep self-contained).
    file: Option<Layout>,
}

impl Sealer {
    /// A new chain tagged `tag` (its first record must be the genesis,
    /// [`Sealer::seal_genesis`]); `file` is where the file sink stands, if
    /// any.
    pub fn new(tag: String, key: ChainKey, file: Option<Layout>) -> Self {
        Self {
            chain: ChainState::genesis(),
            tag: tag.into(),
            count: 0,
            key,
            defs: Definitions::new(MAX_DEFINITIONS),
            file,
        }
    }

    pub fn chain(&self) -> &ChainState {
        &self.chain
    }

    /// Seals the chain's first record: who writes it (`origin`), and what
    /// the file held last before it (`previous`, see
    /// [`super::sink::previous`]).
    pub fn seal_genesis(
        &mut self,
        origin: &ChainOrigin,
        previous: Option<&serde_json::Value>,
        out: &mut Sealed,
    ) {
        let time = rfc3339_millis(SystemTime::now());
        self.place(out, false, |s, bytes| {
            let tag = s.tag.clone();
            let pod =
                (origin.pod_name.is_some() || origin.pod_uid.is_some()).then_some(PodRecord {
                    name: origin.pod_name.as_deref(),
                    uid: origin.pod_uid.as_deref(),
                });
            let g = GenesisRecord {
                alg: s.key.alg(),
                c: &tag,
                chain: &origin.id,
                event: GENESIS_EVENT,
                fieldguard: origin.version,
                host: &origin.host,
                pid: origin.pid,
                pod,
                policy_version: &origin.policy_version,
                prev: chain::spell(&s.chain.last_hash),
                previous,
                seq: s.chain.next_seq,
                time: time.clone(),
                v: RECORD_VERSION,
            };
            s.link(&g, bytes);
            0
        });
    }

    /// Seals the chain's last record, written when the writer stops
    /// cleanly: nothing may follow it in the chain.
    pub fn seal_end(&mut self, reason: &str, out: &mut Sealed) {
        let time = rfc3339_millis(SystemTime::now());
        self.place(out, false, |s, bytes| {
            let tag = s.tag.clone();
            let end = SealRecord {
                alg: s.key.alg(),
                c: &tag,
                count: s.count,
                event: SEAL_EVENT,
                last_seq: s.chain.next_seq.saturating_sub(1),
                prev: chain::spell(&s.chain.last_hash),
                reason,
                seq: s.chain.next_seq,
                time: time.clone(),
                v: RECORD_VERSION,
            };
            s.link(&end, bytes);
            0
        });
    }

    /// Seals one request's record, preceded by its definition when the
    /// current file does not hold that yet.
    pub fn seal(&mut self, mut r: AuditRecord, out: &mut Sealed) {
        self.place(out, true, |s, bytes| {
            let (id, write) = s.defs.id_for(&r.shared);
            if write {
                let tag = s.tag.clone();
                let d = DefinitionRecord {
                    alg: s.key.alg(),
                    c: &tag,
                    def: &id,
                    event: DEFINITION_EVENT,
                    prev: chain::spell(&s.chain.last_hash),
                    seq: s.chain.next_seq,
                    shared: &r.shared,
                    time: rfc3339_millis(SystemTime::now()),
                    v: RECORD_VERSION,
                };
                s.link(&d, bytes);
            }
            let line = &mut r.line;
            line.c.clear();
            line.c.push_str(&s.tag);
            line.def = id;
            line.seq = s.chain.next_seq;
            s.link(&*line, bytes);
            u64::from(write)
        });
    }

    /// Seals the record of files audit retention deleted.
    pub fn seal_retention(&mut self, d: &Deleted, out: &mut Sealed) {
        let time = rfc3339_millis(SystemTime::now());
        self.place(out, true, |s, bytes| {
            let tag = s.tag.clone();
            let event = RetentionEvent {
                alg: s.key.alg(),
                c: &tag,
                deleted_c: [d.first_c.clone(), d.last_c.clone()],
                deleted_files: d.files,
                deleted_seq: [d.first_seq, d.last_seq],
                event: RETENTION_EVENT,
                prev: chain::spell(&s.chain.last_hash),
                seq: s.chain.next_seq,
                time: time.clone(),
                v: RECORD_VERSION,
            };
            s.link(&event, bytes);
            0
        });
    }

    /// What the file sink says after a write: its file's length (the plan
    /// continues from it), and whether it had to start a file the plan did
    /// not (then the next records write their definitions again).
    pub fn file_written(&mut self, len: u64, unplanned_new_file: bool) {
        if let Some(f) = &mut self.file {
            f.len = len;
        }
        if unplanned_new_file {
            self.defs.new_file();
        }
    }

    /// Seals one group of lines with `seal` (which returns how many
    /// definitions it wrote); when the group does not fit in the current
    /// file, starts a new one and seals the group again there (its
    /// definitions included, as the new file holds none).
    ///
    /// `counted`: a request or event record (what the seal's `count` and
    /// the records-written metric count), not the genesis or the seal.
    fn place(
        &mut self,
        out: &mut Sealed,
        counted: bool,
        mut seal: impl FnMut(&mut Self, &mut Vec<u8>) -> u64,
    ) {
        let start = out.bytes.len();
        let before = self.file.is_some().then(|| self.chain.clone());
        let mut definitions = seal(self, &mut out.bytes);
        let mut group = (out.bytes.len() - start) as u64;
        if let (Some(file), Some(before)) = (self.file, before)
            && file.needs_new_file(group)
        {
            out.bytes.truncate(start);
            self.chain = before;
            out.new_files.push(start);
            self.defs.new_file();
            self.file = Some(Layout { len: 0, ..file });
            definitions = seal(self, &mut out.bytes);
            group = (out.bytes.len() - start) as u64;
        }
        if let Some(f) = &mut self.file {
            f.len += group;
        }
        out.definitions += definitions;
        if counted {
            out.records += 1;
            self.count += 1;
        }
    }

    /// Appends `record` (its `seq`, and `prev` where it has one, set from
    /// the chain) as a line with its hash, and advances the chain.
    fn link(&mut self, record: &impl Serialize, out: &mut Vec<u8>) {
        // Records are plain strings, numbers, lists and maps with string
        // keys: serialising cannot fail.
        let canonical = serde_json::to_vec(record).unwrap_or_default();
        let raw = self.key.digest_raw(&self.chain.last_hash, &canonical);
        let spelled = URL_SAFE_NO_PAD.encode(raw);
        chain::write_line(out, &spelled, &canonical);
        self.chain.last_hash = hex::encode(raw);
        self.chain.next_seq += 1;
    }
}
