//! What observing routes saw of the members their configuration does not
//! name, across requests: the state behind the admin listener's
//! `/observed` and `fieldguard onboard observed`.
//!
//! It holds counts by route, entity, member path and JSON type, and how
//! many of those values each detector matched; never a value. Its size is
//! bounded ([`ObservedStore::MAX_ENTRIES`]): an upstream inventing keys
//! cannot grow it, further places are only counted as overflow. It lives
//! in memory for the life of the process (reloads keep it): an operator
//! saves it with `curl …/observed > observed.json` to keep it longer.

use fieldguard_core::catalogue::Catalogue;
use fieldguard_core::config::JsonType;
use fieldguard_core::detect::Detector;
use fieldguard_core::redact::Observed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Where one kind of value was seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    /// `METHOD /template`.
    route: String,
    /// The record's entity, or `(wrapper)`.
    entity: String,
    field: String,
    json_type: JsonType,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    count: u64,
    detected: [u64; Detector::ALL.len()],
}

#[derive(Debug, Default)]
struct Inner {
    places: BTreeMap<Place, Tally>,
    overflow: u64,
}

/// The process's observations (see the module doc).
#[derive(Debug, Default)]
pub struct ObservedStore {
    inner: Mutex<Inner>,
}

impl ObservedStore {
    /// Distinct places held; later ones count as overflow.
    pub const MAX_ENTRIES: usize = 4096;

    /// Adds one body's observations on `route` (`METHOD /template`),
    /// its places named by `catalogue`.
    pub fn record(&self, route: &str, catalogue: &Catalogue, obs: &Observed) {
        if obs.is_empty() {
            return;
        }
        // A poisoned lock only means a panic elsewhere mid-update; the
        // counts in it are still counts.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.overflow = inner.overflow.saturating_add(u64::from(obs.overflow));
        for e in obs.sorted() {
            let place = Place {
                route: route.to_string(),
                entity: catalogue.scope_name(e.scope).to_string(),
                field: e.path.to_string(),
                json_type: e.json_type,
            };
            let full = inner.places.len() >= Self::MAX_ENTRIES;
            let tally = match inner.places.get_mut(&place) {
                Some(t) => t,
                None if full => {
                    inner.overflow = inner.overflow.saturating_add(u64::from(e.count));
                    continue;
                }
                None => inner.places.entry(place).or_default(),
            };
            tally.count = tally.count.saturating_add(u64::from(e.count));
            for (d, n) in e.detected.iter() {
                let slot = &mut tally.detected[d as usize];
                *slot = slot.saturating_add(u64::from(n));
            }
        }
    }

    /// Everything held, in a stable order.
    pub fn snapshot(&self) -> ObservedSnapshot {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ObservedSnapshot {
            version: SNAPSHOT_VERSION,
            entries: inner
                .places
                .iter()
                .map(|(p, t)| ObservedEntry {
                    route: p.route.clone(),
                    entity: p.entity.clone(),
                    field: p.field.clone(),
                    json_type: p.json_type.as_str().to_string(),
                    count: t.count,
                    detected: Detector::ALL
                        .into_iter()
                        .filter(|d| t.detected[*d as usize] > 0)
                        .map(|d| (d.as_str().to_string(), t.detected[d as usize]))
                        .collect(),
                })
                .collect(),
            overflow: inner.overflow,
        }
    }
}

/// The format of `/observed` and of the state files `fieldguard onboard
/// observed --state` reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// `/observed`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedSnapshot {
    pub version: u32,
    pub entries: Vec<ObservedEntry>,
    /// Values at places beyond the store's bound (not itemised).
    pub overflow: u64,
}

/// One place and what was seen there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedEntry {
    /// `METHOD /template` of the route.
    pub route: String,
    /// The record's entity, or `(wrapper)` for the body around the records.
    pub entity: String,
    /// Dot path in the record (`emergency.phone`) or JSONPath in the
    /// wrapper (`$.page.next`); keys that are not identifiers are `?`.
    pub field: String,
    /// `string`, `number`, `boolean`, `null`, `array` or `object`.
    #[serde(rename = "type")]
    pub json_type: String,
    /// Values seen.
    pub count: u64,
    /// Values each detector matched, by detector name.
    #[serde(default)]
    pub detected: BTreeMap<String, u64>,
}
