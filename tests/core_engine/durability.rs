//! Durability across reopen and atomic rollback of a failed write.

use std::collections::BTreeSet;

use crmdb::{
    Contact, Database, Deal, EntityKind, Error, FieldDef, FieldType, Money, Order, Product, Query,
    Snapshot, Value,
};

use crate::support::{TempDir, clocked, contact, fingerprint, t0};

#[test]
fn reopened_file_database_holds_exactly_what_was_committed() -> crmdb::Result<()> {
    let dir = TempDir::new("reopen");
    let path = dir.0.join("crm.redb");
    let (committed, ada) = {
        let db = Database::create(&path)?;
        let ada = db.write(|tx| -> crmdb::Result<_> {
            tx.set_actor("alice");
            let ada = tx.insert(contact("Ada", "ada@example.com"))?;
            tx.add_tag(ada, "vip")?;
            tx.move_stage(ada, "active")?;
            tx.define_field(
                EntityKind::Contact,
                FieldDef::new("score", FieldType::Integer),
            )?;
            tx.modify(ada, |c| {
                c.custom.insert("score".into(), Value::Integer(7));
            })?;
            tx.insert(Product {
                sku: "SKU-1".into(),
                name: "Widget".into(),
                ..Default::default()
            })?;
            let gone = tx.insert(contact("Gone", "gone@example.com"))?;
            tx.soft_delete(gone)?;
            tx.insert(Order {
                contact: Some(ada),
                at: t0(),
                total: Money::from_major(30),
                ..Default::default()
            })?;
            Ok(ada)
        })?;
        // An uncommitted transaction and a failed write leave nothing behind.
        {
            let mut tx = db.begin_write()?;
            let lost = tx.insert(contact("Lost", "lost@example.com"))?;
            tx.add_tag(lost, "uncommitted")?;
        }
        let failed: crmdb::Result<()> = db.write(|tx| {
            tx.insert(contact("Failed", "failed@example.com"))?;
            tx.add_tag(ada, "uncommitted")?;
            Err(Error::InvalidArgument("give up".into()))
        });
        assert!(matches!(failed, Err(Error::InvalidArgument(_))));
        let committed = db.read(fingerprint)?;
        (committed, ada)
    };

    let db = Database::open(&path)?;
    let reopened = db.read(fingerprint)?;
    assert_eq!(reopened, committed);
    db.read(|r| {
        let c = r.get(ada)?;
        assert_eq!(c.stage.as_str(), "active");
        assert_eq!(c.stats.order_count, 1);
        assert_eq!(c.custom.get("score"), Some(&Value::Integer(7)));
        assert_eq!(r.count(EntityKind::Contact, &Query::parse("tag:vip")?)?, 1);
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("custom.score = 7")?)?,
            1
        );
        assert_eq!(r.contact_by_email("lost@example.com")?, None);
        assert_eq!(r.contact_by_email("failed@example.com")?, None);
        assert!(r.history(ada)?.iter().any(|h| h.actor == "alice"));
        // The tag that was never committed matches nothing and is not listed.
        assert_eq!(r.count(EntityKind::Contact, &Query::tag("uncommitted"))?, 0);
        assert!(
            r.tags(EntityKind::Contact)?
                .iter()
                .all(|t| t.tag != "uncommitted")
        );
        Ok(())
    })?;
    // Row ids are not reused after reopen.
    let next = db.write(|tx| tx.insert(contact("Next", "next@example.com")))?;
    let known: BTreeSet<u32> = db.read(|r| {
        Ok(r.records::<Contact>()?
            .into_iter()
            .map(|(id, _)| id.get())
            .collect())
    })?;
    assert_eq!(known.len(), 3, "ada, gone and next");
    assert!(next.get() > ada.get());
    drop(db);
    let db = Database::open(&path)?;
    assert_eq!(
        db.read(|r| Ok(r.get(next)?.name))?,
        "Next",
        "the write after reopen is durable too"
    );
    Ok(())
}

#[test]
fn failed_write_rolls_back_rows_indexes_and_history() -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let (ada, deal) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        tx.add_tag(ada, "vip")?;
        let deal = tx.insert(Deal {
            name: "Big".into(),
            contact: Some(ada),
            ..Default::default()
        })?;
        Ok((ada, deal))
    })?;
    let before = db.read(fingerprint)?;
    clock.advance_days(1);

    let result: crmdb::Result<()> = db.write(|tx| {
        let bob = tx.insert(contact("Bob", "bob@example.com"))?;
        tx.add_tag(bob, "fresh")?;
        tx.add_tag(ada, "fresh")?;
        tx.remove_tag(ada, "vip")?;
        tx.move_stage(ada, "active")?;
        tx.move_stage(deal, "qualified")?;
        tx.modify(ada, |c| c.email = Some("ada@new.example.com".into()))?;
        tx.insert(Order {
            contact: Some(bob),
            at: tx.now(),
            total: Money::from_major(5),
            ..Default::default()
        })?;
        tx.define_field(EntityKind::Contact, FieldDef::new("x", FieldType::Bool))?;
        tx.save_segment(
            "fresh",
            crmdb::SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::tag("fresh"),
            },
        )?;
        // Inside the transaction the writes are visible.
        assert_eq!(tx.count(EntityKind::Contact, &Query::tag("fresh"))?, 2);
        Err(Error::InvalidArgument("changed my mind".into()))
    });
    assert!(
        matches!(result, Err(Error::InvalidArgument(_))),
        "{result:?}"
    );

    let after = db.read(fingerprint)?;
    assert_eq!(after, before);
    db.read(|r| {
        assert_eq!(r.count(EntityKind::Contact, &Query::tag("fresh"))?, 0);
        assert!(
            r.tags(EntityKind::Contact)?
                .iter()
                .all(|t| t.tag != "fresh")
        );
        assert_eq!(r.contact_by_email("ada@example.com")?, Some(ada));
        assert_eq!(r.contact_by_email("ada@new.example.com")?, None);
        assert_eq!(r.history(ada)?.len(), 1);
        assert_eq!(r.history(deal)?.len(), 1);
        Ok(())
    })?;

    // Explicit abort and dropping a transaction roll back the same way.
    let mut tx = db.begin_write()?;
    tx.insert(contact("Cy", "cy@example.com"))?;
    tx.abort()?;
    let mut tx = db.begin_write()?;
    tx.add_tag(ada, "dropped")?;
    drop(tx);
    assert_eq!(db.read(fingerprint)?, before);
    Ok(())
}
