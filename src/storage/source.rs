//! What a consistent snapshot of the tables provides: the low-level read interface
//! that both transaction types implement (`txn::snapshot`) and that the query
//! evaluator, the lead-assignment planner and the public [`Snapshot`] API read through.
//! Defined below the transaction module so that readers of it need not depend on it.
//!
//! [`Snapshot`]: crate::Snapshot

use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::codec;
use crate::config::Config;
use crate::error::Result;
use crate::index::{self, Bsi};
use crate::lifecycle::StageChange;
use crate::schema::{EntityKind, Record, RecordId, Timestamp};

pub(crate) mod sealed {
    use super::*;

    /// The low-level reads of a snapshot; not nameable outside the crate.
    pub trait Source {
        fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>>;
        fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>>;
        fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>>;
        fn bsi(&self, base: &str) -> Result<Arc<Bsi>>;
        /// Bitmap keys starting with `prefix` that were ever written.
        fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;
        fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>>;
        fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>>;
        fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>>;
        fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>>;
        fn segment_names(&self) -> Result<Vec<String>>;
        fn config(&self) -> Result<Arc<Config>>;
        /// Up to `limit` change batches after `after` (see `feed::read_batches`).
        fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>>;
        /// The oldest sequence the change log holds, or the next one when it is empty.
        fn oldest_kept(&self) -> Result<u64>;
        /// A commit counter of the `bitmap_gen` table (generation, sequence).
        fn commit_counter(&self, key: &str) -> Result<Option<u64>>;
        /// Durable consumers and their acknowledged sequences, by name.
        fn consumer_list(&self) -> Result<Vec<(String, u64)>>;
        /// Watched segments and the kind each selects, by name.
        fn watched_list(&self) -> Result<Vec<(String, EntityKind)>>;
        fn clock_now(&self) -> Timestamp;
        /// An entry of the identity table.
        fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>>;
        /// The identity entries whose keys start with `prefix`, in key order.
        fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

        /// A record if it exists.
        fn record<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
            match self.row_bytes(I::Record::KIND, id.row())? {
                Some(bytes) => Ok(Some(decode_record(id.row(), &bytes)?)),
                None => Ok(None),
            }
        }

        /// The live rows of a kind.
        fn live_rows(&self, kind: EntityKind) -> Result<Arc<RoaringBitmap>> {
            self.bitmap(&index::live_key(kind))
        }

        /// The rows of `kind` every read of this source is narrowed to, if it narrows
        /// them (a scoped transaction). A query over one kind is then evaluated on the
        /// wide bitmaps ([`wide_bitmap`](Self::wide_bitmap)) and narrowed once:
        /// narrowing distributes over AND, OR and NOT-within-the-live-rows, so the
        /// answer is the same as evaluating on narrowed bitmaps, at the cost of one
        /// intersection instead of one per input.
        fn narrowing(&self, _kind: EntityKind) -> Result<Option<&RoaringBitmap>> {
            Ok(None)
        }

        /// A bitmap before narrowing; only for results narrowed afterwards.
        fn wide_bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
            self.bitmap(key)
        }

        /// A numeric index before narrowing; only for results narrowed afterwards.
        fn wide_bsi(&self, base: &str) -> Result<Arc<Bsi>> {
            self.bsi(base)
        }
    }
}

pub(crate) use sealed::Source;

/// A source borrowed mutably reads as the source itself (a scoped write transaction
/// holds its write transaction so).
impl<S: Source + ?Sized> Source for &mut S {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        (**self).row_bytes(kind, row)
    }
    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        (**self).rows_in(kind)
    }
    fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        (**self).bitmap(key)
    }
    fn bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        (**self).bsi(base)
    }
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).keys_with_prefix(prefix)
    }
    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        (**self).meta_bytes(name)
    }
    fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>> {
        (**self).unique_row(field, value)
    }
    fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>> {
        (**self).history_entries(kind, row)
    }
    fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        (**self).segment_bytes(name)
    }
    fn segment_names(&self) -> Result<Vec<String>> {
        (**self).segment_names()
    }
    fn config(&self) -> Result<Arc<Config>> {
        (**self).config()
    }
    fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>> {
        (**self).change_batches(after, limit)
    }
    fn oldest_kept(&self) -> Result<u64> {
        (**self).oldest_kept()
    }
    fn commit_counter(&self, key: &str) -> Result<Option<u64>> {
        (**self).commit_counter(key)
    }
    fn consumer_list(&self) -> Result<Vec<(String, u64)>> {
        (**self).consumer_list()
    }
    fn watched_list(&self) -> Result<Vec<(String, EntityKind)>> {
        (**self).watched_list()
    }
    fn clock_now(&self) -> Timestamp {
        (**self).clock_now()
    }
    fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).identity_bytes(key)
    }
    fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        (**self).identity_entries(prefix)
    }
    fn record<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
        (**self).record(id)
    }
    fn live_rows(&self, kind: EntityKind) -> Result<Arc<RoaringBitmap>> {
        (**self).live_rows(kind)
    }
    fn narrowing(&self, kind: EntityKind) -> Result<Option<&RoaringBitmap>> {
        (**self).narrowing(kind)
    }
    fn wide_bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        (**self).wide_bitmap(key)
    }
    fn wide_bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        (**self).wide_bsi(base)
    }
}

/// Decodes a stored record of type `R` at `row`.
pub(crate) fn decode_record<R: Record>(row: u32, bytes: &[u8]) -> Result<R> {
    codec::decode(R::KIND.as_str(), &row, bytes)
}
