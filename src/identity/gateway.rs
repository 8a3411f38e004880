//! Identity asserted by an authenticating gateway in request headers.
//!
//! The headers are plain text anyone can send, so the only thing that makes
//! them trustworthy is the TCP peer they arrive from.

use super::config::GatewayConfig;
use super::{IdentityError, IdentitySource, Principal, purpose_from_header};
use fieldguard_core::error::ConfigError;
use http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// What the gateway check concluded for one request.
pub(crate) enum GatewayOutcome {
    /// The gateway named the caller (or the gateway headers were unusable).
    Decided(Result<Principal, IdentityError>),
    /// No gateway identity here; another mechanism may identify the caller.
    NotApplicable,
}

#[derive(Debug)]
pub(crate) struct GatewayVerifier {
    trusted_peers: Vec<IpNet>,
    subject: HeaderName,
    roles: HeaderName,
    mfa: HeaderName,
    purpose: HeaderName,
    /// All four names, in the order above; also the strip list.
    all: Vec<HeaderName>,
}

impl GatewayVerifier {
    pub(crate) fn new(cfg: &GatewayConfig, config_file: &Path) -> Result<Self, ConfigError> {
        let cfg_err = |msg: String| ConfigError::file(config_file, msg);
        if cfg.trusted_peers.is_empty() {
            return Err(cfg_err(
                "identity.gateway.trusted_peers must list at least one CIDR".into(),
            ));
        }
        let all = vec![
            cfg.subject_header.clone(),
            cfg.roles_header.clone(),
            cfg.mfa_header.clone(),
            cfg.purpose_header.clone(),
        ];
        for (i, name) in all.iter().enumerate() {
            // Authorization must reach the legacy upstream, and the proxy
            // strips every gateway header.
            if name == header::AUTHORIZATION {
                return Err(cfg_err(
                    "identity.gateway: `authorization` cannot be used as a gateway header".into(),
                ));
            }
            if all[..i].contains(name) {
                return Err(cfg_err(format!(
                    "identity.gateway: header `{name}` is used for two different fields"
                )));
            }
        }
        Ok(Self {
            trusted_peers: cfg.trusted_peers.clone(),
            subject: cfg.subject_header.clone(),
            roles: cfg.roles_header.clone(),
            mfa: cfg.mfa_header.clone(),
            purpose: cfg.purpose_header.clone(),
            all,
        })
    }

    pub(crate) fn header_names(&self) -> &[HeaderName] {
        &self.all
    }

    /// Dual-stack listeners report IPv4 peers as `::ffff:a.b.c.d`; operators
    /// write IPv4 CIDRs, so both forms are checked.
    fn is_trusted(&self, peer: IpAddr) -> bool {
        let canonical = peer.to_canonical();
        self.trusted_peers
            .iter()
            .any(|net| net.contains(&peer) || net.contains(&canonical))
    }

    pub(crate) fn identify(&self, headers: &HeaderMap, peer: IpAddr) -> GatewayOutcome {
        if !self.is_trusted(peer) {
            // In any spelling a backend folds to the same name
            // (`X_Fieldguard_Subject`): the upstream might read it as the
            // gateway's assertion, so it is the same impersonation attempt.
            if headers
                .keys()
                .any(|k| fieldguard_core::header_names::folds_to_any(k, &self.all))
            {
                return GatewayOutcome::Decided(Err(IdentityError::UntrustedGatewayHeaders));
            }
            return GatewayOutcome::NotApplicable;
        }
        if !headers.contains_key(&self.subject) {
            return GatewayOutcome::NotApplicable;
        }
        GatewayOutcome::Decided(self.principal(headers))
    }

    fn principal(&self, headers: &HeaderMap) -> Result<Principal, IdentityError> {
        let id = single_utf8(headers, &self.subject)?
            .map(str::trim)
            .unwrap_or_default();
        if id.is_empty() {
            return Err(IdentityError::MissingSubject);
        }
        if id.chars().any(char::is_control) {
            return Err(IdentityError::Malformed);
        }

        let mut roles = Vec::new();
        for value in headers.get_all(&self.roles) {
            let text =
                std::str::from_utf8(value.as_bytes()).map_err(|_| IdentityError::Malformed)?;
            roles.extend(text.split(',').map(|r| r.trim().to_string()));
        }

        let mfa = single_utf8(headers, &self.mfa)?
            .map(str::trim)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));

        Ok(Principal {
            id: id.to_string(),
            roles: super::normalise_roles(roles),
            mfa,
            purpose: purpose_from_header(headers, &self.purpose)?,
            attributes: BTreeMap::new(),
            source: IdentitySource::Gateway,
        })
    }
}

/// A header that must appear at most once; repeated values are ambiguous
/// and therefore refused rather than guessed at.
fn single_utf8<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, IdentityError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(IdentityError::Malformed);
    }
    std::str::from_utf8(first.as_bytes())
        .map(Some)
        .map_err(|_| IdentityError::Malformed)
}
