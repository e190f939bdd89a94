//! Records, indexes, histories, segments and configuration read back as spelled out.

use std::collections::BTreeSet;

use crmdb::analytics::RfmState;
use crmdb::{
    Account, Activity, Assignment, AssignmentRule, Contact, ContactId, Deal, DealId, EntityKind,
    FieldDef, Group, GroupBy, Order, Owner, OwnerId, Product, ProductId, Query, SavedSegment,
    Snapshot, SortBy, Stage, Task,
};

use crate::expected_config::{
    expected_contact_histories, expected_deal_histories, expected_machines, expected_schema,
};
use crate::expected_crm::{expected_accounts, expected_contacts, expected_deals};
use crate::expected_queries::QUERIES;
use crate::expected_sales::{
    expected_activities, expected_orders, expected_owners, expected_products, expected_tasks,
};
use crate::support::{
    Fixture, Scratch, TestResult, assert_records, each_fixture, open_copy, rows, utc,
};

#[test]
fn records_read_back_field_by_field() -> TestResult {
    each_fixture(records_read_back_field_by_field_in)
}

fn records_read_back_field_by_field_in(fixture: Fixture) -> TestResult {
    let scratch = Scratch::new("records");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture(fixture))?;
    db.read(|r| {
        assert_records(r.records::<Contact>()?, expected_contacts());
        assert_records(r.records::<Account>()?, expected_accounts());
        assert_records(r.records::<Deal>()?, expected_deals());
        assert_records(r.records::<Activity>()?, expected_activities());
        assert_records(r.records::<Order>()?, expected_orders());
        assert_records(r.records::<Product>()?, expected_products());
        assert_records(r.records::<Owner>()?, expected_owners());
        assert_records(r.records::<Task>()?, expected_tasks());

        // Natural keys, compared trimmed and case-insensitively.
        assert_eq!(
            r.contact_by_email("li.lei@example.com")?,
            Some(ContactId::new(0))
        );
        assert_eq!(
            r.contact_by_email("  LI.LEI@EXAMPLE.COM ")?,
            Some(ContactId::new(0))
        );
        assert_eq!(
            r.contact_by_email("zhou.min@example.com")?,
            Some(ContactId::new(5))
        );
        assert_eq!(r.contact_by_email("temp.lead@example.com")?, None);
        assert_eq!(r.product_by_sku("sku-crm-01")?, Some(ProductId::new(0)));
        assert_eq!(r.product_by_sku("SKU-HW-02")?, Some(ProductId::new(1)));
        assert_eq!(r.product_by_sku("svc-onboard")?, Some(ProductId::new(2)));
        assert_eq!(r.product_by_sku("SKU-NONE")?, None);

        // The purged rows 4 (contact) and 3 (task) are in neither set.
        for (kind, live, deleted) in [
            (EntityKind::Contact, &[0, 1, 2, 3, 6, 7][..], &[5][..]),
            (EntityKind::Account, &[0, 1], &[]),
            (EntityKind::Deal, &[0, 1, 2], &[]),
            (EntityKind::Activity, &[0, 1, 2, 3, 4, 5, 6, 7], &[]),
            (EntityKind::Order, &[0, 1, 2, 3, 4, 5, 7, 8], &[6]),
            (EntityKind::Product, &[0, 1, 2], &[]),
            (EntityKind::Owner, &[0, 1, 2, 3], &[]),
            (EntityKind::Task, &[0, 1, 2], &[]),
        ] {
            assert_eq!(rows(&r.live(kind)?), live, "{kind} live");
            assert_eq!(rows(&r.deleted(kind)?), deleted, "{kind} deleted");
        }

        // Tags of live records, most used first, ties by name; the binned contact's
        // tags do not count.
        let tags = |kind| -> crmdb::Result<Vec<(String, u64)>> {
            Ok(r.tags(kind)?
                .into_iter()
                .map(|t| (t.tag, t.count))
                .collect())
        };
        let tag = |t: &str, n: u64| (t.to_owned(), n);
        assert_eq!(
            tags(EntityKind::Contact)?,
            [tag("newsletter", 2), tag("trade_show", 2), tag("vip", 2)]
        );
        assert_eq!(
            tags(EntityKind::Account)?,
            [tag("key_account", 2), tag("at_risk", 1), tag("partner", 1)]
        );
        assert_eq!(
            tags(EntityKind::Deal)?,
            [tag("hardware", 1), tag("renewal_2026", 1), tag("upsell", 1)]
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn indexes_answer_spelled_out_queries() -> TestResult {
    each_fixture(indexes_answer_spelled_out_queries_in)
}

fn indexes_answer_spelled_out_queries_in(fixture: Fixture) -> TestResult {
    let scratch = Scratch::new("queries");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture(fixture))?;
    db.read(|r| {
        for &(kind, text, expected) in QUERIES {
            let query = Query::parse(text)?;
            assert_eq!(rows(&r.ids(kind, &query)?), expected, "{kind}: {text}");
            assert_eq!(
                r.count(kind, &query)?,
                expected.len() as u64,
                "{kind}: {text}"
            );
        }

        // Counts and exact sums from the bit-sliced index.
        let groups = r.group_by(
            EntityKind::Contact,
            &Query::all(),
            &GroupBy::new("stage").sum("lifetime_value"),
        )?;
        let group = |value: &str, count: u64, sum: i128| Group {
            value: value.into(),
            count,
            sum: Some(sum),
        };
        assert_eq!(
            groups,
            [
                group("new_customer", 3, 74_850),
                group("active", 2, 338_000),
                group("prospect", 1, 0),
            ]
        );

        // A page sorted by a numeric field.
        let page = r.page::<Contact>(
            &Query::all(),
            &SortBy::field("lifetime_value").descending(),
            3,
            None,
        )?;
        let ids: Vec<u32> = page.items.iter().map(|(id, _)| id.get()).collect();
        assert_eq!(ids, [0, 1, 7]);
        assert_eq!(page.total, 6);
        assert!(page.next_cursor.is_some());
        Ok(())
    })?;
    Ok(())
}

#[test]
fn histories_segments_and_configuration_read_back() -> TestResult {
    each_fixture(histories_segments_and_configuration_read_back_in)
}

fn histories_segments_and_configuration_read_back_in(fixture: Fixture) -> TestResult {
    let scratch = Scratch::new("config");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture(fixture))?;
    db.read(|r| {
        for (row, expected) in expected_contact_histories() {
            let found = r.history(ContactId::new(row))?;
            assert_eq!(found.len(), expected.len(), "contact {row} history length");
            for (i, (found, expected)) in found.iter().zip(&expected).enumerate() {
                assert_eq!(found, expected, "contact {row} history entry {i}");
            }
        }
        for (row, expected) in expected_deal_histories() {
            let found = r.history(DealId::new(row))?;
            assert_eq!(found.len(), expected.len(), "deal {row} history length");
            for (i, (found, expected)) in found.iter().zip(&expected).enumerate() {
                assert_eq!(found, expected, "deal {row} history entry {i}");
            }
        }
        assert_eq!(
            r.stage_at(ContactId::new(1), utc(2026, 4, 16, 0, 0))?,
            Some(Stage::new("dormant"))
        );

        assert_eq!(
            r.segments()?,
            [
                "high_value",
                "high_value_shanghai",
                "open_deals",
                "vip_list"
            ]
        );
        assert_eq!(
            r.segment("vip_list")?,
            SavedSegment::Static {
                kind: EntityKind::Contact,
                rows: vec![0, 1, 5],
            }
        );
        // Read back by parsing the stored canonical text; spelled out here as that text.
        for (name, kind, text) in [
            (
                "high_value",
                EntityKind::Contact,
                r#"(tag = "vip" AND lifetime_value >= 800)"#,
            ),
            (
                "high_value_shanghai",
                EntityKind::Contact,
                r#"(segment:high_value AND region = "shanghai")"#,
            ),
            (
                "open_deals",
                EntityKind::Deal,
                r#"NOT stage IN ("won", "lost", "renewed", "cancelled")"#,
            ),
        ] {
            let segment = r.segment(name)?;
            assert_eq!(
                segment,
                SavedSegment::Dynamic {
                    kind,
                    query: Query::parse(text)?,
                },
                "segment {name}"
            );
            let SavedSegment::Dynamic { query, .. } = segment else {
                unreachable!("compared as dynamic above");
            };
            assert_eq!(query.to_string(), text, "segment {name} text");
        }

        for kind in EntityKind::ALL {
            let fields: Vec<FieldDef> = r.schema(kind)?.fields().cloned().collect();
            assert_eq!(fields, expected_schema(kind), "{kind} schema");
        }
        assert_eq!(r.machines()?, expected_machines());
        assert_eq!(
            crmdb::assignment(r)?,
            Assignment {
                rules: vec![
                    AssignmentRule::ByRegion {
                        name: "regional".into(),
                    },
                    AssignmentRule::RoundRobin {
                        name: "east_round_robin".into(),
                        team: "east".into(),
                    },
                    AssignmentRule::CapacityLimited {
                        name: "least_loaded".into(),
                        team: None,
                        period_days: 30,
                    },
                ],
                excluded: BTreeSet::from([OwnerId::new(3)]),
                lead_stages: vec![Stage::new("prospect"), Stage::new("responder")],
            }
        );
        assert_eq!(
            crmdb::analytics::rfm_state(r)?,
            Some(RfmState {
                refreshed_at: utc(2026, 4, 30, 0, 0),
                customers: 5,
                top20: 1,
                // 159 800 of 294 650 spent, stored as the f64 itself.
                top20_revenue_share: 0.542338367554726,
            })
        );
        Ok(())
    })?;
    Ok(())
}
