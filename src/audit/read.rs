//! Reading audit files for people and pipelines: every record in full.
//!
//! The files (oldest first) are verified as one chain first
//! ([`super::verify_files`]; a broken chain is an error, not a reading),
//! then read again in order with each definition merged into the records
//! that refer to it ([`super::expand`]), so a reader sees the same records
//! whether the log was written compacted or not. `fieldguard audit subject`
//! and `fieldguard audit expand` read through this.

use super::expand::Resolver;
use super::verify::{VerifyOptions, VerifyReport, verify_files};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// Verifies `files`, then hands each record (requests and events, not the
/// definitions) with its definition merged in to `each`, in chain order.
/// `Err` names a broken chain, an unreadable file, or files that changed
/// between the two readings.
pub fn each_record(
    files: &[PathBuf],
    opts: &VerifyOptions,
    mut each: impl FnMut(Value),
) -> Result<VerifyReport, String> {
    let verified = verify_files(files, opts).map_err(|f| format!("audit chain broken at {f}"))?;
    let mut seen = 0u64;
    let mut last_hash = String::new();
    let mut defs = Resolver::default();
    let changed =
        |e: String| format!("{e}: the audit files changed while they were read; run again");
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| format!("{}: {e}", file.display()))?;
            let rec: Value = serde_json::from_str(&line)
                .map_err(|e| changed(format!("{}: not a JSON record ({e})", file.display())))?;
            seen += 1;
            if let Some(h) = rec.get("hash").and_then(Value::as_str) {
                last_hash = h.to_string();
            }
            if defs.define(&rec).map_err(|e| changed(e.to_string()))? {
                continue;
            }
            each(defs.expand(rec).map_err(|e| changed(e.to_string()))?);
        }
    }
    // The files were read twice: they must not have changed in between.
    if seen != verified.records + verified.definitions
        || (seen > 0 && last_hash != verified.last_hash)
    {
        return Err("the audit files changed while they were read; run again".into());
    }
    Ok(verified)
}
