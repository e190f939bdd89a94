//! Shared helpers: the common fixtures, an inbound activity, reading the whole log, and
//! replaying the feed onto a model.

use crmdb::feed::Batch;
use crmdb::{Activity, ActivityKind, ContactId, Database, Direction, Subject, Timestamp};

#[path = "../support/records.rs"]
mod records;
#[path = "../support/replica.rs"]
mod replica;

pub(crate) use records::{clocked, contact, paid_order, t0};

pub(crate) use replica::{Replica, apply, records, replay_members};

pub(crate) fn inbound(contact: ContactId, at: Timestamp) -> Activity {
    Activity::new(
        ActivityKind::Email,
        Direction::Inbound,
        Subject::Contact(contact),
        at,
    )
}

/// Every batch of the log, read in pages of `page` batches.
pub(crate) fn all_batches(db: &Database, page: usize) -> crmdb::Result<Vec<Batch>> {
    let mut out: Vec<Batch> = Vec::new();
    loop {
        let after = out.last().map_or(0, |b| b.sequence);
        let next = db.changes(after, page)?;
        if next.is_empty() {
            return Ok(out);
        }
        out.extend(next);
    }
}
