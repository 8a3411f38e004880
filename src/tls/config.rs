//! The `tls:` (listener) and `upstream.tls:` sections of the configuration.
//! Paths are relative to the configuration file.

use serde::Deserialize;
use std::path::PathBuf;

/// TLS termination on every listener. Absent: plain HTTP (the sidecar
/// default, behind a mesh or on loopback).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the certificate, key, CA and CRL files are checked for
    /// changes (renewed certificates and lists are used for new handshakes;
    /// open connections keep theirs). 0 turns reloading off.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// Client certificates (mTLS). Absent: none are asked for.
    #[serde(default)]
    pub client_auth: Option<ClientAuthConfig>,
}

fn default_reload_interval_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub ca_file: PathBuf,
    /// `required` (the default): a client without a valid certificate fails
    /// the handshake. `optional`: a certificate is verified when presented.
    #[serde(default)]
    pub mode: ClientAuthMode,
    /// PEM certificate revocation lists (`X509 CRL` blocks), checked on
    /// every handshake and reloaded with the certificate files. Once any
    /// is given, every certificate of a client's chain below the trust
    /// anchor needs a current CRL from its issuer: an unknown or stale
    /// revocation status is refused, like a revoked certificate.
    #[serde(default)]
    pub crl_files: Vec<PathBuf>,
    /// Certificate identities that are callers in their own right. A client
    /// whose certificate names one of these is that principal, with these
    /// roles; any other valid certificate only secures the channel, and the
    /// caller still needs a token or gateway identity.
    #[serde(default)]
    pub principals: Vec<CertPrincipalConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    #[default]
    Required,
    Optional,
}

/// One service identity: a SPIFFE ID (`spiffe://trust-domain/path`, from a
/// URI SAN) or a DNS name (from a DNS SAN).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPrincipalConfig {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// TLS toward an `https://` upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of the CAs the upstream's certificate must chain to.
    /// There is no fallback to public roots: a sidecar's upstream has a
    /// private CA, and trusting the whole web PKI for it would be wider
    /// than needed.
    pub ca_file: PathBuf,
    /// Name sent as SNI and checked against the upstream certificate
    /// (default: the host of `upstream.url`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Client certificate toward the upstream (PEM), with its key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}
