//! Relations to missing or deleted records are broken.

use crmdb::{
    Account, AccountId, Activity, ActivityKind, Contact, ContactId, Database, Deal, Direction,
    EntityKind, Error, Money, Order, Owner, OwnerId, Product, Subject, Task, WriteTransaction,
};

use crate::support::{contact, t0};

#[test]
fn relations_to_missing_or_deleted_records_are_broken() -> crmdb::Result<()> {
    use EntityKind as K;
    let db = Database::in_memory()?;
    let (live_contact, dead_contact, dead_account, dead_owner, dead_deal, dead_product) = db
        .write(|tx| -> crmdb::Result<_> {
            let live_contact = tx.insert(contact("Live", "live@example.com"))?;
            let dead_contact = tx.insert(contact("Dead", "dead@example.com"))?;
            tx.soft_delete(dead_contact)?;
            let dead_account = tx.insert(Account::default())?;
            tx.soft_delete(dead_account)?;
            let dead_owner = tx.insert(Owner::default())?;
            tx.soft_delete(dead_owner)?;
            let dead_deal = tx.insert(Deal::default())?;
            tx.soft_delete(dead_deal)?;
            let dead_product = tx.insert(Product {
                sku: "old".into(),
                ..Default::default()
            })?;
            tx.soft_delete(dead_product)?;
            Ok((
                live_contact,
                dead_contact,
                dead_account,
                dead_owner,
                dead_deal,
                dead_product,
            ))
        })?;
    let missing = 77u32;
    let at = t0();
    type Attempt = Box<dyn Fn(&mut WriteTransaction) -> crmdb::Result<()>>;
    let cases: Vec<(&str, Attempt, (K, K, u32))> = vec![
        (
            "contact with a missing account",
            Box::new(move |tx| {
                tx.insert(Contact {
                    account: Some(AccountId::new(missing)),
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Contact, K::Account, missing),
        ),
        (
            "contact with a deleted account",
            Box::new(move |tx| {
                tx.insert(Contact {
                    account: Some(dead_account),
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Contact, K::Account, dead_account.get()),
        ),
        (
            "contact with a missing owner",
            Box::new(move |tx| {
                tx.insert(Contact {
                    owner: Some(OwnerId::new(missing)),
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Contact, K::Owner, missing),
        ),
        (
            "contact with a deleted owner",
            Box::new(move |tx| {
                tx.insert(Contact {
                    owner: Some(dead_owner),
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Contact, K::Owner, dead_owner.get()),
        ),
        (
            "update pointing a contact at a deleted account",
            Box::new(move |tx| tx.modify(live_contact, |c| c.account = Some(dead_account))),
            (K::Contact, K::Account, dead_account.get()),
        ),
        (
            "order with a missing contact",
            Box::new(move |tx| {
                tx.insert(Order {
                    contact: Some(ContactId::new(missing)),
                    at,
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Order, K::Contact, missing),
        ),
        (
            "order with a deleted contact",
            Box::new(move |tx| {
                tx.insert(Order {
                    contact: Some(dead_contact),
                    at,
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Order, K::Contact, dead_contact.get()),
        ),
        (
            "order line with a deleted product",
            Box::new(move |tx| {
                tx.insert(Order {
                    contact: Some(live_contact),
                    at,
                    line_items: vec![crmdb::LineItem {
                        product: dead_product,
                        quantity: 1,
                        unit_price: Money::from_major(1),
                    }],
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Order, K::Product, dead_product.get()),
        ),
        (
            "activity about a missing contact",
            Box::new(move |tx| {
                tx.insert(Activity::new(
                    ActivityKind::Call,
                    Direction::Inbound,
                    Subject::Contact(ContactId::new(missing)),
                    at,
                ))
                .map(drop)
            }),
            (K::Activity, K::Contact, missing),
        ),
        (
            "activity about a missing account",
            Box::new(move |tx| {
                tx.insert(Activity::new(
                    ActivityKind::Meeting,
                    Direction::Outbound,
                    Subject::Account(AccountId::new(missing)),
                    at,
                ))
                .map(drop)
            }),
            (K::Activity, K::Account, missing),
        ),
        (
            "activity about a deleted deal",
            Box::new(move |tx| {
                tx.insert(Activity::new(
                    ActivityKind::Email,
                    Direction::Outbound,
                    Subject::Deal(dead_deal),
                    at,
                ))
                .map(drop)
            }),
            (K::Activity, K::Deal, dead_deal.get()),
        ),
        (
            "deal with a deleted participant",
            Box::new(move |tx| {
                tx.insert(Deal {
                    contact: Some(live_contact),
                    participants: vec![dead_contact],
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Deal, K::Contact, dead_contact.get()),
        ),
        (
            "task assigned to a missing owner",
            Box::new(move |tx| {
                tx.insert(Task {
                    assignee: Some(OwnerId::new(missing)),
                    ..Default::default()
                })
                .map(drop)
            }),
            (K::Task, K::Owner, missing),
        ),
    ];
    for (what, attempt, (kind, target_kind, target_id)) in cases {
        let mut tx = db.begin_write()?;
        match attempt(&mut tx) {
            Err(Error::BrokenRelation {
                kind: k,
                target_kind: tk,
                target_id: ti,
            }) => assert_eq!(
                (k, tk, ti),
                (kind, target_kind, target_id),
                "{what}: the error names the relation"
            ),
            other => panic!("{what}: expected a broken relation, got {other:?}"),
        }
        tx.abort()?;
    }

    // Restoring a record whose relation is still deleted is refused the same way.
    let orphan = db.write(|tx| -> crmdb::Result<_> {
        let account = tx.insert(Account::default())?;
        let orphan = tx.insert(Contact {
            account: Some(account),
            ..Default::default()
        })?;
        tx.soft_delete(orphan)?;
        tx.soft_delete(account)?;
        Ok((orphan, account))
    })?;
    let restored = db.write(|tx| tx.restore(orphan.0));
    assert!(
        matches!(restored, Err(Error::BrokenRelation { kind: K::Contact, target_kind: K::Account, target_id }) if target_id == orphan.1.get()),
        "{restored:?}"
    );
    db.write(|tx| {
        tx.restore(orphan.1)?;
        tx.restore(orphan.0)
    })?;
    Ok(())
}
