//! Read and write transactions. **Invariant**: this is the only module that commits, and
//! the only one that writes rows, natural keys, histories and index deltas. Every write
//! operation validates everything before its first mutation, so a refused operation
//! leaves the transaction as it was; a storage failure after that poisons it.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableTable};
use roaring::RoaringBitmap;

use crate::codec;
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::index::cache::Cached;
use crate::index::{self, Bsi, IndexDelta, Terms, store};
use crate::lifecycle::{
    ChangeKind, GuardView, Machines, MoveOp, Stage, StageChange, Trigger, check_transition,
};
use crate::query::{self, Group, GroupBy, Page, Query, SavedSegment, SortBy};
use crate::schema::entities::sealed::RecordInternal;
use crate::schema::{
    Contact, ContactId, CustomSchema, Deal, DealId, Direction, EntityKind, FieldDef, Order,
    OrderStatus, ProductId, Record, RecordId, Subject, Timestamp,
};
use crate::storage::{self, meta};

/// The actor recorded for automatic moves and when no actor is set.
pub const SYSTEM_ACTOR: &str = "system";

pub(crate) fn looks_like_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Settings read from the `meta` table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) schemas: BTreeMap<EntityKind, CustomSchema>,
    pub(crate) machines: Machines,
    pub(crate) assignment: crate::assign::Assignment,
}

impl Config {
    pub(crate) fn schema(&self, kind: EntityKind) -> CustomSchema {
        self.schemas.get(&kind).cloned().unwrap_or_default()
    }

    fn load(get: impl Fn(&str) -> Result<Option<Vec<u8>>>) -> Result<Config> {
        let schemas = match get(meta::SCHEMA)? {
            Some(bytes) => codec::decode("meta", &meta::SCHEMA, &bytes)?,
            None => BTreeMap::new(),
        };
        let machines = match get(meta::MACHINES)? {
            Some(bytes) => codec::decode("meta", &meta::MACHINES, &bytes)?,
            None => Machines::default(),
        };
        let assignment = match get(meta::ASSIGNMENT)? {
            Some(bytes) => codec::decode("meta", &meta::ASSIGNMENT, &bytes)?,
            None => crate::assign::Assignment::default(),
        };
        Ok(Config {
            schemas,
            machines,
            assignment,
        })
    }
}

/// A record with a lifecycle stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StagedId {
    /// A contact (contact lifecycle).
    Contact(ContactId),
    /// A deal (its pipeline).
    Deal(DealId),
}

impl From<ContactId> for StagedId {
    fn from(id: ContactId) -> Self {
        StagedId::Contact(id)
    }
}

impl From<DealId> for StagedId {
    fn from(id: DealId) -> Self {
        StagedId::Deal(id)
    }
}

impl StagedId {
    fn kind_row(self) -> (EntityKind, u32) {
        match self {
            StagedId::Contact(id) => (EntityKind::Contact, id.get()),
            StagedId::Deal(id) => (EntityKind::Deal, id.get()),
        }
    }
}

/// Whether an upsert inserted or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new record was inserted.
    Inserted,
    /// The existing record was replaced.
    Updated,
}

pub(crate) mod sealed {
    use super::*;

    /// What the shared read API needs from a transaction.
    pub trait SnapshotInternal {
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
        fn clock_now(&self) -> Timestamp;
    }
}

use sealed::SnapshotInternal;

fn decode_record<R: Record>(row: u32, bytes: &[u8]) -> Result<R> {
    codec::decode(R::KIND.as_str(), &row, bytes)
}

/// The read API shared by [`ReadTransaction`] and [`WriteTransaction`] (which also sees
/// its own uncommitted writes). Bring it into scope with `use crmdb::Snapshot`.
pub trait Snapshot: SnapshotInternal {
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
        match self.row_bytes(I::Record::KIND, id.row())? {
            Some(bytes) => Ok(Some(decode_record(id.row(), &bytes)?)),
            None => Ok(None),
        }
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
        let key = crate::schema::entities::normalise_key(email);
        Ok(self.unique_row("contact.email", &key)?.map(ContactId::new))
    }

    /// The product holding a sku (case-insensitive).
    ///
    /// # Errors
    /// A storage failure.
    fn product_by_sku(&self, sku: &str) -> Result<Option<ProductId>> {
        let key = crate::schema::entities::normalise_key(sku);
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
        Ok(self.ids(kind, query)?.len())
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
    fn tags(&self, kind: EntityKind) -> Result<Vec<query::TagCount>> {
        let group = GroupBy::new("tag");
        Ok(query::page::group_by(self, kind, &Query::all(), &group)?
            .into_iter()
            .map(|g| query::TagCount {
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
        let bytes = self
            .segment_bytes(name)?
            .ok_or_else(|| Error::UnknownSegment(name.into()))?;
        codec::decode::<query::StoredSegment>("segment", &name, &bytes)?.into_segment(name)
    }

    /// Names of the saved segments.
    ///
    /// # Errors
    /// A storage failure.
    fn segments(&self) -> Result<Vec<String>> {
        self.segment_names()
    }
}

impl<T: SnapshotInternal> Snapshot for T {}

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
    inner: Arc<Inner>,
    txn: redb::ReadTransaction,
    rows: [OnceCell<ReadOnlyTable<u32, &'static [u8]>>; 8],
    bitmaps: OnceCell<BitmapTable>,
    generations: OnceCell<ReadOnlyTable<&'static str, u64>>,
    config: OnceCell<Arc<Config>>,
}

impl std::fmt::Debug for ReadTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTransaction").finish_non_exhaustive()
    }
}

fn empty_bitmap() -> Arc<RoaringBitmap> {
    Arc::new(RoaringBitmap::new())
}

/// Loads a categorical bitmap through the shared cache.
fn cached_bitmap<G, B>(
    inner: &Inner,
    generations: &G,
    bitmaps: &B,
    key: &str,
) -> Result<Arc<RoaringBitmap>>
where
    G: ReadableTable<&'static str, u64>,
    B: ReadableTable<(&'static str, u32), &'static [u8]>,
{
    let Some(generation) = generations.get(key)?.map(|g| g.value()) else {
        return Ok(empty_bitmap());
    };
    if let Some(Cached::Bitmap(bitmap)) = inner.cache.get(key, generation) {
        return Ok(bitmap);
    }
    let bitmap = Arc::new(store::load_bitmap(bitmaps, key)?);
    inner
        .cache
        .insert(key, generation, Cached::Bitmap(Arc::clone(&bitmap)));
    Ok(bitmap)
}

/// Loads a numeric index through the shared cache.
fn cached_bsi<G, B>(inner: &Inner, generations: &G, bitmaps: &B, base: &str) -> Result<Arc<Bsi>>
where
    G: ReadableTable<&'static str, u64>,
    B: ReadableTable<(&'static str, u32), &'static [u8]>,
{
    let Some(generation) = generations.get(base)?.map(|g| g.value()) else {
        return Ok(Arc::new(Bsi::default()));
    };
    if let Some(Cached::Bsi(bsi)) = inner.cache.get(base, generation) {
        return Ok(bsi);
    }
    let bsi = Arc::new(store::load_bsi(bitmaps, base)?);
    inner
        .cache
        .insert(base, generation, Cached::Bsi(Arc::clone(&bsi)));
    Ok(bsi)
}

fn keys_in<G: ReadableTable<&'static str, u64>>(
    generations: &G,
    prefix: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let iter = match store::prefix_end(prefix) {
        Some(end) => generations.range(prefix..end.as_str())?,
        None => generations.range(prefix..)?,
    };
    for entry in iter {
        let (key, _) = entry?;
        out.push(key.value().to_owned());
    }
    Ok(out)
}

fn history_in<T: ReadableTable<(u8, u32, u32), &'static [u8]>>(
    table: &T,
    kind: EntityKind,
    row: u32,
) -> Result<Vec<StageChange>> {
    let k = kind as u8;
    let mut out = Vec::new();
    for entry in table.range((k, row, 0)..=(k, row, u32::MAX))? {
        let (key, value) = entry?;
        let (_, _, seq) = key.value();
        out.push(codec::decode(
            "history",
            &format!("{kind}/{row}/{seq}"),
            value.value(),
        )?);
    }
    Ok(out)
}

fn all_rows<T: ReadableTable<u32, &'static [u8]>>(table: &T) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

fn segment_names_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(entry?.0.value().to_owned());
    }
    Ok(out)
}

impl ReadTransaction {
    pub(crate) fn begin(inner: Arc<Inner>, txn: redb::ReadTransaction) -> Result<ReadTransaction> {
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

impl SnapshotInternal for ReadTransaction {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.rows_table(kind)?.get(row)?.map(|v| v.value().to_vec()))
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

    fn segment_names(&self) -> Result<Vec<String>> {
        segment_names_in(&self.txn.open_table(storage::SEGMENTS)?)
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

/// A write transaction. Reads through [`Snapshot`] see its own writes. Dropping it
/// without [`commit`](WriteTransaction::commit) rolls everything back.
pub struct WriteTransaction {
    inner: Arc<Inner>,
    txn: Option<redb::WriteTransaction>,
    pub(crate) delta: IndexDelta,
    next_rows: HashMap<EntityKind, u32>,
    config: Option<Arc<Config>>,
    actor: String,
    time_override: Option<Timestamp>,
    config_changed: bool,
    poisoned: bool,
}

impl std::fmt::Debug for WriteTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTransaction")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The full normalised index terms of a record version.
pub(crate) fn record_terms<R: Record>(record: &R) -> Terms {
    let mut terms = Terms::default();
    record.terms(&mut terms);
    terms.custom(record.custom());
    terms.cats.push((
        std::borrow::Cow::Borrowed(index::STATE_FIELD),
        if record.deleted_at().is_some() {
            "deleted"
        } else {
            "live"
        }
        .to_owned(),
    ));
    terms.normalise();
    terms
}

impl WriteTransaction {
    pub(crate) fn begin(inner: Arc<Inner>) -> Result<WriteTransaction> {
        let txn = inner.redb.begin_write()?;
        Ok(WriteTransaction {
            inner,
            txn: Some(txn),
            delta: IndexDelta::default(),
            next_rows: HashMap::new(),
            config: None,
            actor: SYSTEM_ACTOR.to_owned(),
            time_override: None,
            config_changed: false,
            poisoned: false,
        })
    }

    pub(crate) fn txn(&self) -> Result<&redb::WriteTransaction> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.txn.as_ref().ok_or(Error::Poisoned)
    }

    /// Runs a mutating operation; storage and decode failures poison the transaction.
    pub(crate) fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let result = f(self);
        if result.as_ref().is_err_and(Error::poisons) {
            self.poisoned = true;
        }
        result
    }

    /// Sets who is making the changes; recorded in stage histories. Defaults to `system`.
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }

    /// The transaction clock's current time.
    pub fn now(&self) -> Timestamp {
        self.time_override.unwrap_or_else(|| self.inner.clock.now())
    }

    /// Backdates this transaction's clock, for imports of historical data: created and
    /// updated times and stage-history times use `at` until reset with `None`.
    pub fn set_time(&mut self, at: Option<Timestamp>) {
        self.time_override = at;
    }

    /// Commits rows, indexes and histories atomically.
    ///
    /// # Errors
    /// [`Error::Poisoned`] after an earlier storage failure, or a storage failure now.
    pub fn commit(mut self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let txn = self.txn.take().ok_or(Error::Poisoned)?;
        // Tables are opened only when written: every table a commit touches costs it
        // pages to copy and checksum.
        if !self.delta.is_empty() {
            let mut generations = txn.open_table(storage::BITMAP_GEN)?;
            let generation = generations
                .get(storage::GENERATION_KEY)?
                .map_or(0, |g| g.value())
                + 1;
            let mut bitmaps = txn.open_table(storage::BITMAPS)?;
            store::merge(&mut bitmaps, &mut generations, &self.delta, generation)?;
            generations.insert(storage::GENERATION_KEY, generation)?;
        }
        if !self.next_rows.is_empty() {
            let mut meta_table = txn.open_table(storage::META)?;
            for (kind, next) in &self.next_rows {
                let key = format!("{}{kind}", meta::NEXT_ROW);
                meta_table.insert(key.as_str(), codec::encode(next).as_slice())?;
            }
        }
        txn.commit()?;
        if self.config_changed {
            *self.inner.config.lock() = self.config.take();
        }
        Ok(())
    }

    /// Rolls everything back (as does dropping the transaction).
    ///
    /// # Errors
    /// A storage failure.
    pub fn abort(mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            txn.abort()?;
        }
        Ok(())
    }

    pub(crate) fn config_arc(&mut self) -> Result<Arc<Config>> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let config = self.committed_config()?;
        self.config = Some(Arc::clone(&config));
        Ok(config)
    }

    /// The configuration as last committed, from the database's cache. Only write
    /// transactions use it: they always see the last commit, and only a commit of this
    /// process changes it.
    fn committed_config(&self) -> Result<Arc<Config>> {
        if let Some(config) = self.inner.config.lock().as_ref() {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(Config::load(|name| self.meta_bytes(name))?);
        *self.inner.config.lock() = Some(Arc::clone(&config));
        Ok(config)
    }

    /// Replaces this transaction's configuration; published to the database's cache
    /// when the transaction commits.
    pub(crate) fn set_config(&mut self, config: Config) {
        self.config = Some(Arc::new(config));
        self.config_changed = true;
    }

    pub(crate) fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut table = self.txn()?.open_table(storage::META)?;
        table.insert(name, bytes)?;
        Ok(())
    }

    /// The row id the next insert of `kind` will take; nothing is reserved.
    fn next_row(&mut self, kind: EntityKind) -> Result<u32> {
        if let Some(next) = self.next_rows.get(&kind) {
            return Ok(*next);
        }
        let key = format!("{}{kind}", meta::NEXT_ROW);
        let next = match self.meta_bytes(&key)? {
            Some(bytes) => codec::decode("meta", &key, &bytes)?,
            None => 0u32,
        };
        self.next_rows.insert(kind, next);
        Ok(next)
    }

    // ---- validation helpers (no mutation) ----

    pub(crate) fn check_record<R: Record>(&mut self, record: &R, row: Option<u32>) -> Result<()> {
        let config = self.config_arc()?;
        check_shape(&config, record)?;
        self.check_links(record, row)
    }

    /// The checks that need other records: relations exist and are live, natural keys
    /// are free (or held by `row` itself).
    fn check_links<R: Record>(&mut self, record: &R, row: Option<u32>) -> Result<()> {
        for (target_kind, target_id) in record.references() {
            let live = match self.row_bytes(target_kind, target_id)? {
                None => false,
                Some(_) if (target_kind, Some(target_id)) == (R::KIND, row) => true,
                Some(bytes) => !deleted_in(target_kind, target_id, &bytes)?,
            };
            if !live {
                return Err(Error::BrokenRelation {
                    kind: R::KIND,
                    target_kind,
                    target_id,
                });
            }
        }
        for (field, value) in record.unique_keys() {
            if let Some(existing) = self.unique_row(field, &value)?
                && Some(existing) != row
            {
                return Err(Error::Duplicate {
                    kind: R::KIND,
                    field,
                    value,
                    existing,
                });
            }
        }
        Ok(())
    }

    /// Resolves and checks the stage of a contact or deal about to be written.
    /// Returns the history entry to append, if the stage changes.
    fn check_stage<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &mut R,
        op: MoveOp<'_>,
    ) -> Result<Option<StageChange>> {
        let config = self.config_arc()?;
        let now = self.now();
        stage_change(&config, row, old, new, op, now, &self.actor)
    }

    // ---- mutation helpers (after validation) ----

    pub(crate) fn write_row<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &R,
    ) -> Result<()> {
        let bytes = codec::encode(new);
        {
            let mut table = self.txn()?.open_table(storage::rows(R::KIND))?;
            table.insert(row, bytes.as_slice())?;
        }
        let old_terms = old.map(record_terms);
        let new_terms = record_terms(new);
        self.delta
            .diff(R::KIND, row, old_terms.as_ref(), Some(&new_terms));
        let old_keys = old.map(RecordInternal::unique_keys).unwrap_or_default();
        let new_keys = new.unique_keys();
        if old_keys != new_keys {
            let mut table = self.txn()?.open_table(storage::UNIQUE)?;
            for (field, value) in &old_keys {
                table.remove((*field, value.as_str()))?;
            }
            for (field, value) in &new_keys {
                table.insert((*field, value.as_str()), row)?;
            }
        }
        Ok(())
    }

    pub(crate) fn append_history(
        &mut self,
        kind: EntityKind,
        row: u32,
        change: &StageChange,
    ) -> Result<()> {
        let mut table = self.txn()?.open_table(storage::HISTORY)?;
        let k = kind as u8;
        let next = match table.range((k, row, 0)..=(k, row, u32::MAX))?.next_back() {
            Some(entry) => entry?.0.value().2.checked_add(1).ok_or_else(|| {
                Error::LimitExceeded(format!("{kind} {row} has too many stage changes"))
            })?,
            None => 0,
        };
        table.insert((k, row, next), codec::encode(change).as_slice())?;
        Ok(())
    }

    // ---- public write API ----

    /// Inserts a record and returns its id. Contacts and deals without a stage start in
    /// their machine's first stage; a given stage is checked as a create move. Paid
    /// orders and inbound activities update their contact's figures and may move its
    /// stage (see [`Machines::auto_moves`]).
    ///
    /// # Errors
    /// [`Error::InvalidField`], [`Error::UnknownField`], [`Error::BrokenRelation`],
    /// [`Error::Duplicate`], [`Error::IllegalTransition`]; nothing is applied then.
    pub fn insert<R: Record>(&mut self, record: R) -> Result<R::Id> {
        self.guarded(|tx| tx.insert_inner(record))
    }

    fn insert_inner<R: Record>(&mut self, mut record: R) -> Result<R::Id> {
        let now = self.now();
        normalise_new(&mut record, now);
        let mut assignment = None;
        if let Some(contact) = (&mut record as &mut dyn std::any::Any).downcast_mut::<Contact>() {
            if contact.owner.is_none() {
                assignment = crate::assign::decide(self, contact, now)?;
                if let Some(decision) = &assignment {
                    contact.owner = Some(decision.owner);
                    contact.assigned_by = Some(decision.rule.clone());
                }
            }
        }
        // The row id is taken only once validation has passed.
        let row = self.next_row(R::KIND)?;
        if row == u32::MAX {
            return Err(Error::LimitExceeded(format!(
                "{} row ids are exhausted",
                R::KIND
            )));
        }
        self.check_record(&record, None)?;
        let change = self.check_stage(row, None, &mut record, MoveOp::Create)?;
        let follow_up = self.follow_up_of(row, &record, None)?;
        self.next_rows.insert(R::KIND, row + 1);
        self.write_row(row, None, &record)?;
        if let Some(change) = change {
            // A new row has no history yet.
            let mut table = self.txn()?.open_table(storage::HISTORY)?;
            table.insert((R::KIND as u8, row, 0), codec::encode(&change).as_slice())?;
        }
        self.apply_follow_up(follow_up)?;
        if let Some(decision) = assignment {
            self.record_assignment(&decision)?;
        }
        Ok(R::Id::from_row(row))
    }

    /// The configuration, clock and actor a bulk load prepares records with.
    pub(crate) fn prepare_context(&mut self) -> Result<(Arc<Config>, Timestamp, String)> {
        Ok((self.config_arc()?, self.now(), self.actor.clone()))
    }

    /// Reserves `count` consecutive row ids of a kind for a bulk load and returns the
    /// first. Ids of records the load then refuses stay unused.
    pub(crate) fn reserve_rows(&mut self, kind: EntityKind, count: usize) -> Result<u32> {
        let first = self.next_row(kind)?;
        let end = u32::try_from(count)
            .ok()
            .and_then(|c| first.checked_add(c))
            .filter(|end| *end < u32::MAX)
            .ok_or_else(|| Error::LimitExceeded(format!("{kind} row ids are exhausted")))?;
        self.next_rows.insert(kind, end);
        Ok(first)
    }

    /// Writes records prepared by [`prepare_insert`] at their reserved rows, in order,
    /// with the tables opened once, and folds in the index delta the preparing thread
    /// built for the accepted ones. Refused records go to `rejected` with their input
    /// position and are taken back out of `chunk_delta`. Returns how many were inserted.
    pub(crate) fn insert_prepared(
        &mut self,
        kind: EntityKind,
        records: Vec<(u64, u32, Result<PreparedInsert>)>,
        mut chunk_delta: IndexDelta,
        rejected: &mut Vec<crate::bulk::Rejection>,
    ) -> Result<u64> {
        self.guarded(|tx| {
            let mut live_targets: HashMap<(EntityKind, u32), bool> = HashMap::new();
            let mut inserted = 0;
            {
                let txn = tx.txn.as_ref().ok_or(Error::Poisoned)?;
                let mut rows = txn.open_table(storage::rows(kind))?;
                let mut unique = txn.open_table(storage::UNIQUE)?;
                let mut history = txn.open_table(storage::HISTORY)?;
                'records: for (position, row, prepared) in records {
                    let prepared = match prepared {
                        Ok(p) => p,
                        Err(e) => {
                            rejected.push(crate::bulk::Rejection { position, error: e });
                            continue;
                        }
                    };
                    // Only records with a valid stage went into the chunk delta; a refusal
                    // (rare) takes the row back out of every bitmap of the chunk.
                    let mut refuse = |e: Error, prepared: &PreparedInsert| {
                        if prepared.change.is_ok() {
                            chunk_delta.forget_new_row(row);
                        }
                        rejected.push(crate::bulk::Rejection { position, error: e });
                    };
                    for &(target_kind, target_id) in &prepared.references {
                        let live = match live_targets.get(&(target_kind, target_id)) {
                            Some(live) => *live,
                            None => {
                                let bytes = if target_kind == kind {
                                    rows.get(target_id)?.map(|v| v.value().to_vec())
                                } else {
                                    tx.row_bytes(target_kind, target_id)?
                                };
                                let live = match bytes {
                                    None => false,
                                    Some(bytes) => !deleted_in(target_kind, target_id, &bytes)?,
                                };
                                live_targets.insert((target_kind, target_id), live);
                                live
                            }
                        };
                        if !live {
                            let e = Error::BrokenRelation {
                                kind,
                                target_kind,
                                target_id,
                            };
                            refuse(e, &prepared);
                            continue 'records;
                        }
                    }
                    for (field, value) in &prepared.unique {
                        if let Some(existing) = unique.get((*field, value.as_str()))? {
                            let existing = existing.value();
                            let value = value.clone();
                            refuse(
                                Error::Duplicate {
                                    kind,
                                    field,
                                    value,
                                    existing,
                                },
                                &prepared,
                            );
                            continue 'records;
                        }
                    }
                    let change = match prepared.change {
                        Ok(change) => change,
                        Err(Error::IllegalTransition {
                            kind,
                            from,
                            to,
                            rule,
                            ..
                        }) => {
                            let e = Error::IllegalTransition {
                                kind,
                                id: row,
                                from,
                                to,
                                rule,
                            };
                            rejected.push(crate::bulk::Rejection { position, error: e });
                            continue;
                        }
                        Err(e) => {
                            rejected.push(crate::bulk::Rejection { position, error: e });
                            continue;
                        }
                    };
                    rows.insert(row, prepared.bytes.as_slice())?;
                    for (field, value) in &prepared.unique {
                        unique.insert((*field, value.as_str()), row)?;
                    }
                    if let Some(change) = &change {
                        history.insert((kind as u8, row, 0), codec::encode(change).as_slice())?;
                    }
                    inserted += 1;
                }
            }
            tx.delta.absorb(chunk_delta);
            Ok(inserted)
        })
    }

    /// Writes a contact whose owner the assignment rules chose, keeping its rule name.
    pub(crate) fn update_assigned(&mut self, id: ContactId, mut contact: Contact) -> Result<()> {
        let old = self.live_record(id)?;
        let assigned_by = contact.assigned_by.take();
        contact.keep_engine_fields(&old);
        contact.assigned_by = assigned_by;
        contact.set_updated_at(self.now());
        self.check_record(&contact, Some(id.get()))?;
        self.write_row(id.get(), Some(&old), &contact)
    }

    /// Replaces a live record. Engine-maintained fields are kept; a changed stage is a
    /// plain move through the lifecycle machine.
    ///
    /// # Errors
    /// As [`insert`](Self::insert), and [`Error::NotFound`] or [`Error::Deleted`].
    pub fn update<I: RecordId>(&mut self, id: I, record: I::Record) -> Result<()> {
        self.guarded(|tx| tx.update_inner(id, record, MoveOp::Move))
    }

    /// Reads a live record, lets `f` change it, and writes it back as
    /// [`update`](Self::update) does.
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub fn modify<I: RecordId>(&mut self, id: I, f: impl FnOnce(&mut I::Record)) -> Result<()> {
        self.guarded(|tx| {
            let mut record = tx.live_record(id)?;
            f(&mut record);
            tx.update_inner(id, record, MoveOp::Move)
        })
    }

    pub(crate) fn live_record<I: RecordId>(&self, id: I) -> Result<I::Record> {
        let record = self.get(id)?;
        if record.deleted_at().is_some() {
            return Err(Error::Deleted {
                kind: I::Record::KIND,
                id: id.row(),
            });
        }
        Ok(record)
    }

    pub(crate) fn update_inner<I: RecordId>(
        &mut self,
        id: I,
        mut record: I::Record,
        op: MoveOp<'_>,
    ) -> Result<()> {
        let old = self.live_record(id)?;
        record.keep_engine_fields(&old);
        record.set_updated_at(self.now());
        let row = id.row();
        self.check_record(&record, Some(row))?;
        let change = self.check_stage(row, Some(&old), &mut record, op)?;
        let follow_up = self.follow_up_of(row, &record, Some(&old))?;
        self.write_row(row, Some(&old), &record)?;
        if let Some(change) = change {
            self.append_history(I::Record::KIND, row, &change)?;
        }
        self.apply_follow_up(follow_up)?;
        Ok(())
    }

    /// Inserts a contact, or replaces the one holding its email (the import path).
    ///
    /// # Errors
    /// As [`insert`](Self::insert) and [`update`](Self::update); an email is required,
    /// and a contact in the recycle bin is [`Error::Deleted`].
    pub fn upsert_contact_by_email(&mut self, contact: Contact) -> Result<(ContactId, Upserted)> {
        let Some(email) = contact.email.as_deref() else {
            return Err(Error::InvalidField {
                kind: EntityKind::Contact,
                field: "email".into(),
                reason: "an upsert by email needs an email".into(),
            });
        };
        match self.contact_by_email(email)? {
            Some(id) => {
                self.update(id, contact)?;
                Ok((id, Upserted::Updated))
            }
            None => Ok((self.insert(contact)?, Upserted::Inserted)),
        }
    }

    /// Adds a tag to a contact, account or deal. Adding a tag it has is a no-op.
    ///
    /// # Errors
    /// A bad tag name, a record type without tags, [`Error::NotFound`], [`Error::Deleted`].
    pub fn add_tag<I: RecordId>(&mut self, id: I, tag: &str) -> Result<()> {
        self.retag(id, tag, true)
    }

    /// Removes a tag. Removing a tag it lacks is a no-op.
    ///
    /// # Errors
    /// As [`add_tag`](Self::add_tag).
    pub fn remove_tag<I: RecordId>(&mut self, id: I, tag: &str) -> Result<()> {
        self.retag(id, tag, false)
    }

    fn retag<I: RecordId>(&mut self, id: I, tag: &str, present: bool) -> Result<()> {
        index::check_tag(tag).map_err(|reason| Error::InvalidField {
            kind: I::Record::KIND,
            field: "tags".into(),
            reason,
        })?;
        self.guarded(|tx| {
            let mut record = tx.live_record(id)?;
            let Some(tags) = record.tags_mut() else {
                return Err(Error::InvalidArgument(format!(
                    "{} records have no tags",
                    I::Record::KIND
                )));
            };
            let changed = if present {
                tags.insert(tag.to_owned())
            } else {
                tags.remove(tag)
            };
            if !changed {
                return Ok(());
            }
            tx.update_inner(id, record, MoveOp::Move)
        })
    }

    /// Moves a contact or deal to another stage by a plain move.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] naming the rule; nothing is applied then.
    pub fn move_stage(&mut self, id: impl Into<StagedId>, to: impl Into<Stage>) -> Result<()> {
        let (id, to) = (id.into(), to.into());
        self.guarded(|tx| tx.restage(id, to, MoveOp::Move))
    }

    /// Moves a contact or deal backward with a reason (needed where the machine refuses
    /// plain backward moves).
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the move is not backward or the reason is empty.
    pub fn regress(
        &mut self,
        id: impl Into<StagedId>,
        to: impl Into<Stage>,
        reason: &str,
    ) -> Result<()> {
        let (id, to) = (id.into(), to.into());
        self.guarded(|tx| tx.restage(id, to, MoveOp::Regress(reason)))
    }

    /// Moves a record out of a terminal stage (a won or lost deal) with a reason.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the record is not in a terminal stage, the target
    /// is terminal, or the reason is empty.
    pub fn reopen(
        &mut self,
        id: impl Into<StagedId>,
        to: impl Into<Stage>,
        reason: &str,
    ) -> Result<()> {
        let (id, to) = (id.into(), to.into());
        self.guarded(|tx| tx.restage(id, to, MoveOp::Reopen(reason)))
    }

    fn restage(&mut self, id: StagedId, to: Stage, op: MoveOp<'_>) -> Result<()> {
        match id {
            StagedId::Contact(id) => {
                let mut record = self.live_record(id)?;
                record.stage = to;
                self.update_inner(id, record, op)
            }
            StagedId::Deal(id) => {
                let mut record = self.live_record(id)?;
                record.stage = to;
                self.update_inner(id, record, op)
            }
        }
    }

    /// Moves a record to the recycle bin: it leaves every query result and can be restored.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Deleted`].
    pub fn soft_delete<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.guarded(|tx| {
            let old = tx.live_record(id)?;
            let mut record = old.clone();
            record.set_deleted_at(Some(tx.now()));
            let follow_up = tx.follow_up_of(id.row(), &record, Some(&old))?;
            tx.write_row(id.row(), Some(&old), &record)?;
            tx.apply_follow_up(follow_up)
        })
    }

    /// Brings a record back from the recycle bin. Its relations must be live again.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::NotDeleted`], [`Error::BrokenRelation`].
    pub fn restore<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.guarded(|tx| {
            let old = tx.get(id)?;
            if old.deleted_at().is_none() {
                return Err(Error::NotDeleted {
                    kind: I::Record::KIND,
                    id: id.row(),
                });
            }
            let mut record = old.clone();
            record.set_deleted_at(None);
            if let Some(contact) = (&mut record as &mut dyn std::any::Any).downcast_mut::<Contact>()
            {
                // Orders and activities may have changed while the contact was deleted.
                contact.stats = tx.contact_stats(ContactId::new(id.row()), &(), u32::MAX)?;
            }
            tx.check_record(&record, Some(id.row()))?;
            let follow_up = tx.follow_up_of(id.row(), &record, Some(&old))?;
            tx.write_row(id.row(), Some(&old), &record)?;
            tx.apply_follow_up(follow_up)
        })
    }

    /// Removes a record from the recycle bin for good, with its history. The row id is
    /// never reused.
    ///
    /// # Errors
    /// [`Error::NotDeleted`] for a live record (soft-delete it first),
    /// [`Error::StillReferenced`] while other records refer to it.
    pub fn purge<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.guarded(|tx| {
            let kind = I::Record::KIND;
            let row = id.row();
            let old = tx.get(id)?;
            if old.deleted_at().is_none() {
                return Err(Error::NotDeleted { kind, id: row });
            }
            let target = row.to_string();
            for &(referrer_kind, field) in referrer_fields(kind) {
                let referrers = tx.bitmap(&index::cat_key(referrer_kind, field, &target))?;
                if let Some(referrer_id) = referrers
                    .iter()
                    .find(|r| (referrer_kind, *r) != (kind, row))
                {
                    return Err(Error::StillReferenced {
                        kind,
                        id: row,
                        referrer_kind,
                        referrer_id,
                    });
                }
            }
            let old_terms = record_terms(&old);
            tx.delta.diff(kind, row, Some(&old_terms), None);
            if kind == EntityKind::Contact {
                // Derived indexes written by refresh_rfm are not part of the row's terms.
                for field in crate::analytics::RFM_FIELDS {
                    let base = index::bsi_base(kind, field);
                    if let Some(value) = tx.bsi(&base)?.value(row) {
                        tx.delta
                            .nums
                            .entry(base)
                            .or_default()
                            .change(row, Some(value), None);
                    }
                }
                for field in crate::analytics::TIER_FIELDS {
                    for key in tx.keys_with_prefix(&index::cat_prefix(kind, field))? {
                        if tx.bitmap(&key)?.contains(row) {
                            tx.delta.set_key(&key, row, false);
                        }
                    }
                }
            }
            let txn = tx.txn()?;
            txn.open_table(storage::rows(kind))?.remove(row)?;
            let mut unique = txn.open_table(storage::UNIQUE)?;
            for (field, value) in old.unique_keys() {
                unique.remove((field, value.as_str()))?;
            }
            let mut history = txn.open_table(storage::HISTORY)?;
            let k = kind as u8;
            history.retain_in((k, row, 0)..=(k, row, u32::MAX), |_, _| false)?;
            Ok(())
        })
    }

    /// Declares (or redeclares) a custom field. Existing values must fit a redeclared type.
    ///
    /// # Errors
    /// A malformed declaration, or [`Error::Schema`] if stored values would not fit.
    pub fn define_field(&mut self, kind: EntityKind, def: FieldDef) -> Result<()> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let mut schema = config.schema(kind);
            let previous = schema.field(&def.name).cloned();
            schema.define(def.clone())?;
            if let Some(previous) = previous
                && previous.field_type != def.field_type
                && tx.field_in_use(kind, &previous)?
            {
                return Err(Error::Schema {
                    reason: format!(
                        "{kind} field custom.{} holds values; remove them before changing its type",
                        def.name
                    ),
                });
            }
            tx.store_schema(kind, schema)
        })
    }

    /// Removes a custom field declaration. Refused while any record holds a value.
    ///
    /// # Errors
    /// [`Error::UnknownField`], [`Error::Schema`].
    pub fn remove_field(&mut self, kind: EntityKind, name: &str) -> Result<()> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let mut schema = config.schema(kind);
            let def = schema.remove(name).ok_or_else(|| Error::UnknownField {
                kind,
                field: format!("custom.{name}"),
            })?;
            if tx.field_in_use(kind, &def)? {
                return Err(Error::Schema {
                    reason: format!("{kind} field custom.{name} still holds values"),
                });
            }
            tx.store_schema(kind, schema)
        })
    }

    fn field_in_use(&self, kind: EntityKind, def: &FieldDef) -> Result<bool> {
        let field = format!("custom.{}", def.name);
        if index::custom_is_categorical(&def.field_type) {
            for key in self.keys_with_prefix(&index::cat_prefix(kind, &field))? {
                if !self.bitmap(&key)?.is_empty() {
                    return Ok(true);
                }
            }
            Ok(false)
        } else {
            Ok(!self.bsi(&index::bsi_base(kind, &field))?.exists.is_empty())
        }
    }

    fn store_schema(&mut self, kind: EntityKind, schema: CustomSchema) -> Result<()> {
        let config = self.config_arc()?;
        let mut next = (*config).clone();
        next.schemas.insert(kind, schema);
        self.put_meta(meta::SCHEMA, &codec::encode(&next.schemas))?;
        self.set_config(next);
        Ok(())
    }

    /// Replaces the lifecycle machines of a database that may hold data. `mapping` says
    /// where records in stages the new machines lack go (old stage → new stage, applied to
    /// contacts and to deals of every pipeline); remapped records get a `Remap` history
    /// entry. Returns how many records were remapped.
    ///
    /// # Errors
    /// [`Error::InvalidMachine`] for a malformed machine, or when any record would be left
    /// in a stage (or pipeline) the new machines do not define.
    pub fn replace_machines(
        &mut self,
        machines: Machines,
        mapping: &BTreeMap<Stage, Stage>,
    ) -> Result<u64> {
        machines.validate()?;
        self.guarded(|tx| {
            // Plan every remap first, so that a refusal applies nothing.
            let mut contact_moves = Vec::new();
            for key in tx.keys_with_prefix(&index::cat_prefix(EntityKind::Contact, "stage"))? {
                let stage = Stage::new(&key[index::cat_prefix(EntityKind::Contact, "stage").len()..]);
                let rows = tx.bitmap(&key)?;
                if rows.is_empty() || machines.contact.position(&stage).is_some() {
                    continue;
                }
                let target = mapping.get(&stage).filter(|t| machines.contact.position(t).is_some()).ok_or_else(|| {
                    Error::InvalidMachine {
                        reason: format!("{} contacts are in stage {stage}, which the new contact machine lacks and the mapping does not place", rows.len()),
                    }
                })?;
                contact_moves.extend(rows.iter().map(|r| (r, target.clone())));
            }
            let mut deal_moves = Vec::new();
            for (id, deal) in tx.records::<Deal>()? {
                let machine = machines.pipeline(deal.pipeline_name()).ok_or_else(|| Error::InvalidMachine {
                    reason: format!("deal {id} is in pipeline {:?}, which the new machines lack", deal.pipeline_name()),
                })?;
                if machine.position(&deal.stage).is_some() {
                    continue;
                }
                let target = mapping.get(&deal.stage).filter(|t| machine.position(t).is_some()).ok_or_else(|| {
                    Error::InvalidMachine {
                        reason: format!("deal {id} is in stage {}, which its new pipeline lacks and the mapping does not place", deal.stage),
                    }
                })?;
                deal_moves.push((id, target.clone()));
            }
            tx.put_meta(meta::MACHINES, &codec::encode(&machines))?;
            let config = tx.config_arc()?;
            let mut next = (*config).clone();
            next.machines = machines;
            tx.set_config(next);
            let count = (contact_moves.len() + deal_moves.len()) as u64;
            let now = tx.now();
            for (row, target) in contact_moves {
                let id = ContactId::new(row);
                let old = tx.get(id)?;
                let mut record = old.clone();
                let change = StageChange { from: Some(old.stage.clone()), to: target.clone(), at: now, actor: tx.actor.clone(), reason: Some("machine replaced".into()), kind: ChangeKind::Remap };
                record.stage = target;
                tx.write_row(row, Some(&old), &record)?;
                tx.append_history(EntityKind::Contact, row, &change)?;
            }
            for (id, target) in deal_moves {
                let old = tx.get(id)?;
                let mut record = old.clone();
                let change = StageChange { from: Some(old.stage.clone()), to: target.clone(), at: now, actor: tx.actor.clone(), reason: Some("machine replaced".into()), kind: ChangeKind::Remap };
                record.stage = target;
                tx.write_row(id.get(), Some(&old), &record)?;
                tx.append_history(EntityKind::Deal, id.get(), &change)?;
            }
            Ok(count)
        })
    }

    /// Moves inactive contacts as the sweep rules say, at a caller-given `now`: a contact
    /// in a rule's `from` stages whose latest activity, order and creation are all more
    /// than `after_days` before `now` moves to the rule's `to` stage. Where several rules
    /// apply, the one with the longest `after_days` wins. Returns the moves made.
    ///
    /// # Errors
    /// A storage failure; a move the machine refuses is an [`Error::IllegalTransition`].
    pub fn sweep(&mut self, now: Timestamp) -> Result<Vec<crate::lifecycle::SweepMove>> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let mut rules = config.machines.sweep.clone();
            rules.sort_by_key(|r| std::cmp::Reverse(r.after_days));
            let mut planned: BTreeMap<u32, (Stage, Stage, String)> = BTreeMap::new();
            for rule in &rules {
                // The day indexes rule out contacts seen after the cutoff day; the
                // records decide the boundary day to the second.
                let cutoff_day = now.plus_days(-i64::from(rule.after_days)).day();
                let mut from = RoaringBitmap::new();
                for stage in &rule.from {
                    from |= &*tx.bitmap(&index::cat_key(
                        EntityKind::Contact,
                        "stage",
                        stage.as_str(),
                    ))?;
                }
                from &= &*tx.bitmap(&index::live_key(EntityKind::Contact))?;
                for field in ["last_activity", "last_order", "created"] {
                    let bsi = tx.bsi(&index::bsi_base(EntityKind::Contact, field))?;
                    // Recent enough on this field: still active.
                    let recent = bsi.compare(index::bsi::Cmp::Gt, cutoff_day, Some(&from));
                    from -= recent;
                }
                for row in &from {
                    if planned.contains_key(&row) {
                        continue;
                    }
                    let contact: Contact = tx.get(ContactId::new(row))?;
                    let latest = [
                        contact.stats.last_activity,
                        contact.stats.last_order,
                        contact.created_at,
                    ]
                    .into_iter()
                    .flatten()
                    .max();
                    let quiet_for = latest.map_or(i64::MAX, |t| now.0.saturating_sub(t.0));
                    if quiet_for <= i64::from(rule.after_days) * crate::schema::SECONDS_PER_DAY {
                        continue;
                    }
                    if contact.stage != rule.to {
                        let reason = format!(
                            "no activity, order or creation for more than {} days",
                            rule.after_days
                        );
                        planned.insert(row, (contact.stage, rule.to.clone(), reason));
                    }
                }
            }
            // Check every move before applying any.
            let machine = &config.machines.contact;
            for (row, (from, to, reason)) in &planned {
                let contact: Contact = tx.get(ContactId::new(*row))?;
                check_transition(
                    machine,
                    Some(from),
                    to,
                    MoveOp::Sweep(reason),
                    &GuardView::Contact(&contact),
                )
                .map_err(|rule| Error::IllegalTransition {
                    kind: EntityKind::Contact,
                    id: *row,
                    from: from.to_string(),
                    to: to.to_string(),
                    rule,
                })?;
            }
            let mut moved = Vec::with_capacity(planned.len());
            // The moves happen at the sweep's `now`.
            let previous_time = tx.time_override.replace(now);
            for (row, (from, to, reason)) in planned {
                let id = ContactId::new(row);
                let mut record: Contact = tx.get(id)?;
                record.stage = to.clone();
                if let Err(e) = tx.update_inner(id, record, MoveOp::Sweep(&reason)) {
                    tx.time_override = previous_time;
                    return Err(e);
                }
                moved.push(crate::lifecycle::SweepMove {
                    contact: id,
                    from,
                    to,
                });
            }
            tx.time_override = previous_time;
            Ok(moved)
        })
    }

    /// Saves (or replaces) a segment. A dynamic segment is checked by binding it, which
    /// also refuses references to itself.
    ///
    /// # Errors
    /// A bad name, a query that does not bind, [`Error::SegmentCycle`].
    pub fn save_segment(&mut self, name: &str, segment: SavedSegment) -> Result<()> {
        crate::schema::check_stage_name(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "segment name {name:?} must be 1 to 64 bytes of [a-z0-9_]"
            ))
        })?;
        self.guarded(|tx| {
            if let SavedSegment::Dynamic { kind, query } = &segment {
                query::eval::check_segment(tx, name, *kind, query)?;
            }
            let mut table = tx.txn()?.open_table(storage::SEGMENTS)?;
            let stored = query::StoredSegment::of(&segment);
            table.insert(name, codec::encode(&stored).as_slice())?;
            Ok(())
        })
    }

    /// Deletes a saved segment. Returns whether it existed.
    ///
    /// # Errors
    /// A storage failure.
    pub fn delete_segment(&mut self, name: &str) -> Result<bool> {
        self.guarded(|tx| {
            let mut table = tx.txn()?.open_table(storage::SEGMENTS)?;
            Ok(table.remove(name)?.is_some())
        })
    }

    // ---- order and activity side effects ----

    /// What writing `new` (replacing `old`) does to a contact: new figures and perhaps
    /// an automatic move. Computed and checked before anything is written.
    fn follow_up_of<R: Record>(
        &mut self,
        row: u32,
        new: &R,
        old: Option<&R>,
    ) -> Result<Option<FollowUp>> {
        let any_new: &dyn std::any::Any = new;
        let any_old: Option<&dyn std::any::Any> = old.map(|o| o as &dyn std::any::Any);
        let (contact, trigger) = if let Some(order) = any_new.downcast_ref::<Order>() {
            let old_order = any_old.and_then(|o| o.downcast_ref::<Order>());
            let mut contacts: Vec<ContactId> = order.contact.into_iter().collect();
            if let Some(prev) = old_order.and_then(|o| o.contact)
                && !contacts.contains(&prev)
            {
                contacts.push(prev);
            }
            if contacts.is_empty() {
                return Ok(None);
            }
            let counts_now = order.status == OrderStatus::Paid && order.deleted_at.is_none();
            let counted_before =
                old_order.is_some_and(|o| o.status == OrderStatus::Paid && o.deleted_at.is_none());
            let newly_paid = counts_now && !counted_before;
            (contacts, newly_paid.then_some(Trigger::AnyOrder))
        } else if let Some(activity) = any_new.downcast_ref::<crate::schema::Activity>() {
            let old_activity = any_old.and_then(|o| o.downcast_ref::<crate::schema::Activity>());
            let mut contacts = Vec::new();
            if let Subject::Contact(c) = activity.subject {
                contacts.push(c);
            }
            if let Some(Subject::Contact(prev)) = old_activity.map(|a| a.subject)
                && !contacts.contains(&prev)
            {
                contacts.push(prev);
            }
            if contacts.is_empty() {
                return Ok(None);
            }
            let inbound = old.is_none() && activity.direction == Direction::Inbound;
            (contacts, inbound.then_some(Trigger::InboundActivity))
        } else {
            return Ok(None);
        };
        let mut updates = Vec::new();
        for (i, contact_id) in contact.iter().enumerate() {
            let old_contact: Contact = self.get(*contact_id)?;
            if old_contact.deleted_at.is_some() {
                // Figures of contacts in the recycle bin are recomputed on restore.
                continue;
            }
            let mut next = old_contact.clone();
            next.stats = self.contact_stats(*contact_id, any_new, row)?;
            let mut change = None;
            if i == 0
                && let Some(trigger) = trigger
            {
                let first = old_contact.stats.order_count == 0;
                let config = self.config_arc()?;
                let rule = config.machines.auto_moves.iter().find(|m| {
                    let fires = match (m.trigger, trigger) {
                        (Trigger::InboundActivity, Trigger::InboundActivity) => true,
                        (Trigger::FirstOrder, Trigger::AnyOrder) => first,
                        (Trigger::RepeatOrder, Trigger::AnyOrder) => !first,
                        (Trigger::AnyOrder, Trigger::AnyOrder) => true,
                        _ => false,
                    };
                    fires && m.from.contains(&old_contact.stage)
                });
                if let Some(rule) = rule {
                    next.stage = rule.to.clone();
                    let cause = match rule.trigger {
                        Trigger::FirstOrder => "first paid order",
                        Trigger::RepeatOrder => "repeat paid order",
                        Trigger::AnyOrder => "paid order",
                        Trigger::InboundActivity => "inbound activity",
                    };
                    change = self.check_stage(
                        contact_id.get(),
                        Some(&old_contact),
                        &mut next,
                        MoveOp::Automatic(cause),
                    )?;
                }
            }
            next.updated_at = self.now();
            if next != old_contact {
                updates.push((*contact_id, old_contact, next, change));
            }
        }
        Ok(Some(FollowUp { updates }))
    }

    fn apply_follow_up(&mut self, follow_up: Option<FollowUp>) -> Result<()> {
        let Some(follow_up) = follow_up else {
            return Ok(());
        };
        for (id, old, mut new, change) in follow_up.updates {
            if let Some(change) = &change {
                new.stage = change.to.clone();
            }
            self.write_row(id.get(), Some(&old), &new)?;
            if let Some(change) = change {
                self.append_history(EntityKind::Contact, id.get(), &change)?;
            }
        }
        Ok(())
    }

    /// A contact's figures recomputed from its live orders and activities, counting
    /// `pending` (about to be written at `pending_row` of its kind) in its new form.
    fn contact_stats(
        &self,
        contact: ContactId,
        pending: &dyn std::any::Any,
        pending_row: u32,
    ) -> Result<crate::schema::ContactStats> {
        use crate::schema::{Activity, ActivityId, ContactStats, OrderId};
        let mut stats = ContactStats::default();
        let add_order = |stats: &mut ContactStats, order: &Order| {
            if order.contact == Some(contact)
                && order.status == OrderStatus::Paid
                && order.deleted_at.is_none()
            {
                stats.order_count += 1;
                stats.total_spent.0 = stats.total_spent.0.saturating_add(order.total.0);
                stats.last_order = stats.last_order.max(Some(order.at));
            }
        };
        let add_activity = |stats: &mut ContactStats, activity: &Activity| {
            if activity.subject == Subject::Contact(contact) && activity.deleted_at.is_none() {
                stats.activity_count += 1;
                stats.last_activity = stats.last_activity.max(Some(activity.at));
            }
        };
        let pending_order = pending.downcast_ref::<Order>();
        let pending_activity = pending.downcast_ref::<Activity>();
        let contact_key = contact.get().to_string();
        for row in self
            .bitmap(&index::cat_key(EntityKind::Order, "contact", &contact_key))?
            .iter()
        {
            if pending_order.is_none() || row != pending_row {
                add_order(&mut stats, &self.get(OrderId::new(row))?);
            }
        }
        if let Some(order) = pending_order {
            add_order(&mut stats, order);
        }
        for row in self
            .bitmap(&index::cat_key(
                EntityKind::Activity,
                "contact",
                &contact_key,
            ))?
            .iter()
        {
            if pending_activity.is_none() || row != pending_row {
                add_activity(&mut stats, &self.get(ActivityId::new(row))?);
            }
        }
        if let Some(activity) = pending_activity {
            add_activity(&mut stats, activity);
        }
        Ok(stats)
    }
}

/// The indexed fields through which records of other kinds refer to a kind; every
/// relation a record type declares in `references()` is indexed under one of these.
fn referrer_fields(target: EntityKind) -> &'static [(EntityKind, &'static str)] {
    use EntityKind as K;
    match target {
        K::Contact => &[
            (K::Deal, "contact"),
            (K::Deal, "participant"),
            (K::Activity, "contact"),
            (K::Order, "contact"),
            (K::Task, "contact"),
        ],
        K::Account => &[
            (K::Contact, "account"),
            (K::Deal, "account"),
            (K::Activity, "account"),
            (K::Order, "account"),
            (K::Task, "account"),
        ],
        K::Deal => &[(K::Activity, "deal"), (K::Task, "deal")],
        K::Product => &[(K::Deal, "product"), (K::Order, "product")],
        K::Owner => &[
            (K::Contact, "owner"),
            (K::Account, "owner"),
            (K::Deal, "owner"),
            (K::Activity, "owner"),
            (K::Task, "assignee"),
        ],
        K::Activity | K::Order | K::Task => &[],
    }
}

struct FollowUp {
    updates: Vec<(ContactId, Contact, Contact, Option<StageChange>)>,
}

/// Sets the engine-maintained fields of a record about to be inserted.
pub(crate) fn normalise_new<R: Record>(record: &mut R, now: Timestamp) {
    if record.created_at().is_none() {
        record.set_created_at(now);
    }
    record.set_updated_at(now);
    record.set_deleted_at(None);
    let any: &mut dyn std::any::Any = record;
    if let Some(contact) = any.downcast_mut::<Contact>() {
        contact.stats = Default::default();
        contact.assigned_by = None;
    } else if let Some(order) = any.downcast_mut::<Order>()
        && order.total.0 == 0
        && !order.line_items.is_empty()
    {
        // A zero total with lines means "the lines' sum"; an overflow is left for
        // `check` to report.
        order.total = order
            .line_items
            .iter()
            .try_fold(crate::schema::Money(0), |acc, l| {
                l.amount()
                    .and_then(|a| acc.0.checked_add(a.0))
                    .map(crate::schema::Money)
            })
            .unwrap_or(order.total);
    }
}

/// The checks of a record that need no other record: field limits and the custom schema.
pub(crate) fn check_shape<R: Record>(config: &Config, record: &R) -> Result<()> {
    record
        .check()
        .map_err(|(field, reason)| Error::InvalidField {
            kind: R::KIND,
            field: field.into(),
            reason,
        })?;
    config.schema(R::KIND).validate(R::KIND, record.custom())
}

/// A new record checked, staged and encoded away from the writer (bulk loads): what is
/// left is the checks that need storage (relations, natural keys) and the writes.
pub(crate) struct PreparedInsert {
    pub(crate) bytes: Vec<u8>,
    /// Taken by the preparing thread when it records the row in its chunk delta.
    pub(crate) terms: Option<Terms>,
    pub(crate) unique: Vec<(&'static str, String)>,
    pub(crate) references: Vec<(EntityKind, u32)>,
    /// The create move, or why it was refused (reported after the link checks, in the
    /// same order as a one-by-one insert).
    pub(crate) change: Result<Option<StageChange>>,
}

/// Prepares the insert of a record that has no side effects on other records (not an
/// order or activity, no assignment rule to apply). `IllegalTransition` errors name row 0.
pub(crate) fn prepare_insert<R: Record>(
    config: &Config,
    mut record: R,
    now: Timestamp,
    actor: &str,
) -> Result<PreparedInsert> {
    normalise_new(&mut record, now);
    check_shape(config, &record)?;
    let change = stage_change(config, 0, None, &mut record, MoveOp::Create, now, actor);
    Ok(PreparedInsert {
        bytes: codec::encode(&record),
        terms: Some(record_terms(&record)),
        unique: record.unique_keys(),
        references: record.references(),
        change,
    })
}

/// **The** stage resolution of a write: fills an unset stage (the machine's first, or
/// the stored one), and checks a change with [`check_transition`]. Returns the history
/// entry to append if the stage changes. Pure: no storage access.
pub(crate) fn stage_change<R: Record>(
    config: &Config,
    row: u32,
    old: Option<&R>,
    new: &mut R,
    op: MoveOp<'_>,
    now: Timestamp,
    actor: &str,
) -> Result<Option<StageChange>> {
    use std::any::Any;
    let old_any: Option<&dyn Any> = old.map(|o| o as &dyn Any);
    let any: &mut dyn Any = new;
    let (machine, old_stage) = if let Some(contact) = any.downcast_mut::<Contact>() {
        let machine = &config.machines.contact;
        let old_stage = old_any
            .and_then(|o| o.downcast_ref::<Contact>())
            .map(|c| c.stage.clone());
        if contact.stage.is_unset() {
            contact.stage = old_stage
                .clone()
                .or_else(|| machine.initial().cloned())
                .unwrap_or_default();
        }
        (machine, old_stage)
    } else if let Some(deal) = any.downcast_mut::<Deal>() {
        let pipeline = deal.pipeline_name();
        let old_deal = old_any.and_then(|o| o.downcast_ref::<Deal>());
        let machine =
            config
                .machines
                .pipeline(pipeline)
                .ok_or_else(|| Error::IllegalTransition {
                    kind: EntityKind::Deal,
                    id: row,
                    from: old_deal.map_or_else(|| "(none)".into(), |d| d.stage.to_string()),
                    to: deal.stage.to_string(),
                    rule: crate::lifecycle::Rule::UnknownPipeline(pipeline.to_owned()),
                })?;
        if old_deal.is_some_and(|d| d.pipeline_name() != pipeline) {
            return Err(Error::InvalidField {
                kind: EntityKind::Deal,
                field: "pipeline".into(),
                reason: "a deal cannot change pipeline; close it and open a new deal".into(),
            });
        }
        let old_stage = old_deal.map(|d| d.stage.clone());
        if deal.stage.is_unset() {
            deal.stage = old_stage
                .clone()
                .or_else(|| machine.initial().cloned())
                .unwrap_or_default();
        }
        (machine, old_stage)
    } else {
        return Ok(None);
    };
    let any: &dyn Any = new;
    let (new_stage, view) = match (any.downcast_ref::<Contact>(), any.downcast_ref::<Deal>()) {
        (Some(c), _) => (&c.stage, GuardView::Contact(c)),
        (None, Some(d)) => (&d.stage, GuardView::Deal(d)),
        (None, None) => return Ok(None),
    };
    if old_stage.as_ref() == Some(new_stage) {
        return Ok(None);
    }
    let op = if old_stage.is_none() {
        MoveOp::Create
    } else {
        op
    };
    check_transition(machine, old_stage.as_ref(), new_stage, op, &view).map_err(|rule| {
        Error::IllegalTransition {
            kind: R::KIND,
            id: row,
            from: old_stage
                .as_ref()
                .map_or_else(|| "(none)".into(), Stage::to_string),
            to: new_stage.to_string(),
            rule,
        }
    })?;
    let actor = if matches!(op, MoveOp::Automatic(_) | MoveOp::Sweep(_)) {
        SYSTEM_ACTOR
    } else {
        actor
    };
    Ok(Some(StageChange {
        from: old_stage,
        to: new_stage.clone(),
        at: now,
        actor: actor.to_owned(),
        reason: op.reason().map(str::to_owned),
        kind: op.change_kind(),
    }))
}

fn deleted_in(kind: EntityKind, row: u32, bytes: &[u8]) -> Result<bool> {
    // Every record type ends its encoding with the same three engine fields, but bincode
    // gives no random access: decode the full record of the right type.
    Ok(match kind {
        EntityKind::Contact => decode_record::<Contact>(row, bytes)?.deleted_at.is_some(),
        EntityKind::Account => decode_record::<crate::schema::Account>(row, bytes)?
            .deleted_at
            .is_some(),
        EntityKind::Deal => decode_record::<Deal>(row, bytes)?.deleted_at.is_some(),
        EntityKind::Activity => decode_record::<crate::schema::Activity>(row, bytes)?
            .deleted_at
            .is_some(),
        EntityKind::Order => decode_record::<Order>(row, bytes)?.deleted_at.is_some(),
        EntityKind::Product => decode_record::<crate::schema::Product>(row, bytes)?
            .deleted_at
            .is_some(),
        EntityKind::Owner => decode_record::<crate::schema::Owner>(row, bytes)?
            .deleted_at
            .is_some(),
        EntityKind::Task => decode_record::<crate::schema::Task>(row, bytes)?
            .deleted_at
            .is_some(),
    })
}

impl SnapshotInternal for WriteTransaction {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        let table = self.txn()?.open_table(storage::rows(kind))?;
        Ok(table.get(row)?.map(|v| v.value().to_vec()))
    }

    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        all_rows(&self.txn()?.open_table(storage::rows(kind))?)
    }

    fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        let txn = self.txn()?;
        let base = cached_bitmap(
            &self.inner,
            &txn.open_table(storage::BITMAP_GEN)?,
            &txn.open_table(storage::BITMAPS)?,
            key,
        )?;
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
        let txn = self.txn()?;
        let base = cached_bsi(
            &self.inner,
            &txn.open_table(storage::BITMAP_GEN)?,
            &txn.open_table(storage::BITMAPS)?,
            base_key,
        )?;
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
        let mut keys = keys_in(&self.txn()?.open_table(storage::BITMAP_GEN)?, prefix)?;
        keys.extend(
            self.delta
                .cats
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned(),
        );
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
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

    fn segment_names(&self) -> Result<Vec<String>> {
        segment_names_in(&self.txn()?.open_table(storage::SEGMENTS)?)
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
