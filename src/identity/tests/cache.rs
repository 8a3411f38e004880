//! The verified-token cache seen through the verifier: a hit answers exactly
//! what a fresh verification would, time is re-checked on every hit, only
//! the exact token string hits, nothing that failed is kept, and the cache
//! stays within its bound.
//!
//! Fresh verifications use the real clock (inside `jsonwebtoken`); cache
//! hits can be asked "as of" another second through `verify_at`, so expiry
//! is tested without sleeping. A hit answering differently from the real
//! clock is also how these tests tell a hit from a fresh verification.

use super::*;
use crate::identity::jwt::JwtVerifier;

fn identifier(keys: &Keys, jwt: JwtConfig) -> Identifier {
    keys.build(&jwt_only(jwt)).unwrap()
}

fn cached_hs(max_entries: usize) -> (Keys, Identifier) {
    let keys = Keys::new();
    let id = identifier(
        &keys,
        JwtConfig {
            cache_max_entries: max_entries,
            purpose_fallback_header: Some(http::HeaderName::from_static("x-purpose")),
            ..hs_jwt()
        },
    );
    (keys, id)
}

fn verifier(id: &Identifier) -> &JwtVerifier {
    id.jwt.as_ref().unwrap()
}

fn cached(id: &Identifier) -> usize {
    verifier(id).cache_len()
}

/// `token` with no purpose header, cache hits judged as of `at`.
fn verify_at(id: &Identifier, token: &str, at: u64) -> Result<Principal, IdentityError> {
    verifier(id).verify_at(token, || Ok(None), move || at)
}

fn identify_with_purpose(
    id: &Identifier,
    token: &str,
    purpose: &str,
) -> Result<Principal, IdentityError> {
    id.identify(&with(bearer(token), "x-purpose", purpose), UNTRUSTED)
}

#[test]
fn a_hit_returns_what_a_fresh_verification_returns() {
    let keys = Keys::new();
    let cfg = JwtConfig {
        attribute_claims: vec!["department".into(), "wards".into(), "org.unit".into()],
        ..hs_jwt()
    };
    let id = identifier(&keys, cfg.clone());
    let uncached = identifier(
        &keys,
        JwtConfig {
            cache_max_entries: 0,
            ..cfg
        },
    );
    let token = sign(&claims(json!({
        "roles": ["nurse", "clerk", "nurse"], "amr": ["pwd", "otp"], "purpose": "treatment",
        "department": "cardiology", "wards": ["b", "a"], "org": {"unit": "east"}
    })));
    let fresh = check(&uncached, &token).unwrap();
    assert_eq!(fresh.roles, vec!["clerk", "nurse"]);
    assert!(fresh.mfa);
    assert_eq!(fresh.attributes.len(), 3);

    assert_eq!(cached(&id), 0);
    assert_eq!(check(&id, &token).unwrap(), fresh, "miss");
    assert_eq!(cached(&id), 1);
    for _ in 0..3 {
        assert_eq!(check(&id, &token).unwrap(), fresh, "hit");
    }
    assert_eq!(cached(&id), 1);
    // Really a hit: judged as of a second after expiry it is refused, which
    // the real clock would not do.
    let exp = now() + 600;
    assert_eq!(
        verify_at(&id, &token, exp + 10_000),
        Err(IdentityError::Expired)
    );
    assert_eq!(cached(&uncached), 0);
}

#[test]
fn public_key_tokens_are_cached_too() {
    let keys = Keys::new();
    let id = identifier(
        &keys,
        JwtConfig {
            public_keys: vec![
                PublicKeyConfig {
                    file: "rs.pem".into(),
                    algorithm: PublicKeyAlgorithm::RS256,
                    kid: Some("rs1".into()),
                },
                PublicKeyConfig {
                    file: "ec.pem".into(),
                    algorithm: PublicKeyAlgorithm::ES256,
                    kid: None,
                },
            ],
            ..JwtConfig::default()
        },
    );
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap();
    let c = claims(json!({"roles": ["auditor"]}));
    let rs_token = sign_with(Algorithm::RS256, Some("rs1"), &c, &rsa);
    let ec_token = sign_with(Algorithm::ES256, None, &c, &ec);
    for token in [&rs_token, &ec_token] {
        let first = check(&id, token).unwrap();
        assert_eq!(check(&id, token).unwrap(), first);
        assert_eq!(first.roles, vec!["auditor"]);
    }
    assert_eq!(cached(&id), 2);
}

#[test]
fn a_cached_token_expires_at_the_same_second_as_an_uncached_one() {
    // jsonwebtoken refuses when exp < now - leeway (30 s by default).
    let (_k, id) = cached_hs(100);
    let t = now();
    let token = sign(&json!({"sub": "a", "exp": t + 600}));
    assert!(check(&id, &token).is_ok());
    assert_eq!(cached(&id), 1);
    assert!(verify_at(&id, &token, t + 630).is_ok());
    assert_eq!(verify_at(&id, &token, t + 631), Err(IdentityError::Expired));
    assert_eq!(
        id.identify(&bearer(&token), UNTRUSTED).map(|p| p.id),
        Ok("a".to_string()),
        "still valid by the real clock"
    );

    // The configured leeway, not a default, applies on a hit.
    let keys = Keys::new();
    let strict = identifier(
        &keys,
        JwtConfig {
            leeway_seconds: 0,
            ..hs_jwt()
        },
    );
    assert!(check(&strict, &token).is_ok());
    assert!(verify_at(&strict, &token, t + 600).is_ok());
    assert_eq!(
        verify_at(&strict, &token, t + 601),
        Err(IdentityError::Expired)
    );
}

#[test]
fn not_before_is_re_checked_on_a_hit() {
    // Accepted now thanks to the 30 s leeway (nbf > now + leeway refuses).
    let (_k, id) = cached_hs(100);
    let t = now();
    let token = sign(&json!({"sub": "a", "exp": t + 600, "nbf": t + 5}));
    assert!(check(&id, &token).is_ok());
    assert_eq!(cached(&id), 1);
    assert!(verify_at(&id, &token, t - 25).is_ok());
    assert_eq!(
        verify_at(&id, &token, t - 26),
        Err(IdentityError::NotYetValid)
    );
    // Expiry is checked first, as jsonwebtoken does.
    let both = sign(&json!({"sub": "b", "exp": t + 600, "nbf": t}));
    assert!(check(&id, &both).is_ok());
    assert_eq!(
        verifier(&id).verify_at(&both, || Ok(None), || t + 10_000),
        Err(IdentityError::Expired)
    );
}

#[test]
fn same_claims_with_another_signature_is_not_a_hit() {
    let (_k, id) = cached_hs(100);
    let c = claims(json!({"roles": ["admin"]}));
    let good = sign(&c);
    assert_eq!(check(&id, &good).unwrap().roles, vec!["admin"]);
    assert_eq!(cached(&id), 1);

    let other = sign_hs(&c, OTHER_SECRET);
    let (good_msg, good_sig) = good.rsplit_once('.').unwrap();
    let (other_msg, other_sig) = other.rsplit_once('.').unwrap();
    assert_eq!(good_msg, other_msg, "same header and claims");
    assert_ne!(good_sig, other_sig);
    assert_eq!(check(&id, &other), Err(IdentityError::BadSignature));

    // One character of the signature changed, or the token cut or extended.
    let first = good_sig.as_bytes()[0];
    let swapped = if first == b'A' { 'B' } else { 'A' };
    let tampered = format!("{good_msg}.{swapped}{}", &good_sig[1..]);
    assert_eq!(check(&id, &tampered), Err(IdentityError::BadSignature));
    for near in [&good[..good.len() - 1], &format!("{good}A")] {
        assert!(check(&id, near).is_err(), "{near}");
    }
    assert_eq!(cached(&id), 1, "failures are not cached");
    assert!(check(&id, &good).is_ok());
}

#[test]
fn the_cache_stays_within_its_bound() {
    let (_k, id) = cached_hs(8);
    for i in 0..200 {
        let sub = format!("user-{i}");
        let token = sign(&claims(json!({"sub": sub})));
        assert_eq!(check(&id, &token).unwrap().id, sub);
        assert!(cached(&id) <= 8, "after {i}: {}", cached(&id));
        // The token just verified is cached and answers correctly on a hit.
        assert_eq!(check(&id, &token).unwrap().id, sub);
    }
    assert!(cached(&id) >= 1);
}

#[test]
fn concurrent_use_stays_correct_and_bounded() {
    let (_k, id) = cached_hs(16);
    let tokens: Vec<(String, String)> = (0..40)
        .map(|i| {
            let sub = format!("user-{i}");
            (sign(&claims(json!({"sub": sub}))), sub)
        })
        .collect();
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (id, tokens) = (&id, &tokens);
            s.spawn(move || {
                for round in 0..100 {
                    let (token, sub) = &tokens[(worker * 7 + round * 3) % tokens.len()];
                    assert_eq!(&check(id, token).unwrap().id, sub);
                }
            });
        }
    });
    assert!(cached(&id) <= 16, "{}", cached(&id));
}

#[test]
fn the_purpose_header_is_applied_per_request() {
    let (_k, id) = cached_hs(100);
    let without = sign(&claims(json!({})));
    let purpose = |r: Result<Principal, IdentityError>| r.map(|p| p.purpose);

    assert_eq!(
        purpose(identify_with_purpose(&id, &without, "treatment")),
        Ok(Some("treatment".into()))
    );
    assert_eq!(cached(&id), 1);
    assert_eq!(
        purpose(identify_with_purpose(&id, &without, "billing")),
        Ok(Some("billing".into()))
    );
    assert_eq!(purpose(check(&id, &without)), Ok(None));
    assert_eq!(
        identify_with_purpose(&id, &without, "has space"),
        Err(IdentityError::BadClaim("purpose"))
    );
    let twice = with(with(bearer(&without), "x-purpose", "a"), "x-purpose", "b");
    assert_eq!(
        id.identify(&twice, UNTRUSTED),
        Err(IdentityError::BadClaim("purpose"))
    );
    assert_eq!(
        purpose(identify_with_purpose(&id, &without, "research")),
        Ok(Some("research".into()))
    );
    assert_eq!(cached(&id), 1);

    // A purpose claim wins on hits too; the header is not even validated.
    let with_claim = sign(&claims(json!({"purpose": "treatment"})));
    for header in ["research", "junk header", "treatment"] {
        assert_eq!(
            purpose(identify_with_purpose(&id, &with_claim, header)),
            Ok(Some("treatment".into())),
            "{header}"
        );
    }

    // A bad header on the first request does not spoil the token: the
    // token's own facts were valid, so they are kept and the next request,
    // with a good header, is a hit.
    let bob = sign(&claims(json!({"sub": "bob"})));
    assert_eq!(
        identify_with_purpose(&id, &bob, "bad value"),
        Err(IdentityError::BadClaim("purpose"))
    );
    assert_eq!(cached(&id), 3);
    assert_eq!(
        identify_with_purpose(&id, &bob, "billing").map(|p| (p.id, p.purpose)),
        Ok(("bob".to_string(), Some("billing".to_string())))
    );
}

#[test]
fn failed_verifications_are_not_cached() {
    let keys = Keys::new();
    let cfg = JwtConfig {
        attribute_claims: vec!["level".into()],
        purpose_fallback_header: Some(http::HeaderName::from_static("x-purpose")),
        ..hs_jwt()
    };
    let id = identifier(&keys, cfg.clone());
    let uncached = identifier(
        &keys,
        JwtConfig {
            cache_max_entries: 0,
            ..cfg
        },
    );
    let t = now();
    let bad_attribute = sign(&claims(json!({"level": 1.5})));
    let cases = [
        sign(&json!({"sub": "a", "exp": t - 3600})),
        sign(&json!({"sub": "a", "exp": t + 600, "nbf": t + 3600})),
        sign_hs(&claims(json!({})), OTHER_SECRET),
        sign(&claims(json!({"roles": 7}))),
        sign(&claims(json!({"purpose": "two words"}))),
        sign(&claims(json!({"sub": ""}))),
        bad_attribute.clone(),
        "not.a.token".to_string(),
    ];
    for token in &cases {
        for _ in 0..2 {
            let got = check(&id, token);
            assert!(got.is_err(), "{token}");
            assert_eq!(got, check(&uncached, token), "{token}");
        }
    }
    assert_eq!(cached(&id), 0);

    // Error order is unchanged: a bad header purpose is reported before a
    // bad attribute, as it always was.
    for verifier in [&id, &uncached] {
        assert_eq!(
            identify_with_purpose(verifier, &bad_attribute, "no spaces allowed"),
            Err(IdentityError::BadClaim("purpose"))
        );
        assert_eq!(
            identify_with_purpose(verifier, &bad_attribute, "billing"),
            Err(IdentityError::BadClaim("attribute"))
        );
    }
    assert_eq!(cached(&id), 0);
}

/// An HS256 token over exactly these payload bytes (which `json!` could not
/// produce, e.g. duplicate keys).
fn sign_raw(payload: &str) -> String {
    use hmac::{Hmac, Mac};
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64url(payload.as_bytes());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{header}.{body}").as_bytes());
    format!("{header}.{body}.{}", b64url(&mac.finalize().into_bytes()))
}

#[test]
fn duplicate_time_claims_are_refused_so_cached_times_are_unambiguous() {
    // The cache re-checks the `exp` it read from the claims map (last value
    // wins there); that is only sound because jsonwebtoken refuses a
    // payload that names `exp` or `nbf` twice.
    let (_k, id) = cached_hs(100);
    let (past, future) = (now() - 3600, now() + 3600);
    let plain = sign_raw(&format!(r#"{{"sub":"a","exp":{future}}}"#));
    assert!(check(&id, &plain).is_ok(), "the helper signs valid tokens");
    assert_eq!(cached(&id), 1);
    for payload in [
        format!(r#"{{"sub":"a","exp":{past},"exp":{future}}}"#),
        format!(r#"{{"sub":"a","exp":{future},"exp":{past}}}"#),
        format!(r#"{{"sub":"a","exp":{future},"nbf":{past},"nbf":{future}}}"#),
    ] {
        let token = sign_raw(&payload);
        assert!(check(&id, &token).is_err(), "{payload}");
    }
    assert_eq!(cached(&id), 1);
}

#[test]
fn uncacheable_tokens_are_still_verified_every_time() {
    let keys = Keys::new();
    let id = identifier(
        &keys,
        JwtConfig {
            cache_max_token_bytes: 200,
            ..hs_jwt()
        },
    );
    let t = now();
    let long = sign(&claims(json!({"padding": "x".repeat(200)})));
    assert!(long.len() > 200);
    // A fractional exp is accepted (jsonwebtoken rounds it) but not cached.
    let fractional = sign(&json!({"sub": "a", "exp": (t + 600) as f64 + 0.25}));
    for token in [&long, &fractional] {
        assert!(check(&id, token).is_ok());
        assert!(check(&id, token).is_ok());
        // Not from a cache: the real clock decides, not the one passed in.
        assert!(verify_at(&id, token, t + 100_000).is_ok());
    }
    assert_eq!(cached(&id), 0);
    let short = sign(&claims(json!({})));
    assert!(short.len() <= 200);
    assert!(check(&id, &short).is_ok());
    assert_eq!(cached(&id), 1);
}

#[test]
fn zero_entries_disables_the_cache() {
    let (_k, id) = cached_hs(0);
    let token = sign(&claims(json!({})));
    for _ in 0..3 {
        assert!(check(&id, &token).is_ok());
    }
    assert_eq!(cached(&id), 0);
    assert!(verify_at(&id, &token, now() + 100_000).is_ok());
}

#[test]
fn a_rebuilt_verifier_starts_empty_and_uses_the_new_key() {
    // What a reload does: a new Identifier from the (rotated) key files.
    let keys = Keys::new();
    let old = identifier(&keys, hs_jwt());
    let token = sign(&claims(json!({})));
    assert!(check(&old, &token).is_ok());
    assert_eq!(cached(&old), 1);

    std::fs::write(keys.base().join("jwt.key"), OTHER_SECRET).unwrap();
    let new = identifier(&keys, hs_jwt());
    assert_eq!(cached(&new), 0);
    assert_eq!(check(&new, &token), Err(IdentityError::BadSignature));
    assert!(check(&new, &sign_hs(&claims(json!({})), OTHER_SECRET)).is_ok());
    // The old runtime, still finishing its requests, is unaffected.
    assert!(check(&old, &token).is_ok());
}

#[test]
fn cache_settings_are_checked() {
    let keys = Keys::new();
    for bad in [
        JwtConfig {
            cache_max_entries: 1_000_001,
            ..hs_jwt()
        },
        JwtConfig {
            cache_max_token_bytes: 0,
            ..hs_jwt()
        },
    ] {
        let e = config_err(&keys, &jwt_only(bad));
        assert_eq!(e.file, keys.config_file());
        assert!(e.to_string().contains("cache_max_"), "{e}");
    }
    // Turning the cache off makes its token size irrelevant.
    assert!(
        keys.build(&jwt_only(JwtConfig {
            cache_max_entries: 0,
            cache_max_token_bytes: 0,
            ..hs_jwt()
        }))
        .is_ok()
    );

    #[derive(serde::Deserialize)]
    struct Wrapper {
        identity: IdentityConfig,
    }
    let yaml = "identity:\n  jwt:\n    hs256_secret_file: jwt.key\n    cache_max_entries: 50\n    cache_max_token_bytes: 2048\n";
    let w: Wrapper = serde_saphyr::from_str(yaml).unwrap();
    let jwt = w.identity.jwt.unwrap();
    assert_eq!(
        (jwt.cache_max_entries, jwt.cache_max_token_bytes),
        (50, 2048)
    );
    let defaults = JwtConfig::default();
    assert_eq!(
        (defaults.cache_max_entries, defaults.cache_max_token_bytes),
        (10_000, 4096)
    );
}
