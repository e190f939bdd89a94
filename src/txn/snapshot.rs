//! The read API: [`Snapshot`], shared by both transaction types, over the low-level
//! [`Source`] reads each implements here. A write transaction's reads see its own
//! uncommitted writes (index deltas applied on the fly).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableTable};
use roaring::RoaringBitmap;

use super::tables::{
    all_rows, cached_bitmap, cached_bsi, consumers_in, entries_in, history_in, keys_in,
    segment_names_in, watched_in,
};
use super::{Shared, StagedId, WriteTransaction, lineage};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::cache::Cached;
use crate::index::{self, Bsi, store};
use crate::lifecycle::Machines;
use crate::lifecycle::StageChange;
use crate::query::{self, Group, GroupBy, Page, Query, SavedSegment, SortBy, TagCount};
use crate::schema::{
    ConsentEntry, ContactId, CustomSchema, EntityKind, ProductId, Record, RecordId, Stage,
    Timestamp, normalise_key,
};
use crate::storage;
use crate::storage::source::{Source, decode_record};

/// The read API shared by [`ReadTransaction`] and [`WriteTransaction`] (which also sees
/// its own uncommitted writes). Bring it into scope with `use crmdb::Snapshot`.
pub trait Snapshot: Source {
    /// A record, live or in the recycle bin (check `deleted_at`).
    ///
    /// # Errors
    /// [`Error::NotFound`], or a decode or storage failure.
    fn get<I: RecordId>(&self, id: I) -> Result<I::Record> {
        self.find(id)?.ok_or(Error::NotFound {
            kind: I::Record::KIND,
            id: id.row(),
        })
    }

    /// A record if it exists.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn find<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
        self.record(id)
    }

    /// Every stored record of a type, live and deleted, in id order.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn records<R: Record>(&self) -> Result<Vec<(R::Id, R)>> {
        self.rows_in(R::KIND)?
            .into_iter()
            .map(|(row, bytes)| Ok((R::Id::from_row(row), decode_record(row, &bytes)?)))
            .collect()
    }

    /// The contact holding an email (compared trimmed and case-insensitively).
    ///
    /// # Errors
    /// A storage failure.
    fn contact_by_email(&self, email: &str) -> Result<Option<ContactId>> {
        let key = normalise_key(email);
        match self.unique_row("contact.email", &key)? {
            Some(row) => Ok(Some(ContactId::new(lineage::resolve_row(
                self,
                EntityKind::Contact,
                row,
            )?))),
            None => Ok(None),
        }
    }

    /// The record an id stands for now: the id itself, or, for a record merged into
    /// another ([`WriteTransaction::merge`]), the survivor its merges lead to. [`get`]
    /// reads the row itself: a merged record's is in the recycle bin.
    ///
    /// [`get`]: Snapshot::get
    ///
    /// # Errors
    /// A decode or storage failure.
    fn resolve<I: RecordId>(&self, id: I) -> Result<I> {
        lineage::resolve_row(self, I::Record::KIND, id.row()).map(I::from_row)
    }

    /// What merge `merge` did, and whether it has been undone.
    ///
    /// # Errors
    /// [`Error::UnknownMerge`], or a decode or storage failure.
    fn lineage(&self, merge: u64) -> Result<lineage::Lineage> {
        lineage::lineage_of(self, merge)
    }

    /// A contact's consent ledger, oldest entry first.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn consent_history(&self, contact: ContactId) -> Result<Vec<ConsentEntry>> {
        super::consent::ledger_of(self, contact.row())
    }

    /// A contact's consent state: the latest entry of each channel it has entries in
    /// (a channel without one is unknown).
    ///
    /// # Errors
    /// A decode or storage failure.
    fn consent(&self, contact: ContactId) -> Result<BTreeMap<String, ConsentEntry>> {
        super::consent::state_of(self, contact.row())
    }

    /// The database's consent channels.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn consent_channels(&self) -> Result<Vec<String>> {
        Ok(self.config()?.consent_channels.clone())
    }

    /// Every erasure record, in order.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn erasures(&self) -> Result<Vec<super::Erasure>> {
        super::erase::erasures(self)
    }

    /// Every merge's lineage, in merge order, undone ones included.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn merges(&self) -> Result<Vec<lineage::Lineage>> {
        lineage::lineages(self)
    }

    /// The product holding a sku (case-insensitive).
    ///
    /// # Errors
    /// A storage failure.
    fn product_by_sku(&self, sku: &str) -> Result<Option<ProductId>> {
        let key = normalise_key(sku);
        Ok(self.unique_row("product.sku", &key)?.map(ProductId::new))
    }

    /// Row ids of the live records of a kind.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn live(&self, kind: EntityKind) -> Result<RoaringBitmap> {
        Ok((*self.bitmap(&index::live_key(kind))?).clone())
    }

    /// Row ids of the records of a kind in the recycle bin.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn deleted(&self, kind: EntityKind) -> Result<RoaringBitmap> {
        Ok((*self.bitmap(&index::deleted_key(kind))?).clone())
    }

    /// The lifecycle machines.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn machines(&self) -> Result<Machines> {
        Ok(self.config()?.machines.clone())
    }

    /// The custom-field schema of a kind.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn schema(&self, kind: EntityKind) -> Result<CustomSchema> {
        Ok(self.config()?.schema(kind))
    }

    /// The live records of `kind` matching `query`.
    ///
    /// # Errors
    /// [`Error::Query`] for a query that does not bind to the schema, or a storage failure.
    fn ids(&self, kind: EntityKind, query: &Query) -> Result<RoaringBitmap> {
        query::eval::evaluate(self, kind, query)
    }

    /// How many live records of `kind` match `query`.
    ///
    /// # Errors
    /// As [`Snapshot::ids`].
    fn count(&self, kind: EntityKind, query: &Query) -> Result<u64> {
        query::eval::count(self, kind, query)
    }

    /// One page of matching records sorted by `sort`. Pass the returned cursor to get the
    /// next page.
    ///
    /// # Errors
    /// As [`Snapshot::ids`], a sort field that is not indexed, a malformed cursor.
    fn page<R: Record>(
        &self,
        query: &Query,
        sort: &SortBy,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<R>> {
        query::page::page(self, query, sort, limit, cursor)
    }

    /// Counts (and optionally a numeric sum) of matching records grouped by a categorical
    /// field, largest group first.
    ///
    /// # Errors
    /// As [`Snapshot::ids`], a field that is not categorical.
    fn group_by(&self, kind: EntityKind, query: &Query, group: &GroupBy) -> Result<Vec<Group>> {
        query::page::group_by(self, kind, query, group)
    }

    /// Tags used on live records of a kind with their counts, most used first.
    ///
    /// # Errors
    /// A storage failure.
    fn tags(&self, kind: EntityKind) -> Result<Vec<TagCount>> {
        let group = GroupBy::new("tag");
        Ok(query::page::group_by(self, kind, &Query::all(), &group)?
            .into_iter()
            .map(|g| TagCount {
                tag: g.value,
                count: g.count,
            })
            .collect())
    }

    /// A record's stage history, oldest first.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn history(&self, id: impl Into<StagedId>) -> Result<Vec<StageChange>> {
        let (kind, row) = id.into().kind_row();
        self.history_entries(kind, row)
    }

    /// The stage a record was in at `at` (`None` before it existed).
    ///
    /// # Errors
    /// A decode or storage failure.
    fn stage_at(&self, id: impl Into<StagedId>, at: Timestamp) -> Result<Option<Stage>> {
        Ok(self
            .history(id)?
            .into_iter()
            .take_while(|c| c.at <= at)
            .last()
            .map(|c| c.to))
    }

    /// A saved segment.
    ///
    /// # Errors
    /// [`Error::UnknownSegment`], or a decode or storage failure.
    fn segment(&self, name: &str) -> Result<SavedSegment> {
        query::load_segment(self, name)
    }

    /// The commit sequence number this snapshot reflects: the number of the last
    /// committed write transaction that changed anything (0 before the first). Every
    /// such commit takes the next number — strictly increasing, without gaps, kept
    /// across reopen; a commit that changes nothing takes none. A write transaction
    /// reports the sequence it builds on; its own commit will take the next one.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn sequence(&self) -> Result<u64> {
        match self.commit_counter(crate::storage::SEQUENCE_KEY)? {
            Some(sequence) => Ok(sequence),
            None => {
                super::decode_sequence(self.meta_bytes(crate::storage::meta::SEQUENCE)?.as_deref())
            }
        }
    }

    /// Up to `limit` change batches after sequence `after`, in order. A consumer that
    /// bootstraps reads a snapshot, notes its [`sequence`](Snapshot::sequence), and
    /// follows from there: nothing missed, nothing doubled.
    ///
    /// # Errors
    /// [`Error::Trimmed`] when retention removed batches after `after`,
    /// [`Error::InvalidArgument`] for an `after` beyond this snapshot's sequence, or a
    /// decode failure.
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>> {
        self.change_batches(after, limit)
    }

    /// The oldest sequence the change log still holds (the next sequence when it holds
    /// none): reading after anything below `oldest - 1` is [`Error::Trimmed`].
    ///
    /// # Errors
    /// A storage failure.
    fn oldest_change(&self) -> Result<u64> {
        self.oldest_kept()
    }

    /// The durable consumers of the change feed, by name.
    ///
    /// # Errors
    /// A storage failure.
    fn consumers(&self) -> Result<Vec<crate::feed::Consumer>> {
        Ok(self
            .consumer_list()?
            .into_iter()
            .map(|(name, acknowledged)| crate::feed::Consumer { name, acknowledged })
            .collect())
    }

    /// The watched segments and the kind each selects, by name.
    ///
    /// # Errors
    /// A decode or storage failure.
    fn watched(&self) -> Result<Vec<(String, EntityKind)>> {
        self.watched_list()
    }

    /// The members of a watched segment, as kept by its entered and left events.
    ///
    /// # Errors
    /// [`Error::UnknownSegment`] for a segment that does not exist,
    /// [`Error::InvalidArgument`] for one that is not watched, or a storage failure.
    fn members(&self, segment: &str) -> Result<RoaringBitmap> {
        let Some((_, kind)) = self.watched_list()?.into_iter().find(|(n, _)| n == segment) else {
            if self.segment_bytes(segment)?.is_none() {
                return Err(Error::UnknownSegment(segment.to_owned()));
            }
            return Err(Error::InvalidArgument(format!(
                "segment {} is not watched",
                crate::error::quote(segment)
            )));
        };
        Ok((*self.bitmap(&index::watch_key(kind, segment))?).clone())
    }

    /// Names of the saved segments.
    ///
    /// # Errors
    /// A storage failure.
    fn segments(&self) -> Result<Vec<String>> {
        self.segment_names()
    }
}

impl<T: Source> Snapshot for T {}

fn open_once<T>(cell: &OnceCell<T>, open: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = open()?;
    Ok(cell.get_or_init(|| value))
}

type BitmapTable = ReadOnlyTable<(&'static str, u32), &'static [u8]>;

/// A consistent read-only snapshot. Never blocks the writer.
pub struct ReadTransaction {
    inner: Arc<Shared>,
    txn: redb::ReadTransaction,
    rows: [OnceCell<ReadOnlyTable<u32, &'static [u8]>>; 8],
    bitmaps: OnceCell<BitmapTable>,
    generations: OnceCell<ReadOnlyTable<&'static str, u64>>,
    config: OnceCell<Arc<Config>>,
}

impl ReadTransaction {
    /// The redb snapshot, for the backup.
    pub(super) fn redb_txn(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

impl std::fmt::Debug for ReadTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTransaction").finish_non_exhaustive()
    }
}

impl ReadTransaction {
    pub(crate) fn begin(inner: Arc<Shared>, txn: redb::ReadTransaction) -> Result<ReadTransaction> {
        Ok(ReadTransaction {
            inner,
            txn,
            rows: Default::default(),
            bitmaps: OnceCell::new(),
            generations: OnceCell::new(),
            config: OnceCell::new(),
        })
    }

    fn rows_table(&self, kind: EntityKind) -> Result<&ReadOnlyTable<u32, &'static [u8]>> {
        open_once(&self.rows[kind as usize], || {
            Ok(self.txn.open_table(storage::rows(kind))?)
        })
    }

    fn bitmaps_table(&self) -> Result<&BitmapTable> {
        open_once(&self.bitmaps, || {
            Ok(self.txn.open_table(storage::BITMAPS)?)
        })
    }

    fn generations_table(&self) -> Result<&ReadOnlyTable<&'static str, u64>> {
        open_once(&self.generations, || {
            Ok(self.txn.open_table(storage::BITMAP_GEN)?)
        })
    }
}

impl Source for ReadTransaction {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.rows_table(kind)?.get(row)?.map(|v| v.value().to_vec()))
    }

    /// Decoded straight from the stored page, without copying the bytes out first.
    fn record<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
        let row = id.row();
        match self.rows_table(I::Record::KIND)?.get(row)? {
            Some(bytes) => Ok(Some(decode_record(row, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        all_rows(self.rows_table(kind)?)
    }

    fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        cached_bitmap(
            &self.inner,
            self.generations_table()?,
            self.bitmaps_table()?,
            key,
        )
    }

    fn bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        cached_bsi(
            &self.inner,
            self.generations_table()?,
            self.bitmaps_table()?,
            base,
        )
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        keys_in(self.generations_table()?, prefix)
    }

    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn.open_table(storage::META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>> {
        let table = self.txn.open_table(storage::UNIQUE)?;
        Ok(table.get((field, value))?.map(|v| v.value()))
    }

    fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>> {
        history_in(&self.txn.open_table(storage::HISTORY)?, kind, row)
    }

    fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn.open_table(storage::SEGMENTS)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn.open_table(storage::IDENTITY)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        entries_in(&self.txn.open_table(storage::IDENTITY)?, prefix)
    }

    fn segment_names(&self) -> Result<Vec<String>> {
        segment_names_in(&self.txn.open_table(storage::SEGMENTS)?)
    }

    fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>> {
        let table = self.txn.open_table(storage::CHANGES)?;
        crate::feed::read_batches(&table, after, limit, self.sequence()?)
    }

    fn oldest_kept(&self) -> Result<u64> {
        let table = self.txn.open_table(storage::CHANGES)?;
        crate::feed::oldest_kept(&table, self.sequence()?)
    }

    fn commit_counter(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.generations_table()?.get(key)?.map(|v| v.value()))
    }

    fn consumer_list(&self) -> Result<Vec<(String, u64)>> {
        consumers_in(&self.txn.open_table(storage::CONSUMERS)?)
    }

    fn watched_list(&self) -> Result<Vec<(String, EntityKind)>> {
        watched_in(&self.txn.open_table(storage::WATCHED)?)
    }

    fn config(&self) -> Result<Arc<Config>> {
        open_once(&self.config, || {
            Ok(Arc::new(Config::load(|name| self.meta_bytes(name))?))
        })
        .cloned()
    }

    fn clock_now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

impl WriteTransaction {
    /// A bitmap as last committed, without this transaction's changes.
    fn stored_bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        let txn = self.txn()?;
        cached_bitmap(
            &self.inner,
            &txn.open_table(storage::BITMAP_GEN)?,
            &txn.open_table(storage::BITMAPS)?,
            key,
        )
    }

    /// A numeric index as last committed, without this transaction's changes.
    fn stored_bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        let txn = self.txn()?;
        cached_bsi(
            &self.inner,
            &txn.open_table(storage::BITMAP_GEN)?,
            &txn.open_table(storage::BITMAPS)?,
            base,
        )
    }

    /// Index reads of a few rows, with the index tables opened once.
    pub(super) fn rows_index(&self) -> Result<RowsIndex<'_>> {
        let txn = self.txn()?;
        Ok(RowsIndex {
            tx: self,
            generations: txn.open_table(storage::BITMAP_GEN)?,
            bitmaps: txn.open_table(storage::BITMAPS)?,
        })
    }

    /// `keys` (bitmap keys ever written under `prefix`) with the keys this transaction
    /// writes under it.
    fn with_delta_keys(&self, mut keys: Vec<String>, prefix: &str) -> Vec<String> {
        keys.extend(
            self.delta
                .cats
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned(),
        );
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// Above this many chunks, a restricted read loads (and caches) the whole bitmap.
const FEW_CHUNKS: usize = 8;

/// Index reads of the rows in a small set only, with this transaction's changes and the
/// index tables opened once: what re-evaluating watched segments for the rows a commit
/// touched reads through. A read costs in proportion to the rows' chunks, not to the
/// bitmap: a cached bitmap is intersected; one whose cached copy is of an older
/// generation (it changes often) is read chunk by chunk; one never cached is loaded
/// whole into the cache.
pub(super) struct RowsIndex<'t> {
    tx: &'t WriteTransaction,
    generations: redb::Table<'t, &'static str, u64>,
    bitmaps: redb::Table<'t, (&'static str, u32), &'static [u8]>,
}

impl RowsIndex<'_> {
    pub(super) fn bitmap(&self, key: &str, rows: &RoaringBitmap) -> Result<RoaringBitmap> {
        let generation = self.generations.get(key)?.map(|g| g.value());
        let mut bitmap = match generation {
            None => RoaringBitmap::new(),
            Some(generation) => match self.tx.inner.cache.get(key, generation) {
                Some(Cached::Bitmap(cached)) => &*cached & rows,
                _ => {
                    let chunks = store::chunks_holding(rows);
                    if chunks.len() <= FEW_CHUNKS && self.tx.inner.cache.holds_any(key) {
                        store::load_chunks(&self.bitmaps, key, &chunks)? & rows
                    } else {
                        let whole =
                            cached_bitmap(&self.tx.inner, &self.generations, &self.bitmaps, key)?;
                        &*whole & rows
                    }
                }
            },
        };
        if let Some(delta) = self.tx.delta.cats.get(key) {
            bitmap -= &delta.remove;
            bitmap |= &delta.add & rows;
        }
        Ok(bitmap)
    }

    pub(super) fn bsi(&self, base: &str, rows: &RoaringBitmap) -> Result<Bsi> {
        let generation = self.generations.get(base)?.map(|g| g.value());
        let mut bsi = match generation {
            None => Bsi::default(),
            Some(generation) => match self.tx.inner.cache.get(base, generation) {
                Some(Cached::Bsi(cached)) => cached.restrict(rows),
                _ => {
                    let chunks = store::chunks_holding(rows);
                    if chunks.len() <= FEW_CHUNKS && self.tx.inner.cache.holds_any(base) {
                        store::load_bsi_chunks(&self.bitmaps, base, Some(&chunks))?.restrict(rows)
                    } else {
                        cached_bsi(&self.tx.inner, &self.generations, &self.bitmaps, base)?
                            .restrict(rows)
                    }
                }
            },
        };
        if let Some(delta) = self.tx.delta.nums.get(base) {
            delta.apply(&mut bsi);
            bsi = bsi.restrict(rows);
        }
        Ok(bsi)
    }

    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .tx
            .with_delta_keys(keys_in(&self.generations, prefix)?, prefix))
    }
}

impl Source for WriteTransaction {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        let table = self.txn()?.open_table(storage::rows(kind))?;
        Ok(table.get(row)?.map(|v| v.value().to_vec()))
    }

    /// Decoded straight from the stored page, without copying the bytes out first.
    fn record<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
        let row = id.row();
        let table = self.txn()?.open_table(storage::rows(I::Record::KIND))?;
        match table.get(row)? {
            Some(bytes) => Ok(Some(decode_record(row, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        all_rows(&self.txn()?.open_table(storage::rows(kind))?)
    }

    fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        let base = self.stored_bitmap(key)?;
        Ok(match self.delta.cats.get(key) {
            Some(delta) if !delta.is_empty() => {
                let mut bitmap = (*base).clone();
                delta.apply(&mut bitmap);
                Arc::new(bitmap)
            }
            _ => base,
        })
    }

    fn bsi(&self, base_key: &str) -> Result<Arc<Bsi>> {
        let base = self.stored_bsi(base_key)?;
        Ok(match self.delta.nums.get(base_key) {
            Some(delta) => {
                let mut bsi = (*base).clone();
                delta.apply(&mut bsi);
                Arc::new(bsi)
            }
            None => base,
        })
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let keys = keys_in(&self.txn()?.open_table(storage::BITMAP_GEN)?, prefix)?;
        Ok(self.with_delta_keys(keys, prefix))
    }

    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn()?.open_table(storage::META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>> {
        let table = self.txn()?.open_table(storage::UNIQUE)?;
        Ok(table.get((field, value))?.map(|v| v.value()))
    }

    fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>> {
        history_in(&self.txn()?.open_table(storage::HISTORY)?, kind, row)
    }

    fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn()?.open_table(storage::SEGMENTS)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn()?.open_table(storage::IDENTITY)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        entries_in(&self.txn()?.open_table(storage::IDENTITY)?, prefix)
    }

    fn segment_names(&self) -> Result<Vec<String>> {
        segment_names_in(&self.txn()?.open_table(storage::SEGMENTS)?)
    }

    fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>> {
        let table = self.txn()?.open_table(storage::CHANGES)?;
        crate::feed::read_batches(&table, after, limit, self.sequence()?)
    }

    fn oldest_kept(&self) -> Result<u64> {
        let table = self.txn()?.open_table(storage::CHANGES)?;
        crate::feed::oldest_kept(&table, self.sequence()?)
    }

    fn commit_counter(&self, key: &str) -> Result<Option<u64>> {
        let table = self.txn()?.open_table(storage::BITMAP_GEN)?;
        Ok(table.get(key)?.map(|v| v.value()))
    }

    fn consumer_list(&self) -> Result<Vec<(String, u64)>> {
        consumers_in(&self.txn()?.open_table(storage::CONSUMERS)?)
    }

    fn watched_list(&self) -> Result<Vec<(String, EntityKind)>> {
        watched_in(&self.txn()?.open_table(storage::WATCHED)?)
    }

    fn config(&self) -> Result<Arc<Config>> {
        match &self.config {
            Some(config) => Ok(Arc::clone(config)),
            None => self.committed_config(),
        }
    }

    fn clock_now(&self) -> Timestamp {
        self.now()
    }
}
