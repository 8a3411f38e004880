//! The README's commands, run as written against the real binary:
//! `validate` on the reference config, `token`, and `demo` (whose printed
//! tokens and curl examples must work against the proxy it starts).

mod common;

use bytes::Bytes;
use common::{repo_path, start};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on any one command (a first `demo` start builds a few thousand
/// records; everything else takes milliseconds).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command that is expected to finish, bounded by [`CLI_TIMEOUT`].
fn fieldguard(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(args)
        .current_dir(repo_path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fieldguard");
    let mut guard = KillOnDrop(child);
    let started = Instant::now();
    while guard.0.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < CLI_TIMEOUT,
            "fieldguard {args:?} did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Output {
        status: guard.0.wait().expect("wait"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut s) = guard.0.stdout.take() {
        s.read_to_end(&mut out.stdout).unwrap();
    }
    if let Some(mut s) = guard.0.stderr.take() {
        s.read_to_end(&mut out.stderr).unwrap();
    }
    out
}

/// Kills (and reaps) the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference deployment passes `validate` without a single warning
/// (`--strict` fails on any).
#[test]
fn validate_accepts_the_reference_config() {
    let out = fieldguard(&[
        "validate",
        "--strict",
        "--config",
        "examples/demo/fieldguard.yaml",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("warning"), "stderr: {stderr}");
    assert!(stdout.contains("fieldguard.yaml: ok ("), "stdout: {stdout}");
}

#[tokio::test]
async fn token_prints_a_token_the_proxy_accepts() {
    let out = fieldguard(&[
        "token",
        "--role",
        "support_agent",
        "--sub",
        "agent-7",
        "--mfa",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(tok.split('.').count(), 3, "a JWT: {tok}");

    let h = start().await;
    let raw = h.upstream_get("/customers/c-1001").await.json();
    let r = h.get("/customers/c-1001", &tok).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    // Support agent with MFA: the phone in full, no ID card number.
    assert_eq!(v["phone"], raw["phone"]);
    assert!(v.get("id_card_number").is_none(), "{v}");
}

/// What `fieldguard demo` printed before serving.
struct DemoBanner {
    proxy: String,
    shop: String,
    tokens: BTreeMap<String, String>,
    /// The commands under "Try:", as printed.
    try_lines: Vec<String>,
}

/// Reads the demo's stdout until the banner is complete (the "Try:" line).
fn read_banner(lines: &mpsc::Receiver<String>) -> DemoBanner {
    let deadline = Instant::now() + CLI_TIMEOUT;
    let mut seen = Vec::new();
    let (mut proxy, mut shop, mut tokens) = (None, None, BTreeMap::new());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("demo banner incomplete ({e}); printed so far: {seen:#?}"));
        let url = || line.split_whitespace().last().map(str::to_string);
        if line.contains("fieldguard proxy:") {
            proxy = url();
        } else if line.contains("demo shop") {
            shop = url();
        } else if let Some(rest) = line.trim().strip_prefix("export TOKEN_") {
            let (name, tok) = rest.split_once('=').expect("NAME=token");
            tokens.insert(format!("TOKEN_{name}"), tok.to_string());
        } else if line.trim() == "Try:" {
            break;
        }
        seen.push(line);
    }
    // The "Try:" block runs to the next empty line.
    let mut try_lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("demo's Try: block incomplete ({e}): {try_lines:#?}"));
        if line.trim().is_empty() {
            break;
        }
        try_lines.push(line.trim().to_string());
    }
    DemoBanner {
        proxy: proxy.expect("proxy URL printed"),
        shop: shop.expect("shop URL printed"),
        tokens,
        try_lines,
    }
}

async fn http_get(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = Request::builder().uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answered within 10 s")
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, v)
}

/// `$ curl -s localhost:8080/PATH -H "Authorization: Bearer $TOKEN_X"`
/// followed by the JSON it prints, from the README's demo section.
struct CurlExample {
    path: String,
    token_var: String,
    expected: Value,
}

fn readme_curl_examples() -> Vec<CurlExample> {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(cmd) = line.strip_prefix("$ curl -s localhost:8080") else {
            continue;
        };
        let Some(next) = lines.get(i + 1).filter(|l| l.starts_with('{')) else {
            continue;
        };
        let path = cmd.split_whitespace().next().unwrap().to_string();
        let Some(var) = cmd.split("$TOKEN_").nth(1) else {
            continue;
        };
        let var: String = var
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        let expected = serde_json::from_str(next)
            .unwrap_or_else(|e| panic!("README line {}: not JSON ({e})", i + 2));
        out.push(CurlExample {
            path,
            token_var: format!("TOKEN_{var}"),
            expected,
        });
    }
    out
}

#[tokio::test]
async fn demo_starts_and_its_printed_tokens_and_readme_examples_work() {
    // The demo's audit log goes here rather than into a new folder of the
    // system's temporary directory per run.
    let scratch = tempfile::tempdir().unwrap();
    let audit_file = scratch.path().join("audit.log");
    let child = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--upstream-listen",
            "127.0.0.1:0",
            // The admin listener defaults to a fixed port; two test runs
            // (or anything else on it) must not collide.
            "--admin-listen",
            "127.0.0.1:0",
            "--audit-file",
            audit_file.to_str().unwrap(),
        ])
        .current_dir(repo_path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fieldguard demo");
    let mut guard = KillOnDrop(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keeps draining stdout after the banner has been read (a closed pipe
    // would kill the demo at its next line of output); ends when the child
    // is killed and stdout closes.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let banner = tokio::task::spawn_blocking(move || read_banner(&rx))
        .await
        .unwrap();
    assert!(
        banner.proxy.starts_with("http://127.0.0.1:"),
        "{}",
        banner.proxy
    );
    assert!(!banner.proxy.ends_with(":0"), "the real port is printed");
    // The audit commands it prints work as printed, from any folder (after
    // `cargo run -- demo` there is no `fieldguard` on PATH).
    let audit_lines: Vec<&String> = banner
        .try_lines
        .iter()
        .filter(|l| l.contains(" audit "))
        .collect();
    assert_eq!(audit_lines.len(), 2, "{:?}", banner.try_lines);
    for line in audit_lines {
        let command = line.split(" # ").next().unwrap();
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(scratch.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in [
        "TOKEN_CUSTOMER",
        "TOKEN_SUPPORT_AGENT",
        "TOKEN_SUPPORT_AGENT_MFA",
        "TOKEN_MARKETING_ANALYST",
        "TOKEN_PARTNER",
    ] {
        assert!(
            banner.tokens.contains_key(name),
            "{name} printed: {:?}",
            banner.tokens.keys()
        );
    }

    // One request with a printed token, and the same record unprotected.
    let (status, own) = http_get(
        &format!("{}/customers/c-1001", banner.proxy),
        Some(&banner.tokens["TOKEN_CUSTOMER"]),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    let (_, raw) = http_get(&format!("{}/customers/c-1001", banner.shop), None).await;
    assert_eq!(own, raw, "a customer sees their own record in full");
    let (status, _) = http_get(&format!("{}/customers/c-1001", banner.proxy), None).await;
    assert_eq!(status, 401);

    // The README's curl examples print what the README says.
    let examples = readme_curl_examples();
    assert!(
        examples.len() >= 5,
        "README curl examples found: {}",
        examples.len()
    );
    for ex in examples {
        let tok = banner
            .tokens
            .get(&ex.token_var)
            .unwrap_or_else(|| panic!("README uses ${} the demo does not print", ex.token_var));
        let (_, mut got) = http_get(&format!("{}{}", banner.proxy, ex.path), Some(tok)).await;
        if ex.expected.get("request_id").is_some() {
            assert!(got["request_id"].is_string());
            got["request_id"] = ex.expected["request_id"].clone();
        }
        assert_eq!(
            got, ex.expected,
            "README: GET {} as ${}",
            ex.path, ex.token_var
        );
    }
}
