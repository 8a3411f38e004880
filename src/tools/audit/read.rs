//! Reading audit files for people and pipelines: every record in full.
//!
//! The files (of one process or of many, in any order: see
//! [`super::verify`]) are verified chain by chain first (a broken chain is
//! an error, not a reading; open chains are read as far as they go), then
//! each chain is read again in its order with each definition merged into
//! the records that refer to it ([`super::expand`]), so a reader sees the
//! same records whether the log was written compacted or not. `fieldguard
//! audit subject` and `fieldguard audit expand` read through this.

use super::expand::Resolver;
use super::verify::{ChainReport, FleetReport, VerifyOptions, verify_set};
use serde_json::Value;

/// Verifies `files`, then hands each record of each chain (requests and
/// events, genesis and seal records; not the definitions) with its
/// definition merged in to `each`, chain by chain, each in chain order,
/// with the chain it belongs to. `Err` names a broken chain, an
/// unreadable file, a line in no chain, or files that changed between the
/// two readings.
pub fn each_record(
    files: &[std::path::PathBuf],
    opts: &VerifyOptions,
    mut each: impl FnMut(&ChainReport, Value),
) -> Result<FleetReport, String> {
    let fleet = verify_set(files, opts);
    if let Some(message) = fleet.failure_message() {
        return Err(message);
    }
    let changed =
        |e: String| format!("{e}: the audit files changed while they were read; run again");
    for chain in &fleet.chains {
        let mut seen = 0u64;
        let mut last_hash = String::new();
        let mut defs = Resolver::default();
        super::verify::read_chain(&fleet, chain, |file, line, text| {
            let rec: Value = serde_json::from_slice(text).map_err(|e| {
                changed(format!(
                    "{}:{line}: not a JSON record ({e})",
                    file.display()
                ))
            })?;
            seen += 1;
            if let Some(h) = rec.get("hash").and_then(Value::as_str) {
                last_hash = h.to_string();
            }
            if defs.define(&rec).map_err(|e| changed(e.to_string()))? {
                return Ok(());
            }
            each(chain, defs.expand(rec).map_err(|e| changed(e.to_string()))?);
            Ok(())
        })?;
        // The files were read twice: they must not have changed in between.
        if seen != chain.report.lines || (seen > 0 && last_hash != chain.report.last_hash) {
            return Err("the audit files changed while they were read; run again".into());
        }
    }
    Ok(fleet)
}
