//! Who is calling.
//!
//! Every request is attributed to a [`Principal`] before anything reaches the
//! upstream, because policy decisions and field redaction are made per caller.
//! Two sources are supported: bearer JWTs, and headers set by an
//! authenticating gateway that sits in front of the proxy. The gateway
//! headers are believed only from configured peers; from anyone else they are
//! refused outright instead of being ignored, since they can only be an
//! attempt to impersonate someone.
//!
//! All key material is parsed once in [`Identifier::from_config`]; the
//! per-request path only parses the token and checks one signature (or a few,
//! when a token without `kid` could match several keys), and a token already
//! verified by this `Identifier` is found in a bounded cache instead (`cache`).

mod cache;
mod config;
mod gateway;
mod jwt;
pub mod mint;

#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests;

pub use config::{GatewayConfig, IdentityConfig, JwtConfig, PublicKeyAlgorithm, PublicKeyConfig};

pub use cache::CacheStats;
use fieldguard_core::error::ConfigError;
pub use fieldguard_core::principal::{AttrValue, IdentitySource, Principal};
use gateway::{GatewayOutcome, GatewayVerifier};
use http::{HeaderMap, HeaderName, header};
use jwt::JwtVerifier;
use std::net::IpAddr;
use std::path::Path;

/// Why a request could not be attributed to a caller; every variant becomes
/// a 401. Display text is for operator logs; clients only ever get
/// [`IdentityError::client_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no credentials presented")]
    Missing,
    #[error("credentials are malformed")]
    Malformed,
    #[error("unsigned token (alg: none)")]
    AlgNone,
    #[error("token algorithm is not accepted by the configured keys")]
    DisallowedAlgorithm,
    #[error("token names a key id that is not configured")]
    UnknownKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer does not match")]
    WrongIssuer,
    #[error("token audience does not match")]
    WrongAudience,
    #[error("token has no subject")]
    MissingSubject,
    #[error("invalid claim or header: {0}")]
    BadClaim(&'static str),
    #[error("gateway identity headers sent by an untrusted peer")]
    UntrustedGatewayHeaders,
    #[error("token exceeds the configured size limit")]
    TooLarge,
}

impl IdentityError {
    /// Stable label for metrics and audit records; dashboards and alerts key
    /// on these strings, so they never change once released.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::AlgNone => "alg_none",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingSubject => "missing_subject",
            Self::BadClaim(_) => "bad_claim",
            Self::UntrustedGatewayHeaders => "untrusted_gateway_headers",
            Self::TooLarge => "too_large",
        }
    }

    /// Text for the 401 body: enough for a legitimate client to fix its
    /// request, nothing about keys, configuration or the token's contents.
    pub fn client_message(&self) -> &'static str {
        match self {
            Self::Missing => "authentication required",
            Self::Malformed => "malformed credentials",
            Self::AlgNone | Self::DisallowedAlgorithm => "token algorithm not accepted",
            Self::UnknownKey => "token signing key not recognised",
            Self::BadSignature => "invalid token signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "token issuer not accepted",
            Self::WrongAudience => "token audience not accepted",
            Self::MissingSubject => "credentials name no subject",
            Self::BadClaim("purpose") => "invalid purpose of use",
            Self::BadClaim(_) => "invalid claim in credentials",
            Self::UntrustedGatewayHeaders => "identity headers not accepted from this client",
            Self::TooLarge => "credentials too large",
        }
    }
}

/// The request-time verifier. Built once at start-up and shared by all
/// connections, so everything costly is done in [`Identifier::from_config`].
#[derive(Debug)]
pub struct Identifier {
    jwt: Option<JwtVerifier>,
    gateway: Option<GatewayVerifier>,
    /// `identity.jwt.purpose_fallback_header`: the opt-in header read as
    /// the purpose of a token without one (CDM-1.2.4 wants the purpose
    /// from the identity provider, so it is off unless configured).
    purpose_fallback: Option<HeaderName>,
}

impl Identifier {
    /// The principal the configured JWT claim mapping makes of these claims,
    /// as if they came in a verified token. For offline policy tests only:
    /// nothing is verified here.
    pub fn principal_from_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Principal, IdentityError> {
        let jwt = self.jwt.as_ref().ok_or(IdentityError::Missing)?;
        jwt.principal(claims, || Ok(None))
    }
}

impl Identifier {
    /// `base_dir` resolves relative key paths (the config file's folder);
    /// `config_file` is named in errors that are about the configuration
    /// itself rather than a key file.
    pub fn from_config(
        cfg: &IdentityConfig,
        base_dir: &Path,
        config_file: &Path,
    ) -> Result<Self, ConfigError> {
        if cfg.jwt.is_none() && cfg.gateway.is_none() {
            return Err(ConfigError::file(
                config_file,
                "identity: configure at least one of `jwt` or `gateway`",
            ));
        }
        let jwt = cfg
            .jwt
            .as_ref()
            .map(|j| JwtVerifier::new(j, base_dir, config_file))
            .transpose()?;
        let gateway = cfg
            .gateway
            .as_ref()
            .map(|g| GatewayVerifier::new(g, config_file))
            .transpose()?;
        let purpose_fallback = cfg
            .jwt
            .as_ref()
            .and_then(|j| j.purpose_fallback_header.clone());
        Ok(Self {
            jwt,
            gateway,
            purpose_fallback,
        })
    }

    /// `headers` are the client's request headers as received; `peer` is the
    /// TCP peer address (not anything from `X-Forwarded-For`, which the
    /// client controls).
    pub fn identify(&self, headers: &HeaderMap, peer: IpAddr) -> Result<Principal, IdentityError> {
        if let Some(gw) = &self.gateway
            && let GatewayOutcome::Decided(result) = gw.identify(headers, peer)
        {
            return result;
        }
        let Some(jwt) = &self.jwt else {
            return Err(IdentityError::Missing);
        };
        let token = bearer_token(headers)?;
        jwt.verify(token, || match &self.purpose_fallback {
            Some(name) => purpose_from_header(headers, name),
            None => Ok(None),
        })
    }

    /// The opt-in purpose fallback header, if configured (`validate` warns).
    pub fn purpose_fallback_header(&self) -> Option<&HeaderName> {
        self.purpose_fallback.as_ref()
    }

    /// What the verified-token cache has done for this runtime (`None`
    /// without JWT or with the cache off): exported as metrics.
    pub fn token_cache_stats(&self) -> Option<CacheStats> {
        self.jwt.as_ref().and_then(JwtVerifier::cache_stats)
    }

    /// Headers the proxy strips before forwarding, so the upstream can never
    /// see a client-forged gateway assertion. `Authorization` is deliberately
    /// absent: the legacy upstream may still need it. They are matched in
    /// every spelling a backend folds to the same name
    /// ([`fieldguard_core::header_names::same_after_folding`]).
    pub fn identity_headers(&self) -> &[HeaderName] {
        self.gateway
            .as_ref()
            .map(GatewayVerifier::header_names)
            .unwrap_or(&[])
    }
}

/// The token of a single `Authorization: Bearer` header. Other schemes count
/// as "no bearer credentials" (the header may be meant for the upstream);
/// repeated Authorization headers are ambiguous and refused.
fn bearer_token(headers: &HeaderMap) -> Result<&str, IdentityError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(IdentityError::Missing);
    };
    if values.next().is_some() {
        return Err(IdentityError::Malformed);
    }
    let text = value.to_str().map_err(|_| IdentityError::Malformed)?.trim();
    let (scheme, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IdentityError::Missing);
    }
    let token = rest.trim();
    // Byte scans (memchr) rather than `str::contains` with a char set, which
    // decodes the token char by char: on a cache hit that decoding was most
    // of the cost of identifying the caller. Same result, as both are ASCII.
    let bytes = token.as_bytes();
    if token.is_empty() || bytes.contains(&b' ') || bytes.contains(&b'\t') {
        return Err(IdentityError::Malformed);
    }
    Ok(token)
}

/// Purpose of use from a request header; absent is fine, anything present
/// must be well-formed because it ends up in policy input and audit logs.
fn purpose_from_header(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<Option<String>, IdentityError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(IdentityError::BadClaim("purpose"));
    }
    let text = value
        .to_str()
        .map_err(|_| IdentityError::BadClaim("purpose"))?
        .trim();
    if valid_purpose(text) {
        Ok(Some(text.to_string()))
    } else {
        Err(IdentityError::BadClaim("purpose"))
    }
}

/// Purposes are identifiers (`treatment`, `billing:claims`), never free text.
fn valid_purpose(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn normalise_roles(roles: Vec<String>) -> Vec<String> {
    let mut roles: Vec<String> = roles
        .into_iter()
        .map(|r| {
            let t = r.trim();
            if t.len() == r.len() { r } else { t.to_string() }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}
