//! Opening a database: the builder, backends, statistics. Opening runs the
//! initialisation commit through `txn`, the one module that commits.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use redb::ReadableDatabase;
use redb::backends::InMemoryBackend;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::feed::{Batch, Retention};
use crate::index::cache::{BitmapCache, CachePool};
use crate::lifecycle::Machines;
use crate::schema::{EntityKind, Timestamp};
use crate::txn::{FeedState, ReadTransaction, Shared, Snapshot, WriteTransaction};

/// Options for opening a database.
///
/// # Defaults
/// - `cache_size`: 256 MiB of redb page cache ([`Builder::DEFAULT_CACHE_SIZE`]).
/// - `bitmap_cache_size`: 256 MiB of decoded bitmaps ([`Builder::DEFAULT_BITMAP_CACHE_SIZE`]).
/// - `machines`: [`Machines::default`], the spec's contact lifecycle and deal pipeline;
///   applied when the database is created, compared on open.
/// - `clock`: [`SystemClock`].
/// - `change_log`: on; every commit appends its events to the change log.
/// - `retention`: [`Retention::default`], the last 100 000 batches plus whatever a
///   registered consumer has not acknowledged.
#[derive(Debug, Clone)]
pub struct Builder {
    cache_size: usize,
    bitmap_cache_size: usize,
    machines: Option<Machines>,
    clock: Arc<dyn Clock>,
    change_log: bool,
    retention: Retention,
    /// A pool the bitmap cache shares with other databases (a tenant set's), instead
    /// of one of its own of `bitmap_cache_size`.
    pool: Option<Arc<CachePool>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// A crmdb database: in memory or on a file. `Send + Sync`; clone the handle or share a
/// reference across threads. One write transaction at a time (others wait), any number
/// of readers, each on its own snapshot, never blocking the writer.
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Shared>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

impl Builder {
    /// redb page cache default: 256 MiB.
    pub const DEFAULT_CACHE_SIZE: usize = 256 << 20;
    /// Decoded-bitmap cache default: 256 MiB.
    pub const DEFAULT_BITMAP_CACHE_SIZE: usize = 256 << 20;

    /// The defaults.
    pub fn new() -> Builder {
        Builder {
            cache_size: Self::DEFAULT_CACHE_SIZE,
            bitmap_cache_size: Self::DEFAULT_BITMAP_CACHE_SIZE,
            machines: None,
            clock: Arc::new(SystemClock),
            change_log: true,
            retention: Retention::default(),
            pool: None,
        }
    }

    /// Bytes of redb page cache.
    pub fn cache_size(&mut self, bytes: usize) -> &mut Builder {
        self.cache_size = bytes;
        self
    }

    /// Bytes of decoded bitmaps kept between transactions.
    pub fn bitmap_cache_size(&mut self, bytes: usize) -> &mut Builder {
        self.bitmap_cache_size = bytes;
        self
    }

    /// The lifecycle machines of a new database.
    pub fn machines(&mut self, machines: Machines) -> &mut Builder {
        self.machines = Some(machines);
        self
    }

    /// The clock transactions read "now" from.
    pub fn clock(&mut self, clock: Arc<dyn Clock>) -> &mut Builder {
        self.clock = clock;
        self
    }

    /// Whether commits append their events to the change log. Off, commits still take
    /// sequence numbers but leave no batches, so a reader of the feed meets
    /// [`Error::Trimmed`] across them: for measurements and one-off loads.
    pub fn change_log(&mut self, on: bool) -> &mut Builder {
        self.change_log = on;
        self
    }

    /// How much of the change log is kept beyond what registered consumers still need.
    pub fn retention(&mut self, retention: Retention) -> &mut Builder {
        self.retention = retention;
        self
    }

    /// Counts the bitmap cache against a pool shared with other databases.
    pub(crate) fn bitmap_cache_pool(&mut self, pool: Arc<CachePool>) -> &mut Builder {
        self.pool = Some(pool);
        self
    }

    fn redb_builder(&self) -> redb::Builder {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(self.cache_size);
        builder
    }

    /// A new database in memory.
    ///
    /// # Errors
    /// Invalid machines, or a storage failure.
    pub fn in_memory(&self) -> Result<Database> {
        self.with_backend(InMemoryBackend::new())
    }

    /// Creates a database file, or opens it if it exists.
    ///
    /// # Errors
    /// I/O and storage failures, a file of another format, machines that differ from
    /// the stored ones.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Database> {
        let redb = self.redb_builder().create(path.as_ref())?;
        self.finish(redb, Some(path.as_ref()))
    }

    /// Opens an existing database file.
    ///
    /// # Errors
    /// As [`Builder::create`], and a missing file.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Database> {
        let redb = self.redb_builder().open(path.as_ref())?;
        self.finish(redb, Some(path.as_ref()))
    }

    /// Opens (or creates) a database on any redb storage backend, such as a fault-injecting
    /// wrapper in tests.
    ///
    /// # Errors
    /// As [`Builder::create`].
    pub fn with_backend(&self, backend: impl redb::StorageBackend) -> Result<Database> {
        let redb = self.redb_builder().create_with_backend(backend)?;
        self.finish(redb, None)
    }

    fn finish(&self, redb: redb::Database, path: Option<&Path>) -> Result<Database> {
        if let Some(machines) = &self.machines {
            machines.validate()?;
        }
        let sequence = crate::txn::initialise(&redb, self.machines.as_ref())?;
        Ok(Database {
            inner: Arc::new(Shared {
                redb,
                cache: match &self.pool {
                    Some(pool) => BitmapCache::in_pool(pool),
                    None => BitmapCache::new(self.bitmap_cache_size),
                },
                clock: Arc::clone(&self.clock),
                config: parking_lot::Mutex::new(None),
                feed: FeedState::new(self.change_log, self.retention, sequence),
                watches: parking_lot::Mutex::new(None),
                group: Default::default(),
                moved: parking_lot::Mutex::new(None),
                file: path.map(|p| (p.to_path_buf(), self.cache_size)),
            }),
        })
    }
}

impl Database {
    /// A new in-memory database with the defaults.
    ///
    /// # Errors
    /// A storage failure.
    pub fn in_memory() -> Result<Database> {
        Builder::new().in_memory()
    }

    /// Creates (or opens) a database file with the defaults.
    ///
    /// # Errors
    /// See [`Builder::create`].
    pub fn create(path: impl AsRef<Path>) -> Result<Database> {
        Builder::new().create(path)
    }

    /// Opens an existing database file with the defaults.
    ///
    /// # Errors
    /// See [`Builder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Builder::new().open(path)
    }

    /// A builder for other options.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Begins a write transaction, waiting for the current writer to finish. Dropping it
    /// without [`WriteTransaction::commit`] rolls everything back.
    ///
    /// # Errors
    /// A storage failure.
    pub fn begin_write(&self) -> Result<WriteTransaction> {
        WriteTransaction::begin(Arc::clone(&self.inner))
    }

    /// Begins a read transaction on a snapshot of the last commit.
    ///
    /// # Errors
    /// A storage failure.
    pub fn begin_read(&self) -> Result<ReadTransaction> {
        ReadTransaction::begin(Arc::clone(&self.inner), self.inner.redb.begin_read()?)
    }

    /// Runs `f` in a write transaction: commits if it returns `Ok`, rolls back
    /// everything of it if it returns `Err`. The closure may return the host
    /// application's own error type, as long as a crmdb [`Error`] converts into it.
    ///
    /// # Errors
    /// The closure's error, or a storage failure on begin or commit.
    pub fn write<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut WriteTransaction) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin_write()?;
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in a write transaction shared with concurrent callers of this method:
    /// group commit. Callers take turns running their closures in one transaction,
    /// which is committed once (one fsync on a durable file) and answers every caller
    /// after that commit has returned, so a caller that gets `Ok` has a durable write.
    /// A closure that returns `Err` (or panics) takes back only its own writes; the
    /// others still commit. Under load, the throughput of many small durable writers
    /// grows with their number instead of being one fsync per write.
    ///
    /// The closure runs on the calling thread while the shared transaction is lent to
    /// it; it sees the writes of the callers before it in the same transaction. What it
    /// sets on the transaction ([`set_actor`](WriteTransaction::set_actor),
    /// [`set_time`](WriteTransaction::set_time)) applies to its own writes only. The
    /// change-log batch of a shared commit holds every caller's events; its actor is
    /// the callers' actor when they agree, `system` otherwise. Like [`write`](Self::write),
    /// the closure must not begin another write transaction of this database.
    ///
    /// # Errors
    /// The closure's error (nothing of it is applied), a storage failure on begin, or
    /// on commit: the caller that committed gets the storage error, the others
    /// [`Error::GroupCommitFailed`].
    pub fn write_grouped<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut WriteTransaction) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        crate::txn::group::run(&self.inner, f)
    }

    /// Runs `f` on a read snapshot.
    ///
    /// # Errors
    /// The closure's error, or a storage failure on begin.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let tx = self.begin_read()?;
        f(&tx)
    }

    /// Up to `limit` change batches after sequence `after`, from a snapshot of the last
    /// commit (see [`Snapshot::changes`]).
    ///
    /// # Errors
    /// As [`Snapshot::changes`].
    pub fn changes(&self, after: u64, limit: usize) -> Result<Vec<Batch>> {
        self.begin_read()?.changes(after, limit)
    }

    /// Waits until a commit after `after` (or `timeout`), then returns up to `limit`
    /// batches after `after`: empty when the timeout passed with no commit. Woken by
    /// commits, not by polling.
    ///
    /// # Errors
    /// As [`Snapshot::changes`].
    pub fn wait_changes(
        &self,
        after: u64,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<Batch>> {
        // An `after` beyond the last commit is refused at once, not after the wait.
        if after > self.inner.feed.last() {
            return self.changes(after, limit);
        }
        if self.inner.feed.wait(after, timeout) <= after {
            return Ok(Vec::new());
        }
        self.changes(after, limit)
    }

    /// The clock's current time.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Runs redb's integrity check (checksums of every page, allocator state).
    /// Needs the only handle to the database.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when other handles exist, or a storage failure.
    pub fn check_integrity(&mut self) -> Result<bool> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            Error::InvalidArgument("check_integrity needs the only database handle".into())
        })?;
        Ok(inner.redb.check_integrity()?)
    }

    /// Compacts the database. A file is rewritten: every table copied from one
    /// snapshot into a fresh file beside it (`<name>.compacting`), which then replaces
    /// it. Unlike compacting pages in place, this leaves none of the bytes that freed
    /// pages and the slack of rewritten pages still hold (an erased person's, say).
    /// It needs room for a second copy while it runs; a crash before the replacement
    /// leaves the original as it was. In memory, redb compacts in place.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when other handles exist; I/O and storage failures.
    pub fn compact(&mut self) -> Result<()> {
        if Arc::strong_count(&self.inner) != 1 {
            return Err(Error::InvalidArgument(
                "compact needs the only database handle".into(),
            ));
        }
        let Some((path, cache_size)) = self.inner.file.clone() else {
            let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
                Error::InvalidArgument("compact needs the only database handle".into())
            })?;
            inner.redb.compact().map_err(redb::Error::from)?;
            return Ok(());
        };
        let mut fresh = path.clone().into_os_string();
        fresh.push(".compacting");
        let fresh = std::path::PathBuf::from(fresh);
        if fresh.exists() {
            std::fs::remove_file(&fresh)?;
        }
        self.backup(&fresh)?;
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            Error::InvalidArgument("compact needs the only database handle".into())
        })?;
        let mut builder = redb::Builder::new();
        builder.set_cache_size(cache_size);
        let redb = builder.open(&fresh)?;
        drop(std::mem::replace(&mut inner.redb, redb));
        std::fs::rename(&fresh, &path)?;
        Ok(())
    }

    /// Writes a consistent copy of the database as it is now to a new file at `path`
    /// while writers continue: [`ReadTransaction::backup_to`] on a fresh snapshot.
    ///
    /// # Errors
    /// As [`ReadTransaction::backup_to`].
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<crate::txn::Backup> {
        self.begin_read()?.backup_to(path)
    }

    /// How many handles to this database exist (clones and open transactions): a
    /// tenant set closes only a tenant it alone holds.
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// The bytes of this database's decoded bitmaps in its cache.
    pub(crate) fn bitmap_cache_bytes(&self) -> usize {
        self.inner.cache.counters().bytes
    }

    /// Counts and sizes, read from one snapshot.
    ///
    /// # Errors
    /// A storage failure.
    pub fn stats(&self) -> Result<DatabaseStats> {
        let tx = self.begin_read()?;
        let mut records = Vec::new();
        for kind in EntityKind::ALL {
            let live = tx.live(kind)?.len();
            let deleted = tx.deleted(kind)?.len();
            records.push(KindStats {
                kind,
                live,
                deleted,
            });
        }
        let sequence = tx.sequence()?;
        let counters = self.inner.cache.counters();
        let redb_stats = crate::txn::storage_stats(&self.inner)?;
        Ok(DatabaseStats {
            sequence,
            records,
            stored_bytes: redb_stats.stored_bytes(),
            allocated_bytes: redb_stats.allocated_pages() * redb_stats.page_size() as u64,
            bitmap_cache_entries: counters.entries,
            bitmap_cache_bytes: counters.bytes,
            bitmap_cache_hits: counters.hits,
            bitmap_cache_misses: counters.misses,
        })
    }
}

/// Record counts of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStats {
    /// The kind.
    pub kind: EntityKind,
    /// Live records.
    pub live: u64,
    /// Records in the recycle bin.
    pub deleted: u64,
}

/// Database statistics.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DatabaseStats {
    /// The sequence of the last commit's change batch (see [`Snapshot::sequence`]):
    /// where a reader of the change feed starts to see only what comes next.
    pub sequence: u64,
    /// Per-kind counts.
    pub records: Vec<KindStats>,
    /// Bytes of user data stored in redb (rows, indexes, histories).
    pub stored_bytes: u64,
    /// Bytes of pages allocated by redb.
    pub allocated_bytes: u64,
    /// Decoded bitmaps cached.
    pub bitmap_cache_entries: usize,
    /// Their serialised size.
    pub bitmap_cache_bytes: usize,
    /// Cache hits since open.
    pub bitmap_cache_hits: u64,
    /// Cache misses since open.
    pub bitmap_cache_misses: u64,
}
