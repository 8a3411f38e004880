//! Loads `*.cedar` files and the schema, strictly validated, with `@id`
//! annotations as policy ids. Every failure names file, line and reason.

use crate::error::{ConfigError, Location, line_of_offset};
use cedar_policy::{Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where a policy came from, for explanations and audit.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    pub id: String,
    pub file: PathBuf,
    pub line: usize,
    /// The `//` comment lines right above the policy (its rationale and the
    /// `CDM-…` clause it implements).
    pub comment: String,
    pub effect: &'static str,
}

/// A complete, validated policy set: only such a bundle is ever enforced.
#[derive(Debug)]
pub struct PolicyBundle {
    pub schema: Schema,
    pub policies: PolicySet,
    pub info: BTreeMap<String, PolicyInfo>,
    /// SHA-256 (hex, 16 chars) over the schema and every policy file. The
    /// proxy replaces it with the version of the whole signed set (policy
    /// files, schema and the configuration sections that decide access),
    /// so that audit records and metrics tell catalogue changes apart too.
    pub version: String,
    pub schema_hash: String,
    pub files: Vec<PathBuf>,
    /// The schema's text and each policy file's (name, text), exactly as
    /// read and parsed: a signature is checked over these bytes, never over
    /// a second read that could differ from what is enforced.
    pub sources: Sources,
    /// Cedar's validation warnings (an impossible policy, a confusable
    /// string), `file:line: policy `@id`: warning`: logged at load, and
    /// warnings of `validate` (so `--strict` fails on them).
    pub warnings: Vec<String>,
}

/// The texts a bundle was built from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub schema: String,
    /// (file name, text), in file-name order.
    pub policies: Vec<(String, String)>,
}

/// Reads, parses and validates the schema and the policy directory.
pub fn load_bundle(dir: &Path, schema_path: &Path) -> Result<PolicyBundle, ConfigError> {
    load_bundle_except(dir, schema_path, &[])
}

/// As [`load_bundle`], leaving out the policy files named in `except`
/// (file names in `dir`; each must exist).
pub fn load_bundle_except(
    dir: &Path,
    schema_path: &Path,
    except: &[String],
) -> Result<PolicyBundle, ConfigError> {
    let (schema_text, schema) = read_schema(schema_path)?;
    let files = selected_files(dir, except)?;

    let mut version = Sha256::new();
    version.update(b"schema\0");
    version.update(schema_text.as_bytes());
    let schema_hash = hex::encode(&Sha256::digest(schema_text.as_bytes())[..8]);

    let mut sources = Sources {
        schema: schema_text.clone(),
        policies: Vec::with_capacity(files.len()),
    };
    let mut policies = PolicySet::new();
    let mut info: BTreeMap<String, PolicyInfo> = BTreeMap::new();
    let mut warnings: Vec<String> = Vec::new();
    let validator = Validator::new(schema.clone());
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::file(file, format!("cannot read policy file: {e}")))?;
        version.update(
            file.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or(b""),
        );
        version.update(b"\0");
        version.update(text.as_bytes());
        sources.policies.push((
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text.clone(),
        ));
        let parsed = validate_file(&validator, file, &text, &mut warnings)?;
        add_policies(file, &text, &parsed, &mut policies, &mut info)?;
    }
    Ok(PolicyBundle {
        schema,
        policies,
        info,
        version: hex::encode(&version.finalize()[..8]),
        schema_hash,
        files,
        sources,
        warnings,
    })
}

/// The schema's text, and the schema parsed from it (its warnings logged).
fn read_schema(schema_path: &Path) -> Result<(String, Schema), ConfigError> {
    let schema_text = std::fs::read_to_string(schema_path)
        .map_err(|e| ConfigError::file(schema_path, format!("cannot read schema: {e}")))?;
    match Schema::from_cedarschema_str(&schema_text) {
        Ok((schema, warnings)) => {
            for w in warnings {
                tracing::warn!(file = %schema_path.display(), "schema warning: {w}");
            }
            Ok((schema_text, schema))
        }
        Err(e) => Err(diag_error(schema_path, &schema_text, &e)),
    }
}

/// The policy files of `dir` but those named in `except` (each of which
/// must be there); at least one.
fn selected_files(dir: &Path, except: &[String]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = policy_files(dir)?;
    for name in except {
        if !files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name.as_str()))
        {
            return Err(ConfigError::file(
                dir,
                format!("shadow policy file `{name}` is not in the policy directory"),
            ));
        }
    }
    files.retain(|f| {
        !except
            .iter()
            .any(|n| f.file_name().is_some_and(|x| x == n.as_str()))
    });
    if files.is_empty() {
        return Err(ConfigError::file(dir, "no *.cedar policy files found"));
    }
    Ok(files)
}

/// Parses one policy file and validates it strictly against the schema:
/// the first error fails the load, warnings are logged and added to
/// `warnings`.
fn validate_file(
    validator: &Validator,
    file: &Path,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<PolicySet, ConfigError> {
    let parsed = PolicySet::from_str(text).map_err(|e| diag_error(file, text, &e))?;
    if parsed.templates().next().is_some() {
        return Err(ConfigError::file(
            file,
            "policy templates are not supported; write static policies",
        ));
    }
    let result = validator.validate(&parsed, ValidationMode::Strict);
    if let Some(e) = result.validation_errors().next() {
        let mut err = diag_error(file, text, e);
        // Cedar names the parser's ids (`policy1`); operators know the @id.
        let internal = e.policy_id().to_string();
        if let Some(id) = parsed
            .policy(e.policy_id())
            .and_then(|p| p.annotation("id"))
        {
            err.message = err
                .message
                .replace(&format!("`{internal}`"), &format!("`{id}`"));
        }
        return Err(err);
    }
    for w in result.validation_warnings() {
        let line = first_label_line(w, text);
        // Cedar names the parser's ids (`policy0`); operators know the
        // @id.
        let internal = w.policy_id().to_string();
        let mut text_of = w.to_string();
        if let Some(id) = parsed
            .policy(w.policy_id())
            .and_then(|p| p.annotation("id"))
        {
            text_of = text_of.replace(&format!("`{internal}`"), &format!("`{id}`"));
            if !text_of.contains(&format!("`{id}`")) {
                text_of = format!("policy `{id}`: {text_of}");
            }
        }
        tracing::warn!(file = %file.display(), line, "policy warning: {text_of}");
        let advice = "Cedar's validator flags it: fix the policy, or delete it";
        warnings.push(match line {
            Some(l) => format!("{}:{l}: {text_of}; {advice}", file.display()),
            None => format!("{}: {text_of}; {advice}", file.display()),
        });
    }
    Ok(parsed)
}

/// Adds a file's policies under their `@id` (required, unique across
/// files), with where each came from.
fn add_policies(
    file: &Path,
    text: &str,
    parsed: &PolicySet,
    policies: &mut PolicySet,
    info: &mut BTreeMap<String, PolicyInfo>,
) -> Result<(), ConfigError> {
    let mut seen_heads: std::collections::HashMap<String, usize> = Default::default();
    for p in parsed.policies() {
        let line = policy_line(p, text, &mut seen_heads);
        let Some(id) = p.annotation("id") else {
            return Err(ConfigError::new(
                file,
                Some(line),
                "policy has no @id(\"...\") annotation",
            ));
        };
        if let Some(prev) = info.get(id) {
            return Err(ConfigError::new(
                file,
                Some(line),
                format!(
                    "duplicate policy id `{id}` (also at {}:{})",
                    prev.file.display(),
                    prev.line
                ),
            ));
        }
        let renamed: Policy = p.new_id(PolicyId::new(id));
        policies
            .add(renamed)
            .map_err(|e| ConfigError::new(file, Some(line), e.to_string()))?;
        info.insert(
            id.to_string(),
            PolicyInfo {
                id: id.to_string(),
                file: file.to_path_buf(),
                line,
                comment: comment_above(text, line),
                effect: match p.effect() {
                    cedar_policy::Effect::Permit => "permit",
                    cedar_policy::Effect::Forbid => "forbid",
                },
            },
        );
    }
    Ok(())
}

/// `*.cedar` files directly in `dir`, sorted so the version hash is stable.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::file(dir, format!("cannot read policy directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ConfigError::file(dir, e.to_string()))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "cedar") && path.is_file() {
            files.push(tidy(&path));
        }
    }
    files.sort();
    Ok(files)
}

fn first_label_line(d: &dyn Diagnostic, text: &str) -> Option<usize> {
    d.labels()
        .and_then(|mut l| l.next())
        .map(|l| line_of_offset(text, l.offset()))
}

/// Position of a diagnostic's first label in `text`.
fn first_label_at(d: &dyn Diagnostic, text: &str) -> Option<Location> {
    d.labels()
        .and_then(|mut l| l.next())
        .map(|l| Location::of_offset(text, l.offset(), l.len()))
}

/// A Cedar diagnostic as an operator error: file, line and column of its
/// first label (the snippet a report underlines), message, and Cedar's help.
fn diag_error<E: Diagnostic + std::fmt::Display>(file: &Path, text: &str, e: &E) -> ConfigError {
    let mut message = e.to_string();
    // Parse errors wrap a list; the related diagnostics carry the detail.
    let mut at = first_label_at(e, text);
    let mut help = e.help().map(|h| h.to_string());
    if let Some(first) = e.related().and_then(|mut r| r.next()) {
        if at.is_none() {
            at = first_label_at(first, text);
        }
        let inner = first.to_string();
        if !message.contains(&inner) {
            message = format!("{message}: {inner}");
        }
        if help.is_none() {
            help = first.help().map(|h| h.to_string());
        }
    }
    ConfigError::at(file, at, message).with_help_opt(help)
}

/// Line of a policy's first token: where `@id` (or `permit`/`forbid`) is.
/// Policies are visited in file order, so the k-th policy starting with a
/// given line is at that line's k-th occurrence (`seen` counts them).
fn policy_line(
    p: &Policy,
    text: &str,
    seen: &mut std::collections::HashMap<String, usize>,
) -> usize {
    let src = p.to_string();
    let head = src.lines().next().unwrap_or("").trim().to_string();
    let nth = seen.entry(head.clone()).or_insert(0);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !head.is_empty() && l.trim() == head)
        .nth(*nth)
        .map(|(i, _)| i + 1)
        .unwrap_or(1);
    *nth += 1;
    line
}

/// The `//` comment lines directly above the policy's first line and
/// between its annotations and its effect (both styles are common).
fn comment_above(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let comment = |l: &str| l.trim_start_matches('/').trim().to_string();
    let start = line.saturating_sub(1);
    let mut above: Vec<String> = lines[..start.min(lines.len())]
        .iter()
        .rev()
        .take_while(|l| l.starts_with("//"))
        .map(|l| comment(l))
        .collect();
    above.reverse();
    let below = lines
        .iter()
        .skip(start)
        .take_while(|l| l.starts_with("//") || l.starts_with('@'))
        .filter(|l| l.starts_with("//"))
        .map(|l| comment(l));
    above.extend(below);
    above.join(" ")
}

/// `a/b/../c` → `a/c`, without touching the file system, for messages.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir
                if matches!(
                    out.components().next_back(),
                    Some(std::path::Component::Normal(_))
                ) =>
            {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
