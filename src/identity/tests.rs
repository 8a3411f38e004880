use super::mint::{TokenRequest, mint_hs256};
use super::test_keys::*;
use super::*;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use tempfile::TempDir;

/// The verified-token cache, through the verifier.
mod cache;

const SECRET: &[u8] = b"test-only-secret-0123456789abcdef-xyz";
const OTHER_SECRET: &[u8] = b"another-test-secret-0123456789abcdef";
const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A temp dir holding every key file the tests refer to.
struct Keys {
    dir: TempDir,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut secret = SECRET.to_vec();
        secret.push(b'\n'); // trailing newline must be trimmed
        std::fs::write(dir.path().join("jwt.key"), secret).unwrap();
        std::fs::write(dir.path().join("short.key"), b"too-short\n").unwrap();
        std::fs::write(dir.path().join("rs.pem"), RSA_PUBLIC_PEM).unwrap();
        std::fs::write(dir.path().join("ec.pem"), EC_PUBLIC_PEM).unwrap();
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "ec-jwks", "use": "sig", "alg": "ES256"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "rsa-jwks"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "ignored-hmac"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "ignored-enc", "use": "enc"}
        ]});
        std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
        Self { dir }
    }

    fn base(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("fieldguard.yaml")
    }

    fn build(&self, cfg: &IdentityConfig) -> Result<Identifier, ConfigError> {
        Identifier::from_config(cfg, self.base(), &self.config_file())
    }
}

fn hs_jwt() -> JwtConfig {
    JwtConfig {
        hs256_secret_file: Some("jwt.key".into()),
        ..JwtConfig::default()
    }
}

fn jwt_only(jwt: JwtConfig) -> IdentityConfig {
    IdentityConfig {
        jwt: Some(jwt),
        gateway: None,
    }
}

fn gateway_cfg() -> GatewayConfig {
    GatewayConfig {
        trusted_peers: vec![
            config::parse_cidr("127.0.0.1/32").unwrap(),
            config::parse_cidr("::1/128").unwrap(),
        ],
        ..GatewayConfig::default()
    }
}

fn hs_identifier() -> (Keys, Identifier) {
    let keys = Keys::new();
    let id = keys.build(&jwt_only(hs_jwt())).unwrap();
    (keys, id)
}

fn sign(claims: &Value) -> String {
    sign_hs(claims, SECRET)
}

fn sign_hs(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut base = json!({"sub": "alice", "exp": now() + 600, "iat": now()});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn with(mut h: HeaderMap, name: &'static str, value: &str) -> HeaderMap {
    h.append(
        HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

fn check(id: &Identifier, token: &str) -> Result<Principal, IdentityError> {
    id.identify(&bearer(token), UNTRUSTED)
}

// ---------------------------------------------------------------- JWT happy paths

#[test]
fn minted_hs256_token_yields_principal() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            issuer: Some("https://idp.example".into()),
            audience: Some("fieldguard".into()),
            ..hs_jwt()
        }))
        .unwrap();
    let token = mint_hs256(
        SECRET,
        &TokenRequest {
            sub: "alice".into(),
            roles: vec!["nurse".into(), "clerk".into(), "nurse".into()],
            mfa: true,
            purpose: Some("treatment".into()),
            ttl_secs: 300,
            issuer: Some("https://idp.example".into()),
            audience: Some("fieldguard".into()),
        },
    )
    .unwrap();
    let p = check(&id, &token).unwrap();
    assert_eq!(
        p,
        Principal {
            id: "alice".into(),
            roles: vec!["clerk".into(), "nurse".into()],
            mfa: true,
            purpose: Some("treatment".into()),
            attributes: BTreeMap::new(),
            source: IdentitySource::Jwt,
        }
    );
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let (_k, id) = hs_identifier();
    let token = sign(&claims(json!({})));
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bEaReR   {token} ")).unwrap(),
    );
    assert_eq!(id.identify(&h, UNTRUSTED).unwrap().id, "alice");
}

#[test]
fn roles_from_array_and_from_string() {
    let (_k, id) = hs_identifier();
    let p = check(&id, &sign(&claims(json!({"roles": ["b", "a", " ", "a"]})))).unwrap();
    assert_eq!(p.roles, vec!["a", "b"]);
    let p = check(
        &id,
        &sign(&claims(json!({"roles": "doctor, nurse admin,,nurse"}))),
    )
    .unwrap();
    assert_eq!(p.roles, vec!["admin", "doctor", "nurse"]);
    let p = check(&id, &sign(&claims(json!({})))).unwrap();
    assert!(p.roles.is_empty());
    assert_eq!(
        check(&id, &sign(&claims(json!({"roles": 7})))),
        Err(IdentityError::BadClaim("roles"))
    );
    assert_eq!(
        check(&id, &sign(&claims(json!({"roles": ["a", 1]})))),
        Err(IdentityError::BadClaim("roles"))
    );
}

#[test]
fn nested_roles_claim() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            roles_claim: "realm_access.roles".into(),
            ..hs_jwt()
        }))
        .unwrap();
    let token = sign(&claims(
        json!({"realm_access": {"roles": ["auditor", "admin"]}}),
    ));
    assert_eq!(check(&id, &token).unwrap().roles, vec!["admin", "auditor"]);
    // A literal claim with the dotted name wins (URL-style claim names).
    let token = sign(&claims(
        json!({"realm_access.roles": ["flat"], "realm_access": {"roles": ["nested"]}}),
    ));
    assert_eq!(check(&id, &token).unwrap().roles, vec!["flat"]);
    // Path through a non-object: no roles, not an error.
    let token = sign(&claims(json!({"realm_access": "x"})));
    assert!(check(&id, &token).unwrap().roles.is_empty());
}

#[test]
fn mfa_from_amr() {
    let (_k, id) = hs_identifier();
    let cases = [
        (json!({"amr": ["pwd", "otp"]}), true),
        (json!({"amr": ["pwd"]}), false),
        (json!({"amr": "pwd hwk"}), true),
        (json!({"amr": "pwd"}), false),
        (json!({}), false),
        (json!({"amr": true}), true),
    ];
    for (extra, expected) in cases {
        let p = check(&id, &sign(&claims(extra.clone()))).unwrap();
        assert_eq!(p.mfa, expected, "{extra}");
    }
    assert_eq!(
        check(&id, &sign(&claims(json!({"amr": {"x": 1}})))),
        Err(IdentityError::BadClaim("mfa"))
    );

    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            mfa_values: vec!["webauthn".into()],
            ..hs_jwt()
        }))
        .unwrap();
    assert!(
        !check(&id, &sign(&claims(json!({"amr": ["mfa"]}))))
            .unwrap()
            .mfa
    );
    assert!(
        check(&id, &sign(&claims(json!({"amr": ["webauthn"]}))))
            .unwrap()
            .mfa
    );
}

/// CDM-1.2.4: by default the purpose comes from the token alone; a
/// caller's own `X-Purpose` header is not read.
#[test]
fn purpose_comes_only_from_the_token_by_default() {
    let (_k, id) = hs_identifier();
    let without = sign(&claims(json!({})));
    let h = with(bearer(&without), "x-purpose", "marketing");
    assert_eq!(id.identify(&h, UNTRUSTED).unwrap().purpose, None);
    // Not even validated: the header is not an input at all.
    let h = with(bearer(&without), "x-purpose", "has space");
    assert_eq!(id.identify(&h, UNTRUSTED).unwrap().purpose, None);
    assert!(id.purpose_fallback_header().is_none());
}

/// The opt-in fallback: `identity.jwt.purpose_fallback_header: X-Purpose`.
fn fallback_identifier() -> (Keys, Identifier) {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            purpose_fallback_header: Some(HeaderName::from_static("x-purpose")),
            ..hs_jwt()
        }))
        .unwrap();
    (keys, id)
}

#[test]
fn purpose_from_claim_header_and_precedence() {
    let (_k, id) = fallback_identifier();
    let with_claim = sign(&claims(json!({"purpose": "treatment"})));
    let without = sign(&claims(json!({})));

    assert_eq!(
        check(&id, &with_claim).unwrap().purpose.as_deref(),
        Some("treatment")
    );
    assert_eq!(check(&id, &without).unwrap().purpose, None);

    let h = with(bearer(&without), "x-purpose", "  billing:claims-2.v1 ");
    assert_eq!(
        id.identify(&h, UNTRUSTED).unwrap().purpose.as_deref(),
        Some("billing:claims-2.v1")
    );

    // The signed claim wins; the header cannot widen it.
    let h = with(bearer(&with_claim), "x-purpose", "research");
    assert_eq!(
        id.identify(&h, UNTRUSTED).unwrap().purpose.as_deref(),
        Some("treatment")
    );
    // ...and a junk header is irrelevant when the claim is present.
    let h = with(bearer(&with_claim), "x-purpose", "no spaces allowed");
    assert_eq!(
        id.identify(&h, UNTRUSTED).unwrap().purpose.as_deref(),
        Some("treatment")
    );

    for bad in [
        "",
        "   ",
        "has space",
        "semi;colon",
        &"a".repeat(65),
        "ümlaut",
    ] {
        let mut h = bearer(&without);
        h.insert(
            HeaderName::from_static("x-purpose"),
            HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
        );
        assert_eq!(
            id.identify(&h, UNTRUSTED),
            Err(IdentityError::BadClaim("purpose")),
            "{bad:?}"
        );
    }
    assert!(valid_purpose(&"a".repeat(64)));
    let h = with(with(bearer(&without), "x-purpose", "a"), "x-purpose", "b");
    assert_eq!(
        id.identify(&h, UNTRUSTED),
        Err(IdentityError::BadClaim("purpose"))
    );

    for bad in [json!({"purpose": "two words"}), json!({"purpose": 3})] {
        assert_eq!(
            check(&id, &sign(&claims(bad))),
            Err(IdentityError::BadClaim("purpose"))
        );
    }
}

#[test]
fn configured_attributes_are_copied() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            attribute_claims: vec![
                "department".into(),
                "level".into(),
                "contractor".into(),
                "wards".into(),
                "org.unit".into(),
                "absent".into(),
            ],
            ..hs_jwt()
        }))
        .unwrap();
    let token = sign(&claims(json!({
        "department": "cardiology", "level": 3, "contractor": false,
        "wards": ["b", "a", "b"], "org": {"unit": "east"}, "unlisted": "x"
    })));
    let p = check(&id, &token).unwrap();
    let expected: BTreeMap<String, AttrValue> = [
        ("department", AttrValue::String("cardiology".into())),
        ("level", AttrValue::Long(3)),
        ("contractor", AttrValue::Bool(false)),
        ("wards", AttrValue::Set(vec!["a".into(), "b".into()])),
        ("org.unit", AttrValue::String("east".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(p.attributes, expected);

    for bad in [
        json!({"level": 1.5}),
        json!({"level": u64::MAX}),
        json!({"department": {"a": 1}}),
        json!({"wards": [1, 2]}),
    ] {
        assert_eq!(
            check(&id, &sign(&claims(bad))),
            Err(IdentityError::BadClaim("attribute"))
        );
    }
}

#[test]
fn rs256_and_es256_tokens_verify() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            public_keys: vec![
                PublicKeyConfig {
                    file: "rs.pem".into(),
                    algorithm: PublicKeyAlgorithm::RS256,
                    kid: Some("rs1".into()),
                },
                PublicKeyConfig {
                    file: keys.base().join("ec.pem"), // absolute path
                    algorithm: PublicKeyAlgorithm::ES256,
                    kid: None,
                },
            ],
            ..JwtConfig::default()
        }))
        .unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap();
    let c = claims(json!({}));
    assert!(check(&id, &sign_with(Algorithm::RS256, Some("rs1"), &c, &rsa)).is_ok());
    assert!(check(&id, &sign_with(Algorithm::RS256, None, &c, &rsa)).is_ok());
    assert!(check(&id, &sign_with(Algorithm::ES256, None, &c, &ec)).is_ok());
    // HS256 is not configured at all here.
    assert_eq!(
        check(&id, &sign(&c)),
        Err(IdentityError::DisallowedAlgorithm)
    );
    // RS384 is a known algorithm, but no key allows it.
    assert_eq!(
        check(&id, &sign_with(Algorithm::RS384, None, &c, &rsa)),
        Err(IdentityError::DisallowedAlgorithm)
    );
}

#[test]
fn jwks_keys_by_kid() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            jwks_file: Some("jwks.json".into()),
            ..JwtConfig::default()
        }))
        .unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap();
    let c = claims(json!({}));
    assert!(check(&id, &sign_with(Algorithm::ES256, Some("ec-jwks"), &c, &ec)).is_ok());
    assert!(
        check(
            &id,
            &sign_with(Algorithm::RS256, Some("rsa-jwks"), &c, &rsa)
        )
        .is_ok()
    );
    // Key id of the other family: the kid pins the algorithm.
    assert_eq!(
        check(&id, &sign_with(Algorithm::ES256, Some("rsa-jwks"), &c, &ec)),
        Err(IdentityError::DisallowedAlgorithm)
    );
    // The skipped oct / enc keys are not usable.
    assert_eq!(
        check(
            &id,
            &sign_with(Algorithm::RS256, Some("ignored-enc"), &c, &rsa)
        ),
        Err(IdentityError::UnknownKey)
    );
    assert_eq!(
        check(
            &id,
            &sign_with(
                Algorithm::HS256,
                Some("ignored-hmac"),
                &c,
                &EncodingKey::from_secret(b"secret").unwrap()
            )
        ),
        Err(IdentityError::UnknownKey)
    );
}

// ---------------------------------------------------------------- JWT failures

#[test]
fn expired_and_not_yet_valid() {
    let (_k, id) = hs_identifier();
    let t = now();
    assert_eq!(
        check(&id, &sign(&json!({"sub": "a", "exp": t - 3600}))),
        Err(IdentityError::Expired)
    );
    // Within the 30 s default leeway.
    assert!(check(&id, &sign(&json!({"sub": "a", "exp": t - 5}))).is_ok());
    assert_eq!(
        check(
            &id,
            &sign(&json!({"sub": "a", "exp": t + 7200, "nbf": t + 3600}))
        ),
        Err(IdentityError::NotYetValid)
    );
    assert!(
        check(
            &id,
            &sign(&json!({"sub": "a", "exp": t + 7200, "nbf": t + 5}))
        )
        .is_ok()
    );
    assert_eq!(
        check(&id, &sign(&json!({"sub": "a"}))),
        Err(IdentityError::BadClaim("exp"))
    );
    assert_eq!(
        check(&id, &sign(&json!({"sub": "a", "exp": "tomorrow"}))),
        Err(IdentityError::BadClaim("exp"))
    );
}

#[test]
fn wrong_signature() {
    let (_k, id) = hs_identifier();
    let token = sign_hs(&claims(json!({})), OTHER_SECRET);
    assert_eq!(check(&id, &token), Err(IdentityError::BadSignature));
    // Tampered payload with the original signature.
    let good = sign(&claims(json!({"roles": ["user"]})));
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = b64url(claims(json!({"roles": ["admin"]})).to_string().as_bytes());
    parts[1] = &forged;
    assert_eq!(
        check(&id, &parts.join(".")),
        Err(IdentityError::BadSignature)
    );
}

#[test]
fn alg_none_is_refused() {
    let (_k, id) = hs_identifier();
    let payload = b64url(claims(json!({})).to_string().as_bytes());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let token = format!("{}.{payload}.", b64url(header.as_bytes()));
        let err = check(&id, &token).unwrap_err();
        assert_eq!(err, IdentityError::AlgNone);
        assert_eq!(err.reason(), "alg_none");
    }
    // Unknown algorithm names.
    let token = format!("{}.{payload}.", b64url(br#"{"alg":"HS1024"}"#));
    assert_eq!(check(&id, &token), Err(IdentityError::DisallowedAlgorithm));
}

#[test]
fn algorithm_confusion_is_refused() {
    let keys = Keys::new();
    let rs_key = PublicKeyConfig {
        file: "rs.pem".into(),
        algorithm: PublicKeyAlgorithm::RS256,
        kid: Some("rs1".into()),
    };
    let c = claims(json!({"roles": ["admin"]}));
    // The attacker signs HS256 with the (public) RSA key bytes as secret.
    let forged = sign_hs(&c, RSA_PUBLIC_PEM.as_bytes());
    let forged_kid = sign_with(
        Algorithm::HS256,
        Some("rs1"),
        &c,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()).unwrap(),
    );

    // Only RSA keys configured: HS256 is not an accepted algorithm.
    let rsa_only = keys
        .build(&jwt_only(JwtConfig {
            public_keys: vec![rs_key.clone()],
            ..JwtConfig::default()
        }))
        .unwrap();
    assert_eq!(
        check(&rsa_only, &forged),
        Err(IdentityError::DisallowedAlgorithm)
    );
    assert_eq!(
        check(&rsa_only, &forged_kid),
        Err(IdentityError::DisallowedAlgorithm)
    );

    // HS256 also configured: the forged token is checked against the HS
    // secret only, never against the RSA key.
    let both = keys
        .build(&jwt_only(JwtConfig {
            public_keys: vec![rs_key],
            ..hs_jwt()
        }))
        .unwrap();
    assert_eq!(check(&both, &forged), Err(IdentityError::BadSignature));
    assert_eq!(
        check(&both, &forged_kid),
        Err(IdentityError::DisallowedAlgorithm)
    );
    assert!(check(&both, &sign(&c)).is_ok());
}

#[test]
fn issuer_and_audience() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            issuer: Some("https://idp.example".into()),
            audience: Some("fieldguard".into()),
            ..hs_jwt()
        }))
        .unwrap();
    let ok = json!({"iss": "https://idp.example", "aud": ["other", "fieldguard"]});
    assert!(check(&id, &sign(&claims(ok))).is_ok());
    let cases = [
        (
            json!({"iss": "https://evil.example", "aud": "fieldguard"}),
            IdentityError::WrongIssuer,
        ),
        (json!({"aud": "fieldguard"}), IdentityError::WrongIssuer),
        (
            json!({"iss": "https://idp.example", "aud": "other"}),
            IdentityError::WrongAudience,
        ),
        (
            json!({"iss": "https://idp.example"}),
            IdentityError::WrongAudience,
        ),
    ];
    for (extra, err) in cases {
        assert_eq!(
            check(&id, &sign(&claims(extra.clone()))),
            Err(err),
            "{extra}"
        );
    }
    // Not configured: not checked.
    let (_k, id) = hs_identifier();
    assert!(check(&id, &sign(&claims(json!({"iss": "x", "aud": "y"})))).is_ok());
}

#[test]
fn unknown_kid() {
    let (_k, id) = hs_identifier();
    let token = sign_with(
        Algorithm::HS256,
        Some("who-knows"),
        &claims(json!({})),
        &EncodingKey::from_secret(SECRET).unwrap(),
    );
    let err = check(&id, &token).unwrap_err();
    assert_eq!(err, IdentityError::UnknownKey);
    assert_eq!(err.reason(), "unknown_key");
}

#[test]
fn token_too_large() {
    let keys = Keys::new();
    let id = keys
        .build(&jwt_only(JwtConfig {
            max_token_bytes: 512,
            ..hs_jwt()
        }))
        .unwrap();
    let big = sign(&claims(json!({"pad": "x".repeat(600)})));
    assert_eq!(check(&id, &big), Err(IdentityError::TooLarge));
    assert!(check(&id, &sign(&claims(json!({})))).is_ok());
}

#[test]
fn subject_is_required() {
    let (_k, id) = hs_identifier();
    let exp = now() + 600;
    assert_eq!(
        check(&id, &sign(&json!({"exp": exp}))),
        Err(IdentityError::MissingSubject)
    );
    assert_eq!(
        check(&id, &sign(&json!({"exp": exp, "sub": "  "}))),
        Err(IdentityError::MissingSubject)
    );
    assert_eq!(
        check(&id, &sign(&json!({"exp": exp, "sub": 42}))),
        Err(IdentityError::BadClaim("sub"))
    );
    assert_eq!(
        check(&id, &sign(&json!({"exp": exp, "sub": "a\nb"}))),
        Err(IdentityError::BadClaim("sub"))
    );
}

#[test]
fn missing_and_malformed_credentials() {
    let (_k, id) = hs_identifier();
    assert_eq!(
        id.identify(&HeaderMap::new(), UNTRUSTED),
        Err(IdentityError::Missing)
    );
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6cHc="),
    );
    assert_eq!(id.identify(&h, UNTRUSTED), Err(IdentityError::Missing));
    for bad in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer abc",
        "Bearer a.b",
        "Bearer a.b.c.d.e",
        "Bearer !!.??.**",
        "Bearer e30.e30.",
        "Bearer W10.e30.",
    ] {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
        assert_eq!(
            id.identify(&h, UNTRUSTED),
            Err(IdentityError::Malformed),
            "{bad}"
        );
    }
    // Two Authorization headers are ambiguous.
    let token = sign(&claims(json!({})));
    let mut h = bearer(&token);
    h.append(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    assert_eq!(id.identify(&h, UNTRUSTED), Err(IdentityError::Malformed));
    // Non-JSON payload with a valid signature.
    let header_b64 = b64url(br#"{"alg":"HS256"}"#);
    let payload_b64 = b64url(b"not json");
    let msg = format!("{header_b64}.{payload_b64}");
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        check(&id, &format!("{msg}.{sig}")),
        Err(IdentityError::Malformed)
    );
}

// ---------------------------------------------------------------- gateway

fn gateway_identifier(with_jwt: bool) -> (Keys, Identifier) {
    let keys = Keys::new();
    let id = keys
        .build(&IdentityConfig {
            jwt: with_jwt.then(hs_jwt),
            gateway: Some(gateway_cfg()),
        })
        .unwrap();
    (keys, id)
}

fn gateway_headers() -> HeaderMap {
    let h = with(HeaderMap::new(), "x-fieldguard-subject", " bob ");
    let h = with(h, "x-fieldguard-roles", "nurse, ,clerk");
    let h = with(h, "x-fieldguard-roles", "admin");
    let h = with(h, "x-fieldguard-mfa", "TRUE");
    with(h, "x-fieldguard-purpose", "treatment")
}

#[test]
fn gateway_from_trusted_peer() {
    let (_k, id) = gateway_identifier(true);
    let p = id.identify(&gateway_headers(), TRUSTED).unwrap();
    assert_eq!(
        p,
        Principal {
            id: "bob".into(),
            roles: vec!["admin".into(), "clerk".into(), "nurse".into()],
            mfa: true,
            purpose: Some("treatment".into()),
            attributes: BTreeMap::new(),
            source: IdentitySource::Gateway,
        }
    );
    // IPv6 loopback and IPv4-mapped IPv6 peers.
    assert!(
        id.identify(&gateway_headers(), IpAddr::V6(Ipv6Addr::LOCALHOST))
            .is_ok()
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
    assert!(id.identify(&gateway_headers(), mapped).is_ok());

    for (v, expected) in [("1", true), ("yes", false), ("0", false), ("false", false)] {
        let h = with(
            with(HeaderMap::new(), "x-fieldguard-subject", "bob"),
            "x-fieldguard-mfa",
            v,
        );
        assert_eq!(id.identify(&h, TRUSTED).unwrap().mfa, expected, "{v}");
    }
    let h = with(
        with(HeaderMap::new(), "x-fieldguard-subject", "bob"),
        "x-fieldguard-purpose",
        "bad purpose",
    );
    assert_eq!(
        id.identify(&h, TRUSTED),
        Err(IdentityError::BadClaim("purpose"))
    );
    let h = with(HeaderMap::new(), "x-fieldguard-subject", "  ");
    assert_eq!(id.identify(&h, TRUSTED), Err(IdentityError::MissingSubject));
    let h = with(
        with(HeaderMap::new(), "x-fieldguard-subject", "a"),
        "x-fieldguard-subject",
        "b",
    );
    assert_eq!(id.identify(&h, TRUSTED), Err(IdentityError::Malformed));
}

#[test]
fn gateway_headers_from_untrusted_peer_are_refused() {
    let (_k, id) = gateway_identifier(true);
    let token = sign(&claims(json!({})));
    // Even a valid JWT does not rescue a request carrying gateway headers.
    for name in [
        "x-fieldguard-subject",
        "x-fieldguard-roles",
        "x-fieldguard-mfa",
        "x-fieldguard-purpose",
    ] {
        let h = with(bearer(&token), name, "x");
        let err = id.identify(&h, UNTRUSTED).unwrap_err();
        assert_eq!(err, IdentityError::UntrustedGatewayHeaders, "{name}");
        assert_eq!(err.reason(), "untrusted_gateway_headers");
    }
    // Without gateway headers the untrusted peer uses its JWT normally.
    assert_eq!(
        id.identify(&bearer(&token), UNTRUSTED).unwrap().source,
        IdentitySource::Jwt
    );
}

#[test]
fn trusted_peer_without_subject_falls_back_to_jwt() {
    let (_k, id) = gateway_identifier(true);
    let token = sign(&claims(json!({})));
    let h = with(bearer(&token), "x-fieldguard-roles", "admin");
    let p = id.identify(&h, TRUSTED).unwrap();
    assert_eq!(p.source, IdentitySource::Jwt);
    assert!(p.roles.is_empty());
    assert_eq!(
        id.identify(&HeaderMap::new(), TRUSTED),
        Err(IdentityError::Missing)
    );

    let (_k, gw_only) = gateway_identifier(false);
    assert_eq!(
        gw_only.identify(&bearer(&token), TRUSTED),
        Err(IdentityError::Missing)
    );
    assert_eq!(
        gw_only.identify(&bearer(&token), UNTRUSTED),
        Err(IdentityError::Missing)
    );
}

#[test]
fn identity_headers_lists_gateway_headers_only() {
    let (_k, id) = gateway_identifier(true);
    let names: Vec<&str> = id
        .identity_headers()
        .iter()
        .map(HeaderName::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "x-fieldguard-subject",
            "x-fieldguard-roles",
            "x-fieldguard-mfa",
            "x-fieldguard-purpose"
        ]
    );
    let (_k, id) = hs_identifier();
    assert!(id.identity_headers().is_empty());
}

// ---------------------------------------------------------------- configuration

fn config_err(keys: &Keys, cfg: &IdentityConfig) -> ConfigError {
    keys.build(cfg).unwrap_err()
}

#[test]
fn missing_key_file_names_the_file() {
    let keys = Keys::new();
    let e = config_err(
        &keys,
        &jwt_only(JwtConfig {
            hs256_secret_file: Some("secrets/nope.key".into()),
            ..JwtConfig::default()
        }),
    );
    assert_eq!(e.file, keys.base().join("secrets/nope.key"));
    assert!(e.to_string().contains("nope.key"), "{e}");

    let e = config_err(
        &keys,
        &jwt_only(JwtConfig {
            public_keys: vec![PublicKeyConfig {
                file: "missing.pem".into(),
                algorithm: PublicKeyAlgorithm::RS256,
                kid: None,
            }],
            ..JwtConfig::default()
        }),
    );
    assert_eq!(e.file, keys.base().join("missing.pem"));
}

#[test]
fn short_hs256_secret_is_rejected() {
    let keys = Keys::new();
    let e = config_err(
        &keys,
        &jwt_only(JwtConfig {
            hs256_secret_file: Some("short.key".into()),
            ..JwtConfig::default()
        }),
    );
    assert_eq!(e.file, keys.base().join("short.key"));
    assert!(e.message.contains("32"), "{e}");
}

#[test]
fn bad_key_material_is_rejected() {
    let keys = Keys::new();
    // EC key declared as RS256, RSA key declared as ES256.
    for (file, algorithm) in [
        ("ec.pem", PublicKeyAlgorithm::RS256),
        ("rs.pem", PublicKeyAlgorithm::ES256),
        ("jwt.key", PublicKeyAlgorithm::RS256),
    ] {
        let e = config_err(
            &keys,
            &jwt_only(JwtConfig {
                public_keys: vec![PublicKeyConfig {
                    file: file.into(),
                    algorithm,
                    kid: None,
                }],
                ..JwtConfig::default()
            }),
        );
        assert_eq!(e.file, keys.base().join(file));
    }
    // JWKS with nothing usable / not JSON.
    std::fs::write(
        keys.base().join("empty.json"),
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    )
    .unwrap();
    std::fs::write(keys.base().join("junk.json"), "{\n  nope").unwrap();
    for f in ["empty.json", "junk.json"] {
        let e = config_err(
            &keys,
            &jwt_only(JwtConfig {
                jwks_file: Some(f.into()),
                ..JwtConfig::default()
            }),
        );
        assert_eq!(e.file, keys.base().join(f));
    }
    // Duplicate kid across sources.
    let e = config_err(
        &keys,
        &jwt_only(JwtConfig {
            public_keys: vec![PublicKeyConfig {
                file: "ec.pem".into(),
                algorithm: PublicKeyAlgorithm::ES256,
                kid: Some("ec-jwks".into()),
            }],
            jwks_file: Some("jwks.json".into()),
            ..JwtConfig::default()
        }),
    );
    assert!(e.message.contains("ec-jwks"), "{e}");
}

#[test]
fn structural_config_errors_name_the_config_file() {
    let keys = Keys::new();
    let cases = [
        IdentityConfig::default(),
        jwt_only(JwtConfig::default()),
        jwt_only(JwtConfig {
            leeway_seconds: u64::MAX,
            ..hs_jwt()
        }),
        jwt_only(JwtConfig {
            max_token_bytes: 0,
            ..hs_jwt()
        }),
        jwt_only(JwtConfig {
            roles_claim: " ".into(),
            ..hs_jwt()
        }),
        IdentityConfig {
            jwt: None,
            gateway: Some(GatewayConfig::default()),
        },
        IdentityConfig {
            jwt: None,
            gateway: Some(GatewayConfig {
                subject_header: header::AUTHORIZATION,
                ..gateway_cfg()
            }),
        },
        IdentityConfig {
            jwt: None,
            gateway: Some(GatewayConfig {
                roles_header: HeaderName::from_static("x-fieldguard-subject"),
                ..gateway_cfg()
            }),
        },
    ];
    for cfg in cases {
        let e = config_err(&keys, &cfg);
        assert_eq!(e.file, keys.config_file(), "{cfg:?}");
    }
}

#[test]
fn yaml_config_parses_with_defaults_and_refuses_unknown_keys() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapper {
        identity: IdentityConfig,
    }
    let yaml = r#"
identity:
  jwt:
    hs256_secret_file: jwt.key
    public_keys:
      - { file: rs.pem, algorithm: RS256, kid: rs1 }
      - { file: ec.pem, algorithm: ES256 }
    jwks_file: jwks.json
    issuer: https://idp.example
    audience: fieldguard
    roles_claim: realm_access.roles
    attribute_claims: [department]
  gateway:
    trusted_peers: [127.0.0.1/32, "::1/128", 10.1.2.3]
"#;
    let w: Wrapper = serde_saphyr::from_str(yaml).unwrap();
    let jwt = w.identity.jwt.clone().unwrap();
    assert_eq!(jwt.leeway_seconds, 30);
    assert_eq!(jwt.max_token_bytes, 8192);
    assert_eq!(jwt.mfa_claim, "amr");
    assert_eq!(jwt.mfa_values, ["mfa", "otp", "hwk", "totp", "sms"]);
    assert_eq!(jwt.purpose_claim, "purpose");
    assert_eq!(jwt.public_keys[0].kid.as_deref(), Some("rs1"));
    let gw = w.identity.gateway.clone().unwrap();
    assert_eq!(gw.trusted_peers.len(), 3);
    assert_eq!(gw.trusted_peers[2].to_string(), "10.1.2.3/32");
    assert_eq!(gw.subject_header.as_str(), "x-fieldguard-subject");
    assert_eq!(gw.purpose_header.as_str(), "x-fieldguard-purpose");

    let keys = Keys::new();
    assert!(keys.build(&w.identity).is_ok());

    for bad in [
        "identity:\n  jwt:\n    hs256_secret_file: a\n    leeway: 3\n",
        "identity:\n  jwt:\n    public_keys: [{ file: a, algorithm: HS256 }]\n",
        "identity:\n  gateway:\n    trusted_peers: [not-a-cidr]\n",
        "identity:\n  gateway:\n    trusted_peers: [10.0.0.0/8]\n    roles_header: \"bad header\"\n",
        "identity:\n  oidc: {}\n",
    ] {
        assert!(serde_saphyr::from_str::<Wrapper>(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------- misc

#[test]
fn identifier_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Identifier>();
}

#[test]
fn mint_refuses_unusable_requests() {
    assert!(
        mint_hs256(
            b"short",
            &TokenRequest {
                sub: "a".into(),
                ..TokenRequest::default()
            }
        )
        .is_err()
    );
    assert!(
        mint_hs256(
            SECRET,
            &TokenRequest {
                sub: " ".into(),
                ..TokenRequest::default()
            }
        )
        .is_err()
    );
    let (_k, id) = hs_identifier();
    let token = mint_hs256(
        SECRET,
        &TokenRequest {
            sub: "a".into(),
            ttl_secs: 60,
            ..TokenRequest::default()
        },
    )
    .unwrap();
    let p = check(&id, &token).unwrap();
    assert!(!p.mfa);
    assert_eq!(p.purpose, None);
}

#[test]
fn reasons_and_client_messages_are_safe() {
    let all = [
        IdentityError::Missing,
        IdentityError::Malformed,
        IdentityError::AlgNone,
        IdentityError::DisallowedAlgorithm,
        IdentityError::UnknownKey,
        IdentityError::BadSignature,
        IdentityError::Expired,
        IdentityError::NotYetValid,
        IdentityError::WrongIssuer,
        IdentityError::WrongAudience,
        IdentityError::MissingSubject,
        IdentityError::BadClaim("roles"),
        IdentityError::UntrustedGatewayHeaders,
        IdentityError::TooLarge,
    ];
    let mut reasons = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(
            r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{r}"
        );
        assert!(reasons.insert(r), "duplicate reason {r}");
        assert!(!e.client_message().is_empty());
    }
    assert_eq!(IdentityError::Expired.reason(), "expired");
    assert_eq!(IdentityError::BadSignature.reason(), "bad_signature");
}

#[test]
fn b64url_decoder_matches_encoder() {
    for len in 0..40u8 {
        let data: Vec<u8> = (0..len)
            .map(|i| i.wrapping_mul(37).wrapping_add(len))
            .collect();
        assert_eq!(jwt::b64url_decode(&b64url(&data)), Some(data));
    }
    for bad in ["a", "ab=", "a+b/", "AB", "AAB", "A A"] {
        // "AB"/"AAB" carry non-zero trailing bits: non-canonical.
        assert_eq!(jwt::b64url_decode(bad), None, "{bad}");
    }
}

static SHARED_GATEWAY: std::sync::LazyLock<(Keys, Identifier)> =
    std::sync::LazyLock::new(|| gateway_identifier(true));

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Client-controlled input must never panic the verifier.
    #[test]
    fn arbitrary_authorization_never_panics(raw in "[ -~]{0,300}", peer_v4 in proptest::prelude::any::<u32>()) {
        let id = &SHARED_GATEWAY.1;
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {raw}")) {
            h.insert(header::AUTHORIZATION, v);
        }
        let _ = id.identify(&h, IpAddr::V4(Ipv4Addr::from(peer_v4)));
    }

    #[test]
    fn arbitrary_token_segments_never_panic(h in "[A-Za-z0-9_-]{0,60}", p in "[A-Za-z0-9_-]{0,60}", s in "[A-Za-z0-9_-]{0,60}") {
        let _ = check(&SHARED_GATEWAY.1, &format!("{h}.{p}.{s}"));
    }
}
