//! Reading PEM files with `rustls-pki-types` (`rustls-pemfile` is
//! unmaintained). Errors name the file, never the key material.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::Path;

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    certs_from(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn certs_from(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    key_from(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn key_from(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|_| "no valid PEM private key found".to_string())
}

/// Every CRL in a PEM file; at least one.
pub(crate) fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    crls_from(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn crls_from(
    bytes: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM CRL: {e}"))?;
    if crls.is_empty() {
        return Err("no PEM CRL (`BEGIN X509 CRL`) found".into());
    }
    Ok(crls)
}

/// A CA bundle as a root store; every certificate must be usable.
pub(crate) fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    Ok(store)
}
