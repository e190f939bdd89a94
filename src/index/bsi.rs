//! Bit-sliced numeric indexes (O'Neil & Quass): one bitmap per bit of the
//! two's-complement value, plus the set of rows that have a value.
//!
//! A range predicate costs one pass over the slices from the most significant bit, each
//! step an AND/ANDNOT on bitmaps that shrink as the prefix narrows; slices above the
//! highest bit any row uses are absent and cost nothing.

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
}

const SIGN: usize = 63;

impl Bsi {
    pub(crate) fn trim(&mut self) {
        while self.slices.last().is_some_and(RoaringBitmap::is_empty) {
            self.slices.pop();
        }
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
        let base = match within {
            Some(w) => &self.exists & w,
            None => self.exists.clone(),
        };
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
    fn compare_matches_scan() {
        let values: Vec<(u32, i64)> = (0..300u32)
            .map(|r| (r, (i64::from(r) * 7919 % 401) - 200))
            .chain([(1000, i64::MIN), (1001, i64::MAX), (1002, 0)])
            .collect();
        let bsi = build(&values);
        for c in [-201, -200, -1, 0, 1, 57, 199, 200, i64::MIN, i64::MAX] {
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
