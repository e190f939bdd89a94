//! Transactions. **Invariant**: this module is the only one that commits (including
//! the initialisation commit of opening a database) and the only one that writes
//! rows, natural keys, histories, meta entries and index deltas. Every write operation
//! validates everything before its first mutation, so a refused operation leaves the
//! transaction as it was; a storage failure after that poisons it.
//!
//! - `mod.rs`: begin, commit, abort, [`WriteTransaction::guarded`] and poisoning, the
//!   row and history writers every operation uses;
//! - `snapshot.rs`: the public read API ([`Snapshot`]) and both transaction types'
//!   low-level reads;
//! - `records.rs`: insert, update, modify, tags, stage moves, soft delete, restore,
//!   purge;
//! - `effects.rs`: what orders and activities do to their contact, and their bulk
//!   writer;
//! - `config.rs`: custom fields, machines (and the sweep), saved segments, lead
//!   assignment, derived indexes;
//! - `feed.rs`: the change feed's writer side, consumers, watched segments;
//! - `group.rs`: group commit (callers sharing one transaction and one commit);
//! - `undo.rs`: marks, and taking back one group-commit caller's writes.

mod backup;
mod config;
mod consent;
mod effects;
mod erase;
mod feed;
pub(crate) mod group;
mod lineage;
mod merge;
mod records;
pub(crate) mod replica;
mod scope;
mod scope_write;
mod snapshot;
mod tables;
mod undo;

use std::collections::HashMap;
use std::sync::Arc;

use redb::ReadableTable;

use crate::clock::Clock;
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::cache::BitmapCache;
use crate::index::{self, IndexDelta, Terms, store};
use crate::lifecycle::{Machines, StageChange};
use crate::schema::{ContactId, DealId, EntityKind, Record, RecordInternal, Timestamp};
use crate::storage::source::Source;
use crate::storage::{self, meta};

pub use crate::lifecycle::transition::SYSTEM_ACTOR;
pub use backup::Backup;
pub(crate) use config::DerivedIndexes;
pub use config::assignment;
pub use erase::{ERASED, Erasure};
pub use feed::WatchRefresh;
pub(crate) use feed::{FeedState, Watch};
pub use lineage::{FieldRule, Lineage, MergePolicy, MovedRecord, Undone};
pub(crate) use records::{check_shape, normalise_new};
pub use scope::{Scoped, ScopedRead};
pub use scope_write::ScopedWrite;
pub use snapshot::{ReadTransaction, Snapshot};

/// What every transaction of one database shares.
pub(crate) struct Shared {
    pub(crate) redb: redb::Database,
    pub(crate) cache: BitmapCache,
    pub(crate) clock: Arc<dyn Clock>,
    /// The configuration (schemas, machines, assignment) as last committed; filled on
    /// first use, replaced by commits that change it.
    pub(crate) config: parking_lot::Mutex<Option<Arc<Config>>>,
    /// The change feed's settings and wake-up signal.
    pub(crate) feed: FeedState,
    /// The watched segments as last committed, with what each reads; filled on first
    /// use, emptied by commits that change them.
    pub(crate) watches: parking_lot::Mutex<Option<Arc<Vec<Watch>>>>,
    /// The shared write transaction of grouped writes.
    pub(crate) group: group::GroupCommit,
    /// Where the database moved, once a move has cut over: every write transaction
    /// begun from then on is refused with [`Error::Moved`].
    pub(crate) moved: parking_lot::Mutex<Option<String>>,
    /// The file the database lives in and its page cache size (`None` in memory or
    /// on another backend), for the rewrite of `Database::compact`.
    pub(crate) file: Option<(std::path::PathBuf, usize)>,
}

/// The initialisation commit of opening a database: on a new database the format
/// version and the machines; on an existing one, checks the format version and that
/// the builder's machines (if given) are the stored ones. Creates every table, so that
/// readers never meet a missing one. Returns the stored commit sequence.
pub(crate) fn initialise(redb: &redb::Database, machines: Option<&Machines>) -> Result<u64> {
    let txn = redb.begin_write()?;
    // Create every table so that readers never meet a missing one.
    storage::each_table(&mut CreateTable(&txn))?;
    let sequence;
    {
        let mut table = txn.open_table(storage::META)?;
        let format = table.get(meta::FORMAT)?.map(|v| v.value().to_vec());
        match format {
            None => {
                table.insert(
                    meta::FORMAT,
                    codec::encode(&codec::FORMAT_VERSION).as_slice(),
                )?;
                let machines = machines.cloned().unwrap_or_default();
                table.insert(meta::MACHINES, codec::encode(&machines).as_slice())?;
            }
            Some(bytes) => {
                let version: u8 = codec::decode("meta", &meta::FORMAT, &bytes)?;
                if !(codec::OLDEST_READABLE..=codec::FORMAT_VERSION).contains(&version) {
                    return Err(Error::UnsupportedFormat {
                        what: "database",
                        found: version,
                        supported: codec::FORMAT_VERSION,
                    });
                }
                if version < codec::FORMAT_VERSION {
                    // An older file is upgraded in place: its values decode as they
                    // are, new ones are written in this format, and the format entry
                    // says so, in this same commit, so that an older build refuses the
                    // file instead of meeting values it cannot read.
                    table.insert(
                        meta::FORMAT,
                        codec::encode(&codec::FORMAT_VERSION).as_slice(),
                    )?;
                }
                if let Some(wanted) = machines {
                    let stored = table.get(meta::MACHINES)?.map(|v| v.value().to_vec());
                    let stored: Machines = match stored {
                        Some(bytes) => codec::decode("meta", &meta::MACHINES, &bytes)?,
                        None => Machines::default(),
                    };
                    if &stored != wanted {
                        return Err(Error::InvalidMachine {
                            reason: "the database already has other machines; replace them with WriteTransaction::replace_machines".into(),
                        });
                    }
                }
            }
        }
        let stored = table.get(meta::SEQUENCE)?;
        let before = decode_sequence(stored.as_ref().map(|b| b.value()))?;
        let counters = txn.open_table(storage::BITMAP_GEN)?;
        sequence = match counters.get(storage::SEQUENCE_KEY)? {
            Some(sequence) => sequence.value(),
            None => before,
        };
    }
    txn.commit()?;
    Ok(sequence)
}

/// Opens (and so creates) each table in a write transaction.
struct CreateTable<'t>(&'t redb::WriteTransaction);

impl storage::EachTable for CreateTable<'_> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        table: redb::TableDefinition<'static, K, V>,
    ) -> Result<()> {
        self.0.open_table(table)?;
        Ok(())
    }
}

/// redb's storage statistics. They are only read through a write transaction, which
/// waits for the current writer and is aborted: nothing is written.
pub(crate) fn storage_stats(shared: &Shared) -> Result<redb::DatabaseStats> {
    let txn = shared.redb.begin_write()?;
    let stats = txn.stats()?;
    txn.abort()?;
    Ok(stats)
}

/// The commit sequence stored under `meta::SEQUENCE` (0 before the first commit).
fn decode_sequence(bytes: Option<&[u8]>) -> Result<u64> {
    match bytes {
        Some(bytes) => codec::decode("meta", &meta::SEQUENCE, bytes),
        None => Ok(0),
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

/// A write transaction. Reads through [`Snapshot`] see its own writes. Dropping it
/// without [`commit`](WriteTransaction::commit) rolls everything back.
pub struct WriteTransaction {
    inner: Arc<Shared>,
    txn: Option<redb::WriteTransaction>,
    delta: IndexDelta,
    next_rows: HashMap<EntityKind, u32>,
    config: Option<Arc<Config>>,
    actor: String,
    time_override: Option<Timestamp>,
    config_changed: bool,
    /// Whether anything was written: a commit that changes nothing takes no sequence
    /// number. Set by every writer, never reset.
    changed: bool,
    poisoned: bool,
    /// This transaction's change-feed events, appended to the log by its commit.
    events: Vec<crate::feed::stored::StoredEvent>,
    /// The cause of the events being written.
    cause: crate::feed::Cause,
    /// Where in `events` each record's last record event is, to fold later updates in.
    record_events: HashMap<(EntityKind, u32), usize>,
    /// The rows written, by kind: where watched segments are re-evaluated.
    touched: feed::Touched,
    /// Whether watched segments must be re-evaluated in full at commit.
    rewatch: bool,
    /// Whether this transaction watched or unwatched a segment.
    watch_set_changed: bool,
    /// While a group-commit caller runs: what its table writes replaced (`undo.rs`).
    undo: Option<Vec<undo::Undo>>,
    /// Set when this transaction applies another database's batches (`replica.rs`):
    /// the source's sequence this commit takes, with the batches copied as they were.
    replayed: Option<u64>,
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
    pub(crate) fn begin(inner: Arc<Shared>) -> Result<WriteTransaction> {
        let txn = inner.redb.begin_write()?;
        // Checked once the writer lock is held, so that a move's cutover, which takes
        // the lock after setting this, is the source's last writer.
        if let Some(to) = inner.moved.lock().as_ref() {
            return Err(Error::Moved { to: to.clone() });
        }
        Ok(WriteTransaction {
            inner,
            txn: Some(txn),
            delta: IndexDelta::default(),
            next_rows: HashMap::new(),
            config: None,
            actor: SYSTEM_ACTOR.to_owned(),
            time_override: None,
            config_changed: false,
            changed: false,
            poisoned: false,
            events: Vec::new(),
            cause: crate::feed::Cause::Write,
            record_events: HashMap::new(),
            touched: feed::Touched::new(),
            rewatch: false,
            watch_set_changed: false,
            undo: None,
            replayed: None,
        })
    }

    fn txn(&self) -> Result<&redb::WriteTransaction> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.txn.as_ref().ok_or(Error::Poisoned)
    }

    /// Runs a mutating operation; storage and decode failures poison the transaction.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
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
        // Membership changes are index changes and events of this same commit (a
        // replayed commit copies the source's).
        if self.replayed.is_none() {
            self.maintain_watched()?;
        }
        let txn = self.txn.take().ok_or(Error::Poisoned)?;
        // Tables are opened only when written: every table a commit touches costs it
        // pages to copy and checksum.
        let mut sequence = None;
        if !self.delta.is_empty() || self.changed {
            let mut counters = txn.open_table(storage::BITMAP_GEN)?;
            if !self.delta.is_empty() {
                let generation = counters
                    .get(storage::GENERATION_KEY)?
                    .map_or(0, |g| g.value())
                    + 1;
                let mut bitmaps = txn.open_table(storage::BITMAPS)?;
                store::merge(&mut bitmaps, &mut counters, &self.delta, generation)?;
                counters.insert(storage::GENERATION_KEY, generation)?;
            }
            if self.changed {
                let previous = match counters.get(storage::SEQUENCE_KEY)? {
                    Some(stored) => stored.value(),
                    None => {
                        let meta_table = txn.open_table(storage::META)?;
                        let stored = meta_table.get(meta::SEQUENCE)?;
                        decode_sequence(stored.as_ref().map(|b| b.value()))?
                    }
                };
                let next = match self.replayed {
                    Some(replayed) if replayed >= previous => replayed,
                    Some(replayed) => {
                        return Err(Error::Corrupt {
                            what: "changes",
                            key: replayed.to_string(),
                            reason: format!("the copy is at {previous} already"),
                        });
                    }
                    None => previous.checked_add(1).ok_or_else(|| {
                        Error::LimitExceeded("commit sequence numbers are exhausted".into())
                    })?,
                };
                counters.insert(storage::SEQUENCE_KEY, next)?;
                sequence = Some(next);
            }
        }
        if !self.next_rows.is_empty() {
            let mut meta_table = txn.open_table(storage::META)?;
            for (kind, next) in &self.next_rows {
                let key = format!("{}{kind}", meta::NEXT_ROW);
                meta_table.insert(key.as_str(), codec::encode(next).as_slice())?;
            }
        }
        if let Some(sequence) = sequence
            && self.inner.feed.log
            && self.replayed.is_none()
        {
            self.write_batch(&txn, sequence)?;
        }
        txn.commit()?;
        self.publish_watches();
        if self.config_changed {
            *self.inner.config.lock() = self.config.take();
        }
        if let Some(sequence) = sequence {
            self.inner.feed.committed(sequence);
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

    fn config_arc(&mut self) -> Result<Arc<Config>> {
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
    fn set_config(&mut self, config: Config) {
        self.config = Some(Arc::new(config));
        self.config_changed = true;
    }

    /// Notes that this transaction writes something (see `changed`).
    fn mark_changed(&mut self) {
        self.changed = true;
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.mark_changed();
        self.note_meta(name)?;
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

    fn write_row<R: Record>(&mut self, row: u32, old: Option<&R>, new: &R) -> Result<()> {
        let bytes = codec::encode(new);
        self.store_row(row, old, new, &bytes)?;
        self.log_record(row, old, new, &bytes);
        Ok(())
    }

    /// Stores `bytes`, the encoding of `new`, as the row, with its index terms and
    /// natural keys changed from `old`'s: a row write without its change event.
    fn store_row<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &R,
        bytes: &[u8],
    ) -> Result<()> {
        self.mark_changed();
        self.note_row(R::KIND, row)?;
        {
            let mut table = self.txn()?.open_table(storage::rows(R::KIND))?;
            table.insert(row, bytes)?;
        }
        let old_terms = old.map(record_terms);
        let new_terms = record_terms(new);
        self.delta
            .diff(R::KIND, row, old_terms.as_ref(), Some(&new_terms));
        let old_keys = old.map(RecordInternal::unique_keys).unwrap_or_default();
        let new_keys = new.unique_keys();
        if old_keys != new_keys {
            for (field, value) in old_keys.iter().chain(&new_keys) {
                self.note_unique(field, value)?;
            }
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

    fn append_history(&mut self, kind: EntityKind, row: u32, change: &StageChange) -> Result<()> {
        self.store_history(kind, row, change)?;
        self.log_stage(kind, row, change);
        Ok(())
    }

    /// Appends a stage-history entry without its change event.
    fn store_history(&mut self, kind: EntityKind, row: u32, change: &StageChange) -> Result<()> {
        self.mark_changed();
        let table = self.txn()?.open_table(storage::HISTORY)?;
        let k = kind as u8;
        let next = match table.range((k, row, 0)..=(k, row, u32::MAX))?.next_back() {
            Some(entry) => entry?.0.value().2.checked_add(1).ok_or_else(|| {
                Error::LimitExceeded(format!("{kind} {row} has too many stage changes"))
            })?,
            None => 0,
        };
        drop(table);
        self.note_history(kind, row, Some(next))?;
        let mut table = self.txn()?.open_table(storage::HISTORY)?;
        table.insert((k, row, next), codec::encode(change).as_slice())?;
        Ok(())
    }
}
