//! A fleet on one machine: a real `redis-server` (Debian's package) on an
//! ephemeral loopback port with persistence off, the demo shop, and
//! `fieldguard run` processes in front of it, each with its own config,
//! admin port, audit file and captured log.
//!
//! Without `redis-server` the tests that need it say so loudly and pass;
//! under CI (`CI=true`) a missing one fails them.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the kernel's pick).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Where `redis-server` is, or `None` after saying loudly that the test is
/// skipped (a failure under CI).
pub fn redis_server_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "{test}: redis-server is not installed (CI=true: .ci/run installs Debian's redis-server)"
        );
        eprintln!(
            "\n*** SKIPPED {test}: redis-server not found on PATH (apt-get install redis-server) ***\n"
        );
    }
    found
}

/// A `redis-server` of the test's own, stopped (by pid) when dropped.
pub struct RedisServer {
    binary: PathBuf,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port, persistence off; `None` when
    /// the binary is missing (see [`redis_server_binary`]).
    pub fn start(test: &str, dir: &Path, extra: &[&str]) -> Option<Self> {
        Self::start_on(test, dir, free_port(), extra)
    }

    /// The same on a given port.
    pub fn start_on(test: &str, dir: &Path, port: u16, extra: &[&str]) -> Option<Self> {
        let binary = redis_server_binary(test)?;
        let mut s = Self {
            binary,
            port,
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.spawn();
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A Sentinel on a free port monitoring `master` as `mymaster`.
    pub fn start_sentinel(test: &str, dir: &Path, master: &RedisServer) -> Option<Self> {
        let binary = redis_server_binary(test)?;
        let port = free_port();
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n",
                dir.display(),
                master.port
            ),
        )
        .unwrap();
        let mut s = Self {
            binary,
            port,
            dir: dir.to_path_buf(),
            extra: vec![conf.display().to_string(), "--sentinel".into()],
            child: None,
        };
        s.spawn();
        Some(s)
    }

    /// Three primaries forming a Cluster (every slot covered, state ok).
    pub fn start_cluster(test: &str, dir: &Path) -> Option<Vec<Self>> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let conf = format!("nodes-{}.conf", free_port());
            nodes.push(Self::start(
                test,
                dir,
                &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
            )?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-yes")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(nodes)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port))).unwrap();
        let mut cmd = Command::new(&self.binary);
        if self.extra.iter().any(|a| a == "--sentinel") {
            cmd.args(&self.extra);
        } else {
            cmd.args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .args(&self.extra);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        self.wait_ready();
    }

    /// Until the server answers PING, or its TLS port accepts (bounded).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("redis-server exited at start: {status}");
            }
            let ready = match self.tls_port() {
                Some(p) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
                None => ping(self.port),
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn tls_port(&self) -> Option<u16> {
        let i = self.extra.iter().position(|a| a == "--tls-port")?;
        self.extra.get(i + 1)?.parse().ok()
    }

    /// Kills it (SIGKILL: an outage, not a shutdown; nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: persistence is off).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A command through `redis-cli` (Debian's redis-tools, beside the
    /// server), its output trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One RESP PING over a plain connection.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-"))
}

/// A `fieldguard run` process, killed (by pid) when dropped.
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub audit: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// The reference configuration, rewritten for a replica in `dir`: its
/// ports, the shop's address, absolute paths, an audit file, and
/// `budgets` (a YAML section replacing the reference one).
pub fn replica_config(
    dir: &Path,
    name: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    shop: SocketAddr,
    budgets: &str,
    edit: &dyn Fn(String) -> String,
) -> PathBuf {
    let mut text = super::reference_config_text(&listen.to_string(), &shop.to_string());
    // The reference budgets section runs from `budgets:` to the next
    // top-level key.
    let start = text
        .find("\nbudgets:\n")
        .expect("reference config has budgets");
    let end = text[start + 1..]
        .match_indices('\n')
        .map(|(i, _)| start + 1 + i + 1)
        .find(|&i| {
            text[i..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
        })
        .expect("a section follows budgets");
    text.replace_range(start + 1..end, budgets);
    text.push_str(&format!(
        "\naudit:\n  file: {}\n  stdout: false\n  shutdown_timeout_ms: 2000\nadmin:\n  address: {admin}\n",
        dir.join(format!("{name}.audit.log")).display()
    ));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

impl Replica {
    /// Starts `fieldguard run` with a replica config (see
    /// [`replica_config`]) and waits until it listens.
    pub async fn start(dir: &Path, name: &str, shop: SocketAddr, budgets: &str) -> Self {
        Self::start_edited(dir, name, shop, budgets, &|t| t).await
    }

    /// The same, with the config text edited last by `edit`.
    pub async fn start_edited(
        dir: &Path,
        name: &str,
        shop: SocketAddr,
        budgets: &str,
        edit: &dyn Fn(String) -> String,
    ) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = replica_config(dir, name, addr, admin, shop, budgets, edit);
        let mut r = Self {
            name: name.to_string(),
            addr,
            admin,
            audit: dir.join(format!("{name}.audit.log")),
            log: dir.join(format!("{name}.log")),
            config,
            child: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "replica {} exited before listening ({status}):\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("replica {} did not listen on {}", self.name, self.addr);
    }

    /// SIGKILL, then the same config again (same ports, same audit file).
    /// SIGKILL (empty memory) once every request answered so far has
    /// its audit record in the file, then a new process: a crash after
    /// the records were written. Killed earlier, the last records of the
    /// queue would be lost with the process, and the tests count what was
    /// disclosed from the files.
    pub async fn restart(&mut self) {
        self.recorded().await;
        self.kill();
        self.spawn().await;
    }

    /// Waits (up to 10 s) until the audit records written equal the
    /// requests counted.
    pub async fn recorded(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let (_, text) = get(self.admin, "/metrics", None).await;
            let requests = text_metric_sum(&text, "fieldguard_requests_total", "");
            let written = text_metric(&text, "fieldguard_audit_records_written_total");
            if written.is_some_and(|w| w >= requests) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{}: audit records not written within 10 s", self.name);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit (the audit queue drained).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("replica {} did not stop on SIGTERM", self.name);
        }
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One value of a metric family on the admin listener's scrape.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = get(self.admin, "/metrics", None).await;
        text_metric(&text, name)
    }

    /// `fieldguard audit expand` of this replica's audit file: every
    /// record in full.
    pub fn audit_records(&self) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["audit", "expand"])
            .arg(&self.audit)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit expand failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of an unlabelled sample (or the first sample) of `name`.
pub fn text_metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every sample of `name` whose labels contain `label`.
pub fn text_metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A request over real HTTP (bounded to 20 s for the head): the
/// response, its body still to read.
async fn send(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> http::Response<hyper::body::Incoming> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("answered within 20 s")
        .expect("request sent")
}

/// The status and the whole body as text.
async fn text_of(resp: http::Response<hyper::body::Incoming>) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A GET: the status and the body text.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    text_of(send("GET", addr, path, token).await).await
}

/// A POST with an empty body (the admin's `/reload`).
pub async fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    text_of(send("POST", addr, path, None).await).await
}

/// A GET whose body may end in an abort: the status, the bytes received,
/// and whether the body ended cleanly.
pub async fn get_raw(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<u8>, bool) {
    let resp = send("GET", addr, path, token).await;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    loop {
        match body.frame().await {
            None => return (status, bytes, true),
            Some(Err(_)) => return (status, bytes, false),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    bytes.extend_from_slice(&d);
                }
            }
        }
    }
}

/// The demo shop on an ephemeral port, served by this test's runtime.
pub async fn start_shop() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    start_shop_with(fieldguard::demo::data::DEMO_CUSTOMERS).await
}

/// The demo shop with `customers` customers.
pub async fn start_shop_with(customers: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use fieldguard::demo::shop;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = shop::serve(l, shop::Shop::new(customers)).await;
    });
    (addr, task)
}
