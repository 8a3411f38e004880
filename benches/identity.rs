//! Caller identification per request, with and without the verified-token
//! cache.
//!
//! Each iteration is what the proxy does to attribute a request:
//! `Identifier::identify` on the request headers (bearer token parsing, then
//! either a cache hit with the `exp`/`nbf` re-check, or base64 + HS256 +
//! claim parsing + claim mapping). The identifier is built from the
//! reference deployment's `identity` section (`examples/demo/fieldguard.yaml`:
//! HS256 with issuer and audience checks) and the token is one the demo hands
//! out (`mint_hs256`, 10 minute lifetime).
//!
//! - `repeated_token/cache_on` / `cache_off`: one client reusing its token,
//!   the common case the cache is for.
//! - `distinct_tokens/cache_on` / `cache_off`: every request carries a token
//!   not seen before (a pool four times the cache's size, cycled), so
//!   `cache_on` pays verification plus insertion and eviction: the cost of
//!   the cache when it never helps.
//!
//! `cargo bench --bench identity`; `-- --test` runs each case once;
//! `-- --quick` for a fast estimate. Figures: docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use fieldguard::config::{self, LoadedConfig};
use fieldguard::identity::Identifier;
use fieldguard::identity::mint::{TokenRequest, mint_hs256};
use http::{HeaderMap, HeaderValue, header};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Entries in the cache for the `distinct_tokens` cases (small, so the pool
/// that overflows it is quick to mint).
const SMALL_CACHE: usize = 1_000;

fn reference_config() -> LoadedConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fieldguard.yaml");
    config::load(&path).unwrap_or_else(|e| panic!("reference config: {e}"))
}

/// The reference identifier with the token cache set to `entries` (0: off).
fn identifier(loaded: &LoadedConfig, entries: usize) -> Identifier {
    let mut identity = loaded.config.identity.clone();
    let jwt = identity
        .jwt
        .as_mut()
        .unwrap_or_else(|| panic!("the reference config uses JWTs"));
    jwt.cache_max_entries = entries;
    Identifier::from_config(&identity, &loaded.base_dir, &loaded.file)
        .unwrap_or_else(|e| panic!("identifier: {e}"))
}

fn demo_secret(loaded: &LoadedConfig) -> Vec<u8> {
    let jwt = loaded.config.identity.jwt.as_ref();
    let file = jwt
        .and_then(|j| j.hs256_secret_file.as_ref())
        .unwrap_or_else(|| panic!("the reference config has an HS256 secret"));
    let raw = std::fs::read(loaded.resolve(file)).unwrap_or_else(|e| panic!("secret: {e}"));
    raw.trim_ascii_end().to_vec()
}

/// Request headers carrying a demo token for `sub`.
fn request(secret: &[u8], sub: &str) -> HeaderMap {
    let token = mint_hs256(
        secret,
        &TokenRequest {
            sub: sub.into(),
            roles: vec!["support_agent".into()],
            mfa: false,
            purpose: Some("support".into()),
            ttl_secs: 600,
            issuer: Some("fieldguard-demo".into()),
            audience: Some("demo-shop".into()),
        },
    )
    .unwrap_or_else(|e| panic!("mint: {e}"));
    let mut headers = HeaderMap::new();
    let value =
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or_else(|e| panic!("header: {e}"));
    headers.insert(header::AUTHORIZATION, value);
    headers
}

fn bench_identity(c: &mut Criterion) {
    let loaded = reference_config();
    let secret = demo_secret(&loaded);

    let mut g = c.benchmark_group("identify");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let headers = request(&secret, "agent-7");
    for (name, entries) in [("cache_on", 10_000), ("cache_off", 0)] {
        let id = identifier(&loaded, entries);
        // Checked once: the case times a successful identification.
        let p = id
            .identify(&headers, PEER)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.id, "agent-7");
        g.bench_function(format!("repeated_token/{name}"), |b| {
            b.iter(|| id.identify(black_box(&headers), PEER))
        });
    }

    let pool: Vec<HeaderMap> = (0..SMALL_CACHE * 4)
        .map(|i| request(&secret, &format!("agent-{i}")))
        .collect();
    for (name, entries) in [("cache_on", SMALL_CACHE), ("cache_off", 0)] {
        let id = identifier(&loaded, entries);
        assert!(pool.iter().all(|h| id.identify(h, PEER).is_ok()));
        let mut next = pool.iter().cycle();
        g.bench_function(format!("distinct_tokens/{name}"), |b| {
            b.iter(|| {
                let h = next.next().unwrap_or_else(|| unreachable!("cycle"));
                id.identify(black_box(h), PEER)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_identity);
criterion_main!(benches);
