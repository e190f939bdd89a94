//! I/O fault injection: a redb `StorageBackend` that fails its Nth mutating call (and every
//! call after it, like a disk that died) runs a fixed CRM workload once for every N. The
//! bytes left behind are then reopened as a crash would leave them, and the database must
//! hold exactly the state of the last successful commit, indexes and histories included,
//! or, when a commit itself failed, either the state before or the state after it.
//!
//! Three crash images are checked for every fault point:
//! - **written**: every write issued before the fault reached the disk;
//! - **synced**: only what the last successful `sync_data` covered survived;
//! - **torn**: what was synced plus the first half of the writes issued after it.
//!
//! By default a deterministic sample of the fault points runs; set `CRMDB_FAULT_FULL=1`
//! to run every one of them.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crmdb::{
    Builder, ChangeKind, Contact, ContactId, Database, EntityKind, ManualClock, Money, Order,
    OrderId, OrderStatus, Query, RoaringBitmap, Snapshot, StageChange, Timestamp,
};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;

mod group_commit;

/// 2026-01-01T00:00:00Z.
const EPOCH: i64 = 1_767_225_600;
const STAGES: [&str; 6] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
];
/// How many fault points the default run checks at most, spread evenly.
const SAMPLE: u64 = 150;

/// One mutation issued after the last successful sync.
#[derive(Debug, Clone)]
enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// The shared state of the simulated disk.
#[derive(Debug, Default)]
struct Disk {
    /// Mutating calls (write, set_len, sync_data) seen so far, including the failed one.
    calls: u64,
    /// The 1-based call that fails; 0 never fails.
    fail_at: u64,
    /// Set once the fault fired: every later mutating call fails too.
    crashed: bool,
    /// The bytes as of the last successful `sync_data`.
    synced: Vec<u8>,
    /// Mutations since then, in order.
    unsynced: Vec<Unsynced>,
}

/// A `StorageBackend` over an in-memory store shared with the test through `Arc`s.
#[derive(Debug, Clone)]
struct FaultyBackend {
    bytes: Arc<InMemoryBackend>,
    disk: Arc<Mutex<Disk>>,
}

fn all_bytes(backend: &InMemoryBackend) -> io::Result<Vec<u8>> {
    let len = backend.len()?;
    let mut out = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    backend.read(0, &mut out)?;
    Ok(out)
}

impl FaultyBackend {
    fn new(fail_at: u64) -> FaultyBackend {
        FaultyBackend {
            bytes: Arc::new(InMemoryBackend::new()),
            disk: Arc::new(Mutex::new(Disk {
                fail_at,
                ..Disk::default()
            })),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one mutating call and decides whether it fails.
    fn admit(&self, disk: &mut Disk) -> io::Result<()> {
        if disk.crashed {
            return Err(io::Error::other("the disk failed earlier"));
        }
        disk.calls += 1;
        if disk.calls == disk.fail_at {
            disk.crashed = true;
            return Err(io::Error::other("injected fault"));
        }
        Ok(())
    }

    /// The bytes a crash right now would leave behind.
    fn image(&self, crash: Crash) -> Vec<u8> {
        let disk = self.disk();
        match crash {
            Crash::Written => all_bytes(&self.bytes).expect("reading the in-memory store"),
            Crash::Synced => disk.synced.clone(),
            Crash::Torn => {
                let mut image = disk.synced.clone();
                let kept = disk.unsynced.len().div_ceil(2);
                for mutation in &disk.unsynced[..kept] {
                    match mutation {
                        Unsynced::SetLen(len) => {
                            image.resize(usize::try_from(*len).expect("length"), 0)
                        }
                        Unsynced::Write { offset, data } => {
                            let start = usize::try_from(*offset).expect("offset");
                            if image.len() < start + data.len() {
                                image.resize(start + data.len(), 0);
                            }
                            image[start..start + data.len()].copy_from_slice(data);
                        }
                    }
                }
                image
            }
        }
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.bytes.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.bytes.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.disk();
        self.admit(&mut disk)?;
        self.bytes.set_len(len)?;
        disk.unsynced.push(Unsynced::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut disk = self.disk();
        self.admit(&mut disk)?;
        self.bytes.sync_data()?;
        disk.synced = all_bytes(&self.bytes)?;
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.disk();
        self.admit(&mut disk)?;
        self.bytes.write(offset, data)?;
        disk.unsynced.push(Unsynced::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}

/// What survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Written,
    Synced,
    Torn,
}

/// Everything the workload can observe of a database, rows and indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    contacts: Vec<(ContactId, Contact)>,
    orders: Vec<(OrderId, Order)>,
    histories: Vec<Vec<StageChange>>,
    live: RoaringBitmap,
    deleted: RoaringBitmap,
    tags: Vec<crmdb::TagCount>,
    stage_counts: Vec<u64>,
    query_counts: Vec<(String, u64)>,
    emails: Vec<Option<ContactId>>,
    /// The commit sequence: a crash image holds the number of its last commit.
    sequence: u64,
    /// Every batch of the change log, summarised: one event for every committed change,
    /// none for an uncommitted one.
    log: Vec<String>,
    /// The watched segment's members, and the durable consumer's position.
    members: Option<RoaringBitmap>,
    consumers: Vec<(String, u64)>,
}

/// One line per batch: its sequence and actor, then each event's name, target, cause
/// and (for membership events) ids.
fn summarise(batches: &[crmdb::feed::Batch]) -> Vec<String> {
    use crmdb::feed::Change;
    batches
        .iter()
        .map(|batch| {
            let events: Vec<String> = batch
                .events
                .iter()
                .map(|e| match &e.change {
                    Change::Entered { segment, ids, .. } | Change::Left { segment, ids, .. } => {
                        format!("{} {segment} {ids:?}", e.change.name())
                    }
                    change => format!("{} {:?} {:?}", change.name(), change.target(), e.cause),
                })
                .collect();
            format!("{} {}: {}", batch.sequence, batch.actor, events.join(", "))
        })
        .collect()
}

const QUERIES: [&str; 6] = [
    "*",
    "order_count >= 1",
    "total_spent >= 100",
    "region = \"shanghai\" AND NOT stage:prospect",
    "lifetime_value between 10 and 1000",
    "last_order exists OR stage:churned",
];
const EMAILS: [&str; 4] = [
    "ann@example.com",
    "bob@example.com",
    "cy@example.com",
    "dee@example.com",
];

fn capture(db: &Database) -> crmdb::Result<State> {
    db.read(|r| {
        let contacts = r.records::<Contact>()?;
        let mut histories = Vec::new();
        for (id, _) in &contacts {
            histories.push(r.history(*id)?);
        }
        let mut stage_counts = Vec::new();
        for stage in STAGES {
            stage_counts.push(r.count(EntityKind::Contact, &Query::stage(stage))?);
        }
        let mut query_counts = Vec::new();
        for text in QUERIES {
            let n = r.count(EntityKind::Contact, &Query::parse(text)?)?;
            query_counts.push((text.to_owned(), n));
        }
        let mut emails = Vec::new();
        for email in EMAILS {
            emails.push(r.contact_by_email(email)?);
        }
        let watched = r.watched()?.iter().any(|(name, _)| name == "shanghai");
        Ok(State {
            log: summarise(&r.changes(0, usize::MAX)?),
            members: if watched {
                Some(r.members("shanghai")?)
            } else {
                None
            },
            consumers: r
                .consumers()?
                .into_iter()
                .map(|c| (c.name, c.acknowledged))
                .collect(),
            sequence: r.sequence()?,
            orders: r.records::<Order>()?,
            histories,
            live: r.live(EntityKind::Contact)?,
            deleted: r.deleted(EntityKind::Contact)?,
            tags: r.tags(EntityKind::Contact)?,
            stage_counts,
            query_counts,
            emails,
            contacts,
        })
    })
}

/// The indexes of `state` must agree with its rows: tags, stages and the live set
/// recomputed from the contacts themselves.
fn check_indexes_match_rows(state: &State) {
    let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
    let mut stages = vec![0u64; STAGES.len()];
    let mut live = RoaringBitmap::new();
    for (id, contact) in &state.contacts {
        if contact.deleted_at.is_some() {
            continue;
        }
        live.insert(id.get());
        for tag in &contact.tags {
            *tags.entry(tag).or_default() += 1;
        }
        let at = STAGES
            .iter()
            .position(|s| *s == contact.stage.as_str())
            .expect("a known stage");
        stages[at] += 1;
    }
    let indexed: BTreeMap<&str, u64> = state
        .tags
        .iter()
        .map(|t| (t.tag.as_str(), t.count))
        .collect();
    assert_eq!(indexed, tags, "tag index disagrees with the rows");
    assert_eq!(
        state.stage_counts, stages,
        "stage index disagrees with the rows"
    );
    assert_eq!(state.live, live, "live set disagrees with the rows");
    assert_eq!(
        state.query_counts[0].1,
        live.len(),
        "* disagrees with the rows"
    );
}

fn contact(name: &str, email: &str, region: &str, tags: &[&str], value: i64) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        region: Some(region.into()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        lifetime_value: Money(value * 100),
        ..Default::default()
    }
}

fn paid(contact: u32, total: i64, at: Timestamp) -> Order {
    Order {
        contact: Some(ContactId::new(contact)),
        at,
        status: OrderStatus::Paid,
        currency: "EUR".into(),
        total: Money(total * 100),
        ..Default::default()
    }
}

type Step = fn(&mut crmdb::WriteTransaction) -> crmdb::Result<()>;

/// The workload: one write transaction per step, each committed.
const STEPS: [Step; 7] = [
    |tx| {
        tx.insert(contact("Ann", EMAILS[0], "shanghai", &["vip"], 50))?;
        tx.insert(contact("Bob", EMAILS[1], "beijing", &["vip", "gold"], 900))?;
        tx.insert(contact("Cy", EMAILS[2], "shanghai", &[], 5))?;
        Ok(())
    },
    |tx| {
        let (ann, bob) = (ContactId::new(0), ContactId::new(1));
        tx.move_stage(bob, "responder")?;
        tx.add_tag(ann, "gold")?;
        let query = Query::parse("region = \"shanghai\" AND order_count >= 1")?;
        let kind = EntityKind::Contact;
        tx.save_segment("shanghai", crmdb::SavedSegment::Dynamic { kind, query })?;
        tx.watch("shanghai")?;
        tx.register_consumer("sink", 0)?;
        Ok(())
    },
    |tx| {
        // First paid orders: prospect and responder both move to new_customer.
        let now = tx.now();
        tx.insert(paid(0, 120, now))?;
        tx.insert(paid(1, 30, now))?;
        Ok(())
    },
    |tx| {
        // A repeat order: new_customer moves to active.
        let now = tx.now();
        tx.insert(paid(0, 80, now))?;
        tx.remove_tag(ContactId::new(1), "vip")?;
        tx.acknowledge("sink", 2)?;
        Ok(())
    },
    |tx| {
        tx.soft_delete(ContactId::new(2))?;
        tx.move_stage(ContactId::new(1), "active")?;
        tx.insert(contact("Dee", EMAILS[3], "shenzhen", &["b2b"], 0))?;
        Ok(())
    },
    |tx| {
        // Dormant, then an order wins the contact back automatically.
        let bob = ContactId::new(1);
        tx.move_stage(bob, "dormant")?;
        let now = tx.now();
        tx.insert(paid(1, 15, now))?;
        tx.regress(ContactId::new(0), "responder", "asked for a fresh start")?;
        Ok(())
    },
    |tx| {
        tx.modify(ContactId::new(3), |c| c.region = Some("shanghai".into()))?;
        tx.add_tag(ContactId::new(0), "churn_risk")?;
        tx.restore(ContactId::new(2))?;
        Ok(())
    },
];

fn builder(clock: &Arc<ManualClock>) -> Builder {
    let mut builder = Builder::new();
    builder.clock(clock.clone()).cache_size(1 << 20);
    builder
}

/// What one run over a faulty backend did.
struct Run {
    backend: FaultyBackend,
    /// Whether the open succeeded, then the outcome of each step that was tried; the run
    /// stops at the first failure.
    opened: bool,
    committed: Vec<bool>,
    /// States after the open and after each successful commit, as the live handle saw them.
    states: Vec<State>,
}

fn run_workload(fail_at: u64) -> Run {
    let backend = FaultyBackend::new(fail_at);
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let mut run = Run {
        backend: backend.clone(),
        opened: false,
        committed: Vec::new(),
        states: Vec::new(),
    };
    let Ok(db) = builder(&clock).with_backend(backend) else {
        return run;
    };
    run.opened = true;
    run.states.push(capture(&db).expect("reading after open"));
    for step in STEPS {
        clock.advance_days(1);
        let ok = db.write(step).is_ok();
        run.committed.push(ok);
        if !ok {
            break;
        }
        run.states
            .push(capture(&db).expect("reading after a commit"));
    }
    drop(db);
    run
}

fn reopen(image: &[u8]) -> crmdb::Result<Database> {
    let backend = InMemoryBackend::new();
    backend.set_len(image.len() as u64)?;
    backend.write(0, image)?;
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH + 100 * 86_400)));
    builder(&clock).with_backend(backend)
}

/// Checks every crash image of the run with the fault at `fail_at`. `reference` holds the
/// states of a fault-free run: after the open, then after each step.
fn check_fault_point(fail_at: u64, reference: &[State], refused: &mut Vec<String>) -> bool {
    let run = run_workload(fail_at);
    let hit = run.backend.disk().crashed;
    // The live handle saw exactly the reference states while it worked.
    assert_eq!(
        run.states[..],
        reference[..run.states.len()],
        "fault {fail_at}: the live database diverged from the fault-free run"
    );
    // The last state a successful call promised, and the one a failed commit may have
    // reached.
    let succeeded = run.committed.iter().filter(|ok| **ok).count();
    let mut allowed: Vec<&State> = Vec::new();
    if run.opened {
        allowed.push(&reference[succeeded]);
        if run.committed.last() == Some(&false) {
            allowed.push(&reference[succeeded + 1]);
        }
    } else {
        // Nothing was promised; a database created on reopen is empty.
        allowed.push(&reference[0]);
    }
    for crash in [Crash::Written, Crash::Synced, Crash::Torn] {
        let image = run.backend.image(crash);
        let mut db = match reopen(&image) {
            Ok(db) => db,
            // A crash while the file was being created, before the open returned: nothing
            // was promised, and the half-made file is refused with a typed error.
            Err(crmdb::Error::Storage(_)) if !run.opened => {
                refused.push(format!("fault {fail_at}, {crash:?} image"));
                continue;
            }
            Err(e) => panic!("fault {fail_at}, {crash:?} image: reopening failed: {e}"),
        };
        let state = capture(&db)
            .unwrap_or_else(|e| panic!("fault {fail_at}, {crash:?} image: reading failed: {e}"));
        assert!(
            allowed.contains(&&state),
            "fault {fail_at}, {crash:?} image (opened: {}, commits: {:?}): the database holds \
             a state that was never committed:\n{state:#?}\nexpected one of:\n{allowed:#?}",
            run.opened,
            run.committed,
        );
        check_indexes_match_rows(&state);
        // The reopened database keeps working.
        db.write(|tx| {
            tx.insert(contact("Eve", "eve@example.com", "x", &["new"], 1))
                .map(|_| ())
        })
        .unwrap_or_else(|e| panic!("fault {fail_at}, {crash:?} image: writing failed: {e}"));
        // The sequence continues without a gap, and the log with it.
        let next: Vec<u64> = db
            .changes(state.sequence, 10)
            .unwrap_or_else(|e| panic!("fault {fail_at}, {crash:?} image: reading the log: {e}"))
            .iter()
            .map(|b| b.sequence)
            .collect();
        assert_eq!(
            next,
            [state.sequence + 1],
            "fault {fail_at}, {crash:?} image: the next commit"
        );
        assert_eq!(
            db.check_integrity().ok(),
            Some(true),
            "fault {fail_at}, {crash:?} image: integrity check"
        );
    }
    hit
}

/// The fault points to check: all of them, or an even deterministic sample that always
/// includes the first and the last.
fn fault_points(total: u64) -> Vec<u64> {
    let full = std::env::var("CRMDB_FAULT_FULL").is_ok_and(|v| v == "1");
    if full || total <= SAMPLE {
        return (1..=total).collect();
    }
    let mut points: Vec<u64> = (0..SAMPLE)
        .map(|i| 1 + i * (total - 1) / (SAMPLE - 1))
        .collect();
    points.dedup();
    points
}

#[test]
fn every_fault_point_recovers_to_a_committed_state() {
    // A fault-free run gives the reference states and counts the fault points.
    let clean = run_workload(0);
    assert!(clean.opened, "the fault-free run opens");
    assert!(
        clean.committed.iter().all(|ok| *ok),
        "the fault-free run commits every step"
    );
    assert_eq!(clean.states.len(), STEPS.len() + 1);
    let total = clean.backend.disk().calls;
    assert!(total > 0, "the workload writes");
    let reference = clean.states;

    // The workload's own promises, so that a reference state is not just whatever the
    // engine did.
    let last = reference.last().expect("a final state");
    let stage = |i: usize| last.contacts[i].1.stage.as_str().to_owned();
    assert_eq!(
        [stage(0), stage(1), stage(2), stage(3)],
        ["responder", "active", "prospect", "prospect"]
    );
    let bob = &last.histories[1];
    assert_eq!(bob.last().map(|c| c.kind), Some(ChangeKind::Automatic));
    assert_eq!(last.contacts[0].1.stats.order_count, 2);
    let tag_counts: Vec<(String, u64)> =
        last.tags.iter().map(|t| (t.tag.clone(), t.count)).collect();
    assert_eq!(
        tag_counts,
        [
            ("gold".into(), 2),
            ("b2b".into(), 1),
            ("churn_risk".into(), 1),
            ("vip".into(), 1)
        ]
    );
    for state in &reference {
        check_indexes_match_rows(state);
    }

    let points = fault_points(total);
    let mut refused = Vec::new();
    for &n in &points {
        let hit = check_fault_point(n, &reference, &mut refused);
        assert!(hit, "fault {n} of {total} was never reached");
    }
    // One past the last call: the workload must run to the end untouched.
    assert!(
        !check_fault_point(total + 1, &reference, &mut refused),
        "a fault past the workload fired"
    );
    eprintln!(
        "fault injection: {} of {total} fault points checked, 3 crash images each; \
         {} images of a file whose creation crashed were refused: {refused:?}",
        points.len(),
        refused.len()
    );
}
