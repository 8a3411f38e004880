//! Hot reload: a valid change is picked up (file write, ConfigMap-style
//! symlink swap, SIGHUP, POST /reload) and enforced on the next request; an
//! invalid change is refused and the old set keeps serving; no request fails
//! while reloads happen under load.

mod common;

use bytes::Bytes;
use common::{copy_dir, repo_path, token};
use fieldguard::config::{self, ListenerConfig};
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::proxy::{self, Proxy};
use fieldguard::runtime::Runtime;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const SUPPORT_RULE_WITH_MFA: &str = "when { context.mfa && [\"phone\", \"email\"]";
const SUPPORT_RULE_WITHOUT_MFA: &str = "when { [\"phone\", \"email\"]";

/// A copy of the reference deployment in a temp dir, so tests can edit it.
fn deployment() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    dir
}

/// Rewrites `support_agent.cedar` so agents see contact details without
/// MFA (or back). Written to a temp file and renamed, as editors do.
fn set_support_mfa_rule(policy_dir: &Path, require_mfa: bool) {
    let file = policy_dir.join("support_agent.cedar");
    let text = std::fs::read_to_string(&file).unwrap();
    let (from, to) = if require_mfa {
        (SUPPORT_RULE_WITHOUT_MFA, SUPPORT_RULE_WITH_MFA)
    } else {
        (SUPPORT_RULE_WITH_MFA, SUPPORT_RULE_WITHOUT_MFA)
    };
    // The first match is the MFA rule (the masked-form rule below it also
    // starts with the field list).
    let new = text.replacen(from, to, 1);
    let tmp = policy_dir.join(".support_agent.cedar.tmp");
    std::fs::write(&tmp, new).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
}

struct Running {
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    admin: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _watcher: Option<notify::RecommendedWatcher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn start(config_file: PathBuf, policies: Option<PathBuf>, watch: bool) -> Running {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let mut tasks = vec![tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    })];
    let adjust: fieldguard::reload::Adjust = Box::new(move |loaded: &mut config::LoadedConfig| {
        loaded.config.upstream.url.value = format!("http://{shop_addr}");
        loaded.config.listeners = vec![ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
        }];
        loaded.config.reload.watch = watch;
        loaded.config.reload.debounce_ms = 100;
        if let Some(dir) = &policies {
            loaded.config.policies.directory = dir.clone();
        }
    });
    let mut loaded = config::load(&config_file).unwrap();
    adjust(&mut loaded);
    let proxy = Arc::new(Proxy::new(Runtime::build(loaded).unwrap()).unwrap());
    let watcher = fieldguard::service::start_reloading(&proxy, config_file, adjust).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p = proxy.clone();
    tasks.push(tokio::spawn(async move {
        let _ = proxy::serve(listener, p).await;
    }));
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let p = proxy.clone();
    tasks.push(tokio::spawn(async move {
        let _ = fieldguard::admin::serve(admin_listener, p).await;
    }));
    Running {
        proxy,
        addr,
        admin,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        _watcher: watcher,
        tasks,
    }
}

impl Running {
    async fn call(&self, method: &str, url: String, token: Option<&str>) -> (u16, Value) {
        let mut req = http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            self.client
                .request(req.body(Full::new(Bytes::new())).unwrap()),
        )
        .await
        .expect("answered in time")
        .expect("request sent");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The support agent's (no MFA) view of c-1001's phone.
    async fn agent_phone(&self) -> String {
        let tok = token("support_agent", "agent-7", false, None);
        let (status, body) = self
            .call(
                "GET",
                format!("http://{}/customers/c-1001", self.addr),
                Some(&tok),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["phone"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until the agent's view of the phone is masked or not.
    async fn wait_for_masked(&self, masked: bool) {
        for _ in 0..100 {
            if self.agent_phone().await.contains('*') == masked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the change was not picked up within 10 s");
    }

    async fn policies(&self) -> Value {
        self.call("GET", format!("http://{}/policies", self.admin), None)
            .await
            .1
    }
}

#[tokio::test]
async fn a_policy_file_write_is_picked_up_and_enforced() {
    let dir = deployment();
    let r = start(dir.path().join("examples/demo/fieldguard.yaml"), None, true).await;
    r.wait_for_masked(true).await;
    let before = r.policies().await["version"].clone();
    set_support_mfa_rule(&dir.path().join("policies"), false);
    r.wait_for_masked(false).await;
    assert_ne!(r.policies().await["version"], before);
    set_support_mfa_rule(&dir.path().join("policies"), true);
    r.wait_for_masked(true).await;
}

#[tokio::test]
async fn an_invalid_change_is_refused_and_the_old_set_keeps_serving() {
    let dir = deployment();
    let r = start(dir.path().join("examples/demo/fieldguard.yaml"), None, true).await;
    let good = r.policies().await["version"].clone();
    let broken = dir.path().join("policies/broken.cedar");
    std::fs::write(&broken, "@id(\"broken\")\npermit (principal, action, resource)\nwhen { resource.no_such_attribute };\n").unwrap();
    // Bounded wait for the watcher to try (and refuse) the change.
    let mut error = Value::Null;
    for _ in 0..100 {
        error = r.policies().await["last_reload"]["error"].clone();
        if error.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let msg = error.as_str().expect("the failed reload is reported");
    assert!(msg.contains("broken.cedar:3:"), "file and line: {msg}");
    assert_eq!(
        r.policies().await["version"],
        good,
        "the last good set is active"
    );
    assert!(r.agent_phone().await.contains('*'), "still enforced");
    let (status, body) = r
        .call("POST", format!("http://{}/reload", r.admin), None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["active_version"], good);
    let metrics = String::from_utf8(r.proxy.metrics.render()).unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("fieldguard_policy_loads_total{result=\"failure\"}")
                && !l.ends_with(" 0")
        ),
        "failed loads are counted"
    );
    // Fixing it recovers.
    std::fs::remove_file(&broken).unwrap();
    let (status, _) = r
        .call("POST", format!("http://{}/reload", r.admin), None)
        .await;
    assert_eq!(status, 200);
    assert!(r.policies().await["last_reload"]["error"].is_null());
}

#[tokio::test]
async fn post_reload_applies_a_change_without_watching() {
    let dir = deployment();
    let r = start(
        dir.path().join("examples/demo/fieldguard.yaml"),
        None,
        false,
    )
    .await;
    set_support_mfa_rule(&dir.path().join("policies"), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        r.agent_phone().await.contains('*'),
        "not watching: unchanged until asked"
    );
    let (status, body) = r
        .call("POST", format!("http://{}/reload", r.admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !r.agent_phone().await.contains('*'),
        "enforced on the next request"
    );
    let (status, _) = r
        .call("GET", format!("http://{}/reload", r.admin), None)
        .await;
    assert_eq!(status, 405);
}

/// Kubernetes mounts a ConfigMap as `..data -> ..2026_v1/` plus per-file
/// symlinks through `..data`, and updates it by swapping `..data`.
#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    let dir = deployment();
    let mount = dir.path().join("mount");
    let v1 = mount.join("..2026_v1");
    copy_dir(&dir.path().join("policies"), &v1);
    std::os::unix::fs::symlink("..2026_v1", mount.join("..data")).unwrap();
    for e in std::fs::read_dir(&v1).unwrap() {
        let name = e.unwrap().file_name();
        let link = mount.join(&name);
        std::os::unix::fs::symlink(Path::new("..data").join(&name), link).unwrap();
    }
    let r = start(
        dir.path().join("examples/demo/fieldguard.yaml"),
        Some(mount.clone()),
        true,
    )
    .await;
    r.wait_for_masked(true).await;
    let v2 = mount.join("..2026_v2");
    copy_dir(&v1, &v2);
    set_support_mfa_rule(&v2, false);
    // Atomic swap: a new symlink renamed over `..data`.
    std::os::unix::fs::symlink("..2026_v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    r.wait_for_masked(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_reloading_under_load() {
    let dir = deployment();
    // Thousands of reads by one agent: the reference bulk-read budgets
    // (tested in tests/budgets.rs) count them in shadow mode here.
    let config = dir.path().join("examples/demo/fieldguard.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let enforce = "budgets:\n  mode: enforce";
    assert!(text.contains(enforce));
    std::fs::write(&config, text.replace(enforce, "budgets:\n  mode: shadow")).unwrap();
    let r = Arc::new(
        start(
            dir.path().join("examples/demo/fieldguard.yaml"),
            None,
            false,
        )
        .await,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (r, stop) = (r.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let tok = token("support_agent", "agent-7", false, None);
            let mut answered = 0;
            // Bounded: at most 2,000 requests per client.
            for _ in 0..2_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (status, body) = r
                    .call(
                        "GET",
                        format!("http://{}/customers/c-1001", r.addr),
                        Some(&tok),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                assert!(body["id_card_number"].is_null(), "never unfiltered");
                answered += 1;
            }
            answered
        }));
    }
    for i in 0..10 {
        set_support_mfa_rule(&dir.path().join("policies"), i % 2 == 1);
        let p = r.proxy.clone();
        let result =
            tokio::task::spawn_blocking(move || p.reload(fieldguard::reload::Trigger::Admin))
                .await
                .unwrap();
        assert!(result.is_ok(), "{result:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c.await.expect("no client saw a failure");
    }
    assert!(total > 0);
    assert!(r.proxy.last_reload().attempts >= 10);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fieldguard run` reloads on SIGHUP (watching off, so only the signal can
/// have caused it).
#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let dir = deployment();
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("examples/demo/fieldguard.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("http://127.0.0.1:9000", &format!("http://{shop_addr}"));
    let text = format!(
        "{text}\nadmin:\n  address: 127.0.0.1:{admin_port}\nreload:\n  watch: false\naudit:\n  file: {}\n  stdout: false\n",
        dir.path().join("audit.log").display()
    );
    std::fs::write(&config, text).unwrap();
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let phone = || async {
        let tok = token("support_agent", "agent-7", false, None);
        let req = http::Request::get(format!("http://127.0.0.1:{port}/customers/c-1001"))
            .header("authorization", format!("Bearer {tok}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let v: Value = serde_json::from_slice(&body).ok()?;
        v["phone"].as_str().map(str::to_string)
    };
    let mut started = false;
    for _ in 0..100 {
        if phone().await.is_some() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "fieldguard run did not come up");
    assert!(phone().await.unwrap().contains('*'));
    set_support_mfa_rule(&dir.path().join("policies"), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        phone().await.unwrap().contains('*'),
        "no watcher: unchanged until the signal"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut reloaded = false;
    for _ in 0..100 {
        if phone().await.is_some_and(|p| !p.contains('*')) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "SIGHUP did not reload within 10 s");
    shop_task.abort();
}

/// `fieldguard demo --policies DIR` runs the demo on another policy folder
/// and hot-reloads it.
#[tokio::test]
async fn demo_runs_on_another_policy_folder_with_hot_reload() {
    use std::io::BufRead;
    let dir = deployment();
    let policies = dir.path().join("policies");
    set_support_mfa_rule(&policies, false);
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--upstream-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--audit-file")
            .arg(dir.path().join("audit.log"))
            .arg("--policies")
            .arg(&policies)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut proxy_url, mut agent_token) = (None, None);
    while proxy_url.is_none() || agent_token.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo banner");
        if let Some(u) = line.split("fieldguard proxy:").nth(1) {
            proxy_url = Some(u.trim().to_string());
        }
        if let Some(t) = line.trim().strip_prefix("export TOKEN_SUPPORT_AGENT=") {
            agent_token = Some(t.to_string());
        }
    }
    let (url, tok) = (proxy_url.unwrap(), agent_token.unwrap());
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let phone = || async {
        let req = http::Request::get(format!("{url}/customers/c-1001"))
            .header("authorization", format!("Bearer {tok}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let v: Value = serde_json::from_slice(&body).ok()?;
        v["phone"].as_str().map(str::to_string)
    };
    assert!(
        !phone().await.unwrap().contains('*'),
        "the team's policies are the ones in force"
    );
    set_support_mfa_rule(&policies, true);
    let mut reloaded = false;
    for _ in 0..100 {
        if phone().await.is_some_and(|p| p.contains('*')) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the demo did not pick up the change within 10 s");
}

/// Other files in the watched folders (an audit log beside the config)
/// must not wake the reloader.
#[tokio::test]
async fn unrelated_writes_in_watched_folders_do_not_reload() {
    let dir = deployment();
    let r = start(dir.path().join("examples/demo/fieldguard.yaml"), None, true).await;
    let log = dir.path().join("examples/demo/audit.log");
    for i in 0..20 {
        std::fs::write(&log, format!("line {i}\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        r.proxy.last_reload().attempts,
        0,
        "no reload for an unrelated file"
    );
    set_support_mfa_rule(&dir.path().join("policies"), false);
    r.wait_for_masked(false).await;
    assert!(r.proxy.last_reload().attempts >= 1);
}

/// Rotating only a key file (the HS256 secret here) is picked up by the
/// watcher: config and policies are unchanged, yet tokens signed with the
/// old key stop working and tokens signed with the new one work.
#[tokio::test]
async fn a_rotated_key_file_is_picked_up() {
    use fieldguard::identity::mint::{TokenRequest, mint_hs256};
    let dir = deployment();
    let r = start(dir.path().join("examples/demo/fieldguard.yaml"), None, true).await;
    let url = format!("http://{}/customers/c-1001", r.addr);
    let old = token("support_agent", "agent-7", false, None);
    assert_eq!(r.call("GET", url.clone(), Some(&old)).await.0, 200);

    let new_secret = b"rotated-demo-secret-0123456789abcdef-0123456789";
    let key_file = dir.path().join("examples/demo/secrets/jwt-hs256.key");
    let tmp = key_file.with_extension("tmp");
    std::fs::write(&tmp, new_secret).unwrap();
    std::fs::rename(&tmp, &key_file).unwrap();
    let fresh = mint_hs256(
        new_secret,
        &TokenRequest {
            sub: "agent-7".into(),
            roles: vec!["support_agent".into()],
            mfa: false,
            purpose: None,
            ttl_secs: 600,
            issuer: Some("fieldguard-demo".into()),
            audience: Some("demo-shop".into()),
        },
    )
    .unwrap();
    let mut rotated = false;
    for _ in 0..100 {
        if r.call("GET", url.clone(), Some(&old)).await.0 == 401 {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the old key still worked 10 s after the rotation");
    assert_eq!(r.call("GET", url, Some(&fresh)).await.0, 200);
    assert!(r.proxy.last_reload().error.is_none());
}
