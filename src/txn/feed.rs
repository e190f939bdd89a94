//! The change feed's writer side: the events a transaction collects as it writes,
//! the batch its commit appends to the log, retention trimming, durable consumers,
//! and watched segments (their members kept as a bitmap, re-evaluated at commit for
//! the rows the transaction touched).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use redb::ReadableTable;
use roaring::RoaringBitmap;

use super::WriteTransaction;
use super::snapshot::RowsIndex;
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::feed::stored::{Head, StoredChange, StoredEvent, encode_batch};
use crate::feed::{Cause, Retention, TRIM_PER_COMMIT};
use crate::index::{self, Bsi, IndexDelta};
use crate::lifecycle::StageChange;
use crate::query::{self, Query};
use crate::schema::{EntityKind, Record, RecordInternal, Timestamp};
use crate::storage;
use crate::storage::source::Source;
use crate::txn::Snapshot;

/// A watched segment as the commit re-evaluates it.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    name: String,
    kind: EntityKind,
    /// Its query with the dynamic segments it nests inlined.
    query: Query,
    /// What evaluating it reads: a transaction whose index changes miss all of it
    /// cannot change its members.
    footprint: Footprint,
}

/// The index keys, key prefixes and segments a segment's evaluation reads.
#[derive(Debug, Clone, Default)]
struct Footprint {
    keys: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    segments: BTreeSet<String>,
}

impl Footprint {
    /// Whether any non-empty change in `delta` is to something read.
    fn meets(&self, delta: &IndexDelta) -> bool {
        delta.cats.iter().any(|(key, d)| {
            !d.is_empty()
                && (self.keys.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p)))
        }) || delta
            .nums
            .iter()
            .any(|(base, d)| !d.is_empty() && self.keys.contains(base))
    }
}

/// The transaction seen through the rows in `rows` only: index reads cost in
/// proportion to `rows`, and what is read is noted. Evaluating a segment through it
/// gives the segment's members among `rows`.
struct Within<'a> {
    tx: &'a WriteTransaction,
    index: RowsIndex<'a>,
    rows: &'a RoaringBitmap,
    read: RefCell<Footprint>,
}

impl<'a> Within<'a> {
    fn new(tx: &'a WriteTransaction, rows: &'a RoaringBitmap) -> Result<Within<'a>> {
        Ok(Within {
            tx,
            index: tx.rows_index()?,
            rows,
            read: RefCell::default(),
        })
    }
}

impl crate::storage::source::sealed::Source for Within<'_> {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        self.tx.row_bytes(kind, row)
    }
    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        self.tx.rows_in(kind)
    }
    fn bitmap(&self, key: &str) -> Result<Arc<roaring::RoaringBitmap>> {
        self.read.borrow_mut().keys.insert(key.to_owned());
        Ok(Arc::new(self.index.bitmap(key, self.rows)?))
    }
    fn bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        self.read.borrow_mut().keys.insert(base.to_owned());
        Ok(Arc::new(self.index.bsi(base, self.rows)?))
    }
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.read.borrow_mut().prefixes.insert(prefix.to_owned());
        self.index.keys_with_prefix(prefix)
    }
    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.tx.meta_bytes(name)
    }
    fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>> {
        self.tx.unique_row(field, value)
    }
    fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>> {
        self.tx.history_entries(kind, row)
    }
    fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read.borrow_mut().segments.insert(name.to_owned());
        self.tx.segment_bytes(name)
    }
    fn segment_names(&self) -> Result<Vec<String>> {
        self.tx.segment_names()
    }
    fn config(&self) -> Result<Arc<Config>> {
        self.tx.config()
    }
    fn clock_now(&self) -> Timestamp {
        self.tx.clock_now()
    }
    fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<crate::feed::Batch>> {
        self.tx.change_batches(after, limit)
    }
    fn oldest_kept(&self) -> Result<u64> {
        self.tx.oldest_kept()
    }
    fn commit_counter(&self, key: &str) -> Result<Option<u64>> {
        self.tx.commit_counter(key)
    }
    fn consumer_list(&self) -> Result<Vec<(String, u64)>> {
        self.tx.consumer_list()
    }
    fn watched_list(&self) -> Result<Vec<(String, EntityKind)>> {
        self.tx.watched_list()
    }
    fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.tx.identity_bytes(key)
    }
    fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.tx.identity_entries(prefix)
    }
}

/// A summary of one watched segment's refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRefresh {
    /// The segment.
    pub segment: String,
    /// How many records entered it.
    pub entered: u64,
    /// How many records left it.
    pub left: u64,
}

impl WriteTransaction {
    /// Runs `f` with `cause` as the cause of the events it writes.
    pub(super) fn with_cause<T>(
        &mut self,
        cause: Cause,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let previous = std::mem::replace(&mut self.cause, cause);
        let result = f(self);
        self.cause = previous;
        result
    }

    /// Appends an event to this transaction's batch (when the log is on).
    pub(super) fn log(&mut self, change: StoredChange) {
        if self.inner.feed.log {
            let time = self.now();
            self.events.push(StoredEvent {
                time,
                cause: self.cause.clone(),
                change,
            });
        }
    }

    /// The events of writing `new` (stored as `bytes`) over `old` at `row`.
    pub(super) fn log_record<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &R,
        bytes: &[u8],
    ) {
        self.touched.entry(R::KIND).or_default().insert(row);
        if !self.inner.feed.log {
            return;
        }
        let kind = R::KIND;
        let live_update =
            old.is_some_and(|o| o.deleted_at().is_none()) && new.deleted_at().is_none();
        if live_update && self.coalesce(kind, row, bytes) {
            self.log_tags(row, old, new);
            return;
        }
        let record = bytes.to_vec();
        let change = match (old, old.map(|o| o.deleted_at().is_some()), new.deleted_at()) {
            (None, _, _) => StoredChange::Inserted {
                kind,
                id: row,
                record,
            },
            (Some(_), Some(false), Some(_)) => StoredChange::Deleted {
                kind,
                id: row,
                record,
            },
            (Some(_), Some(true), None) => StoredChange::Restored {
                kind,
                id: row,
                record,
            },
            (Some(old), _, _) => StoredChange::Updated {
                kind,
                id: row,
                before: codec::encode(old),
                after: record,
            },
        };
        self.record_events.insert((kind, row), self.events.len());
        self.log(change);
        self.log_tags(row, old, new);
    }

    /// Folds a later update of a record into this transaction's last event of it, when
    /// that is its insert or an update: a batch is applied whole, so the states between
    /// are never seen, and one image (or one before and after pair) says it all.
    /// Returns whether it did.
    fn coalesce(&mut self, kind: EntityKind, row: u32, bytes: &[u8]) -> bool {
        let Some(&at) = self.record_events.get(&(kind, row)) else {
            return false;
        };
        match self.events.get_mut(at).map(|e| &mut e.change) {
            Some(StoredChange::Inserted { record, .. }) => *record = bytes.to_vec(),
            Some(StoredChange::Updated { after, .. }) => *after = bytes.to_vec(),
            _ => return false,
        }
        true
    }

    /// The tag events of writing `new` over `old`.
    fn log_tags<R: Record>(&mut self, row: u32, old: Option<&R>, new: &R) {
        let kind = R::KIND;
        // An insert's tags are in its record; tag events are changes of a record's tags.
        if let (Some(before), Some(after)) = (old.and_then(RecordInternal::tags), new.tags()) {
            for tag in after.difference(before) {
                let tag = tag.clone();
                self.log(StoredChange::TagAdded { kind, id: row, tag });
            }
            for tag in before.difference(after) {
                let tag = tag.clone();
                self.log(StoredChange::TagRemoved { kind, id: row, tag });
            }
        }
    }

    /// The event of a stage-history entry.
    pub(super) fn log_stage(&mut self, kind: EntityKind, row: u32, change: &StageChange) {
        if self.inner.feed.log {
            let change = change.clone();
            self.log(StoredChange::StageChanged {
                kind,
                id: row,
                change,
            });
        }
    }

    /// Notes that watched segments must be evaluated in full at commit: segments,
    /// machines, schemas or derived indexes changed.
    pub(super) fn rewatch(&mut self) {
        self.rewatch = true;
    }

    /// Appends this commit's batch at `sequence` and trims what retention lets go.
    pub(super) fn write_batch(
        &mut self,
        txn: &redb::WriteTransaction,
        sequence: u64,
    ) -> Result<()> {
        let time = self.inner.clock.now();
        let events = std::mem::take(&mut self.events);
        let parts = encode_batch(time, &self.actor, &events);
        let mut table = txn.open_table(storage::CHANGES)?;
        for (part, bytes) in parts.iter().enumerate() {
            let part = u32::try_from(part)
                .map_err(|_| Error::LimitExceeded("a commit has too many events".into()))?;
            table.insert((sequence, part), bytes.as_slice())?;
        }
        let keep_from = match self.inner.feed.retention {
            Retention::All => return Ok(()),
            Retention::Batches(n) => sequence.saturating_sub(n).saturating_add(1),
            Retention::Age(age) => {
                let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
                let cutoff = Timestamp(time.0.saturating_sub(age));
                let mut keep = sequence;
                for entry in table.range(..(sequence, 0))?.take(TRIM_PER_COMMIT) {
                    let (key, value) = entry?;
                    let (s, part) = key.value();
                    if part != 0 {
                        continue;
                    }
                    let head: crate::feed::stored::FirstPart =
                        codec::decode("changes", &s, value.value())?;
                    let Head { time, .. } = head.head;
                    if time >= cutoff {
                        keep = s;
                        break;
                    }
                    keep = s + 1;
                }
                keep
            }
        };
        // Consumers can only lower the bound: nothing to trim is known without them.
        if keep_from <= 1 {
            return Ok(());
        }
        let mut keep_from = keep_from;
        for entry in txn.open_table(storage::CONSUMERS)?.iter()? {
            let (_, acknowledged) = entry?;
            keep_from = keep_from.min(acknowledged.value().saturating_add(1));
        }
        if keep_from <= 1 {
            return Ok(());
        }
        let mut doomed = Vec::new();
        for entry in table.range(..(keep_from, 0))?.take(TRIM_PER_COMMIT) {
            doomed.push(entry?.0.value());
        }
        for key in doomed {
            table.remove(key)?;
        }
        Ok(())
    }

    // ---- durable consumers ----

    /// Registers a durable consumer that has applied everything up to `after` (the
    /// sequence of the snapshot it bootstrapped from, or 0 to read the whole log).
    /// Registering a name that exists changes nothing. Returns the consumer's
    /// acknowledged sequence. Consumer bookkeeping takes no sequence number and leaves
    /// no event.
    ///
    /// # Errors
    /// A bad name, [`Error::Trimmed`] when batches after `after` are gone,
    /// [`Error::InvalidArgument`] for an `after` beyond the last commit.
    pub fn register_consumer(&mut self, name: &str, after: u64) -> Result<u64> {
        crate::schema::check_stage_name(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "consumer name {} must be 1 to 64 bytes of [a-z0-9_]",
                crate::error::quote(name)
            ))
        })?;
        if let Some(position) = self.consumer_position(name)? {
            return Ok(position);
        }
        let last = self.sequence()?;
        if after > last {
            return Err(Error::InvalidArgument(format!(
                "sequence {after} is beyond the last commit, {last}"
            )));
        }
        let oldest = self.oldest_kept()?;
        if after < last && after + 1 < oldest {
            return Err(Error::Trimmed { after, oldest });
        }
        self.guarded(|tx| {
            tx.note_consumer(name)?;
            tx.txn()?
                .open_table(storage::CONSUMERS)?
                .insert(name, after)?;
            Ok(after)
        })
    }

    /// Records that a consumer has applied everything up to `sequence`; retention may
    /// then trim those batches. Acknowledging less than before changes nothing.
    ///
    /// # Errors
    /// [`Error::UnknownConsumer`], or [`Error::InvalidArgument`] for a sequence beyond
    /// the last commit.
    pub fn acknowledge(&mut self, name: &str, sequence: u64) -> Result<()> {
        let Some(position) = self.consumer_position(name)? else {
            return Err(Error::UnknownConsumer(name.to_owned()));
        };
        let last = self.sequence()?;
        if sequence > last {
            return Err(Error::InvalidArgument(format!(
                "sequence {sequence} is beyond the last commit, {last}"
            )));
        }
        if sequence <= position {
            return Ok(());
        }
        self.guarded(|tx| {
            tx.note_consumer(name)?;
            tx.txn()?
                .open_table(storage::CONSUMERS)?
                .insert(name, sequence)?;
            Ok(())
        })
    }

    /// Removes a durable consumer; retention no longer keeps batches for it. Returns
    /// whether it existed.
    ///
    /// # Errors
    /// A storage failure.
    pub fn unregister_consumer(&mut self, name: &str) -> Result<bool> {
        self.guarded(|tx| {
            tx.note_consumer(name)?;
            Ok(tx
                .txn()?
                .open_table(storage::CONSUMERS)?
                .remove(name)?
                .is_some())
        })
    }

    fn consumer_position(&self, name: &str) -> Result<Option<u64>> {
        let table = self.txn()?.open_table(storage::CONSUMERS)?;
        Ok(table.get(name)?.map(|v| v.value()))
    }

    // ---- watched segments ----

    /// Starts watching a saved segment: its members are kept as a bitmap and every
    /// commit that changes them appends `Entered` / `Left` events. The current members
    /// are announced as one `Entered` event. Watching a watched segment changes
    /// nothing. Returns the number of members.
    ///
    /// # Errors
    /// [`Error::UnknownSegment`], or a segment that does not evaluate.
    pub fn watch(&mut self, segment: &str) -> Result<u64> {
        self.guarded(|tx| {
            if let Some((_, kind)) = tx.watched_list()?.into_iter().find(|(n, _)| n == segment) {
                return Ok(tx.bitmap(&index::watch_key(kind, segment))?.len());
            }
            let kind = query::load_segment(tx, segment)?.kind();
            let members = query::eval::evaluate(tx, kind, &Query::segment(segment))?;
            tx.mark_changed();
            tx.watch_set_changed = true;
            tx.note_watched(segment)?;
            tx.txn()?
                .open_table(storage::WATCHED)?
                .insert(segment, codec::encode(&kind).as_slice())?;
            tx.log(StoredChange::Watched {
                segment: segment.to_owned(),
            });
            let count = members.len();
            tx.set_members(segment, kind, &members, &RoaringBitmap::new());
            Ok(count)
        })
    }

    /// Stops watching a segment and forgets its members. Returns whether it was
    /// watched.
    ///
    /// # Errors
    /// A storage failure.
    pub fn unwatch(&mut self, segment: &str) -> Result<bool> {
        self.guarded(|tx| {
            let Some((_, kind)) = tx.watched_list()?.into_iter().find(|(n, _)| n == segment) else {
                return Ok(false);
            };
            tx.mark_changed();
            tx.watch_set_changed = true;
            tx.note_watched(segment)?;
            tx.txn()?.open_table(storage::WATCHED)?.remove(segment)?;
            let key = index::watch_key(kind, segment);
            let members = (*tx.bitmap(&key)?).clone();
            tx.delta
                .cat_mut(&key)
                .compose(&RoaringBitmap::new(), &members);
            tx.log(StoredChange::Unwatched {
                segment: segment.to_owned(),
            });
            Ok(true)
        })
    }

    /// Re-evaluates every watched segment in full as of `now`, and appends the
    /// differences: what segments that depend on time (`within 90d`) or on derived
    /// indexes gain and lose without writes to their rows. The sweep and the RFM
    /// refresh do this themselves. The events' cause is [`Cause::Refresh`].
    ///
    /// # Errors
    /// A watched segment that no longer evaluates, or a storage failure.
    pub fn refresh_watched(&mut self, now: Timestamp) -> Result<Vec<WatchRefresh>> {
        self.guarded(|tx| {
            let previous = tx.time_override.replace(now);
            let result = tx.with_cause(Cause::Refresh, Self::refresh_all);
            tx.time_override = previous;
            result
        })
    }

    /// Re-evaluates every watched segment in full at the transaction's time. The rows
    /// written so far need no second look at commit.
    pub(super) fn refresh_all(&mut self) -> Result<Vec<WatchRefresh>> {
        let mut out = Vec::new();
        for (segment, kind) in self.watched_list()? {
            let (entered, left) = self.reevaluate(&segment, kind, None, None)?;
            out.push(WatchRefresh {
                segment,
                entered,
                left,
            });
        }
        self.touched.clear();
        Ok(out)
    }

    /// Re-evaluates one watched segment, in full or for the rows in `within` only, and
    /// records the members that entered and left. Returns how many did each. `query`,
    /// when given, is the segment's query with its nested segments inlined.
    fn reevaluate(
        &mut self,
        segment: &str,
        kind: EntityKind,
        query: Option<&Query>,
        within: Option<&RoaringBitmap>,
    ) -> Result<(u64, u64)> {
        let key = index::watch_key(kind, segment);
        let named = Query::segment(segment);
        let query = query.unwrap_or(&named);
        let (now, before) = match within {
            None => (
                query::eval::evaluate(&*self, kind, query)?,
                (*self.bitmap(&key)?).clone(),
            ),
            Some(rows) => {
                let view = Within::new(self, rows)?;
                (
                    query::eval::evaluate(&view, kind, query)?,
                    view.index.bitmap(&key, rows)?,
                )
            }
        };
        let entered = &now - &before;
        let left = &before - &now;
        let counts = (entered.len(), left.len());
        self.set_members(segment, kind, &entered, &left);
        Ok(counts)
    }

    /// Adds `entered` to and takes `left` out of a watched segment's members, with
    /// their events.
    fn set_members(
        &mut self,
        segment: &str,
        kind: EntityKind,
        entered: &RoaringBitmap,
        left: &RoaringBitmap,
    ) {
        if entered.is_empty() && left.is_empty() {
            return;
        }
        self.mark_changed();
        self.delta
            .cat_mut(&index::watch_key(kind, segment))
            .compose(entered, left);
        if !entered.is_empty() {
            self.log(StoredChange::Entered {
                segment: segment.to_owned(),
                kind,
                ids: entered.iter().collect(),
            });
        }
        if !left.is_empty() {
            self.log(StoredChange::Left {
                segment: segment.to_owned(),
                kind,
                ids: left.iter().collect(),
            });
        }
    }

    /// The watched segments with what their evaluation reads: from the database's
    /// cache, or read and computed when the cache is empty or this transaction changed
    /// the watched set.
    fn watches(&self) -> Result<Arc<Vec<Watch>>> {
        if !self.watch_set_changed
            && let Some(cached) = self.inner.watches.lock().as_ref()
        {
            return Ok(Arc::clone(cached));
        }
        let empty = RoaringBitmap::new();
        let mut watches = Vec::new();
        for (name, kind) in self.watched_list()? {
            let view = Within::new(self, &empty)?;
            query::eval::evaluate(&view, kind, &Query::segment(&name))?;
            let footprint = view.read.into_inner();
            let query = query::eval::inline_segments(self, kind, &Query::segment(&name))?;
            watches.push(Watch {
                name,
                kind,
                query,
                footprint,
            });
        }
        let watches = Arc::new(watches);
        if !self.watch_set_changed && !self.config_changed && !self.rewatch {
            *self.inner.watches.lock() = Some(Arc::clone(&watches));
        }
        Ok(watches)
    }

    /// Whether a watched segment's evaluation reads segment `name` (or is it).
    pub(super) fn watched_reads(&self, name: &str) -> Result<bool> {
        Ok(self
            .watches()?
            .iter()
            .any(|w| w.name == name || w.footprint.segments.contains(name)))
    }

    /// Brings watched segments up to date with this transaction's writes, before its
    /// commit: in full after segment, machine, schema or derived-index changes;
    /// otherwise only for the rows it touched, and only for segments whose evaluation
    /// reads an index it changed.
    pub(super) fn maintain_watched(&mut self) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let watches = self.watches()?;
        if watches.is_empty() {
            return Ok(());
        }
        let touched = std::mem::take(&mut self.touched);
        for watch in watches.iter() {
            if self.rewatch {
                self.reevaluate(&watch.name, watch.kind, None, None)?;
                continue;
            }
            let Some(rows) = touched.get(&watch.kind) else {
                continue;
            };
            if watch.footprint.meets(&self.delta) {
                self.reevaluate(&watch.name, watch.kind, Some(&watch.query), Some(rows))?;
            }
        }
        Ok(())
    }

    /// Forgets cached watch state after a commit that changed what it depends on.
    pub(super) fn publish_watches(&self) {
        if self.watch_set_changed || self.config_changed || self.rewatch {
            *self.inner.watches.lock() = None;
        }
    }
}

/// The feed settings and wake-up signal of a database.
#[derive(Debug)]
pub(crate) struct FeedState {
    /// Whether commits append their events.
    pub(crate) log: bool,
    pub(crate) retention: Retention,
    /// The sequence of the last commit, and the condition waiters sleep on.
    last: parking_lot::Mutex<u64>,
    committed: parking_lot::Condvar,
}

impl FeedState {
    pub(crate) fn new(log: bool, retention: Retention, last: u64) -> FeedState {
        FeedState {
            log,
            retention,
            last: parking_lot::Mutex::new(last),
            committed: parking_lot::Condvar::new(),
        }
    }

    /// Wakes every waiter after the commit of `sequence`.
    pub(crate) fn committed(&self, sequence: u64) {
        let mut last = self.last.lock();
        if sequence > *last {
            *last = sequence;
        }
        self.committed.notify_all();
    }

    /// The sequence of the last commit.
    pub(crate) fn last(&self) -> u64 {
        *self.last.lock()
    }

    /// Waits until a commit after `after` or until `timeout` passes; returns the last
    /// committed sequence.
    pub(crate) fn wait(&self, after: u64, timeout: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = self.last.lock();
        while *last <= after {
            if self.committed.wait_until(&mut last, deadline).timed_out() {
                break;
            }
        }
        *last
    }
}

/// The rows a transaction wrote, by kind.
pub(super) type Touched = BTreeMap<EntityKind, RoaringBitmap>;
