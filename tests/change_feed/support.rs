//! Shared helpers: a clocked database, records, and replaying the feed onto a model.

use std::sync::Arc;

use crmdb::feed::Batch;
use crmdb::{
    Activity, ActivityKind, Contact, ContactId, Database, Direction, ManualClock, Money, Order,
    Subject, Timestamp,
};

#[path = "../support/replica.rs"]
mod replica;

pub(crate) use replica::{Replica, apply, records, replay_members};

/// 2026-03-01T00:00:00Z, the start of every clock in these tests.
pub(crate) fn t0() -> Timestamp {
    Timestamp::from_ymd(2026, 3, 1).expect("valid date")
}

pub(crate) fn clocked() -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(t0()));
    let db = Database::builder().clock(clock.clone()).in_memory()?;
    Ok((db, clock))
}

pub(crate) fn contact(name: &str, email: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        ..Default::default()
    }
}

pub(crate) fn paid_order(contact: ContactId, at: Timestamp) -> Order {
    Order {
        contact: Some(contact),
        at,
        total: Money::from_major(10),
        ..Default::default()
    }
}

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
