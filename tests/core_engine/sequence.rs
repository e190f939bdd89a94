//! The commit sequence: every committed write transaction that changes anything takes
//! the next number, without gaps, kept across reopen; nothing else takes one.

use crmdb::{Contact, Database, EntityKind, Error, FieldDef, FieldType, SavedSegment, Snapshot};

use crate::support::{TempDir, contact};

fn sequence(db: &Database) -> crmdb::Result<u64> {
    db.read(|r| r.sequence())
}

#[test]
fn changing_commits_take_consecutive_numbers_and_nothing_else_does() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    assert_eq!(sequence(&db)?, 0, "a new database");
    let ada = db.write(|tx| tx.insert(contact("Ada", "ada@example.com")))?;
    assert_eq!(sequence(&db)?, 1);
    db.write(|tx| -> crmdb::Result<()> {
        assert_eq!(
            tx.sequence()?,
            1,
            "a write transaction reports what it builds on"
        );
        tx.add_tag(ada, "vip")?;
        tx.move_stage(ada, "active")?;
        assert_eq!(tx.sequence()?, 1, "its own commit has not happened yet");
        Ok(())
    })?;
    assert_eq!(
        sequence(&db)?,
        2,
        "one number per commit, not per operation"
    );

    // Transactions that change nothing take no number.
    db.write(|_| Ok::<(), Error>(()))?;
    db.write(|tx| tx.add_tag(ada, "vip"))?; // already tagged: a no-op
    db.write(|tx| tx.remove_tag(ada, "never"))?;
    db.write(|tx| tx.delete_segment("none").map(|_| ()))?;
    db.write(|tx| -> crmdb::Result<()> {
        // A refused insert applies nothing of itself, and nothing else happens.
        let refused = tx.insert(contact("Dup", "ada@example.com"));
        assert!(matches!(refused, Err(Error::Duplicate { .. })));
        Ok(())
    })?;
    db.read(|r| r.live(EntityKind::Contact).map(|_| ()))?;
    assert_eq!(sequence(&db)?, 2, "no-op commits");

    // Rolled back and dropped transactions take no number either.
    let failed: crmdb::Result<()> = db.write(|tx| {
        tx.insert(contact("Bob", "bob@example.com"))?;
        Err(Error::InvalidArgument("give up".into()))
    });
    assert!(failed.is_err());
    let mut tx = db.begin_write()?;
    tx.insert(contact("Cy", "cy@example.com"))?;
    drop(tx);
    assert_eq!(sequence(&db)?, 2, "rolled back");

    // Every kind of change counts: configuration, segments, soft delete, purge.
    db.write(|tx| {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("score", FieldType::Integer),
        )
    })?;
    assert_eq!(sequence(&db)?, 3);
    db.write(|tx| tx.save_segment("vips", SavedSegment::of_ids([ada])))?;
    assert_eq!(sequence(&db)?, 4);
    db.write(|tx| tx.delete_segment("vips").map(|_| ()))?;
    assert_eq!(sequence(&db)?, 5);
    db.write(|tx| tx.soft_delete(ada))?;
    db.write(|tx| tx.purge(ada))?;
    assert_eq!(sequence(&db)?, 7);
    Ok(())
}

#[test]
fn the_sequence_is_kept_across_reopen() -> crmdb::Result<()> {
    let dir = TempDir::new("sequence");
    let path = dir.0.join("crm.redb");
    {
        let db = Database::create(&path)?;
        for i in 0..3 {
            db.write(|tx| tx.insert(contact(&format!("c{i}"), &format!("c{i}@example.com"))))?;
        }
        assert_eq!(sequence(&db)?, 3);
    }
    let db = Database::open(&path)?;
    assert_eq!(sequence(&db)?, 3, "after reopen");
    db.write(|tx| {
        tx.insert(Contact {
            name: "next".into(),
            ..Default::default()
        })
    })?;
    assert_eq!(sequence(&db)?, 4, "the next commit continues without a gap");
    Ok(())
}
