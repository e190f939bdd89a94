//! Stage history records every accepted move.

use crmdb::{ChangeKind, Contact, Deal, Money, SYSTEM_ACTOR, Snapshot, Stage, Timestamp};

use crate::support::{clocked, t0};

#[test]
fn history_records_every_accepted_move() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let at = |days: i64| t0().plus_days(days);
    let id = db.write(|tx| {
        tx.set_actor("alice");
        tx.insert(Contact::default())
    })?;
    clock.advance_days(1);
    db.write(|tx| {
        tx.set_actor("alice");
        tx.move_stage(id, "responder")
    })?;
    clock.advance_days(1);
    db.write(|tx| tx.move_stage(id, "new_customer"))?;
    clock.advance_days(1);
    // A refused move leaves no trace, even in a transaction that commits.
    db.write(|tx| {
        tx.set_actor("bob");
        assert!(tx.move_stage(id, "prospect").is_err());
        tx.regress(id, "responder", "duplicate order")
    })?;
    clock.advance_days(7);
    db.write(|tx| tx.move_stage(id, "active"))?;

    let history = db.read(|r| r.history(id))?;
    let got: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.from.as_ref().map(|s| s.as_str().to_owned()),
                h.to.as_str().to_owned(),
                h.at,
                h.actor.as_str(),
                h.reason.as_deref(),
                h.kind,
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        got,
        vec![
            (
                None,
                "prospect".into(),
                at(0),
                "alice",
                None,
                ChangeKind::Create
            ),
            (
                s("prospect"),
                "responder".into(),
                at(1),
                "alice",
                None,
                ChangeKind::Move
            ),
            (
                s("responder"),
                "new_customer".into(),
                at(2),
                SYSTEM_ACTOR,
                None,
                ChangeKind::Move
            ),
            (
                s("new_customer"),
                "responder".into(),
                at(3),
                "bob",
                Some("duplicate order"),
                ChangeKind::Regress
            ),
            (
                s("responder"),
                "active".into(),
                at(10),
                SYSTEM_ACTOR,
                None,
                ChangeKind::Move
            ),
        ]
    );

    // The stage as of any time.
    let cases = [
        (at(0).plus_days(-1), None),
        (Timestamp(at(0).0 - 1), None),
        (at(0), Some("prospect")),
        (Timestamp(at(1).0 - 1), Some("prospect")),
        (at(1), Some("responder")),
        (Timestamp(at(2).0 + 3600), Some("new_customer")),
        (at(5), Some("responder")),
        (at(10), Some("active")),
        (at(400), Some("active")),
    ];
    db.read(|r| {
        for (when, stage) in cases {
            let got = r.stage_at(id, when)?;
            assert_eq!(got.as_ref().map(Stage::as_str), stage, "at {when}");
        }
        Ok(())
    })?;

    // Deal histories too, through a win and a reopen.
    let deal = db.write(|tx| -> crmdb::Result<_> {
        tx.set_actor("carol");
        let deal = tx.insert(Deal {
            amount: Money::from_major(100),
            close_date: Some(tx.now()),
            ..Default::default()
        })?;
        tx.move_stage(deal, "won")?;
        Ok(deal)
    })?;
    clock.advance_days(1);
    db.write(|tx| {
        tx.set_actor("dave");
        tx.reopen(deal, "negotiation", "contract cancelled")
    })?;
    db.read(|r| {
        let h = r.history(deal)?;
        let kinds: Vec<_> = h.iter().map(|c| (c.kind, c.actor.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Create, "carol"),
                (ChangeKind::Move, "carol"),
                (ChangeKind::Reopen, "dave")
            ]
        );
        assert_eq!(h[2].reason.as_deref(), Some("contract cancelled"));
        assert_eq!(
            r.stage_at(deal, at(10))?.as_ref().map(Stage::as_str),
            Some("won")
        );
        assert_eq!(
            r.stage_at(deal, at(11))?.as_ref().map(Stage::as_str),
            Some("negotiation")
        );
        Ok(())
    })
}
