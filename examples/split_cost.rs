//! What "more cores for one big body" (issue 21) could give one request:
//! a list response cut into N pieces at record boundaries, each piece
//! redacted on its own thread, against the same pieces redacted one after
//! the other on one thread. It bounds the direction from above: cutting
//! (finding the boundaries) and merging the pieces' reports are left out
//! here, since a real cut would need the scan this measures.
//!
//!   cargo run --release --example split_cost -- CONFIG ROLE SUB PATH BODY_FILE ITERATIONS PIECES
//!
//! Prints one JSON line: medians of one thread and of PIECES threads.

use fieldguard::config;
use fieldguard::runtime::Runtime;
use fieldguard_core::pipeline::{Routed, decide, filter_response_body, route};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing::normalize;
use serde_json::Value;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("split_cost: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The body cut into `n` bodies of the same shape, each holding a run of
/// the list's records (the first array member of the top-level object, or
/// the top-level array itself).
fn pieces(body: &[u8], n: usize) -> Result<Vec<Vec<u8>>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let list = match &doc {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .values()
            .find_map(|v| v.as_array().cloned())
            .ok_or("no list in the body")?,
        _ => return Err("the body is neither a list nor an object".into()),
    };
    let per = list.len().div_ceil(n);
    list.chunks(per.max(1))
        .map(|chunk| {
            let piece = match &doc {
                Value::Object(map) => {
                    let mut map = map.clone();
                    if let Some(v) = map.values_mut().find(|v| v.is_array()) {
                        *v = Value::Array(chunk.to_vec());
                    }
                    Value::Object(map)
                }
                _ => Value::Array(chunk.to_vec()),
            };
            serde_json::to_vec(&piece).map_err(|e| e.to_string())
        })
        .collect()
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_path, role, sub, path, body_file, iterations, n] = args.as_slice() else {
        return Err("usage: split_cost CONFIG ROLE SUB PATH BODY_FILE ITERATIONS PIECES".into());
    };
    let iterations: usize = iterations.parse().map_err(|_| "ITERATIONS: a number")?;
    let n: usize = n
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or("PIECES: a positive number")?;
    let body = std::fs::read(body_file).map_err(|e| format!("{body_file}: {e}"))?;
    let parts = pieces(&body, n)?;
    let loaded = config::load(&PathBuf::from(config_path)).map_err(|e| e.to_string())?;
    let rt = Runtime::build(loaded).map_err(|e| e.to_string())?;
    let principal = fieldguard::tools::principal(sub, std::slice::from_ref(role), false, None);
    let canonical = normalize(path).map_err(|e| format!("{path}: {e:?}"))?;
    let Routed::Route(m) = route(&rt.decisions, "GET", &canonical) else {
        return Err(format!("{path}: not an inspected route"));
    };
    let redact = |piece: &[u8]| -> Result<usize, String> {
        let decided =
            decide(&rt.decisions, &m, &principal).map_err(|_| format!("{path}: denied"))?;
        let mut report = FilterReport::default();
        filter_response_body(&rt.decisions, &decided, black_box(piece), &mut report)
            .map(|out| black_box(out).len())
            .map_err(|stop| format!("filter refused: {stop:?}"))
    };
    for p in &parts {
        redact(p)?;
    }
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        for p in &parts {
            redact(p)?;
        }
        one.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = parts.iter().map(|p| s.spawn(|| redact(p))).collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| "a thread panicked".to_string())?
                    .map(drop)
            })
        })?;
        many.push(t.elapsed().as_secs_f64());
    }
    let (one, many) = (median(one), median(many));
    Ok(format!(
        "{{\"body_bytes\":{},\"pieces\":{n},\"iterations\":{iterations},\
         \"one_thread_ms\":{:.3},\"threads_ms\":{:.3},\"speedup\":{:.2}}}",
        body.len(),
        one * 1e3,
        many * 1e3,
        one / many
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
