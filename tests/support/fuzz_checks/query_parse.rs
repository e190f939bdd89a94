//! query_parse: parse, round-trip through the canonical text, evaluate.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crmdb::{
    Account, ActivityKind, Contact, Database, Deal, EntityKind, FieldDef, FieldType, ManualClock,
    Money, Order, OrderStatus, Owner, Product, Query, SavedSegment, Snapshot, Task, Timestamp,
    Value,
};

use super::EPOCH;

/// The query with every source offset zeroed: `Display` promises equality up to offsets.
pub fn without_offsets(query: &Query) -> Query {
    match query {
        Query::All => Query::All,
        Query::And(items) => Query::And(items.iter().map(without_offsets).collect()),
        Query::Or(items) => Query::Or(items.iter().map(without_offsets).collect()),
        Query::Not(inner) => Query::Not(Box::new(without_offsets(inner))),
        Query::Segment { name, .. } => Query::Segment {
            name: name.clone(),
            offset: 0,
        },
        Query::Field {
            field, predicate, ..
        } => Query::Field {
            field: field.clone(),
            predicate: predicate.clone(),
            offset: 0,
        },
    }
}

fn contact(name: &str, email: &str, region: &str, tags: &[&str]) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        region: Some(region.into()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

fn build_query_db() -> crmdb::Result<Database> {
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let db = Database::builder().clock(clock.clone()).in_memory()?;
    db.write(|tx| -> crmdb::Result<_> {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new(
                "industry",
                FieldType::SingleSelect(vec!["saas".into(), "retail".into()]),
            ),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new(
                "interests",
                FieldType::MultiSelect(vec!["golf".into(), "wine".into(), "tech".into()]),
            ),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("score", FieldType::Integer),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("budget", FieldType::Money),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("renewal", FieldType::Date),
        )?;
        tx.define_field(EntityKind::Contact, FieldDef::new("vip", FieldType::Bool))?;
        tx.define_field(EntityKind::Contact, FieldDef::new("note", FieldType::Text))?;

        let owner = tx.insert(Owner {
            name: "Wang Fang".into(),
            team: Some("east".into()),
            region: Some("shanghai".into()),
            capacity: 40,
            ..Default::default()
        })?;
        let account = tx.insert(Account {
            name: "Acme".into(),
            industry: Some("saas".into()),
            region: Some("beijing".into()),
            size: Some(120),
            tags: ["key_account".to_owned()].into(),
            owner: Some(owner),
            ..Default::default()
        })?;
        let product = tx.insert(Product {
            sku: "TEA-01".into(),
            name: "Green tea".into(),
            category: Some("tea".into()),
            list_price: Money(12_50),
            ..Default::default()
        })?;

        let mut li = contact("Li Lei", "li@example.com", "shanghai", &["vip", "gold"]);
        li.owner = Some(owner);
        li.account = Some(account);
        li.birth_year = Some(1990);
        li.lifetime_value = Money(150_000);
        li.custom = BTreeMap::from([
            ("industry".to_owned(), Value::Select("saas".into())),
            (
                "interests".to_owned(),
                Value::MultiSelect(["golf".to_owned(), "tech".to_owned()].into()),
            ),
            ("score".to_owned(), Value::Integer(42)),
            ("budget".to_owned(), Value::Money(Money(99_50))),
            (
                "renewal".to_owned(),
                Value::Date(Timestamp(EPOCH + 30 * 86_400)),
            ),
            ("vip".to_owned(), Value::Bool(true)),
            ("note".to_owned(), Value::Text("met at a fair".into())),
        ]);
        let li = tx.insert(li)?;
        let mut han = contact("Han Meimei", "han@example.com", "beijing", &["gold"]);
        han.custom = BTreeMap::from([
            ("industry".to_owned(), Value::Select("retail".into())),
            ("score".to_owned(), Value::Integer(-7)),
            ("vip".to_owned(), Value::Bool(false)),
        ]);
        han.gender = Some("f".into());
        let han = tx.insert(han)?;
        let zhao = tx.insert(contact(
            "Zhao Wei",
            "zhao@example.com",
            "shanghai",
            &["unsubscribed_once"],
        ))?;
        let gone = tx.insert(contact("Gone", "gone@example.com", "x", &["vip"]))?;
        tx.soft_delete(gone)?;

        tx.move_stage(li, "active")?;
        tx.move_stage(zhao, "responder")?;
        tx.insert(Order {
            contact: Some(han),
            at: Timestamp(EPOCH - 86_400),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            line_items: vec![crmdb::LineItem {
                product,
                quantity: 4,
                unit_price: Money(12_50),
            }],
            ..Default::default()
        })?;
        tx.insert(crmdb::Activity::new(
            ActivityKind::Call,
            crmdb::Direction::Inbound,
            crmdb::Subject::Contact(zhao),
            Timestamp(EPOCH - 3 * 86_400),
        ))?;
        let deal = tx.insert(Deal {
            name: "Acme renewal".into(),
            account: Some(account),
            contact: Some(li),
            amount: Money(2_000_000),
            tags: ["q1".to_owned()].into(),
            ..Default::default()
        })?;
        tx.move_stage(deal, "proposal")?;
        tx.insert(Task {
            title: "Call back".into(),
            assignee: Some(owner),
            related: Some(crmdb::Subject::Contact(li)),
            due: Some(Timestamp(EPOCH + 86_400)),
            ..Default::default()
        })?;
        tx.save_segment(
            "high_value",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("lifetime_value >= 1000")?,
            },
        )?;
        tx.save_segment("picked", SavedSegment::of_ids([li, zhao]))?;
        tx.save_segment(
            "gold_high",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("tag:gold AND segment:high_value")?,
            },
        )?;
        Ok(())
    })?;
    clock.advance_days(10);
    Ok(db)
}

fn query_db() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| build_query_db().expect("the fixed query database builds"))
}

/// Parses `data` as a query; a parsed query must survive its canonical text and must
/// evaluate (to a result or an error, never a panic) against a small fixed database,
/// with `q` and `NOT q` splitting the live records between them.
pub fn check_query_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let canonical = query.to_string();
    match Query::parse(&canonical) {
        Ok(again) => assert_eq!(
            without_offsets(&again),
            without_offsets(&query),
            "canonical text {canonical:?} of {text:?} parses to another query"
        ),
        Err(e) => panic!("canonical text {canonical:?} of {text:?} does not parse: {e}"),
    }
    let outcome = query_db().read(|r| {
        for kind in EntityKind::ALL {
            let Ok(matching) = r.ids(kind, &query) else {
                continue;
            };
            let live = r.live(kind)?;
            assert!(
                matching.is_subset(&live),
                "{text:?} on {kind} matched records that are not live"
            );
            match r.ids(kind, &!query.clone()) {
                Ok(complement) => assert!(
                    (&matching & &complement).is_empty() && (&matching | &complement) == live,
                    "{text:?} and its negation do not split the live {kind} records"
                ),
                // One more level of nesting may pass the limit; nothing else may fail.
                Err(crmdb::Error::Query(crmdb::QueryError {
                    kind: crmdb::QueryErrorKind::TooDeep { .. },
                    ..
                })) => {}
                Err(e) => panic!("NOT ({text:?}) fails on {kind}: {e}"),
            }
        }
        Ok(())
    });
    outcome.expect("reading the fixed query database");
}
