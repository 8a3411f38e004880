//! The deployment file of `onboard openapi --deployment`: the sections of
//! a configuration that belong to where the API runs rather than to what
//! it returns (listeners, upstream, identity, keys, limits, audit, admin,
//! TLS, reload, unmatched routes). The draft copies it as written and
//! writes the rest itself; what it holds also decides what the draft adds
//! (a key file when it names none, an `unmatched` only when it sets none,
//! the principal attributes its token claims become).

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a deployment file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `first`: the first line of the parser's message, as shown.
    #[error("{}:{line}: {first}", path.display())]
    Yaml {
        path: PathBuf,
        line: u64,
        first: String,
    },
    #[error("{}: not a YAML mapping", path.display())]
    NotMapping { path: PathBuf },
    #[error(
        "{}: `{key}` is not a deployment section (expected {}); the draft writes routes, entities and policies itself",
        path.display(),
        SECTIONS.join(", ")
    )]
    NotASection { path: PathBuf, key: String },
    #[error("{}: `{key}` is required", path.display())]
    Missing { path: PathBuf, key: &'static str },
}

/// The sections a deployment file may hold (docs/onboarding.md lists the
/// same; tests/onboard_draft.rs drafts with each).
pub const SECTIONS: [&str; 10] = [
    "listeners",
    "upstream",
    "identity",
    "redaction",
    "limits",
    "audit",
    "admin",
    "tls",
    "reload",
    "unmatched",
];

/// Sections without which a configuration does not load.
const REQUIRED: [&str; 3] = ["listeners", "upstream", "identity"];

/// The deployment file's text, checked to hold only deployment sections
/// and the required ones; errors name the file (and line).
pub fn read(path: &Path) -> Result<String, DeploymentError> {
    let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_saphyr::from_str(&text).map_err(|e| DeploymentError::Yaml {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        first: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    let Some(map) = v.as_object() else {
        return Err(DeploymentError::NotMapping {
            path: path.to_path_buf(),
        });
    };
    for key in map.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            return Err(DeploymentError::NotASection {
                path: path.to_path_buf(),
                key: key.clone(),
            });
        }
    }
    for key in REQUIRED {
        if !map.contains_key(key) {
            return Err(DeploymentError::Missing {
                path: path.to_path_buf(),
                key,
            });
        }
    }
    Ok(text)
}

/// Why a draft that proposes keyed-hash masks refuses a deployment whose
/// `redaction` names no key (the draft could not validate; it cannot add a
/// second `redaction`).
pub const NO_HASH_KEY: &str = "`redaction` names no `hash_key_file`, and the draft proposes keyed-hash masks: name the key file there, or leave `redaction` out and `onboard` writes a new key";

/// The 1-based line where a top-level `section` starts, for messages.
pub fn section_line(text: &str, section: &str) -> Option<usize> {
    let key = format!("{section}:");
    text.lines()
        .position(|l| l.starts_with(&key))
        .map(|i| i + 1)
}

/// What the draft needs to know of a deployment file [`read`] accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Its top-level sections.
    pub sections: Vec<String>,
    /// `redaction.hash_key_file` is set.
    pub names_hash_key: bool,
    /// `identity.jwt.attribute_claims`: the draft's `User` declares them,
    /// so policies that compare them (a partner's `carrier`) validate.
    pub attribute_claims: Vec<String>,
}

impl Facts {
    pub fn of(text: &str) -> Self {
        let v: Value = serde_saphyr::from_str(text).unwrap_or_default();
        let claims = v
            .pointer("/identity/jwt/attribute_claims")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Facts {
            sections: v
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            names_hash_key: v
                .pointer("/redaction/hash_key_file")
                .is_some_and(|k| !k.is_null()),
            attribute_claims: claims,
        }
    }

    pub fn has(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_say_what_the_draft_adds() {
        let f = Facts::of(
            "listeners: []\nidentity:\n  jwt:\n    attribute_claims: [carrier, ' ', org.unit]\nredaction:\n  hash_key_file: k\nunmatched: passthrough\n",
        );
        assert!(f.has("unmatched") && f.has("redaction") && !f.has("audit"));
        assert!(f.names_hash_key);
        assert_eq!(f.attribute_claims, ["carrier", "org.unit"]);
        let bare = Facts::of("redaction: {}\n");
        assert!(bare.has("redaction") && !bare.names_hash_key);
        assert_eq!(
            Facts::of("listeners: []\n").attribute_claims,
            Vec::<String>::new()
        );
    }
}
