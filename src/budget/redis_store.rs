//! The shared budget store: Redis or Valkey, which every replica of a fleet
//! counts in, so a principal's budget is one total however many replicas
//! serve it.
//!
//! Counting and checking are one server-side step ([`WINDOW_SCRIPT`], run
//! with EVALSHA): for every budget a response counts against, the script
//! reads the sliding window, decides whether a refusing budget would go
//! over its limit, and adds the amounts only if none would. Two replicas
//! charging the same principal at once are serialised by the store, so a
//! refusing budget's count never exceeds its limit while the store answers.
//!
//! Keys: `<prefix>:{<tag>}:<budget id>`, a hash of the window's slots. The
//! tag is a digest of the principal's id (or, for `scope: role`, of the
//! budget id), so a hostile token's id costs the store a fixed-size key,
//! and a Cluster keeps one principal's budgets in one slot (one script
//! call). Keys expire one slot after their window.
//!
//! Client: redis-rs with its tokio connection manager (one multiplexed
//! connection per store, reconnecting by itself; cluster-async for
//! Cluster; Sentinel resolves the master, and is asked again after a
//! failure). No lock is held across a call.

use super::config::{RedisConfig, RedisMode};
use super::state::{CounterKey, Who};
use super::store_metrics::BudgetStoreMetrics;
use super::window::Window;
use super::{Limit, Reading};
use crate::identity::Principal;
use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fieldguard_core::config::{Origin, line_of};
use fieldguard_core::error::ConfigError;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, IntoConnectionInfo, RedisError, Script, TlsCertificates};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sliding window as one atomic step (see the script's header).
pub const WINDOW_SCRIPT: &str = include_str!("window.lua");

/// One counter a call reads or charges.
#[derive(Debug, Clone)]
pub struct Op {
    pub key: String,
    /// The hash tag: counters of one tag go in one script call.
    tag_len: usize,
    pub slot_ms: u64,
    pub limit: u64,
    pub amount: u64,
    pub refusing: bool,
    /// For a refund: the slot the amount was added at.
    slot: u64,
}

impl Op {
    /// The counter of `limit` for `principal`.
    pub fn of(prefix: &str, limit: &Limit, principal: &Principal) -> Self {
        let slot_ms = Window::slot_ms_of(limit.window_ms());
        Self::for_key(prefix, &limit.key(principal), slot_ms).limit(limit.limit)
    }

    /// The counter for a memory store's key (the local fallback's counts,
    /// written back). `None` for an overflow counter: it has no principal.
    pub fn for_key(prefix: &str, key: &CounterKey, slot_ms: u64) -> Self {
        let tag = match &key.who {
            Who::Principal(id) => digest_tag('p', id.as_bytes()),
            Who::Role | Who::Overflow => digest_tag('r', key.budget.as_bytes()),
        };
        let key_text = format!("{prefix}:{{{tag}}}:{}", key.budget);
        Self {
            tag_len: prefix.len() + 2 + tag.len() + 1,
            key: key_text,
            slot_ms,
            limit: u64::MAX,
            amount: 0,
            refusing: false,
            slot: 0,
        }
    }

    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// The part of the key that picks the Cluster slot (`prefix:{tag}`).
    fn tag(&self) -> &str {
        &self.key[..self.tag_len.min(self.key.len())]
    }
}

/// `p.` or `r.` and 22 characters of SHA-256: fixed size whatever the id.
fn digest_tag(kind: char, id: &[u8]) -> String {
    let d = Sha256::digest(id);
    format!("{kind}.{}", URL_SAFE_NO_PAD.encode(&d[..16]))
}

/// What a call said about each counter, in the order asked.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub refused: bool,
    pub readings: Vec<Reading>,
    /// The slot each amount was added at (for a refund).
    slots: Vec<u64>,
}

/// Why a store call failed (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Connection,
    /// Authentication, ACL or a read-only replica: the store answered but
    /// will not count.
    Refused,
    /// The script failed or answered something else than expected.
    Script,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connection => "connection",
            Failure::Refused => "refused",
            Failure::Script => "script",
        }
    }

    fn of(e: &RedisError) -> Self {
        if e.is_timeout() {
            Failure::Timeout
        } else if matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed | ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        ) || e.code() == Some("NOPERM")
            || e.code() == Some("NOAUTH")
            || e.code() == Some("WRONGPASS")
        {
            Failure::Refused
        } else if e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal() {
            Failure::Connection
        } else {
            Failure::Script
        }
    }
}

#[derive(Clone)]
enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How to reach the store: kept to reconnect (Sentinel asks for the
/// master again after a failure).
struct Target {
    mode: RedisMode,
    /// Standalone: the node. Sentinel: the sentinels. Cluster: seeds.
    nodes: Vec<redis::ConnectionInfo>,
    master_name: String,
    username: Option<String>,
    password: Option<String>,
    certs: Option<TlsCertificates>,
    tls: bool,
    connect_timeout: Duration,
    timeout: Duration,
}

pub struct RedisStore {
    /// `None` until a first connection succeeds (a store that was away at
    /// start-up, with `required_at_start: false`).
    conn: ArcSwapOption<Conn>,
    target: Target,
    script: Script,
    pub prefix: String,
    pub metrics: BudgetStoreMetrics,
    /// What the store section and the files it names said: a reload whose
    /// fingerprint is the same keeps this store (and its connection).
    pub fingerprint: [u8; 32],
    /// For log lines: the mode and the first node, never a password.
    pub describe: String,
    /// The config file and the line of the store's first URL, for errors.
    file: std::path::PathBuf,
    line: Option<usize>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("store", &self.describe)
            .finish_non_exhaustive()
    }
}

/// Why the store could not be used at start-up or on reload.
#[derive(Debug)]
pub enum ConnectError {
    /// The configuration itself is wrong (URL, files, credentials, TLS):
    /// never started around.
    Config(ConfigError),
    /// The store did not answer in time or refused the connection: with
    /// `required_at_start: false` the proxy starts and budgets follow
    /// `on_store_error` until it answers.
    Unreachable(ConfigError),
}

impl ConnectError {
    pub fn into_config_error(self) -> ConfigError {
        match self {
            ConnectError::Config(e) | ConnectError::Unreachable(e) => e,
        }
    }
}

/// An error in `budgets.store.redis`, at `line` of the config file.
fn section_error(origin: Origin<'_>, line: Option<usize>, m: String) -> ConfigError {
    ConfigError::new(origin.file, line, format!("budgets.store.redis: {m}"))
}

/// The URLs the mode takes: `url` (standalone) or `nodes`.
fn configured_urls<'c>(
    cfg: &'c RedisConfig,
    origin: Origin<'_>,
) -> Result<Vec<&'c Spanned<String>>, ConfigError> {
    let at = |line: Option<usize>, m: String| section_error(origin, line, m);
    Ok(match cfg.mode {
        RedisMode::Standalone => {
            if !cfg.nodes.is_empty() {
                return Err(at(
                    line_of(&cfg.nodes[0]),
                    "`nodes` is for sentinel and cluster modes; standalone takes `url`".into(),
                ));
            }
            match &cfg.url {
                Some(u) => vec![u],
                None => return Err(at(None, "standalone mode needs `url`".into())),
            }
        }
        RedisMode::Sentinel | RedisMode::Cluster => {
            if let Some(u) = &cfg.url {
                return Err(at(
                    line_of(u),
                    format!("{} mode takes `nodes`, not `url`", cfg.mode.as_str()),
                ));
            }
            if cfg.nodes.is_empty() {
                return Err(at(
                    None,
                    format!("{} mode needs `nodes`", cfg.mode.as_str()),
                ));
            }
            cfg.nodes.iter().collect()
        }
    })
}

/// Each URL parsed (redis:// or rediss://, all alike; no password in
/// it), and whether they use TLS.
fn parse_nodes(
    urls: &[&Spanned<String>],
    origin: Origin<'_>,
    fp: &mut Sha256,
) -> Result<(Vec<redis::ConnectionInfo>, bool), ConfigError> {
    let at = |line: Option<usize>, m: String| section_error(origin, line, m);
    let mut nodes = Vec::new();
    let mut tls = None;
    for u in urls {
        let text = u.value.trim();
        let scheme_tls = match text.split_once("://").map(|(s, _)| s) {
            Some("redis" | "valkey") => false,
            Some("rediss" | "valkeys") => true,
            _ => {
                return Err(at(
                    line_of(u),
                    format!("`{}` is not a redis:// or rediss:// URL", printable(text)),
                ));
            }
        };
        if tls.is_some_and(|t| t != scheme_tls) {
            return Err(at(
                line_of(u),
                "mixes redis:// and rediss:// URLs: every node uses TLS or none".into(),
            ));
        }
        tls = Some(scheme_tls);
        let info = text.into_connection_info().map_err(|e| {
            at(
                line_of(u),
                format!("`{}` is not a usable URL: {e}", printable(text)),
            )
        })?;
        if info.redis_settings().password().is_some() {
            return Err(at(
                line_of(u),
                "the URL carries a password: put it in `password_file` (mounted from a Secret)"
                    .into(),
            ));
        }
        fp.update(text.as_bytes());
        fp.update([0]);
        nodes.push(info);
    }
    Ok((nodes, tls.unwrap_or(false)))
}

/// The password in `password_file`, if one is configured.
fn read_password(
    cfg: &RedisConfig,
    origin: Origin<'_>,
    fp: &mut Sha256,
) -> Result<Option<String>, ConfigError> {
    Ok(match &cfg.password_file {
        Some(f) => {
            let path = origin.resolve(f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::file(
                    &path,
                    format!("budgets.store.redis.password_file: cannot read: {e}"),
                )
            })?;
            let p = text.trim().to_string();
            if p.is_empty() {
                return Err(ConfigError::file(
                    &path,
                    "budgets.store.redis.password_file: the file is empty",
                ));
            }
            fp.update(p.as_bytes());
            Some(p)
        }
        None => None,
    })
}

/// The CA certificates in `tls.ca_file` (at `path`).
fn read_ca(path: &Path, fp: &mut Sha256) -> Result<TlsCertificates, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConfigError::file(
            path,
            format!("budgets.store.redis.tls.ca_file: cannot read: {e}"),
        )
    })?;
    let mut reader = pem.as_slice();
    let count = rustls_pemfile_certs(&mut reader);
    if count == 0 {
        return Err(ConfigError::file(
            path,
            "budgets.store.redis.tls.ca_file: no PEM certificate in it",
        ));
    }
    fp.update(&pem);
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// The settings besides URLs and files; returns the sentinel master's
/// name (empty in the other modes).
fn check_settings(
    cfg: &RedisConfig,
    line: Option<usize>,
    origin: Origin<'_>,
) -> Result<String, ConfigError> {
    let at = |line: Option<usize>, m: String| section_error(origin, line, m);
    let master_name = match (cfg.mode, &cfg.master_name) {
        (RedisMode::Sentinel, Some(m)) if !m.trim().is_empty() => m.trim().to_string(),
        (RedisMode::Sentinel, _) => {
            return Err(at(line, "sentinel mode needs `master_name`".into()));
        }
        (_, Some(_)) => {
            return Err(at(line, "`master_name` is for sentinel mode".into()));
        }
        (_, None) => String::new(),
    };
    if cfg.timeout_ms == 0 || cfg.timeout_ms > 10_000 {
        return Err(at(line, "timeout_ms must be 1 to 10000".into()));
    }
    if cfg.connect_timeout_ms == 0 || cfg.connect_timeout_ms > 60_000 {
        return Err(at(line, "connect_timeout_ms must be 1 to 60000".into()));
    }
    if cfg.key_prefix.is_empty()
        || cfg.key_prefix.len() > 64
        || cfg.key_prefix.contains(['{', '}'])
        || cfg.key_prefix.chars().any(char::is_whitespace)
    {
        return Err(at(
            line,
            "key_prefix must be 1 to 64 characters, without spaces or braces".into(),
        ));
    }
    Ok(master_name)
}

impl RedisStore {
    /// The section checked and its files read, without connecting (what
    /// `validate` and every config load do).
    pub fn check(cfg: &RedisConfig, origin: Origin<'_>) -> Result<(), ConfigError> {
        Self::target(cfg, origin).map(|_| ())
    }

    /// Checks the section and reads the files it names: no network yet.
    /// Errors name the config file and the line of the offending value.
    pub fn prepare(
        cfg: &RedisConfig,
        origin: Origin<'_>,
        metrics: BudgetStoreMetrics,
    ) -> Result<Self, ConfigError> {
        let (target, fingerprint, line) = Self::target(cfg, origin)?;
        Ok(Self {
            describe: describe(cfg.mode, &target),
            conn: ArcSwapOption::empty(),
            target,
            script: Script::new(WINDOW_SCRIPT),
            prefix: cfg.key_prefix.clone(),
            metrics,
            fingerprint,
            file: origin.file.to_path_buf(),
            line,
        })
    }

    /// Connects, authenticates and loads the script, within
    /// `connect_timeout_ms`.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let err = |m: String| {
            ConfigError::new(&self.file, self.line, format!("budgets.store.redis: {m}"))
        };
        let describe = &self.describe;
        let timeout = self.target.connect_timeout;
        let conn = match tokio::time::timeout(timeout, self.target.open()).await {
            Err(_) => {
                return Err(ConnectError::Unreachable(err(format!(
                    "{describe}: no answer within connect_timeout_ms ({} ms): unreachable, or a TLS setting the server does not share",
                    timeout.as_millis()
                ))));
            }
            Ok(Err(e)) => return Err(classify(describe, &e, err)),
            Ok(Ok(conn)) => conn,
        };
        self.conn.store(Some(Arc::new(conn)));
        // Loading the script checks credentials, ACL and a writable node.
        match tokio::time::timeout(timeout, self.load_script()).await {
            Err(_) => Err(ConnectError::Unreachable(err(format!(
                "{describe}: the script could not be loaded within connect_timeout_ms"
            )))),
            Ok(Err(e)) => Err(classify(describe, &e, err)),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn connection(&self) -> Result<Arc<Conn>, Failure> {
        self.conn.load_full().ok_or(Failure::Connection)
    }

    /// The section checked and its files read: no network yet. Returns the
    /// target, a fingerprint of everything that decides it (URLs, password,
    /// CA, settings: in that order), and the line of its first URL.
    fn target(
        cfg: &RedisConfig,
        origin: Origin<'_>,
    ) -> Result<(Target, [u8; 32], Option<usize>), ConfigError> {
        let at = |line: Option<usize>, m: String| section_error(origin, line, m);
        let mut fp = Sha256::new();
        let urls = configured_urls(cfg, origin)?;
        let line = urls.first().and_then(|u| line_of(u));
        let (nodes, tls) = parse_nodes(&urls, origin, &mut fp)?;
        let password = read_password(cfg, origin, &mut fp)?;
        let certs = match cfg.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            Some(_) if !tls => {
                return Err(at(line, "`tls.ca_file` is set: use rediss:// URLs".into()));
            }
            Some(f) => Some(read_ca(&origin.resolve(f), &mut fp)?),
            None => None,
        };
        let master_name = check_settings(cfg, line, origin)?;
        fp.update(format!(
            "{}|{master_name}|{:?}|{}|{}|{}",
            cfg.mode.as_str(),
            cfg.username,
            cfg.timeout_ms,
            cfg.connect_timeout_ms,
            cfg.key_prefix
        ));
        Ok((
            Target {
                mode: cfg.mode,
                nodes,
                master_name,
                username: cfg.username.clone(),
                password,
                certs,
                tls,
                connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
                timeout: Duration::from_millis(cfg.timeout_ms),
            },
            fp.finalize().into(),
            line,
        ))
    }

    async fn load_script(&self) -> Result<(), RedisError> {
        let Some(conn) = self.conn.load_full() else {
            return Err(RedisError::from((ErrorKind::Io, "not connected")));
        };
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(WINDOW_SCRIPT);
        match &*conn {
            Conn::Node(c) => {
                let mut c = c.clone();
                load.query_async::<String>(&mut c).await?;
            }
            Conn::Cluster(c) => {
                let mut c = c.clone();
                // Every primary: EVALSHA may land on any of them.
                let routed = redis::cluster_routing::RoutingInfo::MultiNode((
                    redis::cluster_routing::MultipleNodeRoutingInfo::AllMasters,
                    Some(redis::cluster_routing::ResponsePolicy::AllSucceeded),
                ));
                c.route_command(load, routed).await?;
            }
        }
        Ok(())
    }

    /// A cheap round trip: is the store answering (and writable)?
    pub async fn ping(&self) -> Result<(), Failure> {
        let conn = self.connection()?;
        let run = async {
            match &*conn {
                Conn::Node(c) => {
                    let mut c = c.clone();
                    redis::cmd("PING").query_async::<String>(&mut c).await?;
                }
                Conn::Cluster(c) => {
                    let mut c = c.clone();
                    redis::cmd("PING").query_async::<String>(&mut c).await?;
                }
            }
            self.load_script().await
        };
        match tokio::time::timeout(self.target.connect_timeout, run).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::of(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// After a failure: Sentinel is asked for the (new) master and a new
    /// connection replaces the old one; the others reconnect by themselves.
    pub async fn reconnect(&self) -> Result<(), Failure> {
        if self.target.mode != RedisMode::Sentinel && self.conn.load().is_some() {
            return Ok(());
        }
        self.connect().await.map_err(|e| match e {
            ConnectError::Config(_) => Failure::Refused,
            ConnectError::Unreachable(_) => Failure::Connection,
        })
    }

    /// Runs `op` over `ops` in one script call per hash tag (one call
    /// unless a Cluster holds the counters in several slots), within the
    /// configured timeout. A Cluster `charge` refused by one slot's
    /// counters takes back what the others added.
    pub async fn call(&self, op: &'static str, ops: &[Op]) -> Result<Reply, Failure> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.target.timeout, self.call_grouped(op, ops)).await;
        let result = match result {
            Err(_) => Err(Failure::Timeout),
            Ok(r) => r,
        };
        match &result {
            Ok(_) => self
                .metrics
                .duration
                .observe(started.elapsed().as_secs_f64()),
            Err(f) => self.metrics.errors.with_label_values(&[f.as_str()]).inc(),
        }
        result
    }

    async fn call_grouped(&self, op: &'static str, ops: &[Op]) -> Result<Reply, Failure> {
        let Some(first) = ops.first() else {
            return Ok(Reply::default());
        };
        let conn = self.connection()?;
        let single = matches!(*conn, Conn::Node(_)) || ops.iter().all(|o| o.tag() == first.tag());
        if single {
            return self.run(&conn, op, ops).await;
        }
        // A Cluster with counters in several slots: one call per slot,
        // concurrently; then the readings in the order asked.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            match groups.iter_mut().find(|(t, _)| *t == o.tag()) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((o.tag(), vec![i])),
            }
        }
        let calls = groups.iter().map(|(_, idx)| {
            let part: Vec<Op> = idx.iter().map(|&i| ops[i].clone()).collect();
            let conn = conn.clone();
            async move { self.run(&conn, op, &part).await.map(|r| (part, r)) }
        });
        let replies = futures_util::future::join_all(calls).await;
        let mut merged = Reply {
            refused: false,
            readings: vec![
                Reading {
                    used: 0,
                    frees_in_ms: 0
                };
                ops.len()
            ],
            slots: vec![0; ops.len()],
        };
        let mut done = Vec::new();
        let mut failure = None;
        for ((_, idx), reply) in groups.iter().zip(replies) {
            match reply {
                Ok((part, r)) => {
                    merged.refused |= r.refused;
                    for (k, &i) in idx.iter().enumerate() {
                        merged.readings[i] = r.readings[k];
                        merged.slots[i] = r.slots[k];
                    }
                    if !r.refused {
                        done.push((part, r.slots));
                    }
                }
                Err(f) => failure = Some(f),
            }
        }
        if op == "charge" && (merged.refused || failure.is_some()) {
            for (mut part, slots) in done {
                for (o, slot) in part.iter_mut().zip(slots) {
                    o.slot = slot;
                }
                self.run(&conn, "refund", &part).await?;
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(merged),
        }
    }

    async fn run(&self, conn: &Conn, op: &'static str, ops: &[Op]) -> Result<Reply, Failure> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(op);
        for o in ops {
            inv.key(&o.key);
            let fourth = if op == "refund" {
                o.slot
            } else {
                u64::from(o.refusing)
            };
            inv.arg(o.slot_ms)
                .arg(o.limit.min(i64::MAX as u64))
                .arg(o.amount)
                .arg(fourth);
        }
        let answer: Result<Vec<i64>, RedisError> = match conn {
            Conn::Node(c) => inv.invoke_async(&mut c.clone()).await,
            Conn::Cluster(c) => inv.invoke_async(&mut c.clone()).await,
        };
        let answer = answer.map_err(|e| Failure::of(&e))?;
        if op == "refund" {
            return Ok(Reply::default());
        }
        if answer.len() != 1 + 3 * ops.len() {
            return Err(Failure::Script);
        }
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Reply {
            refused: answer[0] == 1,
            readings: answer[1..]
                .chunks(3)
                .map(|c| Reading {
                    used: n(c[0]),
                    frees_in_ms: n(c[1]),
                })
                .collect(),
            slots: answer[1..].chunks(3).map(|c| n(c[2])).collect(),
        })
    }
}

impl Target {
    async fn open(&self) -> Result<Conn, RedisError> {
        match self.mode {
            RedisMode::Standalone => {
                let mut info = self.nodes[0].clone();
                let mut settings = info.redis_settings().clone();
                if let Some(u) = &self.username {
                    settings = settings.set_username(u);
                }
                if let Some(p) = &self.password {
                    settings = settings.set_password(p);
                }
                info = info.set_redis_settings(settings);
                let client = match &self.certs {
                    Some(c) => redis::Client::build_with_tls(info, c.clone())?,
                    None => redis::Client::open(info)?,
                };
                self.manager(client).await
            }
            RedisMode::Sentinel => {
                let tls_mode = self.tls.then_some(redis::TlsMode::Secure);
                let mut b = redis::sentinel::SentinelClientBuilder::new(
                    self.nodes.iter().map(|n| n.addr().clone()),
                    &self.master_name,
                    redis::sentinel::SentinelServerType::Master,
                )?;
                if let Some(m) = tls_mode {
                    b = b.set_client_to_redis_tls_mode(m);
                    b = b.set_client_to_sentinel_tls_mode(m);
                }
                if let Some(u) = &self.username {
                    b = b.set_client_to_redis_username(u);
                    b = b.set_client_to_sentinel_username(u);
                }
                if let Some(p) = &self.password {
                    b = b.set_client_to_redis_password(p);
                    b = b.set_client_to_sentinel_password(p);
                }
                if let Some(c) = &self.certs {
                    b = b.set_client_to_redis_certificates(c.clone());
                    b = b.set_client_to_sentinel_certificates(c.clone());
                }
                let mut sentinel = b.build()?;
                let client = sentinel.async_get_client().await?;
                self.manager(client).await
            }
            RedisMode::Cluster => {
                let mut b = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.timeout);
                if let Some(u) = &self.username {
                    b = b.username(u);
                }
                if let Some(p) = &self.password {
                    b = b.password(p);
                }
                if let Some(c) = &self.certs {
                    b = b.certs(c.clone());
                }
                let client = b.build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    async fn manager(&self, client: redis::Client) -> Result<Conn, RedisError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Conn::Node(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }
}

/// The mode and first node, for log lines (never a password).
fn describe(mode: RedisMode, target: &Target) -> String {
    let first = target.nodes.first().map(|n| n.addr().to_string());
    format!("{} {}", mode.as_str(), first.unwrap_or_default())
}

/// A connection failure at start-up or reload, as the operator reads it.
fn classify(describe: &str, e: &RedisError, err: impl Fn(String) -> ConfigError) -> ConnectError {
    let text = e.to_string();
    match Failure::of(e) {
        Failure::Refused => ConnectError::Config(err(format!(
            "{describe}: the store refused the credentials or the command ({text}): check username and password_file, and the user's ACL (EVALSHA, SCRIPT, PING)"
        ))),
        Failure::Connection | Failure::Timeout
            if text.contains("certificate")
                || text.contains("TLS")
                || text.contains("tls")
                || text.contains("handshake") =>
        {
            ConnectError::Config(err(format!(
                "{describe}: TLS failed ({text}): check rediss:// against the server's TLS port and tls.ca_file"
            )))
        }
        Failure::Connection | Failure::Timeout => {
            ConnectError::Unreachable(err(format!("{describe}: cannot connect ({text})")))
        }
        Failure::Script => ConnectError::Config(err(format!(
            "{describe}: the store did not accept the budget script ({text}): Redis 6.2+ or Valkey with Lua scripting is needed"
        ))),
    }
}

/// Certificates in a PEM text (at least one is needed for a CA file).
fn rustls_pemfile_certs(reader: &mut &[u8]) -> usize {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_reader_iter(reader)
        .filter(Result::is_ok)
        .count()
}

/// A config value quoted in an error: control characters escaped.
fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).take(200).collect()
}
