//! The policy set as one signed whole: everything that decides access (the
//! policy files, the schema, and the configuration sections for routes,
//! the catalogue, redaction, budgets and unmatched requests), laid out in
//! one canonical byte string. Its SHA-256 is the policy set version that
//! audit records, `/policies` and `fieldguard_policy_set_info` name, and an
//! Ed25519 signature over it (`fieldguard sign`) is what
//! `policies.verify_keys` checks at start-up and on every reload: what runs
//! in the cluster is what was reviewed and signed, whoever can edit the
//! ConfigMap.
//!
//! The message is built from the texts the runtime was actually built
//! from (the bundle's sources and the config text's sections), never from a
//! second read of the files, so what is verified is what is enforced.

pub mod keys;
pub mod signature;

use fieldguard_core::policy::Sources;
use sha2::{Digest, Sha256};

pub use signature::{Expected, Reason, Refused, check, sign};

/// First line of the canonical message: a new layout gets a new tag, so a
/// signature never verifies across layouts.
const TAG: &[u8] = b"fieldguard policy set v1\n";

/// Top-level config sections that decide access, in the order signed.
/// Listeners, upstream, identity keys, TLS, audit and admin differ per
/// environment and decide no field's fate; so do the keys of
/// [`UNSIGNED_KEYS`], which a deployment (the Helm chart) sets itself.
pub const SIGNED_SECTIONS: [&str; 6] = [
    "routes",
    "entities",
    "redaction",
    "budgets",
    "unmatched",
    "shadow",
];

/// Keys of signed sections left out: where budget counters live and how
/// many replicas share them (the chart's `budgets.*` values), and the path
/// of the hash key (a mount path; the key itself is a secret).
pub const UNSIGNED_KEYS: [(&str, &str); 4] = [
    ("budgets", "store"),
    ("budgets", "replicas"),
    ("budgets", "on_store_error"),
    ("redaction", "hash_key_file"),
];

/// The canonical message: the tag, then per part `name`, its length and
/// its bytes, each on a line of its own (lengths make the layout
/// unambiguous whatever the texts hold).
/// `sections`: the configuration's top-level sections as plain values.
pub fn canonical(
    sections: &serde_json::Map<String, serde_json::Value>,
    sources: &Sources,
) -> Vec<u8> {
    let mut out = TAG.to_vec();
    let mut part = |name: &str, bytes: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes.len().to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes);
        out.push(b'\n');
    };
    part("schema", sources.schema.as_bytes());
    for (name, text) in &sources.policies {
        part(&format!("policy/{name}"), text.as_bytes());
    }
    for section in SIGNED_SECTIONS {
        let mut value = sections
            .get(section)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut value {
            for (_, key) in UNSIGNED_KEYS.iter().filter(|(s, _)| *s == section) {
                m.remove(*key);
            }
            // A section that held only unsigned keys is as good as absent
            // (the chart adds `budgets` to a config that had none).
            if m.is_empty() {
                value = serde_json::Value::Null;
            }
        }
        part(
            &format!("config/{section}"),
            canonical_json(&value).as_bytes(),
        );
    }
    out
}

/// `fieldguard sign --generate-key PATH`: a new key pair, the private key
/// at `path` (owner-only, never overwritten) and the public one at
/// `path.pub`. Returns the key id.
pub fn generate_key_files(path: &std::path::Path) -> Result<String, keys::KeyError> {
    use std::io::Write as _;
    let (private, public, id) = keys::generate()?;
    let public_path = {
        let mut p = path.as_os_str().to_owned();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let write = |p: &std::path::Path, text: &str, opts: &std::fs::OpenOptions| {
        opts.open(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| keys::KeyError::Write {
                path: p.to_path_buf(),
                source,
            })
    };
    write(path, &private, &opts)?;
    let mut public_opts = std::fs::OpenOptions::new();
    public_opts.write(true).create_new(true);
    write(&public_path, &public, &public_opts)?;
    Ok(id)
}

/// The version of a canonical message: SHA-256, first 8 bytes in hex (as
/// versions always were).
pub fn version(message: &[u8]) -> String {
    hex::encode(&Sha256::digest(message)[..8])
}

/// Compact JSON with every object's keys sorted: YAML key order and
/// spacing do not change what is signed.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.clone()),
                        canonical_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Content;

    fn sources() -> Sources {
        Sources {
            schema: "entity A;".into(),
            policies: vec![(
                "a.cedar".into(),
                "permit(principal,action,resource);".into(),
            )],
        }
    }

    #[test]
    fn key_order_and_spacing_do_not_matter_but_values_do() {
        let a = Content::of("routes: [{method: GET, path: /x}]\nentities: {A: {fields: {}}}\n");
        let b =
            Content::of("entities:\n  A: { fields: {} }\nroutes:\n  - path: /x\n    method: GET\n");
        let c = Content::of("routes: [{method: GET, path: /y}]\nentities: {A: {fields: {}}}\n");
        let s = sources();
        assert_eq!(canonical(&a.sections, &s), canonical(&b.sections, &s));
        assert_ne!(
            version(&canonical(&a.sections, &s)),
            version(&canonical(&c.sections, &s))
        );
    }

    #[test]
    fn deployment_sections_and_the_budget_store_are_not_signed() {
        let a = Content::of("listeners: [{address: 1.2.3.4:80}]\nbudgets: {mode: enforce}\n");
        let none = Content::of("listeners: [{address: 1.2.3.4:80}]\n");
        let chart = Content::of("budgets: {store: {type: memory}, replicas: 2}\n");
        assert_eq!(
            canonical(&none.sections, &sources()),
            canonical(&chart.sections, &sources())
        );
        let b = Content::of(
            "listeners: [{address: 5.6.7.8:80}]\nbudgets: {mode: enforce, store: {type: memory}, replicas: 3, on_store_error: refuse}\nredaction: {hash_key_file: /etc/k}\n",
        );
        assert_eq!(
            canonical(&a.sections, &sources()),
            canonical(&b.sections, &sources())
        );
    }
}
