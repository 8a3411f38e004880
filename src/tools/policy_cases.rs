//! `fieldguard test`: policy test files for security engineers. Each case
//! describes a caller, a request and optionally an upstream response, and
//! what must happen; cases run through [`fieldguard_core::pipeline`], the code the
//! proxy runs, against the configuration the file names.
//!
//! ```yaml
//! config: ../../examples/demo/fieldguard.yaml   # relative to this file
//! cases:
//!   - name: support agent sees the phone masked
//!     principal: { roles: [support_agent], sub: agent-7, mfa: false }
//!     # or: claims: { sub: agent-7, roles: [support_agent], amr: [pwd] }
//!     request: { method: GET, path: /customers/c-1001 }
//!     response_file: fixtures/customer-c-1001.json   # or response: {...}
//!     expect:
//!       decision: allow            # request-level Cedar decision
//!       status: 200                # what the proxy would answer
//!       policies: [support-routes] # determining policies (exact set)
//!       fields: { phone: masked, birth_date: removed, name: full }
//! ```

use crate::config;
use crate::identity::Principal;
use crate::runtime::Runtime;
use fieldguard_core::error::ConfigError;
use fieldguard_core::outcome::Refusal;
use fieldguard_core::pipeline::{self, Routed};
use fieldguard_core::redact::report::FilterReport;
use fieldguard_core::routing;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The configuration under test, relative to the test file (required
    /// unless `fieldguard test --config` names one for every file).
    pub config: Option<PathBuf>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub principal: Option<PrincipalSpec>,
    /// Token claims, mapped by the config's JWT claim names.
    pub claims: Option<serde_json::Map<String, Value>>,
    pub request: RequestSpec,
    pub response: Option<Value>,
    pub response_file: Option<PathBuf>,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    #[serde(default = "default_sub")]
    pub sub: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub mfa: bool,
    pub purpose: Option<String>,
}

fn default_sub() -> String {
    "test-user".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow` or `deny` (request level), or `passthrough`.
    pub decision: Option<String>,
    pub status: Option<u16>,
    /// The proxy's error code, e.g. `forbidden_fields`.
    pub error: Option<String>,
    pub policies: Option<Vec<String>>,
    pub refused_fields: Option<Vec<String>>,
    /// Outcome (`full`, `masked`, `removed`) of each field in every record.
    pub fields: Option<BTreeMap<String, String>>,
    /// `visible` or `hidden`: whether every record may be seen at all.
    pub records: Option<String>,
    /// The exact filtered body.
    pub body: Option<Value>,
}

/// What a case produced.
#[derive(Debug, Default)]
struct Actual {
    decision: String,
    status: u16,
    error: Option<String>,
    policies: Vec<String>,
    refused_fields: Vec<String>,
    /// field → outcomes seen across records.
    fields: HashMap<String, BTreeSet<String>>,
    records: BTreeSet<String>,
    body: Option<Value>,
}

/// Result of one case: `Err` holds why it failed.
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    pub outcome: Result<(), CaseError>,
}

/// Why a case failed: it could not be run, or it ran and the outcome
/// differed from what it expects.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("claims refused: {0}")]
    ClaimsRefused(crate::identity::IdentityError),
    #[error("give exactly one of `principal` or `claims`")]
    PrincipalOrClaims,
    #[error("give at most one of `response` or `response_file`")]
    ResponseOrFile,
    #[error("{}: {source}", path.display())]
    ResponseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request or response body that does not serialise.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// What differed (`status: expected 200, got 403`), each said as it
    /// is shown: the expected and actual values are already text.
    #[error("{}", .0.join("; "))]
    Mismatch(Vec<String>),
}

/// Finds test files (`*.yaml`, `*.yml`, `*.json`) under `path`, skipping
/// `fixtures/` folders (response bodies the tests refer to).
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read test directory: {e}")))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "fixtures") {
                out.extend(discover(&p)?);
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub fn load_file(path: &Path) -> Result<TestFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .map_err(|e| ConfigError::new(path, Some(e.line()), e.to_string()))
    } else {
        serde_saphyr::from_str(&text).map_err(|e| {
            let line = e.location().map(|l| l.line() as usize).filter(|&l| l > 0);
            ConfigError::new(
                path,
                line,
                e.to_string().lines().next().unwrap_or("").to_string(),
            )
        })
    }
}

/// Runs every case of every file; runtimes are built once per config.
/// `config`: the configuration every file is run against instead of its
/// own `config:` (a copied test folder tried against a copied deployment).
pub fn run(files: &[PathBuf], config: Option<&Path>) -> Result<Vec<CaseResult>, ConfigError> {
    let mut runtimes: HashMap<PathBuf, Runtime> = HashMap::new();
    let mut results = Vec::new();
    for file in files {
        let tf = load_file(file)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let config_path = match (config, &tf.config) {
            (Some(c), _) => c.to_path_buf(),
            (None, Some(c)) => dir.join(c),
            (None, None) => {
                return Err(ConfigError::file(
                    file,
                    "no `config:` in the file; give one, or run with --config FILE",
                ));
            }
        };
        let key = config_path.canonicalize().unwrap_or(config_path.clone());
        if !runtimes.contains_key(&key) {
            let rt = config::load(&config_path).and_then(Runtime::build)?;
            runtimes.insert(key.clone(), rt);
        }
        let Some(rt) = runtimes.get(&key) else {
            continue;
        };
        for case in &tf.cases {
            results.push(CaseResult {
                file: file.clone(),
                name: case.name.clone(),
                outcome: run_case(rt, dir, case),
            });
        }
    }
    Ok(results)
}

fn principal_of(rt: &Runtime, case: &Case) -> Result<Principal, CaseError> {
    match (&case.principal, &case.claims) {
        (Some(p), None) => Ok(super::principal(
            &p.sub,
            &p.roles,
            p.mfa,
            p.purpose.as_deref(),
        )),
        (None, Some(claims)) => rt
            .identifier
            .principal_from_claims(claims)
            .map_err(CaseError::ClaimsRefused),
        _ => Err(CaseError::PrincipalOrClaims),
    }
}

fn run_case(rt: &Runtime, dir: &Path, case: &Case) -> Result<(), CaseError> {
    let principal = principal_of(rt, case)?;
    let response = match (&case.response, &case.response_file) {
        (Some(v), None) => Some(serde_json::to_vec(v)?),
        (None, Some(f)) => {
            let path = dir.join(f);
            Some(std::fs::read(&path).map_err(|source| CaseError::ResponseFile { path, source })?)
        }
        (None, None) => None,
        _ => return Err(CaseError::ResponseOrFile),
    };
    let actual = evaluate(rt, &principal, &case.request, response.as_deref())?;
    compare(&case.expect, &actual)
}

fn evaluate(
    rt: &Runtime,
    principal: &Principal,
    req: &RequestSpec,
    response: Option<&[u8]>,
) -> Result<Actual, CaseError> {
    let mut a = Actual::default();
    let refuse = |a: &mut Actual, r: Refusal| {
        a.status = r.status().as_u16();
        a.error = Some(r.code().to_string());
    };
    let canonical = match routing::normalize(&req.path) {
        Ok(c) => c,
        Err(_) => {
            a.decision = "deny".into();
            refuse(&mut a, Refusal::BadPath);
            return Ok(a);
        }
    };
    let m = match pipeline::route(&rt.decisions, &req.method, &canonical) {
        Routed::Passthrough => {
            a.decision = "passthrough".into();
            a.status = 200;
            return Ok(a);
        }
        Routed::Unmatched => {
            a.decision = "deny".into();
            refuse(&mut a, Refusal::NoRoute);
            return Ok(a);
        }
        Routed::Route(m) => m,
    };
    let decided = match pipeline::decide(&rt.decisions, &m, principal) {
        Ok(d) => d,
        Err(denied) => {
            a.decision = "deny".into();
            a.policies = denied.decision.map(|d| d.policies).unwrap_or_default();
            refuse(&mut a, denied.refusal);
            return Ok(a);
        }
    };
    a.decision = "allow".into();
    a.policies = decided.decision.policies.clone();
    a.status = 200;
    if let Some(body) = &req.body {
        let bytes = serde_json::to_vec(body)?;
        if let Err((stop, refused)) =
            pipeline::check_request_body(&rt.decisions, &decided, true, &bytes)
        {
            refuse(&mut a, stop.refusal);
            a.refused_fields = refused.into_iter().map(|r| r.field).collect();
            return Ok(a);
        }
    }
    if let Some(resp) = response {
        if !decided.route.inspects_response() {
            a.body = serde_json::from_slice(resp).ok();
            return Ok(a);
        }
        let mut report = FilterReport::traced();
        match pipeline::filter_response_body(&rt.decisions, &decided, resp, &mut report) {
            Ok(out) => a.body = serde_json::from_slice(&out).ok(),
            Err(stop) => refuse(&mut a, stop.refusal),
        }
        for t in report.trace.unwrap_or_default() {
            match t.field {
                None => {
                    a.records.insert(t.outcome.to_string());
                }
                Some(f) => {
                    a.fields.entry(f).or_default().insert(t.outcome.to_string());
                }
            }
        }
    }
    Ok(a)
}

fn compare(e: &Expect, a: &Actual) -> Result<(), CaseError> {
    let mut problems = Vec::new();
    if let Some(d) = &e.decision
        && *d != a.decision
    {
        problems.push(format!("decision: expected {d}, got {}", a.decision));
    }
    if let Some(s) = e.status
        && s != a.status
    {
        problems.push(format!("status: expected {s}, got {}", a.status));
    }
    if let Some(err) = &e.error
        && Some(err) != a.error.as_ref()
    {
        problems.push(format!("error: expected {err}, got {:?}", a.error));
    }
    if let Some(p) = &e.policies {
        let (want, got): (BTreeSet<_>, BTreeSet<_>) =
            (p.iter().collect(), a.policies.iter().collect());
        if want != got {
            problems.push(format!("policies: expected {want:?}, got {got:?}"));
        }
    }
    if let Some(f) = &e.refused_fields
        && *f != a.refused_fields
    {
        problems.push(format!(
            "refused_fields: expected {f:?}, got {:?}",
            a.refused_fields
        ));
    }
    if let Some(r) = &e.records {
        let want = BTreeSet::from([r.clone()]);
        if a.records != want {
            problems.push(format!("records: expected all {r}, got {:?}", a.records));
        }
    }
    if let Some(fields) = &e.fields {
        for (field, outcome) in fields {
            match a.fields.get(field) {
                None => problems.push(format!(
                    "field `{field}`: not in the response (or no readable record)"
                )),
                Some(seen) if seen.len() == 1 && seen.contains(outcome) => {}
                Some(seen) => {
                    problems.push(format!("field `{field}`: expected {outcome}, got {seen:?}"))
                }
            }
        }
    }
    if let Some(b) = &e.body
        && Some(b) != a.body.as_ref()
    {
        problems.push(format!(
            "body: expected {b}, got {}",
            a.body
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "none".into())
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CaseError::Mismatch(problems))
    }
}
