//! The per-body cost of redaction next to serde_json's parse + serialise of
//! the same bytes, as one JSON line: the load benchmark (`bench/run.sh`) runs
//! it on the body of its largest workload so that its table can state the
//! "redaction ≤ 2× serde_json" figure measured in the same run, on the same
//! core, as the proxies. (`benches/redaction.rs` is the fuller criterion
//! version of the same comparison.)
//!
//! Usage: `body_cost CONFIG ROLE SUB PATH BODY_FILE ITERATIONS`

use fieldguard::config;
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("body_cost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_path, role, sub, path, body_file, iterations] = args.as_slice() else {
        return Err("usage: body_cost CONFIG ROLE SUB PATH BODY_FILE ITERATIONS".into());
    };
    let iterations: usize = iterations
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or("ITERATIONS must be a positive number")?;
    let body = std::fs::read(body_file).map_err(|e| format!("{body_file}: {e}"))?;
    let loaded = config::load(&PathBuf::from(config_path)).map_err(|e| e.to_string())?;
    let rt = Runtime::build(loaded).map_err(|e| e.to_string())?;
    let principal = fieldguard::tools::principal(sub, std::slice::from_ref(role), false, None);
    let canonical = normalize(path).map_err(|e| format!("{path}: {e:?}"))?;
    // The route's query string plays no part in the decision or the filter.
    let Routed::Route(m) = route(&rt.decisions, "GET", &canonical) else {
        return Err(format!("{path}: not an inspected route"));
    };

    let redact = || -> Result<usize, String> {
        let decided =
            decide(&rt.decisions, &m, &principal).map_err(|_| format!("{path}: denied"))?;
        let mut report = FilterReport::default();
        filter_response_body(&rt.decisions, &decided, black_box(&body), &mut report)
            .map(|out| black_box(out).len())
            .map_err(|stop| format!("filter refused: {stop:?}"))
    };
    let baseline = || -> Result<usize, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(black_box(&body)).map_err(|e| e.to_string())?;
        serde_json::to_vec(&doc)
            .map(|out| black_box(out).len())
            .map_err(|e| e.to_string())
    };
    // One untimed pass each (warms the decision cache and the allocator),
    // then alternate so drift on a shared machine hits both alike.
    let out_bytes = redact()?;
    baseline()?;
    let (mut t_redact, mut t_base) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        t_redact.push(timed(redact)?);
        t_base.push(timed(baseline)?);
    }
    let (redact_s, base_s) = (median(t_redact), median(t_base));
    let mb = body.len() as f64 / 1e6;
    Ok(format!(
        "{{\"body_bytes\":{},\"redacted_bytes\":{out_bytes},\"iterations\":{iterations},\
         \"redact_ms\":{:.3},\"serde_json_ms\":{:.3},\"redact_ms_per_mb\":{:.3},\
         \"serde_json_ms_per_mb\":{:.3},\"ratio\":{:.3}}}",
        body.len(),
        redact_s * 1e3,
        base_s * 1e3,
        redact_s * 1e3 / mb,
        base_s * 1e3 / mb,
        redact_s / base_s
    ))
}

fn timed(f: impl Fn() -> Result<usize, String>) -> Result<Duration, String> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}
