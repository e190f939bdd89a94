//! ops_model: operation sequences against crmdb and the reference model.

use std::collections::BTreeMap;
use std::sync::Arc;

use crmdb::{
    Contact, ContactId, Database, EntityKind, ManualClock, Money, Order, OrderStatus, Query,
    RoaringBitmap, Snapshot, Stage, Timestamp, WriteTransaction,
};

use super::EPOCH;
use super::ops::{
    ACTOR, EMAILS, KNOWN_STAGES, NAMES, Op, REGIONS, STAGES, TAGS, VALID_TAGS, decode_ops,
};
use super::reference::{Model, normalised};

/// Runs `op` on the engine; returns whether it was accepted.
fn run(tx: &mut WriteTransaction, model: &Model, op: &Op, now: Timestamp) -> bool {
    let id = |target: usize| ContactId::new(target as u32);
    let result = match *op {
        Op::Insert {
            name,
            email,
            region,
            tags,
            value,
            stage,
        } => tx
            .insert(Contact {
                name: NAMES[name].into(),
                email: email.map(|e| EMAILS[e].to_owned()),
                region: region.map(|r| REGIONS[r].to_owned()),
                tags: (0..VALID_TAGS)
                    .filter(|bit| tags & (1 << bit) != 0)
                    .map(|bit| TAGS[bit].to_owned())
                    .collect(),
                lifetime_value: Money(i64::from(value) * 100),
                stage: stage.map(|s| Stage::new(STAGES[s])).unwrap_or_default(),
                ..Default::default()
            })
            .map(|_| ()),
        Op::Update {
            target,
            name,
            email,
            region,
            value,
        } => {
            // The caller's version: what it last read, with its edits.
            let mut record = model.contacts.get(target).cloned().unwrap_or_default();
            record.name = NAMES[name].into();
            record.email = email.map(|e| EMAILS[e].to_owned());
            record.region = region.map(|r| REGIONS[r].to_owned());
            record.lifetime_value = Money(i64::from(value) * 100);
            tx.update(id(target), record)
        }
        Op::AddTag { target, tag } => tx.add_tag(id(target), TAGS[tag]),
        Op::RemoveTag { target, tag } => tx.remove_tag(id(target), TAGS[tag]),
        Op::Move { target, stage } => tx.move_stage(id(target), STAGES[stage]),
        Op::Regress {
            target,
            stage,
            reason,
        } => tx.regress(
            id(target),
            STAGES[stage],
            if reason { "win back" } else { "" },
        ),
        Op::SoftDelete { target } => tx.soft_delete(id(target)),
        Op::Restore { target } => tx.restore(id(target)),
        Op::PaidOrder { target, amount } => tx
            .insert(Order {
                contact: Some(id(target)),
                at: now,
                status: OrderStatus::Paid,
                currency: "EUR".into(),
                total: Money(i64::from(amount) * 100),
                ..Default::default()
            })
            .map(|_| ()),
        Op::Commit | Op::Abort => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(crmdb::Error::Storage(e)) => panic!("{op:?} hit a storage error: {e}"),
        Err(crmdb::Error::Poisoned) => panic!("{op:?} found the transaction poisoned"),
        Err(_) => false,
    }
}

/// Rows must equal the model.
fn compare_rows<S: Snapshot>(snap: &S, model: &Model, context: &str) {
    let contacts: Vec<Contact> = snap
        .records::<Contact>()
        .expect("reading contacts")
        .into_iter()
        .enumerate()
        .map(|(i, (id, c))| {
            assert_eq!(id.get() as usize, i, "{context}: contact ids are not dense");
            c
        })
        .collect();
    assert_eq!(contacts, model.contacts, "{context}: contacts differ");
    let orders: Vec<Order> = snap
        .records::<Order>()
        .expect("reading orders")
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(orders, model.orders, "{context}: orders differ");
}

/// Rows, histories, unique keys and every index the model can predict must agree.
fn compare_all<S: Snapshot>(snap: &S, model: &Model, context: &str) {
    compare_rows(snap, model, context);
    let ok = |r: crmdb::Result<u64>, what: &str| -> u64 {
        r.unwrap_or_else(|e| panic!("{context}: counting {what}: {e}"))
    };
    let live: Vec<(usize, &Contact)> = model
        .contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.deleted_at.is_none())
        .collect();
    for (i, history) in model.histories.iter().enumerate() {
        let stored = snap
            .history(ContactId::new(i as u32))
            .expect("reading a history");
        assert_eq!(
            &stored, history,
            "{context}: history of contact {i} differs"
        );
    }

    let live_ids: RoaringBitmap = live.iter().map(|(i, _)| *i as u32).collect();
    let deleted_ids: RoaringBitmap = (0..model.contacts.len() as u32)
        .filter(|i| !live_ids.contains(*i))
        .collect();
    assert_eq!(
        snap.live(EntityKind::Contact).expect("live"),
        live_ids,
        "{context}: live"
    );
    assert_eq!(
        snap.deleted(EntityKind::Contact).expect("deleted"),
        deleted_ids,
        "{context}: recycle bin"
    );
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &Query::all()), "*"),
        live.len() as u64,
        "{context}: *"
    );

    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for (_, c) in &live {
        for tag in &c.tags {
            *tags.entry(tag.clone()).or_default() += 1;
        }
    }
    let stored: BTreeMap<String, u64> = snap
        .tags(EntityKind::Contact)
        .expect("tag counts")
        .into_iter()
        .map(|t| (t.tag, t.count))
        .collect();
    assert_eq!(stored, tags, "{context}: tag counts differ");
    for (tag, n) in &tags {
        assert_eq!(
            ok(snap.count(EntityKind::Contact, &Query::tag(tag)), tag),
            *n,
            "{context}: tag:{tag}"
        );
    }
    for stage in &STAGES[..KNOWN_STAGES] {
        let n = live
            .iter()
            .filter(|(_, c)| c.stage.as_str() == *stage)
            .count();
        assert_eq!(
            ok(
                snap.count(EntityKind::Contact, &Query::stage(*stage)),
                stage
            ),
            n as u64,
            "{context}: stage:{stage}"
        );
    }
    for region in REGIONS {
        let n = live
            .iter()
            .filter(|(_, c)| c.region.as_deref() == Some(region))
            .count();
        let q = Query::field("region").eq(region);
        assert_eq!(
            ok(snap.count(EntityKind::Contact, &q), region),
            n as u64,
            "{context}: region {region}"
        );
    }
    let rich = live
        .iter()
        .filter(|(_, c)| c.lifetime_value.0 >= 10_000)
        .count();
    let q = Query::field("lifetime_value").ge(100);
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &q), "value"),
        rich as u64,
        "{context}: lifetime_value >= 100"
    );
    let buyers = live
        .iter()
        .filter(|(_, c)| c.stats.order_count >= 2)
        .count();
    let q = Query::field("order_count").ge(2);
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &q), "orders"),
        buyers as u64,
        "{context}: order_count >= 2"
    );
    for email in EMAILS {
        let holder = model
            .contacts
            .iter()
            .position(|c| c.email.as_deref().map(normalised) == Some(normalised(email)))
            .map(|i| ContactId::new(i as u32));
        assert_eq!(
            snap.contact_by_email(email).expect("email lookup"),
            holder,
            "{context}: holder of {email:?}"
        );
    }
}

/// Applies the operations decoded from `data` to a fresh in-memory database and to the
/// model: every operation must be accepted or refused as the model says; a refused one
/// must leave the transaction as it was; after every commit or abort the committed state
/// must equal the model, indexes included.
pub fn check_ops_model(data: &[u8]) {
    let ops = decode_ops(data);
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let db = Database::builder()
        .clock(clock.clone())
        .in_memory()
        .expect("an in-memory database opens");
    let mut committed = Model::default();
    let mut pending = Model::default();
    let mut tx: Option<WriteTransaction> = None;
    for (step, op) in ops.iter().enumerate() {
        let now = Timestamp(EPOCH + 60 * (step as i64 + 1));
        clock.set(now);
        let context = format!("step {step} ({op:?})");
        match op {
            Op::Commit => {
                if let Some(tx) = tx.take() {
                    tx.commit()
                        .unwrap_or_else(|e| panic!("{context}: commit: {e}"));
                }
                committed = pending.clone();
                db.read(|r| {
                    compare_all(r, &committed, &context);
                    Ok(())
                })
                .expect("reading the committed state");
            }
            Op::Abort => {
                if let Some(tx) = tx.take() {
                    tx.abort()
                        .unwrap_or_else(|e| panic!("{context}: abort: {e}"));
                }
                pending = committed.clone();
                db.read(|r| {
                    compare_all(r, &committed, &context);
                    Ok(())
                })
                .expect("reading the committed state");
            }
            _ => {
                let tx = match &mut tx {
                    Some(tx) => tx,
                    None => {
                        let mut fresh = db.begin_write().expect("begin a write transaction");
                        fresh.set_actor(ACTOR);
                        tx.insert(fresh)
                    }
                };
                let before = pending.clone();
                let expected = pending.apply(op, now);
                let accepted = run(tx, &before, op, now);
                assert_eq!(
                    accepted,
                    expected,
                    "{context}: the engine {} it, the model {} it",
                    if accepted { "accepted" } else { "refused" },
                    if expected { "accepts" } else { "refuses" },
                );
                compare_rows(&*tx, &pending, &context);
            }
        }
    }
    drop(tx);
    db.read(|r| {
        compare_all(r, &committed, "after rolling back the open transaction");
        Ok(())
    })
    .expect("reading the committed state");
}
