//! `fieldguard demo` as a real process on ephemeral ports (proxy, shop and
//! admin listener), its audit log where the test says, and what its banner
//! printed: the addresses and the ready-made tokens. For tests that run
//! the binary's own commands against a running demo, as a reader would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the banner may take (a first start builds a few thousand
/// records; it is printed well within this).
const BANNER_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DemoProcess {
    child: Child,
    /// `host:port` of each listener.
    pub proxy: String,
    pub shop: String,
    pub admin: String,
    /// `TOKEN_CUSTOMER` → token, as the banner's `export` lines say.
    pub tokens: BTreeMap<String, String>,
}

impl DemoProcess {
    /// Starts the demo writing its audit log to `audit_file`, and waits for
    /// its banner.
    pub fn start(audit_file: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["demo", "--listen", "127.0.0.1:0", "--upstream-listen"])
            .args([
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--audit-file",
            ])
            .arg(audit_file)
            .current_dir(super::repo_path(""))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fieldguard demo");
        let mut demo = DemoProcess {
            child,
            proxy: String::new(),
            shop: String::new(),
            admin: String::new(),
            tokens: BTreeMap::new(),
        };
        let stdout = demo.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout after the banner (a closed pipe would end
        // the demo at its next line of output).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        demo.read_banner(&rx);
        demo
    }

    fn read_banner(&mut self, lines: &mpsc::Receiver<String>) {
        let deadline = Instant::now() + BANNER_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("demo banner incomplete ({e}): {seen:#?}"));
            let addr = || {
                let url = line.split_whitespace().last().unwrap_or_default();
                let rest = url.strip_prefix("http://").unwrap_or(url);
                rest.split('/').next().unwrap_or_default().to_string()
            };
            if line.contains("fieldguard proxy:") {
                self.proxy = addr();
            } else if line.contains("demo shop") {
                self.shop = addr();
            } else if line.contains("admin (") {
                self.admin = addr();
            } else if let Some(rest) = line.trim().strip_prefix("export ") {
                let (name, tok) = rest.split_once('=').expect("NAME=token");
                self.tokens.insert(name.to_string(), tok.to_string());
            } else if line.trim() == "Try:" {
                break;
            }
            seen.push(line);
        }
        assert!(
            !self.proxy.is_empty() && !self.shop.is_empty() && !self.admin.is_empty(),
            "addresses printed: {seen:#?}"
        );
    }

    /// SIGTERM (the demo seals its audit chain) and waits for the exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "demo exited within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
