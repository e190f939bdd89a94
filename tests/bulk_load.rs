//! Bulk loading: the threaded path and the one-by-one path give the same database and
//! the same rejections; so do the bulk path of orders and activities (each contact
//! written once per batch) and inserting them one by one.

use crmdb::{
    Activity, ActivityKind, BulkLoad, Contact, ContactId, Database, Direction, EntityKind, Error,
    Order, OrderStatus, Owner, OwnerId, Query, Snapshot, Stage, Subject,
};

fn contacts(n: u32) -> Vec<Contact> {
    (0..n)
        .map(|i| Contact {
            name: format!("c{i}"),
            // Every 97th email repeats an earlier one.
            email: Some(format!(
                "c{}@example.com",
                if i % 97 == 96 { i - 50 } else { i }
            )),
            region: Some(["sh", "bj", "gz"][i as usize % 3].into()),
            tags: [format!("t{}", i % 7)].into_iter().collect(),
            // Owner 3 does not exist.
            owner: Some(OwnerId::new(i % 4)),
            // Every 101st asks for a stage the machine lacks.
            stage: if i % 101 == 100 {
                Stage::new("nowhere")
            } else {
                Stage::default()
            },
            lifetime_value: crmdb::Money(i64::from(i) * 37),
            ..Default::default()
        })
        .collect()
}

/// An error without the row ids in it: with threads, refused records leave their
/// reserved row ids unused, so later ids differ from a one-by-one load.
fn describe(e: &Error) -> String {
    match e {
        Error::BrokenRelation {
            target_kind,
            target_id,
            ..
        } => format!("relation {target_kind} {target_id}"),
        Error::Duplicate { value, .. } => format!("duplicate {value}"),
        Error::IllegalTransition { to, rule, .. } => format!("stage {to}: {rule}"),
        other => other.to_string(),
    }
}

/// A report's refusals: input position and a description of the error.
fn rejections(report: &crmdb::BulkReport) -> Vec<(u64, String)> {
    report
        .rejected
        .iter()
        .map(|r| (r.position, describe(&r.error)))
        .collect()
}

/// Inserts the records one by one in one transaction; returns the refusals as
/// [`rejections`] gives a bulk load's.
fn insert_one_by_one<R: crmdb::Record>(
    db: &Database,
    records: Vec<R>,
) -> crmdb::Result<Vec<(u64, String)>> {
    db.write(|tx| {
        let mut refused = Vec::new();
        for (position, record) in records.into_iter().enumerate() {
            if let Err(e) = tx.insert(record) {
                refused.push((position as u64, describe(&e)));
            }
        }
        Ok(refused)
    })
}

fn load(threads: usize, batch: usize) -> crmdb::Result<(Database, Vec<(u64, String)>)> {
    // A stopped clock, so that creation times agree between loads.
    let clock = std::sync::Arc::new(crmdb::ManualClock::new(crmdb::Timestamp(1_790_000_000)));
    let db = crmdb::Builder::new().clock(clock).in_memory()?;
    db.write(|tx| -> crmdb::Result<_> {
        for i in 0..3 {
            tx.insert(Owner {
                name: format!("o{i}"),
                ..Default::default()
            })?;
        }
        // Taken before the load starts.
        tx.insert(Contact {
            name: "early".into(),
            email: Some("c5@example.com".into()),
            ..Default::default()
        })?;
        Ok(())
    })?;
    let report = BulkLoad::new(&db)
        .threads(threads)
        .batch_size(batch)
        .run(contacts(5000), |_| {})?;
    Ok((db, rejections(&report)))
}

#[test]
fn threaded_and_plain_loads_agree() -> crmdb::Result<()> {
    let (plain, plain_rejected) = load(0, 50_000)?;
    for (threads, batch) in [(1, 50_000), (2, 700), (3, 1024)] {
        let (db, rejected) = load(threads, batch)?;
        assert_eq!(rejected, plain_rejected, "threads {threads} batch {batch}");
        let read = |db: &Database| -> crmdb::Result<_> {
            db.read(|r| {
                let records: Vec<Contact> = r
                    .records()?
                    .into_iter()
                    .map(|(_, c): (ContactId, Contact)| c)
                    .collect();
                let counts = ["t0", "t3", "t6"]
                    .iter()
                    .map(|t| r.count(EntityKind::Contact, &Query::tag(*t)))
                    .collect::<crmdb::Result<Vec<_>>>()?;
                let rich = r.count(
                    EntityKind::Contact,
                    &Query::parse("lifetime_value >= 1000 AND region = \"sh\"")?,
                )?;
                let histories = r
                    .records::<Contact>()?
                    .iter()
                    .map(|(id, _)| {
                        r.history(*id)
                            .map(|h| h.iter().map(|c| c.to.clone()).collect::<Vec<_>>())
                    })
                    .collect::<crmdb::Result<Vec<_>>>()?;
                Ok((records, counts, rich, histories))
            })
        };
        assert_eq!(read(&db)?, read(&plain)?, "threads {threads} batch {batch}");
    }
    // The rejections are the expected ones, by kind.
    let owners = plain_rejected
        .iter()
        .filter(|(_, e)| e == "relation owner 3")
        .count();
    let duplicates = plain_rejected
        .iter()
        .filter(|(_, e)| e.starts_with("duplicate"))
        .count();
    let stages = plain_rejected
        .iter()
        .filter(|(_, e)| e.starts_with("stage nowhere"))
        .count();
    // Relations are checked before the stage.
    assert_eq!(owners, 1250);
    assert!(
        duplicates > 20 && stages > 30,
        "{duplicates} duplicates, {stages} stages"
    );
    assert_eq!(owners + duplicates + stages, plain_rejected.len());
    let (_, e) = plain_rejected
        .iter()
        .find(|(p, _)| *p == 5)
        .cloned()
        .unwrap_or_default();
    assert!(
        e.contains("c5@example.com"),
        "position 5 collides with the early contact: {e}"
    );
    Ok(())
}

#[test]
fn storage_level_errors_are_not_swallowed() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let report = BulkLoad::new(&db).run(Vec::<Contact>::new(), |_| {})?;
    assert_eq!(report.inserted, 0);
    let report = BulkLoad::new(&db).run(
        contacts(10)
            .into_iter()
            .map(|c| Contact { owner: None, ..c }),
        |_| {},
    )?;
    assert_eq!(report.inserted, 10);
    assert!(matches!(
        db.write(|tx| tx.insert(Contact {
            email: Some("c1@example.com".into()),
            ..Default::default()
        })),
        Err(Error::Duplicate { .. })
    ));
    Ok(())
}

/// Orders and activities, some refused (a contact in the recycle bin, one that does not
/// exist), driving figures and automatic moves of contacts that get several each.
fn related(contacts: u32) -> (Vec<Order>, Vec<Activity>) {
    let at = |i: u32| crmdb::Timestamp(1_780_000_000 + i64::from(i) * 3_600);
    let orders = (0..contacts * 3)
        .map(|i| Order {
            // Contact `contacts` does not exist.
            contact: Some(ContactId::new((i * 7) % (contacts + 1))),
            at: at(i),
            status: if i % 5 == 4 {
                OrderStatus::Pending
            } else {
                OrderStatus::Paid
            },
            total: crmdb::Money(i64::from(i % 13) * 1_000),
            ..Default::default()
        })
        .collect();
    let activities = (0..contacts * 2)
        .map(|i| {
            let direction = if i % 3 == 0 {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let subject = Subject::Contact(ContactId::new((i * 5) % (contacts + 1)));
            Activity::new(ActivityKind::Email, direction, subject, at(i))
        })
        .collect();
    (orders, activities)
}

/// One line per record event of a batch, grouped by the record it is about: the order
/// of events about one record, with their causes.
fn events_by_target(db: &Database, after: u64) -> crmdb::Result<Vec<String>> {
    let mut lines = std::collections::BTreeMap::<String, Vec<String>>::new();
    for batch in db.changes(after, 100)? {
        for event in &batch.events {
            let target = format!("{:?}", event.change.target());
            lines.entry(target).or_default().push(format!(
                "{} {:?} {:?}",
                event.change.name(),
                event.cause,
                event.change
            ));
        }
    }
    Ok(lines
        .into_iter()
        .map(|(target, events)| format!("{target}: {events:?}"))
        .collect())
}

/// Line by line, naming the first line that differs.
fn assert_same(got: &[String], want: &[String], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: line {i} differs");
    }
    assert_eq!(got.len(), want.len(), "{what}: line counts");
}

fn related_state(db: &Database) -> crmdb::Result<Vec<String>> {
    db.read(|r| {
        let mut out = Vec::new();
        for (id, c) in r.records::<Contact>()? {
            out.push(format!("{id:?} {c:?} {:?}", r.history(id)?));
        }
        out.push(format!("{:?}", r.records::<Order>()?));
        out.push(format!("{:?}", r.records::<Activity>()?));
        for text in [
            "order_count >= 2",
            "total_spent between 1000 and 20000",
            "last_activity exists",
            "stage:new_customer",
            "stage:active",
            "stage:responder",
        ] {
            let ids = r.ids(EntityKind::Contact, &Query::parse(text)?)?;
            out.push(format!("{text}: {ids:?}"));
        }
        Ok(out)
    })
}

/// Orders and activities bulk-loaded (each contact written once per batch) and inserted
/// one by one give the same records, figures, stage histories, indexes, rejections and,
/// for every record, the same change events in the same order with the same causes.
#[test]
fn related_records_load_as_inserts_would() -> crmdb::Result<()> {
    const CONTACTS: u32 = 40;
    let open = || -> crmdb::Result<Database> {
        let clock = std::sync::Arc::new(crmdb::ManualClock::new(crmdb::Timestamp(1_790_000_000)));
        let db = crmdb::Builder::new().clock(clock).in_memory()?;
        db.write(|tx| -> crmdb::Result<()> {
            for i in 0..CONTACTS {
                let id = tx.insert(Contact {
                    name: format!("c{i}"),
                    ..Default::default()
                })?;
                if i % 9 == 8 {
                    tx.soft_delete(id)?;
                }
            }
            Ok(())
        })?;
        Ok(db)
    };
    let (orders, activities) = related(CONTACTS);

    let one_by_one = open()?;
    let order_rejections = insert_one_by_one(&one_by_one, orders.clone())?;
    let activity_rejections = insert_one_by_one(&one_by_one, activities.clone())?;

    let bulk = open()?;
    let mut load = BulkLoad::new(&bulk);
    load.batch_size(100_000);
    let report = load.run(orders, |_| {})?;
    assert_eq!(rejections(&report), order_rejections, "order rejections");
    assert!(!order_rejections.is_empty(), "the data has refused orders");
    assert_eq!(report.rows.len() as u64, report.inserted);
    let report = load.run(activities, |_| {})?;
    assert_eq!(
        rejections(&report),
        activity_rejections,
        "activity rejections"
    );

    assert_same(
        &related_state(&bulk)?,
        &related_state(&one_by_one)?,
        "state",
    );
    assert_same(
        &events_by_target(&bulk, 1)?,
        &events_by_target(&one_by_one, 1)?,
        "events",
    );
    // The data did move contacts automatically, more than once for some.
    let moved = bulk.read(|r| {
        let mut most = 0;
        for (id, _) in r.records::<Contact>()? {
            most = most.max(r.history(id)?.len());
        }
        Ok(most)
    })?;
    assert!(moved >= 3, "a contact moved at most {moved} times");
    Ok(())
}
