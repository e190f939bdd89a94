//! Bulk loading: the threaded path and the one-by-one path give the same database and
//! the same rejections.

use crmdb::{
    BulkLoad, Contact, ContactId, Database, EntityKind, Error, Owner, OwnerId, Query, Snapshot,
    Stage,
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
    let rejected = report
        .rejected
        .iter()
        .map(|r| (r.position, describe(&r.error)))
        .collect();
    Ok((db, rejected))
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
