//! The one configuration file: listeners, upstream, identity, routes, the
//! field catalogue and where the policies live.
//!
//! YAML is parsed with `serde-saphyr` (maintained, pure Rust, reports the line
//! of every error; `serde_yaml` is archived). Every struct refuses unknown
//! keys, so a typo is an error at start-up rather than a silently ignored rule.
//! Values whose meaning is checked after parsing (JSONPath selectors, route
//! templates, masks) are kept [`Spanned`] so that those errors carry a line too.

mod model;

pub use model::*;

use fieldguard_core::config::{DecisionConfig, Origin};
use fieldguard_core::error::{ConfigError, Location};
use std::path::{Path, PathBuf};

/// A parsed configuration and where it came from (relative paths inside it
/// resolve against `base_dir`).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub config: Config,
    /// What the file said, for telling what a reload changed by content
    /// (not by comparing parsed structures).
    pub content: Content,
}

/// A configuration file's content: a digest of its text, and its top-level
/// sections as plain values (map order does not matter when comparing
/// them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Content {
    pub sha256: [u8; 32],
    pub sections: serde_json::Map<String, serde_json::Value>,
}

impl Content {
    /// The content of `text` (sections empty if it is not a YAML mapping;
    /// the typed parse reports why).
    pub fn of(text: &str) -> Self {
        use sha2::{Digest, Sha256};
        let sections = match serde_saphyr::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        Self {
            sha256: Sha256::digest(text.as_bytes()).into(),
            sections,
        }
    }

    /// Whether the top-level section `name` differs between two contents.
    pub fn section_changed(&self, other: &Content, name: &str) -> bool {
        self.sections.get(name) != other.sections.get(name)
    }
}

impl LoadedConfig {
    /// The key files the runtime reads (the JWT secret, public keys and
    /// JWKS, the redaction hash key), resolved. A reload must notice when
    /// only one of them changes: that is how keys are rotated.
    pub fn key_files(&self) -> Vec<PathBuf> {
        let c = &self.config;
        let mut files = Vec::new();
        if let Some(j) = &c.identity.jwt {
            files.extend(j.hs256_secret_file.iter().cloned());
            files.extend(j.public_keys.iter().map(|k| k.file.clone()));
            files.extend(j.jwks_file.iter().cloned());
        }
        files.extend(c.redaction.hash_key_file.iter().cloned());
        // The budget store's password and CA: rotating a Secret reconnects.
        if let Some(r) = &c.budgets.store.redis {
            files.extend(r.password_file.iter().cloned());
            files.extend(r.tls.iter().filter_map(|t| t.ca_file.clone()));
        }
        // Verify keys and the signature: a rotated key or a re-signed set
        // with unchanged policies still reloads.
        files.extend(c.policies.verify_keys.iter().cloned());
        let mut files: Vec<PathBuf> = files.iter().map(|f| self.resolve(f)).collect();
        if !c.policies.verify_keys.is_empty() {
            files.push(self.signature_file());
        }
        files
    }

    /// Where the policy set's detached signature lives:
    /// `policies.signature_file`, else `fieldguard.sig` in the policy
    /// directory (so it travels with the policies, e.g. in one ConfigMap).
    pub fn signature_file(&self) -> PathBuf {
        let p = &self.config.policies;
        match &p.signature_file {
            Some(f) => self.resolve(f),
            None => self.resolve(&p.directory).join(SIGNATURE_FILE),
        }
    }

    /// The sections the decisions (core crate) are built from.
    pub fn decision_config(&self) -> DecisionConfig<'_> {
        let c = &self.config;
        DecisionConfig {
            file: &self.file,
            base_dir: &self.base_dir,
            limits: &c.limits,
            policies: &c.policies,
            redaction: &c.redaction,
            unmatched: c.unmatched,
            shadow: c.shadow,
            routes: &c.routes,
            entities: &c.entities,
        }
    }

    /// Resolves a path written in the config relative to the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.origin().resolve(path)
    }

    /// Where this configuration came from, for the parts that load their
    /// own section (audit, TLS).
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            file: &self.file,
            base_dir: &self.base_dir,
        }
    }
}

/// The default signature file name, in the policy directory.
pub const SIGNATURE_FILE: &str = "fieldguard.sig";

/// Reads and parses a configuration file; structural errors carry file and line.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::file(file, format!("cannot read config: {e}")))?;
    let config = parse(&text, file)?;
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedConfig {
        file: file.to_path_buf(),
        base_dir,
        config,
        content: Content::of(&text),
    })
}

/// Parses configuration text; `file` is only used in error messages.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    serde_saphyr::from_str::<Config>(text).map_err(|e| {
        let at = e.location().and_then(|l| Location::from_yaml(&l));
        let reason = first_line(&e.to_string());
        let help = unknown_key_help(&reason);
        ConfigError::at(file, at, reason).with_help_opt(help)
    })
}

/// "did you mean" for serde's "unknown field `x`, expected one of `a`, `b`"
/// (and the same for unknown variants): the accepted names are in the
/// message; the closest one is the likely intent.
fn unknown_key_help(reason: &str) -> Option<String> {
    let rest = reason
        .strip_prefix("unknown field `")
        .or_else(|| reason.strip_prefix("unknown variant `"))?;
    let (word, expected) = rest.split_once('`')?;
    let expected = expected
        .trim_start_matches(", expected one of ")
        .trim_start_matches(", expected ");
    let known: Vec<&str> = expected
        .split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let guess = fieldguard_core::error::closest(word, known.iter().copied())?;
    Some(format!("did you mean `{guess}`?"))
}

/// The parser renders multi-line snippets; operators get the reason line only
/// (the file and line are already in the error).
fn first_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("-->") && !l.starts_with('|'))
        .unwrap_or(rendered)
        .trim_start_matches("error: ");
    strip_position(line).to_string()
}

/// The parser starts some reasons with "line N column M: "; the error
/// carries the position already.
fn strip_position(reason: &str) -> &str {
    let Some(rest) = reason.strip_prefix("line ") else {
        return reason;
    };
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let Some(rest) = rest[n..].strip_prefix(" column ") else {
        return reason;
    };
    let m = digits(rest);
    match rest[m..].strip_prefix(": ") {
        Some(r) if n > 0 && m > 0 => r,
        _ => reason,
    }
}

#[cfg(test)]
mod tests;
