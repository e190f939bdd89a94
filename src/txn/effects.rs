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
        let event = match effect.contribution {
            Contribution::Order { .. } => {
                let newly_paid = effect.paid_order() && !old_effect.is_some_and(|e| e.paid_order());
                newly_paid.then_some(Event::PaidOrder { first: false })
            }
            Contribution::Activity { inbound, .. } => {
                (old.is_none() && inbound).then_some(Event::InboundActivity)
            }
        };
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
            let mut next = old_contact.clone();
            if old.is_none() {
                // A new record counts on top of the stored figures, which always equal
                // the recomputation: counts, sums of non-negative totals and latest
                // times do not depend on the order records are counted in.
                pending.effect.add_to(*contact_id, &mut next.stats);
            } else {
                next.stats = self.contact_stats(*contact_id, Some(pending))?;
            }
            let mut change = None;
            // Only the contact the record is about now moves.
            if i == 0
                && let Some(event) = event
            {
                let event = match event {
                    Event::PaidOrder { .. } => Event::PaidOrder {
                        first: old_contact.stats.order_count == 0,
                    },
                    other => other,
                };
                let config = self.config_arc()?;
                if let Some((rule, cause)) =
                    auto::triggered(&config.machines, event, &old_contact.stage)
                {
                    next.stage = rule.to.clone();
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
        Ok(Some(FollowUp {
            source: (R::KIND, row),
            updates,
        }))
    }

    pub(super) fn apply_follow_up(&mut self, follow_up: Option<FollowUp>) -> Result<()> {
        let Some(follow_up) = follow_up else {
            return Ok(());
        };
        let (kind, id) = follow_up.source;
        self.with_cause(Cause::Effect { kind, id }, |tx| {
            for (id, old, mut new, change) in follow_up.updates {
                if let Some(change) = &change {
                    new.stage = change.to.clone();
                }
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
