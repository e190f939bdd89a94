//! The recycle bin: soft delete, restore and purge.

use crmdb::{EntityKind, Error, Money, Order, Query, Snapshot};

use crate::support::{clocked, contact};

#[test]
fn soft_delete_restore_and_purge() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let (ada, bob, order) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        let bob = tx.insert(contact("Bob", "bob@example.com"))?;
        tx.add_tag(ada, "vip")?;
        tx.add_tag(bob, "vip")?;
        let order = tx.insert(Order {
            contact: Some(bob),
            at: tx.now(),
            total: Money::from_major(1),
            ..Default::default()
        })?;
        Ok((ada, bob, order))
    })?;
    let vip = Query::tag("vip");
    let count = |q: &Query| db.read(|r| r.count(EntityKind::Contact, q));

    db.write(|tx| tx.soft_delete(ada))?;
    assert_eq!(count(&vip)?, 1);
    assert_eq!(count(&Query::all())?, 1);
    assert_eq!(
        count(&!Query::tag("vip"))?,
        0,
        "NOT stays within live records"
    );
    db.read(|r| {
        assert!(!r.live(EntityKind::Contact)?.contains(ada.get()));
        assert!(r.deleted(EntityKind::Contact)?.contains(ada.get()));
        let stored = r.get(ada)?;
        assert!(stored.deleted_at.is_some(), "still readable in the bin");
        Ok(())
    })?;
    let update = db.write(|tx| tx.modify(ada, |c| c.name = "x".into()));
    assert!(matches!(update, Err(Error::Deleted { .. })), "{update:?}");

    db.write(|tx| tx.restore(ada))?;
    assert_eq!(count(&vip)?, 2);
    db.read(|r| {
        assert!(r.live(EntityKind::Contact)?.contains(ada.get()));
        assert!(r.deleted(EntityKind::Contact)?.is_empty());
        assert_eq!(r.get(ada)?.deleted_at, None);
        Ok(())
    })?;

    // Purge needs the record in the bin and nothing referring to it.
    let live_purge = db.write(|tx| tx.purge(ada));
    assert!(
        matches!(live_purge, Err(Error::NotDeleted { kind: EntityKind::Contact, id }) if id == ada.get()),
        "{live_purge:?}"
    );
    db.write(|tx| tx.soft_delete(bob))?;
    let referenced = db.write(|tx| tx.purge(bob));
    assert!(
        matches!(referenced, Err(Error::StillReferenced { kind: EntityKind::Contact, id, referrer_kind: EntityKind::Order, referrer_id }) if id == bob.get() && referrer_id == order.get()),
        "{referenced:?}"
    );
    // A referrer in the bin still refers.
    db.write(|tx| tx.soft_delete(order))?;
    assert!(matches!(
        db.write(|tx| tx.purge(bob)),
        Err(Error::StillReferenced { .. })
    ));
    db.write(|tx| {
        tx.purge(order)?;
        tx.purge(bob)
    })?;
    db.read(|r| {
        assert!(matches!(r.get(bob), Err(Error::NotFound { .. })));
        assert!(r.history(bob)?.is_empty(), "history goes with the record");
        assert_eq!(r.contact_by_email("bob@example.com")?, None);
        assert!(r.deleted(EntityKind::Contact)?.is_empty());
        assert_eq!(r.count(EntityKind::Contact, &vip)?, 1);
        Ok(())
    })?;
    // The purged email is free again; the row id is never reused.
    let bob_again = db.write(|tx| tx.insert(contact("Bob", "BOB@example.com")))?;
    assert_ne!(bob_again, bob);
    assert!(bob_again.get() > bob.get());
    let restore_purged = db.write(|tx| tx.restore(bob));
    assert!(
        matches!(restore_purged, Err(Error::NotFound { .. })),
        "{restore_purged:?}"
    );
    Ok(())
}
