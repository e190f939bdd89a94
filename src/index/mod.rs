//! Bitmap indexes over dense row ids.
//!
//! Two shapes, both plain roaring bitmaps in the end:
//! - **categorical** bitmaps, one per `(kind, field, value)`: tags, stage, region, owner …
//!   and per kind the `:live` and `:deleted` sets;
//! - **bit-sliced** numeric indexes ([`Bsi`]), one per `(kind, field)`: an `exists`
//!   bitmap, 64 slices of the two's-complement value and up to 128 logarithmic buckets.
//!
//! A write transaction never touches stored bitmaps directly: it records per-key
//! additions and removals in an [`IndexDelta`] and `txn.rs` merges each touched chunk
//! once at commit ([`store::merge`]).

pub(crate) mod bsi;
pub(crate) mod cache;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

pub(crate) use bsi::Bsi;

use crate::schema::EntityKind;
pub(crate) use crate::schema::Terms;

/// Key of a categorical bitmap: `"{kind}/{field}={value}"`.
pub(crate) fn cat_key(kind: EntityKind, field: &str, value: &str) -> String {
    let mut key = String::with_capacity(kind.as_str().len() + field.len() + value.len() + 2);
    push_cat_key(&mut key, kind, field, value);
    key
}

fn push_cat_key(key: &mut String, kind: EntityKind, field: &str, value: &str) {
    // Hot in bulk loads: plain pushes, no formatting machinery.
    key.push_str(kind.as_str());
    key.push('/');
    key.push_str(field);
    key.push('=');
    key.push_str(value);
}

/// The prefix shared by all value keys of a categorical field: `"{kind}/{field}="`.
pub(crate) fn cat_prefix(kind: EntityKind, field: &str) -> String {
    format!("{kind}/{field}=")
}

/// The categorical field holding a record's state: `live` or `deleted` (recycle bin).
pub(crate) const STATE_FIELD: &str = "_state";

/// Key of the live-records bitmap of a kind.
pub(crate) fn live_key(kind: EntityKind) -> String {
    cat_key(kind, STATE_FIELD, "live")
}

/// The pseudo-field under which watched segments keep their members.
pub(crate) const WATCH_FIELD: &str = "_watch";

/// Key of a watched segment's member bitmap: `"{kind}/_watch={segment}"`.
pub(crate) fn watch_key(kind: EntityKind, segment: &str) -> String {
    cat_key(kind, WATCH_FIELD, segment)
}

/// Key of the recycle-bin bitmap of a kind.
pub(crate) fn deleted_key(kind: EntityKind) -> String {
    cat_key(kind, STATE_FIELD, "deleted")
}

/// Base of a numeric index's keys: `"{kind}/{field}#"`; also its generation key.
/// Under it: `e` (rows with a value), `0`..`63` (slices), `b0`..`b127` (buckets).
pub(crate) fn bsi_base(kind: EntityKind, field: &str) -> String {
    format!("{kind}/{field}#")
}

/// Pending additions and removals of one bitmap. Invariant: `add` and `remove` are
/// disjoint; the last call for a row wins.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitDelta {
    pub(crate) add: RoaringBitmap,
    pub(crate) remove: RoaringBitmap,
}

impl BitDelta {
    pub(crate) fn set(&mut self, row: u32, present: bool) {
        if present {
            self.remove.remove(row);
            self.add.insert(row);
        } else {
            self.add.remove(row);
            self.remove.insert(row);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Folds in a delta recorded after this one: its changes win.
    pub(crate) fn absorb(&mut self, later: BitDelta) {
        self.add -= &later.remove;
        self.remove -= &later.add;
        self.add |= later.add;
        self.remove |= later.remove;
    }

    /// Folds in rows to add and to remove recorded after this delta: they win.
    pub(crate) fn compose(&mut self, add: &RoaringBitmap, remove: &RoaringBitmap) {
        self.add -= remove;
        self.remove -= add;
        self.add |= add;
        self.remove |= remove;
    }

    /// Applies the delta to a bitmap.
    pub(crate) fn apply(&self, bitmap: &mut RoaringBitmap) {
        *bitmap -= &self.remove;
        *bitmap |= &self.add;
    }
}

/// Pending changes of one numeric index.
#[derive(Debug, Default, Clone)]
pub(crate) struct BsiDelta {
    pub(crate) exists: BitDelta,
    pub(crate) slices: Vec<BitDelta>,
    /// By [`bsi::bucket_of`].
    pub(crate) buckets: BTreeMap<u16, BitDelta>,
}

impl BsiDelta {
    /// Whether it changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.exists.is_empty()
            && self.slices.iter().all(BitDelta::is_empty)
            && self.buckets.values().all(BitDelta::is_empty)
    }

    /// Folds in a delta recorded after this one: its changes win.
    pub(crate) fn absorb(&mut self, later: BsiDelta) {
        let BsiDelta {
            exists,
            slices,
            buckets,
        } = later;
        self.exists.absorb(exists);
        for (bit, delta) in slices.into_iter().enumerate() {
            if !delta.is_empty() {
                self.slice(bit).absorb(delta);
            }
        }
        for (bucket, delta) in buckets {
            self.buckets.entry(bucket).or_default().absorb(delta);
        }
    }

    fn slice(&mut self, bit: usize) -> &mut BitDelta {
        if self.slices.len() <= bit {
            self.slices.resize_with(bit + 1, BitDelta::default);
        }
        &mut self.slices[bit]
    }

    /// Records that `row` now holds `new` (or nothing) where it held `old`.
    pub(crate) fn change(&mut self, row: u32, old: Option<i64>, new: Option<i64>) {
        if old == new {
            return;
        }
        if old.is_some() != new.is_some() {
            self.exists.set(row, new.is_some());
        }
        let old_bucket = old.map(bsi::bucket_of);
        let new_bucket = new.map(bsi::bucket_of);
        if old_bucket != new_bucket {
            if let Some(bucket) = old_bucket {
                self.buckets.entry(bucket).or_default().set(row, false);
            }
            if let Some(bucket) = new_bucket {
                self.buckets.entry(bucket).or_default().set(row, true);
            }
        }
        let old_bits = old.map_or(0, |v| v as u64);
        let new_bits = new.map_or(0, |v| v as u64);
        let mut diff = old_bits ^ new_bits;
        while diff != 0 {
            let bit = diff.trailing_zeros() as usize;
            self.slice(bit).set(row, new_bits >> bit & 1 == 1);
            diff &= diff - 1;
        }
    }

    /// Records whatever turns `current` into `target`, on top of the pending changes.
    pub(crate) fn replace(&mut self, current: &Bsi, target: &Bsi) {
        fn compose(pending: &mut BitDelta, have: &RoaringBitmap, want: &RoaringBitmap) {
            let add = want - have;
            let remove = have - want;
            pending.add -= &remove;
            pending.remove -= &add;
            pending.add |= add;
            pending.remove |= remove;
        }
        let empty = RoaringBitmap::new();
        compose(&mut self.exists, &current.exists, &target.exists);
        let width = target.slices.len().max(current.slices.len());
        if self.slices.len() < width {
            self.slices.resize_with(width, BitDelta::default);
        }
        for bit in 0..width {
            let have = current.slices.get(bit).unwrap_or(&empty);
            let want = target.slices.get(bit).unwrap_or(&empty);
            compose(&mut self.slices[bit], have, want);
        }
        let buckets: std::collections::BTreeSet<u16> = current
            .buckets
            .keys()
            .chain(target.buckets.keys())
            .copied()
            .collect();
        for bucket in buckets {
            let have = current.buckets.get(&bucket).unwrap_or(&empty);
            let want = target.buckets.get(&bucket).unwrap_or(&empty);
            compose(self.buckets.entry(bucket).or_default(), have, want);
        }
    }

    pub(crate) fn apply(&self, bsi: &mut Bsi) {
        self.exists.apply(&mut bsi.exists);
        if bsi.slices.len() < self.slices.len() {
            bsi.slices
                .resize_with(self.slices.len(), RoaringBitmap::new);
        }
        for (slice, delta) in bsi.slices.iter_mut().zip(&self.slices) {
            delta.apply(slice);
        }
        for (&bucket, delta) in &self.buckets {
            delta.apply(bsi.buckets.entry(bucket).or_default());
        }
        bsi.trim();
    }
}

/// All pending index changes of a write transaction.
#[derive(Debug, Default)]
pub(crate) struct IndexDelta {
    pub(crate) cats: HashMap<String, BitDelta>,
    /// Keyed by [`bsi_base`].
    pub(crate) nums: HashMap<String, BsiDelta>,
    key_buf: String,
    /// While a mark is set: each key's delta as it was at the mark, saved on its first
    /// change after it (`None`: the key had no delta). Every change goes through
    /// [`cat_mut`](Self::cat_mut) or [`num_mut`](Self::num_mut), which save.
    saved: Option<Saved>,
}

#[derive(Debug, Default)]
struct Saved {
    cats: HashMap<String, Option<BitDelta>>,
    nums: HashMap<String, Option<BsiDelta>>,
}

impl IndexDelta {
    /// Takes a row that this delta only ever added back out of every bitmap.
    pub(crate) fn forget_new_row(&mut self, row: u32) {
        debug_assert!(self.saved.is_none());
        for delta in self.cats.values_mut() {
            delta.add.remove(row);
        }
        for delta in self.nums.values_mut() {
            delta.exists.add.remove(row);
            for slice in &mut delta.slices {
                slice.add.remove(row);
            }
            for bucket in delta.buckets.values_mut() {
                bucket.add.remove(row);
            }
        }
    }

    /// Folds in a delta recorded after this one (a bulk-load chunk): its changes win.
    pub(crate) fn absorb(&mut self, later: IndexDelta) {
        // Bulk loads only, which never set a mark.
        debug_assert!(self.saved.is_none());
        for (key, delta) in later.cats {
            match self.cats.get_mut(&key) {
                Some(mine) => mine.absorb(delta),
                None => {
                    self.cats.insert(key, delta);
                }
            }
        }
        for (key, delta) in later.nums {
            match self.nums.get_mut(&key) {
                Some(mine) => mine.absorb(delta),
                None => {
                    self.nums.insert(key, delta);
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cats.is_empty() && self.nums.is_empty()
    }

    /// Sets a mark: later changes can be taken back with
    /// [`rollback_to_mark`](Self::rollback_to_mark). Costs nothing until a key changes,
    /// then one copy of that key's delta.
    pub(crate) fn set_mark(&mut self) {
        self.saved = Some(Saved::default());
    }

    /// Forgets the mark, keeping every change.
    pub(crate) fn clear_mark(&mut self) {
        self.saved = None;
    }

    /// Puts every key changed since the mark back as it was, and forgets the mark.
    pub(crate) fn rollback_to_mark(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        for (key, old) in saved.cats {
            match old {
                Some(delta) => self.cats.insert(key, delta),
                None => self.cats.remove(&key),
            };
        }
        for (key, old) in saved.nums {
            match old {
                Some(delta) => self.nums.insert(key, delta),
                None => self.nums.remove(&key),
            };
        }
    }

    /// The pending change of one bitmap, to be changed (saved first under a mark).
    pub(crate) fn cat_mut(&mut self, key: &str) -> &mut BitDelta {
        if let Some(saved) = &mut self.saved
            && !saved.cats.contains_key(key)
        {
            saved
                .cats
                .insert(key.to_owned(), self.cats.get(key).cloned());
        }
        if !self.cats.contains_key(key) {
            self.cats.insert(key.to_owned(), BitDelta::default());
        }
        self.cats
            .get_mut(key)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// The pending change of one numeric index, to be changed (saved first under a
    /// mark).
    pub(crate) fn num_mut(&mut self, base: &str) -> &mut BsiDelta {
        if let Some(saved) = &mut self.saved
            && !saved.nums.contains_key(base)
        {
            saved
                .nums
                .insert(base.to_owned(), self.nums.get(base).cloned());
        }
        if !self.nums.contains_key(base) {
            self.nums.insert(base.to_owned(), BsiDelta::default());
        }
        self.nums
            .get_mut(base)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Sets one categorical bit.
    pub(crate) fn set_key(&mut self, key: &str, row: u32, present: bool) {
        // Without a mark, one lookup on the hot path of every write.
        match self.cats.get_mut(key) {
            Some(delta) if self.saved.is_none() => delta.set(row, present),
            _ => self.cat_mut(key).set(row, present),
        }
    }

    fn set_cat(&mut self, kind: EntityKind, field: &str, value: &str, row: u32, present: bool) {
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        push_cat_key(&mut key, kind, field, value);
        self.set_key(&key, row, present);
        self.key_buf = key;
    }

    fn set_num(
        &mut self,
        kind: EntityKind,
        field: &str,
        row: u32,
        old: Option<i64>,
        new: Option<i64>,
    ) {
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        key.push_str(kind.as_str());
        key.push('/');
        key.push_str(field);
        key.push('#');
        match self.nums.get_mut(key.as_str()) {
            Some(delta) if self.saved.is_none() => delta.change(row, old, new),
            _ => self.num_mut(&key).change(row, old, new),
        }
        self.key_buf = key;
    }

    /// Records the change of a row from `old` terms to `new` terms (both normalised).
    pub(crate) fn diff(
        &mut self,
        kind: EntityKind,
        row: u32,
        old: Option<&Terms>,
        new: Option<&Terms>,
    ) {
        let empty = Terms::default();
        let old = old.unwrap_or(&empty);
        let new = new.unwrap_or(&empty);
        // Categorical: merge two sorted lists.
        let (mut i, mut j) = (0, 0);
        while i < old.cats.len() || j < new.cats.len() {
            match (old.cats.get(i), new.cats.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    self.set_cat(kind, &a.0, &a.1, row, false);
                    i += 1;
                }
                (Some(a), None) => {
                    self.set_cat(kind, &a.0, &a.1, row, false);
                    i += 1;
                }
                (_, Some(b)) => {
                    self.set_cat(kind, &b.0, &b.1, row, true);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        // Numeric: merge by field name.
        let (mut i, mut j) = (0, 0);
        while i < old.nums.len() || j < new.nums.len() {
            match (old.nums.get(i), new.nums.get(j)) {
                (Some(a), Some(b)) if a.0 == b.0 => {
                    self.set_num(kind, &a.0, row, Some(a.1), Some(b.1));
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.0 < b.0 => {
                    self.set_num(kind, &a.0, row, Some(a.1), None);
                    i += 1;
                }
                (Some(a), None) => {
                    self.set_num(kind, &a.0, row, Some(a.1), None);
                    i += 1;
                }
                (_, Some(b)) => {
                    self.set_num(kind, &b.0, row, None, Some(b.1));
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsi_delta_tracks_bits() {
        let mut delta = BsiDelta::default();
        delta.change(7, None, Some(5));
        let mut bsi = Bsi::default();
        delta.apply(&mut bsi);
        assert_eq!(bsi.value(7), Some(5));
        let mut delta = BsiDelta::default();
        delta.change(7, Some(5), Some(-3));
        delta.apply(&mut bsi);
        assert_eq!(bsi.value(7), Some(-3));
        assert!(bsi.is_bucketed());
        assert_eq!(bsi.buckets.len(), 1);
        assert!(bsi.buckets[&bsi::bucket_of(-3)].contains(7));
        let mut delta = BsiDelta::default();
        delta.change(7, Some(-3), None);
        delta.apply(&mut bsi);
        assert_eq!(bsi.value(7), None);
        assert!(bsi.slices.is_empty());
        assert!(bsi.buckets.is_empty());
    }

    #[test]
    fn bsi_delta_replaces_an_index() {
        let mut current = Bsi::default();
        current.insert_rows(5, &[1, 2, 3].into_iter().collect());
        current.insert_rows(1, &[4].into_iter().collect());
        let mut target = Bsi::default();
        target.insert_rows(1, &[1, 5].into_iter().collect());
        target.insert_rows(4, &[2].into_iter().collect());
        let mut delta = BsiDelta::default();
        delta.replace(&current, &target);
        delta.apply(&mut current);
        assert_eq!(current, target);
    }

    #[test]
    fn diff_adds_and_removes() {
        let mut old = Terms::default();
        old.cat("tag", "a");
        old.cat("tag", "b");
        old.num("ltv", 3);
        old.normalise();
        let mut new = Terms::default();
        new.cat("tag", "b");
        new.cat("tag", "c");
        new.num("ltv", 3);
        new.normalise();
        let mut delta = IndexDelta::default();
        delta.diff(EntityKind::Contact, 1, Some(&old), Some(&new));
        assert!(delta.cats["contact/tag=a"].remove.contains(1));
        assert!(delta.cats["contact/tag=c"].add.contains(1));
        assert!(!delta.cats.contains_key("contact/tag=b"));
        assert!(
            delta
                .nums
                .get("contact/ltv#")
                .is_none_or(|d| d.slices.iter().all(BitDelta::is_empty))
        );
    }
}
