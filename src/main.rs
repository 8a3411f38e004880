//! The `fieldguard` command line.

use clap::{Parser, Subcommand};
use fieldguard::config;
use fieldguard::demo::run::{self as demo, DemoOptions};
use fieldguard::proxy::{self, Proxy};
use fieldguard::runtime::Runtime;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "fieldguard",
    version,
    about = "Policy-as-code enforcement sidecar for legacy HTTP/JSON services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a configuration file (the main job).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start the demo shop and the proxy with the reference policies.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9000")]
        upstream_listen: SocketAddr,
        /// Config to use instead of the bundled reference deployment.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a signed token the demo config accepts (demo and tests only).
    Token {
        #[arg(long)]
        role: String,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        mfa: bool,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Config whose JWT secret, issuer and audience to use (default: the demo's).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration and its policies as at start-up, without serving.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => runtime().and_then(|rt| rt.block_on(run(config))),
        Command::Demo {
            listen,
            upstream_listen,
            config,
        } => runtime().and_then(|rt| {
            rt.block_on(demo::run(DemoOptions {
                listen,
                upstream_listen,
                config: config.unwrap_or_else(demo::default_config_path),
            }))
        }),
        Command::Token {
            role,
            sub,
            mfa,
            purpose,
            ttl,
            config,
        } => demo::token_for_config(
            &config.unwrap_or_else(demo::default_config_path),
            &role,
            &sub,
            mfa,
            purpose.as_deref(),
            ttl,
        )
        .map(|t| println!("{t}")),
        Command::Validate { config } => config::load(&config)
            .and_then(Runtime::build)
            .map(|rt| {
                println!(
                    "{}: ok ({} policies, version {})",
                    config.display(),
                    rt.engine.bundle.info.len(),
                    rt.engine.bundle.version
                )
            })
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldguard: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

async fn run(config_path: PathBuf) -> Result<(), String> {
    let loaded = config::load(&config_path).map_err(|e| e.to_string())?;
    let listeners = loaded.config.listeners.clone();
    let runtime = Runtime::build(loaded).map_err(|e| e.to_string())?;
    tracing::info!(version = %runtime.engine.bundle.version, "policies loaded");
    let proxy = Arc::new(Proxy::new(runtime).map_err(|e| e.to_string())?);
    let mut tasks = Vec::new();
    for l in listeners {
        let listener = tokio::net::TcpListener::bind(l.address)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", l.address))?;
        eprintln!("fieldguard listening on http://{}", l.address);
        tasks.push(tokio::spawn(proxy::serve(listener, proxy.clone())));
    }
    for t in tasks {
        t.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
