//! The audit trail through the real proxy in front of the real demo shop:
//! what a record holds (and never holds), the hash chain and its verifier,
//! resuming after a restart and across rotated files, and the queue and sink
//! failure policies with nothing lost.

mod common;

use bytes::Bytes;
use common::audited::{Audited, chain_records, records, start_audited, start_audited_in_front_of};
use common::token;
use fieldguard::audit::chain::{spell, unspell};
use fieldguard::audit::{AuditSettings, OnFull, sink::numbered};
use fieldguard::tools::audit::verify::ChainStatus;
use fieldguard::tools::audit::{VerifyOptions, verify_files};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

fn settings(file: PathBuf) -> AuditSettings {
    let mut s = AuditSettings::for_file(file);
    s.retry_interval = Duration::from_millis(20);
    s
}

fn request_id(r: &common::Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_string()
}

fn by_request_id(recs: &[Value]) -> HashMap<String, Value> {
    recs.iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn verify(
    files: &[PathBuf],
) -> Result<fieldguard::tools::audit::VerifyReport, fieldguard::tools::audit::VerifyFailure> {
    verify_files(files, &VerifyOptions::default())
}

/// Every string leaf of a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_request_leaves_a_record_of_names_ids_and_counts_never_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut a = start_audited(settings(file.clone())).await;
    let h = &a.h;
    let agent = token("support_agent", "agent-7", false, None);
    let analyst = token("marketing_analyst", "analyst-2", false, Some("marketing"));
    let customer = token("customer", "c-1001", false, None);

    let read = h.get("/customers/c-1001", &agent).await;
    assert_eq!(read.status, 200);
    let list = h.get("/customers", &analyst).await;
    assert_eq!(list.status, 200);
    let anonymous = h
        .send(Method::GET, "/customers/c-1001", None, &[], None)
        .await;
    assert_eq!(anonymous.status, 401);
    let garbage = h.get("/customers/c-1001", "not-a-token").await;
    assert_eq!(garbage.status, 401);
    let other = h.get("/customers/c-1002", &customer).await;
    assert_eq!(other.status, 403);
    let refused = h
        .send_json(
            Method::PATCH,
            "/customers/c-1001",
            &customer,
            &json!({"id_card_number": "Eve-110101"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    let query = h
        .get("/customers/c-1001?email=query.secret%40example.org", &agent)
        .await;
    assert_eq!(query.status, 200);
    let malformed = h
        .send(
            Method::PATCH,
            "/customers/c-1001",
            Some(&customer),
            &[("content-type", "application/json")],
            Some(b"{not json"),
        )
        .await;
    assert_eq!(malformed.status, 400);
    let public = h
        .send(Method::GET, "/catalog/products", None, &[], None)
        .await;
    assert_eq!(public.status, 200);
    let raw = h.upstream_get("/customers/c-1001").await.json();
    let version = a.proxy.runtime().decisions.engine.bundle.version.clone();
    a.drain().await;

    let recs = records(&file);
    assert_eq!(recs.len(), 9, "one record per request");
    let by_id = by_request_id(&recs);
    let rec = |r: &common::Reply| by_id[&request_id(r)].clone();

    let r = rec(&read);
    assert_eq!(
        r["principal"],
        json!({"id": "agent-7", "roles": ["support_agent"], "mfa": false, "purpose": null, "source": "jwt"})
    );
    assert_eq!(r["client"], "127.0.0.1");
    assert_eq!(r["method"], "GET");
    assert_eq!(r["route"], "/customers/{id}");
    assert_eq!(r["action"], "customer:read");
    assert_eq!(r["resource"], json!({"type": "Customer", "id": "c-1001"}));
    assert_eq!(r["decision"], "allow");
    assert!(!r["policies"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["policy_errors"], json!([]));
    assert_eq!(r["policy_version"], version.as_str());
    assert_eq!(
        (r["status"].as_u64(), r["upstream_status"].as_u64()),
        (Some(200), Some(200))
    );
    assert!(
        r["latency_us"]["total"].as_u64().unwrap() >= r["latency_us"]["upstream"].as_u64().unwrap()
    );
    assert!(r["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["alg"], "sha256");
    let redacted = r["response_body"]["redacted"].as_array().unwrap();
    let has = |field: &str, outcome: &str| {
        redacted.iter().any(|x| {
            x["entity"] == "Customer"
                && x["field"] == field
                && x["outcome"] == outcome
                && x["count"] == 1
        })
    };
    assert!(has("phone", "masked") && has("email", "masked"), "{r}");
    assert!(
        has("birth_date", "removed") && has("id_card_number", "removed"),
        "{r}"
    );
    assert!(redacted.iter().all(|x| x["outcome"] != "full"));
    let identity = &r["response_body"]["by_category"]["identity"];
    assert!(identity["masked"].as_u64().unwrap() >= 2 && identity["full"].as_u64().unwrap() >= 1);

    // A list is aggregated per field: bounded by the catalogue, not the list.
    let r = rec(&list);
    assert_eq!(r["principal"]["purpose"], "marketing");
    assert_eq!(r["response_body"]["records"], 60);
    let redacted = r["response_body"]["redacted"].as_array().unwrap();
    let customer_fields = a
        .proxy
        .runtime()
        .decisions
        .catalogue
        .fields()
        .iter()
        .filter(|f| &*f.entity == "Customer")
        .count();
    let mut pairs: Vec<(String, String)> = redacted
        .iter()
        .map(|x| (x["field"].to_string(), x["outcome"].to_string()))
        .collect();
    pairs.dedup();
    assert_eq!(
        pairs.len(),
        redacted.len(),
        "one entry per field and outcome"
    );
    assert!(redacted.len() <= 2 * customer_fields, "{redacted:?}");
    assert!(redacted.iter().any(|x| x["count"].as_u64().unwrap() > 1));

    let r = rec(&anonymous);
    assert_eq!(
        (
            &r["status"],
            &r["identity_error"],
            &r["refusal"],
            &r["decision"],
            &r["principal"]
        ),
        (
            &json!(401),
            &json!("missing"),
            &json!("unauthenticated"),
            &json!("deny"),
            &Value::Null
        )
    );
    assert_eq!(rec(&garbage)["identity_error"], "malformed");

    let r = rec(&other);
    assert_eq!(
        (&r["status"], &r["refusal"]),
        (&json!(403), &json!("forbidden"))
    );
    assert_eq!(r["resource"]["id"], "c-1002");
    assert_eq!(r["upstream_status"], Value::Null);

    let r = rec(&refused);
    assert_eq!(r["refusal"], "forbidden_fields");
    assert_eq!(
        r["refused_fields"],
        json!({"count": 1, "fields": [{"field": "id_card_number", "reason": "not_collected"}]})
    );
    assert_eq!(rec(&malformed)["refusal"], "malformed_request_body");
    assert_eq!(rec(&public)["decision"], "passthrough");
    assert_eq!(rec(&query)["route"], "/customers/{id}");

    // No values, tokens or query strings anywhere in the log.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut values = Vec::new();
    for f in [
        "name",
        "phone",
        "email",
        "birth_date",
        "id_card_number",
        "address",
    ] {
        strings(&raw[f], &mut values);
    }
    values.retain(|v| v.len() >= 4);
    assert!(values.len() >= 6, "{values:?}");
    for v in values.iter().chain([&agent, &analyst, &customer]) {
        assert!(!text.contains(v.as_str()), "the log leaks {v}");
    }
    assert!(!text.contains("query.secret") && !text.contains('?'));
    assert!(!text.contains("Eve"), "refused write values stay out");

    let report = verify(&[file]).unwrap();
    // Nine records, and the definitions they refer to, in one chain that
    // starts with its genesis record (seq 0) and ends with its seal.
    assert!(report.definitions >= 1, "{report:?}");
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (9, Some(0), Some(10 + report.definitions))
    );
}

/// A real log of `n` simple requests.
async fn real_log(dir: &Path, n: usize) -> PathBuf {
    let file = dir.join("audit.log");
    let mut a = start_audited(settings(file.clone())).await;
    let tok = token("customer", "c-1001", false, None);
    for _ in 0..n {
        assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    }
    a.drain().await;
    file
}

fn rewrite(src: &Path, dst: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    std::fs::write(dst, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn verify_names_the_first_bad_record_after_any_edit() {
    let dir = tempfile::tempdir().unwrap();
    let file = real_log(dir.path(), 6).await;
    assert_eq!(verify(std::slice::from_ref(&file)).unwrap().records, 6);
    let bad = dir.path().join("bad.log");
    let check = |f: &dyn Fn(&mut Vec<String>), line: usize, seq: u64, why: &str| {
        rewrite(&file, &bad, f);
        let e = verify(std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!((e.line, e.seq), (line, Some(seq)), "{e}");
        assert!(e.reason.contains(why), "{e}");
    };
    // Line 1 is the chain's genesis record, line 2 the definition the six
    // records refer to, line 9 the seal.
    assert_eq!(chain_records(&file)[0]["event"], "genesis");
    assert_eq!(chain_records(&file)[1]["event"], "definition");
    assert_eq!(chain_records(&file)[8]["event"], "seal");
    // Request lines (formats 3 and 4) carry no `prev`: their link is the
    // line of their chain before them, which the verifier hashes them with.
    assert!(chain_records(&file)[2].get("prev").is_none());
    // Edited: the record's own hash no longer matches.
    check(
        &|l| l[3] = l[3].replace("\"client\":\"127.0.0.1\"", "\"client\":\"127.0.0.2\""),
        4,
        3,
        "modified",
    );
    // Edited with its hash recomputed (no key): the next record, hashed
    // with it as its link, no longer matches.
    check(
        &|l| {
            let before: Value = serde_json::from_str(&l[2]).unwrap();
            let prev = unspell(before["hash"].as_str().unwrap(), 3).unwrap();
            let mut v: Value = serde_json::from_str(&l[3]).unwrap();
            v["client"] = json!("10.9.9.9");
            v.as_object_mut().unwrap().remove("hash");
            let canonical = fieldguard::audit::chain::canonical(&v);
            let hash = fieldguard::audit::chain::ChainKey::new(None).digest(&prev, &canonical);
            l[3] = String::from_utf8(fieldguard::audit::chain::line(&spell(&hash), &canonical))
                .unwrap()
                .trim_end()
                .to_string();
        },
        5,
        4,
        "the line before it",
    );
    // A middle line deleted, two lines swapped, a line repeated: the
    // first line out of place says so.
    let moved = "a record before it was deleted, inserted or moved";
    check(&|l| drop(l.remove(3)), 4, 4, moved);
    check(&|l| l.swap(3, 4), 4, 4, moved);
    check(&|l| l.insert(3, l[2].clone()), 4, 2, moved);
    check(&|l| drop(l.remove(2)), 3, 3, moved);
    // The last request line swapped with the one before, or with the seal.
    check(&|l| l.swap(6, 7), 7, 7, moved);
    check(&|l| l.swap(7, 8), 8, 8, moved);
    // The definition deleted: the first request line does not follow the
    // genesis.
    check(&|l| drop(l.remove(1)), 2, 2, moved);
    // The genesis and the definition deleted: the file now starts with a
    // line that names no record to link to.
    check(&|l| drop(l.drain(0..2)), 1, 2, "no `prev`");
    let partial = VerifyOptions {
        partial: true,
        ..VerifyOptions::default()
    };
    rewrite(&file, &bad, |l| drop(l.drain(0..2)));
    let e = verify_files(std::slice::from_ref(&bad), &partial).unwrap_err();
    assert_eq!((e.line, e.seq), (1, Some(2)), "{e}");
    assert!(e.reason.contains("no `prev`"), "{e}");
    // The seal deleted: an open chain (verify alone cannot tell a seal
    // removed from a writer killed; `--require-sealed` refuses both).
    rewrite(&file, &bad, |l| drop(l.pop()));
    assert_eq!(verify(std::slice::from_ref(&bad)).unwrap().records, 6);
    // Cut by rotation on purpose: --partial accepts the later start (each
    // file holds the definitions its records use).
    let rotated_dir = dir.path().join("rotated");
    std::fs::create_dir(&rotated_dir).unwrap();
    let rotated = rotated_dir.join("audit.log");
    let mut s = settings(rotated.clone());
    s.max_file_bytes = 3000;
    s.max_files = 100;
    let mut a = start_audited(s).await;
    let tok = token("customer", "c-1001", false, None);
    for _ in 0..12 {
        assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    }
    a.drain().await;
    let last = verify_files(std::slice::from_ref(&rotated), &partial).unwrap();
    assert!(
        last.first_seq.unwrap() > 0 && last.definitions >= 1,
        "{last:?}"
    );

    // The command line says the same.
    let bin = env!("CARGO_BIN_EXE_fieldguard");
    let ok = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.starts_with("chain ")
            && text.contains(": sealed (shutdown): 6 records, 1 definition, seq 0 to 8,")
            && text.ends_with("1 chain: 1 sealed, 0 open, 0 broken\n"),
        "{text}"
    );
    rewrite(&file, &bad, |l| l.swap(2, 3));
    let broken = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("bad.log:3: record seq 3:"), "{err}");
}

#[tokio::test]
async fn hmac_keyed_chains_verify_only_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut s = settings(file.clone());
    s.hmac_key = Some(vec![42u8; 32]);
    let mut a = start_audited(s).await;
    let tok = token("customer", "c-1001", false, None);
    for _ in 0..3 {
        assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    }
    a.drain().await;
    assert!(records(&file).iter().all(|r| r["alg"] == "hmac-sha256"));
    let with = |key: Option<Vec<u8>>| {
        verify_files(
            std::slice::from_ref(&file),
            &VerifyOptions {
                hmac_key: key,
                partial: false,
            },
        )
    };
    assert_eq!(with(Some(vec![42u8; 32])).unwrap().records, 3);
    assert!(with(None).unwrap_err().reason.contains("--hmac-key-file"));
    assert!(
        with(Some(vec![7u8; 32]))
            .unwrap_err()
            .reason
            .contains("modified")
    );
    // An unkeyed log is refused when a key is expected: anyone can write one.
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir(&plain_dir).unwrap();
    let plain = real_log(&plain_dir, 2).await;
    let e = verify_files(
        &[plain],
        &VerifyOptions {
            hmac_key: Some(vec![42u8; 32]),
            partial: false,
        },
    )
    .unwrap_err();
    assert!(e.reason.contains("not HMAC-keyed"), "{e}");
}

/// `audit.log.N … audit.log.1 audit.log`: the order `audit verify` wants.
fn chain_files(file: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..1000)
        .map(|i| numbered(file, i))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if file.exists() {
        files.push(file.to_path_buf());
    }
    files
}

#[tokio::test]
async fn each_run_is_a_chain_of_its_own_that_names_the_run_before_it() {
    // Before chains were per run (record format 4), a restarted writer
    // continued the chain from the file's last record; now it starts a
    // chain of its own in the same files, whose genesis names where the
    // previous run ended, and the verifier sorts the lines into chains.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut s = settings(file.clone());
    s.max_file_bytes = 4000;
    s.max_files = 100;
    let tok = token("support_agent", "agent-7", false, None);
    let mut seen = Vec::new();
    for run in 0..2 {
        let mut a = start_audited(s.clone()).await;
        for _ in 0..6 {
            let r = a.h.get("/customers/c-1001", &tok).await;
            assert_eq!(r.status, 200);
            seen.push(request_id(&r));
        }
        a.drain().await;
        assert!(numbered(&file, 1).exists(), "run {run} rotated");
    }
    let files = chain_files(&file);
    assert!(files.len() >= 3, "{files:?}");
    // Given in any order (or as the folder): two sealed chains.
    let mut shuffled = files.clone();
    shuffled.reverse();
    for input in [shuffled, vec![dir.path().to_path_buf()]] {
        let fleet = fieldguard::tools::audit::verify::verify_set(&input, &VerifyOptions::default());
        assert!(fleet.intact(), "{}", fleet.to_text());
        assert_eq!(fleet.chains.len(), 2, "{}", fleet.to_text());
        for c in &fleet.chains {
            assert_eq!(c.status, ChainStatus::Sealed, "{}", c.to_text());
            assert_eq!(c.report.records, 6);
            assert_eq!(c.report.first_seq, Some(0));
        }
        // The second run's genesis names the first run's end.
        let (first, second) = (&fleet.chains[0], &fleet.chains[1]);
        let previous = second.genesis.as_ref().unwrap().previous.clone().unwrap();
        assert_eq!(previous["c"], json!(first.tag.clone().unwrap()));
        assert_eq!(previous["seq"], json!(first.report.last_seq.unwrap()));
        assert_eq!(previous["hash"], json!(first.report.last_hash));
        assert_eq!(previous["sealed"], json!(true));
        assert_ne!(first.tag, second.tag);
    }
    // One set, many chains: the single-chain API says so.
    let e = verify(&files).unwrap_err();
    assert!(e.reason.contains("2 chains"), "{e}");
    // Each file resolves its own references: its chains verify alone (as
    // partial chains where they start in an earlier file).
    let partial = VerifyOptions {
        partial: true,
        ..VerifyOptions::default()
    };
    for f in &files {
        let alone = fieldguard::tools::audit::verify::verify_set(std::slice::from_ref(f), &partial);
        assert!(alone.intact(), "{} alone: {}", f.display(), alone.to_text());
        assert!(
            alone
                .chains
                .iter()
                .all(|c| c.report.records == 0 || c.report.definitions >= 1),
            "{}",
            alone.to_text()
        );
    }
    let all: Vec<Value> = files.iter().flat_map(|f| records(f)).collect();
    let ids: Vec<&str> = all
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, seen.iter().map(String::as_str).collect::<Vec<_>>());
    // Every line names its chain; the seal of the first run is followed by
    // the genesis of the second.
    let lines: Vec<Value> = files.iter().flat_map(|f| chain_records(f)).collect();
    assert!(
        lines
            .iter()
            .all(|l| l["c"].as_str().is_some_and(|c| c.len() == 8))
    );
    let seal = lines.iter().position(|l| l["event"] == "seal").unwrap();
    assert_eq!(lines[seal + 1]["event"], "genesis");
    assert_eq!(lines[seal + 1]["seq"], 0);
    assert_eq!(lines[seal]["count"], 6);
}

/// An upstream that answers `GET /customers/{id}` only when the test opens
/// the gate, and reports each arrival.
async fn gated_upstream() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<()>,
    Arc<Semaphore>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (tx, g) = (tx.clone(), g.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let (tx, g) = (tx.clone(), g.clone());
                    async move {
                        let _ = tx.send(());
                        let _open = g.acquire().await;
                        let body =
                            r#"{"id":"c-1001","name":"Ann Lee","phone":"+86 138 0000 1111"}"#;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx, gate, task)
}

async fn arrived(rx: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the request reached the upstream")
        .unwrap();
}

fn status_2xx(recs: &[Value]) -> usize {
    recs.iter()
        .filter(|r| (200..300).contains(&r["status"].as_u64().unwrap()))
        .count()
}

#[tokio::test]
async fn fail_closed_refuses_when_the_queue_is_full_and_loses_nothing_served() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let (up, mut arrivals, gate, task) = gated_upstream().await;
    let mut s = settings(file.clone());
    s.queue_capacity = 2;
    s.on_full = OnFull::FailClosed;
    let mut a: Audited = start_audited_in_front_of(up, s, |_| {}, vec![task]).await;
    let tok = token("customer", "c-1001", false, None);
    let h = &a.h;
    let (r1, r2, r3) = tokio::join!(
        h.get("/customers/c-1001", &tok),
        h.get("/customers/c-1001", &tok),
        async {
            arrived(&mut arrivals).await;
            arrived(&mut arrivals).await;
            // Both slots are held by requests in flight.
            let r3 = h.get("/customers/c-1001", &tok).await;
            gate.add_permits(100);
            r3
        }
    );
    assert_eq!((r1.status, r2.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(r3.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r3.json()["error"], "audit_unavailable");
    assert!(
        arrivals.try_recv().is_err(),
        "the refused request never reached the upstream"
    );
    let m = a.scrape().await;
    assert_eq!(
        m.value(
            "fieldguard_audit_refused_requests_total",
            &[("reason", "queue_full")]
        ),
        1.0
    );
    assert_eq!(m.value("fieldguard_audit_records_lost_total", &[]), 1.0);
    a.drain().await;
    let recs = records(&file);
    assert_eq!(status_2xx(&recs), 2, "every 2xx answer has its record");
    assert_eq!(recs.len(), 2);
    assert_eq!(
        a.scrape()
            .await
            .value("fieldguard_audit_records_written_total", &[]),
        2.0
    );
    verify(&[file]).unwrap();
}

#[tokio::test]
async fn wait_applies_backpressure_then_refuses_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let (up, mut arrivals, gate, task) = gated_upstream().await;
    let mut s = settings(file.clone());
    s.queue_capacity = 1;
    s.on_full = OnFull::Wait;
    s.wait_timeout = Duration::from_secs(30);
    let mut a = start_audited_in_front_of(up, s, |_| {}, vec![task]).await;
    let tok = token("customer", "c-1001", false, None);
    let h = &a.h;
    let (r1, r2) = tokio::join!(h.get("/customers/c-1001", &tok), async {
        arrived(&mut arrivals).await;
        let second = h.get("/customers/c-1001", &tok);
        tokio::pin!(second);
        // The second request waits for the first one's slot: it has not
        // reached the upstream while the first is held.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut second)
                .await
                .is_err()
        );
        assert!(arrivals.try_recv().is_err());
        gate.add_permits(100);
        second.await
    });
    assert_eq!((r1.status, r2.status), (StatusCode::OK, StatusCode::OK));
    a.drain().await;
    let recs = records(&file);
    assert_eq!((recs.len(), status_2xx(&recs)), (2, 2));

    // With a short wait, a request that finds no slot in time gets 503.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let (up, mut arrivals, gate, task) = gated_upstream().await;
    let mut s = settings(file.clone());
    s.queue_capacity = 1;
    s.wait_timeout = Duration::from_millis(50);
    let mut a = start_audited_in_front_of(up, s, |_| {}, vec![task]).await;
    let h = &a.h;
    let (r1, r2) = tokio::join!(h.get("/customers/c-1001", &tok), async {
        arrived(&mut arrivals).await;
        let r2 = h.get("/customers/c-1001", &tok).await;
        gate.add_permits(100);
        r2
    });
    assert_eq!(
        (r1.status, r2.status),
        (StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        a.scrape().await.value(
            "fieldguard_audit_refused_requests_total",
            &[("reason", "queue_full")]
        ),
        1.0
    );
    a.drain().await;
    // The 503's record found room once the first was written, or was counted lost.
    let recs = records(&file);
    assert_eq!(status_2xx(&recs), 1);
}

async fn wait_ready(a: &Audited, ready: bool) {
    for _ in 0..500 {
        let r = a.admin_get("/readyz").await;
        if (r.status == 200) == ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "/readyz never became {}",
        if ready { "ready" } else { "unready" }
    );
}

#[tokio::test]
async fn a_failing_sink_refuses_requests_until_it_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("audit.log");
    let mut s = settings(file.clone());
    // Rotate before every record, so the writer has to reach the folder.
    s.max_file_bytes = 1;
    s.max_files = 1000;
    let mut a = start_audited(s).await;
    let tok = token("customer", "c-1001", false, None);
    assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    wait_ready(&a, true).await;
    // The first record must be on disk before the folder goes: the writer
    // batches records that arrive within a millisecond, and a batch of the
    // first and the second would be written without the rotation between.
    for _ in 0..500 {
        if !records(&file).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(records(&file).len(), 1);

    // The log folder is replaced by a file (ENOTDIR for every path in it;
    // permissions would not do, tests may run as root).
    let moved = tmp.path().join("logs-old");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::write(&dir, b"").unwrap();
    // This request was served before the failure was known; its record
    // waits in the writer until the sink recovers.
    assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    wait_ready(&a, false).await;
    let refused = a.h.get("/customers/c-1001", &tok).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"], "audit_unavailable");
    let m = a.scrape().await;
    assert!(m.value("fieldguard_audit_write_failures_total", &[]) >= 1.0);
    assert_eq!(m.value("fieldguard_audit_sink_up", &[]), 0.0);
    assert_eq!(
        m.value(
            "fieldguard_audit_refused_requests_total",
            &[("reason", "sink_failed")]
        ),
        1.0
    );

    // The operator fixes it: the folder is back.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    wait_ready(&a, true).await;
    assert_eq!(a.h.get("/customers/c-1001", &tok).await.status, 200);
    a.drain().await;
    assert_eq!(a.scrape().await.value("fieldguard_audit_sink_up", &[]), 1.0);

    // One chain across the moved-away file and the new ones, with every
    // served request in it and the refused one too.
    // (The genesis record has a file of its own in the moved folder: the
    // verifier orders the chain's files itself.)
    let mut files = chain_files(&moved.join("audit.log"));
    files.extend(chain_files(&file));
    let report = verify(&files).unwrap();
    assert_eq!(report.records, 4);
    let report = verify(&[dir.clone(), moved.clone()]).unwrap();
    assert_eq!(report.records, 4);
    let recs: Vec<Value> = files.iter().flat_map(|f| records(f)).collect();
    assert_eq!(status_2xx(&recs), 3);
    assert_eq!(
        recs.iter()
            .filter(|r| r["refusal"] == "audit_unavailable")
            .count(),
        1
    );
}

#[tokio::test]
async fn demo_writes_its_audit_file_serves_admin_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo-audit.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--upstream-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--audit-file",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (mut proxy, mut admin, mut audit) = (None, None, None);
    while proxy.is_none() || admin.is_none() || audit.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo printed its banner");
        let after = |p: &str| line.split_once(p).map(|(_, r)| r.trim().to_string());
        proxy = proxy
            .or(after("fieldguard proxy:").map(|u| u.trim_start_matches("http://").to_string()));
        admin = admin.or(after("admin (metrics, health, policies):").map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches("/metrics")
                .to_string()
        }));
        audit = audit.or(after("audit log:"));
    }
    assert_eq!(audit.unwrap(), file.display().to_string());
    let h = common::audited::harness_for(proxy.unwrap().parse().unwrap());
    let tok = token("support_agent", "agent-7", false, None);
    for _ in 0..3 {
        assert_eq!(h.get("/customers/c-1001", &tok).await.status, 200);
    }
    let client = common::audited::plain_get(&format!("http://{}/readyz", admin.unwrap())).await;
    assert_eq!(client.0, 200);
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..3000 {
        status = child.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = status.expect("demo exited within 30 s of SIGTERM");
    assert!(status.success(), "{status}");
    let recs = records(&file);
    assert_eq!(recs.len(), 3);
    assert_eq!(verify(&[file]).unwrap().records, 3);
}

/// A file that is not there is "cannot open", for every audit command:
/// no evidence of tampering, and not called a broken chain.
#[test]
fn a_missing_audit_file_cannot_be_opened_it_is_not_a_broken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("audit.log");
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "subject", "c-1001"],
        vec!["audit", "expand"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(&args)
            .arg(&missing)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("cannot open"), "{args:?}: {err}");
        assert!(!err.contains("broken"), "{args:?}: {err}");
    }
}
