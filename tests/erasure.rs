//! Erasure: a person's values spread through rows, natural keys, history, consent,
//! a merge's lineage, the change log and indexes; erased, compacted, and the file's
//! bytes scanned for them. Revenue and relations stay exact.

use std::sync::Arc;

use crmdb::identity::{Consent, ConsentStatus, ERASED, MergePolicy};
use crmdb::{
    Activity, ActivityKind, Builder, Contact, ContactId, Deal, Direction, EntityKind, Error,
    FieldDef, FieldType, ManualClock, Money, Order, OrderStatus, Query, RecordId, Snapshot,
    Subject, Timestamp, Value, stages,
};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

const NAME: &str = "Ouyang Xiaoxue";
const EMAIL: &str = "ouyang.xiaoxue@erase.example";
const PHONE: &str = "+86 139 1234 5678";
const WECHAT: &str = "oyxx_wechat_2026";
const OTHER_EMAIL: &str = "oyxx.shop@erase.example";

fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.clock(Arc::new(ManualClock::new(Timestamp(1_700_000_000))));
    builder
}

/// The person, a duplicate of them merged in, and their records.
fn write_person(db: &crmdb::Database) -> crmdb::Result<(ContactId, ContactId)> {
    db.write(|tx| -> crmdb::Result<_> {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("wechat_id", FieldType::Text),
        )?;
        tx.set_personal(EntityKind::Contact, "wechat_id", true)?;
        tx.set_actor(EMAIL);
        let person = tx.insert(Contact {
            name: NAME.into(),
            email: Some(EMAIL.into()),
            phone: Some(PHONE.into()),
            region: Some("shanghai".into()),
            tags: ["vip".to_owned()].into(),
            custom: [("wechat_id".to_owned(), Value::Text(WECHAT.into()))].into(),
            ..Default::default()
        })?;
        tx.modify(person, |c| c.source = Some("web".into()))?;
        tx.move_stage(person, stages::contact::ACTIVE)?;
        tx.regress(
            person,
            stages::contact::RESPONDER,
            &format!("{NAME} asked to pause"),
        )?;
        tx.record_consent(
            person,
            Consent {
                source: Some(format!("paper form signed by {NAME}")),
                ..Consent::new("email", ConsentStatus::Granted)
            },
        )?;
        let duplicate = tx.insert(Contact {
            name: NAME.to_uppercase(),
            email: Some(OTHER_EMAIL.into()),
            phone: Some(PHONE.replace(' ', "")),
            ..Default::default()
        })?;
        for (who, total) in [(person, 12_000), (duplicate, 3_000)] {
            tx.insert(Order {
                contact: Some(who),
                at: tx.now(),
                status: OrderStatus::Paid,
                total: Money(total),
                ..Default::default()
            })?;
        }
        tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Inbound,
            Subject::Contact(duplicate),
            tx.now(),
        ))?;
        tx.insert(Deal {
            name: "renewal".into(),
            contact: Some(person),
            amount: Money(50_000),
            ..Default::default()
        })?;
        Ok((person, duplicate))
    })
}

fn needles() -> Vec<String> {
    let mut out = vec![
        NAME.to_owned(),
        NAME.to_uppercase(),
        EMAIL.to_owned(),
        OTHER_EMAIL.to_owned(),
        PHONE.to_owned(),
        PHONE.replace(' ', ""),
        WECHAT.to_owned(),
    ];
    out.extend(out.clone().iter().map(|n| n.to_lowercase()));
    out
}

fn occurrences(bytes: &[u8]) -> Vec<String> {
    needles()
        .into_iter()
        .filter(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        .collect()
}

#[test]
fn erasure_leaves_no_trace_in_the_file_and_keeps_the_figures() -> crmdb::Result<()> {
    let dir = TempDir::new("erasure");
    let path = dir.0.join("crm.redb");
    let db = builder().create(&path)?;
    let (person, duplicate) = write_person(&db)?;
    let merge = db.write(|tx| tx.merge(person, duplicate, &MergePolicy::survivor_wins()))?;
    let spent = db.read(|r| r.get(person))?.stats.total_spent;
    assert_eq!(spent, Money(15_000));
    drop(db);
    assert!(
        !occurrences(&std::fs::read(&path)?).is_empty(),
        "the values are in the file before"
    );

    let mut db = builder().open(&path)?;
    let before = db.read(|r| r.sequence())?;
    // The merged id stands for the person: both contacts are erased.
    let erasure = db.write(|tx| tx.erase(duplicate, "request 2026-118"))?;
    assert_eq!(erasure.contacts, [person.row(), duplicate.row()]);
    db.read(|r| {
        for id in [person, duplicate] {
            let c = r.get(id)?;
            assert_eq!(c.name, ERASED);
            assert_eq!((c.email.as_deref(), c.phone.as_deref()), (None, None));
            assert!(c.custom.is_empty());
            assert_eq!(
                c.region.as_deref(),
                if id == person { Some("shanghai") } else { None }
            );
        }
        assert_eq!(r.contact_by_email(EMAIL)?, None);
        assert_eq!(r.contact_by_email(OTHER_EMAIL)?, None);
        let c = r.get(person)?;
        assert_eq!(c.stats.total_spent, spent, "revenue stays exact");
        assert_eq!(c.stats.order_count, 2);
        let won = r.count(
            EntityKind::Deal,
            &Query::parse(&format!("contact = {}", person.row()))?,
        )?;
        assert_eq!(won, 1, "the deal stays linked");
        assert_eq!(
            r.count(
                EntityKind::Contact,
                &Query::parse("custom.wechat_id exists")?
            )?,
            0
        );
        for entry in r.history(person)? {
            assert!(!entry.actor.contains(EMAIL), "{entry:?}");
            assert!(!entry.reason.unwrap_or_default().contains(NAME));
        }
        let consent = r.consent(person)?;
        assert_eq!(
            consent["email"].consent.status,
            ConsentStatus::Granted,
            "the state stays"
        );
        assert_eq!(consent["email"].consent.source, None);
        assert_eq!(r.erasures()?, vec![erasure.clone()]);
        assert_eq!(r.lineage(merge)?.erased, Some(erasure.erasure));
        Ok(())
    })?;
    let err = db.write(|tx| tx.unmerge(merge)).unwrap_err();
    assert!(matches!(err, Error::UnmergeConflict { .. }), "{err}");

    // The log: every batch rewritten, the erasure event naming ids only.
    let batches = db.changes(0, 1000)?;
    let text = format!("{batches:?}");
    let left: Vec<String> = needles()
        .into_iter()
        .filter(|n| text.contains(n.as_str()))
        .collect();
    assert!(left.is_empty(), "the log still quotes {left:?}");
    let last = batches
        .iter()
        .find(|b| b.sequence > before)
        .expect("the erasure's batch");
    let erased: Vec<u32> = last
        .events
        .iter()
        .filter_map(|e| match e.change {
            crmdb::feed::Change::Erased { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(erased, [person.row(), duplicate.row()]);

    db.compact()?;
    drop(db);
    let bytes = std::fs::read(&path)?;
    let left = occurrences(&bytes);
    assert!(left.is_empty(), "the file still holds {left:?}");
    let mut db = builder().open(&path)?;
    assert!(db.check_integrity()?);
    Ok(())
}

#[test]
fn erasing_a_survivor_and_bad_requests() -> crmdb::Result<()> {
    let db = builder().in_memory()?;
    let (person, duplicate) = write_person(&db)?;
    let merge = db.write(|tx| tx.merge(person, duplicate, &MergePolicy::survivor_wins()))?;
    db.write(|tx| tx.unmerge(merge))?;
    // Unmerged: two people again; erasing one leaves the other.
    let erasure = db.write(|tx| tx.erase(person, "request"))?;
    assert_eq!(erasure.contacts, [person.row()]);
    db.read(|r| {
        assert_eq!(r.get(duplicate)?.email.as_deref(), Some(OTHER_EMAIL));
        Ok(())
    })?;
    let err = db
        .write(|tx| tx.erase(ContactId::new(999), "x"))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = db.write(|tx| tx.erase(duplicate, " ")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    Ok(())
}
