//! Online backup: a copy taken from a read snapshot while a writer keeps committing
//! holds exactly that snapshot and opens as a normal database.

use std::sync::atomic::{AtomicBool, Ordering};

use crmdb::demo::Generator;
use crmdb::{
    Activity, Contact, ContactId, Database, Deal, EntityKind, Error, Order, Query, Record,
    SavedSegment, Snapshot,
};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir as Scratch;

fn same_records<R: Record + PartialEq>(a: &impl Snapshot, b: &impl Snapshot) -> crmdb::Result<()> {
    let (left, right) = (a.records::<R>()?, b.records::<R>()?);
    assert_eq!(left.len(), right.len(), "{} count", R::KIND);
    assert!(left == right, "{} records differ", R::KIND);
    Ok(())
}

fn table_names(path: &std::path::Path) -> Vec<String> {
    use redb::{ReadableDatabase, TableHandle};
    let db = redb::ReadOnlyDatabase::open(path).expect("open raw");
    let txn = db.begin_read().expect("read");
    let mut names: Vec<String> = txn
        .list_tables()
        .expect("tables")
        .map(|t| t.name().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_taken_under_a_writer_holds_exactly_its_snapshot() -> crmdb::Result<()> {
    let scratch = Scratch::new("live");
    let source_path = scratch.0.join("source.redb");
    let copy_path = scratch.0.join("copy.redb");
    let db = Database::create(&source_path)?;
    Generator::new(2000).load(&db, |_| {})?;
    db.write(|tx| {
        let query = Query::parse("tag:vip")?;
        tx.save_segment(
            "vips",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query,
            },
        )?;
        tx.watch("vips")
    })?;

    // A writer that keeps committing while the backup runs, for at most 2 000 commits.
    let stop = AtomicBool::new(false);
    let (snapshot_sequence, backup) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> crmdb::Result<u32> {
            let mut commits = 0;
            while !stop.load(Ordering::Relaxed) && commits < 2000 {
                let id = ContactId::new(commits % 2000);
                db.write(|tx| {
                    if commits % 2 == 0 {
                        tx.add_tag(id, "vip")
                    } else {
                        tx.remove_tag(id, "vip")
                    }
                })?;
                commits += 1;
            }
            Ok(commits)
        });
        // Let the writer get going, then back up from a snapshot.
        while db.read(|r| r.sequence()).expect("sequence") < 20 {
            std::thread::yield_now();
        }
        let result = (|| -> crmdb::Result<_> {
            let snapshot = db.begin_read()?;
            let backup = snapshot.backup_to(&copy_path)?;
            let copy = Database::open(&copy_path)?;
            let copied = copy.begin_read()?;
            assert_eq!(copied.sequence()?, backup.sequence);
            same_records::<Contact>(&snapshot, &copied)?;
            same_records::<Order>(&snapshot, &copied)?;
            same_records::<Activity>(&snapshot, &copied)?;
            same_records::<Deal>(&snapshot, &copied)?;
            for text in [
                "tag:vip",
                r#"region = "shanghai" AND stage:active"#,
                "total_spent >= 500 OR lifetime_value between 100 and 900",
                "segment:vips",
            ] {
                let query = Query::parse(text)?;
                assert_eq!(
                    copied.ids(EntityKind::Contact, &query)?,
                    snapshot.ids(EntityKind::Contact, &query)?,
                    "{text}"
                );
            }
            for row in [0, 1, 7, 1999] {
                let id = ContactId::new(row);
                assert_eq!(copied.history(id)?, snapshot.history(id)?);
            }
            assert_eq!(
                copied.changes(0, usize::MAX)?,
                snapshot.changes(0, usize::MAX)?,
                "the change feed up to the backup"
            );
            Ok((snapshot.sequence()?, backup))
        })();
        stop.store(true, Ordering::Relaxed);
        let commits = writer.join().expect("writer")?;
        assert!(commits >= 20, "the writer ran during the backup");
        result
    })?;
    assert_eq!(backup.sequence, snapshot_sequence);
    assert!(backup.entries > 0);
    // The writer went on past the backup; the source holds more.
    assert!(db.read(|r| r.sequence())? > backup.sequence);

    // The copy is a sound redb file with every table of the source.
    let mut copy = Database::open(&copy_path)?;
    assert!(copy.check_integrity()?);
    drop(copy);
    drop(db);
    assert_eq!(table_names(&copy_path), table_names(&source_path));

    // A backup never overwrites a file.
    let db = Database::open(&source_path)?;
    assert!(matches!(
        db.backup(&copy_path),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}
