//! Watched segments: their members kept in the commits that change them, entered and
//! left events that replay to the segment's evaluation, nested segments, time windows
//! refreshed as time passes, and the RFM refresh.

use crmdb::feed::{Cause, Change};
use crmdb::{
    Contact, ContactId, Database, EntityKind, Error, Query, RoaringBitmap, SavedSegment, Snapshot,
    Timestamp,
};
use proptest::prelude::*;

use crate::support::{all_batches, clocked, contact, inbound, paid_order, replay_members};

fn dynamic(text: &str) -> SavedSegment {
    SavedSegment::Dynamic {
        kind: EntityKind::Contact,
        query: Query::parse(text).expect("a valid query"),
    }
}

fn ids(rows: &[ContactId]) -> RoaringBitmap {
    rows.iter().map(|id| id.get()).collect()
}

/// Every watched segment's members equal its evaluation and the replay of its events.
fn check_watched(db: &Database) -> crmdb::Result<()> {
    let replayed = replay_members(&all_batches(db, 5)?);
    db.read(|r| {
        for (segment, kind) in r.watched()? {
            let members = r.members(&segment)?;
            assert_eq!(
                members,
                r.ids(kind, &Query::segment(&segment))?,
                "{segment}: evaluation"
            );
            assert_eq!(
                replayed.get(&segment).cloned().unwrap_or_default(),
                members,
                "{segment}: replay"
            );
        }
        Ok(())
    })
}

/// A membership event: entered or left, the segment, the ids, the cause.
type MembershipEvent = (&'static str, String, Vec<u32>, Cause);

/// Every membership event after `after`.
fn membership_events(db: &Database, after: u64) -> crmdb::Result<Vec<MembershipEvent>> {
    let mut out = Vec::new();
    for batch in db.changes(after, 1000)? {
        for event in batch.events {
            match event.change {
                Change::Entered { segment, ids, .. } => {
                    out.push(("entered", segment, ids.iter().collect(), event.cause));
                }
                Change::Left { segment, ids, .. } => {
                    out.push(("left", segment, ids.iter().collect(), event.cause));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[test]
fn watched_segments_say_who_entered_and_who_left_in_the_causing_commit() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let people = db.write(|tx| -> crmdb::Result<Vec<ContactId>> {
        let mut people = Vec::new();
        for i in 0..4 {
            people.push(tx.insert(contact(&format!("p{i}"), &format!("p{i}@example.com")))?);
        }
        tx.add_tag(people[0], "vip")?;
        tx.save_segment("vips", dynamic("tag:vip"))?;
        tx.save_segment("vip_buyers", dynamic("segment:vips AND order_count >= 1"))?;
        Ok(people)
    })?;
    let start = db.read(|r| r.sequence())?;
    assert_eq!(db.write(|tx| tx.watch("vips"))?, 1);
    assert_eq!(db.write(|tx| tx.watch("vip_buyers"))?, 0);
    assert_eq!(
        db.write(|tx| tx.watch("vips"))?,
        1,
        "watching again changes nothing"
    );
    assert_eq!(db.read(|r| r.sequence())?, start + 2);
    check_watched(&db)?;

    db.write(|tx| tx.add_tag(people[1], "vip"))?;
    db.write(|tx| tx.insert(paid_order(people[1], tx.now())).map(drop))?;
    db.write(|tx| tx.insert(paid_order(people[2], tx.now())).map(drop))?; // not a vip
    db.write(|tx| tx.soft_delete(people[0]))?;
    db.write(|tx| tx.restore(people[0]))?;
    db.write(|tx| tx.remove_tag(people[1], "vip"))?;
    check_watched(&db)?;
    let events = membership_events(&db, start)?;
    let plain: Vec<(&str, &str, Vec<u32>)> = events
        .iter()
        .map(|(what, segment, ids, _)| (*what, segment.as_str(), ids.clone()))
        .collect();
    let [p0, p1] = [people[0].get(), people[1].get()];
    assert_eq!(
        plain,
        [
            ("entered", "vips", vec![p0]),
            ("entered", "vips", vec![p1]),
            ("entered", "vip_buyers", vec![p1]),
            ("left", "vips", vec![p0]),
            ("entered", "vips", vec![p0]),
            // Within a commit, segments in name order.
            ("left", "vip_buyers", vec![p1]),
            ("left", "vips", vec![p1]),
        ]
    );
    assert!(events.iter().all(|e| e.3 == Cause::Write));

    // A nested segment that a watched one reads cannot be deleted; redefining it
    // re-evaluates the watched ones in full.
    assert!(matches!(
        db.write(|tx| tx.delete_segment("vips")),
        Err(Error::Watched(_))
    ));
    let before = db.read(|r| r.sequence())?;
    db.write(|tx| tx.save_segment("vips", dynamic("order_count >= 1")))?;
    check_watched(&db)?;
    assert_eq!(
        db.read(|r| r.members("vip_buyers"))?,
        ids(&people[1..3]),
        "every buyer, now"
    );
    assert!(!membership_events(&db, before)?.is_empty());

    // Unwatching forgets the members.
    assert!(db.write(|tx| tx.unwatch("vip_buyers"))?);
    assert!(!db.write(|tx| tx.unwatch("vip_buyers"))?);
    assert!(matches!(
        db.read(|r| r.members("vip_buyers")),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.read(|r| r.members("nowhere")),
        Err(Error::UnknownSegment(_))
    ));
    check_watched(&db)?;
    db.write(|tx| tx.delete_segment("vip_buyers").map(drop))?;
    Ok(())
}

#[test]
fn time_windows_change_as_time_passes_and_a_refresh_says_so() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let (ada, bob) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        let bob = tx.insert(contact("Bob", "bob@example.com"))?;
        tx.insert(inbound(ada, tx.now()))?;
        tx.save_segment("engaged", dynamic("last_activity within 30d"))?;
        tx.watch("engaged")?;
        Ok((ada, bob))
    })?;
    assert_eq!(db.read(|r| r.members("engaged"))?, ids(&[ada]));
    clock.advance_days(20);
    db.write(|tx| tx.insert(inbound(bob, tx.now())).map(drop))?;
    assert_eq!(db.read(|r| r.members("engaged"))?, ids(&[ada, bob]));

    clock.advance_days(11); // Ada's activity is now 31 days old
    let mark = db.read(|r| r.sequence())?;
    let now = db.now();
    let refreshed = db.write(|tx| tx.refresh_watched(now))?;
    assert_eq!((refreshed[0].entered, refreshed[0].left), (0, 1));
    let events = membership_events(&db, mark)?;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].0, events[0].2.clone(), &events[0].3),
        ("left", vec![ada.get()], &Cause::Refresh)
    );
    check_watched(&db)?;
    // A refresh that changes nothing takes no sequence.
    let mark = db.read(|r| r.sequence())?;
    db.write(|tx| tx.refresh_watched(now))?;
    assert_eq!(db.read(|r| r.sequence())?, mark);

    // The sweep refreshes at its own `now`.
    clock.advance_days(60);
    db.write(|tx| tx.sweep(Timestamp(db.now().0)).map(drop))?;
    assert!(db.read(|r| r.members("engaged"))?.is_empty());
    check_watched(&db)
}

#[test]
fn static_segments_and_the_rfm_refresh_keep_members_exact() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let people = db.write(|tx| -> crmdb::Result<Vec<ContactId>> {
        let mut people = Vec::new();
        for i in 0..10 {
            let id = tx.insert(contact(&format!("p{i}"), &format!("p{i}@example.com")))?;
            for _ in 0..=i {
                tx.insert(paid_order(id, tx.now()))?;
            }
            people.push(id);
        }
        tx.save_segment("picked", SavedSegment::of_ids(people[..3].iter().copied()))?;
        tx.save_segment("top", dynamic("tier:top20"))?;
        tx.watch("picked")?;
        tx.watch("top")?;
        Ok(people)
    })?;
    assert!(db.read(|r| r.members("top"))?.is_empty(), "no refresh yet");
    let now = db.now();
    db.write(|tx| tx.refresh_rfm(now).map(drop))?;
    assert_eq!(db.read(|r| r.members("top"))?, ids(&people[8..]));
    db.write(|tx| tx.soft_delete(people[1]))?;
    assert_eq!(
        db.read(|r| r.members("picked"))?,
        ids(&[people[0], people[2]])
    );
    check_watched(&db)
}

#[derive(Debug, Clone)]
enum Op {
    Tag(usize, bool),
    Order(usize),
    Delete(usize),
    Restore(usize),
    Stage(usize),
    Insert,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..8usize, any::<bool>()).prop_map(|(i, on)| Op::Tag(i, on)),
        (0..8usize).prop_map(Op::Order),
        (0..8usize).prop_map(Op::Delete),
        (0..8usize).prop_map(Op::Restore),
        (0..8usize).prop_map(Op::Stage),
        Just(Op::Insert),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After any history, every watched segment's members are its evaluation, and
    /// replaying its entered and left events from empty gives them.
    #[test]
    fn membership_replays_to_evaluation(ops in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..12)) {
        let db = Database::in_memory().expect("a database");
        db.write(|tx| -> crmdb::Result<()> {
            for i in 0..4 {
                tx.insert(contact(&format!("p{i}"), &format!("p{i}@example.com")))?;
            }
            tx.save_segment("vips", dynamic("tag:vip"))?;
            tx.save_segment("buyers", dynamic("order_count >= 1 AND NOT tag:gone"))?;
            tx.save_segment("either", dynamic("segment:vips OR stage:active"))?;
            tx.save_segment("neither", dynamic("NOT segment:either"))?;
            for name in ["vips", "buyers", "either", "neither"] {
                tx.watch(name)?;
            }
            Ok(())
        }).expect("setup");
        for commit in ops {
            db.write(|tx| -> crmdb::Result<()> {
                let rows: Vec<ContactId> = tx.records::<Contact>()?.into_iter().map(|(id, _)| id).collect();
                for op in &commit {
                    let pick = |i: usize| rows[i % rows.len()];
                    // Refusals (a deleted record, an illegal move) apply nothing.
                    let _ = match op {
                        Op::Tag(i, true) => tx.add_tag(pick(*i), if i % 2 == 0 { "vip" } else { "gone" }),
                        Op::Tag(i, false) => tx.remove_tag(pick(*i), if i % 2 == 0 { "vip" } else { "gone" }),
                        Op::Order(i) => { let now = tx.now(); tx.insert(paid_order(pick(*i), now)).map(drop) }
                        Op::Delete(i) => tx.soft_delete(pick(*i)),
                        Op::Restore(i) => tx.restore(pick(*i)),
                        Op::Stage(i) => tx.move_stage(pick(*i), "active"),
                        Op::Insert => tx.insert(Contact::default()).map(drop),
                    };
                }
                Ok(())
            }).expect("a commit");
            check_watched(&db).expect("watched segments agree");
        }
    }
}
