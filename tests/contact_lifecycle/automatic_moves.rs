//! Automatic moves from orders and activities, and why they were made.

use crmdb::{
    Activity, ActivityKind, ChangeKind, Contact, Database, Direction, EntityKind, Error, Guard,
    Machines, Order, OrderStatus, Rule, SYSTEM_ACTOR, Snapshot, Stage, Subject,
};

use crate::support::{clocked, paid_order, t0};

#[test]
fn orders_and_inbound_activities_move_contacts_automatically() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    enum Cause {
        PaidOrder,
        PendingOrder,
        Inbound,
        Outbound,
    }
    // (stage created in, paid orders before, cause, stage after, automatic entry?)
    let cases = [
        ("prospect", 0, Cause::PaidOrder, "new_customer", true),
        ("responder", 0, Cause::PaidOrder, "new_customer", true),
        ("new_customer", 1, Cause::PaidOrder, "active", true),
        ("dormant", 0, Cause::PaidOrder, "active", true),
        ("dormant", 3u32, Cause::PaidOrder, "active", true),
        ("churned", 2, Cause::PaidOrder, "active", true),
        ("active", 4, Cause::PaidOrder, "active", false),
        ("prospect", 0, Cause::PendingOrder, "prospect", false),
        ("prospect", 0, Cause::Inbound, "responder", true),
        ("prospect", 0, Cause::Outbound, "prospect", false),
        ("responder", 0, Cause::Inbound, "responder", false),
        ("new_customer", 1, Cause::Inbound, "new_customer", false),
    ];
    for (from, prior, cause, to, automatic) in cases {
        // Prior orders go in while the contact is active, where no rule moves it; then
        // it is put where the case starts.
        let id = db.write(|tx| -> crmdb::Result<_> {
            let start = if prior > 0 { "active" } else { from };
            let id = tx.insert(Contact {
                stage: Stage::new(start),
                ..Default::default()
            })?;
            for n in 0..prior {
                tx.insert(paid_order(id, t0().plus_days(i64::from(n))))?;
            }
            if start != from {
                match tx.move_stage(id, from) {
                    Ok(()) => {}
                    Err(_) => tx.regress(id, from, "setup")?,
                }
            }
            Ok(id)
        })?;
        let before = db.read(|r| Ok(r.history(id)?.len()))?;
        db.write(|tx| {
            tx.set_actor("importer");
            let now = tx.now();
            match cause {
                Cause::PaidOrder => tx.insert(paid_order(id, now)).map(drop),
                Cause::PendingOrder => tx
                    .insert(Order {
                        status: OrderStatus::Pending,
                        ..paid_order(id, now)
                    })
                    .map(drop),
                Cause::Inbound | Cause::Outbound => {
                    let direction = if matches!(cause, Cause::Inbound) {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    };
                    tx.insert(Activity::new(
                        ActivityKind::WebVisit,
                        direction,
                        Subject::Contact(id),
                        now,
                    ))
                    .map(drop)
                }
            }
        })?;
        let (stage, history, stats) =
            db.read(|r| Ok((r.get(id)?.stage, r.history(id)?, r.get(id)?.stats)))?;
        let case = format!("{from} with {prior} orders");
        assert_eq!(stage.as_str(), to, "{case}");
        let paid = u32::from(matches!(cause, Cause::PaidOrder));
        assert_eq!(stats.order_count, prior + paid, "{case}");
        if automatic {
            assert_eq!(history.len(), before + 1, "{case}");
            let last = history.last().expect("an entry");
            assert_eq!(last.kind, ChangeKind::Automatic, "{case}");
            assert_eq!(last.actor, SYSTEM_ACTOR, "{case}");
            assert_eq!(last.from.as_ref().map(Stage::as_str), Some(from), "{case}");
            assert_eq!(last.to.as_str(), to, "{case}");
        } else {
            assert_eq!(history.len(), before, "{case}: no move, no entry");
        }
    }
    Ok(())
}

#[test]
fn paying_a_pending_order_counts_as_the_first_order() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let (id, order) = db.write(|tx| -> crmdb::Result<_> {
        let id = tx.insert(Contact::default())?;
        let order = tx.insert(Order {
            status: OrderStatus::Pending,
            ..paid_order(id, t0())
        })?;
        Ok((id, order))
    })?;
    assert_eq!(db.read(|r| Ok(r.get(id)?.stage))?.as_str(), "prospect");
    db.write(|tx| tx.modify(order, |o| o.status = OrderStatus::Paid))?;
    db.read(|r| {
        assert_eq!(r.get(id)?.stage.as_str(), "new_customer");
        assert_eq!(
            r.history(id)?.last().map(|h| h.kind),
            Some(ChangeKind::Automatic)
        );
        Ok(())
    })?;
    // Two paid orders in one transaction: first, then repeat.
    let other = db.write(|tx| -> crmdb::Result<_> {
        let other = tx.insert(Contact::default())?;
        tx.insert(paid_order(other, t0()))?;
        tx.insert(paid_order(other, t0()))?;
        Ok(other)
    })?;
    db.read(|r| {
        assert_eq!(r.get(other)?.stage.as_str(), "active");
        let kinds: Vec<_> = r.history(other)?.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Create,
                ChangeKind::Automatic,
                ChangeKind::Automatic
            ]
        );
        Ok(())
    })
}

#[test]
fn automatic_and_sweep_entries_say_why() -> crmdb::Result<()> {
    // `StageChange::reason` is documented as "why, for regress, reopen, automatic moves
    // and sweeps".
    let (db, _clock) = clocked()?;
    let id = db.write(|tx| -> crmdb::Result<_> {
        let id = tx.insert(Contact::default())?;
        tx.insert(paid_order(id, t0()))?;
        tx.insert(paid_order(id, t0()))?;
        Ok(id)
    })?;
    db.write(|tx| tx.sweep(t0().plus_days(100)))?;
    let history = db.read(|r| r.history(id))?;
    let reasons: Vec<_> = history
        .iter()
        .filter(|h| matches!(h.kind, ChangeKind::Automatic | ChangeKind::Sweep))
        .map(|h| (h.kind, h.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 3, "{history:?}");
    for (kind, reason) in reasons {
        assert!(
            reason.is_some_and(|r| !r.trim().is_empty()),
            "{kind:?} entry without a reason"
        );
    }
    Ok(())
}

#[test]
fn refused_automatic_move_refuses_its_cause() -> crmdb::Result<()> {
    // A machine where new customers need a custom field: the first order of a contact
    // without it would make an illegal automatic move.
    let mut machines = Machines::default();
    machines.contact.guards.push((
        Stage::new("new_customer"),
        Guard::CustomFieldSet("consent".into()),
    ));
    let db = Database::builder().machines(machines).in_memory()?;
    let id = db.write(|tx| tx.insert(Contact::default()))?;
    let result = db.write(|tx| tx.insert(paid_order(id, t0())));
    assert!(
        matches!(
            &result,
            Err(Error::IllegalTransition {
                kind: EntityKind::Contact,
                rule: Rule::Guard(Guard::CustomFieldSet(_)),
                ..
            })
        ),
        "{result:?}"
    );
    db.read(|r| {
        assert!(
            r.live(EntityKind::Order)?.is_empty(),
            "the order is refused too"
        );
        assert_eq!(r.get(id)?.stats.order_count, 0);
        assert_eq!(r.get(id)?.stage.as_str(), "prospect");
        Ok(())
    })
}
