//! Shared helpers: a clocked database, records, and replaying the feed onto a model.

use std::collections::BTreeMap;
use std::sync::Arc;

use crmdb::feed::{Batch, Change};
use crmdb::{
    Account, Activity, ActivityKind, AnyRecord, Contact, ContactId, Database, Deal, Direction,
    EntityKind, ManualClock, Money, Order, Owner, Product, RoaringBitmap, Snapshot, Subject, Task,
    Timestamp,
};

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

/// The records a consumer applying the record events in order ends up with.
pub(crate) type Replica = BTreeMap<(EntityKind, u32), AnyRecord>;

pub(crate) fn apply(replica: &mut Replica, batch: &Batch) {
    for event in &batch.events {
        match &event.change {
            Change::Inserted { id, record }
            | Change::Deleted { id, record }
            | Change::Restored { id, record } => {
                replica.insert((record.kind(), *id), record.clone());
            }
            Change::Updated {
                id, before, after, ..
            } => {
                let previous = replica.insert((after.kind(), *id), after.clone());
                assert_eq!(
                    previous.as_ref(),
                    Some(before),
                    "an update's before image is what the replica holds"
                );
            }
            Change::Purged { kind, id } => {
                replica.remove(&(*kind, *id));
            }
            _ => {}
        }
    }
}

/// Every stored record of the database, as the replica keys them.
pub(crate) fn records<S: Snapshot>(snap: &S) -> crmdb::Result<Replica> {
    fn add<R: crmdb::Record, S: Snapshot>(snap: &S, out: &mut Replica) -> crmdb::Result<()> {
        use crmdb::RecordId as _;
        for (id, record) in snap.records::<R>()? {
            out.insert((R::KIND, id.row()), record.into());
        }
        Ok(())
    }
    let mut out = Replica::new();
    add::<Contact, S>(snap, &mut out)?;
    add::<Account, S>(snap, &mut out)?;
    add::<Deal, S>(snap, &mut out)?;
    add::<Activity, S>(snap, &mut out)?;
    add::<Order, S>(snap, &mut out)?;
    add::<Product, S>(snap, &mut out)?;
    add::<Owner, S>(snap, &mut out)?;
    add::<Task, S>(snap, &mut out)?;
    Ok(out)
}

/// The members of each segment a consumer replaying entered and left events keeps.
pub(crate) fn replay_members(batches: &[Batch]) -> BTreeMap<String, RoaringBitmap> {
    let mut members: BTreeMap<String, RoaringBitmap> = BTreeMap::new();
    for batch in batches {
        for event in &batch.events {
            match &event.change {
                Change::Entered { segment, ids, .. } => {
                    let set = members.entry(segment.clone()).or_default();
                    assert!(set.is_disjoint(ids), "{segment}: entered twice");
                    *set |= ids;
                }
                Change::Left { segment, ids, .. } => {
                    let set = members.entry(segment.clone()).or_default();
                    assert!(ids.is_subset(set), "{segment}: left without entering");
                    *set -= ids;
                }
                Change::Unwatched { segment } => {
                    members.remove(segment);
                }
                _ => {}
            }
        }
    }
    members
}
