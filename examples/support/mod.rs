//! What the in-process timing examples (`body_cost`, `split_cost`) share:
//! the reference runtime's answer to one caller on one route, as a
//! function from a response body to the redacted body's length, and the
//! way each prints its one JSON line or its error.

use fieldguard::config;
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;

/// Redacts a body as the proxy would for the caller; the redacted length.
pub type Redact<'a> = dyn Fn(&[u8]) -> Result<usize, String> + Sync + 'a;

/// Prints the example's JSON line, or its error under its name.
pub fn exit(name: &str, result: Result<String, String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads `config_path`, routes `GET path` and calls `f` with the redactor
/// of `role` (user `sub`) there: route, decision and redaction per call,
/// what one request costs the proxy past its I/O.
pub fn with_redactor<T>(
    config_path: &str,
    role: &str,
    sub: &str,
    path: &str,
    f: impl FnOnce(&Redact<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let loaded = config::load(&PathBuf::from(config_path)).map_err(|e| e.to_string())?;
    let rt = Runtime::build(loaded).map_err(|e| e.to_string())?;
    let principal = fieldguard::tools::principal(sub, &[role.to_string()], false, None);
    let canonical = normalize(path).map_err(|e| format!("{path}: {e:?}"))?;
    let Routed::Route(m) = route(&rt.decisions, "GET", &canonical) else {
        return Err(format!("{path}: not an inspected route"));
    };
    let redact = |body: &[u8]| -> Result<usize, String> {
        let decided =
            decide(&rt.decisions, &m, &principal).map_err(|_| format!("{path}: denied"))?;
        let mut report = FilterReport::default();
        filter_response_body(&rt.decisions, &decided, black_box(body), &mut report)
            .map(|out| black_box(out).len())
            .map_err(|stop| format!("filter refused: {stop:?}"))
    };
    f(&redact)
}

/// The median of some timings, in seconds.
pub fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds.get(seconds.len() / 2).copied().unwrap_or(f64::NAN)
}
