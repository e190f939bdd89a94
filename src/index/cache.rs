//! A bounded cache of decoded bitmaps shared by all transactions of a database, and
//! pools that bound the caches of several databases together (a tenant set).
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

/// One database's entries in a pool.
#[derive(Default)]
struct Space {
    map: HashMap<String, Entry>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

#[derive(Default)]
struct Inner {
    spaces: HashMap<u64, Space>,
    bytes: usize,
    clock: u64,
    next_space: u64,
}

/// Memory for decoded bitmaps that several databases share: `budget` bounds the sum of
/// every database's entries (their serialised sizes), and the least recently used
/// entries of any of them make room.
pub(crate) struct CachePool {
    inner: Mutex<Inner>,
    budget: usize,
}

impl std::fmt::Debug for CachePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePool")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl CachePool {
    pub(crate) fn new(budget: usize) -> Arc<CachePool> {
        Arc::new(CachePool {
            inner: Mutex::new(Inner::default()),
            budget,
        })
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// The bytes of every database's entries.
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

/// One database's cache: its own space in a pool, emptied when it is dropped.
pub(crate) struct BitmapCache {
    pool: Arc<CachePool>,
    space: u64,
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
    /// A cache with a pool of its own.
    pub(crate) fn new(budget: usize) -> BitmapCache {
        BitmapCache::in_pool(&CachePool::new(budget))
    }

    /// A cache whose entries count against `pool`'s budget.
    pub(crate) fn in_pool(pool: &Arc<CachePool>) -> BitmapCache {
        let mut inner = pool.inner.lock();
        let space = inner.next_space;
        inner.next_space += 1;
        inner.spaces.insert(space, Space::default());
        drop(inner);
        BitmapCache {
            pool: Arc::clone(pool),
            space,
        }
    }

    /// Whether the cache holds some generation of `key`: an older one means the key
    /// changes often, and a reader of a few rows may do better reading just those.
    pub(crate) fn holds_any(&self, key: &str) -> bool {
        self.pool
            .inner
            .lock()
            .spaces
            .get(&self.space)
            .is_some_and(|space| space.map.contains_key(key))
    }

    pub(crate) fn get(&self, key: &str, generation: u64) -> Option<Cached> {
        let mut inner = self.pool.inner.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let space = inner.spaces.get_mut(&self.space)?;
        match space.map.get_mut(key) {
            Some(entry) if entry.generation == generation => {
                entry.used = clock;
                let value = entry.value.clone();
                space.hits += 1;
                Some(value)
            }
            _ => {
                space.misses += 1;
                None
            }
        }
    }

    pub(crate) fn insert(&self, key: &str, generation: u64, value: Cached) {
        let bytes = value.bytes();
        let budget = self.pool.budget;
        if bytes > budget / 4 {
            return;
        }
        let mut guard = self.pool.inner.lock();
        let inner = &mut *guard;
        inner.clock += 1;
        let used = inner.clock;
        let Some(space) = inner.spaces.get_mut(&self.space) else {
            return;
        };
        if let Some(old) = space.map.get(key) {
            // Never replace a newer version with an older one.
            if old.generation > generation {
                return;
            }
        }
        let entry = Entry {
            generation,
            value,
            bytes,
            used,
        };
        if let Some(old) = space.map.insert(key.to_owned(), entry) {
            space.bytes -= old.bytes;
            inner.bytes -= old.bytes;
        }
        space.bytes += bytes;
        inner.bytes += bytes;
        if inner.bytes > budget {
            let mut by_age: Vec<(u64, u64, String)> = inner
                .spaces
                .iter()
                .flat_map(|(id, space)| space.map.iter().map(|(k, e)| (e.used, *id, k.clone())))
                .collect();
            by_age.sort_unstable();
            let target = budget / 4 * 3;
            for (_, id, k) in by_age {
                if inner.bytes <= target {
                    break;
                }
                if let Some(space) = inner.spaces.get_mut(&id)
                    && let Some(e) = space.map.remove(&k)
                {
                    space.bytes -= e.bytes;
                    inner.bytes -= e.bytes;
                }
            }
        }
    }

    pub(crate) fn counters(&self) -> CacheCounters {
        let inner = self.pool.inner.lock();
        inner
            .spaces
            .get(&self.space)
            .map(|space| CacheCounters {
                entries: space.map.len(),
                bytes: space.bytes,
                hits: space.hits,
                misses: space.misses,
            })
            .unwrap_or_default()
    }
}

impl Drop for BitmapCache {
    fn drop(&mut self) {
        let mut inner = self.pool.inner.lock();
        if let Some(space) = inner.spaces.remove(&self.space) {
            inner.bytes -= space.bytes;
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

    #[test]
    fn a_pool_bounds_its_caches_together_and_a_dropped_cache_frees_its_share() {
        let pool = CachePool::new(100_000);
        let a = BitmapCache::in_pool(&pool);
        let b = BitmapCache::in_pool(&pool);
        let bitmap = || Cached::Bitmap(Arc::new((0..1000).collect()));
        for i in 0..200 {
            a.insert(&format!("k{i}"), 1, bitmap());
            b.insert(&format!("k{i}"), 1, bitmap());
            assert!(pool.bytes() <= 100_000);
        }
        // Same keys, separate spaces.
        assert!(a.get("k199", 1).is_some() && b.get("k199", 1).is_some());
        let (in_a, in_b) = (a.counters().bytes, b.counters().bytes);
        assert!(in_a > 0 && in_b > 0);
        assert_eq!(pool.bytes(), in_a + in_b);
        drop(a);
        assert_eq!(pool.bytes(), in_b);
    }
}
