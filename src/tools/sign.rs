//! `fieldguard sign`: the reviewed policy set, built from its
//! configuration as the proxy builds it (so an invalid set is never
//! signed), signed over its canonical message ([`crate::policy_set`]).

use crate::policy_set::keys::SigningKey;
use crate::policy_set::{canonical, sign, version};

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
) -> Result<Signed, String> {
    let key = SigningKey::load(key)?;
    let loaded = crate::config::load(config).map_err(|e| e.to_string())?;
    let decisions = fieldguard_core::decisions::Decisions::build(loaded.decision_config())
        .map_err(|e| e.to_string())?;
    let message = canonical(&loaded.content.sections, &decisions.engine.bundle.sources);
    let version = version(&message);
    let file = out.map_or_else(|| loaded.signature_file(), std::path::Path::to_path_buf);
    std::fs::write(&file, sign(&key, &message, &version))
        .map_err(|e| format!("{}: cannot write the signature: {e}", file.display()))?;
    Ok(Signed {
        version,
        key_id: key.id,
        file,
    })
}
