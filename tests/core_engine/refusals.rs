//! Refused operations apply nothing, the transaction goes on, and errors quote little input.

use crmdb::{
    Contact, ContactId, Database, Deal, DealId, EntityKind, Error, Money, Order, OrderId, Owner,
    OwnerId, Product, ProductId, Query, Snapshot, Value, WriteTransaction,
};

use crate::support::{contact, fingerprint};

/// Ids of the records the refusal cases work on.
struct Fixture {
    ada: ContactId,
    bob: ContactId,
    gone: ContactId,
    owner: OwnerId,
    deal: DealId,
    order: OrderId,
}

fn fixture(db: &Database) -> crmdb::Result<Fixture> {
    db.write(|tx| {
        let owner = tx.insert(Owner {
            name: "Olga".into(),
            ..Default::default()
        })?;
        let ada = tx.insert(Contact {
            owner: Some(owner),
            ..contact("Ada", "ada@example.com")
        })?;
        tx.add_tag(ada, "vip")?;
        tx.move_stage(ada, "active")?;
        let bob = tx.insert(contact("Bob", "bob@example.com"))?;
        let gone = tx.insert(contact("Gone", "gone@example.com"))?;
        tx.soft_delete(gone)?;
        tx.insert(Product {
            sku: "SKU-1".into(),
            name: "Widget".into(),
            ..Default::default()
        })?;
        let deal = tx.insert(Deal {
            name: "Big".into(),
            contact: Some(ada),
            ..Default::default()
        })?;
        let order = tx.insert(Order {
            contact: Some(bob),
            at: tx.now(),
            total: Money::from_major(10),
            ..Default::default()
        })?;
        Ok(Fixture {
            ada,
            bob,
            gone,
            owner,
            deal,
            order,
        })
    })
}

type Refusal = (
    &'static str,
    fn(&mut WriteTransaction, &Fixture) -> crmdb::Result<()>,
    fn(&Error) -> bool,
);

#[test]
fn refused_operation_applies_nothing_and_the_transaction_goes_on() -> crmdb::Result<()> {
    let cases: Vec<Refusal> = vec![
        (
            "duplicate email on insert, other case",
            |tx, _| tx.insert(contact("Ada 2", " ADA@example.com ")).map(drop),
            |e| matches!(e, Error::Duplicate { kind: EntityKind::Contact, field: "contact.email", value, .. } if value == "ada@example.com"),
        ),
        (
            "duplicate email on update",
            |tx, f| tx.modify(f.bob, |c| c.email = Some("Ada@Example.com".into())),
            |e| matches!(e, Error::Duplicate { existing, .. } if *existing == 0),
        ),
        (
            "email of a contact in the recycle bin",
            |tx, _| tx.insert(contact("Gone 2", "gone@example.com")).map(drop),
            |e| matches!(e, Error::Duplicate { .. }),
        ),
        (
            "duplicate sku",
            |tx, _| {
                tx.insert(Product {
                    sku: "sku-1".into(),
                    ..Default::default()
                })
                .map(drop)
            },
            |e| {
                matches!(
                    e,
                    Error::Duplicate {
                        kind: EntityKind::Product,
                        field: "product.sku",
                        ..
                    }
                )
            },
        ),
        (
            "contact with a missing owner",
            |tx, _| {
                tx.insert(Contact {
                    owner: Some(OwnerId::new(99)),
                    ..contact("Cy", "cy@example.com")
                })
                .map(drop)
            },
            |e| matches!(e, Error::BrokenRelation { .. }),
        ),
        (
            "deal whose contact is deleted",
            |tx, f| {
                tx.insert(Deal {
                    contact: Some(f.gone),
                    ..Default::default()
                })
                .map(drop)
            },
            |e| matches!(e, Error::BrokenRelation { .. }),
        ),
        (
            "illegal backward contact move",
            |tx, f| tx.move_stage(f.ada, "prospect"),
            |e| matches!(e, Error::IllegalTransition { .. }),
        ),
        (
            "deal to won without amount",
            |tx, f| tx.move_stage(f.deal, "won"),
            |e| matches!(e, Error::IllegalTransition { .. }),
        ),
        (
            "insert a deal straight into lost without a reason",
            |tx, _| {
                tx.insert(Deal {
                    stage: "lost".into(),
                    ..Default::default()
                })
                .map(drop)
            },
            |e| matches!(e, Error::IllegalTransition { .. }),
        ),
        (
            "tag that is not a tag",
            |tx, f| tx.add_tag(f.ada, " padded "),
            |e| matches!(e, Error::InvalidField { .. }),
        ),
        (
            "tag on a deleted contact",
            |tx, f| tx.add_tag(f.gone, "x"),
            |e| matches!(e, Error::Deleted { .. }),
        ),
        (
            "email that is not an address",
            |tx, f| tx.modify(f.bob, |c| c.email = Some("not an email".into())),
            |e| matches!(e, Error::InvalidField { .. }),
        ),
        (
            "unknown custom field",
            |tx, f| {
                tx.modify(f.ada, |c| {
                    c.custom.insert("nope".into(), Value::Bool(true));
                })
            },
            |e| matches!(e, Error::UnknownField { .. }),
        ),
        (
            "order total that is not the sum of its lines",
            |tx, f| {
                tx.insert(Order {
                    contact: Some(f.ada),
                    line_items: vec![crmdb::LineItem {
                        product: ProductId::new(0),
                        quantity: 2,
                        unit_price: Money::from_major(3),
                    }],
                    total: Money::from_major(7),
                    ..Default::default()
                })
                .map(drop)
            },
            |e| matches!(e, Error::InvalidField { .. }),
        ),
        (
            "restore of a live record",
            |tx, f| tx.restore(f.ada),
            |e| matches!(e, Error::NotDeleted { .. }),
        ),
        (
            "purge of a live record",
            |tx, f| tx.purge(f.order),
            |e| matches!(e, Error::NotDeleted { .. }),
        ),
        (
            "soft delete twice",
            |tx, f| tx.soft_delete(f.gone),
            |e| matches!(e, Error::Deleted { .. }),
        ),
        (
            "update of a record that does not exist",
            |tx, _| tx.modify(ContactId::new(500), |c| c.name = "x".into()),
            |e| matches!(e, Error::NotFound { .. }),
        ),
        (
            "update pointing at a missing owner",
            |tx, f| tx.modify(f.bob, |c| c.owner = Some(OwnerId::new(f.owner.get() + 50))),
            |e| matches!(e, Error::BrokenRelation { .. }),
        ),
    ];
    for (what, refused, expected) in cases {
        let db = Database::in_memory()?;
        let f = fixture(&db)?;
        let committed = db.write(|tx| -> crmdb::Result<_> {
            let carol = tx.insert(contact("Carol", "carol@example.com"))?;
            tx.add_tag(carol, "before")?;
            let before = fingerprint(tx)?;
            let err = match refused(tx, &f) {
                Ok(()) => panic!("{what}: should be refused"),
                Err(e) => e,
            };
            assert!(expected(&err), "{what}: unexpected error {err:?}");
            assert_eq!(
                fingerprint(tx)?,
                before,
                "{what}: the refusal changed something"
            );
            // The transaction is still usable and its other writes commit.
            let dan = tx.insert(contact("Dan", "dan@example.com"))?;
            tx.add_tag(dan, "after")?;
            tx.move_stage(f.bob, "active")?;
            Ok((carol, dan))
        });
        let (carol, dan) = committed.unwrap_or_else(|e| panic!("{what}: commit failed: {e}"));
        db.read(|r| {
            assert_eq!(r.get(carol)?.name, "Carol", "{what}");
            assert_eq!(r.get(dan)?.name, "Dan", "{what}");
            assert_eq!(r.get(f.bob)?.stage.as_str(), "active", "{what}");
            assert_eq!(r.count(EntityKind::Contact, &Query::tag("before"))?, 1);
            assert_eq!(r.count(EntityKind::Contact, &Query::tag("after"))?, 1);
            assert_eq!(r.live(EntityKind::Contact)?.len(), 4, "{what}");
            assert_eq!(r.get(f.ada)?.stage.as_str(), "active", "{what}");
            assert_eq!(r.get(f.deal)?.stage.as_str(), "lead", "{what}");
            Ok(())
        })?;
    }
    Ok(())
}

/// An error message quotes at most about 80 bytes of an offending input and names its
/// full length, so that an oversized tag, field name or value is not echoed whole.
#[test]
fn error_messages_quote_at_most_80_bytes_of_the_input() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let id = db.write(|tx| tx.insert(contact("Ada", "ada@example.com")))?;
    let huge = "x".repeat(5000);
    let tag_error = db
        .write(|tx| tx.add_tag(id, &huge))
        .expect_err("an oversized tag is refused");
    let email_error = db
        .write(|tx| {
            tx.insert(Contact {
                name: "Bad".into(),
                email: Some(format!("{}-no-at-sign", &huge[..200])),
                ..Default::default()
            })
        })
        .expect_err("a malformed email is refused");
    let field_error = db
        .read(|r| r.count(EntityKind::Contact, &Query::parse(&format!("{huge} = 1"))?))
        .expect_err("an unknown field is refused");
    let value_error =
        Query::parse(&format!("tag:vip AND region = {huge}")).expect_err("not a value");
    for message in [
        tag_error.to_string(),
        email_error.to_string(),
        field_error.to_string(),
        value_error.to_string(),
    ] {
        assert!(message.len() < 240, "{} bytes: {message}", message.len());
        assert!(message.contains("xxxxxxxxxx"), "{message}");
    }
    assert!(
        tag_error.to_string().contains("(5000 bytes)"),
        "{tag_error}"
    );
    // Multi-byte input is cut at a character boundary.
    let wide = "日".repeat(100);
    let message = db
        .write(|tx| tx.add_tag(id, &wide))
        .expect_err("refused")
        .to_string();
    assert!(message.contains("(300 bytes)"), "{message}");
    Ok(())
}
