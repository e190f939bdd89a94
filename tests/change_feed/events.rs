//! What each write leaves in the log: one batch per commit with its sequence, time and
//! actor; record, tag, stage and configuration events with their causes; and a replay
//! of the record events that equals the database.

use crmdb::feed::{Cause, Change};
use crmdb::{
    ChangeKind, Contact, Database, EntityKind, Error, FieldDef, FieldType, Machines, Order,
    SavedSegment, Snapshot, Stage, Value,
};

use crate::support::{
    Replica, all_batches, apply, clocked, contact, inbound, paid_order, records, t0,
};

fn names(batch: &crmdb::feed::Batch) -> Vec<&'static str> {
    batch.events.iter().map(|e| e.change.name()).collect()
}

#[test]
fn every_write_leaves_its_events_in_one_batch_per_commit() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let ada = db.write(|tx| {
        tx.set_actor("alice");
        tx.insert(contact("Ada", "ada@example.com"))
    })?;
    let batches = db.changes(0, 100)?;
    assert_eq!(batches.len(), 1);
    let first = &batches[0];
    assert_eq!(
        (first.sequence, first.actor.as_str(), first.time),
        (1, "alice", t0())
    );
    assert_eq!(names(first), ["inserted", "stage_changed"]);
    assert_eq!(first.events[0].cause, Cause::Write);
    let Change::Inserted { id, record } = &first.events[0].change else {
        panic!("an insert event first");
    };
    assert_eq!((record.kind(), *id), (EntityKind::Contact, ada.get()));
    let Change::StageChanged { change, .. } = &first.events[1].change else {
        panic!("the create move");
    };
    assert_eq!(
        (change.from.as_ref(), change.to.as_str()),
        (None, "prospect")
    );

    db.write(|tx| {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("score", FieldType::Integer),
        )
    })?;
    clock.advance_days(1);
    db.write(|tx| -> crmdb::Result<()> {
        tx.add_tag(ada, "vip")?;
        tx.modify(ada, |c| c.phone = Some("+44 20 7946 0000".into()))?;
        tx.modify(ada, |c| {
            c.custom.insert("score".into(), Value::Integer(3));
        })
    })?;
    let schema = db.changes(1, 1)?.pop().expect("the schema batch");
    assert_eq!(names(&schema), ["schema_changed"]);
    let batch = db.changes(2, 100)?.pop().expect("a third batch");
    assert_eq!(batch.sequence, 3);
    assert_eq!(batch.time, t0().plus_days(1));
    assert_eq!(
        names(&batch),
        ["updated", "tag_added"],
        "one update of the record for the whole transaction, with its tag event"
    );
    let Change::Updated { before, after, .. } = &batch.events[0].change else {
        panic!("an update");
    };
    assert_eq!(
        batch.events[0].change.changed_fields(),
        ["phone", "tags", "custom.score", "updated_at"],
        "in declaration order"
    );
    let (crmdb::AnyRecord::Contact(before), crmdb::AnyRecord::Contact(after)) = (before, after)
    else {
        panic!("contact images");
    };
    assert_eq!(
        (before.phone.as_deref(), after.phone.as_deref()),
        (None, Some("+44 20 7946 0000"))
    );
    assert!(before.tags.is_empty() && after.tags.contains("vip"));

    // An order moves its contact automatically: the contact's events name the order.
    let order = db.write(|tx| tx.insert(paid_order(ada, db.now())))?;
    let batch = db.changes(3, 1)?.pop().expect("a batch");
    assert_eq!(names(&batch), ["inserted", "updated", "stage_changed"]);
    let effect = Cause::Effect {
        kind: EntityKind::Order,
        id: order.get(),
    };
    assert_eq!(batch.events[0].cause, Cause::Write);
    assert_eq!(batch.events[1].cause, effect);
    assert_eq!(batch.events[2].cause, effect);
    let Change::StageChanged { change, .. } = &batch.events[2].change else {
        panic!("a stage change");
    };
    assert!(matches!(change.kind, ChangeKind::Automatic));
    assert_eq!(change.to.as_str(), "new_customer");

    // Soft delete, restore, purge.
    db.write(|tx| tx.soft_delete(order))?;
    db.write(|tx| tx.restore(order))?;
    db.write(|tx| -> crmdb::Result<()> {
        tx.soft_delete(order)?;
        tx.purge(order)
    })?;
    let tail = db.changes(4, 10)?;
    let kinds: Vec<Vec<&str>> = tail.iter().map(names).collect();
    assert_eq!(
        kinds,
        [
            vec!["deleted", "updated"],
            vec!["restored", "updated"],
            vec!["deleted", "updated", "purged"],
        ],
        "the contact's figures follow its order"
    );
    assert_replay_matches(&db)
}

#[test]
fn sweeps_remaps_and_configuration_changes_have_their_own_events() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let ada = db.write(|tx| -> crmdb::Result<_> {
        let id = tx.insert(contact("Ada", "ada@example.com"))?;
        tx.move_stage(id, "active")?;
        Ok(id)
    })?;
    let moved = db.write(|tx| tx.sweep(t0().plus_days(100)))?;
    assert_eq!(moved.len(), 1);
    let batch = db.changes(1, 1)?.pop().expect("the sweep's batch");
    assert_eq!(names(&batch), ["updated", "stage_changed"]);
    assert!(batch.events.iter().all(|e| e.cause == Cause::Sweep));
    assert_eq!(
        batch.events[0].time,
        t0().plus_days(100),
        "at the sweep's now"
    );

    let mut machines = Machines::default();
    machines
        .contact
        .stages
        .retain(|s| s.name.as_str() != "dormant");
    machines.contact.returns.clear();
    machines.auto_moves.clear();
    machines.sweep.clear();
    let mapping = [(Stage::new("dormant"), Stage::new("churned"))]
        .into_iter()
        .collect();
    db.write(|tx| tx.replace_machines(machines.clone(), &mapping))?;
    let batch = db.changes(2, 1)?.pop().expect("the replacement's batch");
    assert_eq!(
        names(&batch),
        ["machines_replaced", "updated", "stage_changed"]
    );
    assert_eq!(batch.events[1].cause, Cause::Remap);
    assert_eq!(
        db.read(|r| r.get(ada))?.stage.as_str(),
        "churned",
        "remapped"
    );

    db.write(|tx| {
        tx.save_segment(
            "vips",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: crmdb::Query::tag("vip"),
            },
        )
    })?;
    db.write(|tx| tx.delete_segment("vips").map(drop))?;
    let kinds: Vec<Vec<&str>> = db.changes(3, 10)?.iter().map(names).collect();
    assert_eq!(kinds, [vec!["segment_saved"], vec!["segment_deleted"]]);
    assert_replay_matches(&db)
}

#[test]
fn refused_and_rolled_back_writes_leave_no_events() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    db.write(|tx| tx.insert(contact("Ada", "ada@example.com")))?;
    let refused = db.write(|tx| tx.insert(contact("Dup", "ada@example.com")));
    assert!(matches!(refused, Err(Error::Duplicate { .. })));
    let mut tx = db.begin_write()?;
    tx.insert(contact("Bob", "bob@example.com"))?;
    drop(tx);
    db.write(|tx| -> crmdb::Result<()> {
        let refused = tx.insert(Order {
            contact: Some(crmdb::ContactId::new(77)),
            ..Default::default()
        });
        assert!(matches!(refused, Err(Error::BrokenRelation { .. })));
        Ok(())
    })?;
    let batches = all_batches(&db, 10)?;
    assert_eq!(batches.len(), 1, "one committed change");
    assert_eq!(names(&batches[0]), ["inserted", "stage_changed"]);

    // A record inserted and changed in one transaction is one insert of its last state.
    let cy = db.write(|tx| -> crmdb::Result<_> {
        let cy = tx.insert(contact("Cy", "cy@example.com"))?;
        tx.modify(cy, |c| c.region = Some("suzhou".into()))?;
        tx.add_tag(cy, "vip")?;
        Ok(cy)
    })?;
    let batch = db.changes(1, 1)?.pop().expect("a batch");
    assert_eq!(names(&batch), ["inserted", "stage_changed", "tag_added"]);
    let Change::Inserted {
        record: crmdb::AnyRecord::Contact(record),
        ..
    } = &batch.events[0].change
    else {
        panic!("an insert");
    };
    assert_eq!(record, &db.read(|r| r.get(cy))?);
    assert_replay_matches(&db)
}

#[test]
fn large_batches_are_split_into_parts_and_read_back_whole() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    db.write(|tx| -> crmdb::Result<()> {
        for i in 0..1500 {
            tx.insert(Contact {
                name: format!("c{i}"),
                ..Default::default()
            })?;
        }
        Ok(())
    })?;
    let report = crmdb::BulkLoad::new(&db).batch_size(700).run(
        (0..1500).map(|i| contact(&format!("b{i}"), &format!("b{i}@example.com"))),
        |_| {},
    )?;
    assert_eq!(report.inserted, 1500);
    let batches = all_batches(&db, 1)?;
    assert_eq!(
        batches[0].events.len(),
        3000,
        "an insert and a create move each"
    );
    let bulk_events: usize = batches[1..].iter().map(|b| b.events.len()).sum();
    assert_eq!(bulk_events, 3000, "bulk loads log as one-by-one inserts do");
    assert_replay_matches(&db)
}

#[test]
fn an_inbound_activity_names_its_cause_and_the_log_can_be_switched_off() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let ada = db.write(|tx| tx.insert(contact("Ada", "ada@example.com")))?;
    let activity = db.write(|tx| tx.insert(inbound(ada, db.now())))?;
    let batch = db.changes(1, 1)?.pop().expect("a batch");
    assert!(
        batch.events.iter().any(|e| e.cause
            == Cause::Effect {
                kind: EntityKind::Activity,
                id: activity.get()
            }
            && matches!(&e.change, Change::StageChanged { change, .. } if change.to.as_str() == "responder"))
    );

    let quiet = Database::builder().change_log(false).in_memory()?;
    quiet.write(|tx| tx.insert(contact("Ada", "ada@example.com")))?;
    quiet.write(|tx| tx.insert(contact("Bob", "bob@example.com")))?;
    assert_eq!(
        quiet.read(|r| r.sequence())?,
        2,
        "sequences are still taken"
    );
    assert_eq!(quiet.changes(2, 10)?, [], "nothing after the last");
    assert!(matches!(
        quiet.changes(0, 10),
        Err(Error::Trimmed {
            after: 0,
            oldest: 3
        })
    ));
    Ok(())
}

/// The record events replayed onto an empty replica give the database's records.
pub(crate) fn assert_replay_matches(db: &Database) -> crmdb::Result<()> {
    let mut replica = Replica::new();
    for batch in all_batches(db, 7)? {
        apply(&mut replica, &batch);
    }
    assert_eq!(replica, db.read(records)?);
    Ok(())
}
