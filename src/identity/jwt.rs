//! Bearer-token verification.
//!
//! Everything expensive or fallible that does not depend on the request
//! (reading key files, parsing PEM/JWKS, building `Validation`s) happens once
//! in [`JwtVerifier::new`]; per request we only parse the token and run the
//! signature check against the keys the token may legitimately use, and a
//! token seen (and verified) before skips even that: see [`super::cache`].

use super::cache::{TokenCache, Verified};
use super::config::{JwtConfig, PublicKeyAlgorithm};
use super::{AttrValue, IdentityError, IdentitySource, Principal, valid_purpose};
use fieldguard_core::error::ConfigError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// HS256 secrets shorter than this are brute-forceable offline from any one
/// captured token (RFC 7518 §3.2 asks for at least the hash size).
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;

/// Larger leeways are certainly a mistake, and an unbounded one would
/// overflow the time arithmetic inside `jsonwebtoken`.
const MAX_LEEWAY_SECONDS: u64 = 3600;

/// Larger token caches are certainly a mistake: at the default
/// `cache_max_token_bytes` this is already several GB in the worst case.
const MAX_CACHE_ENTRIES: usize = 1_000_000;

type Claims = Map<String, Value>;

/// One key a token may be verified with. The algorithm is fixed by the
/// configuration, never by the token, which is what defeats algorithm
/// confusion.
#[derive(Debug)]
struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
    /// Where the key came from, for start-up diagnostics only.
    origin: PathBuf,
}

/// A claim name, optionally a dotted path into nested objects.
#[derive(Debug)]
struct ClaimPath {
    raw: String,
    segments: Vec<String>,
}

impl ClaimPath {
    fn new(raw: &str) -> Self {
        Self {
            raw: raw.to_string(),
            segments: raw.split('.').map(str::to_string).collect(),
        }
    }

    /// The exact name wins over the dotted interpretation so that URL-shaped
    /// claim names ("https://idp.example/roles") keep working.
    fn lookup<'a>(&self, claims: &'a Claims) -> Option<&'a Value> {
        let found = match claims.get(&self.raw) {
            Some(v) => Some(v),
            None if self.segments.len() > 1 => {
                let (first, rest) = self.segments.split_first()?;
                let mut cur = claims.get(first)?;
                for seg in rest {
                    cur = cur.as_object()?.get(seg)?;
                }
                Some(cur)
            }
            None => None,
        };
        found.filter(|v| !v.is_null())
    }
}

/// Built from the configuration by [`JwtVerifier::new`] and never changed
/// afterwards: keys (including every JWKS key, read once from its file) are
/// fixed for the verifier's lifetime, and nothing refreshes them in place.
///
/// The verified-token cache lives here, not in a global, for that reason:
/// the verifier belongs to the `Identifier` of one `Runtime`, and a reload
/// (`crate::reload`: SIGHUP, `POST /reload`, or a watched change to the
/// config, the policies or a key file) builds a complete new `Runtime`, and
/// so a new verifier with re-read key files and an empty cache, before
/// swapping it in. A rotated secret or JWKS therefore never meets a token
/// cached under the old keys; requests in flight finish on the old runtime
/// and its cache is freed with it.
#[derive(Debug)]
pub(crate) struct JwtVerifier {
    keys: Vec<VerifyingKey>,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    /// The same leeway every key's `Validation` has; re-applied on cache hits.
    leeway: u64,
    /// `None` when `cache_max_entries` is 0.
    cache: Option<TokenCache>,
    roles: ClaimPath,
    mfa: ClaimPath,
    mfa_values: HashSet<String>,
    purpose: ClaimPath,
    attributes: Vec<ClaimPath>,
}

fn resolve(base_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::file(path, format!("cannot read {what}: {e}")))
}

/// The settings of `identity.jwt` that need no key file read.
fn check_settings(cfg: &JwtConfig, config_file: &Path) -> Result<(), ConfigError> {
    let cfg_err = |msg: String| ConfigError::file(config_file, msg);
    if cfg.hs256_secret_file.is_none() && cfg.public_keys.is_empty() && cfg.jwks_file.is_none() {
        return Err(cfg_err(
            "identity.jwt needs at least one key source: hs256_secret_file, public_keys or jwks_file"
                .into(),
        ));
    }
    if cfg.leeway_seconds > MAX_LEEWAY_SECONDS {
        return Err(cfg_err(format!(
            "identity.jwt.leeway_seconds must be at most {MAX_LEEWAY_SECONDS}"
        )));
    }
    if cfg.max_token_bytes == 0 {
        return Err(cfg_err(
            "identity.jwt.max_token_bytes must be greater than 0".into(),
        ));
    }
    if cfg.cache_max_entries > MAX_CACHE_ENTRIES {
        return Err(cfg_err(format!(
            "identity.jwt.cache_max_entries must be at most {MAX_CACHE_ENTRIES} (0 disables the cache)"
        )));
    }
    if cfg.cache_max_entries > 0 && cfg.cache_max_token_bytes == 0 {
        return Err(cfg_err(
            "identity.jwt.cache_max_token_bytes must be greater than 0 (set cache_max_entries: 0 to disable the cache)"
                .into(),
        ));
    }
    for (name, value) in [
        ("roles_claim", &cfg.roles_claim),
        ("mfa_claim", &cfg.mfa_claim),
        ("purpose_claim", &cfg.purpose_claim),
    ] {
        if value.trim().is_empty() {
            return Err(cfg_err(format!("identity.jwt.{name} must not be empty")));
        }
    }
    if cfg.attribute_claims.iter().any(|c| c.trim().is_empty()) {
        return Err(cfg_err(
            "identity.jwt.attribute_claims must not contain empty names".into(),
        ));
    }
    if matches!(&cfg.issuer, Some(s) if s.is_empty()) {
        return Err(cfg_err("identity.jwt.issuer must not be empty".into()));
    }
    if matches!(&cfg.audience, Some(s) if s.is_empty()) {
        return Err(cfg_err("identity.jwt.audience must not be empty".into()));
    }
    Ok(())
}

/// How a token signed with `alg` is validated: `exp` always, `iss` and
/// `aud` when configured, with the configured leeway.
fn validation_for(cfg: &JwtConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = cfg.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    match &cfg.issuer {
        Some(iss) => {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        None => v.iss = None,
    }
    match &cfg.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            v.validate_aud = true;
            required.push("aud");
        }
        None => {
            v.aud = None;
            v.validate_aud = false;
        }
    }
    v.set_required_spec_claims(&required);
    v
}

/// Every configured key; a `kid` must name exactly one.
fn read_keys(
    cfg: &JwtConfig,
    base_dir: &Path,
    config_file: &Path,
) -> Result<Vec<VerifyingKey>, ConfigError> {
    let mut keys: Vec<VerifyingKey> = Vec::new();
    if let Some(rel) = &cfg.hs256_secret_file {
        keys.push(hs256_key(cfg, &resolve(base_dir, rel))?);
    }
    for pk in &cfg.public_keys {
        keys.push(public_key(cfg, pk, base_dir, config_file)?);
    }
    if let Some(rel) = &cfg.jwks_file {
        let path = resolve(base_dir, rel);
        let text = read_file(&path, "JWKS")?;
        for (kid, alg, key) in parse_jwks(&text, &path)? {
            keys.push(VerifyingKey {
                kid,
                alg,
                key,
                validation: validation_for(cfg, alg),
                origin: path.clone(),
            });
        }
    }

    // A kid must name exactly one key, otherwise "kid selects the key" is
    // ambiguous.
    let mut seen = HashSet::new();
    for k in &keys {
        if let Some(kid) = &k.kid
            && !seen.insert(kid.as_str())
        {
            return Err(ConfigError::file(
                &k.origin,
                format!("key id `{kid}` is configured more than once"),
            ));
        }
    }
    Ok(keys)
}

/// The HS256 secret in `path` (trailing newlines cut off).
fn hs256_key(cfg: &JwtConfig, path: &Path) -> Result<VerifyingKey, ConfigError> {
    let mut secret = read_file(path, "HS256 secret")?;
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(ConfigError::file(
            path,
            format!(
                "HS256 secret is {} bytes; at least {MIN_HS256_SECRET_BYTES} are required",
                secret.len()
            ),
        ));
    }
    let key = DecodingKey::from_secret(&secret)
        .map_err(|e| ConfigError::file(path, format!("unusable HS256 secret: {e}")))?;
    Ok(VerifyingKey {
        kid: None,
        alg: Algorithm::HS256,
        key,
        validation: validation_for(cfg, Algorithm::HS256),
        origin: path.to_path_buf(),
    })
}

/// A PEM public key (RS256, or ES256 on P-256).
fn public_key(
    cfg: &JwtConfig,
    pk: &super::config::PublicKeyConfig,
    base_dir: &Path,
    config_file: &Path,
) -> Result<VerifyingKey, ConfigError> {
    let path = resolve(base_dir, &pk.file);
    let pem = read_file(&path, "public key")?;
    if matches!(&pk.kid, Some(k) if k.is_empty()) {
        return Err(ConfigError::file(
            config_file,
            format!(
                "identity.jwt.public_keys: empty kid for {}",
                pk.file.display()
            ),
        ));
    }
    let (alg, key) = match pk.algorithm {
        PublicKeyAlgorithm::RS256 => {
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                ConfigError::file(&path, format!("not an RSA public key in PEM form: {e}"))
            })?;
            (Algorithm::RS256, key)
        }
        PublicKeyAlgorithm::ES256 => {
            let key = DecodingKey::from_ec_pem(&pem).map_err(|e| {
                ConfigError::file(&path, format!("not an EC public key in PEM form: {e}"))
            })?;
            if !is_p256_point(&key) {
                return Err(ConfigError::file(
                    &path,
                    "ES256 needs a P-256 public key (this key is on another curve)",
                ));
            }
            (Algorithm::ES256, key)
        }
    };
    Ok(VerifyingKey {
        kid: pk.kid.clone(),
        alg,
        key,
        validation: validation_for(cfg, alg),
        origin: path,
    })
}

impl JwtVerifier {
    /// Checks the settings, then reads every configured key (HS256
    /// secret, PEM public keys, JWKS), each with its `Validation`.
    pub(crate) fn new(
        cfg: &JwtConfig,
        base_dir: &Path,
        config_file: &Path,
    ) -> Result<Self, ConfigError> {
        check_settings(cfg, config_file)?;
        let keys = read_keys(cfg, base_dir, config_file)?;
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for k in &keys {
            if !algorithms.contains(&k.alg) {
                algorithms.push(k.alg);
            }
        }

        Ok(Self {
            keys,
            algorithms,
            max_token_bytes: cfg.max_token_bytes,
            leeway: cfg.leeway_seconds,
            cache: TokenCache::new(cfg.cache_max_entries, cfg.cache_max_token_bytes),
            roles: ClaimPath::new(cfg.roles_claim.trim()),
            mfa: ClaimPath::new(cfg.mfa_claim.trim()),
            mfa_values: cfg
                .mfa_values
                .iter()
                .map(|s| s.trim().to_string())
                .collect(),
            purpose: ClaimPath::new(cfg.purpose_claim.trim()),
            attributes: cfg
                .attribute_claims
                .iter()
                .map(|c| ClaimPath::new(c.trim()))
                .collect(),
        })
    }

    /// Verifies `token` and builds the principal. `header_purpose` is the
    /// opt-in purpose header fallback (only consulted, and only validated,
    /// when the token carries no purpose; `Ok(None)` when not configured).
    pub(crate) fn verify(
        &self,
        token: &str,
        header_purpose: impl FnOnce() -> Result<Option<String>, IdentityError>,
    ) -> Result<Principal, IdentityError> {
        self.verify_at(token, header_purpose, jsonwebtoken::get_current_timestamp)
    }

    /// [`Self::verify`] with the clock used for cache hits and eviction
    /// passed in, so tests can move a cached token past its `exp` without
    /// waiting. A fresh verification always uses `jsonwebtoken`'s clock,
    /// which is the same function `verify` passes here.
    pub(super) fn verify_at(
        &self,
        token: &str,
        header_purpose: impl FnOnce() -> Result<Option<String>, IdentityError>,
        now: impl Fn() -> u64,
    ) -> Result<Principal, IdentityError> {
        if token.len() > self.max_token_bytes {
            return Err(IdentityError::TooLarge);
        }
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| Some((cache, cache.key(token)?)));
        if let Some(hit) = cached.as_ref().and_then(|(cache, key)| cache.get(key)) {
            // Signature, algorithm, issuer, audience and claim mapping
            // depend only on the token and this verifier's fixed keys and
            // settings; time is the one input that changes.
            hit.check_time(now(), self.leeway)?;
            return hit.principal(header_purpose);
        }
        let claims = self.verified_claims(token)?;
        let facts = self.token_facts(&claims)?;
        let Some((cache, key)) = cached else {
            return facts.finish(header_purpose);
        };
        // Cached only if everything the token decides is valid and its
        // `exp`/`nbf` are plain integers (see `token_times`).
        match (token_times(&claims), facts.attributes) {
            (Some((exp, nbf)), Ok(attributes)) => {
                let verified = Arc::new(Verified {
                    principal: Principal {
                        attributes,
                        ..facts.principal
                    },
                    exp,
                    nbf,
                });
                cache.insert(&key, verified.clone(), now(), self.leeway);
                verified.principal(header_purpose)
            }
            (_, attributes) => TokenFacts {
                principal: facts.principal,
                attributes,
            }
            .finish(header_purpose),
        }
    }

    /// The verified-token cache's counters (`None` with the cache off).
    pub(super) fn cache_stats(&self) -> Option<super::cache::CacheStats> {
        self.cache.as_ref().map(TokenCache::stats)
    }

    /// Tokens cached right now (0 with the cache off).
    #[cfg(test)]
    pub(super) fn cache_len(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// The claims of a token whose signature and registered claims
    /// (`exp`, `nbf`, `iss`, `aud`) check out against the configured keys.
    fn verified_claims(&self, token: &str) -> Result<Claims, IdentityError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityError::Malformed);
        };
        let (alg, kid) = parse_header(header_b64)?;

        let candidates: Vec<&VerifyingKey> = match &kid {
            Some(kid) => {
                let by_kid: Vec<&VerifyingKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if by_kid.is_empty() {
                    return Err(IdentityError::UnknownKey);
                }
                by_kid.into_iter().filter(|k| k.alg == alg).collect()
            }
            None => self.keys.iter().filter(|k| k.alg == alg).collect(),
        };
        if candidates.is_empty() || !self.algorithms.contains(&alg) {
            return Err(IdentityError::DisallowedAlgorithm);
        }

        let mut last = IdentityError::BadSignature;
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &k.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let mapped = map_jwt_error(e.kind());
                    // Only "this key did not verify it" lets us try the next
                    // key; anything else is about the token itself.
                    if matches!(mapped, IdentityError::BadSignature) {
                        last = mapped;
                    } else {
                        return Err(mapped);
                    }
                }
            }
        }
        Err(last)
    }

    /// Builds the principal from already-verified claims (also used by
    /// policy tests, which describe callers by their token claims).
    pub(crate) fn principal(
        &self,
        claims: &Claims,
        header_purpose: impl FnOnce() -> Result<Option<String>, IdentityError>,
    ) -> Result<Principal, IdentityError> {
        self.token_facts(claims)?.finish(header_purpose)
    }

    /// What the claims alone say about the caller. Errors come in the order
    /// callers have always seen them: subject, roles, MFA and purpose claim
    /// here; then the header purpose fallback; then attributes, whose error
    /// is therefore held back in [`TokenFacts`] until after the fallback.
    fn token_facts(&self, claims: &Claims) -> Result<TokenFacts, IdentityError> {
        let id = match claims.get("sub") {
            None | Some(Value::Null) => return Err(IdentityError::MissingSubject),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(IdentityError::MissingSubject);
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                return Err(IdentityError::BadClaim("sub"));
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(IdentityError::BadClaim("sub")),
        };

        let roles = match self.roles.lookup(claims) {
            None => Vec::new(),
            Some(v) => string_list(v).ok_or(IdentityError::BadClaim("roles"))?,
        };
        let roles = super::normalise_roles(roles);

        let mfa = match self.mfa.lookup(claims) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => string_list(v)
                .ok_or(IdentityError::BadClaim("mfa"))?
                .iter()
                .any(|m| self.mfa_values.contains(m.as_str())),
        };

        let purpose = match self.purpose.lookup(claims) {
            Some(Value::String(p)) if valid_purpose(p) => Some(p.clone()),
            Some(_) => return Err(IdentityError::BadClaim("purpose")),
            None => None,
        };

        Ok(TokenFacts {
            principal: Principal {
                id,
                roles,
                mfa,
                purpose,
                attributes: BTreeMap::new(),
                source: IdentitySource::Jwt,
            },
            attributes: self.attributes(claims),
        })
    }

    fn attributes(&self, claims: &Claims) -> Result<BTreeMap<String, AttrValue>, IdentityError> {
        let mut attributes = BTreeMap::new();
        for path in &self.attributes {
            let Some(v) = path.lookup(claims) else {
                continue;
            };
            let value = match v {
                Value::String(s) => AttrValue::String(s.clone()),
                Value::Bool(b) => AttrValue::Bool(*b),
                Value::Number(n) => {
                    AttrValue::Long(n.as_i64().ok_or(IdentityError::BadClaim("attribute"))?)
                }
                Value::Array(items) => {
                    let mut set = items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                        .ok_or(IdentityError::BadClaim("attribute"))?;
                    set.sort();
                    set.dedup();
                    AttrValue::Set(set)
                }
                _ => return Err(IdentityError::BadClaim("attribute")),
            };
            attributes.insert(path.raw.clone(), value);
        }
        Ok(attributes)
    }
}

/// The principal as the token alone decides it, before the per-request
/// purpose fallback.
struct TokenFacts {
    /// `purpose` is the token's claim (or `None`); `attributes` is empty
    /// until [`TokenFacts::finish`] (or the cache entry) takes them.
    principal: Principal,
    attributes: Result<BTreeMap<String, AttrValue>, IdentityError>,
}

impl TokenFacts {
    /// The principal for this request.
    fn finish(
        self,
        header_purpose: impl FnOnce() -> Result<Option<String>, IdentityError>,
    ) -> Result<Principal, IdentityError> {
        let mut principal = self.principal;
        if principal.purpose.is_none() {
            principal.purpose = header_purpose()?;
        }
        principal.attributes = self.attributes?;
        Ok(principal)
    }
}

/// `exp` and `nbf` (if any) as the plain integers a cache entry re-checks:
/// the values `jsonwebtoken` just checked (it parses the same payload and
/// refuses duplicate keys). A fractional time, which the library rounds, is
/// left uncached (`None`) rather than re-implemented.
fn token_times(claims: &Claims) -> Option<(u64, Option<u64>)> {
    let exp = claims.get("exp")?.as_u64()?;
    let nbf = match claims.get("nbf") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64()?),
    };
    Some((exp, nbf))
}

/// An array of strings, or one string separated by spaces and/or commas
/// (OAuth `scope` style). `None` for any other shape.
fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(
            s.split([' ', ','])
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// Reads `alg` and `kid` ourselves instead of via `jsonwebtoken::decode_header`:
/// the library cannot represent `alg: none`, and we want to report that case
/// distinctly rather than as a generic parse error.
fn parse_header(b64: &str) -> Result<(Algorithm, Option<String>), IdentityError> {
    let bytes = b64url_decode(b64).ok_or(IdentityError::Malformed)?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| IdentityError::Malformed)?;
    let obj = header.as_object().ok_or(IdentityError::Malformed)?;
    let alg = match obj.get("alg") {
        Some(Value::String(a)) => a,
        _ => return Err(IdentityError::Malformed),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(IdentityError::AlgNone);
    }
    let alg = Algorithm::from_str(alg).map_err(|_| IdentityError::DisallowedAlgorithm)?;
    let kid = match obj.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(IdentityError::Malformed),
    };
    Ok((alg, kid))
}

fn map_jwt_error(kind: &ErrorKind) -> IdentityError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => IdentityError::BadSignature,
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        ErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
        ErrorKind::InvalidAudience => IdentityError::WrongAudience,
        ErrorKind::InvalidSubject => IdentityError::MissingSubject,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => IdentityError::DisallowedAlgorithm,
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "iss" => IdentityError::WrongIssuer,
            "aud" => IdentityError::WrongAudience,
            "sub" => IdentityError::MissingSubject,
            other => IdentityError::BadClaim(static_claim(other)),
        },
        ErrorKind::InvalidClaimFormat(c) => IdentityError::BadClaim(static_claim(c)),
        _ => IdentityError::Malformed,
    }
}

fn static_claim(name: &str) -> &'static str {
    match name {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "claims",
    }
}

fn is_p256_point(key: &DecodingKey) -> bool {
    matches!(key.try_get_as_bytes(), Ok(b) if b.len() == 65 && b[0] == 0x04)
}

/// Keys usable for RS256/ES256 from a JWKS document. Keys of other types or
/// algorithms (and encryption keys) are skipped with a warning, because real
/// JWKS endpoints mix them; a JWKS that yields nothing usable is an error.
fn parse_jwks(
    text: &[u8],
    path: &Path,
) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, ConfigError> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| {
        ConfigError::new(
            path,
            Some(e.line()).filter(|l| *l > 0),
            format!("invalid JWKS JSON: {e}"),
        )
    })?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err(ConfigError::file(
            path,
            "JWKS must be an object with a `keys` array",
        ));
    };
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|e| {
            ConfigError::file(path, format!("JWKS key #{i} is not a valid JWK: {e}"))
        })?;
        let label = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            tracing::warn!(file = %path.display(), key = %label, "skipping JWKS key not meant for signatures");
            continue;
        }
        if matches!(&jwk.common.key_id, Some(k) if k.is_empty()) {
            return Err(ConfigError::file(
                path,
                format!("JWKS key #{i} has an empty kid"),
            ));
        }
        let declared = jwk.common.key_algorithm;
        let (alg, key) = match &jwk.algorithm {
            AlgorithmParameters::RSA(p)
                if declared.is_none() || declared == Some(KeyAlgorithm::RS256) =>
            {
                let key = DecodingKey::from_rsa_components(&p.n, &p.e).map_err(|e| {
                    ConfigError::file(path, format!("JWKS key {label}: bad RSA parameters: {e}"))
                })?;
                (Algorithm::RS256, key)
            }
            AlgorithmParameters::EllipticCurve(p)
                if p.curve == EllipticCurve::P256
                    && (declared.is_none() || declared == Some(KeyAlgorithm::ES256)) =>
            {
                let key = DecodingKey::from_ec_components(&p.x, &p.y).map_err(|e| {
                    ConfigError::file(path, format!("JWKS key {label}: bad EC parameters: {e}"))
                })?;
                if !is_p256_point(&key) {
                    return Err(ConfigError::file(
                        path,
                        format!("JWKS key {label}: x/y are not a P-256 point"),
                    ));
                }
                (Algorithm::ES256, key)
            }
            _ => {
                tracing::warn!(file = %path.display(), key = %label, "skipping JWKS key: only RS256 and ES256 (P-256) keys are used");
                continue;
            }
        };
        out.push((jwk.common.key_id.clone(), alg, key));
    }
    if out.is_empty() {
        return Err(ConfigError::file(
            path,
            "JWKS contains no usable RS256 or ES256 (P-256) signing key",
        ));
    }
    Ok(out)
}

/// Unpadded base64url (RFC 7515 §2); `None` on any deviation.
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1; // bytes carried by this chunk
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
        // Non-canonical trailing bits would let two encodings mean one value.
        let used_bits = 8 * n;
        let total_bits = 6 * chunk.len();
        if total_bits > used_bits
            && (acc >> (24 - total_bits)) & ((1 << (total_bits - used_bits)) - 1) != 0
        {
            return None;
        }
    }
    Some(out)
}
