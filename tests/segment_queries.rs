//! Segment queries against a naive scan: random data sets and random query ASTs built
//! with the public builder; counts, id sets, text round trips, paging, group-bys, saved
//! segments and read-your-writes.

#[path = "support/model.rs"]
mod model;

use crmdb::{
    Contact, ContactId, Database, EntityKind, Error, GroupBy, Literal, Predicate, Query,
    SavedSegment, Snapshot, SortBy, Timestamp,
};
use model::{Env, GenContact};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("CRMDB_SEGMENT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A database holding the generated contacts, and what was stored.
struct Fixture {
    db: Database,
    records: Vec<(ContactId, Contact)>,
    env: Env,
}

fn today() -> Timestamp {
    // Mid-day: `within` must compare days, not seconds.
    Timestamp(model::base_day() * 86_400 + 13 * 3_600)
}

fn build(contacts: &[GenContact]) -> Fixture {
    let (db, records) = model::load(contacts, today());
    Fixture {
        db,
        records,
        env: Env {
            today: today().day(),
            segments: Default::default(),
        },
    }
}

fn data_set() -> impl Strategy<Value = Vec<GenContact>> {
    proptest::collection::vec(model::gen_contact(), 10..160)
}

/// Money literals print as decimals; the text front end has no separate money literal.
fn money_as_decimal(q: &Query) -> Query {
    let lit = |l: &Literal| match l {
        Literal::Money(m) => Literal::Decimal(m.0),
        other => other.clone(),
    };
    match q {
        Query::And(items) => Query::And(items.iter().map(money_as_decimal).collect()),
        Query::Or(items) => Query::Or(items.iter().map(money_as_decimal).collect()),
        Query::Not(inner) => Query::Not(Box::new(money_as_decimal(inner))),
        Query::Field {
            field,
            predicate,
            offset,
        } => Query::Field {
            field: field.clone(),
            predicate: match predicate {
                Predicate::Cmp(op, l) => Predicate::Cmp(*op, lit(l)),
                Predicate::In(ls) => Predicate::In(ls.iter().map(lit).collect()),
                Predicate::Between(a, b) => Predicate::Between(lit(a), lit(b)),
                other => other.clone(),
            },
            offset: *offset,
        },
        other => other.clone(),
    }
}

fn check_query(fx: &Fixture, q: &Query) -> Result<(), TestCaseError> {
    let expected = model::naive_ids(q, &fx.records, &fx.env);
    let (ids, count) = fx
        .db
        .read(|r| {
            Ok((
                r.ids(EntityKind::Contact, q)?,
                r.count(EntityKind::Contact, q)?,
            ))
        })
        .map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
    prop_assert_eq!(&ids, &expected, "ids of {}", q);
    prop_assert_eq!(count, expected.len(), "count of {}", q);
    Ok(())
}

/// The expected order of a page walk: valued records by (value, row), then the rest by row.
fn expected_order(fx: &Fixture, q: &Query, sort: &str, descending: bool) -> Vec<u32> {
    let ids = model::naive_ids(q, &fx.records, &fx.env);
    let live: Vec<&(ContactId, Contact)> = fx
        .records
        .iter()
        .filter(|(id, _)| ids.contains(id.get()))
        .collect();
    if sort == "id" {
        let mut rows: Vec<u32> = live.iter().map(|(id, _)| id.get()).collect();
        if descending {
            rows.reverse();
        }
        return rows;
    }
    let kind = model::kind_of(sort);
    let mut valued: Vec<(Result<i64, String>, u32)> = Vec::new();
    let mut missing = Vec::new();
    for (id, c) in live {
        let key = if kind.is_numeric() {
            model::num_value(c, sort).map(Ok)
        } else {
            model::cat_values(c, sort).into_iter().next().map(Err)
        };
        match key {
            Some(k) => valued.push((k, id.get())),
            None => missing.push(id.get()),
        }
    }
    valued.sort_by(|a, b| {
        let by_value = a.0.cmp(&b.0);
        let by_value = if descending {
            by_value.reverse()
        } else {
            by_value
        };
        by_value.then(a.1.cmp(&b.1))
    });
    valued.into_iter().map(|(_, r)| r).chain(missing).collect()
}

fn check_paging(
    fx: &Fixture,
    q: &Query,
    sort: &str,
    descending: bool,
    limit: usize,
) -> Result<(), TestCaseError> {
    let mut by = if sort == "id" {
        SortBy::id()
    } else {
        SortBy::field(sort)
    };
    if descending {
        by = by.descending();
    }
    let expected = expected_order(fx, q, sort, descending);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = fx
            .db
            .read(|r| r.page::<Contact>(q, &by, limit, cursor.as_deref()))
            .map_err(|e| TestCaseError::fail(format!("page {q} by {sort}: {e}")))?;
        prop_assert_eq!(page.total, expected.len() as u64);
        prop_assert!(page.items.len() <= limit);
        seen.extend(page.items.iter().map(|(id, _)| id.get()));
        pages += 1;
        prop_assert!(pages <= expected.len() + 2, "paging does not end");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    prop_assert_eq!(
        seen,
        expected,
        "page walk of {} by {} desc={} limit {}",
        q,
        sort,
        descending,
        limit
    );
    Ok(())
}

fn check_group_by(fx: &Fixture, q: &Query, field: &str, sum: &str) -> Result<(), TestCaseError> {
    let ids = model::naive_ids(q, &fx.records, &fx.env);
    let mut groups: std::collections::BTreeMap<String, (u64, i128)> = Default::default();
    for (id, c) in &fx.records {
        if !ids.contains(id.get()) {
            continue;
        }
        for value in model::cat_values(c, field) {
            let entry = groups.entry(value).or_default();
            entry.0 += 1;
            entry.1 += i128::from(model::num_value(c, sum).unwrap_or(0));
        }
    }
    let mut expected: Vec<(String, u64, Option<i128>)> = groups
        .into_iter()
        .map(|(v, (n, s))| (v, n, Some(s)))
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let got = fx
        .db
        .read(|r| r.group_by(EntityKind::Contact, q, &GroupBy::new(field).sum(sum)))
        .map_err(|e| TestCaseError::fail(format!("group {q} by {field}: {e}")))?;
    let got: Vec<(String, u64, Option<i128>)> =
        got.into_iter().map(|g| (g.value, g.count, g.sum)).collect();
    prop_assert_eq!(got, expected, "group {} by {} sum {}", q, field, sum);
    Ok(())
}

const SORTS: [&str; 6] = [
    "id",
    "lifetime_value",
    "region",
    "birth_year",
    "created",
    "custom.budget",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn counts_and_ids_equal_a_naive_scan(
        contacts in data_set(),
        queries in proptest::collection::vec(model::query(Vec::new()), 25),
    ) {
        let fx = build(&contacts);
        for q in &queries {
            check_query(&fx, q)?;
        }
    }

    #[test]
    fn display_parses_back_to_an_equal_query(q in model::query(vec!["vip_buyers".into()])) {
        let text = q.to_string();
        let parsed = Query::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(model::strip_offsets(&parsed), money_as_decimal(&q), "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn paging_returns_every_match_once_in_order(
        contacts in data_set(),
        walks in proptest::collection::vec(
            (model::query(Vec::new()), 0..SORTS.len(), any::<bool>(), 1usize..9),
            4,
        ),
    ) {
        let fx = build(&contacts);
        for (q, sort, descending, limit) in &walks {
            check_paging(&fx, q, SORTS[*sort], *descending, *limit)?;
        }
    }

    #[test]
    fn group_by_equals_a_naive_group_by(
        contacts in data_set(),
        groups in proptest::collection::vec(
            (
                model::query(Vec::new()),
                proptest::sample::select(vec!["region", "stage", "tag", "owner", "custom.industry", "custom.channels", "role"]),
                proptest::sample::select(vec!["lifetime_value", "custom.budget", "created", "birth_year"]),
            ),
            4,
        ),
    ) {
        let fx = build(&contacts);
        for (q, field, sum) in &groups {
            check_group_by(&fx, q, field, sum)?;
        }
    }

    #[test]
    fn saved_segments_are_usable_in_queries(
        contacts in data_set(),
        dynamic in model::query(Vec::new()),
        picks in proptest::collection::vec(0usize..200, 0..20),
        queries in proptest::collection::vec(
            model::query(vec!["picked".into(), "dyn".into(), "dyn_of_both".into()]),
            10,
        ),
    ) {
        let mut fx = build(&contacts);
        let rows: Vec<ContactId> = picks
            .iter()
            .filter_map(|p| fx.records.get(p % fx.records.len()).map(|(id, _)| *id))
            .collect();
        let both = Query::segment("dyn").or(!Query::segment("picked"));
        let saved = [
            ("picked", SavedSegment::of_ids(rows)),
            ("dyn", SavedSegment::Dynamic { kind: EntityKind::Contact, query: dynamic }),
            ("dyn_of_both", SavedSegment::Dynamic { kind: EntityKind::Contact, query: both }),
        ];
        fx.db
            .write(|tx| -> crmdb::Result<_> {
                for (name, segment) in &saved {
                    tx.save_segment(name, segment.clone())?;
                }
                Ok(())
            })
            .map_err(|e| TestCaseError::fail(format!("save segments: {e}")))?;
        for (name, segment) in saved {
            fx.env.segments.insert(name.to_owned(), segment);
        }
        for q in &queries {
            check_query(&fx, q)?;
        }
    }
}

fn small_db() -> Fixture {
    let contacts: Vec<GenContact> = (0..12)
        .map(|i| GenContact {
            region: (i % 3 != 0).then_some(i % 4),
            source: None,
            gender: None,
            owner: None,
            stage: i % 6,
            tags: [i % 5].into_iter().collect(),
            roles: Default::default(),
            unsubscribed: false,
            ltv: (i as i64) * 100,
            birth_year: None,
            created_offset: -(i as i64),
            industry: None,
            channels: None,
            score: None,
            budget: None,
            renewal_offset: None,
            trial: None,
            note: false,
            deleted: i == 11,
        })
        .collect();
    build(&contacts)
}

#[test]
fn a_dynamic_segment_referring_to_itself_is_a_cycle() {
    let fx = small_db();
    let dynamic = |q: Query| SavedSegment::Dynamic {
        kind: EntityKind::Contact,
        query: q,
    };
    let direct = fx.db.write(|tx| {
        tx.save_segment(
            "selfish",
            dynamic(Query::tag("vip").or(Query::segment("selfish"))),
        )
    });
    assert!(
        matches!(direct, Err(Error::SegmentCycle(ref n)) if n == "selfish"),
        "{direct:?}"
    );
    fx.db
        .write(|tx| {
            tx.save_segment("a", dynamic(Query::tag("vip")))?;
            tx.save_segment("b", dynamic(!Query::segment("a")))
        })
        .expect("acyclic segments save");
    let indirect = fx
        .db
        .write(|tx| tx.save_segment("a", dynamic(Query::segment("b").and(Query::tag("gold")))));
    assert!(
        matches!(indirect, Err(Error::SegmentCycle(_))),
        "{indirect:?}"
    );
    // The refused save left `a` as it was.
    let n = fx
        .db
        .read(|r| r.count(EntityKind::Contact, &Query::segment("b")))
        .expect("count");
    let expected = model::naive_ids(&!Query::tag("vip"), &fx.records, &fx.env).len();
    assert_eq!(n, expected);
}

#[test]
fn a_write_transaction_reads_its_own_writes_and_others_do_not() {
    let fx = small_db();
    let q = Query::tag("vip").and(Query::field("lifetime_value").ge(50_000));
    let before = fx
        .db
        .read(|r| r.count(EntityKind::Contact, &q))
        .expect("count");
    let mut tx = fx.db.begin_write().expect("begin");
    let id = tx
        .insert(Contact {
            name: "new".into(),
            lifetime_value: crmdb::Money::from_major(60_000),
            ..Default::default()
        })
        .expect("insert");
    assert_eq!(tx.count(EntityKind::Contact, &q).expect("count"), before);
    tx.add_tag(id, "vip").expect("tag");
    assert_eq!(
        tx.count(EntityKind::Contact, &q).expect("count"),
        before + 1
    );
    assert!(
        tx.ids(EntityKind::Contact, &q)
            .expect("ids")
            .contains(id.get())
    );
    let other = fx
        .db
        .read(|r| r.count(EntityKind::Contact, &q))
        .expect("count");
    assert_eq!(other, before, "another reader sees uncommitted writes");
    tx.soft_delete(id).expect("delete");
    assert_eq!(tx.count(EntityKind::Contact, &q).expect("count"), before);
    tx.restore(id).expect("restore");
    tx.commit().expect("commit");
    let after = fx
        .db
        .read(|r| r.count(EntityKind::Contact, &q))
        .expect("count");
    assert_eq!(after, before + 1);
}
