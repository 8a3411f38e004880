//! The `fieldguard` command line.

/// `print!` to stdout through [`cli::print`]: a closed pipe ends the
/// command quietly (`?` returns [`CliError::StdoutClosed`]).
macro_rules! out {
    ($($arg:tt)*) => {
        cli::print(&format!($($arg)*))?
    };
}

/// `println!` through [`cli::println`].
macro_rules! outln {
    ($($arg:tt)*) => {
        cli::println(&format!($($arg)*))?
    };
}

use clap::{Parser, Subcommand};
use fieldguard::config;
use fieldguard::demo::run::{self as demo, DemoOptions};
use fieldguard::logging::{self, LogFormat};
use fieldguard::proxy::Proxy;
use fieldguard::proxy::server::Server;
use fieldguard::runtime::Runtime;
use fieldguard::service;
use fieldguard::tls::ServerTls;
use fieldguard::tools;
use fieldguard::tools::cli::{self, CliError};
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
    /// Format of the process log on stderr: `text` (coloured only on a
    /// terminal) or `json` (one object per line, for log pipelines).
    /// Default: FIELDGUARD_LOG_FORMAT, else text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// The audit files a command reads, and how to verify them.
#[derive(clap::Args)]
struct AuditFiles {
    /// Audit log files and directories, of one process or of many, in any
    /// order: lines are sorted into their chains by chain id, and each
    /// chain's files ordered by the records they hold. Files of formats
    /// 1-3 (no chain id) form one chain, read in the order given (a
    /// directory's in rotation order: `audit.log.2 audit.log.1 audit.log`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The key of a log written with `audit.hmac_key_file`.
    #[arg(long)]
    hmac_key_file: Option<PathBuf>,
    /// Chains may start after records that are not given (older files
    /// were moved away on purpose).
    #[arg(long)]
    partial: bool,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check audit log files, of one process or a fleet's, chain by chain:
    /// each chain (one writer run) is reported sealed (stopped cleanly),
    /// open (no seal: still running, or killed) or broken (the first bad
    /// record named). Fails when any chain is broken.
    Verify {
        #[command(flatten)]
        input: AuditFiles,
        /// Fail also when a chain is open (not sealed): every writer must
        /// have stopped cleanly.
        #[arg(long)]
        require_sealed: bool,
        #[arg(long, value_enum, default_value_t = SubjectFormat::Text)]
        format: SubjectFormat,
    },
    /// Who read, changed or deleted one customer's data, when, through
    /// which route and with which outcome, in every chain of FILES (each
    /// verified first: a broken chain is an error).
    Subject {
        /// The customer's id (`c-1001`).
        id: String,
        #[command(flatten)]
        input: AuditFiles,
        #[arg(long, value_enum, default_value_t = SubjectFormat::Text)]
        format: SubjectFormat,
    },
    /// Print every record of audit log files in full, one JSON object per
    /// line, chain by chain: each request record with the definition it
    /// refers to merged in (its chain's tag in `c`; each chain's genesis
    /// record names it), for tools that read records one by one. Every
    /// chain is verified first; a broken chain is an error.
    Expand {
        #[command(flatten)]
        input: AuditFiles,
        #[command(flatten)]
        filter: ExpandFilter,
    },
}

/// Which records `audit expand` prints (each option may be repeated: any
/// of its values; options together: all of them). None: every record.
#[derive(clap::Args)]
struct ExpandFilter {
    /// Records that took this bulk-read budget over its limit (its id in
    /// the config's `budgets:`).
    #[arg(long = "budget", value_name = "ID")]
    budgets: Vec<String>,
    /// Records of this principal (`principal.id`: a token's `sub`).
    #[arg(long = "principal", value_name = "ID")]
    principals: Vec<String>,
    /// Records of this route: its template, alone or after the method
    /// (`/customers/{id}`, `GET /customers/{id}`).
    #[arg(long = "route", value_name = "ROUTE")]
    routes: Vec<String>,
    /// Records with this request-level decision: allow, deny or
    /// passthrough (allowed and denied are read as allow and deny).
    #[arg(long = "decision", value_name = "DECISION")]
    decisions: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SubjectFormat {
    /// One line per request and a summary.
    Text,
    Json,
}

#[derive(Subcommand)]
enum OnboardCommand {
    /// Draft a configuration, Cedar schema and deny-all baseline policy
    /// file from an OpenAPI 3.0/3.1 document (YAML or JSON), for review.
    Openapi {
        spec: PathBuf,
        /// Folder to write the draft to (fieldguard.yaml, policies/).
        #[arg(long)]
        out: PathBuf,
        /// A YAML file with the deployment's sections (listeners, upstream,
        /// identity, redaction, …) to copy into the draft as written.
        #[arg(long)]
        deployment: Option<PathBuf>,
        /// Replace files already in the output folder (never the hash key).
        #[arg(long)]
        force: bool,
        /// Draft for step 3 of onboarding: global shadow mode (decide and
        /// audit, enforce nothing) and `unknown_fields: pass` on every
        /// route, so the API can run behind it and be observed first.
        #[arg(long)]
        shadow: bool,
    },
    /// Print the catalogue entries still missing, from what observing
    /// routes saw in traffic (the admin listener's /observed, or a saved
    /// copy of it).
    Observed {
        /// The admin listener (`http://127.0.0.1:9090`).
        #[arg(long, conflicts_with = "state", required_unless_present = "state")]
        admin: Option<String>,
        /// A saved /observed response (`curl …/observed > observed.json`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// The configuration to compare with (entries it has are skipped;
        /// `--format patch` edits it).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ObservedFormat::Yaml)]
        format: ObservedFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ObservedFormat {
    /// Catalogue entries to paste, with why each was proposed.
    Yaml,
    /// A unified diff adding them to `--config` (`git apply`, `patch -p1`).
    Patch,
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
        /// Audit log file (default: audit.log in a new temporary directory).
        #[arg(long)]
        audit_file: Option<PathBuf>,
        /// Admin listener: /metrics, /healthz, /readyz, /policies.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Policy folder to use instead of the reference policies (hot
        /// reloaded); its `schema.cedarschema`, if any, replaces the schema.
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Serve only the demo shop (the unprotected upstream), e.g. as a
    /// standalone upstream for benchmarks.
    Shop {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Customers to generate (c-1001 onwards).
        #[arg(long, default_value_t = fieldguard::demo::data::DEMO_CUSTOMERS)]
        customers: usize,
        /// Also send fields the reference catalogue lacks (`alt_email`,
        /// `emergency_contact`), as a shop upgraded behind fieldguard's
        /// back would: for trying `fieldguard onboard observed`.
        #[arg(long)]
        extra_fields: bool,
    },
    /// Audit-trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
        /// A further string claim, `NAME=VALUE` (repeat for several), e.g.
        /// `--claim carrier="SF Express"` for a partner.
        #[arg(long = "claim", value_parser = parse_claim)]
        claims: Vec<(String, String)>,
        /// Config whose JWT secret, issuer and audience to use (default: the demo's).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration and its policies as at start-up, without
    /// serving; warnings say what to change.
    Validate {
        #[arg(long)]
        config: PathBuf,
        /// Fail (exit non-zero) when there are warnings, e.g. in CI.
        #[arg(long)]
        strict: bool,
    },
    /// Run policy test files (YAML or JSON): one line per case and a summary.
    Test {
        /// A test file or a directory of them.
        #[arg(default_value = "policies/tests")]
        path: PathBuf,
        /// Run every file against this configuration instead of the one its
        /// `config:` names (e.g. a copy of the reference deployment).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Explain the decision for a request, and field by field for a response.
    Explain(ExplainArgs),
    /// Put an API under fieldguard: draft from its OpenAPI document, and
    /// complete the catalogue from observed traffic.
    Onboard {
        #[command(subcommand)]
        command: OnboardCommand,
    },
    /// Sign the policy set a configuration names (policy files, schema,
    /// and the sections routes, entities, redaction, budgets, unmatched,
    /// shadow) with an Ed25519 key: a proxy with `policies.verify_keys`
    /// loads only sets signed by one of its keys.
    Sign {
        #[arg(long, required_unless_present = "generate_key")]
        config: Option<PathBuf>,
        /// The private key (PKCS#8 PEM).
        #[arg(long, required_unless_present = "generate_key")]
        key: Option<PathBuf>,
        /// Where to write the signature (default: `policies.signature_file`,
        /// else `fieldguard.sig` in the policy directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Make a new key pair instead: the private key at PATH (mode
        /// 0600), the public key at PATH.pub.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["config", "key", "out"])]
        generate_key: Option<PathBuf>,
    },
    /// What access a change adds or removes: the current policy set against
    /// BASE (a folder with the same layout, or a git revision of the
    /// repository the config is in), per role, route, record and field.
    /// Exit codes: 0 done (no `--fail-on` condition matched), 3 a
    /// `--fail-on` condition matched, 1 the sides could not be compared.
    Diff {
        #[arg(long)]
        config: PathBuf,
        /// A folder (the config is read at BASE/CONFIG) or a git revision
        /// (`main`, `HEAD~1`, a commit), read with `git archive`.
        #[arg(long)]
        base: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Fail (exit 3) when a change matches: `widen`,
        /// `widen:level>=N`, `widen:role=ROLE`, `route-passthrough`, `any`
        /// (repeat or separate with commas).
        #[arg(long = "fail-on", value_delimiter = ',')]
        fail_on: Vec<tools::diff::gate::Condition>,
    },
    /// The least-privilege report: what each role sees, per field and route.
    Matrix {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = MatrixFormat::Md)]
        format: MatrixFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DiffFormat {
    /// One line per change, after a one-line summary.
    Text,
    /// A pull-request comment: summary, then one section per role.
    Md,
    Json,
}

/// `fieldguard diff`'s exit code when a `--fail-on` condition matched.
const DIFF_GATE_TRIPPED: u8 = 3;

#[derive(Clone, Copy, clap::ValueEnum)]
enum MatrixFormat {
    Md,
    Csv,
    Json,
}

/// mimalloc: the proxy allocates many small, short-lived buffers per
/// request; glibc's malloc showed as ~8% of a request's CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets up logging, then runs the command (`diff` has exit codes of its
/// own).
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(code) = set_up(cli.log_format) {
        return code;
    }
    if let Command::Diff {
        config,
        base,
        format,
        fail_on,
    } = &cli.command
    {
        return diff(config, base, *format, fail_on);
    }
    exit_code(dispatch(cli.command))
}

/// Runs the command: one arm per command, each naming the function that
/// does it (a dispatch table in all but syntax, which is why it is longer
/// than the rest).
fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run { config } => runtime()
            .map_err(CliError::from)
            .and_then(|rt| rt.block_on(run(config))),
        Command::Demo {
            listen,
            upstream_listen,
            config,
            audit_file,
            admin_listen,
            policies,
        } => runtime().map_err(CliError::from).and_then(|rt| {
            rt.block_on(demo::run(DemoOptions {
                listen,
                upstream_listen,
                config: config.unwrap_or_else(demo::default_config_path),
                audit_file,
                admin_listen,
                policies,
            }))
            .map_err(CliError::from)
        }),
        Command::Shop {
            listen,
            customers,
            extra_fields,
        } => runtime()
            .map_err(CliError::from)
            .and_then(|rt| rt.block_on(serve_shop(listen, customers, extra_fields))),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    input,
                    require_sealed,
                    format,
                },
        } => audit_verify(&input, require_sealed, format),
        Command::Audit {
            command: AuditCommand::Subject { id, input, format },
        } => audit_subject(&id, &input, format),
        Command::Audit {
            command: AuditCommand::Expand { input, filter },
        } => audit_expand(
            &input,
            fieldguard::tools::audit::filter::RecordFilter {
                budgets: filter.budgets,
                principals: filter.principals,
                routes: filter.routes,
                decisions: filter.decisions,
            },
        ),
        Command::Token {
            role,
            sub,
            mfa,
            purpose,
            ttl,
            claims,
            config,
        } => demo::token_for_config(
            &config.unwrap_or_else(demo::default_config_path),
            &role,
            &sub,
            mfa,
            purpose.as_deref(),
            &claims,
            ttl,
        )
        .map_err(CliError::from)
        .and_then(|t| cli::println(&t)),
        Command::Test { path, config } => run_policy_tests(&path, config.as_deref()),
        Command::Onboard {
            command:
                OnboardCommand::Openapi {
                    spec,
                    out,
                    deployment,
                    force,
                    shadow,
                },
        } => onboard_openapi(
            &spec,
            &out,
            fieldguard::onboard::draft::DraftOptions { deployment, shadow },
            force,
        ),
        Command::Onboard {
            command:
                OnboardCommand::Observed {
                    admin,
                    state,
                    config,
                    format,
                },
        } => onboard_observed(
            admin.as_deref(),
            state.as_deref(),
            config.as_deref(),
            format,
        ),
        Command::Explain(args) => explain_request(args),
        Command::Sign {
            generate_key: Some(path),
            ..
        } => generate_signing_key(&path),
        Command::Sign {
            config, key, out, ..
        } => sign_policy_set(config, key, out),
        Command::Diff { .. } => Ok(()),
        Command::Matrix { config, format } => print_matrix(&config, format),
        Command::Validate { config, strict } => validate(&config, strict),
    }
}

/// The process's exit code for a command's result (a closed stdout is no
/// failure: the reader had what it wanted).
fn exit_code(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(CliError::Config(e)) => {
            cli::fatal_config(&e);
            ExitCode::FAILURE
        }
        Err(CliError::Message(e)) => {
            logging::fatal(&e);
            ExitCode::FAILURE
        }
    }
}

/// Logging (`--log-format`, else the environment) and the repeated-value
/// interval (environment); `Err`: the exit code of a bad setting.
fn set_up(log_format: Option<LogFormat>) -> Result<(), ExitCode> {
    let format = match log_format {
        Some(f) => f,
        None => match LogFormat::from_env_value(std::env::var(logging::FORMAT_ENV).ok().as_deref())
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("fieldguard: {e}");
                return Err(ExitCode::FAILURE);
            }
        },
    };
    logging::init(format);
    match fieldguard_core::repeated::interval_from_env(
        std::env::var(fieldguard_core::repeated::INTERVAL_ENV)
            .ok()
            .as_deref(),
    ) {
        Ok(interval) => fieldguard_core::repeated::set_interval(interval),
        Err(e) => {
            logging::fatal(&e);
            return Err(ExitCode::FAILURE);
        }
    }
    Ok(())
}

/// `fieldguard onboard observed`: the entries traffic shows missing, from
/// the admin listener or a saved state file, as YAML or a patch.
fn onboard_observed(
    admin: Option<&str>,
    state: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    format: ObservedFormat,
) -> Result<(), CliError> {
    let snapshot = match (&admin, &state) {
        (Some(url), _) => runtime()?.block_on(from_traffic::fetch(url))?,
        (None, Some(file)) => from_traffic::read_state(file)?,
        (None, None) => return Err("give --admin URL or --state FILE".into()),
    };
    let report = from_traffic::missing(&snapshot, config)?;
    match format {
        ObservedFormat::Yaml => out!("{}", report.to_yaml()),
        ObservedFormat::Patch => {
            let config = config.ok_or("--format patch needs --config (the file to patch)")?;
            out!("{}", report.to_patch(config)?)
        }
    }
    Ok(())
}

/// `fieldguard explain`'s arguments.
#[derive(clap::Args)]
struct ExplainArgs {
    #[arg(long)]
    config: PathBuf,
    /// Role of the caller (repeat for several).
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    #[arg(long, default_value = "explain-user")]
    sub: String,
    #[arg(long)]
    mfa: bool,
    #[arg(long)]
    purpose: Option<String>,
    /// A principal attribute, `NAME=VALUE` (as a token claim listed in
    /// `attribute_claims` gives it), e.g. `--attr carrier="SF Express"`.
    #[arg(long = "attr", value_parser = parse_claim)]
    attrs: Vec<(String, String)>,
    /// An upstream response body (JSON file) to filter.
    #[arg(long)]
    response: Option<PathBuf>,
    /// A request body (JSON file) to check.
    #[arg(long)]
    body: Option<PathBuf>,
    method: String,
    path: String,
}

/// `fieldguard explain`: one request's decisions, each with its policies.
fn explain_request(args: ExplainArgs) -> Result<(), CliError> {
    let ExplainArgs {
        config,
        roles,
        sub,
        mfa,
        purpose,
        attrs,
        response,
        body,
        method,
        path,
    } = args;
    let rt = config::load(&config).and_then(Runtime::build)?;
    let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>, String> {
        p.as_ref()
            .map(|f| std::fs::read(f).map_err(|e| format!("{}: {e}", f.display())))
            .transpose()
    };
    let mut principal = tools::principal(&sub, &roles, mfa, purpose.as_deref());
    principal.attributes = attrs
        .into_iter()
        .map(|(k, v)| (k, fieldguard::identity::AttrValue::String(v)))
        .collect();
    let text = tools::explain::explain(
        &rt,
        &principal,
        &method,
        &path,
        read(&body)?.as_deref(),
        read(&response)?.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    out!("{text}");
    Ok(())
}

/// `fieldguard sign --generate-key PATH`.
fn generate_signing_key(path: &std::path::Path) -> Result<(), CliError> {
    let id = fieldguard::policy_set::generate_key_files(path)?;
    outln!(
        "wrote {} (private: keep it in CI's secrets) and {}.pub (public: policies.verify_keys); key id {id}",
        path.display(),
        path.display()
    );
    Ok(())
}

/// `fieldguard sign --config CFG --key KEY [--out FILE]`.
fn sign_policy_set(
    config: Option<PathBuf>,
    key: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<(), CliError> {
    let (Some(config), Some(key)) = (config, key) else {
        return Err("give --config and --key (or --generate-key PATH)".into());
    };
    let s = fieldguard::tools::sign::sign_config(&config, &key, out.as_deref())?;
    outln!(
        "signed policy set version {} with key {}: {}",
        s.version,
        s.key_id,
        s.file.display()
    );
    Ok(())
}

/// `fieldguard matrix`: what each role sees, as Markdown, CSV or JSON.
fn print_matrix(config: &std::path::Path, format: MatrixFormat) -> Result<(), CliError> {
    let rt = config::load(config).and_then(Runtime::build)?;
    let m = tools::matrix::compute(&rt);
    match format {
        MatrixFormat::Md => out!("{}", m.to_markdown()),
        MatrixFormat::Csv => out!("{}", m.to_csv()),
        MatrixFormat::Json => outln!("{}", m.to_json()),
    }
    Ok(())
}

/// `fieldguard validate [--strict]`: everything `run` loads, plus the
/// warnings; under `--strict` a warning fails.
fn validate(config: &std::path::Path, strict: bool) -> Result<(), CliError> {
    config::load(config)
        .and_then(Runtime::build)
        .and_then(|rt| {
            // What `run` loads besides the runtime: audit settings
            // (keys, paths) and TLS certificates.
            fieldguard::audit::AuditSettings::from_config(
                &rt.config.config.audit,
                rt.config.origin(),
            )?;
            if let Some(t) = &rt.config.config.tls {
                ServerTls::load(t, rt.config.origin())?;
            }
            Ok(rt)
        })
        .map_err(CliError::from)
        .and_then(|rt| {
            let warnings = tools::lint::warnings(&rt);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            // Under --strict a warning fails: then no "ok" is printed
            // (what it prints and its exit code say the same).
            if strict && !warnings.is_empty() {
                return Err(format!(
                    "{}: not ok: {} warning(s) (--strict)",
                    config.display(),
                    warnings.len()
                )
                .into());
            }
            // With verify keys, which key signed the set (CI logs show
            // what was checked).
            let signed = rt
                .signed_by
                .as_deref()
                .map(|k| format!(", signed by key {k}"))
                .unwrap_or_default();
            outln!(
                "{}: ok ({} policies, version {}{signed})",
                config.display(),
                rt.decisions.engine.bundle.info.len(),
                rt.decisions.engine.bundle.version
            );
            Ok(())
        })
}

/// `fieldguard diff`: prints the report; exit 3 when `--fail-on` matches.
fn diff(
    config: &std::path::Path,
    base: &str,
    format: DiffFormat,
    fail_on: &[tools::diff::gate::Condition],
) -> ExitCode {
    use tools::diff::{base as sides, compare, gate, render};
    let report = match sides::load(config, base) {
        Ok(s) => compare(&s.base, &s.current),
        Err(e) => {
            logging::fatal(&e);
            return ExitCode::FAILURE;
        }
    };
    let text = match format {
        DiffFormat::Text => render::text(&report),
        DiffFormat::Md => render::markdown(&report),
        DiffFormat::Json => render::json(&report) + "\n",
    };
    match cli::print(&text) {
        Ok(()) | Err(CliError::StdoutClosed) => {}
        Err(e) => {
            eprintln!("fieldguard: {e:?}");
            return ExitCode::FAILURE;
        }
    }
    let tripped = gate::tripped(fail_on, &report.changes);
    if tripped.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "fieldguard diff: {} change(s) match --fail-on",
            tripped.len()
        );
        ExitCode::from(DIFF_GATE_TRIPPED)
    }
}

/// `NAME=VALUE` of `fieldguard token --claim`.
fn parse_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{s}`: expected NAME=VALUE")),
    }
}

use fieldguard::onboard::from_traffic;

/// `fieldguard onboard openapi`: writes the draft and prints what to do next.
fn onboard_openapi(
    spec: &std::path::Path,
    out: &std::path::Path,
    opts: fieldguard::onboard::draft::DraftOptions,
    force: bool,
) -> Result<(), CliError> {
    use fieldguard::onboard::secret::KeyFile;
    let draft = fieldguard::onboard::draft::draft_openapi(spec, &opts)?;
    if !force {
        for (rel, _) in &draft.files {
            let path = out.join(rel);
            if path.exists() {
                return Err(format!(
                    "{} exists; use --force to replace the draft (a reviewed config is not overwritten by default)",
                    path.display()
                )
                .into());
            }
        }
    }
    let key = draft.write(out)?;
    for (rel, _) in &draft.files {
        outln!("wrote {}", out.join(rel).display());
    }
    if let Some(rel) = &draft.hash_key {
        let path = out.join(rel).display().to_string();
        match key {
            Some(KeyFile::Written) => {
                outln!("wrote {path} (a new random keyed-hash secret, mode 0600)")
            }
            _ => outln!("kept {path} (an existing key is never replaced)"),
        }
    }
    for n in &draft.notes {
        outln!("note: {n}");
    }
    let config = out.join("fieldguard.yaml").display().to_string();
    outln!(
        "next: review every `proposed` line of {config}, then run: {} validate --config {}   (docs/onboarding.md)",
        // The running binary by its path: the line works as printed even
        // where no `fieldguard` is on PATH (after `cargo run`).
        shell_word(
            &std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "fieldguard".into())
        ),
        shell_word(&config),
    );
    Ok(())
}

/// `word` as a POSIX shell reads it back: as is when it holds only
/// characters no shell treats specially, else in single quotes, so a
/// printed command can be pasted whatever the paths hold.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Runs policy tests; the summary line is `N passed, N failed`.
fn run_policy_tests(
    path: &std::path::Path,
    config: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let files = tools::policy_cases::discover(path).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err(format!("{}: no test files found", path.display()).into());
    }
    let results = tools::policy_cases::run(&files, config).map_err(|e| e.to_string())?;
    let mut failed = 0;
    for r in &results {
        match &r.outcome {
            Ok(()) => outln!("ok    {}: {}", r.file.display(), r.name),
            Err(why) => {
                failed += 1;
                outln!("FAIL  {}: {}\n      {why}", r.file.display(), r.name);
            }
        }
    }
    outln!("{} passed, {} failed", results.len() - failed, failed);
    if failed > 0 {
        Err(format!("{failed} policy test(s) failed").into())
    } else {
        Ok(())
    }
}

/// Environment variable that fixes the number of async worker threads, so
/// an operator can size fieldguard like `worker_processes` in nginx or
/// `--concurrency` in Envoy (default: one per CPU core).
const WORKER_THREADS_ENV: &str = "FIELDGUARD_WORKER_THREADS";

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads(std::env::var(WORKER_THREADS_ENV).ok().as_deref())? {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Parses `FIELDGUARD_WORKER_THREADS`; unset or empty means the default. A
/// value that is not a positive number stops start-up rather than being
/// silently replaced.
fn worker_threads(value: Option<&str>) -> Result<Option<usize>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{WORKER_THREADS_ENV}={v:?}: expected a number of threads from 1 to 1024"
            )),
        },
    }
}

/// `fieldguard shop`: the demo shop alone, until the process is stopped.
async fn serve_shop(
    listen: SocketAddr,
    customers: usize,
    extra_fields: bool,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    logging::notice(format_args!(
        "demo shop ({customers} customers) listening on http://{addr}"
    ));
    let shop = if extra_fields {
        fieldguard::demo::shop::Shop::with_extra_fields(customers)
    } else {
        fieldguard::demo::shop::Shop::new(customers)
    };
    fieldguard::demo::shop::serve(listener, shop)
        .await
        .map_err(|e| format!("demo shop stopped: {e}").into())
}

/// Prints what the (verified) audit files say about one customer.
fn audit_subject(id: &str, input: &AuditFiles, format: SubjectFormat) -> Result<(), CliError> {
    let (files, opts) = (&input.files, verify_options(input)?);
    let report = fieldguard::tools::audit::subject::subject_report(id, files, &opts)?;
    match format {
        SubjectFormat::Text => out!("{}", report.to_text()),
        SubjectFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

/// How the audit commands verify what they read: with the HMAC key if the
/// log is keyed; `partial` accepts files that start mid-chain.
fn verify_options(input: &AuditFiles) -> Result<fieldguard::tools::audit::VerifyOptions, CliError> {
    let hmac_key = input
        .hmac_key_file
        .as_deref()
        .map(fieldguard::audit::config::read_hmac_key)
        .transpose()?;
    Ok(fieldguard::tools::audit::VerifyOptions {
        hmac_key,
        partial: input.partial,
    })
}

/// Prints the records of (verified) audit files in full, one per line;
/// those `filter` picks.
fn audit_expand(
    input: &AuditFiles,
    mut filter: fieldguard::tools::audit::filter::RecordFilter,
) -> Result<(), CliError> {
    use std::io::Write;
    filter.check()?;
    let (files, opts) = (&input.files, verify_options(input)?);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed: Option<std::io::Error> = None;
    fieldguard::tools::audit::read::each_record(files, &opts, |_, rec| {
        if !filter.matches(&rec) {
            return;
        }
        let sorted = fieldguard::audit::chain::sorted(&rec);
        if failed.is_none()
            && let Err(e) = serde_json::to_writer(&mut out, &sorted)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        {
            failed = Some(e);
        }
    })?;
    let written = match failed {
        Some(e) => Err(e),
        None => out.flush(),
    };
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
        _ => CliError::Message(format!("cannot write the records: {e}")),
    })
}

/// Verifies audit log files chain by chain; prints each chain's state,
/// and fails naming the first bad record of a broken chain (or, with
/// `require_sealed`, the chains left open).
fn audit_verify(
    input: &AuditFiles,
    require_sealed: bool,
    format: SubjectFormat,
) -> Result<(), CliError> {
    use fieldguard::tools::audit::verify::ChainStatus;
    let (files, opts) = (&input.files, verify_options(input)?);
    let fleet = fieldguard::tools::audit::verify::verify_set(files, &opts);
    match format {
        SubjectFormat::Text => out!("{}", fleet.to_text()),
        SubjectFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&fleet).map_err(|e| e.to_string())?
        ),
    }
    if let Some(message) = fleet.failure_message() {
        return Err(message.into());
    }
    if fleet.chains.is_empty() && fleet.files.is_empty() {
        return Err("no audit files found".into());
    }
    if require_sealed {
        let open: Vec<String> = fleet
            .chains
            .iter()
            .filter(|c| c.status != ChainStatus::Sealed)
            .map(|c| c.name())
            .collect();
        if !open.is_empty() {
            return Err(format!(
                "{} chain{} not sealed (--require-sealed): {}",
                open.len(),
                if open.len() == 1 { " is" } else { "s are" },
                open.join(", ")
            )
            .into());
        }
    }
    Ok(())
}

async fn run(config_path: PathBuf) -> Result<(), CliError> {
    let loaded = config::load(&config_path)?;
    let listeners = loaded.config.listeners.clone();
    let audit_settings =
        fieldguard::audit::AuditSettings::from_config(&loaded.config.audit, loaded.origin())?;
    let admin_address = loaded.config.admin.address;
    let runtime = Runtime::build(loaded)?;
    tracing::info!(
        version = %runtime.decisions.engine.bundle.version,
        signed_by = runtime.signed_by.as_deref().unwrap_or("-"),
        "policies loaded"
    );
    let proxy = Proxy::new(runtime).map_err(|e| e.to_string())?;
    proxy.connect_budget_store().await?;
    let (proxy, audit_writer) =
        service::attach_audit(proxy, &audit_settings).map_err(|e| e.to_string())?;
    let proxy = Arc::new(proxy);
    let _watcher = service::start_reloading(&proxy, config_path.clone(), Box::new(|_| {}))?;
    let (admin, admin_task) = service::spawn_admin(admin_address, proxy.clone()).await?;
    logging::notice(format_args!(
        "fieldguard admin on http://{admin} (/metrics /healthz /readyz /policies)"
    ));
    let tls = match &proxy.runtime().config.config.tls {
        Some(t) => {
            Some(ServerTls::load(t, proxy.runtime().config.origin()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server::new(proxy.clone(), tls);
    let mut tasks = vec![admin_task];
    for l in listeners {
        let listener = tokio::net::TcpListener::bind(l.address)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", l.address))?;
        // The bound address: with port 0 in the config, the one the
        // kernel picked.
        let bound = listener.local_addr().unwrap_or(l.address);
        logging::notice(format_args!("fieldguard listening on {scheme}://{bound}"));
        tasks.push(tokio::spawn(server.clone().serve(listener)));
    }
    Ok(service::serve_until_shutdown(&server, tasks, audit_writer).await?)
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn worker_threads_setting() {
        assert_eq!(worker_threads(None), Ok(None));
        assert_eq!(worker_threads(Some(" ")), Ok(None));
        assert_eq!(worker_threads(Some("1")), Ok(Some(1)));
        assert_eq!(worker_threads(Some(" 4 ")), Ok(Some(4)));
        for bad in ["0", "-1", "two", "1.5", "100000"] {
            assert!(worker_threads(Some(bad)).is_err(), "{bad} accepted");
        }
    }
}
