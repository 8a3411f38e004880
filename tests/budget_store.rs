//! Bulk-read budgets shared by a fleet (issue: budgets counted per replica
//! let a principal see N x the limit): real `fieldguard run` processes in
//! front of the real demo shop, counting in one real `redis-server`.
//!
//! - Three replicas, one principal's list requests round-robin and in
//!   parallel: what the audit records say was disclosed stays within the
//!   limit (the documented bound: never over it while the store answers);
//!   a replica restarted mid-run still refuses; 20 requests racing at the
//!   edge of the limit do not overshoot it.
//! - Redis stopped mid-run: `local` counts this replica's share, `refuse`
//!   answers 503, `allow` serves uncounted; the gauge and the error
//!   counter move, one log line each way, audit records name the
//!   fallback; Redis back: what was counted locally is written to it and
//!   shared counting resumes, without a restart.
//! - A bad URL, a wrong password, TLS against a plain port, an
//!   unreachable store: clear start-up errors with file and line, within
//!   the connect timeout; a reload to a bad store keeps the old one.

mod common;

use common::fleet::{RedisServer, Replica, get, post, start_shop, text_metric, text_metric_sum};
use common::token;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Records of customers the audit records say 200 responses disclosed to
/// `principal`.
fn disclosed_to(records: &[Value], principal: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["principal"]["id"] == principal)
        .filter(|r| r["status"] == 200)
        .map(|r| {
            let body = &r["response_body"];
            body["records"].as_u64().unwrap_or(0) - body["records_hidden"].as_u64().unwrap_or(0)
        })
        .sum()
}

fn customers_in(body: &str) -> u64 {
    serde_json::from_str::<Value>(body).unwrap()["customers"]
        .as_array()
        .map_or(0, |a| a.len() as u64)
}

fn shared_budgets(redis: &RedisServer, limit: u64) -> String {
    format!(
        "budgets:
  replicas: 3
  store:
    type: redis
    redis:
      url: {url}
      timeout_ms: 2000
  roles:
    support_agent:
      limits:
        - {{ id: support-records, count: records, window_seconds: 3600, limit: {limit}, on_exceed: refuse }}
",
        url = redis.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_budget_and_never_overshoot_it() {
    let dir = tempfile::tempdir().unwrap();
    let test = "three_replicas_share_one_budget_and_never_overshoot_it";
    let Some(redis) = RedisServer::start(test, dir.path(), &[]) else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;
    let budgets = shared_budgets(&redis, 50);
    let mut replicas = Vec::new();
    for name in ["pod-a", "pod-b", "pod-c"] {
        replicas.push(Replica::start(dir.path(), name, shop, &budgets).await);
    }

    // One principal, round-robin over the three, three at a time, 4
    // records each: 12 answers fit in 50 (48); the 13th would make 52.
    let agent = token("support_agent", "agent-fleet", false, None);
    let mut shown = 0;
    let mut refused = 0;
    for round in 0..8 {
        let calls = replicas
            .iter()
            .map(|r| get(r.addr, "/customers?limit=4", Some(&agent)));
        for (status, body) in futures_util::future::join_all(calls).await {
            match status {
                200 => shown += customers_in(&body),
                429 => {
                    refused += 1;
                    let v: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(v["budget"], "support-records", "{v}");
                }
                other => panic!("round {round}: status {other}: {body}"),
            }
        }
    }
    assert_eq!(shown, 48, "the fleet disclosed {shown} records, limit 50");
    assert_eq!(refused, 24 - 12);

    // A replica restarted mid-run (SIGKILL, new process, empty memory)
    // still refuses: the count is in the store, not in the process.
    replicas[1].restart().await;
    let (status, body) = get(replicas[1].addr, "/customers?limit=1", Some(&agent)).await;
    assert_eq!(status, 200, "one more record fits (49): {body}");
    let (status, body) = get(replicas[1].addr, "/customers?limit=2", Some(&agent)).await;
    assert_eq!(status, 429, "{body}");
    shown += 1;

    // 20 requests racing at the edge, spread over the replicas, for a
    // principal with 2 records left: exactly what fits is served.
    let racer = token("support_agent", "agent-race", false, None);
    let (status, _) = get(replicas[0].addr, "/customers?limit=46", Some(&racer)).await;
    assert_eq!(status, 200);
    let calls = (0..20).map(|i| get(replicas[i % 3].addr, "/customers?limit=1", Some(&racer)));
    let answers = futures_util::future::join_all(calls).await;
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(served, 4, "50 - 46 = 4 records left; served {served}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 429));
    // Used up now: each replica's next request is refused at the charge
    // (asked upstream, nothing disclosed) or already at the precheck; the
    // one after that, at the precheck of every replica (it learned from
    // its refused charge), without asking the upstream.
    for round in 0..2 {
        for r in &replicas {
            let (status, body) = get(r.addr, "/customers?limit=1", Some(&racer)).await;
            assert_eq!(status, 429, "round {round}: {body}");
        }
    }

    // The evidence: what the audit records of all three say was disclosed.
    for r in &mut replicas {
        r.stop();
    }
    let records: Vec<Value> = replicas.iter().flat_map(|r| r.audit_records()).collect();
    assert_eq!(disclosed_to(&records, "agent-fleet"), shown);
    assert_eq!(disclosed_to(&records, "agent-race"), 50);
    for r in &replicas {
        let last = r
            .audit_records()
            .into_iter()
            .rfind(|rec| rec["principal"]["id"] == "agent-race")
            .unwrap();
        assert_eq!(last["status"], 429, "{last}");
        assert!(last["upstream_status"].is_null(), "asked upstream: {last}");
    }
    // Keys are hashed principals with a hash tag, and expire.
    let keys = redis.cli(&["--scan", "--pattern", "fieldguard:*"]);
    assert!(
        !keys.contains("agent-fleet"),
        "principal ids in keys: {keys}"
    );
    for key in keys.lines() {
        assert!(key.starts_with("fieldguard:{p."), "{key}");
        let ttl: i64 = redis.cli(&["pttl", key]).parse().unwrap();
        assert!(ttl > 0 && ttl <= 3_900_000, "{key}: pttl {ttl}");
    }
}

/// Budgets for the outage test: one per `on_store_error`.
fn outage_budgets(redis: &RedisServer) -> String {
    format!(
        "budgets:
  replicas: 2
  store:
    type: redis
    redis:
      url: {url}
      timeout_ms: 2000
      connect_timeout_ms: 500
  roles:
    support_agent:
      limits:
        - {{ id: agent-local, count: records, window_seconds: 3600, limit: 40, on_exceed: refuse, on_store_error: local }}
    data_protection_officer:
      limits:
        - {{ id: dpo-refuse, count: records, window_seconds: 3600, limit: 1000, on_exceed: refuse, on_store_error: refuse }}
    fulfillment:
      limits:
        - {{ id: fulfillment-allow, count: records, window_seconds: 3600, limit: 1000, on_exceed: refuse, on_store_error: allow }}
",
        url = redis.url()
    )
}

async fn wait_metric(r: &Replica, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if r.metric(name).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {want}; log:\n{}", r.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outage_follows_on_store_error_and_counting_resumes_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let test = "a_store_outage_follows_on_store_error_and_counting_resumes_when_it_is_back";
    let Some(mut redis) = RedisServer::start(test, dir.path(), &[]) else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;
    let mut pod = Replica::start(dir.path(), "pod-a", shop, &outage_budgets(&redis)).await;
    let agent = token("support_agent", "agent-out", false, None);
    let dpo = token("data_protection_officer", "dpo-1", true, None);
    let packer = token("fulfillment", "packer-1", false, None);

    assert_eq!(pod.metric("fieldguard_budget_store_up").await, Some(1.0));
    assert_eq!(
        get(pod.addr, "/customers?limit=4", Some(&agent)).await.0,
        200
    );
    assert_eq!(get(pod.addr, "/customers?limit=1", Some(&dpo)).await.0, 200);

    // The store goes away.
    redis.kill();
    // `local`: this replica's share, 40 / 2 = 20 records, counted here.
    let mut local = 0;
    for _ in 0..5 {
        let (status, body) = get(pod.addr, "/customers?limit=4", Some(&agent)).await;
        assert_eq!(status, 200, "{body}");
        local += customers_in(&body);
    }
    assert_eq!(local, 20);
    let (status, body) = get(pod.addr, "/customers?limit=1", Some(&agent)).await;
    assert_eq!(status, 429, "the local share is used up: {body}");
    // `refuse`: fail closed, 503, nothing disclosed.
    let (status, body) = get(pod.addr, "/customers?limit=1", Some(&dpo)).await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "budget_store_unavailable");
    assert_eq!(v["budget"], "dpo-refuse");
    assert!(v.get("customers").is_none());
    // `allow`: served uncounted.
    let (status, _) = get(pod.addr, "/orders/o-10021", Some(&packer)).await;
    assert_eq!(status, 200);

    let scrape = get(pod.admin, "/metrics", None).await.1;
    assert_eq!(
        text_metric(&scrape, "fieldguard_budget_store_up"),
        Some(0.0)
    );
    let errors = text_metric_sum(&scrape, "fieldguard_budget_store_errors_total", "reason=");
    assert!(errors >= 1.0, "{scrape}");

    // Back: the probe finds it, writes back what was counted locally, and
    // shared counting resumes (persistence is off: the store restarted
    // empty, so its count is the 20 written back).
    redis.restart();
    wait_metric(&pod, "fieldguard_budget_store_up", 1.0).await;
    let mut after = 0;
    loop {
        let (status, body) = get(pod.addr, "/customers?limit=4", Some(&agent)).await;
        match status {
            200 => after += customers_in(&body),
            429 => break,
            other => panic!("{other}: {body}"),
        }
        assert!(after <= 40, "counting did not resume");
    }
    assert_eq!(after, 20, "20 written back + 20 now = the limit of 40");
    assert_eq!(get(pod.addr, "/customers?limit=1", Some(&dpo)).await.0, 200);

    // One log line each way, not one per request.
    pod.stop();
    let log = pod.log_text();
    assert_eq!(log.matches("budget store unavailable").count(), 1, "{log}");
    assert_eq!(
        log.matches("budget store answering again").count(),
        1,
        "{log}"
    );

    // The audit records say which requests were decided without the store.
    let records = pod.audit_records();
    let fallback = |who: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["principal"]["id"] == who)
            .map(|r| r["budget_store_fallback"].clone())
            .collect()
    };
    let agent_fb = fallback("agent-out");
    assert_eq!(agent_fb.len(), 1 + 5 + 1 + 6);
    assert!(agent_fb[0].is_null());
    assert!(
        agent_fb[1..7]
            .iter()
            .all(|f| *f == serde_json::json!(["local"])),
        "{agent_fb:?}"
    );
    assert!(agent_fb[7..].iter().all(Value::is_null), "{agent_fb:?}");
    let dpo_fb = fallback("dpo-1");
    assert_eq!(dpo_fb[1], serde_json::json!(["refuse"]));
    assert!(dpo_fb[2].is_null());
    assert_eq!(fallback("packer-1"), vec![serde_json::json!(["allow"])]);
    // The locally refused request names the share it was held to.
    let refused_local = records
        .iter()
        .find(|r| r["principal"]["id"] == "agent-out" && r["status"] == 429)
        .unwrap();
    assert_eq!(refused_local["budget"][0]["limit"], 20, "{refused_local}");
}

/// `fieldguard run` with `budgets` (a YAML section), expected to stop at
/// start-up: its exit status, what it printed, and how long it took.
fn failed_start(dir: &Path, shop: std::net::SocketAddr, budgets: &str) -> (i32, String, Duration) {
    use common::fleet::{free_port, replica_config};
    let listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = replica_config(dir, "bad", listen, admin, shop, budgets, &|t| t);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

/// A budgets section counting in the store `redis_lines` describe. Calls
/// may take 2 s (not the default 50 ms): on a loaded test machine a slow
/// answer would make the budget count locally, which these tests do not
/// mean to test (the outage test does, with the store killed).
fn store_section(redis_lines: &str) -> String {
    let timeout =
        if redis_lines.contains("timeout_ms:") && !redis_lines.contains("connect_timeout_ms:") {
            ""
        } else {
            "      timeout_ms: 2000\n"
        };
    format!(
        "budgets:
  store:
    type: redis
    redis:
{redis_lines}{timeout}
  roles:
    support_agent:
      limits:
        - {{ id: support-records, count: records, window_seconds: 3600, limit: 50, on_exceed: refuse }}
"
    )
}

#[tokio::test]
async fn a_misconfigured_store_stops_start_up_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let test = "a_misconfigured_store_stops_start_up_with_file_and_line";
    let secret = dir.path().join("redis-password");
    std::fs::write(&secret, "right-password\n").unwrap();
    let Some(redis) = RedisServer::start(test, dir.path(), &["--requirepass", "right-password"])
    else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;

    // Not a Redis URL: the line of `url` in the file.
    let (code, text, _) = failed_start(
        dir.path(),
        shop,
        &store_section("      url: http://127.0.0.1:6379\n"),
    );
    assert_ne!(code, 0);
    assert!(text.contains("bad.yaml"), "{text}");
    assert!(text.contains("budgets.store.redis"), "{text}");
    assert!(text.contains("not a redis:// or rediss:// URL"), "{text}");
    let config = std::fs::read_to_string(dir.path().join("bad.yaml")).unwrap();
    let line = config
        .lines()
        .position(|l| l.contains("url: http://127.0.0.1:6379"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!(":{line}")),
        "line {line} not named: {text}"
    );

    // A password in the URL belongs in a Secret.
    let (code, text, _) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: redis://:pw@127.0.0.1:{}\n",
            redis.port
        )),
    );
    assert_ne!(code, 0);
    assert!(text.contains("password_file"), "{text}");

    // A wrong password: refused, said so, quickly.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "nope").unwrap();
    let (code, text, took) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: {}\n      password_file: {}\n",
            redis.url(),
            wrong.display()
        )),
    );
    assert_ne!(code, 0);
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // No password at all against a server that needs one.
    let (code, text, _) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!("      url: {}\n", redis.url())),
    );
    assert_ne!(code, 0);
    assert!(text.contains("refused the credentials"), "{text}");

    // TLS against a plain port: an error within the connect timeout, not
    // a hang.
    let (code, text, took) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: rediss://127.0.0.1:{}\n      password_file: {}\n      connect_timeout_ms: 1000\n",
            redis.port,
            secret.display()
        )),
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("budgets.store.redis"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Nothing listening: unreachable is an error at start-up by default.
    let closed = common::fleet::free_port();
    let (code, text, took) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: redis://127.0.0.1:{closed}\n      connect_timeout_ms: 500\n"
        )),
    );
    assert_ne!(code, 0);
    assert!(
        text.contains("cannot connect") || text.contains("no answer"),
        "{text}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    // A missing password file names the file.
    let (code, text, _) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: {}\n      password_file: {}\n",
            redis.url(),
            dir.path().join("absent").display()
        )),
    );
    assert_ne!(code, 0);
    assert!(
        text.contains("absent") && text.contains("cannot read"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_keeps_the_store_and_its_counts_and_refuses_a_bad_store() {
    let dir = tempfile::tempdir().unwrap();
    let test = "reload_keeps_the_store_and_its_counts_and_refuses_a_bad_store";
    let secret = dir.path().join("redis-password");
    std::fs::write(&secret, "right-password\n").unwrap();
    let Some(redis) = RedisServer::start(test, dir.path(), &["--requirepass", "right-password"])
    else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;
    let good = store_section(&format!(
        "      url: {}\n      password_file: {}\n",
        redis.url(),
        secret.display()
    ));
    let pod = Replica::start(dir.path(), "pod-r", shop, &good).await;
    let agent = token("support_agent", "agent-reload", false, None);
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        200
    );

    // A reload of the same store keeps counting where it was.
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );

    // A changed store section reconnects (the counts are the store's).
    let text = std::fs::read_to_string(&pod.config)
        .unwrap()
        .replace("      timeout_ms: 2000", "      timeout_ms: 1900");
    std::fs::write(&pod.config, text).unwrap();
    let (status, body) = post(pod.admin, "/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        pod.log_text()
            .matches("budgets are counted in the shared store")
            .count(),
        2
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );

    // A reload to a store with a wrong password is refused, naming the
    // file; the running store keeps counting.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "nope").unwrap();
    let text = std::fs::read_to_string(&pod.config)
        .unwrap()
        .replace(&secret.display().to_string(), &wrong.display().to_string());
    std::fs::write(&pod.config, text).unwrap();
    let (status, body) = post(pod.admin, "/reload").await;
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains("pod-r.yaml") && body.contains("credentials"),
        "{body}"
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=20", Some(&agent)).await.0,
        200
    );
}

/// What a principal's counter of `budget` holds in the store: the key is
/// found as the proxy names it (hashed id, hash tag).
fn stored_count(node: &RedisServer, principal: &str, budget: &str) -> u64 {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(principal.as_bytes());
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    let key = format!("fieldguard:{{p.{tag}}}:{budget}");
    // -c: follow the Cluster's redirection to the key's node.
    let out = Command::new("redis-cli")
        .args(["-c", "-p", &node.port.to_string(), "hgetall", &key])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .filter(|kv| kv.len() == 2 && kv[0] != "w")
        .map(|kv| kv[1].trim().parse::<u64>().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_and_sentinel_modes_count_atomically_too() {
    let dir = tempfile::tempdir().unwrap();
    let test = "cluster_and_sentinel_modes_count_atomically_too";
    let Some(cluster) = RedisServer::start_cluster(test, dir.path()) else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;
    // A principal budget and a role budget: two hash tags, two slots, so
    // a charge is two script calls, and a refusal by one takes back what
    // the other added.
    let nodes: Vec<String> = cluster
        .iter()
        .map(|n| format!("\"redis://127.0.0.1:{}\"", n.port))
        .collect();
    let budgets = format!(
        "budgets:
  store:
    type: redis
    redis:
      mode: cluster
      nodes: [{}]
      timeout_ms: 2000
  roles:
    support_agent:
      limits:
        - {{ id: agent-each, count: records, window_seconds: 3600, limit: 10, on_exceed: refuse }}
        - {{ id: agents-all, count: records, window_seconds: 3600, limit: 15, on_exceed: refuse, scope: role }}
",
        nodes.join(", ")
    );
    let pod = Replica::start(dir.path(), "pod-cluster", shop, &budgets).await;
    let a = token("support_agent", "agent-a", false, None);
    let b = token("support_agent", "agent-b", false, None);
    assert_eq!(get(pod.addr, "/customers?limit=4", Some(&a)).await.0, 200);
    assert_eq!(get(pod.addr, "/customers?limit=4", Some(&a)).await.0, 200);
    let (status, body) = get(pod.addr, "/customers?limit=4", Some(&a)).await;
    assert_eq!(status, 429, "12 > 10 for agent-a: {body}");
    assert!(body.contains("agent-each"), "{body}");
    // Role total 8. agent-b: 4 (role 12), then 4 more is refused by the
    // role budget (16 > 15): agent-b's own counter takes it back.
    assert_eq!(get(pod.addr, "/customers?limit=4", Some(&b)).await.0, 200);
    let (status, body) = get(pod.addr, "/customers?limit=4", Some(&b)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("agents-all"), "{body}");
    assert_eq!(stored_count(&cluster[0], "agent-b", "agent-each"), 4);
    assert_eq!(get(pod.addr, "/customers?limit=3", Some(&b)).await.0, 200);
    assert_eq!(stored_count(&cluster[0], "agent-b", "agent-each"), 7);
    assert_eq!(stored_count(&cluster[0], "agent-a", "agent-each"), 8);
    drop(pod);

    // Sentinel: the proxy asks the sentinel for the master.
    let Some(master) = RedisServer::start(test, dir.path(), &[]) else {
        return;
    };
    let Some(sentinel) = RedisServer::start_sentinel(test, dir.path(), &master) else {
        return;
    };
    let budgets = format!(
        "budgets:
  store:
    type: redis
    redis:
      mode: sentinel
      nodes: [\"redis://127.0.0.1:{}\"]
      master_name: mymaster
      timeout_ms: 2000
  roles:
    support_agent:
      limits:
        - {{ id: agent-each, count: records, window_seconds: 3600, limit: 10, on_exceed: refuse }}
",
        sentinel.port
    );
    let pod = Replica::start(dir.path(), "pod-sentinel", shop, &budgets).await;
    assert_eq!(get(pod.addr, "/customers?limit=5", Some(&a)).await.0, 200);
    assert_eq!(get(pod.addr, "/customers?limit=5", Some(&a)).await.0, 200);
    assert_eq!(get(pod.addr, "/customers?limit=1", Some(&a)).await.0, 429);
    assert_eq!(stored_count(&master, "agent-a", "agent-each"), 10);
}

/// A CA and a server certificate for 127.0.0.1 (PEM files in `dir`):
/// (ca, cert, key).
fn tls_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "budget store test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    leaf.distinguished_name.push(DnType::CommonName, "redis");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("redis.pem"),
        dir.join("redis.key"),
    );
    std::fs::write(&paths.0, issuer.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_to_the_store_is_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let test = "tls_to_the_store_is_verified_against_the_ca_file";
    let (ca, cert, key) = tls_files(dir.path());
    let tls_port = common::fleet::free_port().to_string();
    let args = [
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert.display().to_string(),
        "--tls-key-file",
        &key.display().to_string(),
        "--tls-ca-cert-file",
        &ca.display().to_string(),
        "--tls-auth-clients",
        "no",
    ]
    .map(str::to_string);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(redis) = RedisServer::start(test, dir.path(), &args) else {
        return;
    };
    let (shop, _shop_task) = start_shop().await;

    // Verified against the CA file: counts.
    let good = store_section(&format!(
        "      url: rediss://127.0.0.1:{tls_port}\n      tls:\n        ca_file: {}\n",
        ca.display()
    ));
    let pod = Replica::start(dir.path(), "pod-tls", shop, &good).await;
    let agent = token("support_agent", "agent-tls", false, None);
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        200
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );
    drop(pod);

    // The system's roots do not know the test CA: refused at start-up.
    let (code, text, took) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!("      url: rediss://127.0.0.1:{tls_port}\n")),
    );
    assert_ne!(code, 0);
    assert!(
        text.contains("TLS") || text.contains("certificate"),
        "{text}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Plain text to the TLS port: an error within the connect timeout.
    let (code, text, took) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: redis://127.0.0.1:{tls_port}\n      connect_timeout_ms: 1000\n"
        )),
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("budgets.store.redis"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // A CA file with a plain URL is a contradiction, said at start-up.
    let (code, text, _) = failed_start(
        dir.path(),
        shop,
        &store_section(&format!(
            "      url: {}\n      tls:\n        ca_file: {}\n",
            redis.url(),
            ca.display()
        )),
    );
    assert_ne!(code, 0);
    assert!(text.contains("use rediss://"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_not_required_at_start_is_connected_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let test = "a_store_not_required_at_start_is_connected_when_it_comes";
    if common::fleet::redis_server_binary(test).is_none() {
        return;
    }
    let (shop, _shop_task) = start_shop().await;
    let port = common::fleet::free_port();
    let budgets = store_section(&format!(
        "      url: redis://127.0.0.1:{port}\n      connect_timeout_ms: 300\n      required_at_start: false\n"
    ));
    let pod = Replica::start(dir.path(), "pod-late", shop, &budgets).await;
    assert_eq!(pod.metric("fieldguard_budget_store_up").await, Some(0.0));
    // Meanwhile the budget counts locally (on_store_error: local, one
    // replica): 50 records.
    let agent = token("support_agent", "agent-late", false, None);
    let (status, body) = get(pod.addr, "/customers?limit=30", Some(&agent)).await;
    assert_eq!(status, 200, "{body}");
    let Some(redis) = RedisServer::start_on(test, dir.path(), port, &[]) else {
        return;
    };
    wait_metric(&pod, "fieldguard_budget_store_up", 1.0).await;
    // The 30 counted locally were written to the store.
    assert_eq!(stored_count(&redis, "agent-late", "support-records"), 30);
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=20", Some(&agent)).await.0,
        200
    );
}

/// The ACL docs/configuration.md recommends: exactly what the proxy needs.
const DOCUMENTED_ACL: &str = "on ~fieldguard:* resetchannels -@all +ping +evalsha +eval +script|load +time +hgetall +hincrby +hset +hdel +hexists +del +pexpire";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acl_user_with_the_documented_permissions_counts() {
    let dir = tempfile::tempdir().unwrap();
    let test = "an_acl_user_with_the_documented_permissions_counts";
    let Some(redis) = RedisServer::start(test, dir.path(), &[]) else {
        return;
    };
    let mut acl: Vec<&str> = vec!["acl", "setuser", "fieldguard", ">fg-password"];
    acl.extend(DOCUMENTED_ACL.split(' '));
    assert_eq!(redis.cli(&acl), "OK");
    // The default user may do nothing: only the ACL user counts.
    assert_eq!(redis.cli(&["acl", "setuser", "default", "off"]), "OK");
    let secret = dir.path().join("redis-password");
    std::fs::write(&secret, "fg-password").unwrap();
    let (shop, _shop_task) = start_shop().await;
    let budgets = store_section(&format!(
        "      url: {}\n      username: fieldguard\n      password_file: {}\n",
        redis.url(),
        secret.display()
    ));
    let pod = Replica::start(dir.path(), "pod-acl", shop, &budgets).await;
    let agent = token("support_agent", "agent-acl", false, None);
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        200
    );
    assert_eq!(
        get(pod.addr, "/customers?limit=30", Some(&agent)).await.0,
        429
    );
    assert_eq!(pod.metric("fieldguard_budget_store_up").await, Some(1.0));
    let scrape = get(pod.admin, "/metrics", None).await.1;
    assert_eq!(
        text_metric_sum(&scrape, "fieldguard_budget_store_errors_total", "reason="),
        0.0,
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_lists_on_two_replicas_are_charged_batch_by_batch_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let test = "streamed_lists_on_two_replicas_are_charged_batch_by_batch_in_the_store";
    let Some(redis) = RedisServer::start(test, dir.path(), &[]) else {
        return;
    };
    // 3,000 customers: lists of several 64 KiB batches, streamed.
    let (shop, _shop_task) = common::fleet::start_shop_with(3000).await;
    let budgets = shared_budgets(&redis, 500);
    let streamed = |t: String| {
        t.replace(
            "\nlimits:\n",
            "\nlimits:\n  stream_responses_over_bytes: 16384\n",
        )
    };
    let a = Replica::start_edited(dir.path(), "pod-s1", shop, &budgets, &streamed).await;
    let b = Replica::start_edited(dir.path(), "pod-s2", shop, &budgets, &streamed).await;
    let agent = token("support_agent", "agent-stream", false, None);
    // Two lists of 1,000 at once on two replicas, for a principal allowed
    // 500: the store admits batches until the 500 are used; the rest of
    // each stream is cut off.
    let (ra, rb) = tokio::join!(
        common::fleet::get_raw(a.addr, "/customers?limit=1000", Some(&agent)),
        common::fleet::get_raw(b.addr, "/customers?limit=1000", Some(&agent)),
    );
    let records = |body: &[u8]| body.windows(6).filter(|w| w == b"{\"id\":").count();
    let received = records(&ra.1) + records(&rb.1);
    assert!(
        received <= 500,
        "{received} records reached the clients, limit 500"
    );
    assert!(received > 0);
    // At most one of the two can be whole (1,000 > 500): the others ended
    // in an abort, never a well-formed body.
    assert!(!(ra.2 && rb.2), "both streams ended cleanly");
    assert!(stored_count(&redis, "agent-stream", "support-records") <= 500);
    let mut a = a;
    let mut b = b;
    a.stop();
    b.stop();
    let recs: Vec<Value> = a
        .audit_records()
        .into_iter()
        .chain(b.audit_records())
        .collect();
    let aborted: Vec<&Value> = recs
        .iter()
        .filter(|r| r["response_aborted"] == "budget_exceeded")
        .collect();
    assert!(!aborted.is_empty(), "{recs:?}");
    assert!(
        aborted.iter().all(|r| r["response_streamed"] == true),
        "{aborted:?}"
    );
}

#[test]
fn validate_checks_the_store_section_without_connecting_and_warns_about_replicas() {
    use common::fleet::{free_port, replica_config};
    let dir = tempfile::tempdir().unwrap();
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    let validate = |budgets: &str| {
        let config = replica_config(
            dir.path(),
            "v",
            addr(free_port()),
            addr(free_port()),
            addr(9),
            budgets,
            &|t| t,
        );
        let out = Command::new(env!("CARGO_BIN_EXE_fieldguard"))
            .args(["validate", "--strict", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    // Nothing listens on port 1: validate does not connect.
    let (ok, text) = validate(&store_section("      url: redis://127.0.0.1:1\n"));
    assert!(ok, "{text}");
    let (ok, text) = validate(&store_section("      url: tcp://127.0.0.1:1\n"));
    assert!(
        !ok && text.contains("not a redis:// or rediss:// URL"),
        "{text}"
    );
    let (ok, text) = validate(&store_section(
        "      mode: sentinel\n      nodes: [\"redis://127.0.0.1:1\"]\n",
    ));
    assert!(!ok && text.contains("master_name"), "{text}");
    // A fleet's size without a shared store: each replica counts alone.
    let (ok, text) = validate(
        "budgets:
  replicas: 3
  roles:
    support_agent:
      limits:
        - { id: support-records, count: records, window_seconds: 3600, limit: 50, on_exceed: refuse }
",
    );
    assert!(!ok && text.contains("each replica counts alone"), "{text}");
    // A local share of 0.
    let (ok, text) = validate(
        "budgets:
  replicas: 100
  store:
    type: redis
    redis:
      url: redis://127.0.0.1:1
  roles:
    support_agent:
      limits:
        - { id: support-records, count: records, window_seconds: 3600, limit: 50, on_exceed: refuse }
",
    );
    assert!(!ok && text.contains("is 0"), "{text}");
}
