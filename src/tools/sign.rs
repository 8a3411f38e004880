//! `fieldguard sign`: the reviewed policy set, built from its
//! configuration as the proxy builds it (so an invalid set is never
//! signed), signed over its canonical message ([`crate::policy_set`]).

use crate::policy_set::keys::SigningKey;
use crate::policy_set::{canonical, sign, version};

/// Why a set was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] crate::policy_set::keys::KeyError),
    /// The configuration or its policy set does not load: said in one
    /// line, as `sign` reports it.
    #[error("{0}")]
    Config(#[from] fieldguard_core::error::ConfigError),
    #[error("{}: cannot write the signature: {source}", file.display())]
    Write {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What `fieldguard sign` did.
pub struct Signed {
    pub version: String,
    pub key_id: String,
    pub file: std::path::PathBuf,
}

/// `fieldguard sign`: builds the set the configuration names (as the proxy
/// would, so an invalid set is never signed) and writes its signature to
/// `out`, else to the configured signature file.
pub fn sign_config(
    config: &std::path::Path,
    key: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<Signed, SignError> {
    let key = SigningKey::load(key)?;
    let loaded = crate::config::load(config)?;
    let decisions = fieldguard_core::decisions::Decisions::build(loaded.decision_config())?;
    let message = canonical(&loaded.content.sections, &decisions.engine.bundle.sources);
    let version = version(&message);
    let file = out.map_or_else(|| loaded.signature_file(), std::path::Path::to_path_buf);
    std::fs::write(&file, sign(&key, &message, &version)).map_err(|source| SignError::Write {
        file: file.clone(),
        source,
    })?;
    Ok(Signed {
        version,
        key_id: key.id,
        file,
    })
}
