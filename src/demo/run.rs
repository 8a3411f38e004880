//! `fieldguard demo`: the demo shop and the proxy with the reference
//! policies in one process, plus a ready-to-paste token per role.

use crate::config::{self, ListenerConfig};
use crate::identity::mint::{TokenRequest, mint_hs256_with_claims};
use crate::proxy::Proxy;
use crate::runtime::Runtime;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Prints to stdout, ignoring a closed pipe (`fieldguard demo | head` must
/// not panic the proxy once the reader has gone).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The reference deployment's config, bundled with the source tree.
pub fn default_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml")
}

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub upstream_listen: SocketAddr,
    pub config: PathBuf,
    /// Audit log file; `None`: `audit.log` in a new temporary directory.
    pub audit_file: Option<PathBuf>,
    /// Admin listener (metrics, health, policies).
    pub admin_listen: SocketAddr,
    /// Another policy folder (hot reloaded), e.g. a team's changes.
    pub policies: Option<PathBuf>,
}

/// One role of the reference table, as the demo hands out tokens for it.
pub struct DemoRole {
    pub label: &'static str,
    pub role: &'static str,
    pub sub: &'static str,
    pub mfa: bool,
    pub purpose: Option<&'static str>,
    /// Further token claims (the config maps them with `attribute_claims`).
    pub claims: &'static [(&'static str, &'static str)],
}

pub const DEMO_ROLES: &[DemoRole] = &[
    DemoRole {
        label: "customer c-1001",
        role: "customer",
        sub: "c-1001",
        mfa: false,
        purpose: None,
        claims: &[],
    },
    DemoRole {
        label: "support agent",
        role: "support_agent",
        sub: "agent-7",
        mfa: false,
        purpose: None,
        claims: &[],
    },
    DemoRole {
        label: "support agent with MFA",
        role: "support_agent",
        sub: "agent-7",
        mfa: true,
        purpose: None,
        claims: &[],
    },
    DemoRole {
        label: "fulfillment",
        role: "fulfillment",
        sub: "warehouse-3",
        mfa: false,
        purpose: None,
        claims: &[],
    },
    DemoRole {
        label: "marketing analyst",
        role: "marketing_analyst",
        sub: "analyst-2",
        mfa: false,
        purpose: Some("marketing"),
        claims: &[],
    },
    DemoRole {
        label: "data protection officer (MFA)",
        role: "data_protection_officer",
        sub: "dpo-1",
        mfa: true,
        purpose: None,
        claims: &[],
    },
    DemoRole {
        label: "logistics partner",
        role: "partner",
        sub: "partner-sf-express",
        mfa: false,
        purpose: None,
        // CDM-3.2.3: the partner's token names its carrier; it sees only
        // orders that carrier ships.
        claims: &[("carrier", "SF Express")],
    },
];

/// Why the demo could not start, or a demo token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The config does not load or build: said in one line.
    #[error("{0}")]
    Config(#[from] fieldguard_core::error::ConfigError),
    #[error("the config has no `identity.jwt` section")]
    NoJwt,
    #[error("the config has no `identity.jwt.hs256_secret_file`")]
    NoSecretFile,
    /// A file or folder the demo reads or makes (the secret, the policy
    /// folder, the audit folder).
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mint(#[from] crate::identity::mint::MintError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A bound socket without an address.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Audit(#[from] crate::audit::StartError),
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
}

/// Mints a token the given config's JWT settings accept (HS256 secret,
/// issuer and audience taken from the config).
pub fn token_for_config(
    config_path: &Path,
    role: &str,
    sub: &str,
    mfa: bool,
    purpose: Option<&str>,
    claims: &[(String, String)],
    ttl_secs: u64,
) -> Result<String, DemoError> {
    let loaded = config::load(config_path)?;
    let jwt = loaded
        .config
        .identity
        .jwt
        .as_ref()
        .ok_or(DemoError::NoJwt)?;
    let secret_file = jwt
        .hs256_secret_file
        .as_ref()
        .ok_or(DemoError::NoSecretFile)?;
    let path = loaded.resolve(secret_file);
    let secret = std::fs::read(&path).map_err(|source| DemoError::File { path, source })?;
    let extra: serde_json::Map<String, serde_json::Value> = claims
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(mint_hs256_with_claims(
        secret.trim_ascii_end(),
        &TokenRequest {
            sub: sub.to_string(),
            roles: vec![role.to_string()],
            mfa,
            purpose: purpose.map(str::to_string),
            ttl_secs,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
        },
        &extra,
    )?)
}

/// What the demo changes in the config it loads (and again on every
/// reload): its own addresses and, optionally, another policy folder.
fn demo_adjustments(
    shop: SocketAddr,
    listen: SocketAddr,
    policies: Option<PathBuf>,
) -> Result<crate::proxy::reload::Adjust, DemoError> {
    let policies = policies
        .map(|p| {
            p.canonicalize()
                .map_err(|source| DemoError::File { path: p, source })
        })
        .transpose()?;
    Ok(Box::new(move |loaded: &mut config::LoadedConfig| {
        loaded.config.upstream.url.value = format!("http://{shop}");
        loaded.config.listeners = vec![ListenerConfig { address: listen }];
        if let Some(dir) = &policies {
            loaded.config.policies.directory = dir.clone();
            let schema = dir.join("schema.cedarschema");
            if schema.is_file() {
                loaded.config.policies.schema = schema;
            }
        }
    }))
}

/// Starts the shop and the proxy and serves until the process is stopped.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let shop_listener = TcpListener::bind(opts.upstream_listen)
        .await
        .map_err(|source| DemoError::Listen {
            address: opts.upstream_listen,
            source,
        })?;
    let shop_addr = shop_listener.local_addr()?;
    let shop = super::shop::Shop::new(super::data::DEMO_CUSTOMERS);
    tokio::spawn(async move {
        if let Err(e) = super::shop::serve(shop_listener, shop).await {
            tracing::error!("demo shop stopped: {e}");
        }
    });

    let mut loaded = config::load(&opts.config)?;
    let adjust = demo_adjustments(shop_addr, opts.listen, opts.policies.clone())?;
    adjust(&mut loaded);
    let mut audit =
        crate::audit::AuditSettings::from_config(&loaded.config.audit, loaded.origin())?;
    audit.file = Some(match opts.audit_file {
        Some(f) => f,
        None => demo_audit_file()?,
    });
    audit.stdout = false;
    let runtime = Runtime::build(loaded)?;
    let version = runtime.decisions.engine.bundle.version.clone();
    let proxy = Proxy::new(runtime)?;
    proxy.connect_budget_store().await?;
    let (proxy, audit_writer) = crate::service::attach_audit(proxy, &audit)?;
    let proxy = Arc::new(proxy);
    let _watcher = crate::service::start_reloading(&proxy, opts.config.clone(), adjust)?;
    let (admin_addr, admin_task) =
        crate::service::spawn_admin(opts.admin_listen, proxy.clone()).await?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| DemoError::Listen {
            address: opts.listen,
            source,
        })?;
    let proxy_addr = listener.local_addr()?;

    outln!("fieldguard demo");
    outln!("  demo shop (unprotected legacy API): http://{shop_addr}");
    outln!("  fieldguard proxy:                   http://{proxy_addr}");
    outln!("  policy set version:                 {version}");
    if let Some(f) = &audit.file {
        outln!("  audit log:                          {}", f.display());
    }
    outln!("  admin (metrics, health, policies):  http://{admin_addr}/metrics");
    outln!();
    outln!("Tokens (demo only, valid 8 hours):");
    for r in DEMO_ROLES {
        let claims: Vec<(String, String)> = r
            .claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let token = token_for_config(
            &opts.config,
            r.role,
            r.sub,
            r.mfa,
            r.purpose,
            &claims,
            8 * 3600,
        )?;
        outln!("  # {}", r.label);
        outln!("  export TOKEN_{}={token}", env_name(r));
    }
    outln!();
    outln!("Try:");
    outln!(
        "  curl -s http://{proxy_addr}/customers/c-1001 -H \"Authorization: Bearer $TOKEN_SUPPORT_AGENT\""
    );
    outln!(
        "  curl -s http://{proxy_addr}/customers/c-1001 -H \"Authorization: Bearer $TOKEN_CUSTOMER\""
    );
    outln!("  curl -s http://{shop_addr}/customers/c-1001   # the same record, unprotected");
    if let Some(f) = &audit.file {
        // The binary that is running, by its path: after `cargo run -- demo`
        // there is no `fieldguard` on PATH, and these lines must work as
        // printed.
        let me = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "fieldguard".into());
        outln!("  {me} audit verify {}", f.display());
        outln!(
            "  {me} audit subject c-1001 {}   # who read, changed or deleted c-1001's data",
            f.display()
        );
    }
    outln!();
    let server = crate::proxy::server::Server::new(proxy, None);
    let proxy_task = tokio::spawn(server.clone().serve(listener));
    Ok(
        crate::service::serve_until_shutdown(&server, vec![proxy_task, admin_task], audit_writer)
            .await?,
    )
}

/// `audit.log` in a new directory under the system's temporary folder (one
/// per run, so two demos never write one chain).
fn demo_audit_file() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!(
        "fieldguard-demo-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    match std::fs::create_dir_all(&dir) {
        Ok(()) => Ok(dir.join("audit.log")),
        Err(source) => Err(DemoError::File { path: dir, source }),
    }
}

fn env_name(r: &DemoRole) -> String {
    let mut name = r.role.to_ascii_uppercase();
    if r.role == "support_agent" && r.mfa {
        name.push_str("_MFA");
    }
    name
}
