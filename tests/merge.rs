//! Merging contacts and undoing it: related records re-pointed, values by policy, the
//! further stage, a redirect, the lineage, typed refusals, change events; undoing
//! restores the tables byte for byte when nothing was written in between, and keeps
//! the writes made in between.

use std::path::Path;
use std::sync::Arc;

use crmdb::feed::{Cause, Change};
use crmdb::identity::{Consent, ConsentStatus, DEFAULT_CHANNELS, FieldRule, MergePolicy};
use crmdb::{
    Account, Activity, ActivityKind, Builder, ChangeKind, Contact, ContactId, Database, Deal,
    DealId, Direction, EntityKind, Error, ManualClock, Money, Order, OrderId, OrderStatus, Owner,
    Query, RecordId, Snapshot, Subject, Task, TaskId, Timestamp, stages,
};
use proptest::prelude::*;

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

#[path = "support/dump.rs"]
mod dump;
use dump::{Tables, dump};

const T0: Timestamp = Timestamp(1_700_000_000);

fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.clock(Arc::new(ManualClock::new(T0)));
    builder
}

fn contact(name: &str, email: Option<&str>, tags: &[&str]) -> Contact {
    Contact {
        name: name.into(),
        email: email.map(Into::into),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

fn paid(contact: ContactId, total: i64) -> Order {
    Order {
        contact: Some(contact),
        at: T0,
        status: OrderStatus::Paid,
        total: Money(total),
        ..Default::default()
    }
}

/// Two contacts of one person and their related records.
struct World {
    survivor: ContactId,
    other: ContactId,
    orders: Vec<OrderId>,
    deal: DealId,
    shared_deal: DealId,
    task: TaskId,
}

fn world(db: &Database) -> crmdb::Result<World> {
    db.write(|tx| -> crmdb::Result<World> {
        let owner = tx.insert(Owner {
            name: "Ann".into(),
            ..Default::default()
        })?;
        let survivor = tx.insert(Contact {
            phone: None,
            region: Some("shanghai".into()),
            ..contact("Li Lei", Some("li.lei@mail.example"), &["vip"])
        })?;
        let other = tx.insert(Contact {
            phone: Some("+86 138 0013 8000".into()),
            owner: Some(owner),
            stage: stages::contact::ACTIVE.into(),
            ..contact("Li  Lei", Some("lilei@shop.example"), &["web", "vip"])
        })?;
        let orders = vec![
            tx.insert(paid(survivor, 1_000))?,
            tx.insert(paid(other, 2_500))?,
            tx.insert(paid(other, 500))?,
        ];
        tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Inbound,
            Subject::Contact(other),
            T0,
        ))?;
        let deal = tx.insert(Deal {
            name: "renewal".into(),
            contact: Some(other),
            participants: vec![other],
            ..Default::default()
        })?;
        let shared_deal = tx.insert(Deal {
            name: "shared".into(),
            contact: Some(survivor),
            participants: vec![survivor, other],
            ..Default::default()
        })?;
        let task = tx.insert(Task {
            title: "call back".into(),
            related: Some(Subject::Contact(other)),
            ..Default::default()
        })?;
        Ok(World {
            survivor,
            other,
            orders,
            deal,
            shared_deal,
            task,
        })
    })
}

#[test]
fn a_merge_moves_everything_to_the_survivor_and_leaves_a_redirect() -> crmdb::Result<()> {
    let db = builder().in_memory()?;
    let w = world(&db)?;
    let before = db.read(|r| r.sequence())?;
    let merge = db.write(|tx| tx.merge(w.survivor, w.other, &MergePolicy::survivor_wins()))?;
    assert_eq!(merge, 1);

    db.read(|r| {
        let s = r.get(w.survivor)?;
        assert_eq!(
            s.email.as_deref(),
            Some("li.lei@mail.example"),
            "survivor wins"
        );
        assert_eq!(s.phone.as_deref(), Some("+86 138 0013 8000"), "gap filled");
        assert!(s.owner.is_some(), "gap filled");
        assert_eq!(
            s.tags.iter().map(String::as_str).collect::<Vec<_>>(),
            ["vip", "web"]
        );
        assert_eq!(s.stats.order_count, 3);
        assert_eq!(s.stats.total_spent, Money(4_000));
        assert_eq!(s.stats.activity_count, 1);
        assert_eq!(
            s.stage.as_str(),
            stages::contact::ACTIVE,
            "the further stage"
        );
        let last = r.history(w.survivor)?.pop().expect("history");
        assert_eq!(last.kind, ChangeKind::Merge);
        for order in &w.orders {
            assert_eq!(r.get(*order)?.contact, Some(w.survivor));
        }
        assert_eq!(r.get(w.deal)?.contact, Some(w.survivor));
        assert_eq!(r.get(w.deal)?.participants, vec![w.survivor]);
        assert_eq!(
            r.get(w.shared_deal)?.participants,
            vec![w.survivor],
            "not listed twice"
        );
        assert_eq!(r.get(w.task)?.related, Some(Subject::Contact(w.survivor)));

        let o = r.get(w.other)?;
        assert!(o.deleted_at.is_some(), "the other is in the recycle bin");
        assert_eq!(r.resolve(w.other)?, w.survivor);
        assert_eq!(r.contact_by_email("LiLei@shop.example")?, Some(w.survivor));
        let query = Query::parse("tag:web")?;
        assert_eq!(
            r.ids(EntityKind::Contact, &query)?
                .iter()
                .collect::<Vec<_>>(),
            [w.survivor.row()]
        );

        let lineage = r.lineage(merge)?;
        assert_eq!(
            (lineage.survivor, lineage.other),
            (w.survivor.row(), w.other.row())
        );
        assert_eq!(
            lineage.other_before.email.as_deref(),
            Some("lilei@shop.example")
        );
        assert!(lineage.fields_taken.contains(&"phone".to_owned()));
        assert_eq!(lineage.tags_added.len(), 1);
        // Two orders, the activity, two deals, the task.
        assert_eq!(lineage.moved.len(), 6);
        assert_eq!(r.merges()?.len(), 1);
        Ok(())
    })?;

    // The events of the merge.
    let batches = db.changes(before, 10)?;
    assert_eq!(batches.len(), 1);
    let events = &batches[0].events;
    assert!(events.iter().any(|e| matches!(
        e.change,
        Change::Merged { survivor, other, merge: 1, .. }
            if survivor == w.survivor.row() && other == w.other.row()
    )));
    assert!(
        events
            .iter()
            .filter(|e| matches!(e.change, Change::Updated { .. } | Change::Deleted { .. }))
            .all(|e| e.cause == Cause::Merge { merge: 1 })
    );
    Ok(())
}

#[test]
fn merges_are_refused_with_typed_errors() -> crmdb::Result<()> {
    let db = builder().in_memory()?;
    let w = world(&db)?;
    let third = db.write(|tx| tx.insert(contact("Han Mei", None, &[])))?;
    let gone = db.write(|tx| {
        let id = tx.insert(contact("Gone", None, &[]))?;
        tx.soft_delete(id)?;
        Ok::<_, Error>(id)
    })?;
    let policy = MergePolicy::survivor_wins();
    let err = db
        .write(|tx| tx.merge(w.survivor, w.survivor, &policy))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = db
        .write(|tx| tx.merge(w.survivor, gone, &policy))
        .unwrap_err();
    assert!(matches!(err, Error::Deleted { .. }), "{err}");
    let err = db
        .write(|tx| tx.merge(w.survivor, ContactId::new(999), &policy))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let merge = db.write(|tx| tx.merge(w.survivor, w.other, &policy))?;
    let merged = |err: Error| {
        matches!(err, Error::Merged { id, into, merge: m, .. }
            if id == w.other.row() && into == w.survivor.row() && m == merge)
    };
    assert!(merged(
        db.write(|tx| tx.merge(third, w.other, &policy))
            .unwrap_err()
    ));
    assert!(merged(
        db.write(|tx| tx.merge(w.other, third, &policy))
            .unwrap_err()
    ));
    assert!(merged(db.write(|tx| tx.add_tag(w.other, "x")).unwrap_err()));
    assert!(merged(db.write(|tx| tx.restore(w.other)).unwrap_err()));
    assert!(merged(db.write(|tx| tx.purge(w.other)).unwrap_err()));
    let sequence = db.read(|r| r.sequence())?;
    let err = db.write(|tx| tx.unmerge(merge + 1)).unwrap_err();
    assert!(matches!(err, Error::UnknownMerge(2)), "{err}");
    assert_eq!(
        db.read(|r| r.sequence())?,
        sequence,
        "refusals write nothing"
    );

    // A later merge of the survivor blocks undoing the first until it is undone.
    let later = db.write(|tx| tx.merge(third, w.survivor, &policy))?;
    let err = db.write(|tx| tx.unmerge(merge)).unwrap_err();
    assert!(
        matches!(&err, Error::UnmergeConflict { merge: m, reason } if *m == merge && reason.contains("merge 2")),
        "{err}"
    );
    assert_eq!(db.read(|r| r.resolve(w.other))?, third, "redirects chain");
    db.write(|tx| tx.unmerge(later))?;
    db.write(|tx| tx.unmerge(merge))?;
    let err = db.write(|tx| tx.unmerge(merge)).unwrap_err();
    assert!(matches!(err, Error::UnmergeConflict { .. }), "{err}");
    assert!(db.read(|r| r.lineage(merge))?.undone.is_some());
    Ok(())
}

#[test]
fn policies_pick_values_and_unmerge_keeps_later_writes() -> crmdb::Result<()> {
    let clock = Arc::new(ManualClock::new(T0));
    let db = Builder::new().clock(clock.clone()).in_memory()?;
    let w = world(&db)?;
    clock.set(Timestamp(T0.0 + 60));
    db.write(|tx| tx.modify(w.other, |c| c.region = Some("beijing".into())))?;
    let policy = MergePolicy::newest_non_empty().with("email", FieldRule::Other);
    let merge = db.write(|tx| tx.merge(w.survivor, w.other, &policy))?;
    db.read(|r| {
        let s = r.get(w.survivor)?;
        assert_eq!(s.region.as_deref(), Some("beijing"), "the newer value");
        assert_eq!(
            s.email.as_deref(),
            Some("lilei@shop.example"),
            "the other's, by rule"
        );
        assert_eq!(r.contact_by_email("li.lei@mail.example")?, None);
        assert_eq!(r.contact_by_email("lilei@shop.example")?, Some(w.survivor));
        Ok(())
    })?;

    // Later writes: a tag, a new order on the survivor, one moved order deleted.
    clock.set(Timestamp(T0.0 + 120));
    let new_order = db.write(|tx| {
        tx.add_tag(w.survivor, "later")?;
        tx.soft_delete(w.orders[2])?;
        tx.insert(paid(w.survivor, 7_000))
    })?;
    db.write(|tx| tx.unmerge(merge))?;
    db.read(|r| {
        let s = r.get(w.survivor)?;
        let o = r.get(w.other)?;
        assert!(o.deleted_at.is_none(), "the other is back");
        assert_eq!(o.email.as_deref(), Some("lilei@shop.example"));
        assert_eq!(
            s.email.as_deref(),
            Some("li.lei@mail.example"),
            "its own email back"
        );
        assert_eq!(r.contact_by_email("lilei@shop.example")?, Some(w.other));
        assert!(s.tags.contains("later"), "a later write survives");
        assert!(
            !s.tags.contains("web"),
            "what came only from the other leaves"
        );
        assert!(o.tags.contains("web"));
        assert_eq!(
            r.get(new_order)?.contact,
            Some(w.survivor),
            "not moved by the merge"
        );
        assert_eq!(r.get(w.orders[1])?.contact, Some(w.other));
        assert_eq!(
            r.get(w.orders[2])?.contact,
            Some(w.other),
            "deleted, still moved back"
        );
        assert_eq!(
            r.get(w.shared_deal)?.participants,
            vec![w.survivor, w.other]
        );
        assert_eq!(s.stats.total_spent, Money(8_000));
        assert_eq!(
            o.stats.total_spent,
            Money(2_500),
            "the deleted order counts for nothing"
        );
        assert_eq!(
            s.stage.as_str(),
            stages::contact::NEW_CUSTOMER,
            "its own stage back"
        );
        assert_eq!(
            r.history(w.survivor)?.pop().map(|h| h.kind),
            Some(ChangeKind::Unmerge)
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn unmerge_is_refused_when_the_email_is_taken_since() -> crmdb::Result<()> {
    let db = builder().in_memory()?;
    let w = world(&db)?;
    let merge = db.write(|tx| {
        tx.merge(
            w.survivor,
            w.other,
            &MergePolicy::survivor_wins().with("email", FieldRule::Other),
        )
    })?;
    // The survivor gives up the email it took, and a new contact takes it.
    db.write(|tx| tx.modify(w.survivor, |c| c.email = Some("new@mail.example".into())))?;
    let holder = db.write(|tx| tx.insert(contact("Other", Some("lilei@shop.example"), &[])))?;
    let err = db.write(|tx| tx.unmerge(merge)).unwrap_err();
    assert!(
        matches!(&err, Error::UnmergeConflict { reason, .. } if reason.contains(&format!("contact {}", holder.row()))),
        "{err}"
    );
    Ok(())
}

// ---- the property: merge then unmerge returns the tables to where they were ----

/// The tables a merge and its undoing must leave as they found them: rows, natural
/// keys, bitmap indexes (consent states among them). The stage history keeps the
/// merge's entries, the change log its events, the identity table the lineage and
/// the consent entries of both; the meta table counts merges.
fn restorable(tables: &Tables) -> Tables {
    tables
        .iter()
        .filter(|(name, _)| name.starts_with("rows.") || *name == "unique" || *name == "bitmaps")
        .map(|(name, entries)| (name.clone(), entries.clone()))
        .collect()
}

#[derive(Debug, Clone)]
struct Person {
    email: Option<u8>,
    phone: bool,
    tags: Vec<u8>,
    stage: u8,
    orders: Vec<(u16, bool)>,
    activities: u8,
    unsubscribed: bool,
    consents: Vec<(u8, u8)>,
}

fn person() -> impl Strategy<Value = Person> {
    (
        prop::option::of(0u8..6),
        any::<bool>(),
        prop::collection::vec(0u8..5, 0..3),
        0u8..4,
        prop::collection::vec((1u16..500, any::<bool>()), 0..4),
        0u8..3,
        any::<bool>(),
        prop::collection::vec((0u8..4, 0u8..3), 0..3),
    )
        .prop_map(
            |(email, phone, tags, stage, orders, activities, unsubscribed, consents)| Person {
                email,
                phone,
                tags,
                stage,
                orders,
                activities,
                unsubscribed,
                consents,
            },
        )
}

/// Writes the people, their orders and activities, and deals between them.
fn populate(db: &Database, people: &[Person], deals: &[(usize, usize)]) -> crmdb::Result<()> {
    db.write(|tx| -> crmdb::Result<()> {
        let mut ids = Vec::new();
        for (n, p) in people.iter().enumerate() {
            let stage = [
                stages::contact::PROSPECT,
                stages::contact::RESPONDER,
                stages::contact::ACTIVE,
                stages::contact::DORMANT,
            ][usize::from(p.stage)];
            let id = tx.insert(Contact {
                name: format!("person {n}"),
                // Emails unique per person; `email` picks a domain.
                email: p.email.map(|d| format!("p{n}@d{d}.example")),
                phone: p.phone.then(|| format!("+86 139{n:08}")),
                tags: p.tags.iter().map(|t| format!("t{t}")).collect(),
                stage: stage.into(),
                unsubscribed: p.unsubscribed,
                ..Default::default()
            })?;
            ids.push(id);
            for (channel, status) in &p.consents {
                let status = [
                    ConsentStatus::Granted,
                    ConsentStatus::Denied,
                    ConsentStatus::Unknown,
                ][usize::from(*status)];
                tx.record_consent(
                    id,
                    Consent::new(DEFAULT_CHANNELS[usize::from(*channel)], status),
                )?;
            }
            for (total, is_paid) in &p.orders {
                let mut order = paid(id, i64::from(*total) * 100);
                if !is_paid {
                    order.status = OrderStatus::Pending;
                }
                tx.insert(order)?;
            }
            for _ in 0..p.activities {
                tx.insert(Activity::new(
                    ActivityKind::Email,
                    Direction::Outbound,
                    Subject::Contact(id),
                    T0,
                ))?;
            }
        }
        for (n, (a, b)) in deals.iter().enumerate() {
            let (a, b) = (ids[a % ids.len()], ids[b % ids.len()]);
            let mut participants = vec![a];
            if a != b {
                participants.push(b);
            }
            tx.insert(Deal {
                name: format!("deal {n}"),
                contact: Some(b),
                participants,
                ..Default::default()
            })?;
        }
        tx.insert(Account {
            name: "acme".into(),
            ..Default::default()
        })?;
        Ok(())
    })
}

fn policy(n: u8) -> MergePolicy {
    match n % 3 {
        0 => MergePolicy::survivor_wins(),
        1 => MergePolicy::newest_non_empty(),
        _ => MergePolicy::survivor_wins().with("email", FieldRule::Other),
    }
}

/// Writes to records neither merged contact is, in between.
fn unrelated_writes(db: &Database, third: ContactId) -> crmdb::Result<()> {
    db.write(|tx| -> crmdb::Result<()> {
        tx.add_tag(third, "between")?;
        tx.insert(paid(third, 12_300))?;
        tx.modify(third, |c| c.region = Some("hangzhou".into()))?;
        Ok(())
    })
}

fn run_case(
    dir: &Path,
    people: &[Person],
    deals: &[(usize, usize)],
    pick: (usize, usize),
    rule: u8,
    between: bool,
) -> Result<(), TestCaseError> {
    let n = people.len();
    let (s, o) = (pick.0 % n, pick.1 % n);
    prop_assume!(s != o);
    let third = (0..n).find(|i| *i != s && *i != o);
    prop_assume!(!between || third.is_some());
    let merged_path = dir.join("merged.redb");
    let twin_path = dir.join("twin.redb");
    for path in [&merged_path, &twin_path] {
        let db = builder().create(path).expect("create");
        populate(&db, people, deals).expect("populate");
    }
    let before = dump(&merged_path);
    {
        let db = builder().open(&merged_path).expect("open");
        let (survivor, other) = (ContactId::new(s as u32), ContactId::new(o as u32));
        let histories = db
            .read(|r| Ok((r.history(survivor)?, r.history(other)?)))
            .expect("histories");
        let merge = db
            .write(|tx| tx.merge(survivor, other, &policy(rule)))
            .expect("merge");
        if between {
            unrelated_writes(&db, ContactId::new(third.unwrap_or(0) as u32)).expect("writes");
        }
        db.write(|tx| tx.unmerge(merge)).expect("unmerge");
        let after = db
            .read(|r| Ok((r.history(survivor)?, r.history(other)?)))
            .expect("histories");
        let without_merges = |h: Vec<crmdb::StageChange>| -> Vec<crmdb::StageChange> {
            h.into_iter()
                .filter(|c| !matches!(c.kind, ChangeKind::Merge | ChangeKind::Unmerge))
                .collect()
        };
        prop_assert_eq!(without_merges(after.0), histories.0);
        prop_assert_eq!(without_merges(after.1), histories.1);
    }
    let expected = if between {
        let db = builder().open(&twin_path).expect("open twin");
        unrelated_writes(&db, ContactId::new(third.unwrap_or(0) as u32)).expect("writes");
        drop(db);
        dump(&twin_path)
    } else {
        before
    };
    let got = dump(&merged_path);
    let (expected, got) = (restorable(&expected), restorable(&got));
    for (name, entries) in &expected {
        prop_assert!(
            got.get(name) == Some(entries),
            "table {} differs after merge and unmerge",
            name
        );
    }
    prop_assert_eq!(expected.len(), got.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CRMDB_MERGE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Merge then unmerge with nothing in between leaves rows, natural keys and every
    /// bitmap index byte for byte as they were; with unrelated writes in between, the
    /// tables equal those of a twin that made only those writes.
    #[test]
    fn merge_then_unmerge_restores_the_tables(
        people in prop::collection::vec(person(), 2..6),
        deals in prop::collection::vec((0usize..6, 0usize..6), 0..4),
        pick in (0usize..6, 0usize..6),
        rule in 0u8..3,
        between in any::<bool>(),
    ) {
        let dir = TempDir::new("merge");
        run_case(&dir.0, &people, &deals, pick, rule, between)?;
    }
}
