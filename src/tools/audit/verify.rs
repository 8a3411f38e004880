//! `fieldguard audit verify`: checks audit files — of one process or of a
//! whole fleet, in any order, directories too — chain by chain.
//!
//! A chain is one writer run (record format 4): it starts with a genesis
//! record naming it, every line carries its tag `c`, and a clean shutdown
//! ends it with a seal record. The verifier sorts every line into its
//! chain by that tag (so the lines of many chains interleaved in one file,
//! as a log store merges the stdout of many pods, verify as well as one
//! file per pod), orders each chain's files by the first `seq` they hold
//! of it, and checks the chain as one: every record's hash, its link, its
//! form, its definitions. Lines of one chain must stand in ascending order
//! within a file; two swapped lines break the chain there.
//!
//! Each chain is reported as *sealed* (it ends with its seal: the writer
//! stopped cleanly and nothing was cut off), *open* (no seal: the writer is
//! still running, or was killed; its last `seq` and time say where it
//! stands) or *broken* (a record edited, deleted, inserted or moved, the
//! first bad one named). A chain whose first records are not here verifies
//! when a retention record (of any chain in the set) says they were
//! deleted, or with `--partial`.
//!
//! Lines without a chain tag (formats 1 to 3, written before chains were
//! per run) form one chain of their own, verified in the order the files
//! are given (a directory's files in rotation order: `audit.log.2`,
//! `audit.log.1`, `audit.log`) exactly as before: they have no seal.
//!
//! A record's link is its `prev` where it has one (always up to format 2;
//! from format 3 on, the first line of each file and every definition,
//! retention, genesis and seal record), else the hash of the line of its
//! chain before it, which the verifier hashes it with: an edited, deleted,
//! inserted or moved line breaks the chain at that line either way.

use super::expand::Resolver;
use crate::audit::chain::{self, ChainKey};
use crate::audit::origin;
use crate::audit::record::{GENESIS_EVENT, RETENTION_EVENT, SEAL_EVENT};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Needed for logs written with `audit.hmac_key_file`. When given, every
    /// record must be keyed: an unkeyed record could have been recomputed by
    /// anyone.
    pub hmac_key: Option<Vec<u8>>,
    /// A chain's first records may be missing (older files were moved
    /// away): accept its first record's `seq` and `prev` as given.
    /// References must still resolve within what is read (the writer puts
    /// in each file the definitions its records use).
    pub partial: bool,
}

/// What verified of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records of requests and events (retention); not the definitions,
    /// and not the genesis and seal records.
    pub records: u64,
    /// Definition records (what records of one kind share); `first_seq`
    /// to `last_seq` counts them too.
    pub definitions: u64,
    /// Every line verified (records, definitions, genesis and seal).
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last record, spelled as its line spells it: keep it
    /// elsewhere to detect a truncated log later (a chain cannot show that
    /// records were cut off its end, unless it is sealed or a later run's
    /// genesis names its end).
    pub last_hash: String,
    /// When the chain starts after records that audit retention deleted:
    /// the `seq` range deleted, as the log itself records it.
    pub deleted: Option<DeletedRange>,
}

/// Records before the first one verified that retention deleted, and the
/// record that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeletedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The `seq` of the (last) record naming the deletion (in the chain
    /// that wrote it, which can be a later one).
    pub noted_at: u64,
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    pub file: PathBuf,
    /// 1-based line in `file` (0: the file as a whole).
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

/// What a chain's genesis record says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenesisInfo {
    /// The full chain id (`<pod or host>/<tag>`).
    pub id: String,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u64>,
    pub policy_version: Option<String>,
    pub fieldguard: Option<String>,
    /// When the writer started.
    pub time: Option<String>,
    /// What the file held last before this chain (see
    /// [`super::sink::previous`]).
    pub previous: Option<Value>,
}

/// What a chain's seal record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealInfo {
    pub seq: u64,
    pub reason: String,
    pub time: Option<String>,
    pub count: u64,
}

/// How a chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    /// Verified, and ends with its seal.
    Sealed,
    /// Verified up to its last record; no seal (still being written, or
    /// the writer was killed; always for formats 1 to 3).
    Open,
    /// A record does not verify.
    Broken,
}

impl ChainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainStatus::Sealed => "sealed",
            ChainStatus::Open => "open",
            ChainStatus::Broken => "broken",
        }
    }
}

/// One chain of a set of files.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// The tag on its lines; `None` for the lines of formats 1 to 3.
    pub tag: Option<String>,
    pub genesis: Option<GenesisInfo>,
    pub status: ChainStatus,
    /// What verified (up to the failure, for a broken chain).
    pub report: VerifyReport,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub seal: Option<SealInfo>,
    /// The file whose last, incomplete line is this chain's (its writer
    /// was killed mid-write).
    pub torn: Option<PathBuf>,
    /// The chain starts after records that are not here, accepted by
    /// `--partial`.
    pub partial: bool,
    pub failure: Option<VerifyFailure>,
    /// Its files, in chain order.
    pub files: Vec<PathBuf>,
    #[serde(skip)]
    segments: Vec<Segment>,
}

impl ChainReport {
    /// The chain's name for people: its id, else its tag, else what
    /// formats 1 to 3 are.
    pub fn name(&self) -> String {
        match (&self.genesis, &self.tag) {
            (Some(g), _) => g.id.clone(),
            (None, Some(t)) => format!("…/{t}"),
            (None, None) => "(formats 1-3, no chain id)".to_string(),
        }
    }

    /// What `audit verify` prints about the chain, one line (and a second
    /// for a broken chain's failure).
    pub fn to_text(&self) -> String {
        use fmt::Write;
        let r = &self.report;
        let mut out = format!("chain {}", self.name());
        if let Some(g) = &self.genesis {
            let mut about = Vec::new();
            if let Some(p) = &g.pod_name {
                about.push(format!("pod {p}"));
            }
            if let Some(h) = &g.host {
                about.push(format!("host {h}"));
            }
            if let Some(pid) = g.pid {
                about.push(format!("pid {pid}"));
            }
            if let Some(v) = &g.policy_version {
                about.push(format!("policies {v}"));
            }
            if !about.is_empty() {
                let _ = write!(out, " ({})", about.join(", "));
            }
        }
        let _ = write!(out, ": {}", self.status.as_str());
        match (self.status, &self.seal) {
            (ChainStatus::Sealed, Some(s)) => {
                let _ = write!(out, " ({})", s.reason);
            }
            (ChainStatus::Open, _) if self.tag.is_none() => {
                out.push_str(" (formats 1-3 have no seal)");
            }
            (ChainStatus::Open, _) => {
                out.push_str(" (no seal: still running, or cut off");
                if self.torn.is_some() {
                    out.push_str(" mid-record");
                }
                let _ = write!(
                    out,
                    "; last seq {} at {})",
                    r.last_seq.map_or("-".to_string(), |s| s.to_string()),
                    self.last_time.as_deref().unwrap_or("-")
                );
            }
            _ => {}
        }
        match (r.first_seq, r.last_seq) {
            (Some(first), Some(last)) => {
                let _ = write!(
                    out,
                    ": {}, {}, seq {first} to {last}",
                    plural(r.records, "record"),
                    plural(r.definitions, "definition")
                );
            }
            _ => out.push_str(": no records"),
        }
        if let (Some(a), Some(b)) = (&self.first_time, &self.last_time) {
            let _ = write!(out, ", {a} to {b}");
        }
        if !r.last_hash.is_empty() && r.last_seq.is_some() {
            let _ = write!(out, ", last hash {}", r.last_hash);
        }
        if let Some(d) = r.deleted {
            let _ = write!(
                out,
                "\n  partial: starts at seq {} after audit retention deleted seq {} to {} (recorded at seq {})",
                d.last_seq + 1,
                d.first_seq,
                d.last_seq,
                d.noted_at
            );
        } else if self.partial {
            let _ = write!(
                out,
                "\n  partial: starts at seq {} (--partial: earlier records not given)",
                r.first_seq.unwrap_or(0)
            );
        }
        if let Some(f) = &self.failure {
            let _ = write!(out, "\n  broken at {f}");
        }
        out
    }
}

/// `1 record`, `2 records`.
fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Every chain of a set of files, and the lines that belong to none.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Chains, oldest first (by their first record's time).
    pub chains: Vec<ChainReport>,
    /// Lines that are no chain's (not JSON, no tag on a format-4 line,
    /// an incomplete line of formats 1-3) and unreadable files: each
    /// makes the set fail like a broken chain.
    pub problems: Vec<VerifyFailure>,
    /// The files read, in the order read.
    pub files: Vec<PathBuf>,
}

impl FleetReport {
    /// No chain broken and no line astray.
    pub fn intact(&self) -> bool {
        self.problems.is_empty() && self.chains.iter().all(|c| c.failure.is_none())
    }

    pub fn count(&self, status: ChainStatus) -> usize {
        self.chains.iter().filter(|c| c.status == status).count()
    }

    /// The first thing wrong: a line astray, or a broken chain's failure
    /// (with the chain's name).
    pub fn first_failure(&self) -> Option<(Option<&ChainReport>, &VerifyFailure)> {
        if let Some(p) = self.problems.first() {
            return Some((None, p));
        }
        self.chains
            .iter()
            .find_map(|c| c.failure.as_ref().map(|f| (Some(c), f)))
    }

    /// The first failure as a command's final error: a file that cannot
    /// be opened says so (it is no evidence of tampering); anything else
    /// is a broken chain, named.
    pub fn failure_message(&self) -> Option<String> {
        let (chain, f) = self.first_failure()?;
        if f.line == 0
            && let Some(why) = f.reason.strip_prefix("cannot open: ")
        {
            return Some(format!("cannot open {}: {why}", f.file.display()));
        }
        Some(match chain {
            Some(c) => format!("audit chain broken at {f} (chain {})", c.name()),
            None => format!("audit chain broken at {f} (a line in no chain)"),
        })
    }

    /// The report for people: a line per chain and a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.chains {
            out.push_str(&c.to_text());
            out.push('\n');
        }
        for p in &self.problems {
            out.push_str(&format!("not in any chain: {p}\n"));
        }
        out.push_str(&format!(
            "{} chain{}: {} sealed, {} open, {} broken{}\n",
            self.chains.len(),
            if self.chains.len() == 1 { "" } else { "s" },
            self.count(ChainStatus::Sealed),
            self.count(ChainStatus::Open),
            self.count(ChainStatus::Broken),
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} not in any chain (unreadable, or lines of no chain)",
                    plural(self.problems.len() as u64, "file")
                )
            }
        ));
        out
    }
}

/// Verifies `files` as ONE chain (a single writer run, or the single chain
/// of formats 1 to 3), as the files of one process were verified before
/// chains were per run. A set holding several chains is refused: use
/// [`verify_set`].
pub fn verify_files(
    files: &[PathBuf],
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    let fleet = verify_set(files, opts);
    if let Some((_, f)) = fleet.first_failure() {
        return Err(f.clone());
    }
    match fleet.chains.as_slice() {
        [] => Ok(VerifyReport {
            records: 0,
            definitions: 0,
            lines: 0,
            first_seq: None,
            last_seq: None,
            last_hash: chain::GENESIS.to_string(),
            deleted: None,
        }),
        [one] => Ok(one.report.clone()),
        many => Err(VerifyFailure {
            file: files.first().cloned().unwrap_or_default(),
            line: 0,
            seq: None,
            reason: format!(
                "the files hold {} chains ({}), not one",
                many.len(),
                many.iter()
                    .map(ChainReport::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The files named, with each directory replaced by the regular files (or
/// links to them) in it, not those whose name starts with a dot, in
/// rotation order; each file once. An unreadable directory is a problem.
pub fn expand_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<VerifyFailure>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |p: PathBuf, files: &mut Vec<PathBuf>| {
        let key = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.insert(key) {
            files.push(p);
        }
    };
    for input in inputs {
        if input.is_dir() {
            let entries = match std::fs::read_dir(input) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(VerifyFailure {
                        file: input.clone(),
                        line: 0,
                        seq: None,
                        reason: format!("cannot read the directory: {e}"),
                    });
                    continue;
                }
            };
            let mut in_dir: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            in_dir.sort_by_key(|p| rotation_key(p));
            for p in in_dir {
                push(p, &mut files);
            }
        } else {
            push(input.clone(), &mut files);
        }
    }
    (files, problems)
}

/// `audit.log.3`, `audit.log.2`, `audit.log.1`, `audit.log`: the base name,
/// then the rotation number, highest (oldest) first.
fn rotation_key(p: &Path) -> (String, std::cmp::Reverse<u64>) {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (
            base.to_string(),
            std::cmp::Reverse(n.parse().unwrap_or(u64::MAX)),
        ),
        _ => (name, std::cmp::Reverse(0)),
    }
}

/// What a line is, read cheaply: its chain tag, `seq` and format.
#[derive(serde::Deserialize)]
struct Peek {
    #[serde(default)]
    c: Option<Value>,
    #[serde(default)]
    seq: Option<Value>,
    #[serde(default)]
    v: Option<Value>,
}

/// Why a complete line belongs to no chain.
#[derive(Debug, thiserror::Error)]
enum NoChain {
    #[error("not a JSON record ({0})")]
    NotJson(serde_json::Error),
    #[error("`c` is not a chain tag")]
    BadTag,
    #[error("a format-{0} record without its chain tag `c`")]
    Untagged(u64),
}

/// Which chain a complete line belongs to: `Ok(Some(tag))`, `Ok(None)` for
/// formats 1 to 3, `Err` for a line that belongs to none.
fn chain_of(text: &[u8]) -> Result<(Option<String>, Option<u64>), NoChain> {
    let peek: Peek = serde_json::from_slice(text).map_err(NoChain::NotJson)?;
    let seq = peek.seq.as_ref().and_then(Value::as_u64);
    let v = peek.v.as_ref().and_then(Value::as_u64).unwrap_or(1);
    match peek.c {
        Some(Value::String(c)) if origin::is_tag(&c) => Ok((Some(c), seq)),
        Some(_) => Err(NoChain::BadTag),
        None if v >= CHAIN_TAG_VERSION => Err(NoChain::Untagged(v)),
        None => Ok((None, seq)),
    }
}

/// First record format whose lines carry their chain's tag.
pub const CHAIN_TAG_VERSION: u64 = 4;

/// The tag in an incomplete line, if the part written holds it.
fn tag_in_fragment(text: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"c\":\"";
    let at = text.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = text.get(at..at + origin::TAG_LEN + 1)?;
    let tag = std::str::from_utf8(&rest[..origin::TAG_LEN]).ok()?;
    (rest[origin::TAG_LEN] == b'"' && origin::is_tag(tag)).then(|| tag.to_string())
}

/// Where a chain's lines are in one file.
#[derive(Debug, Clone)]
struct Segment {
    file: usize,
    first_seq: Option<u64>,
    /// Lines of the chain in the file, as the first pass counted them.
    lines: u64,
}

/// Calls `each(line number, line)` for every complete line of `file` that
/// belongs to the chain `tag` (`None`: formats 1 to 3), in file order.
/// `each` returns `false` to stop.
fn chain_lines(
    file: &Path,
    tag: Option<&str>,
    mut each: impl FnMut(usize, &[u8]) -> bool,
) -> Result<(), VerifyFailure> {
    let fail = |line: usize, reason: String| VerifyFailure {
        file: file.to_path_buf(),
        line,
        seq: None,
        reason,
    };
    let f = std::fs::File::open(file).map_err(|e| fail(0, format!("cannot open: {e}")))?;
    let needle = tag.map(|t| format!("\"c\":\"{t}\"").into_bytes());
    let mut reader = BufReader::new(f);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| fail(line_no + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let Some(text) = buf.strip_suffix(b"\n") else {
            // An incomplete last line: the scan attributed it.
            return Ok(());
        };
        if let Some(n) = &needle
            && !text.windows(n.len()).any(|w| w == n.as_slice())
        {
            continue;
        }
        let ours = match chain_of(text) {
            Ok((c, _)) => c.as_deref() == tag,
            Err(_) => false,
        };
        if ours && !each(line_no, text) {
            return Ok(());
        }
    }
}

/// What a retention record said was deleted.
#[derive(Debug, Clone)]
struct Note {
    /// The chain of the last deleted record (`None`: formats 1 to 3).
    last_c: Option<String>,
    last_seq: Option<u64>,
    noted_at: u64,
}

/// Verifies a set of audit files (and directories), chain by chain: see
/// the module's documentation. Never fails as a whole: what is wrong is in
/// the report ([`FleetReport::intact`]).
pub fn verify_set(inputs: &[PathBuf], opts: &VerifyOptions) -> FleetReport {
    let (files, mut problems) = expand_inputs(inputs);
    // First pass: which chains each file holds, where each starts in it,
    // and incomplete last lines.
    let mut scan = Scan::default();
    for (fi, file) in files.iter().enumerate() {
        scan.file(fi, file, &mut problems);
    }
    // Second pass: each chain, its files in chain order.
    let key = ChainKey::new(opts.hmac_key.as_deref());
    let mut notes = Vec::new();
    let mut chains: Vec<ChainReport> = Vec::new();
    for tag in std::mem::take(&mut scan.order) {
        let segments = scan.plans.remove(&tag).unwrap_or_default();
        let mut c = ChainReport::unverified(tag, segments, &files);
        verify_chain(&files, &mut c, &key, opts, &mut notes);
        if let Some(t) = &c.tag
            && let Some(fi) = scan.torn.remove(t)
        {
            c.torn_at(fi, &files);
        }
        chains.push(c);
    }
    for (tag, fi) in scan.torn {
        problems.push(VerifyFailure {
            file: files[fi].clone(),
            line: 0,
            seq: None,
            reason: format!(
                "ends in an incomplete line of chain {tag}, whose other lines are not here"
            ),
        });
    }
    for c in &mut chains {
        check_start(c, &notes, opts.partial);
    }
    check_previous(&mut chains);
    // Oldest first (times are RFC 3339 UTC with milliseconds: their text
    // sorts as they do), whatever order the files came in.
    chains.sort_by(|a, b| {
        (a.first_time.is_none(), &a.first_time, &a.tag).cmp(&(
            b.first_time.is_none(),
            &b.first_time,
            &b.tag,
        ))
    });
    for c in &mut chains {
        c.status = match (&c.failure, &c.seal) {
            (Some(_), _) => ChainStatus::Broken,
            (None, Some(_)) => ChainStatus::Sealed,
            (None, None) => ChainStatus::Open,
        };
    }
    FleetReport {
        chains,
        problems,
        files,
    }
}

/// What the first pass of [`verify_set`] found: the chains in the order
/// first seen, where each is in which file, and which file ends in an
/// incomplete line of which chain.
#[derive(Default)]
struct Scan {
    order: Vec<Option<String>>,
    plans: HashMap<Option<String>, Vec<Segment>>,
    torn: HashMap<String, usize>,
}

impl Scan {
    /// Reads file `fi` line by line, noting which chain each line belongs
    /// to. A file that is not an audit log at all is one problem, not one
    /// per line: the first is named, the others counted.
    fn file(&mut self, fi: usize, file: &Path, problems: &mut Vec<VerifyFailure>) {
        let fail = |line: usize, reason: String| VerifyFailure {
            file: file.to_path_buf(),
            line,
            seq: None,
            reason,
        };
        let f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) => {
                problems.push(fail(0, format!("cannot open: {e}")));
                return;
            }
        };
        let mut reader = BufReader::new(f);
        let mut buf = Vec::new();
        let mut line_no = 0;
        let mut astray = 0usize;
        let mut note = |problems: &mut Vec<VerifyFailure>, failure: VerifyFailure| {
            astray += 1;
            if astray == 1 {
                problems.push(failure);
            }
        };
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    problems.push(fail(line_no + 1, format!("cannot read: {e}")));
                    break;
                }
            }
            line_no += 1;
            let Some(text) = buf.strip_suffix(b"\n") else {
                match tag_in_fragment(&buf) {
                    Some(tag) => {
                        self.torn.insert(tag, fi);
                    }
                    None => note(
                        problems,
                        fail(line_no, "incomplete record (no final newline)".into()),
                    ),
                }
                break;
            };
            match chain_of(text) {
                Ok((tag, seq)) => self.line(fi, tag, seq),
                Err(reason) => note(problems, fail(line_no, reason.to_string())),
            }
        }
        if astray > 1
            && let Some(first) = problems.last_mut()
        {
            first.reason = format!(
                "{} (and {} more lines of this file in no chain)",
                first.reason,
                astray - 1
            );
        }
    }

    /// A line of chain `tag` in file `fi`.
    fn line(&mut self, fi: usize, tag: Option<String>, seq: Option<u64>) {
        let order = &mut self.order;
        let segments = self.plans.entry(tag.clone()).or_insert_with(|| {
            order.push(tag);
            Vec::new()
        });
        if segments.last().is_none_or(|s| s.file != fi) {
            segments.push(Segment {
                file: fi,
                first_seq: seq,
                lines: 0,
            });
        }
        if let Some(last) = segments.last_mut() {
            last.lines += 1;
        }
    }
}

impl ChainReport {
    /// The report of chain `tag` before it is verified: its segments in
    /// chain order (formats 1 to 3: the order given; chains: by the first
    /// `seq` each file holds of them).
    fn unverified(tag: Option<String>, mut segments: Vec<Segment>, files: &[PathBuf]) -> Self {
        if tag.is_some() {
            segments.sort_by_key(|s| (s.first_seq.unwrap_or(u64::MAX), s.file));
        }
        let files_of_chain = segments.iter().map(|s| files[s.file].clone()).collect();
        ChainReport {
            tag,
            genesis: None,
            status: ChainStatus::Open,
            report: VerifyReport {
                records: 0,
                definitions: 0,
                lines: 0,
                first_seq: None,
                last_seq: None,
                last_hash: String::new(),
                deleted: None,
            },
            first_time: None,
            last_time: None,
            seal: None,
            torn: None,
            partial: false,
            failure: None,
            files: files_of_chain,
            segments,
        }
    }

    /// The chain has an incomplete line at the end of file `fi`: a failure
    /// unless it is the chain's end (after its seal, or before more of it
    /// in another file, it cannot be).
    fn torn_at(&mut self, fi: usize, files: &[PathBuf]) {
        self.torn = Some(files[fi].clone());
        if self.failure.is_some() {
            return;
        }
        let last_file = self.segments.last().map(|s| s.file);
        let why = if self.seal.is_some() {
            Some("an incomplete line after the chain's seal")
        } else if last_file.is_some_and(|l| l != fi) {
            Some("an incomplete line, and the chain goes on in another file after it")
        } else {
            None
        };
        if let Some(why) = why {
            self.failure = Some(VerifyFailure {
                file: files[fi].clone(),
                line: 0,
                seq: None,
                reason: why.to_string(),
            });
        }
    }
}

/// A chain whose first records are missing: retention (of any chain)
/// must say it deleted them, or `partial` (--partial) accept it.
fn check_start(c: &mut ChainReport, notes: &[Note], partial: bool) {
    if c.failure.is_some() {
        return;
    }
    let Some(first) = c.report.first_seq.filter(|&s| s > 0) else {
        return;
    };
    let cover = notes
        .iter()
        .rev()
        .find(|n: &&Note| {
            n.last_c == c.tag && n.last_seq.is_some_and(|l| l.saturating_add(1) == first)
        })
        .map(|n| DeletedRange {
            first_seq: 0,
            last_seq: first - 1,
            noted_at: n.noted_at,
        });
    match (cover, partial) {
        (Some(range), _) => c.report.deleted = Some(range),
        (None, true) => c.partial = true,
        (None, false) => {
            c.failure = Some(VerifyFailure {
                file: c.files.first().cloned().unwrap_or_default(),
                line: 1,
                seq: Some(first),
                reason: format!(
                    "the chain starts at seq {first}, so its `prev` names a record that is \
                     not here: records 0 to {} are missing and no record says audit \
                     retention deleted them (verify the older files too, or pass --partial \
                     if they were moved away on purpose)",
                    first - 1
                ),
            });
        }
    }
}

/// A chain's genesis names what its file held last before it: the end of
/// the previous run. When that run's chain (format 4: named by its tag) is
/// in the set, its end must be there: records cut off the end of an open
/// chain, or its seal removed, show here (a chain alone cannot show what
/// was cut off its end). A previous record of formats 1-3 names no chain:
/// the lines of formats 1-3 in a set can be another process's, so they are
/// not held to it.
fn check_previous(chains: &mut [ChainReport]) {
    let mut named: Vec<(String, u64, String, bool, String)> = Vec::new();
    for c in chains.iter() {
        let Some(p) = c.genesis.as_ref().and_then(|g| g.previous.as_ref()) else {
            continue;
        };
        let (Some(seq), Some(hash)) = (
            p.get("seq").and_then(Value::as_u64),
            p.get("hash").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(tag) = p.get("c").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let sealed = p.get("sealed").and_then(Value::as_bool).unwrap_or(false);
        named.push((tag, seq, hash.to_string(), sealed, c.name()));
    }
    for (tag, seq, hash, sealed, by) in named {
        let Some(prev) = chains
            .iter_mut()
            .find(|c| c.tag.as_deref() == Some(tag.as_str()) && c.failure.is_none())
        else {
            continue;
        };
        let last = prev.report.last_seq;
        let cut = match last {
            Some(l) if sealed && prev.seal.is_none() && l.checked_add(1) == Some(seq) => Some(
                format!("its seal was removed: chain {by} started after its seal (seq {seq})"),
            ),
            Some(l) if l < seq => Some(format!(
                "records were cut off its end: chain {by} started after its record seq {seq}, \
                 but the files hold it only up to seq {l}"
            )),
            Some(l) if l == seq && prev.report.last_hash != hash => Some(format!(
                "its last record is not the one chain {by} started after (seq {seq}, hash {hash})"
            )),
            _ => None,
        };
        if let Some(reason) = cut {
            prev.failure = Some(VerifyFailure {
                file: prev.files.last().cloned().unwrap_or_default(),
                line: 0,
                seq: last,
                reason,
            });
        }
    }
}

/// Expected next of a chain.
struct Expect {
    seq: Option<u64>,
    /// The previous record's hash, in hex.
    prev: Option<String>,
}

/// Verifies one chain's lines, in its files' order; fills in `c`.
fn verify_chain(
    files: &[PathBuf],
    c: &mut ChainReport,
    key: &ChainKey,
    opts: &VerifyOptions,
    notes: &mut Vec<Note>,
) {
    let keyed = opts.hmac_key.is_some();
    let mut expect = Expect {
        seq: None,
        prev: None,
    };
    let mut defs = Resolver::default();
    let tag = c.tag.clone();
    let segments = c.segments.clone();
    for seg in segments {
        let file = &files[seg.file];
        // The same records twice (a file given under two names, a copy):
        // say so rather than report the second copy's first line as a gap.
        if let (Some(start), Some(last), Some(_)) = (seg.first_seq, c.report.last_seq, &tag)
            && start <= last
        {
            c.failure = Some(VerifyFailure {
                file: file.clone(),
                line: 0,
                seq: Some(start),
                reason: format!(
                    "holds records of this chain from seq {start}, which another file already                      held (up to seq {last}): the same records twice (a copy of a file?), or a                      chain tag shared by two chains"
                ),
            });
            return;
        }
        let mut failure = None;
        let mut read_lines = 0u64;
        let read = chain_lines(file, tag.as_deref(), |line_no, text| {
            read_lines += 1;
            let fail = |seq: Option<u64>, reason: String| VerifyFailure {
                file: file.clone(),
                line: line_no,
                seq,
                reason,
            };
            let checked = match check_record(text, key, keyed, &expect, &mut defs) {
                Ok(ch) => ch,
                Err((seq, reason)) => {
                    failure = Some(fail(seq, reason));
                    return false;
                }
            };
            match take_record(c, checked, opts, notes) {
                Ok(next) => {
                    expect = next;
                    true
                }
                Err((seq, reason)) => {
                    failure = Some(fail(seq, reason));
                    false
                }
            }
        });
        if let Err(f) = read {
            failure = Some(f);
        }
        // Every line the first pass gave this chain must have been read
        // (a line spelled otherwise, `"c" : "…"`, is not found by the
        // second pass's search: it would go unverified).
        if failure.is_none() && read_lines != seg.lines {
            failure = Some(VerifyFailure {
                file: file.clone(),
                line: 0,
                seq: None,
                reason: format!(
                    "{} of this chain's lines in this file are not in the canonical form \
                     fieldguard writes (readers could see records no hash covers)",
                    seg.lines.abs_diff(read_lines)
                ),
            });
        }
        if failure.is_some() {
            c.failure = failure;
            return;
        }
    }
    // A chain that starts at its genesis: the seal's count must match.
    if let (Some(seal), Some(0)) = (&c.seal, c.report.first_seq)
        && seal.count != c.report.records
    {
        c.failure = Some(VerifyFailure {
            file: c.files.last().cloned().unwrap_or_default(),
            line: 0,
            seq: Some(seal.seq),
            reason: format!(
                "the seal counts {} records, the chain holds {}",
                seal.count, c.report.records
            ),
        });
    }
}

/// Notes a record that verified in its chain's report, and applies the
/// rules of genesis and seal records; returns what the next record must
/// be.
fn take_record(
    c: &mut ChainReport,
    checked: Checked,
    opts: &VerifyOptions,
    notes: &mut Vec<Note>,
) -> Result<Expect, (Option<u64>, String)> {
    let seq = checked.seq;
    let v = &checked.value;
    let bad = |reason: &str| Err((Some(seq), reason.to_string()));
    let event = v.get("event").and_then(Value::as_str);
    let report = &mut c.report;
    if report.first_seq.is_none() && !opts.partial && seq == 0 && checked.prev != chain::GENESIS {
        return bad("the first record of the chain does not link to the genesis");
    }
    if let Some(s) = &c.seal {
        return Err((
            Some(seq),
            format!(
                "a record after the chain's seal (seq {}): a sealed chain ends with its seal",
                s.seq
            ),
        ));
    }
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match event {
        Some(GENESIS_EVENT) => match genesis_info(v, seq, c.tag.as_deref()) {
            Ok(info) => c.genesis = Some(info),
            Err(reason) => return bad(reason),
        },
        Some(SEAL_EVENT) => {
            if v.get("last_seq").and_then(Value::as_u64) != seq.checked_sub(1) {
                return bad("the seal's `last_seq` is not the record before it");
            }
            c.seal = Some(SealInfo {
                seq,
                reason: str_of("reason").unwrap_or_default(),
                time: str_of("time"),
                count: v.get("count").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        _ if seq == 0 && c.tag.is_some() => {
            return bad("a chain's first record (seq 0) must be its genesis record");
        }
        _ if checked.definition => report.definitions += 1,
        _ => report.records += 1,
    }
    if event == Some(RETENTION_EVENT) {
        notes.push(retention_note(v, seq, &c.tag));
    }
    if let Some(t) = str_of("time") {
        if c.first_time.is_none() {
            c.first_time = Some(t.clone());
        }
        c.last_time = Some(t);
    }
    report.lines += 1;
    report.first_seq.get_or_insert(seq);
    report.last_seq = Some(seq);
    report.last_hash = checked.spelled;
    Ok(Expect {
        seq: Some(
            seq.checked_add(1)
                .ok_or((Some(seq), "`seq` out of range".to_string()))?,
        ),
        prev: Some(checked.hash),
    })
}

/// What a genesis record (at `seq`, on a line tagged `tag`) says of its
/// chain; `Err`: why it is not a valid genesis.
fn genesis_info(v: &Value, seq: u64, tag: Option<&str>) -> Result<GenesisInfo, &'static str> {
    if seq != 0 {
        return Err("a genesis record in the middle of a chain");
    }
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(id), Some(tag)) = (str_of("chain"), tag) else {
        return Err("a genesis record without `chain`, or on a line without `c`");
    };
    if !id.ends_with(&format!("/{tag}")) {
        return Err("the genesis record's `chain` does not end with the line's tag `c`");
    }
    let pod = v.get("pod");
    let pod_str = |k: &str| {
        pod.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(GenesisInfo {
        id,
        pod_name: pod_str("name"),
        pod_uid: pod_str("uid"),
        host: str_of("host"),
        pid: v.get("pid").and_then(Value::as_u64),
        policy_version: str_of("policy_version"),
        fieldguard: str_of("fieldguard"),
        time: str_of("time"),
        previous: v.get("previous").cloned(),
    })
}

/// What a retention record (at `seq`, in chain `tag`) says was deleted.
fn retention_note(v: &Value, seq: u64, tag: &Option<String>) -> Note {
    let pair = |k: &str, i: usize| v.get(k).and_then(|a| a.get(i)).cloned();
    Note {
        // A format-4 record names the deleted record's chain; one of
        // formats 1 to 3 deleted its own.
        last_c: match pair("deleted_c", 1) {
            Some(Value::String(t)) => Some(t),
            Some(_) => None,
            None => tag.clone(),
        },
        last_seq: pair("deleted_seq", 1).and_then(|s| s.as_u64()),
        noted_at: seq,
    }
}

/// Hands every line of a verified chain to `each` (line number, line), in
/// chain order: for readers that go through a chain again after
/// [`verify_set`].
pub fn read_chain(
    fleet: &FleetReport,
    chain: &ChainReport,
    mut each: impl FnMut(&Path, usize, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut failed = None;
    for seg in &chain.segments {
        let Some(file) = fleet.files.get(seg.file) else {
            continue;
        };
        chain_lines(file, chain.tag.as_deref(), |line_no, text| {
            match each(file, line_no, text) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })
        .map_err(|f| f.to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// A record that verified.
struct Checked {
    seq: u64,
    /// Its hash in hex (what the next record links to), and as its line
    /// spells it.
    hash: String,
    spelled: String,
    /// The hash it links to, in hex.
    prev: String,
    /// Whether it is a definition record.
    definition: bool,
    /// The record as parsed, without `hash`.
    value: Value,
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
    check_alg(obj.get("alg").and_then(Value::as_str), keyed, compact).map_err(bad)?;
    let canonical = chain::canonical(&v);
    if key.digest(&prev, &canonical) != hash {
        return Err(mismatch(stated_prev.is_some(), expect.seq, seq, seq_n));
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
    Ok(Checked {
        seq: seq_n,
        hash,
        spelled,
        prev,
        definition,
        value: v,
    })
}

/// Why a record's hash does not match: with its own `prev`, it was
/// modified; without, its link is the line before, so a line deleted,
/// inserted or moved shows here too, and its `seq` tells which it is.
fn mismatch(
    stated_prev: bool,
    want_seq: Option<u64>,
    seq: Option<u64>,
    seq_n: u64,
) -> (Option<u64>, String) {
    if stated_prev {
        return (seq, "hash mismatch: the record was modified".to_string());
    }
    if let Some(want) = want_seq
        && seq_n != want
    {
        return (
            seq,
            format!(
                "sequence gap: expected seq {want}, found {seq_n}: a record before it was \
                 deleted, inserted or moved"
            ),
        );
    }
    (
        seq,
        "hash mismatch: the record was modified, or the line before it (its link: it has no \
         `prev`) is not the record it followed"
            .to_string(),
    )
}

/// Whether a record's `alg` is the one a chain verified with (or without)
/// a key uses.
fn check_alg(alg: Option<&str>, keyed: bool, compact: bool) -> Result<(), &'static str> {
    match (alg, keyed) {
        (Some("hmac-sha256"), true) | (Some("sha256"), false) => Ok(()),
        (Some("hmac-sha256"), false) => Err("the record is HMAC-keyed: pass --hmac-key-file"),
        (Some("sha256"), true) => Err(
            "the record is not HMAC-keyed although a key was given (anyone could have written it)",
        ),
        // A format-3 request line names no key: it is hashed with the one
        // given (or none), like every record of the chain; one written
        // otherwise does not match.
        (None, _) if compact => Ok(()),
        _ => Err("unknown `alg`"),
    }
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

    /// A writer run's lines as the sealer writes them: its genesis (after
    /// `previous`), `events` retention records (each saying it deleted
    /// `deleted`), and its seal when `sealed`. Returns the lines and the
    /// chain's tag.
    fn run_lines(
        pod: &str,
        previous: Option<&Value>,
        events: &[crate::audit::sink::Deleted],
        sealed: bool,
    ) -> (Vec<String>, String) {
        use crate::audit::origin::ChainOrigin;
        use crate::audit::seal::{Sealed, Sealer};
        let origin = ChainOrigin::new(Some(pod.into()), None, None, "v1");
        let mut sealer = Sealer::new(origin.tag.clone(), ChainKey::new(None), None);
        let mut out = Sealed::default();
        sealer.seal_genesis(&origin, previous, &mut out);
        for d in events {
            sealer.seal_retention(d, &mut out);
        }
        if sealed {
            sealer.seal_end("shutdown", &mut out);
        }
        let text = String::from_utf8(out.bytes).unwrap();
        (text.lines().map(str::to_string).collect(), origin.tag)
    }

    fn deleted(c: Option<&str>, first: u64, last: u64) -> crate::audit::sink::Deleted {
        crate::audit::sink::Deleted {
            files: 1,
            first_seq: Some(first),
            first_c: c.map(str::to_string),
            last_seq: Some(last),
            last_c: c.map(str::to_string),
        }
    }

    fn verify_set_of(files: &[(&str, &[String])]) -> (FleetReport, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|(name, lines)| {
                let p = dir.path().join(name);
                std::fs::write(&p, lines.join("\n") + "\n").unwrap();
                p
            })
            .collect();
        (verify_set(&paths, &VerifyOptions::default()), dir)
    }

    /// After an upgrade the file holds the format-3 chain, then the new
    /// process's chain, whose genesis names the old chain's last record:
    /// both verify, and records cut off the old chain's end show.
    #[test]
    fn a_format_4_chain_after_a_format_3_one_in_the_same_file() {
        let old = compact_lines(3);
        let last: Value = serde_json::from_str(&old[2]).unwrap();
        let previous = chain::sorted(&serde_json::json!({
            "hash": last["hash"], "sealed": false, "seq": 2, "v": 3
        }));
        let (new, tag) = run_lines("shop-a", Some(&previous), &[], true);
        let mut lines = old.clone();
        lines.extend(new.clone());
        let (fleet, _dir) = verify_set_of(&[("audit.log", &lines)]);
        assert!(fleet.intact(), "{}", fleet.to_text());
        let statuses: Vec<(Option<String>, ChainStatus)> = fleet
            .chains
            .iter()
            .map(|c| (c.tag.clone(), c.status))
            .collect();
        assert!(
            statuses.contains(&(None, ChainStatus::Open)),
            "{statuses:?}"
        );
        assert!(statuses.contains(&(Some(tag.clone()), ChainStatus::Sealed)));
        // The old chain's last record deleted: a format 1-3 chain is not
        // held to a genesis's `previous` (it can be another process's).
        let mut cut = old[..2].to_vec();
        cut.extend(new);
        let (fleet, _dir) = verify_set_of(&[("audit.log", &cut)]);
        assert!(fleet.intact(), "{}", fleet.to_text());
    }

    /// The next run's genesis names the end of the run before it: records
    /// cut off that end, or its seal removed, break the earlier chain.
    #[test]
    fn the_next_genesis_shows_what_was_cut_off_a_chain() {
        let filler = [deleted(None, 0, 0), deleted(None, 0, 0)];
        let (first, tag) = run_lines("shop-a", None, &filler, true);
        let end: Value = serde_json::from_str(first.last().unwrap()).unwrap();
        let previous = chain::sorted(&serde_json::json!({
            "c": tag, "hash": end["hash"], "sealed": true, "seq": end["seq"], "v": 4
        }));
        let (second, _) = run_lines("shop-a", Some(&previous), &[], true);
        let file = |first: &[String]| {
            let mut l = first.to_vec();
            l.extend(second.clone());
            l
        };
        let (fleet, _dir) = verify_set_of(&[("audit.log", &file(&first))]);
        assert!(fleet.intact(), "{}", fleet.to_text());
        // The seal removed: open on its own, broken next to the next run.
        let unsealed = &first[..first.len() - 1];
        let (alone, _dir) = verify_set_of(&[("audit.log", unsealed)]);
        assert_eq!(alone.chains[0].status, ChainStatus::Open);
        let failure = |fleet: &FleetReport| {
            let c = fleet.chains.iter().find(|c| c.tag.as_deref() == Some(&tag));
            c.and_then(|c| c.failure.clone()).unwrap().reason
        };
        let (fleet, _dir) = verify_set_of(&[("audit.log", &file(unsealed))]);
        let why = failure(&fleet);
        assert!(why.contains("its seal was removed"), "{why}");
        // The seal and a record before it removed.
        let (fleet, _dir) = verify_set_of(&[("audit.log", &file(&first[..first.len() - 2]))]);
        let why = failure(&fleet);
        assert!(why.contains("cut off its end"), "{why}");
    }

    /// Retention of one chain's files noted by a later chain: the earlier
    /// chain verifies from where it is left. Without the note it is broken
    /// (or, with --partial, accepted).
    #[test]
    fn a_deletion_noted_by_another_chain_covers_the_missing_start() {
        let filler = [
            deleted(None, 0, 0),
            deleted(None, 0, 0),
            deleted(None, 0, 0),
        ];
        let (a, a_tag) = run_lines("shop-a", None, &filler, false);
        // Records 0 and 1 of a (its genesis and a first record) deleted.
        let a_left = a[2..].to_vec();
        let (b, _) = run_lines("shop-b", None, &[deleted(Some(&a_tag), 0, 1)], true);
        let (fleet, _dir) = verify_set_of(&[("a.log", &a_left), ("b.log", &b)]);
        assert!(fleet.intact(), "{}", fleet.to_text());
        let ca = fleet
            .chains
            .iter()
            .find(|c| c.tag.as_deref() == Some(&a_tag))
            .unwrap();
        assert_eq!(
            ca.report.deleted,
            Some(DeletedRange {
                first_seq: 0,
                last_seq: 1,
                noted_at: 1
            })
        );
        assert!(
            ca.to_text()
                .contains("partial: starts at seq 2 after audit retention")
        );
        let (fleet, dir) = verify_set_of(&[("a.log", &a_left)]);
        assert!(!fleet.intact());
        assert!(
            fleet.chains[0]
                .failure
                .as_ref()
                .unwrap()
                .reason
                .contains("records 0 to 1 are missing")
        );
        let partial = VerifyOptions {
            partial: true,
            ..VerifyOptions::default()
        };
        let again = verify_set(&[dir.path().join("a.log")], &partial);
        assert!(again.intact() && again.chains[0].partial);
    }

    /// Two chains interleaved, a copy of a file, stray lines, a seal
    /// followed by more, a torn tail.
    #[test]
    fn sets_of_chains_and_what_breaks_them() {
        let (a, a_tag) = run_lines("shop-a", None, &[deleted(None, 0, 0)], true);
        let (b, _) = run_lines("shop-b", None, &[deleted(None, 0, 0)], true);
        let mixed = vec![
            a[0].clone(),
            b[0].clone(),
            b[1].clone(),
            a[1].clone(),
            a[2].clone(),
            b[2].clone(),
        ];
        let (fleet, _dir) = verify_set_of(&[("mixed.log", &mixed)]);
        assert!(fleet.intact(), "{}", fleet.to_text());
        assert_eq!(fleet.count(ChainStatus::Sealed), 2);
        // The same file twice under two names.
        let (fleet, _dir) = verify_set_of(&[("a.log", &a), ("copy.log", &a)]);
        let why = &fleet.chains[0].failure.as_ref().unwrap().reason;
        assert!(why.contains("the same records twice"), "{why}");
        // A line of no chain, and a format-4 line without its tag.
        let mut stray = a.clone();
        stray.push("not json".into());
        stray.push(a[1].replacen(&format!("\"c\":\"{a_tag}\","), "", 1));
        let (fleet, _dir) = verify_set_of(&[("a.log", &stray)]);
        assert_eq!(fleet.problems.len(), 1, "{}", fleet.to_text());
        assert!(fleet.problems[0].reason.contains("and 1 more lines"));
        // A line of the chain spelled otherwise (which the second pass's
        // search does not find): not left unverified.
        let mut spaced = a.clone();
        spaced.insert(2, a[1].replacen("\"c\":\"", "\"c\": \"", 1));
        let (fleet, _dir) = verify_set_of(&[("a.log", &spaced)]);
        let why = &fleet.chains[0].failure.as_ref().unwrap().reason;
        assert!(why.contains("1 of this chain's lines"), "{why}");
        // The seal moved before the record it follows.
        let mut after = a.clone();
        after.swap(1, 2);
        let (fleet, _dir) = verify_set_of(&[("a.log", &after)]);
        assert_eq!(fleet.chains[0].status, ChainStatus::Broken);
        // A torn tail: open, cut off mid-record; untagged: a problem.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let open = &a[..2];
        std::fs::write(&p, open.join("\n") + "\n" + &a[2][..a[2].len() / 2]).unwrap();
        let fleet = verify_set(std::slice::from_ref(&p), &VerifyOptions::default());
        assert!(fleet.intact(), "{}", fleet.to_text());
        assert_eq!(fleet.chains[0].torn.as_deref(), Some(p.as_path()));
        assert!(fleet.chains[0].to_text().contains("cut off mid-record"));
        std::fs::write(&p, "{\"hash\":\"abc").unwrap();
        let fleet = verify_set(std::slice::from_ref(&p), &VerifyOptions::default());
        assert!(fleet.problems[0].reason.contains("incomplete record"));
        // A seq that cannot be followed is refused, not a panic.
        let line = format!("{{\"hash\":\"x\",\"seq\":{},\"v\":3}}", u64::MAX);
        let (fleet, _dir) = verify_set_of(&[("a.log", &[line])]);
        assert!(!fleet.intact());
    }
}
