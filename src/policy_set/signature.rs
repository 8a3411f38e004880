//! The detached signature file (`fieldguard.sig` beside the policies by
//! default) and its check. The file is text, so a reviewer can read which
//! key signed which version:
//!
//! ```text
//! # fieldguard policy set signature (fieldguard sign)
//! version: 3f2a…
//! key_id: 9c1e…
//! ed25519: <base64 of the 64-byte signature>
//! ```
//!
//! Only the signature line is trusted, over the canonical message built
//! from what was loaded; `version` and `key_id` make refusals explainable
//! (which key, which reviewed version) and pick the key to try.

use super::keys::{SigningKey, VerifyKey};
use base64::Engine as _;
use fieldguard_core::error::ConfigError;

/// Why a set was refused, as the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No signature file.
    Unsigned,
    /// The file cannot be read as a signature.
    Malformed,
    /// Signed by a key that is not among `policies.verify_keys` (e.g.
    /// rotated out).
    UnknownKey,
    /// The signature does not match: something signed has changed.
    Mismatch,
    /// A verify key file cannot be used.
    BadKey,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Unsigned,
        Reason::Malformed,
        Reason::UnknownKey,
        Reason::Mismatch,
        Reason::BadKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsigned => "unsigned",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::Mismatch => "mismatch",
            Reason::BadKey => "bad_key",
        }
    }
}

/// A policy set that is not loaded because its signature does not hold.
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: Reason,
    pub error: ConfigError,
}

impl From<Refused> for ConfigError {
    fn from(r: Refused) -> Self {
        r.error
    }
}

/// The signature file's text for `message` (of set `version`).
pub fn sign(key: &SigningKey, message: &[u8], version: &str) -> String {
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(message));
    format!(
        "# fieldguard policy set signature (fieldguard sign); checked against policies.verify_keys\nversion: {version}\nkey_id: {}\ned25519: {sig}\n",
        key.id
    )
}

/// What a configuration expects of its policy set's signature: the
/// verify keys (`policies.verify_keys`, resolved against the config's
/// folder) and the signature file, named in errors beside the config file.
pub struct Expected<'a> {
    pub config_file: &'a std::path::Path,
    pub verify_keys: Vec<std::path::PathBuf>,
    pub signature_file: std::path::PathBuf,
}

/// Checks the set's signature when verify keys are configured: the id
/// of the key that signed it, `None` when none are (signing not
/// required), or why it is refused.
pub fn check(
    expected: &Expected<'_>,
    message: &[u8],
    version: &str,
) -> Result<Option<String>, Refused> {
    let key_files = &expected.verify_keys;
    if key_files.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(key_files.len());
    for f in key_files {
        let k = VerifyKey::load(f).map_err(|e| Refused {
            reason: Reason::BadKey,
            error: ConfigError::file(expected.config_file, format!("policies.verify_keys: {e}")),
        })?;
        keys.push(k);
    }
    let file = &expected.signature_file;
    let refuse = |reason, message: String| Refused {
        reason,
        error: ConfigError::file(file, message),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(
                Reason::Unsigned,
                format!(
                    "policy set not signed (policies.verify_keys is set; no signature file): sign the reviewed set with `fieldguard sign --config {} --key KEY` (set version {version})",
                    expected.config_file.display()
                ),
            ));
        }
        Err(e) => return Err(refuse(Reason::Unsigned, format!("cannot read: {e}"))),
    };
    let parsed = Parsed::of(&text).map_err(|e| refuse(Reason::Malformed, e.to_string()))?;
    let Some(key) = keys.iter().find(|k| k.id == parsed.key_id) else {
        let known: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        return Err(refuse(
            Reason::UnknownKey,
            format!(
                "signed by key {}, which is not among policies.verify_keys ({}): re-sign with a current key",
                parsed.key_id,
                known.join(", ")
            ),
        ));
    };
    if !key.verifies(message, &parsed.signature) {
        return Err(refuse(
            Reason::Mismatch,
            format!(
                "signature by key {} does not match this policy set: a policy file, the schema or a signed config section ({}) changed since version {} was signed (this set is version {version})",
                key.id,
                super::SIGNED_SECTIONS.join(", "),
                parsed.version
            ),
        ));
    }
    Ok(Some(key.id.clone()))
}

/// Why a signature file does not read.
#[derive(Debug, thiserror::Error)]
enum ParseError {
    #[error("line {0}: expected `name: value`")]
    NotNameValue(usize),
    #[error("line {line}: ed25519: not base64: {source}")]
    NotBase64 {
        line: usize,
        source: base64::DecodeError,
    },
    #[error("line {line}: unknown entry `{name}`")]
    UnknownEntry { line: usize, name: String },
    #[error("no `{0}:` line; re-create it with `fieldguard sign`")]
    Missing(&'static str),
}

struct Parsed {
    version: String,
    key_id: String,
    signature: Vec<u8>,
}

impl Parsed {
    fn of(text: &str) -> Result<Self, ParseError> {
        let (mut version, mut key_id, mut signature) = (None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(ParseError::NotNameValue(i + 1));
            };
            let value = value.trim().to_string();
            match name.trim() {
                "version" => version = Some(value),
                "key_id" => key_id = Some(value),
                "ed25519" => {
                    signature = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(&value)
                            .map_err(|source| ParseError::NotBase64 {
                                line: i + 1,
                                source,
                            })?,
                    )
                }
                other => {
                    return Err(ParseError::UnknownEntry {
                        line: i + 1,
                        name: other.to_string(),
                    });
                }
            }
        }
        let missing = ParseError::Missing;
        Ok(Self {
            version: version.ok_or_else(|| missing("version"))?,
            key_id: key_id.ok_or_else(|| missing("key_id"))?,
            signature: signature.ok_or_else(|| missing("ed25519"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Parsed;

    #[test]
    fn the_file_is_read_strictly() {
        let good = "# comment\nversion: abc\nkey_id: 0011\ned25519: AAEC\n";
        let p = Parsed::of(good).unwrap();
        assert_eq!((p.version.as_str(), p.key_id.as_str()), ("abc", "0011"));
        assert_eq!(p.signature, [0, 1, 2]);
        for (bad, why) in [
            ("version: abc\nkey_id: 0011\n", "no `ed25519:` line"),
            ("version: abc\nkey_id: 0011\ned25519: !!\n", "not base64"),
            (
                "version: abc\nkey_id: 0011\ned25519: AAEC\nextra: 1\n",
                "unknown entry `extra`",
            ),
            ("just text\n", "expected `name: value`"),
        ] {
            let e = Parsed::of(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
