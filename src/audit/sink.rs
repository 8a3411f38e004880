//! Where sealed records go: an append-only file with size-based rotation,
//! and/or stdout. All calls block; the writer runs them off the runtime's
//! worker threads.
//!
//! A failed write never leaves half a record behind: the file is cut back to
//! its last complete record and reopened on the next attempt, so the same
//! bytes can be retried until the sink recovers.
//!
//! Where a new file starts is the writer's decision ([`FileSink::write_planned`]):
//! it must write the definitions a file's records use into that file, so it
//! plans the rotations with the same rule ([`Layout`]) before it seals.

use super::config::{FsyncPolicy, Retention, WhenFull};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest record the resume logic will read back (records are far
/// smaller: their lists are bounded by the catalogue and by caps).
const MAX_RECORD_BYTES: u64 = 1024 * 1024;

pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// Bytes of complete records in the current file.
    len: u64,
    max_bytes: u64,
    max_files: u32,
    retention: Retention,
    /// Bytes held by the rotated files (`FILE.1` … `FILE.N`).
    rotated_bytes: u64,
    /// Files deleted by retention since the writer last asked.
    deleted: Option<Deleted>,
    fsync: FsyncPolicy,
    /// Written but not yet fsynced.
    dirty: bool,
    /// After a failed write: the length of the last complete record.
    truncate_to: Option<u64>,
    /// Files found shorter than written on reopening (moved away or
    /// replaced while a write was retried): new files nobody planned.
    replaced: u64,
}

/// Where the next records go: the current file's length, and the size at
/// which a new one starts. A group of lines that must stay together (a
/// record and the definitions it uses) goes into a new file when it does
/// not fit in the current one, unless that is empty; a group larger than a
/// whole file gets a file of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub len: u64,
    pub max: u64,
}

impl Layout {
    /// Whether a group of `bytes` must start a new file.
    pub fn needs_new_file(&self, bytes: u64) -> bool {
        self.len > 0 && self.len.saturating_add(bytes) > self.max
    }
}

/// Audit files deleted by retention: how many, and the sequence numbers
/// (and chain tags) of the first and last records they held (always the
/// oldest files first). Several chains can have written to the files one
/// after the other; only the chain of the last deleted record can go on
/// in the files kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub files: u32,
    pub first_seq: Option<u64>,
    pub first_c: Option<String>,
    pub last_seq: Option<u64>,
    pub last_c: Option<String>,
}

impl Deleted {
    pub fn merge(self, later: Deleted) -> Deleted {
        let first = if self.first_seq.is_some() {
            (self.first_seq, self.first_c)
        } else {
            (later.first_seq, later.first_c)
        };
        let last = if later.last_seq.is_some() {
            (later.last_seq, later.last_c)
        } else {
            (self.last_seq, self.last_c)
        };
        Deleted {
            files: self.files + later.files,
            first_seq: first.0,
            first_c: first.1,
            last_seq: last.0,
            last_c: last.1,
        }
    }
}

/// The sink's retention is full and it may not delete: the write fails
/// (and is retried) until space is freed.
#[derive(Debug)]
pub struct RetentionFull {
    pub files: u32,
    pub bytes: u64,
}

impl std::fmt::Display for RetentionFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit retention is full ({} rotated files, {} bytes held): keeping the next record would delete evidence; \
             move rotated files away (or set audit.retention.when_full: delete_oldest)",
            self.files, self.bytes
        )
    }
}

impl std::error::Error for RetentionFull {}

impl FileSink {
    /// Opens (creating) the file for appending.
    pub fn open(
        path: PathBuf,
        max_bytes: u64,
        max_files: u32,
        retention: Retention,
        fsync: FsyncPolicy,
    ) -> io::Result<Self> {
        let mut sink = Self {
            path,
            file: None,
            len: 0,
            max_bytes,
            max_files,
            retention,
            rotated_bytes: 0,
            deleted: None,
            fsync,
            dirty: false,
            truncate_to: None,
            replaced: 0,
        };
        sink.ensure_open()?;
        sink.rotated_bytes = sink.measure_rotated();
        Ok(sink)
    }

    /// Bytes the retention can still take before it is full.
    pub fn remaining_bytes(&self) -> u64 {
        self.retention
            .max_total_bytes
            .saturating_sub(self.rotated_bytes + self.len)
    }

    /// The current file's length and the rotation size: where the writer's
    /// plan starts.
    pub fn layout(&self) -> Layout {
        Layout {
            len: self.len,
            max: self.max_bytes,
        }
    }

    /// How many times the file was found shorter than written on
    /// reopening (see [`FileSink::write_planned`]).
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// What retention deleted since the last call.
    pub fn take_deleted(&mut self) -> Option<Deleted> {
        self.deleted.take()
    }

    /// The highest `n` with an existing `FILE.n` (0: none). Files beyond
    /// `max_files` can be left by an earlier, larger setting: they count.
    fn oldest_rotated(&self) -> u32 {
        (1..=self.max_files.saturating_add(64))
            .rev()
            .find(|&n| numbered(&self.path, n).exists())
            .unwrap_or(0)
    }

    fn measure_rotated(&self) -> u64 {
        (1..=self.oldest_rotated())
            .filter_map(|n| std::fs::metadata(numbered(&self.path, n)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Deletes the oldest rotated file, if retention allows it; notes what
    /// it held. `Err` (retention full) when it may not, or there is none.
    fn delete_oldest(&mut self, because_of_age: bool) -> io::Result<()> {
        let n = self.oldest_rotated();
        let full = || {
            io::Error::other(RetentionFull {
                files: n,
                bytes: self.rotated_bytes + self.len,
            })
        };
        if n == 0 || (self.retention.when_full == WhenFull::Refuse && !because_of_age) {
            // Space may have been freed by moving files away since they
            // were last measured: then the caller's check passes again.
            let fresh = self.measure_rotated();
            if fresh < self.rotated_bytes {
                self.rotated_bytes = fresh;
                return Ok(());
            }
            return Err(full());
        }
        let victim = numbered(&self.path, n);
        let ends = seq_range(&victim);
        std::fs::remove_file(&victim)?;
        tracing::warn!(
            file = %victim.display(),
            first_seq = ?ends.first_seq,
            last_seq = ?ends.last_seq,
            last_chain = ?ends.last_c,
            reason = if because_of_age { "max_age_hours" } else { "retention full" },
            "audit retention deleted a file"
        );
        let d = Deleted {
            files: 1,
            first_seq: ends.first_seq,
            first_c: ends.first_c,
            last_seq: ends.last_seq,
            last_c: ends.last_c,
        };
        self.deleted = Some(match self.deleted.take() {
            Some(earlier) => earlier.merge(d),
            None => d,
        });
        self.rotated_bytes = self.measure_rotated();
        Ok(())
    }

    /// Deletes rotated files older than `max_age`, oldest first.
    fn expire(&mut self) -> io::Result<()> {
        let Some(max_age) = self.retention.max_age else {
            return Ok(());
        };
        loop {
            let n = self.oldest_rotated();
            if n == 0 {
                return Ok(());
            }
            let age = std::fs::metadata(numbered(&self.path, n))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_none_or(|a| a <= max_age) {
                return Ok(());
            }
            self.delete_oldest(true)?;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes room for `bytes` more, now: rotates when they would not fit
    /// in the current file, and deletes the oldest files (as retention
    /// allows) until they fit in the retention. The writer calls it before
    /// a chain's last records (its seal), so that writing them deletes
    /// nothing the chain could no longer record. `Err` (retention full under
    /// `refuse`, a failed rotation): no room made; the write will fail and
    /// be retried like any other.
    pub fn make_room(&mut self, bytes: u64) -> io::Result<()> {
        self.ensure_open()?;
        if self.layout().needs_new_file(bytes) {
            self.rotate()?;
        }
        while self.rotated_bytes + self.len + bytes > self.retention.max_total_bytes
            && self.len + bytes <= self.retention.max_total_bytes
        {
            self.delete_oldest(false)?;
        }
        Ok(())
    }

    /// Starts a new file (rotating the current one, if it holds anything):
    /// a new chain's first line must not be appended to a damaged one.
    pub fn start_new_file(&mut self) -> io::Result<()> {
        self.ensure_open()?;
        if self.len > 0 {
            self.rotate()?;
        }
        Ok(())
    }

    fn ensure_open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let mut len = f.metadata()?.len();
            if len < self.truncate_to.unwrap_or(self.len) {
                // Moved away or replaced since it was written: the records
                // that follow start a file nobody planned.
                self.replaced += 1;
            }
            if let Some(good) = self.truncate_to {
                // A failed write or fsync may have left bytes the caller
                // will write again: cut back to the last good record.
                if len > good {
                    f.set_len(good)?;
                    len = good;
                }
                self.truncate_to = None;
            }
            self.len = len;
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit file not open"))
    }

    /// Appends whole records (lines), each line a group of its own (see
    /// [`Layout`]): no file grows past `max_file_bytes`, and a record larger
    /// than that gets a file of its own.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), PartialWrite> {
        let mut layout = self.layout();
        let mut new_files = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let line = first_line(&bytes[at..]);
            if layout.needs_new_file(line as u64) {
                new_files.push(at);
                layout.len = 0;
            }
            layout.len += line as u64;
            at += line;
        }
        self.write_planned(bytes, &new_files)
    }

    /// Appends whole records, starting a new file (rotating) at each offset
    /// in `new_files` (ascending) unless the current file is empty, and
    /// nowhere else; makes room in the retention (or refuses) before each
    /// part. On an error, `written` says how many bytes of `bytes` are
    /// safely in the file: the caller retries the rest (a rotation that
    /// failed is tried again, one that was done is not repeated).
    ///
    /// If the file was moved away while a write was being retried, the
    /// rest goes to a new file nobody planned ([`FileSink::replaced`]
    /// counts it): its first records may refer to definitions left in the
    /// moved file, which `audit verify` over both files still resolves.
    pub fn write_planned(&mut self, bytes: &[u8], new_files: &[usize]) -> Result<(), PartialWrite> {
        let mut done = 0;
        let mut cuts = new_files.iter().copied().peekable();
        while done < bytes.len() {
            let mut rotate = false;
            while let Some(&c) = cuts.peek() {
                if c > done {
                    break;
                }
                rotate |= c == done;
                cuts.next();
            }
            let end = cuts.peek().copied().unwrap_or(bytes.len()).min(bytes.len());
            self.write_part(&bytes[done..end], rotate)
                .map_err(|error| PartialWrite {
                    written: done,
                    error,
                })?;
            done = end;
        }
        Ok(())
    }

    /// Writes whole lines to the current file, or to a new one.
    fn write_part(&mut self, part: &[u8], new_file: bool) -> io::Result<()> {
        self.ensure_open()?;
        if new_file && self.len > 0 {
            self.rotate()?;
        }
        let incoming = part.len() as u64;
        while self.rotated_bytes + self.len + incoming > self.retention.max_total_bytes
            && self.len + incoming <= self.retention.max_total_bytes
        {
            self.delete_oldest(false)?;
        }
        let good = self.len;
        let every = self.fsync == FsyncPolicy::EveryRecord;
        let file = self.ensure_open()?;
        let result = file
            .write_all(part)
            .and_then(|()| if every { file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Cut the unconfirmed bytes off (now, and again on reopen in
            // case this fails too); the caller retries the same bytes.
            let _ = file.set_len(good);
            self.file = None;
            self.truncate_to = Some(good);
            return Err(e);
        }
        self.len = good + incoming;
        self.dirty = !every;
        Ok(())
    }

    /// Fsyncs if anything is unsynced.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(f) = &self.file
            && let Err(e) = f.sync_data()
        {
            self.file = None;
            return Err(e);
        }
        self.dirty = false;
        Ok(())
    }

    pub fn needs_sync(&self) -> bool {
        self.dirty
    }

    /// `FILE` → `FILE.1`, `FILE.1` → `FILE.2`, …. When `max_files` are kept
    /// already, the oldest must go first: deleted (and noted) under
    /// `delete_oldest`, else the rotation is refused and nothing moves. The
    /// chain simply continues in the new file.
    fn rotate(&mut self) -> io::Result<()> {
        self.expire()?;
        while self.oldest_rotated() >= self.max_files {
            self.delete_oldest(false)?;
        }
        self.sync()?;
        self.file = None;
        for i in (1..self.max_files).rev() {
            match std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match std::fs::rename(&self.path, numbered(&self.path, 1)) {
            // The file went away under us (moved by an operator): nothing
            // to rotate, the new file continues the chain.
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.len = 0;
        self.rotated_bytes = self.measure_rotated();
        self.ensure_open().map(|_| ())
    }
}

/// The `seq` and chain tag of the first and last records of an audit
/// file (`None` where unreadable: the deletion is still noted, with what
/// could be read).
pub fn seq_range(path: &Path) -> Ends {
    let first = File::open(path).ok().and_then(|f| {
        let mut line = Vec::new();
        BufReader::new(f.take(MAX_RECORD_BYTES))
            .read_until(b'\n', &mut line)
            .ok()?;
        let v = serde_json::from_slice::<serde_json::Value>(&line).ok()?;
        let c = v.get("c").and_then(|c| c.as_str()).map(str::to_string);
        Some((v.get("seq")?.as_u64()?, c))
    });
    let last = std::fs::metadata(path)
        .ok()
        .and_then(|m| last_record(path, m.len()).ok());
    Ends {
        first_seq: first.as_ref().map(|f| f.0),
        first_c: first.and_then(|f| f.1),
        last_seq: last.as_ref().map(|t| t.seq),
        last_c: last.and_then(|t| t.c),
    }
}

/// The first and last record of a file: `seq` and chain tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ends {
    pub first_seq: Option<u64>,
    pub first_c: Option<String>,
    pub last_seq: Option<u64>,
    pub last_c: Option<String>,
}

/// A write that stopped part-way: the first `written` bytes (whole
/// records) are in the file, the rest is not.
#[derive(Debug)]
pub struct PartialWrite {
    pub written: usize,
    pub error: io::Error,
}

impl std::fmt::Display for PartialWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Length of the first line (with its newline), or all of `bytes`.
fn first_line(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1)
}

/// `FILE.n`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Writes records to stdout (one JSON line each), for log shippers.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// What an audit file held last, for the genesis of the chain that
/// continues the file (`previous`): the last record's chain tag (absent
/// for formats 1-3), `seq`, hash (as spelled) and whether it is a seal;
/// or `{"tail": "incomplete"}` when the file ends in part of a line (a
/// writer killed mid-write), `{"tail": "unreadable"}` when its last line is
/// not a record. In both of those cases `fresh_file` is set: the new chain
/// must start in a new file, so that nothing is appended to the damaged
/// line and the damage stays where `audit verify` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    /// Keys sorted (it is hashed as part of the genesis record).
    pub record: Option<serde_json::Value>,
    pub fresh_file: bool,
}

/// Reads the end of `path` (or, when that is empty or missing, of
/// `path.1`, in case the process stopped right after a rotation). Only a
/// failure to read is an error: whatever the file holds, the new run
/// starts a chain of its own.
pub fn previous(path: &Path) -> Result<Previous, ResumeError> {
    for candidate in [path.to_path_buf(), numbered(path, 1)] {
        let meta = match std::fs::metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ResumeError::new(&candidate, TailProblem::Io(e))),
        };
        if !meta.is_file() || meta.len() == 0 {
            continue;
        }
        let in_current = candidate == path;
        return match last_record(&candidate, meta.len()) {
            Ok(tail) => Ok(Previous {
                record: Some(super::chain::sorted(&tail.summary())),
                fresh_file: false,
            }),
            Err(TailProblem::Io(e)) => Err(ResumeError::new(&candidate, TailProblem::Io(e))),
            Err(problem) => {
                tracing::warn!(
                    file = %candidate.display(),
                    "audit file ends badly ({problem}); the new audit chain starts in a new file"
                );
                let tail = match problem {
                    TailProblem::Incomplete => "incomplete",
                    _ => "unreadable",
                };
                Ok(Previous {
                    record: Some(serde_json::json!({ "tail": tail })),
                    // A damaged `FILE.1` stays as it is; a new `FILE` is
                    // being started anyway.
                    fresh_file: in_current,
                })
            }
        };
    }
    Ok(Previous {
        record: None,
        fresh_file: false,
    })
}

/// The audit file's end could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct ResumeError {
    pub file: std::path::PathBuf,
    pub problem: TailProblem,
}

impl ResumeError {
    fn new(file: &Path, problem: TailProblem) -> Self {
        Self {
            file: file.to_path_buf(),
            problem,
        }
    }
}

/// What is wrong with the end of an audit file.
#[derive(Debug, thiserror::Error)]
pub enum TailProblem {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the last audit record is incomplete (no final newline)")]
    Incomplete,
    #[error("the last audit record is too long")]
    TooLong,
    #[error("the last audit record is not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("{0}")]
    Unchained(&'static str),
}

/// The last record of a file, as far as the next chain's genesis and
/// retention's notes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The chain's tag (format 4), else `None`.
    pub c: Option<String>,
    pub seq: u64,
    /// The hash as the line spells it.
    pub hash: String,
    pub v: u64,
    pub sealed: bool,
}

impl Tail {
    fn summary(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if let Some(c) = &self.c {
            m.insert("c".into(), c.clone().into());
        }
        m.insert("hash".into(), self.hash.clone().into());
        m.insert("sealed".into(), self.sealed.into());
        m.insert("seq".into(), self.seq.into());
        m.insert("v".into(), self.v.into());
        serde_json::Value::Object(m)
    }
}

fn last_record(path: &Path, len: u64) -> Result<Tail, TailProblem> {
    let mut f = File::open(path)?;
    let start = len.saturating_sub(MAX_RECORD_BYTES + 1);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut tail)?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Err(TailProblem::Incomplete);
    };
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return Err(TailProblem::TooLong),
    };
    let v: serde_json::Value = serde_json::from_slice(line).map_err(TailProblem::NotJson)?;
    let seq = v.get("seq").and_then(|s| s.as_u64());
    // Spelled as its format says (base64url from format 3, hex before).
    let version = v.get("v").and_then(|s| s.as_u64()).unwrap_or(1);
    let hash = v
        .get("hash")
        .and_then(|h| h.as_str())
        .filter(|h| super::chain::unspell(h, version).is_some());
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok(Tail {
            c: v.get("c").and_then(|c| c.as_str()).map(str::to_string),
            seq,
            hash: hash.to_string(),
            v: version,
            sealed: v.get("event").and_then(|e| e.as_str()) == Some(super::record::SEAL_EVENT),
        }),
        _ => Err(TailProblem::Unchained(
            "the last audit record has no valid `seq` and `hash`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_shifts_files_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let retention = Retention {
            max_total_bytes: 1_000,
            max_age: None,
            when_full: WhenFull::DeleteOldest,
        };
        let mut s = FileSink::open(path.clone(), 10, 2, retention, FsyncPolicy::Interval).unwrap();
        for line in ["one-----\n", "two-----\n", "three---\n", "four----\n"] {
            s.write(line.as_bytes()).unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "four----\n");
        assert_eq!(read(numbered(&path, 1)), "three---\n");
        assert_eq!(read(numbered(&path, 2)), "two-----\n");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn previous_names_the_last_record_or_a_damaged_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let none = Previous {
            record: None,
            fresh_file: false,
        };
        assert_eq!(previous(&path).unwrap(), none);
        let h = "a".repeat(64);
        std::fs::write(
            &path,
            format!(
                "{{\"hash\":\"{}\",\"seq\":4}}\n{{\"hash\":\"{h}\",\"seq\":5}}\n",
                "b".repeat(64)
            ),
        )
        .unwrap();
        let p = previous(&path).unwrap();
        assert!(!p.fresh_file);
        assert_eq!(
            p.record.unwrap(),
            serde_json::json!({"hash": h, "sealed": false, "seq": 5, "v": 1})
        );
        // Empty current file right after a rotation: the rotated one counts.
        std::fs::rename(&path, numbered(&path, 1)).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(previous(&path).unwrap().record.unwrap()["seq"], 5);
        // A torn last line (a writer killed mid-write): noted, and the new
        // chain starts in a new file.
        std::fs::write(&path, "{\"hash\":").unwrap();
        let p = previous(&path).unwrap();
        assert!(p.fresh_file);
        assert_eq!(p.record.unwrap(), serde_json::json!({"tail": "incomplete"}));
        // Format 4: the chain's tag, and whether it was sealed.
        let b64 = crate::audit::chain::spell(&h);
        std::fs::write(
            &path,
            format!("{{\"hash\":\"{b64}\",\"c\":\"AAAAAAAAAAA\",\"event\":\"seal\",\"seq\":7,\"v\":4}}\n"),
        )
        .unwrap();
        let p = previous(&path).unwrap();
        assert_eq!(
            p.record.unwrap(),
            serde_json::json!({"c": "AAAAAAAAAAA", "hash": b64, "sealed": true, "seq": 7, "v": 4})
        );
        // A hash not spelled as its format spells it: unreadable.
        std::fs::write(&path, format!("{{\"hash\":\"{h}\",\"seq\":7,\"v\":3}}\n")).unwrap();
        let p = previous(&path).unwrap();
        assert!(p.fresh_file);
        assert_eq!(p.record.unwrap()["tail"], "unreadable");
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    fn sink(dir: &Path, when_full: WhenFull) -> FileSink {
        let retention = Retention {
            max_total_bytes: 300,
            max_age: None,
            when_full,
        };
        FileSink::open(dir.join("a.log"), 100, 2, retention, FsyncPolicy::Interval).unwrap()
    }

    fn record(seq: u64) -> String {
        format!("{{\"hash\":\"{}\",\"seq\":{seq:<5}}}\n", "a".repeat(64))
    }

    #[test]
    fn a_batch_is_split_between_records_when_the_file_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), WhenFull::DeleteOldest);
        // Three records of 85 bytes: one per 100-byte file.
        let batch: String = (0..3).map(record).collect();
        s.write(batch.as_bytes()).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let path = dir.path().join("a.log");
        assert_eq!(read(numbered(&path, 2)), record(0));
        assert_eq!(read(numbered(&path, 1)), record(1));
        assert_eq!(read(path), record(2));
    }

    #[test]
    fn refuse_keeps_every_file_and_resumes_when_space_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), WhenFull::Refuse);
        for seq in 0..3 {
            s.write(record(seq).as_bytes()).unwrap();
        }
        let err = s.write(record(3).as_bytes()).unwrap_err();
        assert_eq!(err.written, 0);
        assert!(err.error.to_string().contains("retention is full"), "{err}");
        assert!(s.take_deleted().is_none());
        let path = dir.path().join("a.log");
        std::fs::rename(numbered(&path, 2), dir.path().join("shipped")).unwrap();
        s.write(record(3).as_bytes()).unwrap();
        let ends = seq_range(&numbered(&path, 2));
        assert_eq!((ends.first_seq, ends.last_seq), (Some(1), Some(1)));
    }

    #[test]
    fn make_room_rotates_and_deletes_before_the_last_records_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), WhenFull::DeleteOldest);
        for seq in 0..3 {
            s.write(record(seq).as_bytes()).unwrap();
        }
        assert!(s.take_deleted().is_none());
        // 85 more bytes do not fit in the current file, nor in the
        // retention: rotated and the oldest deleted now, not by the write.
        s.make_room(85).unwrap();
        assert_eq!(s.layout().len, 0);
        let d = s.take_deleted().unwrap();
        assert_eq!((d.files, d.first_seq), (1, Some(0)));
        s.write(record(3).as_bytes()).unwrap();
        assert!(s.take_deleted().is_none());
        // Under `refuse`, no room is made: the write will be refused.
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), WhenFull::Refuse);
        for seq in 0..3 {
            s.write(record(seq).as_bytes()).unwrap();
        }
        assert!(s.make_room(85).is_err());
    }

    #[test]
    fn delete_oldest_notes_the_seq_range_it_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), WhenFull::DeleteOldest);
        for seq in 0..5 {
            s.write(record(seq).as_bytes()).unwrap();
        }
        assert_eq!(
            s.take_deleted(),
            Some(Deleted {
                files: 2,
                first_seq: Some(0),
                first_c: None,
                last_seq: Some(1),
                last_c: None,
            })
        );
        assert!(s.remaining_bytes() <= 300 - 3 * 85);
    }
}
