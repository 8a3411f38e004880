//! The audit trail and the process log at production rates: retention is
//! a decision (refuse by default: no record is deleted to make room;
//! `delete_oldest` counts, logs and records what it deleted, and `audit
//! verify` reports the gap instead of a broken chain), and repeated
//! warnings are summarised rather than written per request.

mod common;

use common::audited::{records, start_audited};
use common::token;
use fieldguard::audit::sink::numbered;
use fieldguard::audit::{AuditSettings, WhenFull};
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::tools::audit::{VerifyOptions, verify_files};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FILE_BYTES: u64 = 32 * 1024;

/// Three files of `file_bytes` at most, two of them rotated.
fn small_retention(dir: &Path, file_bytes: u64, when_full: WhenFull) -> AuditSettings {
    let mut s = AuditSettings::for_file(dir.join("audit.log"));
    s.retry_interval = Duration::from_millis(20);
    s.max_file_bytes = file_bytes;
    s.max_files = 2;
    s.retention.max_total_bytes = 3 * file_bytes;
    s.retention.when_full = when_full;
    s
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let log = dir.join("audit.log");
    let mut v: Vec<PathBuf> = (1..=8)
        .rev()
        .map(|n| numbered(&log, n))
        .filter(|p| p.exists())
        .collect();
    v.push(log);
    v
}

#[tokio::test]
async fn refuse_mode_refuses_requests_before_deleting_evidence_and_serves_again_when_space_returns()
{
    let dir = tempfile::tempdir().unwrap();
    // Room for a few hundred records; the refused requests' records wait
    // in the queue and need far less than the two files moved away free.
    let file_bytes = 128 * 1024;
    let mut a = start_audited(small_retention(dir.path(), file_bytes, WhenFull::Refuse)).await;
    let tok = token("customer", "c-1001", false, None);
    let (mut served, mut refused) = (0, 0);
    for _ in 0..3000 {
        let r = a.h.get("/customers/c-1001", &tok).await;
        match r.status.as_u16() {
            200 => served += 1,
            503 => {
                assert_eq!(r.json()["error"], "audit_unavailable");
                refused += 1;
                if refused >= 20 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(
        served > 200 && refused >= 20,
        "served {served}, refused {refused}"
    );
    // Nothing was deleted: the chain is whole from seq 0.
    let kept = files(dir.path());
    assert_eq!(kept.len(), 3, "{kept:?}");
    let report = verify_files(&kept, &VerifyOptions::default()).unwrap();
    assert_eq!((report.first_seq, report.deleted), (Some(0), None));
    let m = a.scrape().await;
    assert_eq!(m.value("fieldguard_audit_files_deleted_total", &[]), 0.0);
    assert_eq!(m.value("fieldguard_audit_sink_up", &[]), 0.0);
    assert_eq!(
        m.value("fieldguard_audit_retention_capacity_bytes", &[]),
        (3 * file_bytes) as f64
    );

    // An operator (or a log shipper) moves the rotated files away: served
    // again, the records held meanwhile written.
    let log = dir.path().join("audit.log");
    let archived = [dir.path().join("archive.2"), dir.path().join("archive.1")];
    std::fs::rename(numbered(&log, 2), &archived[0]).unwrap();
    std::fs::rename(numbered(&log, 1), &archived[1]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a.h.get("/customers/c-1001", &tok).await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = a.scrape().await;
    let lost = m.value("fieldguard_audit_records_lost_total", &[]);
    a.drain().await;
    let mut all = archived.to_vec();
    all.extend(files(dir.path()));
    let report = verify_files(&all, &VerifyOptions::default()).unwrap();
    assert_eq!((report.first_seq, report.deleted), (Some(0), None));
    // Every request left its record: the refused ones too.
    assert!(
        report.records as usize > served + refused,
        "{} records for {served} served and {refused} refused requests ({lost} lost)",
        report.records
    );
}

/// The real binary (so its log is real) in front of the demo shop, with a
/// config written for the test.
struct Running {
    child: Child,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(
        dir: &Path,
        upstream: std::net::SocketAddr,
        audit: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let text = common::reference_config_text("127.0.0.1:0", &upstream.to_string())
            + &format!("\nadmin:\n  address: 127.0.0.1:0\nreload:\n  watch: false\n{audit}");
        let config = dir.join("fieldguard.yaml");
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldguard"));
        cmd.args(["run", "--config"])
            .arg(&config)
            .env_remove("FIELDGUARD_LOG_FORMAT")
            .env("FIELDGUARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
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
        let (mut addr, mut admin) = (None, None);
        while addr.is_none() || admin.is_none() {
            assert!(
                Instant::now() < deadline,
                "did not start:\n{}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
            let text = stderr.lock().unwrap().clone();
            let after = |marker: &str| {
                text.lines()
                    .find_map(|l| {
                        l.split_once(marker)
                            .map(|(_, rest)| rest.trim().to_string())
                    })
                    .and_then(|a| {
                        a.trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .ok()
                    })
            };
            addr = after("fieldguard listening on http://");
            admin = after("fieldguard admin on http://");
        }
        Self {
            child,
            addr: addr.unwrap(),
            admin: admin.unwrap(),
            stderr,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and wait for the drain.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.log()
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

async fn get(addr: std::net::SocketAddr, path: &str, token: &str) -> u16 {
    let client = common::audited::harness_for(addr);
    client.get(path, token).await.status.as_u16()
}

#[tokio::test]
async fn delete_oldest_counts_logs_and_records_what_it_deleted_and_verify_reports_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let audit = format!(
        "audit:\n  file: {}\n  stdout: false\n  fsync: interval\n  max_file_bytes: {FILE_BYTES}\n  max_files: 2\n  retention:\n    max_total_bytes: {}\n    when_full: delete_oldest\n",
        dir.path().join("audit.log").display(),
        3 * FILE_BYTES
    );
    let shop = demo_shop().await;
    let fg = Running::start(dir.path(), shop, &audit, &[]);
    let tok = token("customer", "c-1001", false, None);
    for _ in 0..600 {
        assert_eq!(get(fg.addr, "/customers/c-1001", &tok).await, 200);
    }
    let scrape = common::audited::plain_get(&format!("http://{}/metrics", fg.admin))
        .await
        .1;
    let deleted: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("fieldguard_audit_files_deleted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(deleted >= 1.0, "{scrape}");
    let log = fg.stop();
    assert!(log.contains("audit retention deleted a file"), "{log}");

    let kept = files(dir.path());
    assert!(kept.len() <= 3, "{kept:?}");
    let all: Vec<_> = kept.iter().flat_map(|f| records(f)).collect();
    let report = verify_files(&kept, &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{kept:?}\n{log}"));
    let gap = report.deleted.expect("the gap is reported");
    assert_eq!(gap.first_seq, 0);
    assert_eq!(gap.last_seq + 1, report.first_seq.unwrap());
    // The record that says so names the last deleted record.
    let note = all
        .iter()
        .find(|r| r["seq"] == gap.noted_at)
        .expect("the noting record is in the files");
    assert_eq!(note["event"], "retention_deleted");
    assert_eq!(note["deleted_seq"][1], gap.last_seq);
    // The command line says so too.
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["audit", "verify"])
        .args(&kept)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "partial: starts at seq {} after audit retention deleted seq 0 to {}",
            gap.last_seq + 1,
            gap.last_seq
        )),
        "{text}"
    );
    // Without the note the same start is a broken chain.
    let first = &kept[0];
    let stripped: String = std::fs::read_to_string(first)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("retention_deleted"))
        .map(|l| format!("{l}\n"))
        .collect();
    let lone = dir.path().join("lone.log");
    std::fs::write(&lone, stripped.lines().next().unwrap().to_string() + "\n").unwrap();
    assert!(verify_files(&[lone], &VerifyOptions::default()).is_err());
}

#[tokio::test]
async fn a_dead_upstream_under_load_writes_a_bounded_number_of_log_lines() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = format!(
        "audit:\n  file: {}\n  stdout: false\n  fsync: interval\n",
        dir.path().join("audit.log").display()
    );
    let fg = Running::start(
        dir.path(),
        dead,
        &audit,
        &[("FIELDGUARD_LOG_REPEAT_SECONDS", "1")],
    );
    let before = fg.log().lines().count();
    let tok = token("support_agent", "agent-7", false, None);
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let batch: Vec<_> = (0..16)
            .map(|_| {
                let tok = tok.clone();
                let addr = fg.addr;
                tokio::spawn(async move { get(addr, "/customers/c-1001", &tok).await })
            })
            .collect();
        for t in batch {
            assert_eq!(t.await.unwrap(), 502);
            sent += 1;
        }
    }
    // Let the flusher write the last summary.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let log = fg.stop();
    let lines: Vec<&str> = log.lines().skip(before).collect();
    let upstream: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("upstream_failed"))
        .collect();
    assert!(sent >= 200, "only {sent} requests");
    // The first failure, then at most one summary per second (plus slack
    // for the last partial interval).
    assert!(
        upstream.len() <= 2 + 6,
        "{} lines for {sent} failures:\n{}",
        upstream.len(),
        upstream
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summarised: u64 = upstream
        .iter()
        .filter_map(|l| {
            l.split(" more `upstream_failed`")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    // Every failure is either logged or told in a summary.
    let logged = upstream
        .iter()
        .filter(|l| l.contains("upstream request failed"))
        .count() as u64;
    assert_eq!(summarised + logged, sent as u64, "{log}");
}
