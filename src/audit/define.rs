//! The writer's memory of definitions: the id it gave each `shared`
//! content, and whether the current file holds its definition yet.
//!
//! Bounded: past [`MAX_DEFINITIONS`] contents the oldest is forgotten, and
//! written again (same id, same content) if a record needs it later. The
//! memory is keyed by the content itself ([`super::record::Shared`]),
//! hashed with foldhash: a record whose kind the writer knows costs neither
//! serialising its shared part nor a cryptographic hash of it, only its
//! own line's (the audit benchmark's writer share stays below format 1's).
//! The content is serialised, and its SHA-256 id computed, when it is new.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foldhash::fast::RandomState;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

/// Characters of a definition id (format 3): the first 11 base64url
/// characters of its content's SHA-256, 66 bits, so ids of distinct
/// contents do not meet in practice (a file holds at most a few thousand),
/// and the writer lengthens one that would. Five bytes shorter than the
/// 16 hex digits (64 bits) of format 2 on every request line.
pub const ID_LEN: usize = 11;

/// SHA-256 of a definition's `shared` object (its canonical JSON), in
/// base64url (43 characters): a format-3 id is a prefix of this, [`ID_LEN`]
/// characters long unless the writer had to lengthen it.
pub fn content_digest(shared_canonical: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(shared_canonical))
}

/// Distinct contents remembered at most. A definition of the reference
/// deployment is 0.5 to 3 KB, so this is a few MB at worst; a deployment
/// has far fewer kinds of request (route × role × outcome) in use at once.
pub const MAX_DEFINITIONS: usize = 1024;

struct Known {
    id: String,
    /// The file (by number) that holds its definition, if any does.
    written_in: Option<u64>,
}

pub struct Definitions<K> {
    known: HashMap<Arc<K>, Known, RandomState>,
    /// Content by id: a new content whose 11-character id is taken by
    /// another gets the whole digest.
    by_id: HashMap<String, Arc<K>, RandomState>,
    /// Contents, oldest first, to forget past the bound.
    order: VecDeque<Arc<K>>,
    /// The current file's number.
    file: u64,
    max: usize,
}

impl<K: Hash + Eq + Serialize + Clone> Definitions<K> {
    pub fn new(max: usize) -> Self {
        Self {
            known: HashMap::default(),
            by_id: HashMap::default(),
            order: VecDeque::new(),
            file: 0,
            max: max.max(1),
        }
    }

    /// A new file starts: it holds no definition yet.
    pub fn new_file(&mut self) {
        self.file += 1;
    }

    /// The id of `shared`, and whether its definition must be written
    /// before a record may refer to it (the current file does not hold it);
    /// it is then taken as written.
    pub fn id_for(&mut self, shared: &K) -> (String, bool) {
        if let Some(k) = self.known.get_mut(shared) {
            let write = k.written_in != Some(self.file);
            k.written_in = Some(self.file);
            return (k.id.clone(), write);
        }
        if self.known.len() >= self.max
            && let Some(oldest) = self.order.pop_front()
            && let Some(k) = self.known.remove(&oldest)
        {
            self.by_id.remove(&k.id);
        }
        // Its serialisation is its canonical JSON (record.rs holds its
        // fields in bytewise order); plain values, so it cannot fail.
        let digest = content_digest(&serde_json::to_vec(shared).unwrap_or_default());
        let short = &digest[..ID_LEN];
        let id = if self.by_id.contains_key(short) {
            digest.clone()
        } else {
            short.to_string()
        };
        let content = Arc::new(shared.clone());
        self.by_id.insert(id.clone(), content.clone());
        self.order.push_back(content.clone());
        self.known.insert(
            content,
            Known {
                id: id.clone(),
                written_in: Some(self.file),
            },
        );
        (id, true)
    }

    /// Contents remembered.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_content_is_written_once_per_file() {
        let mut d = Definitions::new(8);
        let (a, write) = d.id_for(&"a".to_string());
        assert!(write);
        assert_eq!(a, content_digest(b"\"a\"")[..ID_LEN]);
        assert_eq!(d.id_for(&"a".to_string()), (a.clone(), false));
        let (b, write) = d.id_for(&"b".to_string());
        assert!(write && b != a);
        d.new_file();
        assert_eq!(d.id_for(&"a".to_string()), (a.clone(), true));
        assert_eq!(d.id_for(&"a".to_string()), (a, false));
    }

    #[test]
    fn memory_is_bounded_and_a_forgotten_content_keeps_its_id() {
        let mut d = Definitions::new(2);
        let (a, _) = d.id_for(&1u32);
        d.id_for(&2u32);
        d.id_for(&3u32);
        assert_eq!(d.len(), 2);
        // 1 was forgotten: written again, under the same id.
        assert_eq!(d.id_for(&1u32), (a, true));
        assert_eq!(d.len(), 2);
    }
}
