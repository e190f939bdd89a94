//! Natural keys: unique emails and SKUs, and upsert by email.

use crmdb::{Contact, Database, EntityKind, Error, Product, Query, Snapshot, Upserted};

use crate::support::contact;

#[test]
fn emails_and_skus_are_unique_case_insensitively() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let ada = db.write(|tx| tx.insert(contact("Ada", "Ada.Lovelace@Example.com")))?;
    let cases = [
        "ada.lovelace@example.com",
        "ADA.LOVELACE@EXAMPLE.COM",
        "  Ada.Lovelace@Example.com  ",
    ];
    for email in cases {
        let result = db.write(|tx| tx.insert(contact("Twin", email)));
        match result {
            Err(Error::Duplicate {
                kind: EntityKind::Contact,
                field: "contact.email",
                value,
                existing,
            }) => {
                assert_eq!(value, "ada.lovelace@example.com", "{email:?}");
                assert_eq!(existing, ada.get(), "{email:?}");
            }
            other => panic!("{email:?}: expected a duplicate, got {other:?}"),
        }
    }
    db.read(|r| {
        for email in cases {
            assert_eq!(r.contact_by_email(email)?, Some(ada), "{email:?}");
        }
        Ok(())
    })?;
    // A contact may change the case of its own email, and an email given up is free.
    db.write(|tx| tx.modify(ada, |c| c.email = Some("ADA.lovelace@example.com".into())))?;
    db.write(|tx| tx.modify(ada, |c| c.email = Some("ada@example.org".into())))?;
    let twin = db.write(|tx| tx.insert(contact("Twin", "ada.lovelace@example.com")))?;
    db.read(|r| {
        assert_eq!(r.contact_by_email("ADA@example.org")?, Some(ada));
        assert_eq!(r.contact_by_email("ada.lovelace@example.com")?, Some(twin));
        Ok(())
    })?;
    // Contacts without email do not collide.
    db.write(|tx| {
        tx.insert(Contact::default())?;
        tx.insert(Contact::default())
    })?;

    let sku = db.write(|tx| {
        tx.insert(Product {
            sku: "WID-001".into(),
            name: "Widget".into(),
            ..Default::default()
        })
    })?;
    for other in ["wid-001", " WID-001 ", "Wid-001"] {
        let result = db.write(|tx| {
            tx.insert(Product {
                sku: other.into(),
                ..Default::default()
            })
        });
        assert!(
            matches!(&result, Err(Error::Duplicate { kind: EntityKind::Product, field: "product.sku", existing, .. }) if *existing == sku.get()),
            "{other:?}: {result:?}"
        );
    }
    assert_eq!(db.read(|r| r.product_by_sku("wid-001"))?, Some(sku));
    let empty = db.write(|tx| {
        tx.insert(Product {
            sku: "  ".into(),
            ..Default::default()
        })
    });
    assert!(
        matches!(empty, Err(Error::InvalidField { .. })),
        "{empty:?}"
    );
    Ok(())
}

#[test]
fn upsert_by_email_inserts_then_updates() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (first, how) = db.write(|tx| {
        tx.upsert_contact_by_email(Contact {
            region: Some("beijing".into()),
            ..contact("Li", "li@example.com")
        })
    })?;
    assert_eq!(how, Upserted::Inserted);
    let (second, how) = db.write(|tx| {
        tx.upsert_contact_by_email(Contact {
            region: Some("shanghai".into()),
            ..contact("Li Lei", "LI@example.com")
        })
    })?;
    assert_eq!(how, Upserted::Updated);
    assert_eq!(second, first);
    db.read(|r| {
        let li = r.get(first)?;
        assert_eq!(li.name, "Li Lei");
        assert_eq!(li.region.as_deref(), Some("shanghai"));
        assert_eq!(r.live(EntityKind::Contact)?.len(), 1);
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("region:beijing")?)?,
            0
        );
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("region:shanghai")?)?,
            1
        );
        assert_eq!(r.history(first)?.len(), 1, "an update keeps the stage");
        Ok(())
    })?;

    let no_email = db.write(|tx| tx.upsert_contact_by_email(Contact::default()));
    assert!(
        matches!(no_email, Err(Error::InvalidField { ref field, .. }) if field == "email"),
        "{no_email:?}"
    );
    db.write(|tx| tx.soft_delete(first))?;
    let deleted = db.write(|tx| tx.upsert_contact_by_email(contact("Li", "li@example.com")));
    assert!(
        matches!(deleted, Err(Error::Deleted { kind: EntityKind::Contact, id }) if id == first.get()),
        "{deleted:?}"
    );
    Ok(())
}
