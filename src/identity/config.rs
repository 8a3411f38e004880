//! The `identity:` section of the configuration file.
//!
//! Values whose syntax can be checked while parsing (CIDRs, header names,
//! algorithms) are parsed here, inside serde, so that the YAML parser reports
//! the line of a typo. Checks that need the file system (key files) or span
//! several fields happen in [`super::Identifier::from_config`].

use http::HeaderName;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;
use std::path::PathBuf;

/// How callers prove who they are; at least one of the two must be set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
}

/// Bearer tokens issued by an identity provider the operator trusts.
///
/// Claim names are configurable because identity providers disagree on where
/// roles and MFA evidence live (Keycloak nests roles under `realm_access`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Raw bytes of this file (trailing newline trimmed) are the HS256 secret.
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub public_keys: Vec<PublicKeyConfig>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    /// Tolerated clock skew for `exp`/`nbf`; capped at start-up so that the
    /// arithmetic inside the JWT library can never overflow.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_mfa_claim")]
    pub mfa_claim: String,
    #[serde(default = "default_mfa_values")]
    pub mfa_values: Vec<String>,
    /// Claim holding the purpose of use (CDM-1.2.4). The purpose comes
    /// from the identity provider: a caller cannot state its own.
    #[serde(default = "default_purpose_claim")]
    pub purpose_claim: String,
    /// Opt-in only: a request header (e.g. `X-Purpose`) read as the
    /// purpose when the token has no purpose claim. Absent (the default),
    /// the purpose comes from the token alone. Setting it lets any caller
    /// whose identity provider issues no purpose name one, so `validate`
    /// warns about it; it is meant for migrating off such providers.
    #[serde(default, deserialize_with = "de_opt_header_name")]
    pub purpose_fallback_header: Option<HeaderName>,
    #[serde(default)]
    pub attribute_claims: Vec<String>,
    /// Bounds the work an unauthenticated client can make us do per request.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Verified tokens remembered so a client reusing its token is not
    /// re-verified on every request; 0 turns the cache off. A fixed count
    /// so memory stays bounded however many tokens the issuer hands out.
    #[serde(default = "default_cache_max_entries")]
    pub cache_max_entries: usize,
    /// Longer tokens are verified every time instead of cached, which
    /// bounds each entry's size (and so the cache's) independently of
    /// `max_token_bytes`.
    #[serde(default = "default_cache_max_token_bytes")]
    pub cache_max_token_bytes: usize,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret_file: None,
            public_keys: Vec::new(),
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_seconds: default_leeway(),
            roles_claim: default_roles_claim(),
            mfa_claim: default_mfa_claim(),
            mfa_values: default_mfa_values(),
            purpose_claim: default_purpose_claim(),
            purpose_fallback_header: None,
            attribute_claims: Vec::new(),
            max_token_bytes: default_max_token_bytes(),
            cache_max_entries: default_cache_max_entries(),
            cache_max_token_bytes: default_cache_max_token_bytes(),
        }
    }
}

/// A PEM public key; the algorithm is pinned here rather than taken from the
/// token so that a token can never choose how its own signature is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub file: PathBuf,
    pub algorithm: PublicKeyAlgorithm,
    #[serde(default)]
    pub kid: Option<String>,
}

/// Asymmetric algorithms accepted for configured public keys.
#[allow(
    clippy::upper_case_acronyms,
    reason = "RS256 and ES256 are the algorithms' names as operators write them in the config"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PublicKeyAlgorithm {
    RS256,
    ES256,
}

/// An authenticating gateway in front of the proxy that has already checked
/// the caller and passes the result in headers.
///
/// Those headers are only believed from `trusted_peers`; from anyone else they
/// are an impersonation attempt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// CIDRs (a bare address means that single host).
    #[serde(deserialize_with = "de_cidrs")]
    pub trusted_peers: Vec<IpNet>,
    #[serde(
        default = "default_subject_header",
        deserialize_with = "de_header_name"
    )]
    pub subject_header: HeaderName,
    #[serde(default = "default_roles_header", deserialize_with = "de_header_name")]
    pub roles_header: HeaderName,
    #[serde(default = "default_mfa_header", deserialize_with = "de_header_name")]
    pub mfa_header: HeaderName,
    #[serde(
        default = "default_purpose_header",
        deserialize_with = "de_header_name"
    )]
    pub purpose_header: HeaderName,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            trusted_peers: Vec::new(),
            subject_header: default_subject_header(),
            roles_header: default_roles_header(),
            mfa_header: default_mfa_header(),
            purpose_header: default_purpose_header(),
        }
    }
}

fn default_leeway() -> u64 {
    30
}
fn default_roles_claim() -> String {
    "roles".to_string()
}
fn default_mfa_claim() -> String {
    "amr".to_string()
}
fn default_mfa_values() -> Vec<String> {
    ["mfa", "otp", "hwk", "totp", "sms"]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
}
fn default_purpose_claim() -> String {
    "purpose".to_string()
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_cache_max_entries() -> usize {
    10_000
}
fn default_cache_max_token_bytes() -> usize {
    4096
}
fn default_subject_header() -> HeaderName {
    HeaderName::from_static("x-fieldguard-subject")
}
fn default_roles_header() -> HeaderName {
    HeaderName::from_static("x-fieldguard-roles")
}
fn default_mfa_header() -> HeaderName {
    HeaderName::from_static("x-fieldguard-mfa")
}
fn default_purpose_header() -> HeaderName {
    HeaderName::from_static("x-fieldguard-purpose")
}

/// Parses a CIDR, or a bare address as a single-host network.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, NotANetwork> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(NotANetwork(s.to_string()))
}

/// A trusted peer that is neither a CIDR nor an address (the text given).
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP network (expected CIDR such as 10.0.0.0/8)")]
pub(crate) struct NotANetwork(String);

fn de_cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| parse_cidr(s).map_err(serde::de::Error::custom))
        .collect()
}

fn de_header_name<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderName, D::Error> {
    let raw = String::deserialize(d)?;
    HeaderName::from_bytes(raw.trim().as_bytes())
        .map_err(|_| serde::de::Error::custom(format!("`{raw}` is not a valid HTTP header name")))
}

fn de_opt_header_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HeaderName>, D::Error> {
    de_header_name(d).map(Some)
}
