//! Snapshot isolation under a concurrent writer, and sharing across threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crmdb::{Contact, Database, EntityKind, Error, Query, Snapshot, WriteTransaction};

use crate::support::contact;

#[test]
fn readers_see_consistent_snapshots_while_a_writer_commits() -> crmdb::Result<()> {
    const BATCHES: u32 = 40;
    const PER_BATCH: u32 = 5;
    const READERS: usize = 4;
    let db = Database::in_memory()?;
    // The tags exist before readers start, so that queries on them bind.
    db.write(|tx| -> crmdb::Result<_> {
        let seed = tx.insert(contact("Seed", "seed@example.com"))?;
        tx.add_tag(seed, "x")?;
        tx.add_tag(seed, "odd")?;
        Ok(())
    })?;
    let done = AtomicBool::new(false);
    let tag_x = Query::tag("x");
    std::thread::scope(|scope| -> crmdb::Result<()> {
        let writer = scope.spawn(|| -> crmdb::Result<()> {
            for batch in 0..BATCHES {
                db.write(|tx| -> crmdb::Result<_> {
                    for i in 0..PER_BATCH {
                        let id = tx.insert(contact(
                            &format!("c{batch}-{i}"),
                            &format!("c{batch}-{i}@example.com"),
                        ))?;
                        tx.add_tag(id, "x")?;
                        if i % 2 == 1 {
                            tx.add_tag(id, "odd")?;
                        }
                    }
                    Ok(())
                })?;
            }
            done.store(true, Ordering::SeqCst);
            Ok(())
        });
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                scope.spawn(|| -> crmdb::Result<u32> {
                    let mut last = 0u64;
                    let mut rounds = 0u32;
                    // Bounded: read while the writer runs, then once more.
                    for _ in 0..100_000 {
                        let finished = done.load(Ordering::SeqCst);
                        let seen = db.read(|r| {
                            let count = r.count(EntityKind::Contact, &tag_x)?;
                            let ids = r.ids(EntityKind::Contact, &tag_x)?;
                            let rows = r.records::<Contact>()?;
                            let tagged: Vec<u32> = rows
                                .iter()
                                .filter(|(_, c)| c.deleted_at.is_none() && c.tags.contains("x"))
                                .map(|(id, _)| id.get())
                                .collect();
                            assert_eq!(count, tagged.len() as u64, "count against rows");
                            assert_eq!(ids.iter().collect::<Vec<_>>(), tagged, "ids against rows");
                            assert_eq!(r.live(EntityKind::Contact)?.len(), rows.len() as u64);
                            assert_eq!(
                                (count - 1) % u64::from(PER_BATCH),
                                0,
                                "a snapshot holds whole batches"
                            );
                            let odd = r.count(EntityKind::Contact, &Query::tag("odd"))?;
                            assert_eq!(odd - 1, (count - 1) / u64::from(PER_BATCH) * 2);
                            Ok(count)
                        })?;
                        assert!(seen >= last, "snapshots never go back in time");
                        last = seen;
                        rounds += 1;
                        if finished {
                            break;
                        }
                    }
                    assert_eq!(last, u64::from(BATCHES * PER_BATCH) + 1, "saw the end");
                    Ok(rounds)
                })
            })
            .collect();
        writer.join().expect("writer thread")?;
        for reader in readers {
            let rounds = reader.join().expect("reader thread")?;
            assert!(rounds >= 1);
        }
        Ok(())
    })?;

    // A snapshot taken before a commit keeps its view after it.
    let snapshot = db.begin_read()?;
    db.write(|tx| {
        let late = tx.insert(contact("Late", "late@example.com"))?;
        tx.add_tag(late, "x")
    })?;
    assert_eq!(
        snapshot.count(EntityKind::Contact, &tag_x)?,
        u64::from(BATCHES * PER_BATCH) + 1
    );
    assert_eq!(
        db.read(|r| r.count(EntityKind::Contact, &tag_x))?,
        u64::from(BATCHES * PER_BATCH) + 2
    );
    Ok(())
}

#[test]
fn database_is_shared_across_threads() -> crmdb::Result<()> {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Database>();
    send_sync::<Error>();
    send::<crmdb::ReadTransaction>();
    send::<WriteTransaction>();

    let db = Database::in_memory()?;
    let shared = Arc::new(db.clone());
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let db = Arc::clone(&shared);
            std::thread::spawn(move || -> crmdb::Result<()> {
                for i in 0..10u32 {
                    db.write(|tx| {
                        let id = tx.insert(contact("T", &format!("t{t}-{i}@example.com")))?;
                        tx.add_tag(id, &format!("thread{t}"))
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer thread")?;
    }
    db.read(|r| {
        assert_eq!(r.live(EntityKind::Contact)?.len(), 80);
        for t in 0..8 {
            assert_eq!(
                r.count(EntityKind::Contact, &Query::tag(format!("thread{t}")))?,
                10
            );
        }
        Ok(())
    })?;
    // A read transaction can move to another thread.
    let snapshot = db.begin_read()?;
    let count = std::thread::spawn(move || snapshot.live(EntityKind::Contact).map(|b| b.len()))
        .join()
        .expect("reader thread")?;
    assert_eq!(count, 80);
    Ok(())
}
