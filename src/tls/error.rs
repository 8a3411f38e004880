//! Why TLS material cannot be used. Every variant names the file to fix
//! (never key material); start-up turns it into a config error, a
//! certificate reload logs it and keeps the previous certificate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file reads, but its PEM content is not what it must hold.
    #[error("{}: {problem}", path.display())]
    Content { path: PathBuf, problem: PemProblem },
    /// A PEM object rustls or the CRL parser refuses (`what` says which).
    #[error("{}: {what}: {reason}", path.display())]
    Unusable {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// A CRL past its `nextUpdate` would refuse every certificate it covers.
    #[error("{}: the CRL of {issuer} expired at {next_update} (nextUpdate); put a current one in place", path.display())]
    ExpiredCrl {
        path: PathBuf,
        issuer: String,
        next_update: String,
    },
    #[error("{} / {}: certificate and key do not form a usable pair: {reason}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS versions: {0}")]
    Versions(String),
    #[error("client_auth.principals: invalid id {0:?}")]
    InvalidPrincipal(String),
    #[error("client_auth.principals: {0} is listed twice")]
    DuplicatePrincipal(String),
    #[error("reload state poisoned")]
    Poisoned,
}

/// What is wrong with a PEM file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    #[error("invalid PEM certificate: {0}")]
    BadCertificate(String),
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("no valid PEM private key found")]
    NoKey,
    #[error("invalid PEM CRL: {0}")]
    BadCrl(String),
    #[error("no PEM CRL (`BEGIN X509 CRL`) found")]
    NoCrl,
}
