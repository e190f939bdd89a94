//! Record writes: insert, update, modify, upsert, tags, stage moves, soft delete,
//! restore, purge. Each validates everything (fields, schema, relations, natural keys,
//! the stage move, the effect on a contact) before its first mutation.

use super::{StagedId, Upserted, WriteTransaction, record_terms};
use crate::bulk::{BulkReport, PreparedInsert, Rejection};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::feed::Cause;
use crate::feed::stored::StoredChange;
use crate::index::IndexDelta;
use crate::lifecycle::{MoveOp, StageChange, transition};
use crate::schema::{
    Consent, Contact, ContactId, EntityKind, KindVisitor, OwnerId, Record, RecordId,
    RecordInternal, Stage, Timestamp, check_tag,
};
use crate::storage;
use crate::storage::source::{Source, decode_record};
use crate::txn::Snapshot;
use crate::{codec, index};
use redb::ReadableTable;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::Arc;

impl WriteTransaction {
    // ---- validation helpers (no mutation) ----

    pub(super) fn check_record<R: Record>(&mut self, record: &R, row: Option<u32>) -> Result<()> {
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
    pub(super) fn check_stage<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &mut R,
        op: MoveOp<'_>,
    ) -> Result<Option<StageChange>> {
        let config = self.config_arc()?;
        let now = self.now();
        transition::resolve(&config.machines, row, old, new, op, now, &self.actor)
    }

    // ---- public write API ----

    /// Inserts a record and returns its id. Contacts and deals without a stage start in
    /// their machine's first stage; a given stage is checked as a create move. Paid
    /// orders and inbound activities update their contact's figures and may move its
    /// stage (see [`Machines::auto_moves`](crate::Machines::auto_moves)).
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
        if let Some(lead) = record.lead()
            && lead.owner.is_none()
        {
            assignment = crate::assign::decide(&*self, lead.region, now)?;
            if let Some(decision) = &assignment {
                *lead.owner = Some(decision.owner);
                *lead.assigned_by = Some(decision.rule.clone());
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
        self.follow_unsubscribed(row, None, &record)?;
        if let Some(change) = change {
            // A new row has no history yet.
            self.note_history(R::KIND, row, Some(0))?;
            let mut table = self.txn()?.open_table(storage::HISTORY)?;
            table.insert((R::KIND as u8, row, 0), codec::encode(&change).as_slice())?;
            drop(table);
            self.log_stage(R::KIND, row, &change);
        }
        self.apply_follow_up(follow_up)?;
        if let Some(decision) = assignment {
            self.record_assignment(&decision)?;
        }
        Ok(R::Id::from_row(row))
    }

    /// Requalifies a lead: runs the assignment rules again and gives the contact the
    /// owner they pick (recording the rule). Returns the new owner, or `None` when no
    /// rule found one (the contact keeps its owner).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Deleted`], or a storage failure.
    pub fn requalify(&mut self, id: ContactId) -> Result<Option<OwnerId>> {
        self.guarded(|tx| {
            let mut contact = tx.live_record(id)?;
            let Some(decision) = crate::assign::decide(&*tx, contact.region.as_deref(), tx.now())?
            else {
                return Ok(None);
            };
            contact.owner = Some(decision.owner);
            contact.assigned_by = Some(decision.rule.clone());
            let cause = Cause::Assignment {
                rule: decision.rule.clone(),
            };
            tx.with_cause(cause, |tx| tx.update_assigned(id, contact))?;
            tx.record_assignment(&decision)?;
            Ok(Some(decision.owner))
        })
    }

    /// Writes a contact whose owner the assignment rules chose, keeping its rule name.
    fn update_assigned(&mut self, id: ContactId, mut contact: Contact) -> Result<()> {
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

    pub(super) fn live_record<I: RecordId>(&self, id: I) -> Result<I::Record> {
        let record = self.get(id)?;
        if record.deleted_at().is_some() {
            self.refuse_merged::<I::Record>(id.row())?;
            return Err(Error::Deleted {
                kind: I::Record::KIND,
                id: id.row(),
            });
        }
        Ok(record)
    }

    pub(super) fn update_inner<I: RecordId>(
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
        self.follow_unsubscribed(row, Some(&old), &record)?;
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
        check_tag(tag).map_err(|reason| Error::InvalidField {
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
            StagedId::Contact(id) => self.restage_record(id, to, op),
            StagedId::Deal(id) => self.restage_record(id, to, op),
        }
    }

    pub(super) fn restage_record<I: RecordId>(
        &mut self,
        id: I,
        to: Stage,
        op: MoveOp<'_>,
    ) -> Result<()> {
        let mut record = self.live_record(id)?;
        let Some(stage) = record.stage_mut() else {
            return Err(Error::InvalidArgument(format!(
                "{} records have no stage",
                I::Record::KIND
            )));
        };
        *stage = to;
        self.update_inner(id, record, op)
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
            tx.refuse_merged::<I::Record>(id.row())?;
            let mut record = old.clone();
            record.set_deleted_at(None);
            if let Some(figures) = record.figures_mut() {
                // Orders and activities may have changed while the contact was deleted.
                *figures = tx.contact_stats(ContactId::new(id.row()), None)?;
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
            tx.refuse_merged::<I::Record>(row)?;
            let target = row.to_string();
            for (referrer_kind, field) in kind.referrers() {
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
            tx.remove_row(row, &old)?;
            tx.log(StoredChange::Purged { kind, id: row });
            Ok(())
        })
    }

    /// Removes a row for good with its index terms, derived index entries, natural keys
    /// and history: a purge without its checks and its change event.
    pub(super) fn remove_row<R: Record>(&mut self, row: u32, old: &R) -> Result<()> {
        let kind = R::KIND;
        let old_terms = record_terms(old);
        self.delta.diff(kind, row, Some(&old_terms), None);
        // Derived indexes and consent states are not part of the row's terms.
        self.clear_derived(kind, row)?;
        self.clear_consent(row, old)?;
        self.mark_changed();
        self.note_row(kind, row)?;
        for (field, value) in old.unique_keys() {
            self.note_unique(field, &value)?;
        }
        self.note_history(kind, row, None)?;
        let txn = self.txn()?;
        txn.open_table(storage::rows(kind))?.remove(row)?;
        let mut unique = txn.open_table(storage::UNIQUE)?;
        for (field, value) in old.unique_keys() {
            unique.remove((field, value.as_str()))?;
        }
        let mut history = txn.open_table(storage::HISTORY)?;
        let k = kind as u8;
        history.retain_in((k, row, 0)..=(k, row, u32::MAX), |_, _| false)?;
        drop((history, unique));
        self.touched.entry(kind).or_default().insert(row);
        Ok(())
    }
}

/// The bulk writer: records prepared away from the writer (`bulk::prepare_insert`)
/// written with the tables opened once.
impl WriteTransaction {
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
    /// built for the accepted ones. Inserted rows go to the report; refused records go to
    /// its `rejected` with their input position and are taken back out of `chunk_delta`.
    pub(crate) fn insert_prepared(
        &mut self,
        kind: EntityKind,
        records: Vec<(u64, u32, Result<PreparedInsert>)>,
        mut chunk_delta: IndexDelta,
        report: &mut BulkReport,
    ) -> Result<()> {
        let BulkReport {
            inserted: count,
            rows: inserted_rows,
            rejected,
        } = report;
        // Bulk loads run in transactions of their own, never under a group-commit mark.
        debug_assert!(self.undo.is_none());
        self.guarded(|tx| {
            let mut live_targets: HashMap<(EntityKind, u32), bool> = HashMap::new();
            let mut inserted = 0;
            let log = tx.inner.feed.log;
            let mut written = RoaringBitmap::new();
            let mut events = Vec::new();
            let mut opted_out = Vec::new();
            {
                let txn = tx.txn.as_ref().ok_or(Error::Poisoned)?;
                let mut rows = txn.open_table(storage::rows(kind))?;
                let mut unique = txn.open_table(storage::UNIQUE)?;
                let mut history = txn.open_table(storage::HISTORY)?;
                'records: for (position, row, prepared) in records {
                    let prepared = match prepared {
                        Ok(p) => p,
                        Err(e) => {
                            rejected.push(Rejection { position, error: e });
                            continue;
                        }
                    };
                    // Only records with a valid stage went into the chunk delta; a refusal
                    // (rare) takes the row back out of every bitmap of the chunk.
                    let mut refuse = |e: Error, prepared: &PreparedInsert| {
                        if prepared.change.is_ok() {
                            chunk_delta.forget_new_row(row);
                        }
                        rejected.push(Rejection { position, error: e });
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
                        Err(e) => {
                            rejected.push(Rejection { position, error: e });
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
                    written.insert(row);
                    inserted_rows.push(row);
                    if prepared.unsubscribed {
                        opted_out.push(row);
                    }
                    if log {
                        events.push(StoredChange::Inserted {
                            kind,
                            id: row,
                            record: prepared.bytes,
                        });
                        if let Some(change) = change {
                            events.push(StoredChange::StageChanged {
                                kind,
                                id: row,
                                change,
                            });
                        }
                    }
                    inserted += 1;
                }
            }
            for event in events {
                tx.log(event);
            }
            for row in opted_out {
                tx.append_consent(row, Consent::unsubscribed(true))?;
            }
            *tx.touched.entry(kind).or_default() |= written;
            tx.delta.absorb(chunk_delta);
            if inserted > 0 {
                tx.mark_changed();
            }
            *count += inserted;
            Ok(())
        })
    }
}

/// Sets the engine-maintained fields of a record about to be inserted.
pub(crate) fn normalise_new<R: Record>(record: &mut R, now: Timestamp) {
    if record.created_at().is_none() {
        record.set_created_at(now);
    }
    record.set_updated_at(now);
    record.set_deleted_at(None);
    record.normalise_new();
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

/// Whether the stored record `row` of `kind` is in the recycle bin. Records have no
/// random access in bincode, so the full record of the right type is decoded.
pub(super) fn deleted_in(kind: EntityKind, row: u32, bytes: &[u8]) -> Result<bool> {
    struct Deleted<'a>(u32, &'a [u8]);
    impl KindVisitor for Deleted<'_> {
        type Output = Result<bool>;
        fn visit<R: Record>(self) -> Self::Output {
            Ok(decode_record::<R>(self.0, self.1)?.deleted_at().is_some())
        }
    }
    kind.visit(Deleted(row, bytes))
}
