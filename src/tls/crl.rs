//! Certificate revocation lists for client certificates
//! (`tls.client_auth.crl_files`).
//!
//! rustls' verifier checks them on every handshake; this module only reads
//! and checks the files, so that a bad one is reported with its name and
//! reason at start-up (or on reload, where the previous config stays in
//! use) rather than as failed handshakes.

use super::error::TlsError;
use super::{pem, provider};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateRevocationListDer;
use std::path::PathBuf;
use std::sync::Arc;
use x509_parser::prelude::{ASN1Time, CertificateRevocationList, FromDer};

/// Every CRL of `files`, each file checked on its own: readable PEM with
/// at least one CRL, every CRL one that rustls accepts, and none past its
/// `nextUpdate` (a stale list would refuse every certificate it covers).
pub(crate) fn load(
    files: &[PathBuf],
    roots: &Arc<RootCertStore>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut all = Vec::new();
    let now = ASN1Time::now();
    for path in files {
        let crls = pem::crls(path)?;
        for der in &crls {
            let (_, crl) = CertificateRevocationList::from_der(der.as_ref()).map_err(|e| {
                TlsError::Unusable {
                    path: path.clone(),
                    what: "unreadable CRL",
                    reason: e.to_string(),
                }
            })?;
            if let Some(next) = crl.next_update()
                && next < now
            {
                return Err(TlsError::ExpiredCrl {
                    path: path.clone(),
                    issuer: crl.issuer().to_string(),
                    next_update: next.to_string(),
                });
            }
        }
        // rustls' own parser is stricter (unsupported critical extensions,
        // delta or indirect CRLs): ask it, one file at a time, so its
        // complaint names the file.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .with_crls(crls.iter().cloned())
            .build()
            .map_err(|e| TlsError::Unusable {
                path: path.clone(),
                what: "unusable CRL",
                reason: e.to_string(),
            })?;
        all.extend(crls);
    }
    Ok(all)
}
