//! A stable-toolchain fuzz driver: runs a target over every file of a
//! corpus folder, then over random mutations of them, and saves any input
//! that panics to `artifacts/<target>/`.
//!
//! `cargo run --release --bin fuzz -- <target> [corpus dir] [iterations]`

use fieldguard_fuzz::TARGETS;
use std::path::{Path, PathBuf};

/// xorshift64*: deterministic for a given seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"%2f",
    b"%2F",
    b"..",
    b"/",
    b"%00",
    b"%25",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\u0000",
    b"1e400",
    b"-0",
    b":",
    b",",
    b"\"id_card_number\"",
    b"\"customers\"",
    b"\xff",
    b"%c0%af",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(input.len() - i) + 1;
                input.drain(i..i + n.min(8));
            }
            3 => {
                let i = rng.below(input.len() + 1);
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(i..i, tok.iter().copied());
            }
            4 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(input.len() + 1);
                let j = rng.below(other.len() + 1);
                input.truncate(i);
                input.extend_from_slice(&other[j..]);
            }
            _ => {
                let i = rng.below(input.len() + 1);
                let n = rng.below(16);
                let b = rng.next() as u8;
                input.splice(i..i, std::iter::repeat_n(b, n));
            }
        }
    }
    input.truncate(64 * 1024);
}

fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![Vec::new()];
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let Some(name) = args.first() else {
        eprintln!(
            "usage: fuzz <{}> [corpus dir] [iterations]",
            names.join("|")
        );
        std::process::exit(2);
    };
    let Some((_, target)) = TARGETS.iter().find(|(n, _)| n == name) else {
        eprintln!("unknown target {name}; one of {}", names.join(", "));
        std::process::exit(2);
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus_dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("corpus").join(name));
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let corpus = load_corpus(&corpus_dir);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng(seed | 1);
    std::panic::set_hook(Box::new(|_| {}));
    let artifacts = root.join("artifacts").join(name);
    let mut crashes = 0u32;
    let mut run = |input: &[u8]| {
        if std::panic::catch_unwind(|| target(input)).is_err() {
            crashes += 1;
            let _ = std::fs::create_dir_all(&artifacts);
            let path = artifacts.join(format!("crash-{crashes}"));
            let _ = std::fs::write(&path, input);
            eprintln!("panic: input saved to {}", path.display());
        }
    };
    for input in &corpus {
        run(input);
    }
    for _ in 0..iterations {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        run(&input);
    }
    println!(
        "{name}: {} corpus inputs, {iterations} mutations, {crashes} panics",
        corpus.len()
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}
