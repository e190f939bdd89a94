//! A bounded cache of decoded bitmaps shared by all transactions of a database.
//!
//! **Invariant**: an entry is keyed by the bitmap key *and* the generation of the commit
//! that last changed it, read from the caller's own snapshot (`storage::BITMAP_GEN`), so
//! a reader can only ever be served the version its snapshot holds. Generations only
//! grow, so a `(key, generation)` pair names one content forever.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use roaring::RoaringBitmap;

use super::Bsi;

/// A decoded index object.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Bitmap(Arc<RoaringBitmap>),
    Bsi(Arc<Bsi>),
}

impl Cached {
    fn bytes(&self) -> usize {
        let base = 64;
        match self {
            Cached::Bitmap(b) => base + b.serialized_size(),
            Cached::Bsi(bsi) => {
                base + bsi.exists.serialized_size()
                    + bsi
                        .slices
                        .iter()
                        .chain(bsi.buckets.values())
                        .map(RoaringBitmap::serialized_size)
                        .sum::<usize>()
            }
        }
    }
}

struct Entry {
    generation: u64,
    value: Cached,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    bytes: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

/// The cache; `budget` bounds the sum of the entries' serialised sizes.
pub(crate) struct BitmapCache {
    inner: Mutex<Inner>,
    budget: usize,
}

/// Counters for statistics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CacheCounters {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl BitmapCache {
    pub(crate) fn new(budget: usize) -> BitmapCache {
        BitmapCache {
            inner: Mutex::new(Inner::default()),
            budget,
        }
    }

    /// Whether the cache holds some generation of `key`: an older one means the key
    /// changes often, and a reader of a few rows may do better reading just those.
    pub(crate) fn holds_any(&self, key: &str) -> bool {
        self.inner.lock().map.contains_key(key)
    }

    pub(crate) fn get(&self, key: &str, generation: u64) -> Option<Cached> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let clock = inner.clock;
        match inner.map.get_mut(key) {
            Some(entry) if entry.generation == generation => {
                entry.used = clock;
                let value = entry.value.clone();
                inner.hits += 1;
                Some(value)
            }
            _ => {
                inner.misses += 1;
                None
            }
        }
    }

    pub(crate) fn insert(&self, key: &str, generation: u64, value: Cached) {
        let bytes = value.bytes();
        if bytes > self.budget / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.map.get(key) {
            // Never replace a newer version with an older one.
            if old.generation > generation {
                return;
            }
        }
        if let Some(old) = inner.map.insert(
            key.to_owned(),
            Entry {
                generation,
                value,
                bytes,
                used,
            },
        ) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        if inner.bytes > self.budget {
            let mut by_age: Vec<(u64, String)> =
                inner.map.iter().map(|(k, e)| (e.used, k.clone())).collect();
            by_age.sort_unstable();
            let target = self.budget / 4 * 3;
            for (_, k) in by_age {
                if inner.bytes <= target {
                    break;
                }
                if let Some(e) = inner.map.remove(&k) {
                    inner.bytes -= e.bytes;
                }
            }
        }
    }

    pub(crate) fn counters(&self) -> CacheCounters {
        let inner = self.inner.lock();
        CacheCounters {
            entries: inner.map.len(),
            bytes: inner.bytes,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_must_match_and_budget_holds() {
        let cache = BitmapCache::new(100_000);
        let bitmap: RoaringBitmap = (0..100).collect();
        cache.insert("a", 3, Cached::Bitmap(Arc::new(bitmap)));
        assert!(cache.get("a", 3).is_some());
        assert!(cache.get("a", 4).is_none());
        assert!(cache.get("b", 3).is_none());
        for i in 0..1000 {
            let b: RoaringBitmap = (0..100).collect();
            cache.insert(&format!("k{i}"), 1, Cached::Bitmap(Arc::new(b)));
        }
        assert!(cache.counters().bytes <= 100_000);
    }
}
