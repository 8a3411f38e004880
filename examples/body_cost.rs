//! The per-body cost of redaction next to serde_json's parse + serialise of
//! the same bytes, as one JSON line: the load benchmark (`bench/run.sh`) runs
//! it on the body of its largest workload so that its table can state the
//! "redaction ≤ 2× serde_json" figure measured in the same run, on the same
//! core, as the proxies. (`benches/redaction.rs` is the fuller criterion
//! version of the same comparison.)
//!
//! Usage: `body_cost CONFIG ROLE SUB PATH BODY_FILE ITERATIONS`

mod support;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;
use support::{Redact, median, with_redactor};

fn main() -> ExitCode {
    support::exit("body_cost", run())
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
    with_redactor(config_path, role, sub, path, |redact| {
        measure(redact, &body, iterations)
    })
}

fn measure(redact: &Redact<'_>, body: &[u8], iterations: usize) -> Result<String, String> {
    let baseline = || -> Result<usize, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(black_box(body)).map_err(|e| e.to_string())?;
        serde_json::to_vec(&doc)
            .map(|out| black_box(out).len())
            .map_err(|e| e.to_string())
    };
    let out_bytes = redact(body)?;
    baseline()?;
    let (mut t_redact, mut t_base) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        t_redact.push(timed(|| redact(body))?);
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

/// Seconds one call of `f` took.
fn timed(f: impl Fn() -> Result<usize, String>) -> Result<f64, String> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}
