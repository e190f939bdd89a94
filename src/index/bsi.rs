//! Bit-sliced numeric indexes (O'Neil & Quass): one bitmap per bit of the
//! two's-complement value, plus the set of rows that have a value, plus coarse
//! logarithmic buckets that partition those rows by sign and magnitude.
//!
//! A range predicate costs one pass over the slices from the most significant bit, each
//! step an AND/ANDNOT on bitmaps that shrink as the prefix narrows; slices above the
//! highest bit any row uses are absent and cost nothing. With buckets, the buckets lying
//! wholly inside the range are taken as they are and the slices only refine the rows of
//! the (at most two) buckets the range boundaries cut.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

/// A comparison against a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A bit-sliced index over `i64` values.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Bsi {
    /// Rows that have a value.
    pub(crate) exists: RoaringBitmap,
    /// `slices[i]` holds the rows whose value has bit `i` set; trailing empty slices are
    /// dropped, so `slices.len() <= 64`.
    pub(crate) slices: Vec<RoaringBitmap>,
    /// Rows by [`bucket_of`] their value; empty buckets are absent. **Invariant**: the
    /// buckets partition `exists` — except in an index written before buckets existed,
    /// which [`Bsi::is_bucketed`] detects and answers from the slices alone.
    pub(crate) buckets: BTreeMap<u16, RoaringBitmap>,
}

const SIGN: usize = 63;

/// Number of buckets: 64 negative magnitudes, zero, 63 positive magnitudes.
pub(crate) const BUCKETS: u16 = 2 * MAGNITUDE_BUCKETS + 1;

/// Buckets per sign: magnitudes 1, 2 and 3 alone, then four per power of two
/// (`4 · 2^k ..` split by the two bits after the leading one) up to `2^64 - 1`.
const MAGNITUDE_BUCKETS: u16 = 3 + 62 * 4;
const ZERO_BUCKET: u16 = MAGNITUDE_BUCKETS;

/// The index of a non-zero magnitude among the magnitude buckets, in increasing order.
fn magnitude_bucket(m: u64) -> u16 {
    if m < 4 {
        return (m - 1) as u16;
    }
    let octave = 63 - m.leading_zeros();
    let sub = (m >> (octave - 2)) & 3;
    3 + (octave as u16 - 2) * 4 + sub as u16
}

/// The smallest and largest magnitude of a magnitude bucket.
fn magnitude_bounds(bucket: u16) -> (u128, u128) {
    if bucket < 3 {
        let m = u128::from(bucket) + 1;
        return (m, m);
    }
    let octave = u32::from(bucket - 3) / 4 + 2;
    let sub = u128::from((bucket - 3) % 4);
    ((4 + sub) << (octave - 2), ((5 + sub) << (octave - 2)) - 1)
}

/// The bucket of a value, in value order: negative values by decreasing magnitude,
/// then zero, then positive values by increasing magnitude. Four buckets per power of
/// two keep the rows a range cuts through (and refines with the slices) few.
pub(crate) fn bucket_of(value: i64) -> u16 {
    match value {
        0 => ZERO_BUCKET,
        v if v < 0 => ZERO_BUCKET - 1 - magnitude_bucket(v.unsigned_abs()),
        v => ZERO_BUCKET + 1 + magnitude_bucket(v.unsigned_abs()),
    }
}

/// The smallest and largest value of a bucket (clamped to `i64`).
fn bucket_bounds(bucket: u16) -> (i64, i64) {
    let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    match bucket.cmp(&ZERO_BUCKET) {
        std::cmp::Ordering::Equal => (0, 0),
        std::cmp::Ordering::Less => {
            let (low, high) = magnitude_bounds(ZERO_BUCKET - 1 - bucket);
            (clamp(-(high as i128)), clamp(-(low as i128)))
        }
        std::cmp::Ordering::Greater => {
            let (low, high) = magnitude_bounds(bucket - ZERO_BUCKET - 1);
            (clamp(low as i128), clamp(high as i128))
        }
    }
}

/// Keeps the rows of `rows` whose bit in `slice` (absent: all clear) equals `set`.
fn keep_bit(rows: &mut RoaringBitmap, slice: Option<&RoaringBitmap>, set: bool) {
    match (slice, set) {
        (Some(slice), true) => *rows &= slice,
        (None, true) => rows.clear(),
        (Some(slice), false) => *rows -= slice,
        (None, false) => {}
    }
}

/// The bits `bit..=0` of a value.
fn low_bits(bit: usize) -> u64 {
    if bit >= 63 {
        u64::MAX
    } else {
        (1u64 << (bit + 1)) - 1
    }
}

impl Bsi {
    /// The index of the rows in `rows` only. A few rows are read value by value
    /// rather than intersecting every slice and bucket.
    pub(crate) fn restrict(&self, rows: &RoaringBitmap) -> Bsi {
        if rows.len() <= 32 {
            let mut out = Bsi::default();
            for row in rows {
                if let Some(value) = self.value(row) {
                    let mut one = RoaringBitmap::new();
                    one.insert(row);
                    out.insert_rows(value, &one);
                }
            }
            return out;
        }
        let mut out = Bsi {
            exists: &self.exists & rows,
            slices: self.slices.iter().map(|s| s & rows).collect(),
            buckets: self
                .buckets
                .iter()
                .map(|(bucket, b)| (*bucket, b & rows))
                .collect(),
        };
        out.trim();
        out
    }

    pub(crate) fn trim(&mut self) {
        while self.slices.last().is_some_and(RoaringBitmap::is_empty) {
            self.slices.pop();
        }
        self.buckets.retain(|_, rows| !rows.is_empty());
    }

    /// Whether the buckets partition `exists`. They are disjoint by construction, so
    /// equal cardinalities suffice; an index written before buckets existed has rows
    /// in no bucket and is answered from the slices alone.
    pub(crate) fn is_bucketed(&self) -> bool {
        !self.buckets.is_empty()
            && self.buckets.values().map(RoaringBitmap::len).sum::<u64>() == self.exists.len()
    }

    /// Adds `rows`, which have no value yet, with the value `value`.
    pub(crate) fn insert_rows(&mut self, value: i64, rows: &RoaringBitmap) {
        self.exists |= rows;
        let bits = value as u64;
        let width = 64 - bits.leading_zeros() as usize;
        if self.slices.len() < width {
            self.slices.resize_with(width, RoaringBitmap::new);
        }
        for (bit, slice) in self.slices.iter_mut().enumerate() {
            if bits >> bit & 1 == 1 {
                *slice |= rows;
            }
        }
        *self.buckets.entry(bucket_of(value)).or_default() |= rows;
        self.trim();
    }

    fn slice(&self, bit: usize) -> Option<&RoaringBitmap> {
        self.slices.get(bit).filter(|s| !s.is_empty())
    }

    /// The value of one row, `None` when it has none.
    pub(crate) fn value(&self, row: u32) -> Option<i64> {
        if !self.exists.contains(row) {
            return None;
        }
        let mut bits = 0u64;
        for (bit, slice) in self.slices.iter().enumerate() {
            if slice.contains(row) {
                bits |= 1 << bit;
            }
        }
        Some(bits as i64)
    }

    /// Rows among `within` (or all rows with a value) whose value compares to `c`.
    pub(crate) fn compare(
        &self,
        cmp: Cmp,
        c: i64,
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        if self.is_bucketed() {
            return match cmp {
                Cmp::Eq => self.range(c, c, within),
                Cmp::Ne => {
                    let base = self.base(within);
                    let eq = self.range(c, c, Some(&base));
                    base - eq
                }
                Cmp::Lt => match c.checked_sub(1) {
                    Some(high) => self.range(i64::MIN, high, within),
                    None => RoaringBitmap::new(),
                },
                Cmp::Le => self.range(i64::MIN, c, within),
                Cmp::Gt => match c.checked_add(1) {
                    Some(low) => self.range(low, i64::MAX, within),
                    None => RoaringBitmap::new(),
                },
                Cmp::Ge => self.range(c, i64::MAX, within),
            };
        }
        self.compare_sliced(cmp, c, self.base(within))
    }

    /// `exists ∩ within`.
    fn base(&self, within: Option<&RoaringBitmap>) -> RoaringBitmap {
        match within {
            Some(w) => &self.exists & w,
            None => self.exists.clone(),
        }
    }

    /// Rows among `within` (or all rows with a value) with `low <= value <= high`.
    pub(crate) fn range(
        &self,
        low: i64,
        high: i64,
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        if low > high {
            return RoaringBitmap::new();
        }
        if !self.is_bucketed() {
            return self.range_sliced(low, high, self.base(within));
        }
        // Buckets wholly inside the range are taken as they are; the slices refine the
        // rows of the boundary buckets only.
        let mut whole = RoaringBitmap::new();
        let mut cut = RoaringBitmap::new();
        for (&bucket, rows) in self.buckets.range(bucket_of(low)..=bucket_of(high)) {
            let (first, last) = bucket_bounds(bucket);
            let target = if low <= first && last <= high {
                &mut whole
            } else {
                &mut cut
            };
            match within {
                Some(w) => *target |= rows & w,
                None => *target |= rows,
            }
        }
        if !cut.is_empty() {
            whole |= self.range_sliced(low, high, cut);
        }
        whole
    }

    /// Rows of `base` (a subset of `exists`) with `low <= value <= high` (`low <= high`),
    /// in one pass from the most significant slice: while `low` and `high` share a
    /// prefix the rows must equal it; from the first bit where they differ, the rows
    /// still equal to `low`'s prefix are refined as `>= low` and those equal to `high`'s
    /// as `<= high`, side by side.
    fn range_sliced(&self, low: i64, high: i64, base: RoaringBitmap) -> RoaringBitmap {
        let (lo, hi) = (low as u64, high as u64);
        let mut eq = base;
        let mut split = None;
        for bit in (0..64).rev() {
            let rest = low_bits(bit);
            if eq.is_empty() || (lo & rest == 0 && hi & rest == rest) {
                // Every value with this prefix is inside.
                return eq;
            }
            let lo_set = lo >> bit & 1 == 1;
            if lo_set == (hi >> bit & 1 == 1) {
                keep_bit(&mut eq, self.slice(bit), lo_set);
                continue;
            }
            // `low < high`: here `low` has 0 and `high` 1, except in the sign bit.
            let mut ones = eq.clone();
            keep_bit(&mut ones, self.slice(bit), true);
            let mut zeros = std::mem::take(&mut eq);
            keep_bit(&mut zeros, self.slice(bit), false);
            split = Some(if lo_set {
                (bit, ones, zeros)
            } else {
                (bit, zeros, ones)
            });
            break;
        }
        let Some((split, mut ge, mut le)) = split else {
            // `low == high` and every bit matched.
            return eq;
        };
        let mut inside = RoaringBitmap::new();
        for bit in (0..split).rev() {
            let rest = low_bits(bit);
            if lo & rest == 0 {
                inside |= std::mem::take(&mut ge);
            }
            if hi & rest == rest {
                inside |= std::mem::take(&mut le);
            }
            if ge.is_empty() && le.is_empty() {
                break;
            }
            let slice = self.slice(bit);
            if !ge.is_empty() {
                if lo >> bit & 1 == 1 {
                    keep_bit(&mut ge, slice, true);
                } else if let Some(slice) = slice {
                    inside |= &ge & slice;
                    ge -= slice;
                }
            }
            if !le.is_empty() {
                if hi >> bit & 1 == 0 {
                    keep_bit(&mut le, slice, false);
                } else if let Some(slice) = slice {
                    inside |= &le - slice;
                    le &= slice;
                } else {
                    inside |= std::mem::take(&mut le);
                }
            }
        }
        inside |= ge;
        inside |= le;
        inside
    }

    /// Rows of `base` (a subset of `exists`) whose value compares to `c`, from the slices.
    fn compare_sliced(&self, cmp: Cmp, c: i64, base: RoaringBitmap) -> RoaringBitmap {
        let want_gt = matches!(cmp, Cmp::Gt | Cmp::Ge);
        let want_lt = matches!(cmp, Cmp::Lt | Cmp::Le);
        let mut eq = base.clone();
        let mut gt = RoaringBitmap::new();
        let mut lt = RoaringBitmap::new();
        let c_bits = c as u64;
        for bit in (0..64).rev() {
            if eq.is_empty() {
                break;
            }
            let c_set = c_bits >> bit & 1 == 1;
            // In the sign bit a set bit means smaller.
            let set_is_greater = bit != SIGN;
            let Some(slice) = self.slice(bit) else {
                // Every row in `eq` has this bit clear.
                if c_set {
                    // Rows have 0 where c has 1.
                    if set_is_greater {
                        if want_lt {
                            lt |= &eq;
                        }
                    } else if want_gt {
                        gt |= &eq;
                    }
                    eq.clear();
                }
                continue;
            };
            let ones = &eq & slice;
            eq -= slice;
            let zeros = eq;
            // Rows that differ from c in this bit leave `eq`.
            let (same, differ) = if c_set { (ones, zeros) } else { (zeros, ones) };
            let differ_is_greater = (set_is_greater && !c_set) || (!set_is_greater && c_set);
            if differ_is_greater {
                if want_gt {
                    gt |= differ;
                }
            } else if want_lt {
                lt |= differ;
            }
            eq = same;
        }
        match cmp {
            Cmp::Eq => eq,
            Cmp::Ne => base - eq,
            Cmp::Lt => lt,
            Cmp::Le => lt | eq,
            Cmp::Gt => gt,
            Cmp::Ge => gt | eq,
        }
    }

    /// Sum of the values of the rows in `filter`.
    pub(crate) fn sum(&self, filter: &RoaringBitmap) -> i128 {
        let mut total = 0i128;
        for (bit, slice) in self.slices.iter().enumerate() {
            let count = i128::from(slice.intersection_len(filter));
            if count == 0 {
                continue;
            }
            let weight = if bit == SIGN {
                -(1i128 << SIGN)
            } else {
                1i128 << bit
            };
            total += weight * count;
        }
        total
    }

    /// The `k` rows of `filter ∩ exists` with the largest (`descending`) or smallest
    /// values; ties at the boundary are broken by the smallest row ids.
    pub(crate) fn top_k(&self, filter: &RoaringBitmap, k: u64, descending: bool) -> RoaringBitmap {
        let mut chosen = RoaringBitmap::new();
        let mut candidates = &self.exists & filter;
        if k == 0 {
            return chosen;
        }
        if candidates.len() <= k {
            return candidates;
        }
        for bit in (0..64).rev() {
            let Some(slice) = self.slice(bit) else {
                continue;
            };
            // The "better" half at this bit: set bits for descending, except in the sign bit.
            let prefer_set = descending != (bit == SIGN);
            let better = if prefer_set {
                &candidates & slice
            } else {
                &candidates - slice
            };
            let taken = chosen.len() + better.len();
            if taken > k {
                candidates = better;
            } else {
                chosen |= &better;
                candidates -= &better;
                if taken == k {
                    return chosen;
                }
            }
        }
        // The rest of `candidates` share one value: take the smallest row ids.
        let missing = k - chosen.len();
        chosen.extend(candidates.iter().take(missing as usize));
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::BsiDelta;

    fn build(values: &[(u32, i64)]) -> Bsi {
        let mut delta = BsiDelta::default();
        for &(row, v) in values {
            delta.change(row, None, Some(v));
        }
        let mut bsi = Bsi::default();
        delta.apply(&mut bsi);
        bsi
    }

    #[test]
    fn restricting_to_few_or_many_rows_keeps_their_values() {
        let values = spread();
        let bsi = build(&values);
        for rows in [
            RoaringBitmap::from_iter([0u32, 3, 7, 1000]),
            (0..200).step_by(3).collect::<RoaringBitmap>(),
        ] {
            let restricted = bsi.restrict(&rows);
            for &(row, value) in &values {
                let want = rows.contains(row).then_some(value);
                assert_eq!(restricted.value(row), want, "row {row}");
            }
            assert_eq!(restricted.exists, &bsi.exists & &rows);
            for (cmp, c) in [(Cmp::Ge, 0), (Cmp::Lt, -5), (Cmp::Eq, 42)] {
                assert_eq!(
                    restricted.compare(cmp, c, None),
                    bsi.compare(cmp, c, Some(&rows))
                );
            }
        }
    }

    /// Values spread over many buckets, both signs and the extremes.
    fn spread() -> Vec<(u32, i64)> {
        (0..300u32)
            .map(|r| (r, (i64::from(r) * 7919 % 401) - 200))
            .chain((0..64u32).map(|b| (2000 + b, 1i64 << b.min(62))))
            .chain((0..64u32).map(|b| (3000 + b, -(1i64 << b.min(62)) + 1)))
            .chain([(1000, i64::MIN), (1001, i64::MAX), (1002, 0)])
            .collect()
    }

    /// The index with buckets, and the same index as written before buckets existed.
    fn both(values: &[(u32, i64)]) -> [Bsi; 2] {
        let bucketed = build(values);
        assert!(bucketed.is_bucketed());
        let mut sliced = bucketed.clone();
        sliced.buckets.clear();
        assert!(!sliced.is_bucketed());
        [bucketed, sliced]
    }

    #[test]
    fn buckets_are_ordered_and_bounded() {
        for v in [
            i64::MIN,
            i64::MIN + 1,
            -5,
            -4,
            -1,
            0,
            1,
            2,
            3,
            4,
            1 << 40,
            i64::MAX,
        ] {
            let (first, last) = bucket_bounds(bucket_of(v));
            assert!(first <= v && v <= last, "{v} in {first}..={last}");
        }
        assert!(bucket_of(i64::MAX) < BUCKETS);
        for bucket in bucket_of(i64::MIN)..bucket_of(i64::MAX) {
            let (_, last) = bucket_bounds(bucket);
            let (next, _) = bucket_bounds(bucket + 1);
            assert_eq!(last + 1, next, "bucket {bucket}");
            assert_eq!(bucket_of(last), bucket);
            assert_eq!(bucket_of(next), bucket + 1);
        }
    }

    #[test]
    fn range_matches_scan() {
        let values = spread();
        let within: RoaringBitmap = values
            .iter()
            .map(|(r, _)| *r)
            .filter(|r| r % 3 != 0)
            .collect();
        let bounds = [
            i64::MIN,
            i64::MIN + 1,
            -1 << 40,
            -201,
            -200,
            -64,
            -63,
            -1,
            0,
            1,
            31,
            32,
            57,
            199,
            200,
            1 << 40,
            (1 << 41) - 1,
            i64::MAX - 1,
            i64::MAX,
        ];
        for bsi in both(&values) {
            for low in bounds {
                for high in bounds {
                    for scope in [None, Some(&within)] {
                        let expect: RoaringBitmap = values
                            .iter()
                            .filter(|(r, v)| {
                                low <= *v && *v <= high && scope.is_none_or(|w| w.contains(*r))
                            })
                            .map(|(r, _)| *r)
                            .collect();
                        assert_eq!(bsi.range(low, high, scope), expect, "{low}..={high}");
                    }
                }
            }
        }
    }

    #[test]
    fn compare_matches_scan() {
        let values = spread();
        for bsi in both(&values) {
            compare_matches_scan_on(&bsi, &values);
        }
    }

    fn compare_matches_scan_on(bsi: &Bsi, values: &[(u32, i64)]) {
        for c in [
            -201,
            -200,
            -1,
            0,
            1,
            57,
            199,
            200,
            1 << 40,
            i64::MIN,
            i64::MAX,
        ] {
            for cmp in [Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge] {
                let expect: RoaringBitmap = values
                    .iter()
                    .filter(|(_, v)| match cmp {
                        Cmp::Eq => *v == c,
                        Cmp::Ne => *v != c,
                        Cmp::Lt => *v < c,
                        Cmp::Le => *v <= c,
                        Cmp::Gt => *v > c,
                        Cmp::Ge => *v >= c,
                    })
                    .map(|(r, _)| *r)
                    .collect();
                assert_eq!(bsi.compare(cmp, c, None), expect, "{cmp:?} {c}");
            }
        }
        let all: RoaringBitmap = values.iter().map(|(r, _)| *r).collect();
        let sum: i128 = values.iter().map(|(_, v)| i128::from(*v)).sum();
        assert_eq!(bsi.sum(&all), sum);
    }

    #[test]
    fn top_k_matches_sort() {
        let values: Vec<(u32, i64)> = (0..500u32).map(|r| (r, i64::from(r % 37) - 10)).collect();
        let bsi = build(&values);
        let all: RoaringBitmap = (0..500).collect();
        for k in [0u64, 1, 5, 14, 100, 499, 500, 600] {
            for descending in [true, false] {
                let mut sorted = values.clone();
                sorted.sort_by_key(|&(r, v)| (if descending { -v } else { v }, r));
                let expect: RoaringBitmap =
                    sorted.iter().take(k as usize).map(|(r, _)| *r).collect();
                assert_eq!(
                    bsi.top_k(&all, k, descending),
                    expect,
                    "k={k} desc={descending}"
                );
            }
        }
    }
}
