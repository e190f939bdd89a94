//! A copy of the fixture takes new writes through every stored path.

use crmdb::{
    ChangeKind, Contact, ContactId, Database, DealId, EntityKind, Error, Money, OwnerId, Query,
    Rule, Snapshot, Stage, Subject, Task, TaskId,
};

use crate::support::{
    Fixture, Scratch, TestResult, change, each_fixture, open_copy, rows, strs, utc,
};

/// The copy takes writes through every path the fixture's stored state feeds:
/// assignment round robin, natural keys, tags, both machines, the recycle bin, static
/// and dynamic segments, and row ids that continue past the purged ones.
#[test]
fn the_copy_takes_new_writes() -> TestResult {
    each_fixture(the_copy_takes_new_writes_in)
}

fn the_copy_takes_new_writes_in(fixture: Fixture) -> TestResult {
    let committed = std::fs::read(fixture.path())?;
    let scratch = Scratch::new("writes");
    let copy = scratch.copy_of_fixture(fixture);
    let (mut db, _clock) = open_copy(&copy)?;
    assert!(
        db.check_integrity()?,
        "redb integrity of the copy as committed"
    );
    drop(db);
    // Opening upgraded the file to the current format in place.
    {
        use redb::ReadableDatabase as _;
        let raw = redb::ReadOnlyDatabase::open(&copy)?;
        let txn = raw.begin_read()?;
        let meta = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))?;
        let format = meta.get("format")?.ok_or("no format entry")?;
        assert_eq!(format.value(), [2, 2], "the format entry after opening");
    }
    let (db, clock) = open_copy(&copy)?;

    clock.set(utc(2026, 5, 4, 9, 0));
    let (lead, task) = db.write(|tx| -> crmdb::Result<_> {
        tx.set_actor("qa");
        // No owner is in guangzhou, so the east team's round robin picks: it last gave
        // Sun Li to Wang Fang (0), so Zhang Wei (1) is next.
        let lead = tx.insert(Contact {
            name: "Lin Tao".into(),
            email: Some("lin.tao@example.com".into()),
            region: Some("guangzhou".into()),
            tags: strs(&["vip"]),
            lifetime_value: Money(100_000),
            ..Default::default()
        })?;
        let duplicate = tx.insert(Contact {
            name: "Li Lei again".into(),
            email: Some(" LI.LEI@example.com".into()),
            ..Default::default()
        });
        assert!(
            matches!(duplicate, Err(Error::Duplicate { existing: 0, .. })),
            "{duplicate:?}"
        );
        let task = tx.insert(Task {
            title: "Welcome call".into(),
            assignee: Some(OwnerId::new(1)),
            related: Some(Subject::Contact(lead)),
            ..Default::default()
        })?;
        tx.add_tag(ContactId::new(2), "vip")?;
        tx.move_stage(ContactId::new(2), "responder")?;
        let backward = tx.move_stage(ContactId::new(0), "prospect");
        assert!(
            matches!(
                backward,
                Err(Error::IllegalTransition {
                    rule: Rule::BackwardNeedsRegress,
                    ..
                })
            ),
            "{backward:?}"
        );
        // The renewal pipeline's guard reads the deal's custom field.
        tx.move_stage(DealId::new(2), "renewed")?;
        tx.restore(ContactId::new(5))?;
        Ok((lead, task))
    })?;
    // Ids are never reused: the purged contact 4 and task 3 stay gaps.
    assert_eq!(lead, ContactId::new(8));
    assert_eq!(task, TaskId::new(4));

    let check = |db: &Database| -> crmdb::Result<()> {
        db.read(|r| {
            let lead: Contact = r.get(ContactId::new(8))?;
            assert_eq!(lead.owner, Some(OwnerId::new(1)));
            assert_eq!(lead.assigned_by.as_deref(), Some("east_round_robin"));
            assert_eq!(lead.stage, Stage::new("prospect"));
            assert_eq!(lead.created_at, Some(utc(2026, 5, 4, 9, 0)));
            assert_eq!(
                r.contact_by_email("lin.tao@example.com")?,
                Some(ContactId::new(8))
            );
            assert_eq!(r.find(ContactId::new(4))?, None);
            assert_eq!(r.find(TaskId::new(3))?, None);
            assert_eq!(r.get(TaskId::new(4))?.title, "Welcome call");
            assert_eq!(
                rows(&r.live(EntityKind::Contact)?),
                [0, 1, 2, 3, 5, 6, 7, 8]
            );
            assert!(r.deleted(EntityKind::Contact)?.is_empty());
            assert_eq!(rows(&r.live(EntityKind::Task)?), [0, 1, 2, 4]);

            let ids = |kind, text: &str| -> crmdb::Result<Vec<u32>> {
                Ok(rows(&r.ids(kind, &Query::parse(text)?)?))
            };
            assert_eq!(ids(EntityKind::Contact, "tag:vip")?, [0, 1, 2, 5, 8]);
            assert_eq!(ids(EntityKind::Contact, "stage:responder")?, [2]);
            assert_eq!(ids(EntityKind::Contact, "segment:vip_list")?, [0, 1, 5]);
            assert_eq!(
                ids(EntityKind::Contact, "segment:high_value")?,
                [0, 1, 5, 8]
            );
            assert_eq!(
                ids(EntityKind::Contact, "segment:high_value_shanghai")?,
                [0]
            );
            assert_eq!(ids(EntityKind::Deal, "segment:open_deals")?, [] as [u32; 0]);
            assert_eq!(ids(EntityKind::Deal, "stage:renewed")?, [2]);
            assert_eq!(ids(EntityKind::Contact, "owner = 1")?, [1, 5, 8]);

            let tags: Vec<(String, u64)> = r
                .tags(EntityKind::Contact)?
                .into_iter()
                .map(|t| (t.tag, t.count))
                .collect();
            let tag = |t: &str, n: u64| (t.to_owned(), n);
            assert_eq!(
                tags,
                [tag("vip", 5), tag("trade_show", 3), tag("newsletter", 2)]
            );

            let moved = |from: &str, to: &str| {
                change(
                    Some(from),
                    to,
                    utc(2026, 5, 4, 9, 0),
                    "qa",
                    None,
                    ChangeKind::Move,
                )
            };
            let history = r.history(ContactId::new(2))?;
            assert_eq!(history.len(), 2);
            assert_eq!(history[1], moved("prospect", "responder"));
            let history = r.history(DealId::new(2))?;
            assert_eq!(history.len(), 3);
            assert_eq!(history[2], moved("quoted", "renewed"));
            Ok(())
        })
    };
    check(&db)?;
    // And the writes are durable in the new file.
    drop(db);
    let (mut db, _clock) = open_copy(&copy)?;
    check(&db)?;
    assert!(db.check_integrity()?, "redb integrity after the writes");
    drop(db);

    assert!(
        std::fs::read(fixture.path())? == committed,
        "the committed fixture changed during the test"
    );
    Ok(())
}
