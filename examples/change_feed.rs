//! The change feed at work. A writer thread records inbound activities, orders, tag
//! changes, a refresh and a sweep; a durable consumer thread follows the feed, prints
//! every batch and acknowledges it. A watched segment of recently active contacts says
//! who entered and who left it, including a contact who leaves only because time passed.
//!
//! Run with `cargo run --example change_feed`.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crmdb::feed::{Batch, Change};
use crmdb::{
    Activity, ActivityKind, Contact, ContactId, Database, Direction, EntityKind, ManualClock,
    Money, Order, Query, SavedSegment, Snapshot, Subject, Timestamp,
};

/// The segment the example watches.
const RECENT: &str = "recently_active";
/// The durable consumer's name.
const CONSUMER: &str = "printer";
/// The consumer gives up after this many waits, so the example always ends.
const MAX_WAITS: usize = 200;
/// How long one wait lasts when nothing is committed.
const WAIT: Duration = Duration::from_millis(100);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock: the example moves time on by hand.
    let start = Timestamp::from_ymd(2026, 3, 1).ok_or("bad start date")?;
    let clock = Arc::new(ManualClock::new(start));
    let db = Database::builder().clock(clock.clone()).in_memory()?;

    let contacts = db.write(|tx| {
        let mut contact = |name: &str| {
            tx.insert(Contact {
                name: name.into(),
                ..Default::default()
            })
        };
        Ok::<_, crmdb::Error>([contact("Ana")?, contact("Ben")?, contact("Chen")?])
    })?;
    // Watching a segment keeps its members, and every commit that changes them says so
    // in the feed. Nobody has an activity yet: it starts empty.
    let query = Query::parse("last_activity within 30d")?;
    let kind = EntityKind::Contact;
    db.write(|tx| {
        tx.save_segment(RECENT, SavedSegment::Dynamic { kind, query })?;
        tx.watch(RECENT)
    })?;
    // A durable consumer reading from the start of the log. Retention keeps what it has
    // not acknowledged.
    db.write(|tx| tx.register_consumer(CONSUMER, 0))?;

    let (done, finished) = mpsc::channel();
    let consumer = {
        let db = db.clone();
        thread::spawn(move || follow(&db, &finished))
    };
    let writer = {
        let db = db.clone();
        thread::spawn(move || write(&db, &clock, contacts, &done))
    };
    writer.join().map_err(|_| "the writer panicked")??;
    consumer.join().map_err(|_| "the consumer panicked")??;

    db.read(|r| {
        for consumer in r.consumers()? {
            println!("{} acknowledged #{}", consumer.name, consumer.acknowledged);
        }
        let members: Vec<u32> = r.members(RECENT)?.iter().collect();
        println!("{RECENT} now holds {members:?}");
        Ok(())
    })?;
    Ok(())
}

/// The writer: each step one transaction, under an actor that says who made it.
fn write(
    db: &Database,
    clock: &ManualClock,
    [ana, ben, chen]: [ContactId; 3],
    done: &mpsc::Sender<u64>,
) -> crmdb::Result<()> {
    let inbound = |actor: &str, who: ContactId| {
        db.write(|tx| {
            tx.set_actor(actor);
            let now = tx.now();
            let email = Activity::new(
                ActivityKind::Email,
                Direction::Inbound,
                Subject::Contact(who),
                now,
            );
            tx.insert(email)
        })
    };
    // Ben and Chen write in: responders now, and recently active.
    inbound("inbox", ben)?;
    inbound("inbox", chen)?;
    // Ana orders twice: a new customer, then an active one.
    for _ in 0..2 {
        db.write(|tx| {
            tx.set_actor("shop");
            let now = tx.now();
            tx.insert(Order {
                contact: Some(ana),
                at: now,
                total: Money::from_major(40),
                currency: "EUR".into(),
                ..Default::default()
            })
        })?;
    }
    db.write(|tx| {
        tx.set_actor("sales");
        tx.add_tag(ana, "vip")?;
        tx.add_tag(ben, "trial")?;
        tx.remove_tag(ben, "trial")
    })?;

    // A month on. Chen writes again; Ben's last activity is now 31 days old, but
    // nothing wrote to Ben, so only a refresh finds that he left.
    clock.advance_days(31);
    inbound("inbox", chen)?;
    db.write(|tx| {
        tx.set_actor("refresher");
        let now = tx.now();
        tx.refresh_watched(now)
    })?;

    // Two more months: Ana has not ordered for 91 days and the sweep makes her dormant.
    // The sweep refreshes the watched segments too: Chen leaves.
    clock.advance_days(60);
    db.write(|tx| {
        tx.set_actor("sweeper");
        let now = tx.now();
        tx.sweep(now)
    })?;

    // The consumer stops once it has seen the last commit.
    let last = db.read(|r| r.sequence())?;
    let _ = done.send(last);
    Ok(())
}

/// The consumer: waits for batches after its acknowledged position, prints them and
/// acknowledges them, until it has seen the writer's last commit.
fn follow(db: &Database, finished: &mpsc::Receiver<u64>) -> crmdb::Result<()> {
    let mut after = db.read(|r| {
        let position = r.consumers()?.into_iter().find(|c| c.name == CONSUMER);
        Ok(position.map_or(0, |c| c.acknowledged))
    })?;
    let mut last = None;
    for _ in 0..MAX_WAITS {
        let batches = db.wait_changes(after, 16, WAIT)?;
        for batch in &batches {
            print_batch(db, batch)?;
            after = batch.sequence;
        }
        if !batches.is_empty() {
            // Bookkeeping takes no sequence number: acknowledging wakes nobody.
            db.write(|tx| tx.acknowledge(CONSUMER, after))?;
        }
        last = last.or_else(|| finished.try_recv().ok());
        if last.is_some_and(|last| after >= last) {
            return Ok(());
        }
    }
    println!("the consumer gave up after {MAX_WAITS} waits");
    Ok(())
}

/// One line per batch (sequence, actor, each event with the record it is about), then
/// one line per segment membership change, with the contacts' names and the cause.
fn print_batch(db: &Database, batch: &Batch) -> crmdb::Result<()> {
    let events: Vec<String> = batch
        .events
        .iter()
        .map(|event| match event.change.target() {
            Some((kind, id)) => format!("{} {kind}/{id}", event.change.name()),
            None => event.change.name().to_owned(),
        })
        .collect();
    println!(
        "#{:<3} {:<10} {}",
        batch.sequence,
        batch.actor,
        events.join(", ")
    );
    for event in &batch.events {
        let (segment, ids, verb) = match &event.change {
            Change::Entered { segment, ids, .. } => (segment, ids, "entered"),
            Change::Left { segment, ids, .. } => (segment, ids, "left"),
            _ => continue,
        };
        let names = db.read(|r| {
            ids.iter()
                .map(|id| Ok(r.get(ContactId::new(id))?.name))
                .collect::<crmdb::Result<Vec<_>>>()
        })?;
        if !names.is_empty() {
            println!(
                "       {segment}: {} {verb} (cause: {:?})",
                names.join(", "),
                event.cause
            );
        }
    }
    Ok(())
}
