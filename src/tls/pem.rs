//! Reading PEM files with `rustls-pki-types` (`rustls-pemfile` is
//! unmaintained). Errors name the file, never the key material.

use super::error::{PemProblem, TlsError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::Path;

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The problem `problem` in the file at `path`.
fn in_file(path: &Path) -> impl Fn(PemProblem) -> TlsError + '_ {
    move |problem| TlsError::Content {
        path: path.to_path_buf(),
        problem,
    }
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from(&read(path)?).map_err(in_file(path))
}

pub(crate) fn certs_from(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemProblem> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemProblem::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemProblem::NoCertificate);
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    key_from(&read(path)?).map_err(in_file(path))
}

pub(crate) fn key_from(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, PemProblem> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|_| PemProblem::NoKey)
}

/// Every CRL in a PEM file; at least one.
pub(crate) fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    crls_from(&read(path)?).map_err(in_file(path))
}

pub(crate) fn crls_from(
    bytes: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, PemProblem> {
    let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemProblem::BadCrl(e.to_string()))?;
    if crls.is_empty() {
        return Err(PemProblem::NoCrl);
    }
    Ok(crls)
}

/// A CA bundle as a root store; every certificate must be usable.
pub(crate) fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(path)? {
        store.add(c).map_err(|e| TlsError::Unusable {
            path: path.to_path_buf(),
            what: "unusable CA certificate",
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}
