//! `fieldguard audit verify`: checks that one or more log files (oldest
//! first, e.g. `audit.log.2 audit.log.1 audit.log`) form one unbroken chain,
//! and names the first record that does not.

use super::chain::{self, ChainKey};
use serde_json::Value;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Needed for logs written with `audit.hmac_key_file`. When given, every
    /// record must be keyed: an unkeyed record could have been recomputed by
    /// anyone.
    pub hmac_key: Option<Vec<u8>>,
    /// The first file does not start the chain (older files were rotated
    /// away): accept its first record's `seq` and `prev` as given.
    pub partial: bool,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last record: keep it elsewhere to detect a truncated log
    /// later (a chain cannot show that records were cut off its end).
    pub last_hash: String,
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: usize,
    /// The record's `seq`, when it could be read.
    pub seq: Option<u64>,
    pub reason: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(seq) = self.seq {
            write!(f, "record seq {seq}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for VerifyFailure {}

struct Expect {
    seq: Option<u64>,
    prev: Option<String>,
}

/// Verifies `files` as one chain, in the order given.
pub fn verify_files(
    files: &[PathBuf],
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    let key = ChainKey::new(opts.hmac_key.as_deref());
    let mut expect = if opts.partial {
        Expect {
            seq: None,
            prev: None,
        }
    } else {
        Expect {
            seq: Some(0),
            prev: Some(chain::GENESIS.to_string()),
        }
    };
    let mut report = VerifyReport {
        records: 0,
        first_seq: None,
        last_seq: None,
        last_hash: chain::GENESIS.to_string(),
    };
    for file in files {
        verify_file(
            file,
            &key,
            opts.hmac_key.is_some(),
            &mut expect,
            &mut report,
        )?;
    }
    Ok(report)
}

fn verify_file(
    file: &Path,
    key: &ChainKey,
    keyed: bool,
    expect: &mut Expect,
    report: &mut VerifyReport,
) -> Result<(), VerifyFailure> {
    let fail = |line: usize, seq: Option<u64>, reason: String| VerifyFailure {
        file: file.to_path_buf(),
        line,
        seq,
        reason,
    };
    let f = std::fs::File::open(file).map_err(|e| fail(0, None, format!("cannot open: {e}")))?;
    let mut reader = BufReader::new(f);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| fail(line_no + 1, None, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let Some(text) = buf.strip_suffix(b"\n") else {
            return Err(fail(
                line_no,
                None,
                "incomplete record (no final newline)".into(),
            ));
        };
        let (seq, hash) = check_record(text, key, keyed, expect)
            .map_err(|(seq, reason)| fail(line_no, seq, reason))?;
        report.records += 1;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        report.last_hash.clone_from(&hash);
        expect.seq = Some(seq + 1);
        expect.prev = Some(hash);
    }
}

/// One record: its own hash first (was it edited?), then its link to the
/// previous one (was anything deleted, inserted or reordered?).
fn check_record(
    text: &[u8],
    key: &ChainKey,
    keyed: bool,
    expect: &Expect,
) -> Result<(u64, String), (Option<u64>, String)> {
    let mut v: Value =
        serde_json::from_slice(text).map_err(|e| (None, format!("not a JSON record ({e})")))?;
    let obj = v
        .as_object_mut()
        .ok_or((None, "not a JSON object".to_string()))?;
    let seq = obj.get("seq").and_then(Value::as_u64);
    let bad = |reason: &str| (seq, reason.to_string());
    let seq_n = seq.ok_or_else(|| bad("missing `seq`"))?;
    let hash = match obj.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err(bad("missing `hash`")),
    };
    let prev = obj
        .get("prev")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing `prev`"))?
        .to_string();
    match (obj.get("alg").and_then(Value::as_str), keyed) {
        (Some("hmac-sha256"), true) | (Some("sha256"), false) => {}
        (Some("hmac-sha256"), false) => {
            return Err(bad("the record is HMAC-keyed: pass --hmac-key-file"));
        }
        (Some("sha256"), true) => {
            return Err(bad(
                "the record is not HMAC-keyed although a key was given (anyone could have written it)",
            ));
        }
        _ => return Err(bad("unknown `alg`")),
    }
    if key.digest(&prev, &chain::canonical(&v)) != hash {
        return Err(bad("hash mismatch: the record was modified"));
    }
    if let Some(want) = &expect.prev
        && &prev != want
    {
        return Err(bad(
            "`prev` does not match the previous record's hash: a record before it was deleted, inserted or moved",
        ));
    }
    if let Some(want) = expect.seq
        && seq_n != want
    {
        return Err((
            seq,
            format!("sequence gap: expected seq {want}, found {seq_n}"),
        ));
    }
    Ok((seq_n, hash))
}
