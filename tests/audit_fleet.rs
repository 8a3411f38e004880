//! Audit chains a fleet can verify (issue #20): real `fieldguard run`
//! processes in front of the demo shop, each writing its own chain (one
//! per run, from a genesis record to a seal record on a clean shutdown),
//! their files collected into one directory in any order. `audit verify`
//! sorts the lines into chains and reports each sealed, open or broken;
//! `audit subject` and `audit expand` read the same mixed sets.

mod common;

use common::token;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `fieldguard run` process named as a pod of the fleet.
struct Pod {
    child: Child,
    addr: std::net::SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pod {
    /// Starts `fieldguard run` with the demo config in front of
    /// `upstream`, its audit file in `dir` (rotating at `max_file_bytes`),
    /// and the downward API's variables for pod `name`.
    fn start(dir: &Path, upstream: std::net::SocketAddr, name: &str, max_file_bytes: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let text = common::reference_config_text("127.0.0.1:0", &upstream.to_string())
            + &format!(
                "\nadmin:\n  address: 127.0.0.1:0\nreload:\n  watch: false\naudit:\n  file: {}\n  stdout: false\n  max_file_bytes: {max_file_bytes}\n  max_files: 100\n",
                dir.join("audit.log").display()
            );
        // Beside the folder, which holds audit files only.
        let config = dir.with_extension("yaml");
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("FIELDGUARD_LOG_FORMAT")
            .env("FIELDGUARD_LOG", "warn")
            .env("FIELDGUARD_POD_NAME", name)
            .env("FIELDGUARD_POD_UID", format!("uid-{name}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            assert!(
                Instant::now() < deadline,
                "did not start:\n{}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
            let text = stderr.lock().unwrap().clone();
            let found = text.lines().find_map(|l| {
                l.split_once("fieldguard listening on http://")
                    .and_then(|(_, rest)| {
                        rest.trim()
                            .trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .ok()
                    })
            });
            if let Some(a) = found {
                break a;
            }
        };
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// Sends `signal` and waits for the process to end.
    fn stop(mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "did not stop:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `n` reads of customer c-1001 by `agent` (a support agent).
    async fn reads(&self, agent: &str, n: usize) {
        let h = common::audited::harness_for(self.addr);
        let tok = token("support_agent", agent, false, None);
        for _ in 0..n {
            assert_eq!(h.get("/customers/c-1001", &tok).await.status, 200);
        }
    }
}

async fn demo_shop() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = shop::serve(l, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    addr
}

/// `fieldguard audit ARGS…`.
fn audit(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .arg("audit")
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The request lines (`request_id`) of a file.
fn request_lines(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"request_id\""))
        .count()
}

/// Copies every file of `from` into `to`, prefixed `prefix-`.
fn collect(from: &Path, to: &Path, prefix: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("audit.log") {
            std::fs::copy(&p, to.join(format!("{prefix}-{name}"))).unwrap();
        }
    }
}

fn lines_of(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

/// The chain line of `audit verify`'s report for pod `pod`.
fn chain_line<'a>(report: &'a str, pod: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(&format!("chain {pod}/")))
        .unwrap_or_else(|| panic!("no chain of {pod} in:\n{report}"))
}

#[tokio::test]
async fn three_pods_one_killed_verify_as_two_sealed_chains_and_one_open() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = demo_shop().await;
    // Pod a rotates its file every few records: its chain spans files.
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let a = Pod::start(&a_dir, shop, "shop-a", 3000);
    let b = Pod::start(&b_dir, shop, "shop-b", 1024 * 1024);
    let c = Pod::start(&c_dir, shop, "shop-c", 1024 * 1024);
    a.reads("agent-1", 6).await;
    b.reads("agent-2", 3).await;
    c.reads("agent-3", 4).await;
    // b's records are on disk (fsynced per write) before it is killed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while request_lines(&b_dir.join("audit.log")) < 3 {
        assert!(Instant::now() < deadline, "b's records were not written");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.stop("-KILL");
    a.stop("-TERM");
    c.stop("-TERM");

    // Everything in one directory, under names that say nothing of the
    // order.
    let all = tmp.path().join("collected");
    collect(&a_dir, &all, "a");
    collect(&b_dir, &all, "b");
    collect(&c_dir, &all, "c");
    assert!(
        std::fs::read_dir(&all).unwrap().count() >= 4,
        "a rotated: more than three files"
    );

    let out = audit(&["verify"], &[&all]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.ends_with("3 chains: 2 sealed, 1 open, 0 broken\n"),
        "{report}"
    );
    let line = chain_line(&report, "shop-a");
    assert!(
        line.contains("(pod shop-a,") && line.contains(": sealed (shutdown): 6 records,"),
        "{line}"
    );
    assert!(
        chain_line(&report, "shop-c").contains(": sealed (shutdown): 4 records,"),
        "{report}"
    );
    let line = chain_line(&report, "shop-b");
    assert!(
        line.contains(": open (no seal: still running, or cut off; last seq ")
            && line.contains(": 3 records,"),
        "{line}"
    );

    // The JSON report says the same, with each genesis's names.
    let out = audit(&["verify", "--format", "json"], &[&all]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chains = json["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 3);
    for c in chains {
        let g = &c["genesis"];
        let pod = g["pod_name"].as_str().unwrap();
        assert_eq!(g["pod_uid"], format!("uid-{pod}"));
        assert!(g["id"].as_str().unwrap().starts_with(&format!("{pod}/")));
        assert_eq!(c["tag"].as_str().unwrap().len(), 8);
        let status = if pod == "shop-b" { "open" } else { "sealed" };
        assert_eq!(c["status"], status, "{c}");
    }

    // --require-sealed: the killed pod's chain fails it.
    let out = audit(&["verify", "--require-sealed"], &[&all]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("1 chain is not sealed (--require-sealed): shop-b/"),
        "{err}"
    );

    // `audit subject` over the mixed set: the reads from all three.
    let out = audit(&["subject", "c-1001", "--format", "json"], &[&all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let subject: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = subject["events"].as_array().unwrap();
    assert_eq!(events.len(), 6 + 3 + 4);
    for (pod, agent, n) in [
        ("shop-a", "agent-1", 6),
        ("shop-b", "agent-2", 3),
        ("shop-c", "agent-3", 4),
    ] {
        let of_pod: Vec<&Value> = events
            .iter()
            .filter(|e| e["chain"].as_str().unwrap().starts_with(&format!("{pod}/")))
            .collect();
        assert_eq!(of_pod.len(), n, "{pod}");
        assert!(
            of_pod
                .iter()
                .all(|e| e["principal"] == agent && e["access"] == "read")
        );
    }
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let out = audit(&["subject", "c-1001"], &[&all]);
    assert!(out.status.success());
    let summary = text(&out.stdout);
    assert!(
        summary.contains("c-1001: 13 reads, 0 changes, 0 deletions allowed, 0 refused; 3 chains ok (2 sealed, 1 open): 13 records verified"),
        "{summary}"
    );

    // `audit expand` over the mixed set: every chain's records in full,
    // with its genesis and (where sealed) its seal.
    let out = audit(&["expand"], &[&all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expanded: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |event: &str| expanded.iter().filter(|r| r["event"] == event).count();
    assert_eq!((count("genesis"), count("seal")), (3, 2));
    assert_eq!(
        expanded
            .iter()
            .filter(|r| r["route"] == "/customers/{id}")
            .count(),
        13
    );

    // A line removed from one chain: broken, and the chain is named.
    let cut = tmp.path().join("cut");
    collect(&a_dir, &cut, "a");
    collect(&b_dir, &cut, "b");
    collect(&c_dir, &cut, "c");
    let c_file = cut.join("c-audit.log");
    let mut lines = lines_of(&c_file);
    let at = lines
        .iter()
        .rposition(|l| l.contains("\"request_id\""))
        .unwrap()
        - 1;
    assert!(lines[at].contains("\"request_id\""));
    lines.remove(at);
    write_lines(&c_file, &lines);
    let out = audit(&["verify"], &[&cut]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("audit chain broken at")
            && err.contains("c-audit.log:")
            && err.contains("(chain shop-c/"),
        "{err}"
    );
    let report = text(&out.stdout);
    assert!(
        report.ends_with("3 chains: 1 sealed, 1 open, 1 broken\n"),
        "{report}"
    );
    assert!(
        chain_line(&report, "shop-c").contains(": broken"),
        "{report}"
    );
    // So is `audit subject`: a broken chain is not reported on.
    let out = audit(&["subject", "c-1001"], &[&cut]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("(chain shop-c/"));
}

#[tokio::test]
async fn merged_lines_torn_tails_and_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = demo_shop().await;
    let (a_dir, c_dir) = (tmp.path().join("a"), tmp.path().join("c"));
    let a = Pod::start(&a_dir, shop, "shop-a", 1024 * 1024);
    let c = Pod::start(&c_dir, shop, "shop-c", 1024 * 1024);
    a.reads("agent-1", 4).await;
    c.reads("agent-3", 5).await;
    a.stop("-TERM");
    c.stop("-TERM");
    let a_lines = lines_of(&a_dir.join("audit.log"));
    let c_lines = lines_of(&c_dir.join("audit.log"));

    // The two pods' lines interleaved in ONE file, as a log store merges
    // their stdout: each chain's lines in order, the chains mixed.
    let mut merged = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a_lines.len() || j < c_lines.len() {
        if i < a_lines.len() && (j >= c_lines.len() || (i + j) % 3 != 2) {
            merged.push(a_lines[i].clone());
            i += 1;
        } else {
            merged.push(c_lines[j].clone());
            j += 1;
        }
    }
    let merged_file = tmp.path().join("merged.log");
    write_lines(&merged_file, &merged);
    let out = audit(&["verify", "--require-sealed"], &[&merged_file]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.ends_with("2 chains: 2 sealed, 0 open, 0 broken\n"),
        "{report}"
    );
    let out = audit(&["subject", "c-1001", "--format", "json"], &[&merged_file]);
    assert!(out.status.success());
    let subject: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(subject["events"].as_array().unwrap().len(), 9);

    // Two lines of one chain swapped within the file (the other chain's
    // lines between them untouched): broken, naming the chain.
    let swap_at: Vec<usize> = merged
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(&c_tag(&c_lines)) && l.contains("\"request_id\""))
        .map(|(n, _)| n)
        .take(2)
        .collect();
    let mut swapped = merged.clone();
    swapped.swap(swap_at[0], swap_at[1]);
    let bad = tmp.path().join("swapped.log");
    write_lines(&bad, &swapped);
    let out = audit(&["verify"], &[&bad]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("swapped.log:{}:", swap_at[0] + 1))
            && err.contains("deleted, inserted or moved")
            && err.contains("(chain shop-c/"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("1 sealed, 0 open, 1 broken"));

    // An edited line: broken, naming the chain.
    let mut edited = merged.clone();
    let at = edited
        .iter()
        .position(|l| l.contains("\"agent-1\""))
        .unwrap();
    edited[at] = edited[at].replacen("\"agent-1\"", "\"agent-9\"", 1);
    let bad = tmp.path().join("edited.log");
    write_lines(&bad, &edited);
    let out = audit(&["verify"], &[&bad]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("edited.log:{}:", at + 1))
            && err.contains("modified")
            && err.contains("(chain shop-a/"),
        "{err}"
    );

    // A chain whose seal was removed: open; --require-sealed fails it.
    let unsealed: Vec<String> = merged
        .iter()
        .filter(|l| !(l.contains(&c_tag(&c_lines)) && l.contains("\"event\":\"seal\"")))
        .cloned()
        .collect();
    assert_eq!(unsealed.len(), merged.len() - 1);
    let bad = tmp.path().join("unsealed.log");
    write_lines(&bad, &unsealed);
    let out = audit(&["verify"], &[&bad]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        chain_line(&report, "shop-c").contains(": open (no seal"),
        "{report}"
    );
    let out = audit(&["verify", "--require-sealed"], &[&bad]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not sealed (--require-sealed): shop-c/"));

    // A writer killed mid-write leaves part of a line: the chain is open,
    // cut off mid-record; the next run on the same file starts a chain of
    // its own in a new file, whose genesis says what it found.
    let a_file = a_dir.join("audit.log");
    // (The seal and the last request line gone, half of that line there.)
    let last_request = &a_lines[a_lines.len() - 2];
    assert!(last_request.contains("\"request_id\""));
    let mut torn = a_lines[..a_lines.len() - 2].join("\n") + "\n";
    torn.push_str(&last_request[..last_request.len() / 2]);
    std::fs::write(&a_file, &torn).unwrap();
    let out = audit(&["verify"], &[&a_dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        chain_line(&report, "shop-a")
            .contains(": open (no seal: still running, or cut off mid-record"),
        "{report}"
    );
    let again = Pod::start(&a_dir, shop, "shop-a", 1024 * 1024);
    again.reads("agent-1", 2).await;
    again.stop("-TERM");
    assert_eq!(
        std::fs::read_to_string(a_dir.join("audit.log.1")).unwrap(),
        torn
    );
    let first_of_new: Value = serde_json::from_str(&lines_of(&a_file)[0]).unwrap();
    assert_eq!(first_of_new["event"], "genesis");
    assert_eq!(first_of_new["previous"]["tail"], "incomplete");
    let out = audit(&["verify"], &[&a_dir]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.ends_with("2 chains: 1 sealed, 1 open, 0 broken\n"),
        "{report}"
    );
}

/// The chain tag of a file's lines, as it appears in them.
fn c_tag(lines: &[String]) -> String {
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    format!("\"c\":\"{}\"", v["c"].as_str().unwrap())
}
