//! Applying a source database's change log to a copy of it: how a tenant move
//! (`crate::moving`) brings a backup up to date and then hands over.
//!
//! The log's record events carry whole stored images, so rows, natural keys, indexes
//! and stage histories follow from the events exactly, and each batch's stored parts
//! are copied byte for byte under the source's sequence. What the log does not carry
//! (row-id counters, round-robin pointers, the RFM state and its derived indexes,
//! saved-segment definitions, consumers, watched-segment members) is copied from the
//! source's snapshot when the copy has reached that snapshot's last commit: from then
//! on the copy holds what the snapshot holds.

use redb::{ReadableTable, TableDefinition, Value};
use roaring::RoaringBitmap;

use super::snapshot::{ReadTransaction, Snapshot};
use super::{Shared, WriteTransaction};
use crate::error::{Error, Result};
use crate::feed::stored::{StoredChange, decode_stored};
use crate::index;
use crate::schema::{ContactId, EntityKind, KindVisitor, Record};
use crate::storage::source::decode_record;
use crate::storage::source::sealed::Source;
use crate::storage::{self, CHANGES, CONSUMERS, IDENTITY, META, SEGMENTS, WATCHED};

/// The durable consumer a move keeps on its source, so that retention keeps every
/// batch the copy has not applied yet.
pub(crate) const MOVE_CONSUMER: &str = "tenant_move";

/// The stored parts of one batch.
type Parts = Vec<(u32, Vec<u8>)>;

impl WriteTransaction {
    /// Applies up to `limit` of the source snapshot's batches after `after` to this
    /// transaction, a copy of the source as of `after`, and returns the sequence of the
    /// last one applied (`after` when there were none). When that is the snapshot's last
    /// commit, or `sync` is set and there is nothing left, what the log does not carry
    /// is copied from the snapshot too (`sync_from`). The commit then takes the source's
    /// sequence, not a new one.
    ///
    /// # Errors
    /// [`Error::Trimmed`] when the source no longer holds the batches after `after`,
    /// [`Error::Corrupt`] for a gap in its log or a batch that does not fit the copy.
    pub(crate) fn apply_from(
        &mut self,
        source: &ReadTransaction,
        after: u64,
        limit: usize,
    ) -> Result<u64> {
        self.guarded(|tx| {
            let last = source.sequence()?;
            let changes = source.redb_txn().open_table(CHANGES)?;
            let oldest = crate::feed::oldest_kept(&changes, last)?;
            if after < last && after.saturating_add(1) < oldest {
                return Err(Error::Trimmed { after, oldest });
            }
            let mut through = after;
            let mut applied = 0;
            let mut pending: Option<(u64, Parts)> = None;
            for entry in changes.range((after.saturating_add(1), 0)..)? {
                let (key, value) = entry?;
                let (sequence, part) = key.value();
                if let Some((s, parts)) = pending.take_if(|(s, _)| *s != sequence) {
                    tx.apply_batch(through, s, &parts)?;
                    through = s;
                    applied += 1;
                    if applied == limit {
                        break;
                    }
                }
                pending
                    .get_or_insert_with(|| (sequence, Vec::new()))
                    .1
                    .push((part, value.value().to_vec()));
            }
            if let Some((s, parts)) = pending
                && applied < limit
            {
                tx.apply_batch(through, s, &parts)?;
                through = s;
            }
            if through == last {
                tx.sync_from(source)?;
            } else if through == after && limit > 0 {
                // Commits after `after` that left no batch: the log was off for them.
                return Err(Error::Trimmed {
                    after,
                    oldest: last.saturating_add(1),
                });
            }
            tx.replayed = Some(through);
            tx.mark_changed();
            Ok(through)
        })
    }

    /// Applies one batch, `sequence`, onto a copy that holds everything up to `previous`.
    fn apply_batch(&mut self, previous: u64, sequence: u64, parts: &Parts) -> Result<()> {
        if sequence != previous.saturating_add(1) {
            return Err(Error::Corrupt {
                what: "changes",
                key: sequence.to_string(),
                reason: format!("the log goes from {previous} to {sequence}, with none between"),
            });
        }
        let (_, events) = decode_stored(sequence, parts)?;
        for event in events {
            match event.change {
                StoredChange::Inserted { kind, id, record }
                | StoredChange::Updated {
                    kind,
                    id,
                    after: record,
                    ..
                }
                | StoredChange::Deleted { kind, id, record }
                | StoredChange::Restored { kind, id, record } => {
                    kind.visit(Image {
                        tx: self,
                        row: id,
                        bytes: Some(&record),
                    })?;
                }
                StoredChange::Purged { kind, id } => {
                    kind.visit(Image {
                        tx: self,
                        row: id,
                        bytes: None,
                    })?;
                }
                StoredChange::StageChanged { kind, id, change } => {
                    self.store_history(kind, id, &change)?;
                }
                // The copy erases the person from its own rows, histories and log.
                StoredChange::Erased { id, .. } => {
                    self.erase_person(ContactId::new(id), "replicated erasure")?;
                }
                // The images say the tags again; configuration, segment definitions,
                // derived indexes, watched members and lineages are copied by
                // `sync_from`.
                StoredChange::TagAdded { .. }
                | StoredChange::TagRemoved { .. }
                | StoredChange::SchemaChanged { .. }
                | StoredChange::MachinesReplaced { .. }
                | StoredChange::SegmentSaved { .. }
                | StoredChange::SegmentDeleted { .. }
                | StoredChange::AssignmentChanged { .. }
                | StoredChange::RfmRefreshed { .. }
                | StoredChange::Watched { .. }
                | StoredChange::Unwatched { .. }
                | StoredChange::Entered { .. }
                | StoredChange::Left { .. }
                | StoredChange::Merged { .. }
                | StoredChange::ConsentRecorded { .. }
                | StoredChange::Unmerged { .. } => {}
            }
        }
        let mut table = self.txn()?.open_table(CHANGES)?;
        for (part, bytes) in parts {
            table.insert((sequence, *part), bytes.as_slice())?;
        }
        Ok(())
    }

    /// Makes what the change log does not carry equal to the snapshot's: the meta
    /// table, saved segments, watched segments and their members, consumers (but the
    /// move's own), the identity table (lineages, redirects, consent ledgers), consent
    /// states, every derived index, and how far back the log goes.
    fn sync_from(&mut self, source: &ReadTransaction) -> Result<()> {
        let mut watched = source.watched_list()?;
        watched.extend(self.watched_list()?);
        {
            let (from, to) = (source.redb_txn(), self.txn()?);
            equalise(META, from, to)?;
            equalise(SEGMENTS, from, to)?;
            equalise(WATCHED, from, to)?;
            equalise(CONSUMERS, from, to)?;
            equalise(IDENTITY, from, to)?;
        }
        for (name, kind) in watched {
            let key = index::watch_key(kind, &name);
            let want = source.bitmap(&key)?;
            self.set_bitmap(&key, &want)?;
        }
        for kind in EntityKind::ALL {
            for (field, field_kind) in kind.derived_fields() {
                if field_kind.is_numeric() {
                    let base = index::bsi_base(kind, field);
                    let (current, target) = (self.bsi(&base)?, source.bsi(&base)?);
                    if current != target {
                        self.delta.num_mut(&base).replace(&current, &target);
                    }
                } else {
                    let prefix = index::cat_prefix(kind, field);
                    let mut keys = source.keys_with_prefix(&prefix)?;
                    keys.extend(self.keys_with_prefix(&prefix)?);
                    keys.sort();
                    keys.dedup();
                    for key in keys {
                        let want = source.bitmap(&key)?;
                        self.set_bitmap(&key, &want)?;
                    }
                }
            }
        }
        // Consent states are written with ledger entries, which the log does not carry.
        let prefix = index::cat_prefix(EntityKind::Contact, "consent.");
        let prefix = prefix.trim_end_matches('=');
        let mut keys = source.keys_with_prefix(prefix)?;
        keys.extend(self.keys_with_prefix(prefix)?);
        keys.sort();
        keys.dedup();
        for key in keys {
            let want = source.bitmap(&key)?;
            self.set_bitmap(&key, &want)?;
        }
        let oldest = source.oldest_kept()?;
        let mut changes = self.txn()?.open_table(CHANGES)?;
        changes.retain_in(..(oldest, 0), |_, _| false)?;
        drop(changes);
        // The configuration and the watched set are read afresh after the commit.
        self.config = None;
        self.config_changed = true;
        self.watch_set_changed = true;
        Ok(())
    }

    /// Makes the bitmap `key` hold exactly `want`.
    fn set_bitmap(&mut self, key: &str, want: &RoaringBitmap) -> Result<()> {
        let current = self.bitmap(key)?;
        let add = want - &*current;
        let remove = &*current - want;
        if !add.is_empty() || !remove.is_empty() {
            self.delta.cat_mut(key).compose(&add, &remove);
        }
        Ok(())
    }
}

/// Makes table `table` of `to` hold exactly the entries it has in `from`, except that
/// the move's own consumer is left out.
fn equalise<V: Value + 'static>(
    table: TableDefinition<'static, &'static str, V>,
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<()> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    let mut doomed = Vec::new();
    for entry in target.iter()? {
        let name = entry?.0.value().to_owned();
        if name == MOVE_CONSUMER || source.get(name.as_str())?.is_none() {
            doomed.push(name);
        }
    }
    for name in doomed {
        target.remove(name.as_str())?;
    }
    for entry in source.iter()? {
        let (key, value) = entry?;
        if key.value() != MOVE_CONSUMER {
            target.insert(key.value(), value.value())?;
        }
    }
    Ok(())
}

/// A record event applied to the copy: the stored image written as the row (`Some`), or
/// the row removed for good (`None`).
struct Image<'a> {
    tx: &'a mut WriteTransaction,
    row: u32,
    bytes: Option<&'a [u8]>,
}

impl KindVisitor for Image<'_> {
    type Output = Result<()>;

    fn visit<R: Record>(self) -> Self::Output {
        let old: Option<R> = match self.tx.row_bytes(R::KIND, self.row)? {
            Some(bytes) => Some(decode_record(self.row, &bytes)?),
            None => None,
        };
        match (self.bytes, old) {
            (Some(bytes), old) => {
                let new: R = decode_record(self.row, bytes)?;
                self.tx.store_row(self.row, old.as_ref(), &new, bytes)
            }
            (None, Some(old)) => self.tx.remove_row(self.row, &old),
            (None, None) => Err(Error::Corrupt {
                what: "changes",
                key: format!("{} {}", R::KIND, self.row),
                reason: "the log purges a record the copy does not hold".into(),
            }),
        }
    }
}

/// Refuses every later write transaction of the source with [`Error::Moved`], waits for
/// the one under way (if any) to finish, and removes the move's consumer: from then on
/// the source's last commit is final. Undone by [`thaw`] if this fails.
pub(crate) fn freeze(shared: &Shared, to: &str) -> Result<()> {
    *shared.moved.lock() = Some(to.to_owned());
    let drained = (|| -> Result<()> {
        // redb has one writer: this waits for the transaction under way.
        let txn = shared.redb.begin_write()?;
        txn.open_table(storage::CONSUMERS)?.remove(MOVE_CONSUMER)?;
        txn.commit()?;
        Ok(())
    })();
    if drained.is_err() {
        thaw(shared);
    }
    drained
}

/// Lets the source take writes again after a move that did not complete.
pub(crate) fn thaw(shared: &Shared) {
    *shared.moved.lock() = None;
}
