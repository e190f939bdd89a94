//! Consumers: reading after a sequence with a limit, waiting for commits, durable
//! positions across reopen, bootstrap from a snapshot, and retention.

use std::time::{Duration, Instant};

use crmdb::feed::Retention;
use crmdb::{Database, Error, Snapshot};

use crate::support::{Replica, all_batches, apply, contact, records};

fn add_contacts(db: &Database, from: u32, count: u32) -> crmdb::Result<()> {
    for i in from..from + count {
        db.write(|tx| tx.insert(contact(&format!("c{i}"), &format!("c{i}@example.com"))))?;
    }
    Ok(())
}

#[test]
fn batches_are_read_in_order_after_a_sequence_with_a_limit() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    add_contacts(&db, 0, 5)?;
    let seqs = |after, limit| -> crmdb::Result<Vec<u64>> {
        Ok(db
            .changes(after, limit)?
            .iter()
            .map(|b| b.sequence)
            .collect())
    };
    assert_eq!(seqs(0, 100)?, [1, 2, 3, 4, 5]);
    assert_eq!(seqs(2, 2)?, [3, 4]);
    assert_eq!(seqs(5, 10)?, Vec::<u64>::new());
    assert_eq!(seqs(0, 0)?, Vec::<u64>::new());
    assert!(matches!(db.changes(6, 1), Err(Error::InvalidArgument(_))));
    Ok(())
}

#[test]
fn a_waiting_reader_wakes_on_commit_and_times_out_otherwise() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    add_contacts(&db, 0, 1)?;
    let started = Instant::now();
    assert!(
        db.wait_changes(1, 10, Duration::from_millis(150))?
            .is_empty()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "waited the timeout"
    );

    let writer = db.clone();
    let handle = std::thread::spawn(move || -> crmdb::Result<()> {
        std::thread::sleep(Duration::from_millis(100));
        add_contacts(&writer, 1, 1)
    });
    let started = Instant::now();
    let woken = db.wait_changes(1, 10, Duration::from_secs(30))?;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken by the commit"
    );
    assert_eq!(woken.iter().map(|b| b.sequence).collect::<Vec<_>>(), [2]);
    handle.join().expect("the writer thread")?;
    // Something already there returns at once.
    let started = Instant::now();
    assert_eq!(db.wait_changes(0, 10, Duration::from_secs(30))?.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(20));
    Ok(())
}

#[test]
fn durable_consumers_resume_after_reopen() -> crmdb::Result<()> {
    let dir = std::env::temp_dir().join(format!("crmdb-feed-consumers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(Error::Io)?;
    let path = dir.join("crm.redb");
    let _ = std::fs::remove_file(&path);
    {
        let db = Database::create(&path)?;
        add_contacts(&db, 0, 3)?;
        assert_eq!(db.write(|tx| tx.register_consumer("warehouse", 0))?, 0);
        assert_eq!(
            db.write(|tx| tx.register_consumer("warehouse", 2))?,
            0,
            "registering again keeps the position"
        );
        db.write(|tx| tx.acknowledge("warehouse", 2))?;
        db.write(|tx| tx.acknowledge("warehouse", 1))?; // older: kept at 2
        assert!(matches!(
            db.write(|tx| tx.acknowledge("nobody", 1)),
            Err(Error::UnknownConsumer(_))
        ));
        assert!(matches!(
            db.write(|tx| tx.acknowledge("warehouse", 9)),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(
            db.read(|r| r.sequence())?,
            3,
            "consumer bookkeeping takes no sequence"
        );
    }
    let db = Database::open(&path)?;
    let consumers = db.read(|r| r.consumers())?;
    assert_eq!(consumers.len(), 1);
    assert_eq!(
        (consumers[0].name.as_str(), consumers[0].acknowledged),
        ("warehouse", 2)
    );
    let next = db.changes(consumers[0].acknowledged, 10)?;
    assert_eq!(next.iter().map(|b| b.sequence).collect::<Vec<_>>(), [3]);
    add_contacts(&db, 3, 1)?;
    assert_eq!(
        db.read(|r| r.sequence())?,
        4,
        "the sequence continues after reopen"
    );
    assert!(db.write(|tx| tx.unregister_consumer("warehouse"))?);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn a_bootstrapped_consumer_follows_with_nothing_missed_or_doubled() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    add_contacts(&db, 0, 4)?;
    db.write(|tx| -> crmdb::Result<()> {
        let ids: Vec<_> = tx
            .records::<crmdb::Contact>()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        tx.add_tag(ids[0], "vip")?;
        tx.soft_delete(ids[1])
    })?;
    // Copy the state, note its sequence, register there, then follow.
    let (mut replica, at): (Replica, u64) = db.read(|r| Ok((records(r)?, r.sequence()?)))?;
    db.write(|tx| tx.register_consumer("search", at))?;
    add_contacts(&db, 4, 3)?;
    db.write(|tx| -> crmdb::Result<()> {
        let ids: Vec<_> = tx
            .records::<crmdb::Contact>()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        tx.restore(ids[1])?;
        tx.soft_delete(ids[5])?;
        tx.purge(ids[5])
    })?;
    let mut position = db.read(|r| r.consumers())?[0].acknowledged;
    assert_eq!(position, at);
    loop {
        let batches = db.changes(position, 2)?;
        let Some(last) = batches.last() else { break };
        let last = last.sequence;
        for batch in &batches {
            apply(&mut replica, batch);
        }
        db.write(|tx| tx.acknowledge("search", last))?;
        position = last;
    }
    assert_eq!(replica, db.read(records)?);
    Ok(())
}

#[test]
fn retention_trims_what_no_consumer_needs_and_says_so() -> crmdb::Result<()> {
    let db = Database::builder()
        .retention(Retention::Batches(3))
        .in_memory()?;
    add_contacts(&db, 0, 2)?;
    db.write(|tx| tx.register_consumer("slow", 1))?;
    add_contacts(&db, 2, 8)?;
    // The consumer holds everything after 1; the window alone would keep 8..10.
    assert_eq!(db.read(|r| r.oldest_change())?, 2);
    assert_eq!(all_batches_after(&db, 1)?.len(), 9);
    db.write(|tx| tx.acknowledge("slow", 6))?;
    add_contacts(&db, 10, 1)?;
    assert_eq!(
        db.read(|r| r.oldest_change())?,
        7,
        "kept: after the acknowledgement"
    );
    match db.changes(3, 10) {
        Err(Error::Trimmed {
            after: 3,
            oldest: 7,
        }) => {}
        other => panic!("expected a trimmed range, got {other:?}"),
    }
    db.write(|tx| tx.unregister_consumer("slow"))?;
    add_contacts(&db, 11, 1)?;
    assert_eq!(
        db.read(|r| r.oldest_change())?,
        10,
        "the last three batches"
    );
    assert!(matches!(
        db.write(|tx| tx.register_consumer("late", 2)),
        Err(Error::Trimmed {
            after: 2,
            oldest: 10
        })
    ));

    // An age window keeps younger batches.
    let clock = std::sync::Arc::new(crmdb::ManualClock::new(crate::support::t0()));
    let aged = Database::builder()
        .clock(clock.clone())
        .retention(Retention::Age(Duration::from_secs(86_400)))
        .in_memory()?;
    add_contacts(&aged, 0, 3)?;
    clock.advance_days(2);
    add_contacts(&aged, 3, 1)?;
    assert_eq!(
        aged.read(|r| r.oldest_change())?,
        4,
        "only the young batch stays"
    );
    assert!(matches!(
        all_batches(&aged, 10),
        Err(Error::Trimmed {
            after: 0,
            oldest: 4
        })
    ));
    Ok(())
}

fn all_batches_after(db: &Database, after: u64) -> crmdb::Result<Vec<crmdb::feed::Batch>> {
    let mut out = Vec::new();
    let mut position = after;
    loop {
        let next = db.changes(position, 3)?;
        let Some(last) = next.last() else {
            return Ok(out);
        };
        position = last.sequence;
        out.extend(next);
    }
}
