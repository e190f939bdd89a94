//! The contact figures that orders and activities maintain.

use crmdb::{
    Activity, ActivityKind, ContactId, Direction, EntityKind, Error, Money, Order, OrderStatus,
    Query, Snapshot, Subject,
};

use crate::support::{clocked, contact, t0};

#[test]
fn orders_and_activities_maintain_contact_figures() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let day = |n: i64| t0().plus_days(n);
    let (ada, bob) = db.write(|tx| -> crmdb::Result<_> {
        Ok((
            tx.insert(contact("Ada", "ada@example.com"))?,
            tx.insert(contact("Bob", "bob@example.com"))?,
        ))
    })?;
    let stats = |id: ContactId| db.read(|r| Ok(r.get(id)?.stats));
    clock.advance_days(1);

    // Caller-supplied figures are ignored.
    db.write(|tx| {
        tx.modify(ada, |c| {
            c.stats.order_count = 99;
            c.stats.total_spent = Money::from_major(1);
        })
    })?;
    assert_eq!(stats(ada)?, crmdb::ContactStats::default());

    let (first, second, pending) = db.write(|tx| -> crmdb::Result<_> {
        let first = tx.insert(Order {
            contact: Some(ada),
            at: day(1),
            total: Money::from_major(100),
            ..Default::default()
        })?;
        let second = tx.insert(Order {
            contact: Some(ada),
            at: day(5),
            total: Money(5_025),
            ..Default::default()
        })?;
        let pending = tx.insert(Order {
            contact: Some(ada),
            at: day(9),
            status: OrderStatus::Pending,
            total: Money::from_major(1000),
            ..Default::default()
        })?;
        // The transaction sees its own figures.
        assert_eq!(tx.get(ada)?.stats.order_count, 2);
        Ok((first, second, pending))
    })?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (2, Money(15_025), Some(day(5)))
    );
    db.read(|r| {
        let count = |text: &str| r.count(EntityKind::Contact, &Query::parse(text)?);
        assert_eq!(count("order_count >= 2")?, 1);
        assert_eq!(count("total_spent = 150.25")?, 1);
        assert_eq!(count("last_order = 2026-03-06")?, 1);
        assert_eq!(count("order_count = 0")?, 1, "bob");
        Ok(())
    })?;

    // Activities: count and latest time, whatever order they come in.
    db.write(|tx| {
        tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Outbound,
            Subject::Contact(ada),
            day(10),
        ))?;
        tx.insert(Activity::new(
            ActivityKind::Email,
            Direction::Outbound,
            Subject::Contact(ada),
            day(3),
        ))?;
        tx.insert(Activity::new(
            ActivityKind::Meeting,
            Direction::Outbound,
            Subject::Contact(bob),
            day(4),
        ))
    })?;
    let s = stats(ada)?;
    assert_eq!((s.activity_count, s.last_activity), (2, Some(day(10))));
    assert_eq!(stats(bob)?.activity_count, 1);
    db.read(|r| {
        let q = Query::parse("last_activity >= 2026-03-10 AND activity_count = 2")?;
        assert_eq!(
            r.ids(EntityKind::Contact, &q)?.iter().collect::<Vec<_>>(),
            [ada.get()]
        );
        Ok(())
    })?;

    // Soft-deleting an order recomputes; restoring counts it again.
    db.write(|tx| tx.soft_delete(second))?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (1, Money::from_major(100), Some(day(1)))
    );
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("total_spent = 100")?)?,
            1
        );
        Ok(())
    })?;
    db.write(|tx| tx.restore(second))?;
    assert_eq!(stats(ada)?.order_count, 2);

    // Status changes count: paying the pending order, refunding the first.
    db.write(|tx| tx.modify(pending, |o| o.status = OrderStatus::Paid))?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (3, Money(115_025), Some(day(9)))
    );
    db.write(|tx| tx.modify(first, |o| o.status = OrderStatus::Refunded))?;
    let s = stats(ada)?;
    assert_eq!((s.order_count, s.total_spent), (2, Money(105_025)));

    // Moving an order to another contact recomputes both.
    db.write(|tx| tx.modify(pending, |o| o.contact = Some(bob)))?;
    let (a, b) = (stats(ada)?, stats(bob)?);
    assert_eq!(
        (a.order_count, a.total_spent, a.last_order),
        (1, Money(5_025), Some(day(5)))
    );
    assert_eq!((b.order_count, b.total_spent), (1, Money::from_major(1000)));

    // Soft-deleting an activity recomputes too.
    let bob_activity = db.read(|r| {
        let q = Query::field("contact").eq(bob.get());
        let ids = r.ids(EntityKind::Activity, &q)?;
        Ok(crmdb::ActivityId::new(
            ids.min().expect("bob has an activity"),
        ))
    })?;
    db.write(|tx| tx.soft_delete(bob_activity))?;
    let b = stats(bob)?;
    assert_eq!((b.activity_count, b.last_activity), (0, None));

    // Figures survive a rolled-back write unchanged.
    let before = (stats(ada)?, stats(bob)?);
    let failed: crmdb::Result<()> = db.write(|tx| {
        tx.insert(Order {
            contact: Some(ada),
            at: day(20),
            total: Money::from_major(1),
            ..Default::default()
        })?;
        Err(Error::InvalidArgument("roll back".into()))
    });
    assert!(failed.is_err());
    assert_eq!((stats(ada)?, stats(bob)?), before);
    Ok(())
}

#[test]
fn restored_contact_counts_changes_made_while_it_was_deleted() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let day = |n: i64| t0().plus_days(n);
    let (ada, orders, call) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        let mut orders = Vec::new();
        for (n, total) in [(1, 10), (2, 20)] {
            orders.push(tx.insert(Order {
                contact: Some(ada),
                at: day(n),
                total: Money::from_major(total),
                ..Default::default()
            })?);
        }
        let call = tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Outbound,
            Subject::Contact(ada),
            day(3),
        ))?;
        Ok((ada, orders, call))
    })?;
    // While the contact is in the recycle bin, one order and its only activity go too.
    db.write(|tx| {
        tx.soft_delete(ada)?;
        tx.soft_delete(orders[1])?;
        tx.soft_delete(call)
    })?;
    db.write(|tx| tx.restore(ada))?;
    let stats = db.read(|r| Ok(r.get(ada)?.stats))?;
    assert_eq!(
        (
            stats.order_count,
            stats.total_spent,
            stats.last_order,
            stats.activity_count,
            stats.last_activity
        ),
        (1, Money::from_major(10), Some(day(1)), 0, None),
        "figures after restore are recomputed from the live orders and activities"
    );
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("order_count = 1")?)?,
            1
        );
        Ok(())
    })
}
