//! The rustls client config toward an `https://` upstream.

use super::config::UpstreamTlsConfig;
use super::{VERSIONS, pem, provider};
use fieldguard_core::config::Origin;
use fieldguard_core::error::ConfigError;
use rustls::ClientConfig;

/// Builds the upstream client config: only the configured CA bundle is
/// trusted; a client certificate is presented when one is configured.
pub fn client_config(
    cfg: &UpstreamTlsConfig,
    loaded: Origin<'_>,
) -> Result<ClientConfig, ConfigError> {
    let err = |m: String| ConfigError::file(loaded.file, format!("upstream.tls: {m}"));
    let roots = pem::roots(&loaded.resolve(&cfg.ca_file)).map_err(|e| err(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots);
    match (&cfg.client_cert_file, &cfg.client_key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(c), Some(k)) => {
            let certs = pem::certs(&loaded.resolve(c)).map_err(|e| err(e.to_string()))?;
            let key = pem::key(&loaded.resolve(k)).map_err(|e| err(e.to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| err(format!("client certificate and key do not match: {e}")))
        }
        _ => Err(err(
            "`client_cert_file` and `client_key_file` go together".into()
        )),
    }
}
