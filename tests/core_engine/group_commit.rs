//! Group commit (`Database::write_grouped`): concurrent callers share commits, a
//! failing or panicking caller takes back only its own writes, every acknowledged
//! write is durable, and the change feed stays continuous.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use crmdb::feed::Change;
use crmdb::{AnyRecord, Contact, Database, Error, Snapshot};

use crate::support::{TempDir, contact};

const THREADS: usize = 8;
const WRITES: usize = 30;

fn email(thread: usize, i: usize) -> String {
    format!("t{thread}-{i}@example.com")
}

/// The emails of every stored contact.
fn stored_emails(db: &Database) -> crmdb::Result<BTreeSet<String>> {
    db.read(|r| {
        Ok(r.records::<Contact>()?
            .into_iter()
            .filter_map(|(_, c)| c.email)
            .collect())
    })
}

/// Starts `THREADS` threads that run `work(db, thread)` all at once.
fn writers<T: Send + 'static>(
    db: &Arc<Database>,
    work: fn(&Database, usize) -> T,
) -> Vec<std::thread::JoinHandle<T>> {
    let start = Arc::new(Barrier::new(THREADS));
    (0..THREADS)
        .map(|t| {
            let (db, start) = (Arc::clone(db), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                work(&db, t)
            })
        })
        .collect()
}

#[test]
fn grouped_writers_share_commits_and_every_acknowledged_write_is_durable() -> crmdb::Result<()> {
    let dir = TempDir::new("group-commit");
    let path = dir.0.join("crm.redb");
    let db = Arc::new(Database::create(&path)?);
    let handles = writers(&db, |db, t| {
        let mut acknowledged = Vec::new();
        for i in 0..WRITES {
            // Every fifth write inserts and then fails: it must leave no trace.
            let fails = i % 5 == 4;
            let result = db.write_grouped(|tx| {
                tx.insert(contact(&format!("t{t}-{i}"), &email(t, i)))?;
                if fails {
                    return Err(Error::InvalidArgument("refused by the caller".into()));
                }
                Ok(())
            });
            match (fails, result) {
                (false, Ok(())) => acknowledged.push(email(t, i)),
                (true, Err(Error::InvalidArgument(_))) => {}
                (fails, other) => panic!("write {t}/{i} (fails: {fails}): {other:?}"),
            }
        }
        acknowledged
    });
    let acknowledged: BTreeSet<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a writer thread"))
        .collect();
    assert_eq!(acknowledged.len(), THREADS * WRITES * 4 / 5);
    let commits = db.read(|r| r.sequence())?;
    assert!(
        commits < acknowledged.len() as u64,
        "{commits} commits for {} writes: no commit was shared",
        acknowledged.len()
    );
    drop(db);

    let db = Database::open(&path)?;
    assert_eq!(stored_emails(&db)?, acknowledged);
    // The feed holds one batch per commit, in order, with exactly the acknowledged
    // inserts.
    let batches = db.changes(0, 10_000)?;
    let sequences: Vec<u64> = batches.iter().map(|b| b.sequence).collect();
    assert_eq!(sequences, (1..=commits).collect::<Vec<_>>());
    let inserted: BTreeSet<String> = batches
        .iter()
        .flat_map(|b| &b.events)
        .filter_map(|e| match &e.change {
            Change::Inserted {
                record: AnyRecord::Contact(c),
                ..
            } => c.email.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(inserted, acknowledged);
    Ok(())
}

#[test]
fn a_panicking_or_refused_caller_takes_back_only_its_own_writes() -> crmdb::Result<()> {
    let db = Arc::new(Database::in_memory()?);
    db.write(|tx| tx.insert(contact("taken", "taken@example.com")).map(drop))?;
    let handles = writers(&db, |db, t| {
        for i in 0..WRITES {
            let result = db.write_grouped(|tx| -> crmdb::Result<()> {
                tx.insert(contact("mine", &email(t, i)))?;
                match (t, i % 10) {
                    (0, 3) => panic!("a caller's own bug"),
                    // Refused by the engine after a write of its own.
                    (1, _) => tx.insert(contact("dup", "taken@example.com")).map(drop),
                    _ => Ok(()),
                }
            });
            match (t, result) {
                (1, Err(Error::Duplicate { .. })) | (2.., Ok(())) | (0, Ok(())) => {}
                (t, other) => panic!("write {t}/{i}: {other:?}"),
            }
        }
    });
    for (t, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().is_err(), t == 0, "only thread 0 panicked");
    }
    let mut expected: BTreeSet<String> = ["taken@example.com".to_owned()].into();
    // Thread 0 wrote 0..3 and panicked at its fourth write; thread 1 was always refused.
    expected.extend((0..3).map(|i| email(0, i)));
    for t in 2..THREADS {
        expected.extend((0..WRITES).map(|i| email(t, i)));
    }
    assert_eq!(stored_emails(&db)?, expected);
    // The indexes agree with the rows.
    let live = db.read(|r| r.count(crmdb::EntityKind::Contact, &crmdb::Query::all()))?;
    assert_eq!(live, expected.len() as u64);
    Ok(())
}
