//! The core engine promises: durability across reopen, atomic rollback, refused
//! operations that apply nothing, relations, natural keys, custom fields, the recycle
//! bin, snapshot isolation under a concurrent writer, thread safety, corrupt bytes,
//! and the contact figures that orders and activities maintain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crmdb::{
    Account, AccountId, Activity, ActivityKind, Contact, ContactId, Database, Deal, DealId,
    Direction, EntityKind, Error, FieldDef, FieldType, ManualClock, Money, Order, OrderId,
    OrderStatus, Owner, OwnerId, Product, ProductId, Query, Snapshot, Subject, Task, Timestamp,
    Upserted, Value, WriteTransaction,
};

// ---- helpers ----

/// 2026-03-01T00:00:00Z, the start of every clock in these tests.
fn t0() -> Timestamp {
    Timestamp::from_ymd(2026, 3, 1).expect("valid date")
}

fn clocked_database() -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(t0()));
    let db = Database::builder().clock(clock.clone()).in_memory()?;
    Ok((db, clock))
}

fn contact(name: &str, email: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        ..Default::default()
    }
}

/// A directory under the system temp dir, unique to this process and call, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "crmdb-test-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything observable about a snapshot through the public API, as text, so that two
/// states can be compared whole.
fn fingerprint<S: Snapshot>(s: &S) -> crmdb::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "contacts {:?}", s.records::<Contact>()?);
    let _ = writeln!(out, "accounts {:?}", s.records::<Account>()?);
    let _ = writeln!(out, "deals {:?}", s.records::<Deal>()?);
    let _ = writeln!(out, "activities {:?}", s.records::<Activity>()?);
    let _ = writeln!(out, "orders {:?}", s.records::<Order>()?);
    let _ = writeln!(out, "products {:?}", s.records::<Product>()?);
    let _ = writeln!(out, "owners {:?}", s.records::<Owner>()?);
    let _ = writeln!(out, "tasks {:?}", s.records::<Task>()?);
    for kind in EntityKind::ALL {
        let _ = writeln!(out, "{kind} live {:?}", s.live(kind)?);
        let _ = writeln!(out, "{kind} deleted {:?}", s.deleted(kind)?);
    }
    for kind in [EntityKind::Contact, EntityKind::Account, EntityKind::Deal] {
        let _ = writeln!(out, "{kind} tags {:?}", s.tags(kind)?);
    }
    for (id, c) in s.records::<Contact>()? {
        let _ = writeln!(out, "contact {id} history {:?}", s.history(id)?);
        if let Some(email) = &c.email {
            let _ = writeln!(out, "email {email} -> {:?}", s.contact_by_email(email)?);
        }
    }
    for (id, _) in s.records::<Deal>()? {
        let _ = writeln!(out, "deal {id} history {:?}", s.history(id)?);
    }
    for (_, p) in s.records::<Product>()? {
        let _ = writeln!(out, "sku {} -> {:?}", p.sku, s.product_by_sku(&p.sku)?);
    }
    let machines = s.machines()?;
    for stage in &machines.contact.stages {
        let q = Query::stage(stage.name.as_str());
        let _ = writeln!(
            out,
            "contact stage {} {}",
            stage.name,
            s.count(EntityKind::Contact, &q)?
        );
    }
    let _ = writeln!(out, "segments {:?}", s.segments()?);
    let _ = writeln!(out, "contact schema {:?}", s.schema(EntityKind::Contact)?);
    Ok(out)
}

// ---- durability and rollback ----

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
    let (db, clock) = clocked_database()?;
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

// ---- refused operations ----

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

// ---- relations ----

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

// ---- natural keys ----

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

// ---- custom fields ----

fn define_every_field_type(tx: &mut WriteTransaction) -> crmdb::Result<()> {
    let options = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for def in [
        FieldDef::new("notes", FieldType::Text),
        FieldDef::new("employees", FieldType::Integer),
        FieldDef::new("budget", FieldType::Money),
        FieldDef::new("renewal", FieldType::Date),
        FieldDef::new("newsletter", FieldType::Bool),
        FieldDef::new(
            "industry",
            FieldType::SingleSelect(options(&["saas", "retail", "media"])),
        ),
        FieldDef::new(
            "channels",
            FieldType::MultiSelect(options(&["web", "shop", "phone"])),
        ),
    ] {
        tx.define_field(EntityKind::Contact, def)?;
    }
    Ok(())
}

fn custom(values: Vec<(&str, Value)>) -> BTreeMap<String, Value> {
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn channels(names: &[&str]) -> Value {
    Value::MultiSelect(names.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn custom_values_of_every_type_round_trip_typed() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let renewal = Timestamp::from_ymd(2026, 9, 30).expect("valid date");
    let values = custom(vec![
        ("notes", Value::Text("met at the fair".into())),
        ("employees", Value::Integer(-3)),
        ("budget", Value::Money(Money(12_345))),
        ("renewal", Value::Date(renewal)),
        ("newsletter", Value::Bool(false)),
        ("industry", Value::Select("retail".into())),
        ("channels", channels(&["web", "phone"])),
    ]);
    let id = db.write(|tx| {
        define_every_field_type(tx)?;
        tx.insert(Contact {
            custom: values.clone(),
            ..contact("Ada", "ada@example.com")
        })
    })?;
    db.read(|r| {
        assert_eq!(r.get(id)?.custom, values);
        let schema = r.schema(EntityKind::Contact)?;
        assert_eq!(schema.fields().count(), 7);
        assert_eq!(
            schema.field("budget").map(|f| &f.field_type),
            Some(&FieldType::Money)
        );
        Ok(())
    })
}

#[test]
fn bad_custom_values_are_typed_errors() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    db.write(|tx| {
        define_every_field_type(tx)?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("code", FieldType::Text).required(),
        )
    })?;
    let code = || ("code", Value::Text("c1".into()));
    enum Want {
        Invalid(&'static str),
        Unknown(&'static str),
    }
    let cases = [
        (
            "integer in a text field",
            vec![code(), ("notes", Value::Integer(1))],
            Want::Invalid("custom.notes"),
        ),
        (
            "text in an integer field",
            vec![code(), ("employees", Value::Text("12".into()))],
            Want::Invalid("custom.employees"),
        ),
        (
            "integer in a money field",
            vec![code(), ("budget", Value::Integer(5))],
            Want::Invalid("custom.budget"),
        ),
        (
            "bool in a date field",
            vec![code(), ("renewal", Value::Bool(true))],
            Want::Invalid("custom.renewal"),
        ),
        (
            "unknown option",
            vec![code(), ("industry", Value::Select("mining".into()))],
            Want::Invalid("custom.industry"),
        ),
        (
            "a multi value in a single select",
            vec![code(), ("industry", channels(&["saas"]))],
            Want::Invalid("custom.industry"),
        ),
        (
            "unknown option among several",
            vec![code(), ("channels", channels(&["web", "fax"]))],
            Want::Invalid("custom.channels"),
        ),
        (
            "unknown field",
            vec![code(), ("shoe_size", Value::Integer(42))],
            Want::Unknown("custom.shoe_size"),
        ),
        (
            "missing required field",
            vec![("notes", Value::Text("no code".into()))],
            Want::Invalid("custom.code"),
        ),
    ];
    for (what, values, want) in cases {
        let result = db.write(|tx| {
            tx.insert(Contact {
                custom: custom(values),
                ..Default::default()
            })
        });
        match (want, result) {
            (
                Want::Invalid(field),
                Err(Error::InvalidField {
                    kind: EntityKind::Contact,
                    field: f,
                    ..
                }),
            ) => assert_eq!(f, field, "{what}"),
            (
                Want::Unknown(field),
                Err(Error::UnknownField {
                    kind: EntityKind::Contact,
                    field: f,
                }),
            ) => assert_eq!(f, field, "{what}"),
            (_, other) => panic!("{what}: unexpected {other:?}"),
        }
    }
    // Custom fields of one kind are unknown on another.
    let account = db.write(|tx| {
        tx.insert(Account {
            custom: custom(vec![("notes", Value::Text("x".into()))]),
            ..Default::default()
        })
    });
    assert!(
        matches!(
            account,
            Err(Error::UnknownField {
                kind: EntityKind::Account,
                ..
            })
        ),
        "{account:?}"
    );
    // Malformed declarations are refused.
    for def in [
        FieldDef::new("Bad Name", FieldType::Text),
        FieldDef::new("", FieldType::Text),
        FieldDef::new("empty_select", FieldType::SingleSelect(vec![])),
        FieldDef::new(
            "twice",
            FieldType::MultiSelect(vec!["a".into(), "a".into()]),
        ),
    ] {
        let name = def.name.clone();
        let result = db.write(|tx| tx.define_field(EntityKind::Contact, def));
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{name:?}: {result:?}"
        );
    }
    Ok(())
}

#[test]
fn custom_fields_are_queryable_like_built_in_ones() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let day = |m, d| Value::Date(Timestamp::from_ymd(2026, m, d).expect("valid date"));
    let people = [
        custom(vec![
            ("notes", Value::Text("a".into())),
            ("employees", Value::Integer(10)),
            ("budget", Value::Money(Money::from_major(500))),
            ("renewal", day(1, 15)),
            ("newsletter", Value::Bool(true)),
            ("industry", Value::Select("saas".into())),
            ("channels", channels(&["web"])),
        ]),
        custom(vec![
            ("employees", Value::Integer(250)),
            ("budget", Value::Money(Money(9_950))),
            ("renewal", day(7, 1)),
            ("newsletter", Value::Bool(false)),
            ("industry", Value::Select("retail".into())),
            ("channels", channels(&["web", "shop"])),
        ]),
        custom(vec![
            ("notes", Value::Text("c".into())),
            ("industry", Value::Select("media".into())),
        ]),
        custom(vec![]),
    ];
    let ids: Vec<ContactId> = db.write(|tx| {
        define_every_field_type(tx)?;
        people
            .iter()
            .map(|values| {
                tx.insert(Contact {
                    custom: values.clone(),
                    ..Default::default()
                })
            })
            .collect()
    })?;
    let rows = |picks: &[usize]| -> Vec<u32> { picks.iter().map(|&i| ids[i].get()).collect() };
    let cases: &[(&str, &[usize])] = &[
        (r#"custom.industry = "saas""#, &[0]),
        ("custom.industry:retail", &[1]),
        (r#"custom.industry in ("saas", "media")"#, &[0, 2]),
        (r#"custom.industry != "saas""#, &[1, 2]),
        (r#"NOT custom.industry = "saas""#, &[1, 2, 3]),
        ("custom.industry exists", &[0, 1, 2]),
        ("custom.employees >= 10", &[0, 1]),
        ("custom.employees > 10", &[1]),
        ("custom.employees < 100", &[0]),
        ("custom.employees between 5 and 300", &[0, 1]),
        ("custom.employees exists", &[0, 1]),
        ("NOT custom.employees exists", &[2, 3]),
        ("custom.budget >= 100", &[0]),
        ("custom.budget = 99.5", &[1]),
        ("custom.budget <= 99.50", &[1]),
        ("custom.renewal < 2026-02-01", &[0]),
        ("custom.renewal between 2026-06-01 and 2026-07-01", &[1]),
        ("custom.newsletter = true", &[0]),
        ("custom.newsletter = false", &[1]),
        ("custom.newsletter exists", &[0, 1]),
        ("custom.channels:web", &[0, 1]),
        ("custom.channels:shop AND custom.channels:web", &[1]),
        ("custom.notes exists", &[0, 2]),
        ("NOT custom.notes exists", &[1, 3]),
    ];
    db.read(|r| {
        for (text, picks) in cases {
            let got: Vec<u32> = r
                .ids(EntityKind::Contact, &Query::parse(text)?)?
                .into_iter()
                .collect();
            assert_eq!(got, rows(picks), "{text}");
        }
        let built = Query::field("custom.employees")
            .ge(10)
            .and(Query::field("custom.industry").eq("saas"));
        assert_eq!(r.count(EntityKind::Contact, &built)?, 1);
        Ok(())
    })?;
    // Removing a value drops the record from the field's index.
    db.write(|tx| {
        tx.modify(ids[0], |c| {
            c.custom.remove("notes");
            c.custom.insert("employees".into(), Value::Integer(3));
        })
    })?;
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("custom.notes exists")?)?,
            1
        );
        assert_eq!(
            r.count(
                EntityKind::Contact,
                &Query::parse("custom.employees >= 10")?
            )?,
            1
        );
        Ok(())
    })
}

// ---- recycle bin ----

#[test]
fn soft_delete_restore_and_purge() -> crmdb::Result<()> {
    let (db, _clock) = clocked_database()?;
    let (ada, bob, order) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        let bob = tx.insert(contact("Bob", "bob@example.com"))?;
        tx.add_tag(ada, "vip")?;
        tx.add_tag(bob, "vip")?;
        let order = tx.insert(Order {
            contact: Some(bob),
            at: tx.now(),
            total: Money::from_major(1),
            ..Default::default()
        })?;
        Ok((ada, bob, order))
    })?;
    let vip = Query::tag("vip");
    let count = |q: &Query| db.read(|r| r.count(EntityKind::Contact, q));

    db.write(|tx| tx.soft_delete(ada))?;
    assert_eq!(count(&vip)?, 1);
    assert_eq!(count(&Query::all())?, 1);
    assert_eq!(
        count(&!Query::tag("vip"))?,
        0,
        "NOT stays within live records"
    );
    db.read(|r| {
        assert!(!r.live(EntityKind::Contact)?.contains(ada.get()));
        assert!(r.deleted(EntityKind::Contact)?.contains(ada.get()));
        let stored = r.get(ada)?;
        assert!(stored.deleted_at.is_some(), "still readable in the bin");
        Ok(())
    })?;
    let update = db.write(|tx| tx.modify(ada, |c| c.name = "x".into()));
    assert!(matches!(update, Err(Error::Deleted { .. })), "{update:?}");

    db.write(|tx| tx.restore(ada))?;
    assert_eq!(count(&vip)?, 2);
    db.read(|r| {
        assert!(r.live(EntityKind::Contact)?.contains(ada.get()));
        assert!(r.deleted(EntityKind::Contact)?.is_empty());
        assert_eq!(r.get(ada)?.deleted_at, None);
        Ok(())
    })?;

    // Purge needs the record in the bin and nothing referring to it.
    let live_purge = db.write(|tx| tx.purge(ada));
    assert!(
        matches!(live_purge, Err(Error::NotDeleted { kind: EntityKind::Contact, id }) if id == ada.get()),
        "{live_purge:?}"
    );
    db.write(|tx| tx.soft_delete(bob))?;
    let referenced = db.write(|tx| tx.purge(bob));
    assert!(
        matches!(referenced, Err(Error::StillReferenced { kind: EntityKind::Contact, id, referrer_kind: EntityKind::Order, referrer_id }) if id == bob.get() && referrer_id == order.get()),
        "{referenced:?}"
    );
    // A referrer in the bin still refers.
    db.write(|tx| tx.soft_delete(order))?;
    assert!(matches!(
        db.write(|tx| tx.purge(bob)),
        Err(Error::StillReferenced { .. })
    ));
    db.write(|tx| {
        tx.purge(order)?;
        tx.purge(bob)
    })?;
    db.read(|r| {
        assert!(matches!(r.get(bob), Err(Error::NotFound { .. })));
        assert!(r.history(bob)?.is_empty(), "history goes with the record");
        assert_eq!(r.contact_by_email("bob@example.com")?, None);
        assert!(r.deleted(EntityKind::Contact)?.is_empty());
        assert_eq!(r.count(EntityKind::Contact, &vip)?, 1);
        Ok(())
    })?;
    // The purged email is free again; the row id is never reused.
    let bob_again = db.write(|tx| tx.insert(contact("Bob", "BOB@example.com")))?;
    assert_ne!(bob_again, bob);
    assert!(bob_again.get() > bob.get());
    let restore_purged = db.write(|tx| tx.restore(bob));
    assert!(
        matches!(restore_purged, Err(Error::NotFound { .. })),
        "{restore_purged:?}"
    );
    Ok(())
}

// ---- concurrency ----

#[test]
fn readers_see_consistent_snapshots_while_a_writer_commits() -> crmdb::Result<()> {
    const BATCHES: u32 = 40;
    const PER_BATCH: u32 = 5;
    const READERS: usize = 4;
    let db = Database::in_memory()?;
    // The tags exist before readers start, so that queries on them bind.
    db.write(|tx| -> crmdb::Result<_> {
        let seed = tx.insert(contact("Seed", "seed@example.com"))?;
        tx.add_tag(seed, "x")?;
        tx.add_tag(seed, "odd")?;
        Ok(())
    })?;
    let done = AtomicBool::new(false);
    let tag_x = Query::tag("x");
    std::thread::scope(|scope| -> crmdb::Result<()> {
        let writer = scope.spawn(|| -> crmdb::Result<()> {
            for batch in 0..BATCHES {
                db.write(|tx| -> crmdb::Result<_> {
                    for i in 0..PER_BATCH {
                        let id = tx.insert(contact(
                            &format!("c{batch}-{i}"),
                            &format!("c{batch}-{i}@example.com"),
                        ))?;
                        tx.add_tag(id, "x")?;
                        if i % 2 == 1 {
                            tx.add_tag(id, "odd")?;
                        }
                    }
                    Ok(())
                })?;
            }
            done.store(true, Ordering::SeqCst);
            Ok(())
        });
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                scope.spawn(|| -> crmdb::Result<u32> {
                    let mut last = 0u64;
                    let mut rounds = 0u32;
                    // Bounded: read while the writer runs, then once more.
                    for _ in 0..100_000 {
                        let finished = done.load(Ordering::SeqCst);
                        let seen = db.read(|r| {
                            let count = r.count(EntityKind::Contact, &tag_x)?;
                            let ids = r.ids(EntityKind::Contact, &tag_x)?;
                            let rows = r.records::<Contact>()?;
                            let tagged: Vec<u32> = rows
                                .iter()
                                .filter(|(_, c)| c.deleted_at.is_none() && c.tags.contains("x"))
                                .map(|(id, _)| id.get())
                                .collect();
                            assert_eq!(count, tagged.len() as u64, "count against rows");
                            assert_eq!(ids.iter().collect::<Vec<_>>(), tagged, "ids against rows");
                            assert_eq!(r.live(EntityKind::Contact)?.len(), rows.len() as u64);
                            assert_eq!(
                                (count - 1) % u64::from(PER_BATCH),
                                0,
                                "a snapshot holds whole batches"
                            );
                            let odd = r.count(EntityKind::Contact, &Query::tag("odd"))?;
                            assert_eq!(odd - 1, (count - 1) / u64::from(PER_BATCH) * 2);
                            Ok(count)
                        })?;
                        assert!(seen >= last, "snapshots never go back in time");
                        last = seen;
                        rounds += 1;
                        if finished {
                            break;
                        }
                    }
                    assert_eq!(last, u64::from(BATCHES * PER_BATCH) + 1, "saw the end");
                    Ok(rounds)
                })
            })
            .collect();
        writer.join().expect("writer thread")?;
        for reader in readers {
            let rounds = reader.join().expect("reader thread")?;
            assert!(rounds >= 1);
        }
        Ok(())
    })?;

    // A snapshot taken before a commit keeps its view after it.
    let snapshot = db.begin_read()?;
    db.write(|tx| {
        let late = tx.insert(contact("Late", "late@example.com"))?;
        tx.add_tag(late, "x")
    })?;
    assert_eq!(
        snapshot.count(EntityKind::Contact, &tag_x)?,
        u64::from(BATCHES * PER_BATCH) + 1
    );
    assert_eq!(
        db.read(|r| r.count(EntityKind::Contact, &tag_x))?,
        u64::from(BATCHES * PER_BATCH) + 2
    );
    Ok(())
}

#[test]
fn database_is_shared_across_threads() -> crmdb::Result<()> {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Database>();
    send_sync::<Error>();
    send::<crmdb::ReadTransaction>();
    send::<WriteTransaction>();

    let db = Database::in_memory()?;
    let shared = Arc::new(db.clone());
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let db = Arc::clone(&shared);
            std::thread::spawn(move || -> crmdb::Result<()> {
                for i in 0..10u32 {
                    db.write(|tx| {
                        let id = tx.insert(contact("T", &format!("t{t}-{i}@example.com")))?;
                        tx.add_tag(id, &format!("thread{t}"))
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer thread")?;
    }
    db.read(|r| {
        assert_eq!(r.live(EntityKind::Contact)?.len(), 80);
        for t in 0..8 {
            assert_eq!(
                r.count(EntityKind::Contact, &Query::tag(format!("thread{t}")))?,
                10
            );
        }
        Ok(())
    })?;
    // A read transaction can move to another thread.
    let snapshot = db.begin_read()?;
    let count = std::thread::spawn(move || snapshot.live(EntityKind::Contact).map(|b| b.len()))
        .join()
        .expect("reader thread")?;
    assert_eq!(count, 80);
    Ok(())
}

// ---- corrupt bytes ----

fn is_decode_error(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. } | Error::UnsupportedFormat { .. })
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let record = Contact {
        name: "Ada".into(),
        email: Some("ada@example.com".into()),
        region: Some("london".into()),
        tags: ["vip".to_owned(), "gold".to_owned()].into(),
        custom: custom(vec![("n", Value::Integer(1 << 40))]),
        lifetime_value: Money(123_456),
        ..Default::default()
    };
    let bytes = crmdb::raw::encode_record(&record);
    assert_eq!(
        crmdb::raw::decode_record::<Contact>(&bytes).expect("round trip"),
        record
    );

    for cut in 0..bytes.len() {
        match crmdb::raw::decode_record::<Contact>(&bytes[..cut]) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("truncated to {cut} bytes: {other:?}"),
        }
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        crmdb::raw::decode_record::<Contact>(&trailing),
        Err(Error::Corrupt { .. })
    ));
    for version in [0u8, 2, 200, 255] {
        let mut newer = bytes.clone();
        newer[0] = version;
        match crmdb::raw::decode_record::<Contact>(&newer) {
            Err(Error::UnsupportedFormat { found, .. }) => assert_eq!(found, version),
            other => panic!("version {version}: {other:?}"),
        }
    }
    // Flipped bytes either still decode to some record or are reported; never a panic.
    for at in 1..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            if let Err(e) = crmdb::raw::decode_record::<Contact>(&flipped) {
                assert!(is_decode_error(&e), "byte {at} ^ {mask:#x}: {e:?}");
            }
            if let Err(e) = crmdb::raw::decode_record::<Order>(&flipped) {
                assert!(is_decode_error(&e), "as order, byte {at}: {e:?}");
            }
        }
    }
    // A huge length prefix does not make the decoder allocate without bound.
    let mut huge = vec![bytes[0]];
    huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff]);
    assert!(crmdb::raw::decode_record::<Contact>(&huge).is_err());
}

#[test]
fn corrupt_bitmaps_are_errors_not_panics() {
    let bitmap: crmdb::RoaringBitmap = (0..3000u32).chain([70_000, 1 << 20, u32::MAX]).collect();
    let bytes = crmdb::raw::encode_bitmap(&bitmap);
    assert_eq!(
        crmdb::raw::decode_bitmap(&bytes).expect("round trip"),
        bitmap
    );
    for cut in 0..bytes.len() {
        match crmdb::raw::decode_bitmap(&bytes[..cut]) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("truncated to {cut} bytes: {other:?}"),
        }
    }
    let mut newer = bytes.clone();
    newer[0] = 9;
    assert!(matches!(
        crmdb::raw::decode_bitmap(&newer),
        Err(Error::UnsupportedFormat { found: 9, .. })
    ));
    for at in 1..bytes.len().min(400) {
        for mask in [0x01u8, 0x10, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            if let Err(e) = crmdb::raw::decode_bitmap(&flipped) {
                assert!(is_decode_error(&e), "byte {at} ^ {mask:#x}: {e:?}");
            }
        }
    }
    // A header claiming the maximum number of containers with no bytes behind it.
    let mut lying = vec![bytes[0]];
    lying.extend_from_slice(&12346u32.to_le_bytes());
    lying.extend_from_slice(&65_536u32.to_le_bytes());
    assert!(matches!(
        crmdb::raw::decode_bitmap(&lying),
        Err(Error::Corrupt { .. })
    ));
}

// ---- order and activity side effects ----

#[test]
fn orders_and_activities_maintain_contact_figures() -> crmdb::Result<()> {
    let (db, clock) = clocked_database()?;
    let day = |n: i64| t0().plus_days(n);
    let (ada, bob) = db.write(|tx| -> crmdb::Result<_> {
        Ok((
            tx.insert(contact("Ada", "ada@example.com"))?,
            tx.insert(contact("Bob", "bob@example.com"))?,
        ))
    })?;
    let stats = |id: ContactId| db.read(|r| Ok(r.get(id)?.stats));
    clock.advance_days(1);

    // Caller-supplied figures are ignored.
    db.write(|tx| {
        tx.modify(ada, |c| {
            c.stats.order_count = 99;
            c.stats.total_spent = Money::from_major(1);
        })
    })?;
    assert_eq!(stats(ada)?, crmdb::ContactStats::default());

    let (first, second, pending) = db.write(|tx| -> crmdb::Result<_> {
        let first = tx.insert(Order {
            contact: Some(ada),
            at: day(1),
            total: Money::from_major(100),
            ..Default::default()
        })?;
        let second = tx.insert(Order {
            contact: Some(ada),
            at: day(5),
            total: Money(5_025),
            ..Default::default()
        })?;
        let pending = tx.insert(Order {
            contact: Some(ada),
            at: day(9),
            status: OrderStatus::Pending,
            total: Money::from_major(1000),
            ..Default::default()
        })?;
        // The transaction sees its own figures.
        assert_eq!(tx.get(ada)?.stats.order_count, 2);
        Ok((first, second, pending))
    })?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (2, Money(15_025), Some(day(5)))
    );
    db.read(|r| {
        let count = |text: &str| r.count(EntityKind::Contact, &Query::parse(text)?);
        assert_eq!(count("order_count >= 2")?, 1);
        assert_eq!(count("total_spent = 150.25")?, 1);
        assert_eq!(count("last_order = 2026-03-06")?, 1);
        assert_eq!(count("order_count = 0")?, 1, "bob");
        Ok(())
    })?;

    // Activities: count and latest time, whatever order they come in.
    db.write(|tx| {
        tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Outbound,
            Subject::Contact(ada),
            day(10),
        ))?;
        tx.insert(Activity::new(
            ActivityKind::Email,
            Direction::Outbound,
            Subject::Contact(ada),
            day(3),
        ))?;
        tx.insert(Activity::new(
            ActivityKind::Meeting,
            Direction::Outbound,
            Subject::Contact(bob),
            day(4),
        ))
    })?;
    let s = stats(ada)?;
    assert_eq!((s.activity_count, s.last_activity), (2, Some(day(10))));
    assert_eq!(stats(bob)?.activity_count, 1);
    db.read(|r| {
        let q = Query::parse("last_activity >= 2026-03-10 AND activity_count = 2")?;
        assert_eq!(
            r.ids(EntityKind::Contact, &q)?.iter().collect::<Vec<_>>(),
            [ada.get()]
        );
        Ok(())
    })?;

    // Soft-deleting an order recomputes; restoring counts it again.
    db.write(|tx| tx.soft_delete(second))?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (1, Money::from_major(100), Some(day(1)))
    );
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("total_spent = 100")?)?,
            1
        );
        Ok(())
    })?;
    db.write(|tx| tx.restore(second))?;
    assert_eq!(stats(ada)?.order_count, 2);

    // Status changes count: paying the pending order, refunding the first.
    db.write(|tx| tx.modify(pending, |o| o.status = OrderStatus::Paid))?;
    let s = stats(ada)?;
    assert_eq!(
        (s.order_count, s.total_spent, s.last_order),
        (3, Money(115_025), Some(day(9)))
    );
    db.write(|tx| tx.modify(first, |o| o.status = OrderStatus::Refunded))?;
    let s = stats(ada)?;
    assert_eq!((s.order_count, s.total_spent), (2, Money(105_025)));

    // Moving an order to another contact recomputes both.
    db.write(|tx| tx.modify(pending, |o| o.contact = Some(bob)))?;
    let (a, b) = (stats(ada)?, stats(bob)?);
    assert_eq!(
        (a.order_count, a.total_spent, a.last_order),
        (1, Money(5_025), Some(day(5)))
    );
    assert_eq!((b.order_count, b.total_spent), (1, Money::from_major(1000)));

    // Soft-deleting an activity recomputes too.
    let bob_activity = db.read(|r| {
        let q = Query::field("contact").eq(bob.get());
        let ids = r.ids(EntityKind::Activity, &q)?;
        Ok(crmdb::ActivityId::new(
            ids.min().expect("bob has an activity"),
        ))
    })?;
    db.write(|tx| tx.soft_delete(bob_activity))?;
    let b = stats(bob)?;
    assert_eq!((b.activity_count, b.last_activity), (0, None));

    // Figures survive a rolled-back write unchanged.
    let before = (stats(ada)?, stats(bob)?);
    let failed: crmdb::Result<()> = db.write(|tx| {
        tx.insert(Order {
            contact: Some(ada),
            at: day(20),
            total: Money::from_major(1),
            ..Default::default()
        })?;
        Err(Error::InvalidArgument("roll back".into()))
    });
    assert!(failed.is_err());
    assert_eq!((stats(ada)?, stats(bob)?), before);
    Ok(())
}

#[test]
fn restored_contact_counts_changes_made_while_it_was_deleted() -> crmdb::Result<()> {
    let (db, _clock) = clocked_database()?;
    let day = |n: i64| t0().plus_days(n);
    let (ada, orders, call) = db.write(|tx| -> crmdb::Result<_> {
        let ada = tx.insert(contact("Ada", "ada@example.com"))?;
        let mut orders = Vec::new();
        for (n, total) in [(1, 10), (2, 20)] {
            orders.push(tx.insert(Order {
                contact: Some(ada),
                at: day(n),
                total: Money::from_major(total),
                ..Default::default()
            })?);
        }
        let call = tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Outbound,
            Subject::Contact(ada),
            day(3),
        ))?;
        Ok((ada, orders, call))
    })?;
    // While the contact is in the recycle bin, one order and its only activity go too.
    db.write(|tx| {
        tx.soft_delete(ada)?;
        tx.soft_delete(orders[1])?;
        tx.soft_delete(call)
    })?;
    db.write(|tx| tx.restore(ada))?;
    let stats = db.read(|r| Ok(r.get(ada)?.stats))?;
    assert_eq!(
        (
            stats.order_count,
            stats.total_spent,
            stats.last_order,
            stats.activity_count,
            stats.last_activity
        ),
        (1, Money::from_major(10), Some(day(1)), 0, None),
        "figures after restore are recomputed from the live orders and activities"
    );
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("order_count = 1")?)?,
            1
        );
        Ok(())
    })
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
