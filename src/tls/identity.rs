//! A verified client certificate as the caller: its SPIFFE ID (URI SAN) or
//! DNS SAN, looked up in the configured list of service principals.
//!
//! Only rustls' verifier decides whether a certificate is valid; this
//! module only reads names from a certificate that already passed it.

use super::config::CertPrincipalConfig;
use super::error::TlsError;
use crate::identity::{IdentitySource, Principal};
use std::collections::{BTreeMap, HashMap};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The names a certificate can be known by, in the order they count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateNames {
    /// `spiffe://` URI SANs.
    pub spiffe: Vec<String>,
    /// DNS SANs, lower-cased.
    pub dns: Vec<String>,
}

/// Reads the SPIFFE and DNS SANs of a DER certificate. `None` when the
/// certificate cannot be parsed (it then names nobody).
pub fn certificate_names(der: &[u8]) -> Option<CertificateNames> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut names = CertificateNames::default();
    let san = cert.subject_alternative_name().ok()??;
    for name in &san.value.general_names {
        match name {
            GeneralName::URI(u) if u.starts_with("spiffe://") => names.spiffe.push(u.to_string()),
            GeneralName::DNSName(d) => names.dns.push(d.to_ascii_lowercase()),
            _ => {}
        }
    }
    Some(names)
}

/// The configured service principals, by certificate identity.
#[derive(Debug, Clone, Default)]
pub struct CertIdentities {
    by_id: HashMap<String, Vec<String>>,
}

impl CertIdentities {
    pub fn new(cfg: &[CertPrincipalConfig]) -> Result<Self, TlsError> {
        let mut by_id = HashMap::new();
        for p in cfg {
            let id = if p.id.starts_with("spiffe://") {
                p.id.clone()
            } else {
                p.id.to_ascii_lowercase()
            };
            if id.is_empty() || id.chars().any(char::is_whitespace) {
                return Err(TlsError::InvalidPrincipal(p.id.clone()));
            }
            let mut roles: Vec<String> = p.roles.iter().map(|r| r.trim().to_string()).collect();
            roles.retain(|r| !r.is_empty());
            roles.sort();
            roles.dedup();
            if by_id.insert(id, roles).is_some() {
                return Err(TlsError::DuplicatePrincipal(p.id.clone()));
            }
        }
        Ok(Self { by_id })
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The principal a verified leaf certificate stands for.
    ///
    /// A certificate with a SPIFFE ID is known by it alone (exactly one; two
    /// are ambiguous and name nobody). Without one, its DNS SANs are looked
    /// up, and they must not name two different principals. Anything
    /// ambiguous or unlisted yields `None`: the caller then has to
    /// authenticate some other way.
    pub fn principal(&self, leaf_der: &[u8]) -> Option<Principal> {
        if self.by_id.is_empty() {
            return None;
        }
        let names = certificate_names(leaf_der)?;
        let id = match names.spiffe.as_slice() {
            [one] => self.by_id.contains_key(one).then(|| one.clone())?,
            [] => {
                let mut listed: Vec<&String> = names
                    .dns
                    .iter()
                    .filter(|d| self.by_id.contains_key(*d))
                    .collect();
                listed.dedup();
                match listed.as_slice() {
                    [one] => (*one).clone(),
                    _ => return None,
                }
            }
            _ => return None,
        };
        let roles = self.by_id.get(&id)?.clone();
        Some(Principal {
            id,
            roles,
            mfa: false,
            purpose: None,
            attributes: BTreeMap::new(),
            source: IdentitySource::ClientCertificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(s.try_into().unwrap())
    }

    fn ids(list: &[(&str, &[&str])]) -> CertIdentities {
        let cfg: Vec<CertPrincipalConfig> = list
            .iter()
            .map(|(id, roles)| CertPrincipalConfig {
                id: id.to_string(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            })
            .collect();
        CertIdentities::new(&cfg).unwrap()
    }

    #[test]
    fn spiffe_id_wins_over_dns_names() {
        let table = ids(&[
            ("spiffe://shop.internal/billing", &["billing"]),
            ("billing.internal", &["admin"]),
        ]);
        let der = cert(vec![
            dns("billing.internal"),
            uri("spiffe://shop.internal/billing"),
        ]);
        let p = table.principal(&der).unwrap();
        assert_eq!(p.id, "spiffe://shop.internal/billing");
        assert_eq!(p.roles, vec!["billing"]);
        assert_eq!(p.source, IdentitySource::ClientCertificate);
    }

    #[test]
    fn unlisted_spiffe_id_does_not_fall_back_to_dns() {
        let table = ids(&[("billing.internal", &["admin"])]);
        let der = cert(vec![
            dns("billing.internal"),
            uri("spiffe://shop.internal/other"),
        ]);
        assert_eq!(table.principal(&der), None);
    }

    #[test]
    fn dns_names_match_case_insensitively_and_must_not_be_ambiguous() {
        let table = ids(&[
            ("Warehouse.Internal", &["fulfillment"]),
            ("b.internal", &["x"]),
        ]);
        let one = cert(vec![dns("warehouse.internal"), dns("unlisted.internal")]);
        assert_eq!(table.principal(&one).unwrap().roles, vec!["fulfillment"]);
        let two = cert(vec![dns("warehouse.internal"), dns("b.internal")]);
        assert_eq!(table.principal(&two), None);
        assert_eq!(table.principal(&cert(vec![])), None);
        assert_eq!(table.principal(b"not a certificate"), None);
    }

    #[test]
    fn duplicate_or_blank_ids_are_config_errors() {
        let dup = [
            CertPrincipalConfig {
                id: "a.internal".into(),
                roles: vec![],
            },
            CertPrincipalConfig {
                id: "A.internal".into(),
                roles: vec![],
            },
        ];
        assert!(CertIdentities::new(&dup).is_err());
        let blank = [CertPrincipalConfig {
            id: " ".into(),
            roles: vec![],
        }];
        assert!(CertIdentities::new(&blank).is_err());
    }
}
