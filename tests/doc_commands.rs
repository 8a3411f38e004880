//! Every shell step of the operator docs works as written (issue #24,
//! item 6): the fenced `sh`, `console` and `bash` blocks of README.md,
//! docs/onboarding.md, docs/policies.md and docs/runbook.md run against
//! the built binary, as a reader would run them.
//!
//! How a block runs:
//! - A block whose lines start with `$ ` is a transcript: each `$ ` line
//!   (with its `\` continuation lines) is a command, the other lines are
//!   what it printed (not compared: examples name other pods, times and
//!   ids; tests/examples.rs compares the README's demo answers). Any
//!   other block is a script, run whole.
//! - In `bash` with `set -eo pipefail`, in a scratch folder per document
//!   (documents run one after another, blocks in order, so a document's
//!   later steps see its earlier ones' files), holding copies of the
//!   repository's `examples/` and `policies/` and a link to `collected/`,
//!   the running demo's audit folder; `fieldguard` on `PATH` is the binary
//!   under test; `TOKEN_*` are the demo's tokens (as its banner prints
//!   them to paste).
//! - The demo runs on ephemeral ports; the docs' fixed addresses of it
//!   (proxy `:8080`, shop `:9000`, admin `:9090`, as `localhost` or
//!   `127.0.0.1`) are replaced by the real ones in the commands (not in
//!   a block with a network of its own, below: those are its own).
//! - Before the documents run, a support agent lists the customers twice
//!   (taking the demo's `support-records-hour` budget over, for the
//!   runbook) and reads c-1001 (for `audit subject`).
//! - A block passes when it exits 0, or non-zero for a `sh fails` block.
//! - A block that names a file is an edit the reader makes before the next
//!   steps, made to the copies: ```` ```diff PATH ```` applies its `-`/`+`
//!   lines ([`common::doc_edit::apply_edit`]), ```` ```LANG PATH ```` writes
//!   a new file (docs/policies.md's recipes).
//! - A block that starts servers on the docs' fixed ports (a reader's own
//!   machine) is listed in [`OWN_NETWORK`] and runs in a network namespace
//!   of its own (`unshare -rn`, loopback brought up with `ip`), so it can
//!   bind them without meeting anything else on this machine.
//! - Each block runs in a process group of its own, killed when it ends,
//!   so a background server it started never outlives it.
//!
//! Blocks that cannot run here are listed in [`SKIPPED`], each with its
//! reason; a skip (or an own-network entry) that matches no block fails
//! the test, so the lists cannot go stale. Under `CI=true` a missing
//! `curl` or `bash`, or no network namespace, is a failure; elsewhere the
//! test says so and passes (or skips that block).

mod common;

use common::audited::harness_for;
use common::demo_process::DemoProcess;
use common::repo_path;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The documents whose shell blocks are run, in this order.
const DOCS: [&str; 4] = [
    "README.md",
    "docs/onboarding.md",
    "docs/policies.md",
    "docs/runbook.md",
];

/// A block by its document and the beginning of its commands (one per
/// line; where entries overlap, the longest that matches names the
/// block), and why it is listed.
struct Skip {
    doc: &'static str,
    starts: &'static str,
    why: &'static str,
}

static SKIPPED: &[Skip] = &[
    Skip {
        doc: "README.md",
        starts: "cargo run -- demo",
        why: "`demo` runs until stopped (tests/examples.rs starts it and runs what it prints) and `cargo test` is this suite",
    },
    Skip {
        doc: "README.md",
        starts: "cargo build --release",
        why: "a release build takes minutes, and `my-service.yaml` is the reader's own service",
    },
    Skip {
        doc: "docs/policies.md",
        starts: "fieldguard diff --config examples/demo/fieldguard.yaml --base main",
        why: "the two forms of --base need a git repository with a `main` branch and a released folder: tests/diff.rs runs both (a_git_base_from_a_subdirectory_and_clear_failures, a folder base) against scratch repositories",
    },
    Skip {
        doc: "docs/policies.md",
        starts: "fieldguard sign --generate-key signing.key",
        why: "run in the folder holding fieldguard.yaml, as the text says: tests/signing.rs runs this block there (the signing:start marker) and starts a proxy on what it signed",
    },
    Skip {
        doc: "docs/policies.md",
        starts: "openssl genpkey -algorithm ed25519 -out signing.key",
        why: "run in the folder holding fieldguard.yaml, as the text says: tests/signing.rs runs this block there (the signing-openssl:start marker)",
    },
];

/// Blocks that start servers on the docs' fixed ports: run in a network
/// namespace of their own ([`Skip::why`] says what they bind).
static OWN_NETWORK: &[Skip] = &[Skip {
    doc: "docs/onboarding.md",
    starts: "fieldguard onboard openapi examples/onboarding/demo-shop.openapi.yaml --out shadow-draft --shadow --force",
    why: "the upgraded shop on 127.0.0.1:9000 and the shadow draft's proxy on 8080 and admin on 9090",
}];

/// One fenced block the runner acts on.
#[derive(Debug)]
struct Block {
    doc: &'static str,
    /// 1-based line of the opening fence.
    line: usize,
    /// What to run: one script, or a transcript's commands (none for an
    /// edit).
    commands: Vec<String>,
    fails: bool,
    /// A block naming a file: the edit or the new file.
    edit: Option<FileBlock>,
}

#[derive(Debug)]
enum FileBlock {
    /// ```` ```diff PATH ````: context, `-` and `+` lines.
    Diff { path: String, lines: Vec<String> },
    /// ```` ```LANG PATH ````: a new file with the block's text.
    Create { path: String, text: String },
}

impl Block {
    /// The block's text as it is matched by [`SKIPPED`]: its commands,
    /// one per line.
    fn text(&self) -> String {
        self.commands.join("\n") + "\n"
    }
}

/// The `sh`/`console`/`bash` blocks of `doc`, indentation of a list item
/// removed.
fn blocks(doc: &'static str) -> Vec<Block> {
    let text = std::fs::read_to_string(repo_path(doc)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - lines[i].trim_start().len();
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push(lines[i].get(indent..).unwrap_or("").to_string());
            i += 1;
        }
        i += 1;
        let words: Vec<&str> = info.split_whitespace().collect();
        let (lang, rest) = match words.split_first() {
            Some((lang, rest)) => (*lang, rest),
            None => continue,
        };
        let (commands, edit) = match (lang, rest) {
            ("sh" | "console" | "bash", _) => (commands_of(&body), None),
            ("diff", [path]) => (
                Vec::new(),
                Some(FileBlock::Diff {
                    path: path.to_string(),
                    lines: body,
                }),
            ),
            (_, [path]) => (
                Vec::new(),
                Some(FileBlock::Create {
                    path: path.to_string(),
                    text: body.join("\n") + "\n",
                }),
            ),
            // Anything else (```json, ```text, …) is shown, not done.
            _ => continue,
        };
        out.push(Block {
            doc,
            line: start + 1,
            fails: edit.is_none() && rest == ["fails"],
            commands,
            edit,
        });
    }
    out
}

/// A transcript's commands (`$ ` lines and their continuations), or the
/// whole block as one script.
fn commands_of(body: &[String]) -> Vec<String> {
    if !body.iter().any(|l| l.starts_with("$ ")) {
        return vec![body.join("\n")];
    }
    let mut commands = Vec::new();
    let mut open: Option<String> = None;
    for l in body {
        if let Some(cmd) = open.as_mut() {
            cmd.push('\n');
            cmd.push_str(l);
        } else if let Some(cmd) = l.strip_prefix("$ ") {
            open = Some(cmd.to_string());
        } else {
            continue;
        }
        if !l.trim_end().ends_with('\\') {
            commands.extend(open.take());
        }
    }
    commands.extend(open);
    commands
}

fn entry_of(list: &'static [Skip], block: &Block) -> Option<&'static Skip> {
    let text = block.text();
    let hits: Vec<&Skip> = list
        .iter()
        .filter(|s| s.doc == block.doc && text.starts_with(s.starts))
        .collect();
    // The longest prefix names the block (one recipe step's commands
    // begin another's).
    hits.into_iter().max_by_key(|s| s.starts.len())
}

/// The demo's fixed addresses in the docs, replaced by where it runs.
fn substitute(cmd: &str, demo: &DemoProcess) -> String {
    let mut out = cmd.to_string();
    for (port, real) in [
        ("8080", &demo.proxy),
        ("9000", &demo.shop),
        ("9090", &demo.admin),
    ] {
        for host in ["localhost", "127.0.0.1"] {
            out = out.replace(&format!("{host}:{port}"), real);
        }
    }
    out
}

/// Bound on one command (each takes well under a second here).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `script` with bash in `dir` (in a network namespace of its own
/// when `own_network`), in a process group killed when it ends; (exit
/// success, output).
fn run(
    script: &str,
    dir: &Path,
    bin: &Path,
    demo: &DemoProcess,
    own_network: bool,
) -> (bool, String) {
    use std::os::unix::process::CommandExt as _;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_file = dir.join(".doc-command-output");
    let out = std::fs::File::create(&out_file).unwrap();
    let script = format!("set -eo pipefail\n{script}");
    let mut cmd = if own_network {
        let mut c = Command::new("unshare");
        c.args(["-rn", "bash", "-c", &format!("ip link set lo up\n{script}")]);
        c
    } else {
        let mut c = Command::new("bash");
        c.args(["-c", &script]);
        c
    };
    let mut child = cmd
        .process_group(0)
        .current_dir(dir)
        .env("PATH", path)
        .envs(&demo.tokens)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("bash runs");
    let group = format!("-{}", child.id());
    let kill_group = || {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            kill_group();
            let _ = child.wait();
            let output = std::fs::read_to_string(&out_file).unwrap_or_default();
            return (
                false,
                format!("did not finish within {COMMAND_TIMEOUT:?}; its output:\n{output}"),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever it left in the background.
    kill_group();
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    (status.success(), output)
}

/// Whether `tool` runs; a missing one fails under CI.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("`{tool}` is needed to run the docs' shell blocks (CI=true: not skipped)");
    }
    ok
}

/// Whether a block can have a network namespace of its own here; under
/// CI it must.
fn own_network_available() -> bool {
    let ok = Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!(
            "`unshare -rn` and `ip` are needed for the docs' blocks that bind fixed ports (CI=true: not skipped)"
        );
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_blocks_of_the_docs_work_as_written() {
    if !have("bash") || !have("curl") {
        eprintln!("skipped: bash and curl are needed to run the docs' shell blocks");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    let collected = scratch.path().join("collected");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&collected).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fieldguard"), bin.join("fieldguard")).unwrap();

    let demo = DemoProcess::start(&collected.join("audit.log"));
    let h = harness_for(demo.proxy.parse().unwrap());
    let agent = &demo.tokens["TOKEN_SUPPORT_AGENT"];
    for _ in 0..2 {
        assert_eq!(h.get("/customers?limit=100", agent).await.status, 200);
    }
    assert_eq!(h.get("/customers/c-1001", agent).await.status, 200);

    let mut ran = Vec::new();
    let mut failures = Vec::new();
    let mut skips_used = vec![0usize; SKIPPED.len()];
    let mut own_used = vec![0usize; OWN_NETWORK.len()];
    let netns = own_network_available();
    for doc in DOCS {
        let dir = scratch.path().join(doc.replace('/', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        // Copies: a document's edits change them, never the repository.
        for tree in ["examples", "policies"] {
            common::copy_dir(&repo_path(tree), &dir.join(tree));
        }
        std::os::unix::fs::symlink(&collected, dir.join("collected")).unwrap();
        for block in blocks(doc) {
            match &block.edit {
                Some(FileBlock::Diff { path, lines }) => {
                    common::doc_edit::apply_edit(&dir.join(path), lines);
                    continue;
                }
                Some(FileBlock::Create { path, text }) => {
                    let file = dir.join(path);
                    assert!(
                        !file.exists(),
                        "{doc}:{}: creates {path}, which exists",
                        block.line
                    );
                    std::fs::write(file, text).unwrap();
                    continue;
                }
                None => {}
            }
            if let Some(skip) = entry_of(SKIPPED, &block) {
                let i = SKIPPED.iter().position(|s| std::ptr::eq(s, skip)).unwrap();
                skips_used[i] += 1;
                eprintln!("skip {}:{}: {}", doc, block.line, skip.why);
                continue;
            }
            let own = entry_of(OWN_NETWORK, &block);
            if let Some(entry) = own {
                let i = OWN_NETWORK
                    .iter()
                    .position(|s| std::ptr::eq(s, entry))
                    .unwrap();
                own_used[i] += 1;
                if !netns {
                    eprintln!(
                        "skip {}:{}: binds {}, and no network namespace is available here",
                        doc, block.line, entry.why
                    );
                    continue;
                }
            }
            for cmd in &block.commands {
                // In a network of its own the docs' addresses are its own.
                let script = match own {
                    Some(_) => cmd.clone(),
                    None => substitute(cmd, &demo),
                };
                let dir = dir.clone();
                let bin = bin.clone();
                let (ok, output) =
                    tokio::task::block_in_place(|| run(&script, &dir, &bin, &demo, own.is_some()));
                ran.push(format!("{doc}:{}", block.line));
                if ok == block.fails {
                    failures.push(format!(
                        "{doc}:{}: `{cmd}` {}:\n{output}",
                        block.line,
                        if block.fails {
                            "succeeded, the doc says it fails"
                        } else {
                            "failed"
                        }
                    ));
                }
            }
        }
    }
    demo.stop();
    let unused: Vec<String> = SKIPPED
        .iter()
        .zip(&skips_used)
        .chain(OWN_NETWORK.iter().zip(&own_used))
        .filter(|(_, n)| **n != 1)
        .map(|(s, n)| format!("{} `{}` matched {n} blocks", s.doc, s.starts))
        .collect();
    assert!(unused.is_empty(), "each skip names one block: {unused:#?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("ran {} commands: {ran:?}", ran.len());
    // Each document has blocks that ran.
    for doc in DOCS {
        assert!(
            ran.iter().any(|r| r.starts_with(&format!("{doc}:"))),
            "no block of {doc} ran"
        );
    }
}

#[test]
fn transcripts_and_scripts_are_told_apart() {
    let body = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        commands_of(&body("$ a \\\n  --b\nout\n$ c\n{\"x\":1}")),
        vec!["a \\\n  --b".to_string(), "c".to_string()]
    );
    assert_eq!(
        commands_of(&body("# comment\na\nb > f")),
        vec!["# comment\na\nb > f".to_string()]
    );
}
