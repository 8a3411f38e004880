//! TLS on both sides of the proxy (CDM-4.2.1, encryption in transit).
//!
//! Downstream: the listener terminates TLS 1.2/1.3 with a certificate from
//! PEM files, offers `h2` and `http/1.1` by ALPN, can ask for (or require)
//! client certificates checked against a CA bundle, and picks up renewed
//! certificate files without dropping a connection. A client certificate
//! listed in the config can stand for the caller (service-to-service).
//!
//! Upstream: an `https://` upstream is verified against a configured CA
//! bundle, with an optional SNI override and client certificate.
//!
//! Every rustls config names the aws-lc-rs provider explicitly: it is the
//! crypto library the JWT verifier already uses, so there is one, not two,
//! and no process-wide default has to be installed first.

mod config;
mod crl;
mod error;
mod identity;
mod pem;
mod server;
mod upstream;

pub use config::{
    CertPrincipalConfig, ClientAuthConfig, ClientAuthMode, TlsConfig, UpstreamTlsConfig,
};
pub use error::{PemProblem, TlsError};
pub use identity::{CertIdentities, certificate_names};
pub use server::{ServerTls, TlsConnection};
pub use upstream::client_config;

use std::sync::Arc;

/// The crypto provider of every TLS config fieldguard builds (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS 1.3 and 1.2; nothing older exists in rustls.
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
