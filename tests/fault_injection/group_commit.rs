//! Group commit through every fault point: grouped writers keep every acknowledged
//! write, never show a refused one, and keep indexes equal to rows and the log
//! continuous.

use std::collections::BTreeMap;
use std::sync::Arc;

use crmdb::{
    Contact, ContactId, EntityKind, ManualClock, Query, RoaringBitmap, Snapshot, Timestamp,
};

use super::{Crash, EPOCH, FaultyBackend, builder, contact, fault_points, reopen};

/// Writers per round and rounds of the group-commit workload.
const WRITERS: u32 = 4;
const ROUNDS: u32 = 5;

/// What became of one grouped write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered `Ok`: it must survive every crash.
    Acknowledged,
    /// Refused by its own closure after writing: it must never be visible.
    Refused,
    /// Its commit failed: either way is allowed.
    Failed,
}

/// The tag writer `w` adds to its contact in round `r`.
fn round_tag(r: u32) -> String {
    format!("round{r}")
}

/// Whether writer `w`'s closure in round `r` refuses its own write after making it.
fn refuses(w: u32, r: u32) -> bool {
    (w + r) % 3 == 0
}

/// Seeds one contact per writer, then runs the rounds: in each, every writer at once
/// tags its own contact through `write_grouped` (and sets its region), some closures
/// refusing after the write. Stops after the first round with a failed commit.
fn run_grouped(fail_at: u64) -> (FaultyBackend, BTreeMap<(u32, u32), Outcome>) {
    let backend = FaultyBackend::new(fail_at);
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let mut outcomes = BTreeMap::new();
    let Ok(db) = builder(&clock).with_backend(backend.clone()) else {
        return (backend, outcomes);
    };
    let seeded = db.write(|tx| -> crmdb::Result<()> {
        for w in 0..WRITERS {
            tx.insert(contact(
                &format!("w{w}"),
                &format!("w{w}@example.com"),
                "x",
                &[],
                1,
            ))?;
        }
        Ok(())
    });
    if seeded.is_err() {
        return (backend, outcomes);
    }
    let db = Arc::new(db);
    for r in 0..ROUNDS {
        let start = Arc::new(std::sync::Barrier::new(WRITERS as usize));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (db, start) = (Arc::clone(&db), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let result = db.write_grouped(|tx| {
                        let id = ContactId::new(w);
                        tx.add_tag(id, &round_tag(r))?;
                        tx.modify(id, |c| c.region = Some(format!("r{r}")))?;
                        if refuses(w, r) {
                            return Err(crmdb::Error::InvalidArgument("refused".into()));
                        }
                        Ok(())
                    });
                    match result {
                        Ok(()) => Outcome::Acknowledged,
                        Err(crmdb::Error::InvalidArgument(_)) => Outcome::Refused,
                        Err(_) => Outcome::Failed,
                    }
                })
            })
            .collect();
        let mut failed = false;
        for (w, handle) in handles.into_iter().enumerate() {
            let outcome = handle.join().expect("a writer thread");
            failed |= outcome == Outcome::Failed;
            outcomes.insert((w as u32, r), outcome);
        }
        if failed {
            break;
        }
    }
    drop(db);
    (backend, outcomes)
}

/// Checks one crash image of a grouped run: every acknowledged write there, no refused
/// one, the indexes equal to the rows and the change log continuous.
fn check_grouped_image(
    fail_at: u64,
    crash: Crash,
    image: &[u8],
    outcomes: &BTreeMap<(u32, u32), Outcome>,
) -> u64 {
    let label = format!("group commit, fault {fail_at}, {crash:?} image");
    let mut db = match reopen(image) {
        Ok(db) => db,
        // The file's creation crashed: nothing was promised.
        Err(crmdb::Error::Storage(_)) if outcomes.is_empty() => return 0,
        Err(e) => panic!("{label}: reopening failed: {e}"),
    };
    let contacts = db
        .read(|r| r.records::<Contact>())
        .unwrap_or_else(|e| panic!("{label}: reading failed: {e}"));
    let tagged = |w: u32, r: u32| {
        contacts
            .iter()
            .find(|(id, _)| id.get() == w)
            .is_some_and(|(_, c)| c.tags.contains(&round_tag(r)))
    };
    for (&(w, r), outcome) in outcomes {
        match outcome {
            Outcome::Acknowledged => {
                assert!(tagged(w, r), "{label}: acknowledged write {w}/{r} lost")
            }
            Outcome::Refused => assert!(!tagged(w, r), "{label}: refused write {w}/{r} visible"),
            Outcome::Failed => {}
        }
    }
    let batches = db
        .changes(0, usize::MAX)
        .unwrap_or_else(|e| panic!("{label}: reading the log: {e}"));
    let sequence = db.read(|r| r.sequence()).expect("sequence");
    let sequences: Vec<u64> = batches.iter().map(|b| b.sequence).collect();
    assert_eq!(
        sequences,
        (1..=sequence).collect::<Vec<_>>(),
        "{label}: log gaps"
    );
    for r in 0..ROUNDS {
        let tag = round_tag(r);
        let rows: RoaringBitmap = contacts
            .iter()
            .filter(|(_, c)| c.tags.contains(&tag))
            .map(|(id, _)| id.get())
            .collect();
        let indexed = db
            .read(|s| s.ids(EntityKind::Contact, &Query::tag(&tag)))
            .expect("tag query");
        assert_eq!(indexed, rows, "{label}: tag index disagrees with the rows");
        let logged: RoaringBitmap = batches
            .iter()
            .flat_map(|b| &b.events)
            .filter_map(|e| match &e.change {
                crmdb::feed::Change::TagAdded { id, tag: t, .. } if *t == tag => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(
            logged, rows,
            "{label}: the log's tag events disagree with the rows"
        );
    }
    assert_eq!(
        db.check_integrity().ok(),
        Some(true),
        "{label}: integrity check"
    );
    sequence
}

#[test]
fn group_commit_keeps_every_acknowledged_write_through_every_fault_point() {
    let (clean, outcomes) = run_grouped(0);
    let expected: Vec<Outcome> = (0..ROUNDS)
        .flat_map(|r| (0..WRITERS).map(move |w| (w, r)))
        .map(|(w, r)| {
            if refuses(w, r) {
                Outcome::Refused
            } else {
                Outcome::Acknowledged
            }
        })
        .collect();
    let got: Vec<Outcome> = (0..ROUNDS)
        .flat_map(|r| (0..WRITERS).map(move |w| (w, r)))
        .map(|key| outcomes[&key])
        .collect();
    assert_eq!(got, expected, "the fault-free run");
    let commits = check_grouped_image(0, Crash::Written, &clean.image(Crash::Written), &outcomes);
    // How rounds group into commits depends on thread timing, so the number of
    // mutating calls varies from run to run; points past a run's end fire no fault.
    let total = clean.disk().calls;
    let points = fault_points(total);
    for &n in &points {
        let (backend, outcomes) = run_grouped(n);
        for crash in [Crash::Written, Crash::Synced, Crash::Torn] {
            check_grouped_image(n, crash, &backend.image(crash), &outcomes);
        }
    }
    eprintln!(
        "group commit fault injection: {} of {total} fault points checked, 3 crash images \
         each; the fault-free run made {commits} commits for {} grouped writes",
        points.len(),
        outcomes.len()
    );
}
