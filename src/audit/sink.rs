//! Where sealed records go: an append-only file with size-based rotation,
//! and/or stdout. All calls block; the writer runs them off the runtime's
//! worker threads.
//!
//! A failed write never leaves half a record behind: the file is cut back to
//! its last complete record and reopened on the next attempt, so the same
//! bytes can be retried until the sink recovers.

use super::chain::ChainState;
use super::config::FsyncPolicy;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
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
    fsync: FsyncPolicy,
    /// Written but not yet fsynced.
    dirty: bool,
    /// After a failed write: the length of the last complete record.
    truncate_to: Option<u64>,
}

impl FileSink {
    /// Opens (creating) the file for appending.
    pub fn open(
        path: PathBuf,
        max_bytes: u64,
        max_files: u32,
        fsync: FsyncPolicy,
    ) -> io::Result<Self> {
        let mut sink = Self {
            path,
            file: None,
            len: 0,
            max_bytes,
            max_files,
            fsync,
            dirty: false,
            truncate_to: None,
        };
        sink.ensure_open()?;
        Ok(sink)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ensure_open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let mut len = f.metadata()?.len();
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

    /// Appends whole records; rotates first when they would overflow the file.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.ensure_open()?;
        if self.len > 0 && self.len.saturating_add(bytes.len() as u64) > self.max_bytes {
            self.rotate()?;
        }
        let good = self.len;
        let every = self.fsync == FsyncPolicy::EveryRecord;
        let file = self.ensure_open()?;
        let result = file
            .write_all(bytes)
            .and_then(|()| if every { file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Cut the unconfirmed bytes off (now, and again on reopen in
            // case this fails too); the caller retries the same bytes.
            let _ = file.set_len(good);
            self.file = None;
            self.truncate_to = Some(good);
            return Err(e);
        }
        self.len = good + bytes.len() as u64;
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

    /// `FILE` → `FILE.1`, `FILE.1` → `FILE.2`, …; the oldest beyond
    /// `max_files` is overwritten. The chain simply continues in the new file.
    fn rotate(&mut self) -> io::Result<()> {
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
        self.ensure_open().map(|_| ())
    }
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

/// Where the chain stands after the records already in `path` (or, when
/// that is empty or missing, in `path.1`, in case the process stopped right
/// after a rotation). `Ok(None)`: no records yet. A file that does not end
/// with a complete record is an error: an operator must look at it (and
/// `fieldguard audit verify` it) before the chain continues.
pub fn resume(path: &Path) -> Result<Option<ChainState>, String> {
    for candidate in [path.to_path_buf(), numbered(path, 1)] {
        let meta = match std::fs::metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", candidate.display())),
        };
        if !meta.is_file() || meta.len() == 0 {
            continue;
        }
        return last_record(&candidate, meta.len())
            .map(Some)
            .map_err(|e| format!("{}: {e}", candidate.display()));
    }
    Ok(None)
}

fn last_record(path: &Path, len: u64) -> Result<ChainState, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let start = len.saturating_sub(MAX_RECORD_BYTES + 1);
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut tail).map_err(|e| e.to_string())?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Err("the last audit record is incomplete (no final newline); \
                    check the file with `fieldguard audit verify` and move it aside"
            .into());
    };
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return Err("the last audit record is too long".into()),
    };
    let v: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| format!("the last audit record is not JSON ({e})"))?;
    let seq = v.get("seq").and_then(|s| s.as_u64());
    let hash = v.get("hash").and_then(|h| h.as_str());
    match (seq, hash) {
        (Some(seq), Some(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(ChainState {
                next_seq: seq + 1,
                last_hash: hash.to_string(),
            })
        }
        _ => Err("the last audit record has no valid `seq` and `hash`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_shifts_files_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut s = FileSink::open(path.clone(), 10, 2, FsyncPolicy::Interval).unwrap();
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
    fn resume_reads_the_last_record_or_refuses_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        assert_eq!(resume(&path).unwrap(), None);
        let h = "a".repeat(64);
        std::fs::write(
            &path,
            format!(
                "{{\"hash\":\"{}\",\"seq\":4}}\n{{\"hash\":\"{h}\",\"seq\":5}}\n",
                "b".repeat(64)
            ),
        )
        .unwrap();
        assert_eq!(
            resume(&path).unwrap(),
            Some(ChainState {
                next_seq: 6,
                last_hash: h.clone()
            })
        );
        // Empty current file right after a rotation: the rotated one counts.
        std::fs::rename(&path, numbered(&path, 1)).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(resume(&path).unwrap().unwrap().next_seq, 6);
        std::fs::write(&path, "{\"hash\":").unwrap();
        assert!(resume(&path).unwrap_err().contains("incomplete"));
    }
}
