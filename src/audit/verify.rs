//! `fieldguard audit verify`: checks that one or more log files (oldest
//! first, e.g. `audit.log.2 audit.log.1 audit.log`) form one unbroken chain
//! in which every reference to a definition resolves to one earlier in the
//! chain, and names the first record that does not.
//!
//! A record's link is its `prev` where it has one (always up to format 2;
//! from format 3 on, the first line of each file and every definition and
//! retention record), else the hash of the line before it, which the
//! verifier hashes it with: an edited, deleted, inserted or moved line
//! breaks the chain at that line either way, and each file's first line
//! names the record it continues from.

use super::chain::{self, ChainKey};
use super::expand::Resolver;
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
    /// References must still resolve within what is read (the writer puts
    /// in each file the definitions its records use).
    pub partial: bool,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records of requests and events.
    pub records: u64,
    /// Definition records (what records of one kind share); `first_seq`
    /// to `last_seq` counts them too.
    pub definitions: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last record, spelled as its line spells it: keep it
    /// elsewhere to detect a truncated log later (a chain cannot show that
    /// records were cut off its end).
    pub last_hash: String,
    /// When the chain starts after records that audit retention deleted:
    /// the `seq` range deleted, as the log itself records it.
    pub deleted: Option<DeletedRange>,
}

/// Records before the first one verified that retention deleted, and the
/// record that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The `seq` of the (last) record naming the deletion.
    pub noted_at: u64,
}

/// What the verified records said about retention: each deleted range and
/// the record naming it.
#[derive(Default)]
struct RetentionNotes(Vec<(Option<u64>, Option<u64>, u64)>);

impl RetentionNotes {
    /// Whether a note accounts for every record before `start`. Retention
    /// deletes the oldest file first, so a deletion whose last record is
    /// `start - 1` leaves nothing older: earlier deletions were noted in
    /// files that are gone by now, and need not be seen.
    fn cover(&self, start: u64) -> Option<DeletedRange> {
        self.0
            .iter()
            .rev()
            .find(|&&(_, last, _)| last.is_some_and(|l| l.saturating_add(1) == start))
            .map(|&(_, _, at)| DeletedRange {
                first_seq: 0,
                last_seq: start - 1,
                noted_at: at,
            })
    }
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
    /// The previous record's hash, in hex.
    prev: Option<String>,
}

/// Verifies `files` as one chain, in the order given.
pub fn verify_files(
    files: &[PathBuf],
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    let key = ChainKey::new(opts.hmac_key.as_deref());
    // The first record's link is checked once it is read: a chain starts at
    // the genesis, or (retention) after records the log says it deleted.
    let mut expect = Expect {
        seq: None,
        prev: None,
    };
    let mut report = VerifyReport {
        records: 0,
        definitions: 0,
        first_seq: None,
        last_seq: None,
        last_hash: chain::GENESIS.to_string(),
        deleted: None,
    };
    let mut notes = RetentionNotes::default();
    let mut defs = Resolver::default();
    for file in files {
        let mut state = State {
            expect: &mut expect,
            report: &mut report,
            notes: &mut notes,
            defs: &mut defs,
        };
        verify_file(file, &key, opts, &mut state)?;
    }
    if let (Some(first), false) = (report.first_seq.filter(|&s| s > 0), opts.partial) {
        match notes.cover(first) {
            Some(range) => report.deleted = Some(range),
            None => {
                return Err(VerifyFailure {
                    file: files.first().cloned().unwrap_or_default(),
                    line: 1,
                    seq: Some(first),
                    reason: format!(
                        "the chain starts at seq {first}, so its `prev` names a record that is not \
                         here: records 0 to {} are missing and no record says audit retention \
                         deleted them (verify the older files too, or pass --partial if they were \
                         moved away on purpose)",
                        first - 1
                    ),
                });
            }
        }
    }
    Ok(report)
}

/// What verification carries from one record (and file) to the next.
struct State<'a> {
    expect: &'a mut Expect,
    report: &'a mut VerifyReport,
    notes: &'a mut RetentionNotes,
    defs: &'a mut Resolver,
}

fn verify_file(
    file: &Path,
    key: &ChainKey,
    opts: &VerifyOptions,
    st: &mut State<'_>,
) -> Result<(), VerifyFailure> {
    let keyed = opts.hmac_key.is_some();
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
        let checked = check_record(text, key, keyed, st.expect, st.defs)
            .map_err(|(seq, reason)| fail(line_no, seq, reason))?;
        let seq = checked.seq;
        let report = &mut *st.report;
        if report.first_seq.is_none() && !opts.partial && seq == 0 && checked.prev != chain::GENESIS
        {
            return Err(fail(
                line_no,
                Some(0),
                "the first record of the chain does not link to the genesis".into(),
            ));
        }
        if let Some((a, b)) = checked.deleted {
            st.notes.0.push((a, b, seq));
        }
        if checked.definition {
            report.definitions += 1;
        } else {
            report.records += 1;
        }
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        report.last_hash = checked.spelled;
        st.expect.seq = Some(seq + 1);
        st.expect.prev = Some(checked.hash);
    }
}

/// One record: its own hash first (was it edited? and, for a line without
/// `prev`, does it follow the line before?), then its form (is the line
/// exactly what the writer makes of what was hashed?), then its link to
/// the previous one (was anything deleted, inserted or reordered?), then
/// its definition: a definition's id must be derived from its content, and
/// a record's reference must name one read before, without a key in both.
///
/// The form check closes a gap the hash alone leaves: the hash covers the
/// record as *serde_json* parses it, and other readers can parse the same
/// line differently. A key given twice is the plain case (serde_json keeps
/// the last copy, many readers the first), so a line whose bytes differ at
/// all from the writer's canonical rendering (a repeated key, another key
/// order, whitespace, `1.0` for `1`, `\u0061` for `a`) is refused.
/// A record that verified.
struct Checked {
    seq: u64,
    /// Its hash in hex (what the next record links to), and as its line
    /// spells it.
    hash: String,
    spelled: String,
    /// The hash it links to, in hex.
    prev: String,
    /// The `seq` range it says audit retention deleted before it.
    deleted: Option<(Option<u64>, Option<u64>)>,
    /// Whether it is a definition record.
    definition: bool,
}

fn check_record(
    text: &[u8],
    key: &ChainKey,
    keyed: bool,
    expect: &Expect,
    defs: &mut Resolver,
) -> Result<Checked, (Option<u64>, String)> {
    let mut v: Value =
        serde_json::from_slice(text).map_err(|e| (None, format!("not a JSON record ({e})")))?;
    let obj = v
        .as_object_mut()
        .ok_or((None, "not a JSON object".to_string()))?;
    let seq = obj.get("seq").and_then(Value::as_u64);
    let bad = |reason: &str| (seq, reason.to_string());
    let seq_n = seq.ok_or_else(|| bad("missing `seq`"))?;
    // The format decides how hashes are spelled, and whether a line may
    // leave `prev` and `alg` to the chain.
    let version = obj.get("v").and_then(Value::as_u64).unwrap_or(1);
    let compact = version >= chain::COMPACT_CHAIN_VERSION;
    let spelled = match obj.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err(bad("missing `hash`")),
    };
    let hash = chain::unspell(&spelled, version).ok_or_else(|| {
        bad("`hash` is not a SHA-256 hash spelled as this record format spells it")
    })?;
    let stated_prev = match obj.get("prev") {
        Some(Value::String(p)) => Some(chain::unspell(p, version).ok_or_else(|| {
            bad("`prev` is not a SHA-256 hash spelled as this record format spells it")
        })?),
        Some(_) => return Err(bad("`prev` is not a string")),
        None if compact => None,
        None => return Err(bad("missing `prev`")),
    };
    let prev = match (&stated_prev, &expect.prev) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(bad(
                "no `prev`, and no record before it here to link to: verify it together with the \
                 file before it",
            ));
        }
    };
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
        // A format-3 request line names no key: it is hashed with the one
        // given (or none), like every record of the chain; one written
        // otherwise does not match.
        (None, _) if compact => {}
        _ => return Err(bad("unknown `alg`")),
    }
    let canonical = chain::canonical(&v);
    if key.digest(&prev, &canonical) != hash {
        if stated_prev.is_some() {
            return Err(bad("hash mismatch: the record was modified"));
        }
        // Its link is the line before: a line deleted, inserted or moved
        // shows here too, and its `seq` tells which it is.
        if let Some(want) = expect.seq
            && seq_n != want
        {
            return Err((
                seq,
                format!(
                    "sequence gap: expected seq {want}, found {seq_n}: a record before it was \
                     deleted, inserted or moved"
                ),
            ));
        }
        return Err(bad(
            "hash mismatch: the record was modified, or the line before it (its link: it has no \
             `prev`) is not the record it followed",
        ));
    }
    let mut written = chain::line(&chain::spell_for(&hash, version), &canonical);
    written.pop(); // the newline, already cut off `text`
    if written != text {
        return Err(bad(
            "not in the canonical form fieldguard writes (a repeated key, reordered keys, whitespace, or another spelling of a number or string): readers could see values other than the hashed ones",
        ));
    }
    if let (Some(stated), Some(want)) = (&stated_prev, &expect.prev)
        && stated != want
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
    let definition = defs.define(&v).map_err(|e| (seq, e.to_string()))?;
    if !definition {
        defs.check(&v).map_err(|e| (seq, e.to_string()))?;
    }
    let deleted = v
        .get("event")
        .filter(|e| e.as_str() == Some(super::record::RETENTION_EVENT))
        .and_then(|_| v.get("deleted_seq"))
        .and_then(Value::as_array)
        .map(|a| {
            (
                a.first().and_then(Value::as_u64),
                a.get(1).and_then(Value::as_u64),
            )
        });
    Ok(Checked {
        seq: seq_n,
        hash,
        spelled,
        prev,
        deleted,
        definition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-record chain as the writer lays it out; returns its lines.
    fn chain_lines() -> Vec<String> {
        let key = ChainKey::new(None);
        let mut prev = chain::GENESIS.to_string();
        let mut lines = Vec::new();
        for seq in 0..2u64 {
            let v = serde_json::json!({
                "alg": "sha256", "decision": "allow", "n": 0, "prev": prev,
                "s": "é/\u{1}", "seq": seq, "z": {"b": 1, "a": [true, null]},
            });
            let canonical = chain::canonical(&v);
            let hash = key.digest(&prev, &canonical);
            let line = chain::line(&hash, &canonical);
            lines.push(String::from_utf8(line).unwrap().trim_end().to_string());
            prev = hash;
        }
        lines
    }

    fn verify_lines(lines: &[String]) -> Result<VerifyReport, VerifyFailure> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        verify_files(&[file], &VerifyOptions::default())
    }

    #[test]
    fn the_writers_own_lines_verify() {
        assert_eq!(verify_lines(&chain_lines()).unwrap().records, 2);
    }

    /// Each edit leaves serde_json's reading of the line, and so the hash,
    /// unchanged; only the form check can see it.
    #[test]
    fn any_other_spelling_of_a_hashed_record_is_refused() {
        type Edit = fn(&str) -> String;
        let edits: [(&str, Edit); 9] = [
            ("a key repeated before the hashed copy", |l| {
                l.replacen(
                    "\"decision\":\"allow\"",
                    "\"decision\":\"deny\",\"decision\":\"allow\"",
                    1,
                )
            }),
            ("a key repeated after it", |l| {
                l.replacen("\"n\":0", "\"n\":0,\"n\":0", 1)
            }),
            ("whitespace", |l| l.replacen("\"n\":0", "\"n\": 0", 1)),
            ("a trailing space", |l| format!("{l} ")),
            ("reordered keys", |l| {
                l.replacen(
                    "\"decision\":\"allow\",\"n\":0",
                    "\"n\":0,\"decision\":\"allow\"",
                    1,
                )
            }),
            ("hash not first", |l| {
                let (hash, rest) = l[1..l.len() - 1].split_once(',').unwrap();
                format!("{{{rest},{hash}}}")
            }),
            ("an escaped letter", |l| {
                l.replacen("\"allow\"", "\"\\u0061llow\"", 1)
            }),
            ("an escaped solidus", |l| l.replacen("é/", "é\\/", 1)),
            ("an escaped non-ASCII letter", |l| {
                l.replacen("é/", "\\u00e9/", 1)
            }),
        ];
        for (what, edit) in edits {
            let mut lines = chain_lines();
            let edited = edit(&lines[0]);
            assert_ne!(edited, lines[0], "{what}: the edit changed nothing");
            // serde_json reads the same record, so the hash still matches…
            let mut v: Value = serde_json::from_str(&edited).unwrap();
            v.as_object_mut().unwrap().remove("hash");
            let mut o: Value = serde_json::from_str(&lines[0]).unwrap();
            o.as_object_mut().unwrap().remove("hash");
            assert_eq!(chain::canonical(&v), chain::canonical(&o), "{what}");
            lines[0] = edited;
            // …and only the form check refuses it.
            let e = verify_lines(&lines).unwrap_err();
            assert_eq!((e.line, e.seq), (1, Some(0)), "{what}: {e}");
            assert!(e.reason.contains("canonical form"), "{what}: {e}");
        }
    }

    /// Format 3: base64url hashes, `prev` only on the first line.
    fn compact_lines(n: u64) -> Vec<String> {
        chain_from(chain::GENESIS, 0, n).0
    }

    /// Format-3 lines `start..end` continuing from `prev` (hex); and the
    /// last hash.
    fn chain_from(prev: &str, start: u64, end: u64) -> (Vec<String>, String) {
        let key = ChainKey::new(None);
        let mut prev = prev.to_string();
        let mut lines = Vec::new();
        for seq in start..end {
            let mut v = serde_json::json!({"alg": "sha256", "n": seq, "seq": seq, "v": 3});
            if seq == start {
                v["prev"] = chain::spell(&prev).into();
            } else {
                v.as_object_mut().unwrap().remove("alg");
            }
            let canonical = chain::canonical(&v);
            let hash = key.digest(&prev, &canonical);
            let line = chain::line(&chain::spell(&hash), &canonical);
            lines.push(String::from_utf8(line).unwrap().trim_end().to_string());
            prev = hash;
        }
        (lines, prev)
    }

    /// A log written in hex with `prev` on every line (formats 1 and 2)
    /// goes on in format 3 after an upgrade: one chain, over the hex form.
    #[test]
    fn format_3_continues_a_hex_chain() {
        let mut lines = chain_lines();
        let v: Value = serde_json::from_str(&lines[1]).unwrap();
        let last = v["hash"].as_str().unwrap().to_string();
        lines.extend(chain_from(&last, 2, 5).0);
        let report = verify_lines(&lines).unwrap();
        assert_eq!((report.records, report.last_seq), (5, Some(4)));
        // The first format-3 line names its predecessor in base64url.
        let first: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(first["prev"], chain::spell(&last));
        // …and must name the right one.
        let mut l = lines.clone();
        l.remove(1);
        assert!(
            verify_lines(&l)
                .unwrap_err()
                .reason
                .contains("`prev` does not match")
        );
    }

    #[test]
    fn format_3_lines_link_to_the_line_before() {
        let lines = compact_lines(4);
        let report = verify_lines(&lines).unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(report.last_hash.len(), chain::HASH_B64_LEN);
        let fails = |lines: &[String], line: usize, why: &str| {
            let e = verify_lines(lines).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.reason.contains(why), "{e}");
        };
        let mut l = lines.clone();
        l.remove(2);
        fails(&l, 3, "deleted, inserted or moved");
        let mut l = lines.clone();
        l.swap(1, 2);
        fails(&l, 2, "deleted, inserted or moved");
        let mut l = lines.clone();
        l[1] = l[1].replacen("\"n\":1", "\"n\":9", 1);
        fails(&l, 2, "modified");
        // Nothing before the first line without `prev` to link to.
        fails(&lines[1..], 1, "no `prev`");
        // The same hash spelled in hex is not format 3's spelling.
        let mut l = lines.clone();
        let v: Value = serde_json::from_str(&l[0]).unwrap();
        let b64 = v["hash"].as_str().unwrap();
        let hex = chain::unspell(b64, 3).unwrap();
        l[0] = l[0].replacen(b64, &hex, 1);
        fails(&l, 1, "spelled");
    }

    #[test]
    fn other_spellings_of_numbers_are_refused() {
        for spelling in ["-0", "0.0", "0e0", "0E+0"] {
            let mut lines = chain_lines();
            lines[0] = lines[0].replacen("\"n\":0", &format!("\"n\":{spelling}"), 1);
            let e = verify_lines(&lines).unwrap_err();
            assert_eq!((e.line, e.seq), (1, Some(0)), "{spelling}: {e}");
        }
    }
}
