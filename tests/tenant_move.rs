//! Moving a database while writers run: the copy ends with exactly the source's tables,
//! no acknowledged write is lost or doubled, and the source refuses writes afterwards.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crmdb::demo::Generator;
use crmdb::identity::MergePolicy;
use crmdb::{
    Builder, Contact, ContactId, Database, EntityKind, Error, Money, Order, Query, SavedSegment,
    Snapshot, TenantMove, Timestamp, WriteTransaction, stages,
};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir as Scratch;

#[path = "support/dump.rs"]
mod dump;
use dump::dump;

/// One writer's acknowledged inserts (their emails) and how its writes ended.
#[derive(Default)]
struct Outcome {
    inserted: Vec<String>,
    moved: bool,
}

/// Writes of every kind the log carries, until the source says it moved or `deadline`.
fn writer(db: &Database, me: u32, deadline: Instant, commits: &AtomicU64) -> Outcome {
    let mut outcome = Outcome::default();
    for round in 0u32.. {
        if Instant::now() > deadline {
            break;
        }
        let email = format!("w{me}-{round}@example.com");
        // One writer goes through group commit, the others commit on their own.
        let result = if me == 2 {
            db.write_grouped(|tx| step(tx, me, round, &email))
        } else {
            db.write(|tx| step(tx, me, round, &email))
        };
        match result {
            Ok(()) => {
                outcome.inserted.push(email);
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(Error::Moved { to }) => {
                assert_eq!(to, "node-b");
                outcome.moved = true;
                break;
            }
            Err(e) => panic!("writer {me}: {e}"),
        }
    }
    outcome
}

/// One writer's commit number `round`: an insert, plus a write of another kind.
fn step(tx: &mut WriteTransaction, me: u32, round: u32, email: &str) -> crmdb::Result<()> {
    let day = |n: i64| Timestamp(1_700_000_000 + n * 86_400);
    let target = ContactId::new((round * 7 + me * 13) % 300);
    let id = tx.insert(Contact {
        name: format!("writer {me} {round}"),
        email: Some(email.to_owned()),
        region: Some(["shanghai", "beijing"][round as usize % 2].into()),
        ..Default::default()
    })?;
    tx.add_tag(id, if round % 3 == 0 { "vip" } else { "trial" })?;
    match round % 6 {
        0 => {
            tx.insert(Order {
                contact: Some(id),
                at: day(i64::from(round % 30)),
                total: Money(1000 + i64::from(round)),
                currency: "CNY".into(),
                ..Default::default()
            })?;
        }
        1 => tx.modify(target, |c| c.phone = Some(format!("+86 {round}")))?,
        2 => {
            if tx.get(target)?.tags.contains("vip") {
                tx.remove_tag(target, "vip")?;
            } else {
                tx.add_tag(target, "vip")?;
            }
        }
        3 => {
            // A record deleted and purged for good; its id is never reused.
            let doomed = tx.insert(Contact {
                name: "doomed".into(),
                ..Default::default()
            })?;
            tx.soft_delete(doomed)?;
            tx.purge(doomed)?;
            // A duplicate merged into the new contact; every other one unmerged again.
            let copy = tx.insert(Contact {
                name: format!("writer {me} {round} again"),
                tags: ["copy".to_owned()].into(),
                ..Default::default()
            })?;
            let merge = tx.merge(id, copy, &MergePolicy::survivor_wins())?;
            if round % 12 == 3 {
                tx.unmerge(merge)?;
                // The copy's own erasure, which the move applies to its log too.
                tx.erase(copy, "test erasure")?;
            }
        }
        4 => {
            if tx.move_stage(target, stages::contact::ACTIVE).is_err() {
                tx.move_stage(id, stages::contact::ACTIVE).ok();
            }
        }
        _ => {
            if me == 0 {
                tx.refresh_rfm(day(40))?;
                tx.save_segment(
                    "recent",
                    SavedSegment::Dynamic {
                        kind: EntityKind::Contact,
                        query: Query::parse(&format!("total_spent >= {}", round % 50))?,
                    },
                )?;
            } else {
                let last = tx.sequence()?;
                tx.acknowledge("sink", last.saturating_sub(3))?;
            }
        }
    }
    Ok(())
}

#[test]
fn a_move_under_writers_ends_with_exactly_the_source() -> crmdb::Result<()> {
    move_under_writers("move", &Builder::new())
}

/// With a short retention the source trims its log while the copy follows: the move's
/// consumer keeps what the copy still needs, and the copy ends trimmed alike.
#[test]
fn a_move_keeps_the_log_it_needs_under_short_retention() -> crmdb::Result<()> {
    move_under_writers(
        "move-trim",
        Builder::new().retention(crmdb::feed::Retention::Batches(20)),
    )
}

fn move_under_writers(name: &str, builder: &Builder) -> crmdb::Result<()> {
    let scratch = Scratch::new(name);
    let (source_path, target_path) = (scratch.0.join("source.redb"), scratch.0.join("b.redb"));
    let source = builder.create(&source_path)?;
    Generator::new(300).load(&source, |_| {})?;
    source.write(|tx| -> crmdb::Result<()> {
        for (name, query) in [("vips", "tag:vip"), ("big", "total_spent >= 1000")] {
            tx.save_segment(
                name,
                SavedSegment::Dynamic {
                    kind: EntityKind::Contact,
                    query: Query::parse(query)?,
                },
            )?;
            tx.watch(name)?;
        }
        tx.register_consumer("sink", 0)?;
        Ok(())
    })?;

    let commits = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let outcomes = Mutex::new(Vec::new());
    let target = std::thread::scope(|s| -> crmdb::Result<Database> {
        for me in 0..3 {
            let (source, commits, outcomes) = (&source, &commits, &outcomes);
            s.spawn(move || {
                let outcome = writer(source, me, deadline, commits);
                outcomes.lock().expect("outcomes").push(outcome);
            });
        }
        let wait_for = |n: u64| {
            while commits.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_for(20);
        let mut moving = TenantMove::start(&source, &target_path, builder)?;
        let backed_up = moving.applied();
        assert!(backed_up > 0);
        // A second move of the same database is refused while this one is under way.
        assert!(matches!(
            TenantMove::start(&source, scratch.0.join("c.redb"), &Builder::new()),
            Err(Error::InvalidArgument(_))
        ));
        let mut rounds = 0;
        for round in 1..=4 {
            wait_for(20 + round * 30);
            let before = moving.applied();
            assert!(moving.catch_up()? >= before);
            rounds += 1;
        }
        assert_eq!(rounds, 4);
        assert!(
            moving.applied() > backed_up,
            "the copy applied batches after the backup"
        );
        // The copy follows: it holds the batches it applied, and reads see them.
        let applied = moving.applied();
        assert_eq!(moving.read_target()?.sequence()?, applied);
        moving.cut_over("node-b")
    })?;
    let outcomes = outcomes.into_inner().expect("outcomes");
    assert!(
        outcomes.iter().all(|o| o.moved),
        "every writer ran until the cutover refused it"
    );
    assert!(commits.load(Ordering::Relaxed) >= 140);

    // The source refuses writes, names where it went, and still reads.
    assert!(matches!(
        source.write(|tx| tx.add_tag(ContactId::new(0), "late")),
        Err(Error::Moved { to }) if to == "node-b"
    ));
    let last = source.read(|r| r.sequence())?;
    assert_eq!(target.read(|r| r.sequence())?, last);

    // Every acknowledged insert is in the copy once.
    let inserted: Vec<String> = outcomes.into_iter().flat_map(|o| o.inserted).collect();
    let unique: BTreeSet<&String> = inserted.iter().collect();
    assert_eq!(unique.len(), inserted.len());
    target.read(|r| -> crmdb::Result<()> {
        let contacts = r.records::<Contact>()?;
        let emails: Vec<&str> = contacts
            .iter()
            .filter_map(|(_, c)| c.email.as_deref())
            .filter(|e| e.starts_with('w'))
            .collect();
        assert_eq!(emails.len(), inserted.len(), "no write lost or doubled");
        for email in &inserted {
            assert!(r.contact_by_email(email)?.is_some(), "{email}");
        }
        assert_eq!(
            r.changes(last - 10, usize::MAX)?,
            source.changes(last - 10, usize::MAX)?,
            "the same change log"
        );
        Ok(())
    })?;

    drop(target);
    drop(source);

    // Table by table, the copy is the source.
    let (source_tables, target_tables) = (dump(&source_path), dump(&target_path));
    assert_eq!(
        source_tables.keys().collect::<Vec<_>>(),
        target_tables.keys().collect::<Vec<_>>()
    );
    for (name, entries) in &source_tables {
        assert!(
            !entries.is_empty() || name.starts_with("rows."),
            "{name} is empty"
        );
        let copied = &target_tables[name];
        assert_eq!(copied.len(), entries.len(), "table {name}: entry count");
        let differing: Vec<String> = entries
            .iter()
            .zip(copied)
            .filter(|(a, b)| a != b)
            .map(|((k, _), _)| String::from_utf8_lossy(k).into_owned())
            .take(5)
            .collect();
        assert!(
            copied == entries,
            "table {name} differs after the move, at {differing:?}"
        );
    }
    assert!(
        source_tables["consumers"]
            .iter()
            .all(|(k, _)| k != b"tenant_move"),
        "the move's consumer is gone from both"
    );

    // The copy opens as a sound database and takes writes as the next commit of the
    // same log.
    let mut target = builder.open(&target_path)?;
    assert!(target.check_integrity()?);
    target.write(|tx| tx.add_tag(ContactId::new(0), "moved"))?;
    assert_eq!(target.read(|r| r.sequence())?, last + 1);
    Ok(())
}

#[test]
fn a_move_needs_the_change_log_and_a_new_file() -> crmdb::Result<()> {
    let scratch = Scratch::new("move-refused");
    let quiet = Builder::new()
        .change_log(false)
        .create(scratch.0.join("quiet.redb"))?;
    assert!(matches!(
        TenantMove::start(&quiet, scratch.0.join("q2.redb"), &Builder::new()),
        Err(Error::InvalidArgument(_))
    ));
    let source = Database::create(scratch.0.join("source.redb"))?;
    std::fs::write(scratch.0.join("taken.redb"), b"")?;
    assert!(matches!(
        TenantMove::start(&source, scratch.0.join("taken.redb"), &Builder::new()),
        Err(Error::InvalidArgument(_))
    ));
    // A move abandoned before its cutover leaves the source as it was, but for the
    // move's consumer, which keeps the log until it is unregistered.
    let moving = TenantMove::start(&source, scratch.0.join("b.redb"), &Builder::new())?;
    drop(moving);
    source.write(|tx| {
        tx.add_tag(ContactId::new(0), "still")
            .or(Ok::<(), Error>(()))
    })?;
    assert!(
        source
            .read(|r| r.consumers())?
            .iter()
            .any(|c| c.name == "tenant_move")
    );
    source.write(|tx| tx.unregister_consumer("tenant_move"))?;
    let moving = TenantMove::start(&source, scratch.0.join("c.redb"), &Builder::new())?;
    let copy = moving.cut_over("node-c")?;
    assert_eq!(copy.read(|r| r.sequence())?, source.read(|r| r.sequence())?);
    assert!(matches!(
        source.write(|tx| tx.unregister_consumer("x")),
        Err(Error::Moved { .. })
    ));
    Ok(())
}
