//! A consumer's copy of the database built from the change feed alone: the record
//! events applied in order, and watched segments' members from their entered and
//! left events. Shared by the change-feed tests and the model-based histories.

#![allow(dead_code)]

use std::collections::BTreeMap;

use crmdb::feed::{Batch, Change};
use crmdb::{
    Account, Activity, AnyRecord, Contact, Deal, EntityKind, Order, Owner, Product, RoaringBitmap,
    Snapshot, Task,
};

/// The records a consumer applying the record events in order ends up with.
pub type Replica = BTreeMap<(EntityKind, u32), AnyRecord>;

pub fn apply(replica: &mut Replica, batch: &Batch) {
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
pub fn records<S: Snapshot>(snap: &S) -> crmdb::Result<Replica> {
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
pub fn replay_members(batches: &[Batch]) -> BTreeMap<String, RoaringBitmap> {
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
