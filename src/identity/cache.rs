//! Bounded cache of verified bearer tokens.
//!
//! Real clients send the same token on every request for minutes, and
//! verifying it (base64, signature, claim parsing) was the largest identity
//! cost per request. Only what a successful verification established is
//! kept: the token-derived [`Principal`] and the token's `exp`/`nbf`, which
//! are re-checked on every hit, so a cached token expires at the same second
//! an uncached one would. A token that failed verification is never stored,
//! so a client without a signing key cannot add entries at all.
//!
//! Lookups compare the whole token string (the map's key), never a digest.
//! Memory is bounded by a fixed number of entries and a per-entry size: the
//! token is at most `max_token_bytes` long, and so is the principal built
//! from it as estimated by [`heap_bytes`] (many tiny roles take far more
//! memory than token bytes; such a token is verified every time instead).
//! An entry is therefore at most `2 * max_token_bytes` plus a fixed
//! overhead of under 400 bytes (table slot, `Arc`, inline `Verified`; see
//! the `fixed_overhead_per_entry` test).
//!
//! Why a small sharded table instead of `DashMap`: a full shard is cleared as
//! one step under its own lock, which keeps the bound exact without a global
//! counter or a global lock, and `DashMap` offers no per-shard operations
//! without its `raw-api` feature. A request hashes its token once (keyed
//! SipHash, so the table layout cannot be predicted from outside); that one
//! hash picks the shard and finds the entry in the shard's `HashTable`, for
//! the lookup and, on a miss, for the insertion (hashing a typical token is
//! about a quarter of a hit's cost, so a `HashMap` inside a sharded map,
//! which hashes twice, would be measurably slower). A hit takes one read
//! lock on one shard.

use super::{IdentityError, Principal};
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Shards at most; small caches use fewer so that each shard still holds a
/// useful number of entries (see [`TokenCache::new`]).
const MAX_SHARDS: usize = 16;
/// Entries per shard below which another shard is not worth it.
const MIN_ENTRIES_PER_SHARD: usize = 64;
/// What an allocation costs beyond its requested size, at most (allocator
/// header and size-class rounding), for [`heap_bytes`].
const ALLOCATION_OVERHEAD: usize = 32;

/// What verifying one token established. Immutable once built: everything in
/// it follows from the token's signed contents and the verifier's keys and
/// claim mapping, which are fixed for the verifier's lifetime.
#[derive(Debug)]
pub(super) struct Verified {
    /// `purpose` is the token's own purpose claim; `None` when it has none,
    /// because the request-header fallback differs per request and is applied
    /// by [`Verified::principal`], never stored.
    pub(super) principal: Principal,
    pub(super) exp: u64,
    pub(super) nbf: Option<u64>,
}

impl Verified {
    /// The time checks `jsonwebtoken` makes on a fresh verification, with the
    /// same comparisons and order (`exp` first, then `nbf`); saturating only
    /// where the library's arithmetic could not overflow with a real clock.
    pub(super) fn check_time(&self, now: u64, leeway: u64) -> Result<(), IdentityError> {
        if self.is_expired(now, leeway) {
            return Err(IdentityError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(IdentityError::NotYetValid);
        }
        Ok(())
    }

    /// Refused now and at every later time (clocks move forward), so it is
    /// the first thing to drop when a shard is full.
    fn is_expired(&self, now: u64, leeway: u64) -> bool {
        self.exp < now.saturating_sub(leeway)
    }

    /// The principal for one request: the cached token facts plus, when the
    /// token has no purpose claim, this request's header purpose.
    pub(super) fn principal(
        &self,
        header_purpose: impl FnOnce() -> Result<Option<String>, IdentityError>,
    ) -> Result<Principal, IdentityError> {
        let mut principal = self.principal.clone();
        if principal.purpose.is_none() {
            principal.purpose = header_purpose()?;
        }
        Ok(principal)
    }
}

struct Entry {
    hash: u64,
    token: Box<str>,
    verified: Arc<Verified>,
}

type Shard = RwLock<HashTable<Entry>>;

/// A token that may be cached, with its hash computed once.
pub(super) struct Key<'t> {
    hash: u64,
    token: &'t str,
}

/// Lives inside one `JwtVerifier`, which is rebuilt with the runtime on
/// every reload (see `JwtVerifier`), so a changed key set always starts
/// from an empty cache.
pub(super) struct TokenCache {
    shards: Box<[Shard]>,
    hasher: RandomState,
    per_shard: usize,
    max_token_bytes: usize,
    /// Lookups that found the token / did not (for metrics; relaxed
    /// counters, read at scrape time).
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a cache has done since it was built (one runtime's lifetime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

impl std::fmt::Debug for TokenCache {
    /// Never prints the tokens: they are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// `None` when `max_entries` is 0 (caching disabled). Holds at most
    /// `max_entries` entries: the shard count is a power of two and every
    /// shard holds `max_entries / shards` (rounded down).
    pub(super) fn new(max_entries: usize, max_token_bytes: usize) -> Option<Self> {
        if max_entries == 0 || max_token_bytes == 0 {
            return None;
        }
        let wanted = (max_entries / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        // Largest power of two not above `wanted`.
        let shards = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        Some(Self {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            per_shard: max_entries / shards,
            max_token_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The key for `token`, or `None` when it is too long to be cached
    /// (it is then verified every time).
    pub(super) fn key<'t>(&self, token: &'t str) -> Option<Key<'t>> {
        (token.len() <= self.max_token_bytes).then(|| Key {
            hash: self.hasher.hash_one(token),
            token,
        })
    }

    /// Bits 32 and up pick the shard: the table uses the low bits for the
    /// bucket and the top 7 as a tag, so shard choice stays independent of
    /// both.
    fn shard(&self, key: &Key<'_>) -> &Shard {
        &self.shards[(key.hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// The entry for exactly this token string. A poisoned shard counts as
    /// a miss: the caller then verifies the token in full, which is always
    /// correct.
    pub(super) fn get(&self, key: &Key<'_>) -> Option<Arc<Verified>> {
        let found = self.shard(key).read().ok().and_then(|table| {
            table
                .find(key.hash, |e| *e.token == *key.token)
                .map(|e| e.verified.clone())
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups so far and the entries held now (locks each shard in turn
    /// for reading: for scrapes, not the request path).
    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .shards
                .iter()
                .map(|s| s.read().map(|t| t.len() as u64).unwrap_or(0))
                .sum(),
        }
    }

    /// Stores a freshly verified token. A full shard first drops the entries
    /// that have expired for good; if that frees less than a quarter of it,
    /// the whole shard is cleared. Either way the next sweep of that shard
    /// is at least a quarter of a shard's inserts away, so eviction costs
    /// O(1) per insert on average, and no shard ever exceeds its share.
    pub(super) fn insert(&self, key: &Key<'_>, verified: Arc<Verified>, now: u64, leeway: u64) {
        if heap_bytes(&verified.principal) > self.max_token_bytes {
            return;
        }
        let Ok(mut table) = self.shard(key).write() else {
            return;
        };
        let same = |e: &Entry| *e.token == *key.token;
        if let Some(entry) = table.find_mut(key.hash, same) {
            entry.verified = verified;
            return;
        }
        if table.len() >= self.per_shard {
            table.retain(|e| !e.verified.is_expired(now, leeway));
            let low_water = self.per_shard - (self.per_shard / 4).max(1);
            if table.len() > low_water {
                table.clear();
            }
        }
        table.insert_unique(
            key.hash,
            Entry {
                hash: key.hash,
                token: key.token.into(),
                verified,
            },
            |e| e.hash,
        );
    }

    /// Entries held right now (locks each shard in turn; tests only).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|t| t.len()).unwrap_or(0))
            .sum()
    }

    #[cfg(test)]
    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[cfg(test)]
    pub(super) fn per_shard(&self) -> usize {
        self.per_shard
    }
}

/// An upper estimate of the heap memory `p` holds (its inline part is part
/// of the fixed per-entry overhead); what [`TokenCache::insert`] compares
/// with the per-entry limit.
pub(super) fn heap_bytes(p: &Principal) -> usize {
    use super::AttrValue;
    use std::mem::size_of;
    fn string(s: &String) -> usize {
        match s.capacity() {
            0 => 0,
            c => c + ALLOCATION_OVERHEAD,
        }
    }
    fn strings(v: &[String], capacity: usize) -> usize {
        let slots = match capacity {
            0 => 0,
            c => c * size_of::<String>() + ALLOCATION_OVERHEAD,
        };
        slots + v.iter().map(string).sum::<usize>()
    }
    let attributes: usize = p
        .attributes
        .iter()
        .map(|(k, v)| {
            // B-tree nodes hold up to 11 pairs and are at least half full:
            // count each pair's slot twice, plus a node header per pair.
            let slot = 2 * (size_of::<String>() + size_of::<AttrValue>()) + ALLOCATION_OVERHEAD;
            let value = match v {
                AttrValue::String(s) => string(s),
                AttrValue::Set(items) => strings(items, items.capacity()),
                AttrValue::Long(_) | AttrValue::Bool(_) => 0,
            };
            slot + string(k) + value
        })
        .sum();
    string(&p.id)
        + strings(&p.roles, p.roles.capacity())
        + p.purpose.as_ref().map_or(0, string)
        + attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentitySource;
    use std::collections::BTreeMap;

    const NOW: u64 = 1_700_000_000;

    fn put(c: &TokenCache, token: &str, v: Arc<Verified>, now: u64, leeway: u64) {
        let key = c.key(token).expect("short enough to cache");
        c.insert(&key, v, now, leeway);
    }

    fn get(c: &TokenCache, token: &str) -> Option<Arc<Verified>> {
        c.get(&c.key(token)?)
    }

    fn verified(id: &str, exp: u64, nbf: Option<u64>) -> Arc<Verified> {
        Arc::new(Verified {
            principal: Principal {
                id: id.into(),
                roles: vec!["nurse".into()],
                mfa: false,
                purpose: None,
                attributes: BTreeMap::new(),
                source: IdentitySource::Jwt,
            },
            exp,
            nbf,
        })
    }

    #[test]
    fn disabled_by_zero() {
        assert!(TokenCache::new(0, 4096).is_none());
        assert!(TokenCache::new(10, 0).is_none());
    }

    #[test]
    fn shard_layout_never_exceeds_the_bound() {
        for max in [1, 2, 63, 64, 127, 128, 1000, 1023, 10_000, 1_000_000] {
            let c = TokenCache::new(max, 4096).unwrap();
            assert!(c.shard_count().is_power_of_two(), "{max}");
            assert!(c.shard_count() <= MAX_SHARDS);
            assert!(c.per_shard() >= 1, "{max}");
            assert!(c.shard_count() * c.per_shard() <= max, "{max}");
        }
        assert_eq!(TokenCache::new(10_000, 4096).unwrap().shard_count(), 16);
        assert_eq!(TokenCache::new(100, 4096).unwrap().shard_count(), 1);
    }

    #[test]
    fn exact_key_only() {
        let c = TokenCache::new(100, 4096).unwrap();
        put(&c, "aaa.bbb.ccc", verified("a", NOW + 60, None), NOW, 0);
        assert_eq!(get(&c, "aaa.bbb.ccc").unwrap().principal.id, "a");
        for other in [
            "aaa.bbb.ccd",
            "aaa.bbb.cc",
            "aaa.bbb.ccc ",
            "AAA.bbb.ccc",
            "",
        ] {
            assert!(get(&c, other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn a_hash_match_alone_is_not_a_hit() {
        let c = TokenCache::new(100, 4096).unwrap();
        put(&c, "aaa.bbb.ccc", verified("a", NOW + 60, None), NOW, 0);
        let real = c.key("aaa.bbb.ccc").unwrap();
        let forged = Key {
            hash: real.hash,
            token: "xxx.yyy.zzz",
        };
        assert!(c.get(&real).is_some());
        assert!(c.get(&forged).is_none());
        // Two tokens sharing a hash are two entries.
        c.insert(&forged, verified("x", NOW + 60, None), NOW, 0);
        assert_eq!(c.get(&real).unwrap().principal.id, "a");
        assert_eq!(c.get(&forged).unwrap().principal.id, "x");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn fixed_overhead_per_entry() {
        // Table slot (hash, boxed token, Arc pointer), the Arc's counters
        // and inline `Verified`, and two allocations (token, Arc). The
        // table's spare capacity at most doubles the slot.
        let overhead = 2 * std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<usize>()
            + std::mem::size_of::<Verified>()
            + 2 * ALLOCATION_OVERHEAD;
        assert!(overhead < 400, "{overhead}: update the module docs");
    }

    #[test]
    fn principals_larger_than_the_limit_are_not_cached() {
        let c = TokenCache::new(100, 1024).unwrap();
        let mut many_roles = verified("a", NOW + 60, None);
        Arc::get_mut(&mut many_roles).unwrap().principal.roles =
            (0..100).map(|i| format!("r{i}")).collect();
        assert!(heap_bytes(&many_roles.principal) > 1024);
        put(&c, "tiny.token.with-many-roles", many_roles, NOW, 0);
        assert_eq!(c.len(), 0);
        put(
            &c,
            "tiny.token.few-roles",
            verified("a", NOW + 60, None),
            NOW,
            0,
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn heap_estimate_covers_every_owned_string() {
        use crate::identity::AttrValue;
        let base = verified("", NOW, None).principal.clone();
        let mut p = Principal {
            id: String::new(),
            roles: Vec::new(),
            ..base
        };
        assert_eq!(heap_bytes(&p), 0);
        let mut last = 0;
        let mut grows = |p: &Principal, what: &str| {
            let now = heap_bytes(p);
            assert!(now > last, "{what}: {now} <= {last}");
            last = now;
        };
        p.id = "alice".into();
        grows(&p, "id");
        p.roles.push("nurse".into());
        grows(&p, "role");
        p.purpose = Some("treatment".into());
        grows(&p, "purpose");
        p.attributes.insert("level".into(), AttrValue::Long(3));
        grows(&p, "attribute");
        p.attributes
            .insert("wards".into(), AttrValue::Set(vec!["a".into(), "b".into()]));
        grows(&p, "set attribute");
        // Each string counts at least its bytes.
        p.id = "x".repeat(5000);
        assert!(heap_bytes(&p) > 5000);
    }

    #[test]
    fn long_tokens_are_not_cached() {
        let c = TokenCache::new(100, 8).unwrap();
        assert!(c.key("123456789").is_none());
        assert!(c.key("12345678").is_some());
    }

    #[test]
    fn stays_within_bound_under_many_distinct_tokens() {
        let c = TokenCache::new(10_000, 4096).unwrap();
        for i in 0..50_000u32 {
            put(
                &c,
                &format!("h.p{i}.s"),
                verified("a", NOW + 600, None),
                NOW,
                30,
            );
            if i % 997 == 0 {
                assert!(c.len() <= 10_000, "after {i}: {}", c.len());
            }
        }
        assert!(c.len() <= 10_000, "{}", c.len());
        // The newest token is always kept.
        assert!(get(&c, "h.p49999.s").is_some());
    }

    #[test]
    fn a_full_shard_drops_expired_entries_before_live_ones() {
        // 100 entries: one shard of 100.
        let c = TokenCache::new(100, 4096).unwrap();
        for i in 0..100 {
            // Half expire at NOW + 10, half live long.
            let exp = if i % 2 == 0 { NOW + 10 } else { NOW + 3600 };
            put(&c, &format!("t{i}"), verified("a", exp, None), NOW, 0);
        }
        assert_eq!(c.len(), 100);
        // Later, the short-lived half has expired: only those are dropped.
        put(&c, "new", verified("b", NOW + 3600, None), NOW + 100, 0);
        assert_eq!(c.len(), 51);
        assert!(get(&c, "t1").is_some() && get(&c, "t0").is_none());
        assert!(get(&c, "new").is_some());

        // Nothing expired: the shard is cleared, the new entry kept.
        for i in 0..49 {
            put(
                &c,
                &format!("u{i}"),
                verified("a", NOW + 3600, None),
                NOW,
                0,
            );
        }
        assert_eq!(c.len(), 100);
        put(&c, "newest", verified("c", NOW + 3600, None), NOW, 0);
        assert_eq!(c.len(), 1);
        assert!(get(&c, "newest").is_some());
    }

    #[test]
    fn re_inserting_a_present_token_does_not_evict() {
        let c = TokenCache::new(2, 4096).unwrap();
        put(&c, "a", verified("a", NOW + 60, None), NOW, 0);
        put(&c, "b", verified("b", NOW + 60, None), NOW, 0);
        put(&c, "a", verified("a", NOW + 60, None), NOW, 0);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn time_checks_match_jsonwebtoken() {
        // jsonwebtoken: expired iff exp < now - leeway; immature iff
        // nbf > now + leeway; exp is checked first.
        let v = verified("a", NOW, Some(NOW - 100));
        assert_eq!(v.check_time(NOW + 30, 30), Ok(()));
        assert_eq!(v.check_time(NOW + 31, 30), Err(IdentityError::Expired));
        assert_eq!(v.check_time(NOW, 0), Ok(()));
        assert_eq!(v.check_time(NOW + 1, 0), Err(IdentityError::Expired));
        assert_eq!(v.check_time(NOW - 130, 30), Ok(()));
        assert_eq!(v.check_time(NOW - 131, 30), Err(IdentityError::NotYetValid));
        let both = verified("a", NOW - 1000, Some(NOW + 1000));
        assert_eq!(both.check_time(NOW, 0), Err(IdentityError::Expired));
        // A clock near the ends of the range neither panics nor wraps.
        assert_eq!(verified("a", NOW, None).check_time(0, 3600), Ok(()));
        assert_eq!(
            verified("a", u64::MAX, Some(u64::MAX)).check_time(u64::MAX, 3600),
            Ok(())
        );
    }

    #[test]
    fn debug_output_holds_no_tokens() {
        let c = TokenCache::new(10, 4096).unwrap();
        put(
            &c,
            "secret.token.value",
            verified("a", NOW + 60, None),
            NOW,
            0,
        );
        assert!(!format!("{c:?}").contains("secret"));
    }
}
