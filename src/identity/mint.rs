//! Token minting for the demo and for tests.
//!
//! Production tokens come from an identity provider; this exists so that the
//! demo can hand out tokens that the real verifier accepts, using exactly the
//! default claim names the verifier reads.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// What to put in a demo token.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub sub: String,
    pub roles: Vec<String>,
    pub mfa: bool,
    pub purpose: Option<String>,
    pub ttl_secs: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    roles: &'a [String],
    amr: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    iat: u64,
    exp: u64,
    /// Further claims (e.g. a partner's `carrier`), for configs that map
    /// them with `attribute_claims`.
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// Signs an HS256 token whose claims use the default claim names (roles,
/// amr = ["pwd"] or ["pwd","mfa"], purpose, iss, aud, iat, exp).
///
/// Refuses secrets the verifier would refuse, so a demo can never produce a
/// token that only works against a misconfigured proxy.
/// Why a token was not minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("claim `{0}` is set by the token's own options")]
    StandardClaim(String),
    #[error(
        "HS256 secret must be at least {} bytes",
        super::jwt::MIN_HS256_SECRET_BYTES
    )]
    ShortSecret,
    #[error("sub must not be empty")]
    EmptySub,
    #[error("unusable secret: {0}")]
    Secret(jsonwebtoken::errors::Error),
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

pub fn mint_hs256(secret: &[u8], req: &TokenRequest) -> Result<String, MintError> {
    mint_hs256_with_claims(secret, req, &serde_json::Map::new())
}

/// [`mint_hs256`] with further claims beside the standard ones; a claim
/// named like a standard one is refused (it would be ambiguous).
pub fn mint_hs256_with_claims(
    secret: &[u8],
    req: &TokenRequest,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, MintError> {
    const STANDARD: [&str; 8] = ["sub", "roles", "amr", "purpose", "iss", "aud", "iat", "exp"];
    if let Some(clash) = extra.keys().find(|k| STANDARD.contains(&k.as_str())) {
        return Err(MintError::StandardClaim(clash.clone()));
    }
    if secret.len() < super::jwt::MIN_HS256_SECRET_BYTES {
        return Err(MintError::ShortSecret);
    }
    if req.sub.trim().is_empty() {
        return Err(MintError::EmptySub);
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = MintClaims {
        sub: &req.sub,
        roles: &req.roles,
        amr: if req.mfa { &["pwd", "mfa"] } else { &["pwd"] },
        purpose: req.purpose.as_deref(),
        iss: req.issuer.as_deref(),
        aud: req.audience.as_deref(),
        iat: now,
        exp: now.saturating_add(req.ttl_secs),
        extra,
    };
    let key = EncodingKey::from_secret(secret).map_err(MintError::Secret)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(MintError::Sign)
}
