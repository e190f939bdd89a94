//! What orders and activities do to their contact, in the same transaction: the
//! contact's figures recomputed, and an automatic lifecycle move when the rules say so.
//! Records say what they count for through [`ContactEffect`]; the automatic-move rules
//! are `lifecycle::auto`'s.

use super::WriteTransaction;
use crate::error::Result;
use crate::feed::Cause;
use crate::index;
use crate::lifecycle::auto::{self, Event};
use crate::lifecycle::{MoveOp, StageChange};
use crate::schema::{
    Activity, ActivityId, Contact, ContactEffect, ContactId, ContactStats, Contribution,
    EntityKind, Order, OrderId, Record, RecordInternal,
};
use crate::storage::source::Source;
use crate::txn::Snapshot;

/// The contact updates a write causes, computed and checked before anything is written.
pub(super) struct FollowUp {
    /// The record whose write causes the updates.
    source: (EntityKind, u32),
    updates: Vec<(ContactId, Contact, Contact, Option<StageChange>)>,
}

/// A write of a record that affects contacts: the record in its new form, the effect
/// of the version it replaces, and whether it is new.
#[derive(Clone, Copy)]
struct Written {
    pending: Pending,
    old_effect: Option<ContactEffect>,
    inserted: bool,
}

/// A record about to be written: its kind, row and effect, counted in its new form
/// when its contact's figures are recomputed.
#[derive(Clone, Copy)]
pub(super) struct Pending {
    kind: EntityKind,
    row: u32,
    effect: ContactEffect,
}

impl WriteTransaction {
    /// What writing `new` (replacing `old`) at `row` does to contacts: new figures and
    /// perhaps an automatic move of the contact it is about.
    pub(super) fn follow_up_of<R: Record>(
        &mut self,
        row: u32,
        new: &R,
        old: Option<&R>,
    ) -> Result<Option<FollowUp>> {
        let Some(effect) = new.contact_effect() else {
            return Ok(None);
        };
        let old_effect = old.and_then(RecordInternal::contact_effect);
        let mut contacts: Vec<ContactId> = effect.contact.into_iter().collect();
        if let Some(prev) = old_effect.and_then(|e| e.contact)
            && !contacts.contains(&prev)
        {
            contacts.push(prev);
        }
        if contacts.is_empty() {
            return Ok(None);
        }
        let pending = Pending {
            kind: R::KIND,
            row,
            effect,
        };
        let mut updates = Vec::new();
        for (i, contact_id) in contacts.iter().enumerate() {
            let old_contact: Contact = self.get(*contact_id)?;
            if old_contact.deleted_at.is_some() {
                // Figures of contacts in the recycle bin are recomputed on restore.
                continue;
            }
            // Only the contact the record is about now moves.
            let written = Written {
                pending,
                old_effect,
                inserted: old.is_none(),
            };
            let (next, change) = self.contact_next(*contact_id, &old_contact, written, i == 0)?;
            if next != old_contact {
                updates.push((*contact_id, old_contact, next, change));
            }
        }
        Ok(Some(FollowUp {
            source: (R::KIND, row),
            updates,
        }))
    }

    /// The next state of contact `id`, now `current`, when a record is written: its
    /// figures and, when it `moves`, the automatic move the write triggers (its stage
    /// set).
    fn contact_next(
        &mut self,
        id: ContactId,
        current: &Contact,
        written: Written,
        moves: bool,
    ) -> Result<(Contact, Option<StageChange>)> {
        let Written {
            pending,
            old_effect,
            inserted,
        } = written;
        let effect = pending.effect;
        let mut next = current.clone();
        if inserted {
            // A new record counts on top of the current figures, which always equal
            // the recomputation: counts, sums of non-negative totals and latest times
            // do not depend on the order records are counted in.
            effect.add_to(id, &mut next.stats);
        } else {
            next.stats = self.contact_stats(id, Some(pending))?;
        }
        let event = match effect.contribution {
            Contribution::Order { .. } => {
                let newly_paid = effect.paid_order() && !old_effect.is_some_and(|e| e.paid_order());
                newly_paid.then_some(Event::PaidOrder {
                    first: current.stats.order_count == 0,
                })
            }
            Contribution::Activity { inbound, .. } => {
                (inserted && inbound).then_some(Event::InboundActivity)
            }
        };
        let mut change = None;
        if moves && let Some(event) = event {
            let config = self.config_arc()?;
            if let Some((rule, cause)) = auto::triggered(&config.machines, event, &current.stage) {
                next.stage = rule.to.clone();
                change =
                    self.check_stage(id.get(), Some(current), &mut next, MoveOp::Automatic(cause))?;
                if let Some(change) = &change {
                    next.stage = change.to.clone();
                }
            }
        }
        next.updated_at = self.now();
        Ok((next, change))
    }

    pub(super) fn apply_follow_up(&mut self, follow_up: Option<FollowUp>) -> Result<()> {
        let Some(follow_up) = follow_up else {
            return Ok(());
        };
        let (kind, id) = follow_up.source;
        self.with_cause(Cause::Effect { kind, id }, |tx| {
            for (id, old, new, change) in follow_up.updates {
                tx.write_row(id.get(), Some(&old), &new)?;
                if let Some(change) = change {
                    tx.append_history(EntityKind::Contact, id.get(), &change)?;
                }
            }
            Ok(())
        })
    }

    /// A contact's figures recomputed from its live orders and activities, counting
    /// `pending` (about to be written) in its new form.
    pub(super) fn contact_stats(
        &self,
        contact: ContactId,
        pending: Option<Pending>,
    ) -> Result<ContactStats> {
        let mut stats = ContactStats::default();
        let contact_key = contact.get().to_string();
        let skip =
            |kind: EntityKind, row: u32| pending.is_some_and(|p| (p.kind, p.row) == (kind, row));
        for row in self
            .bitmap(&index::cat_key(EntityKind::Order, "contact", &contact_key))?
            .iter()
        {
            if !skip(EntityKind::Order, row) {
                let order: Order = self.get(OrderId::new(row))?;
                if let Some(effect) = order.contact_effect() {
                    effect.add_to(contact, &mut stats);
                }
            }
        }
        for row in self
            .bitmap(&index::cat_key(
                EntityKind::Activity,
                "contact",
                &contact_key,
            ))?
            .iter()
        {
            if !skip(EntityKind::Activity, row) {
                let activity: Activity = self.get(ActivityId::new(row))?;
                if let Some(effect) = activity.contact_effect() {
                    effect.add_to(contact, &mut stats);
                }
            }
        }
        if let Some(pending) = pending {
            pending.effect.add_to(contact, &mut stats);
        }
        Ok(stats)
    }
}

/// A contact's figures and automatic moves gathered over a bulk load of the records
/// that affect it, written once at the end of the batch.
struct Gathered {
    original: Contact,
    current: Contact,
    /// The first record that changed it: the cause of its update event.
    first: Option<(EntityKind, u32)>,
    moves: Vec<(StageChange, (EntityKind, u32))>,
}

/// The contacts a bulk load of orders or activities changes, in first-touch order.
#[derive(Default)]
struct RelatedBatch {
    contacts: Vec<(ContactId, Gathered)>,
    index: std::collections::HashMap<ContactId, usize>,
}

impl WriteTransaction {
    /// The bulk writer of records that affect contacts (orders, activities): each record
    /// is checked and written as [`insert`](Self::insert) writes it, while its effect on
    /// its contact (figures, automatic moves) is applied to an in-memory copy of that
    /// contact; each contact is then written once, with its stage history in order.
    /// Records, indexes, histories and every record's own events come out as a loop of
    /// inserts would leave them. Refused records go to `rejected` with their position;
    /// returns the rows inserted.
    pub(crate) fn insert_related<R: Record>(
        &mut self,
        records: impl IntoIterator<Item = (u64, R)>,
        rejected: &mut Vec<crate::bulk::Rejection>,
    ) -> Result<Vec<u32>> {
        self.guarded(|tx| {
            let mut batch = RelatedBatch::default();
            let mut rows = Vec::new();
            for (position, record) in records {
                match tx.insert_gathering(&mut batch, record) {
                    Ok(row) => rows.push(row),
                    Err(e) if e.poisons() => return Err(e),
                    Err(error) => rejected.push(crate::bulk::Rejection { position, error }),
                }
            }
            for (id, gathered) in batch.contacts {
                if let Some((kind, row)) = gathered.first {
                    tx.with_cause(Cause::Effect { kind, id: row }, |tx| {
                        tx.write_row(id.get(), Some(&gathered.original), &gathered.current)
                    })?;
                }
                for (change, (kind, row)) in gathered.moves {
                    tx.with_cause(Cause::Effect { kind, id: row }, |tx| {
                        tx.append_history(EntityKind::Contact, id.get(), &change)
                    })?;
                }
            }
            Ok(rows)
        })
    }

    /// One record of [`insert_related`](Self::insert_related): checked in full (its
    /// effect included) before anything of it is written.
    fn insert_gathering<R: Record>(
        &mut self,
        batch: &mut RelatedBatch,
        mut record: R,
    ) -> Result<u32> {
        let now = self.now();
        super::normalise_new(&mut record, now);
        let row = self.next_row(R::KIND)?;
        if row == u32::MAX {
            return Err(crate::error::Error::LimitExceeded(format!(
                "{} row ids are exhausted",
                R::KIND
            )));
        }
        self.check_record(&record, None)?;
        let change = self.check_stage(row, None, &mut record, MoveOp::Create)?;
        let planned = self.plan_gathered(batch, row, &record)?;
        self.next_rows.insert(R::KIND, row + 1);
        self.write_row(row, None, &record)?;
        if let Some(change) = change {
            self.append_history(R::KIND, row, &change)?;
        }
        if let Some((contact, loaded, next, change)) = planned {
            let at = match batch.index.get(&contact) {
                Some(&at) => at,
                None => {
                    batch.index.insert(contact, batch.contacts.len());
                    let gathered = Gathered {
                        current: loaded.clone(),
                        original: loaded,
                        first: None,
                        moves: Vec::new(),
                    };
                    batch.contacts.push((contact, gathered));
                    batch.contacts.len() - 1
                }
            };
            let gathered = &mut batch.contacts[at].1;
            // As a loop of inserts writes the contact only when it changes.
            if next != gathered.current {
                gathered.first.get_or_insert((R::KIND, row));
            }
            gathered.current = next;
            if let Some(change) = change {
                gathered.moves.push((change, (R::KIND, row)));
            }
        }
        Ok(row)
    }

    /// What a new record does to its contact as the batch has it so far: the contact as
    /// first read (for a contact new to the batch), its next state and the automatic
    /// move, if any. As [`follow_up_of`](Self::follow_up_of) for an insert.
    #[allow(clippy::type_complexity)]
    fn plan_gathered<R: Record>(
        &mut self,
        batch: &RelatedBatch,
        row: u32,
        record: &R,
    ) -> Result<Option<(ContactId, Contact, Contact, Option<StageChange>)>> {
        let Some(effect) = record.contact_effect() else {
            return Ok(None);
        };
        let Some(contact) = effect.contact else {
            return Ok(None);
        };
        let pending = Pending {
            kind: R::KIND,
            row,
            effect,
        };
        let (loaded, current) = match batch.index.get(&contact) {
            Some(&at) => {
                let gathered = &batch.contacts[at].1;
                (gathered.original.clone(), gathered.current.clone())
            }
            None => {
                let stored: Contact = self.get(contact)?;
                (stored.clone(), stored)
            }
        };
        if current.deleted_at.is_some() {
            return Ok(None);
        }
        let written = Written {
            pending,
            old_effect: None,
            inserted: true,
        };
        let (next, change) = self.contact_next(contact, &current, written, true)?;
        Ok(Some((contact, loaded, next, change)))
    }
}
