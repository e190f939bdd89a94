//! The inactivity sweep and its boundary.

use crmdb::{
    Activity, ActivityKind, ChangeKind, Contact, ContactId, Direction, EntityKind, Query,
    SYSTEM_ACTOR, Snapshot, Stage, Subject, Timestamp, WriteTransaction,
};

use crate::support::{clocked, paid_order, t0};

#[test]
fn sweep_moves_inactive_contacts() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let day = |n: i64| t0().plus_days(n);
    // Created at t0 unless said otherwise.
    let (quiet, called, dormant, prospect, buyer, deleted) =
        db.write(|tx| -> crmdb::Result<_> {
            let mk = |tx: &mut WriteTransaction, stage: &str| {
                tx.insert(Contact {
                    stage: Stage::new(stage),
                    ..Default::default()
                })
            };
            let quiet = mk(tx, "active")?;
            let called = mk(tx, "active")?;
            let dormant = mk(tx, "dormant")?;
            let prospect = mk(tx, "prospect")?;
            let buyer = mk(tx, "active")?;
            let deleted = mk(tx, "active")?;
            tx.insert(Activity::new(
                ActivityKind::Call,
                Direction::Outbound,
                Subject::Contact(called),
                day(60),
            ))?;
            tx.insert(paid_order(buyer, day(100)))?;
            tx.soft_delete(deleted)?;
            Ok((quiet, called, dormant, prospect, buyer, deleted))
        })?;
    let stage_of = |id: ContactId| db.read(|r| Ok(r.get(id)?.stage.as_str().to_owned()));
    let moves = |now| -> crmdb::Result<Vec<(u32, String, String)>> {
        db.write(|tx| tx.sweep(now)).map(|m| {
            m.into_iter()
                .map(|m| {
                    (
                        m.contact.get(),
                        m.from.as_str().into(),
                        m.to.as_str().into(),
                    )
                })
                .collect()
        })
    };
    let mv = |id: ContactId, from: &str, to: &str| (id.get(), from.to_owned(), to.to_owned());

    assert_eq!(moves(day(89))?, vec![]);
    assert_eq!(moves(day(91))?, vec![mv(quiet, "active", "dormant")]);
    assert_eq!(
        moves(day(91))?,
        vec![],
        "a second sweep at the same time does nothing"
    );
    clock.set(day(181));
    assert_eq!(
        moves(day(181))?,
        vec![
            mv(quiet, "dormant", "churned"),
            mv(called, "active", "dormant"),
            mv(dormant, "dormant", "churned"),
        ]
    );
    assert_eq!(stage_of(prospect)?, "prospect");
    assert_eq!(stage_of(buyer)?, "active", "ordered 81 days before");
    assert_eq!(stage_of(deleted)?, "active", "the recycle bin is not swept");
    db.read(|r| {
        let h = r.history(quiet)?;
        let last = h.last().expect("entries");
        assert_eq!(
            (last.kind, last.actor.as_str()),
            (ChangeKind::Sweep, SYSTEM_ACTOR)
        );
        assert_eq!(last.at, day(181));
        assert_eq!(r.count(EntityKind::Contact, &Query::stage("churned"))?, 2);
        assert_eq!(r.count(EntityKind::Contact, &Query::stage("dormant"))?, 1);
        Ok(())
    })?;
    // A swept contact that orders again is won back.
    db.write(|tx| tx.insert(paid_order(quiet, day(182))).map(drop))?;
    assert_eq!(stage_of(quiet)?, "active");
    Ok(())
}

#[test]
fn sweep_boundary_is_more_than_after_days() -> crmdb::Result<()> {
    // "a contact ... whose latest activity, order and creation are all more than
    // `after_days` before `now`": exactly 90 days is not more than 90.
    let (db, _clock) = clocked()?;
    let id = db.write(|tx| {
        tx.insert(Contact {
            stage: Stage::new("active"),
            ..Default::default()
        })
    })?;
    let moved = db.write(|tx| tx.sweep(t0().plus_days(90)))?;
    assert_eq!(moved, vec![], "exactly 90 days after creation");
    let moved = db.write(|tx| tx.sweep(Timestamp(t0().plus_days(90).0 + 1)))?;
    assert_eq!(
        moved,
        vec![crmdb::SweepMove {
            contact: id,
            from: Stage::new("active"),
            to: Stage::new("dormant"),
        }]
    );
    Ok(())
}
