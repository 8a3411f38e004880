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

mod support;

use serde_json::Value;
use std::process::ExitCode;
use std::time::Instant;
use support::{Redact, median, with_redactor};

fn main() -> ExitCode {
    support::exit("split_cost", run())
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
    with_redactor(config_path, role, sub, path, |redact| {
        measure(redact, &parts, body.len(), iterations)
    })
}

fn measure(
    redact: &Redact<'_>,
    parts: &[Vec<u8>],
    body_bytes: usize,
    iterations: usize,
) -> Result<String, String> {
    let n = parts.len();
    for p in parts {
        redact(p)?;
    }
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        for p in parts {
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
        body_bytes,
        one * 1e3,
        many * 1e3,
        one / many
    ))
}
