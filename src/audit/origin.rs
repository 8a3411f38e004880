//! Which chain a writer run writes: its id and what its genesis record
//! says about it (record format 4).
//!
//! A chain is one writer run: one process, from start to a clean shutdown
//! (sealed) or to wherever it was cut off. Its id is `<name>/<tag>`:
//!
//! - `name` is the pod's name from the downward API (`FIELDGUARD_POD_NAME`,
//!   set by the Helm chart from `metadata.name`), else the host name, else
//!   `fieldguard`: it tells people where the chain came from;
//! - `tag` is 8 base64url characters of 48 random bits, drawn at every
//!   start: two runs of one pod (a container restart, or several runs
//!   writing to one volume) are two chains, and the tag alone identifies
//!   the chain among a fleet's. Every line carries it, so it is short
//!   (issue #16 holds a one-record read's line to 400 B): among 100,000
//!   chains in one verification set two share a tag with a chance of about
//!   2 in 100,000, and verify then names the shared tag rather than
//!   passing the mixture.
//!
//! Every line of the chain carries the tag in `c`; the genesis record
//! binds it to the full id and to the pod's uid (`FIELDGUARD_POD_UID`,
//! from `metadata.uid`), the host, the process id, the start time, the
//! policy-set version and the fieldguard version.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Characters of a chain tag.
pub const TAG_LEN: usize = 8;

/// Environment variable with the pod's name (downward API).
pub const POD_NAME_ENV: &str = "FIELDGUARD_POD_NAME";
/// Environment variable with the pod's uid (downward API).
pub const POD_UID_ENV: &str = "FIELDGUARD_POD_UID";

/// Longest pod name, uid or host name kept (Kubernetes names are at most
/// 253 characters; anything longer is not one).
const MAX_NAME: usize = 253;

/// Who writes a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOrigin {
    /// 8 base64url characters, on every line.
    pub tag: String,
    /// `<name>/<tag>`.
    pub id: String,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub host: String,
    pub pid: u32,
    /// Version hash of the policy set loaded at start.
    pub policy_version: String,
    /// The fieldguard version.
    pub version: &'static str,
}

impl ChainOrigin {
    /// A new chain for this process, named from the environment.
    pub fn from_env(policy_version: &str) -> Self {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| clean(&v));
        Self::new(
            env(POD_NAME_ENV),
            env(POD_UID_ENV),
            host_name(),
            policy_version,
        )
    }

    /// A new chain (a fresh random tag) with the given names.
    pub fn new(
        pod_name: Option<String>,
        pod_uid: Option<String>,
        host: Option<String>,
        policy_version: &str,
    ) -> Self {
        let tag = new_tag();
        let name = pod_name
            .clone()
            .or_else(|| host.clone())
            .unwrap_or_else(|| "fieldguard".to_string());
        Self {
            id: format!("{name}/{tag}"),
            tag,
            pod_name,
            pod_uid,
            host: host.unwrap_or_else(|| "unknown".to_string()),
            pid: std::process::id(),
            policy_version: policy_version.to_string(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// 48 random bits in base64url (8 characters).
pub fn new_tag() -> String {
    let random = uuid::Uuid::new_v4();
    let bytes = random.as_bytes();
    URL_SAFE_NO_PAD.encode(&bytes[..6])
}

/// Whether `s` is spelled as a chain tag: 8 base64url characters.
pub fn is_tag(s: &str) -> bool {
    s.len() == TAG_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host name, from the kernel (Linux) or `HOSTNAME`.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| clean(&h))
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(|h| clean(&h)))
}

/// A name as a record may hold it: trimmed, printable, bounded; `None`
/// when empty.
fn clean(s: &str) -> Option<String> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_pod_or_host_name_and_a_fresh_tag() {
        let a = ChainOrigin::new(Some("shop-7".into()), Some("u".into()), None, "v1");
        assert!(is_tag(&a.tag), "{}", a.tag);
        assert_eq!(a.id, format!("shop-7/{}", a.tag));
        let b = ChainOrigin::new(Some("shop-7".into()), Some("u".into()), None, "v1");
        assert_ne!(a.tag, b.tag, "every run is a chain of its own");
        let host = ChainOrigin::new(None, None, Some("node-1".into()), "v1");
        assert!(host.id.starts_with("node-1/"));
        let none = ChainOrigin::new(None, None, None, "v1");
        assert!(none.id.starts_with("fieldguard/") && none.host == "unknown");
        assert_eq!(clean("  a\nb "), Some("ab".into()));
        assert_eq!(clean(" \n"), None);
        assert!(!is_tag("short") && !is_tag("AAAAAAAAAA+"));
    }
}
