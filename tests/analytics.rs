//! Analytics on small hand-computed data sets, and against naive recomputation on
//! generated data.

use std::sync::Arc;

use crmdb::analytics::{self, FunnelRequest, OwnerSort};
use crmdb::{
    Activity, ActivityKind, Assignment, AssignmentRule, Builder, Contact, ContactId, Database,
    Deal, DealId, Direction, EntityKind, LineItem, ManualClock, Money, Order, OrderStatus, Owner,
    OwnerId, Product, Query, Snapshot, Subject, Timestamp,
};

fn day(n: i64) -> Timestamp {
    Timestamp::from_ymd(2026, 1, 1)
        .expect("valid date")
        .plus_days(n)
}

fn database() -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(day(0)));
    let db = Builder::new().clock(clock.clone()).in_memory()?;
    Ok((db, clock))
}

/// Inserts a deal at `created` and applies `moves` at their times.
fn deal_with_history(
    tx: &mut crmdb::WriteTransaction,
    deal: Deal,
    created: i64,
    moves: &[(i64, &str)],
) -> crmdb::Result<DealId> {
    tx.set_time(Some(day(created)));
    let id = tx.insert(deal)?;
    for (at, stage) in moves {
        tx.set_time(Some(day(*at)));
        match *stage {
            "won" => tx.modify(id, |d| d.close_date = Some(day(*at)))?,
            "lost" => tx.modify(id, |d| d.lost_reason = Some("budget".into()))?,
            _ => {}
        }
        tx.move_stage(id, *stage)?;
    }
    tx.set_time(None);
    Ok(id)
}

const DAY: i64 = 86_400;

#[test]
fn funnel_and_owner_ranking_by_hand() -> crmdb::Result<()> {
    let (db, _clock) = database()?;
    let (a, b, c) = db.write(|tx| -> crmdb::Result<_> {
        let a = tx.insert(Owner {
            name: "A".into(),
            ..Default::default()
        })?;
        let b = tx.insert(Owner {
            name: "B".into(),
            ..Default::default()
        })?;
        let c = tx.insert(Owner {
            name: "C".into(),
            ..Default::default()
        })?;
        let deal = |owner: OwnerId, amount: i64| Deal {
            name: "d".into(),
            owner: Some(owner),
            amount: Money::from_major(amount),
            ..Default::default()
        };
        deal_with_history(
            tx,
            deal(a, 1000),
            0,
            &[(2, "qualified"), (5, "proposal"), (10, "won")],
        )?;
        deal_with_history(tx, deal(a, 300), 1, &[(3, "lost")])?;
        deal_with_history(tx, deal(b, 500), 0, &[(4, "qualified"), (8, "negotiation")])?;
        // Outside the window: created and won late.
        deal_with_history(tx, deal(c, 999), 40, &[(45, "won")])?;
        let contact = tx.insert(Contact {
            name: "k".into(),
            owner: Some(a),
            ..Default::default()
        })?;
        for at in [1, 2, 50] {
            let mut activity = Activity::new(
                ActivityKind::Call,
                Direction::Outbound,
                Subject::Contact(contact),
                day(at),
            );
            activity.owner = Some(a);
            tx.insert(activity)?;
        }
        Ok((a, b, c))
    })?;
    let request = FunnelRequest {
        pipeline: "default".into(),
        from: day(0),
        to: day(30),
        segment: None,
    };
    let funnel = db.read(|r| analytics::funnel(r, &request))?;
    let stage = |name: &str| {
        funnel
            .stages
            .iter()
            .find(|s| s.stage.as_str() == name)
            .cloned()
            .expect("stage listed")
    };
    assert_eq!(funnel.deals, 4);
    let lead = stage("lead");
    assert_eq!((lead.entered, lead.converted), (3, 2));
    assert_eq!(lead.median_time_in_stage, Some(2 * DAY));
    assert_eq!(lead.mean_time_in_stage, Some((8 * DAY) as f64 / 3.0));
    let qualified = stage("qualified");
    assert_eq!((qualified.entered, qualified.converted), (2, 2));
    assert_eq!(qualified.median_time_in_stage, Some(3 * DAY + DAY / 2));
    assert_eq!(stage("needs_analysis").entered, 0);
    assert_eq!(stage("needs_analysis").conversion_rate, None);
    let proposal = stage("proposal");
    assert_eq!(
        (
            proposal.entered,
            proposal.converted,
            proposal.median_time_in_stage
        ),
        (1, 1, Some(5 * DAY))
    );
    let negotiation = stage("negotiation");
    assert_eq!(
        (
            negotiation.entered,
            negotiation.converted,
            negotiation.median_time_in_stage
        ),
        (1, 0, None)
    );
    assert_eq!((funnel.won, funnel.lost), (1, 1));
    assert_eq!(funnel.win_rate, Some(0.5));
    assert_eq!(funnel.median_cycle_time, Some(10 * DAY));

    // The same funnel restricted to owner B's deals.
    let only_b = FunnelRequest {
        segment: Some(Query::field("owner").eq(b.get())),
        ..request.clone()
    };
    let funnel_b = db.read(|r| analytics::funnel(r, &only_b))?;
    assert_eq!(funnel_b.deals, 1);
    assert_eq!(funnel_b.stages[0].entered, 1);
    assert_eq!(funnel_b.win_rate, None);

    let ranking =
        db.read(|r| analytics::owner_ranking(r, day(0), day(30), OwnerSort::WonAmount))?;
    assert_eq!(
        ranking.iter().map(|o| o.owner).collect::<Vec<_>>(),
        vec![a, b, c]
    );
    let (ra, rb, rc) = (&ranking[0], &ranking[1], &ranking[2]);
    assert_eq!(
        (ra.won_amount, ra.won_count, ra.closed_count),
        (Money::from_major(1000), 1, 2)
    );
    assert_eq!(ra.conversion_rate, Some(0.5));
    assert_eq!(ra.activity_count, 2);
    assert_eq!(ra.median_cycle_time, Some(10 * DAY));
    assert_eq!(ra.weighted_pipeline, Money::ZERO);
    // Negotiation is 80%: 500.00 × 0.8.
    assert_eq!(rb.weighted_pipeline, Money::from_major(400));
    assert_eq!((rb.closed_count, rb.conversion_rate), (0, None));
    // C won outside the window.
    assert_eq!((rc.won_count, rc.closed_count), (0, 0));
    let by_pipeline =
        db.read(|r| analytics::owner_ranking(r, day(0), day(30), OwnerSort::WeightedPipeline))?;
    assert_eq!(by_pipeline[0].owner, b);
    Ok(())
}

#[test]
fn product_sales_by_hand() -> crmdb::Result<()> {
    let (db, _clock) = database()?;
    let (p1, p2) = db.write(|tx| -> crmdb::Result<_> {
        let p1 = tx.insert(Product {
            sku: "A-1".into(),
            name: "a".into(),
            category: Some("x".into()),
            ..Default::default()
        })?;
        let p2 = tx.insert(Product {
            sku: "B-1".into(),
            name: "b".into(),
            category: Some("y".into()),
            ..Default::default()
        })?;
        let k = tx.insert(Contact {
            name: "k".into(),
            ..Default::default()
        })?;
        let line = |product, quantity, price| LineItem {
            product,
            quantity,
            unit_price: Money::from_major(price),
        };
        let order = |at: i64, status, lines: Vec<LineItem>| Order {
            contact: Some(k),
            at: day(at),
            status,
            currency: "CNY".into(),
            line_items: lines,
            ..Default::default()
        };
        tx.insert(order(
            1,
            OrderStatus::Paid,
            vec![line(p1, 2, 10), line(p2, 1, 5)],
        ))?;
        tx.insert(order(2, OrderStatus::Paid, vec![line(p1, 1, 10)]))?;
        tx.insert(order(3, OrderStatus::Refunded, vec![line(p2, 5, 5)]))?;
        tx.insert(order(40, OrderStatus::Paid, vec![line(p2, 9, 5)]))?;
        Ok((p1, p2))
    })?;
    let (products, categories) = db.read(|r| analytics::product_sales(r, day(0), day(30)))?;
    assert_eq!(products.len(), 2);
    assert_eq!(
        (
            products[0].product,
            products[0].revenue,
            products[0].units,
            products[0].orders
        ),
        (p1, Money::from_major(30), 3, 2)
    );
    assert_eq!(
        (
            products[1].product,
            products[1].revenue,
            products[1].units,
            products[1].orders
        ),
        (p2, Money::from_major(5), 1, 1)
    );
    assert_eq!(
        categories
            .iter()
            .map(|c| (c.category.as_str(), c.revenue, c.units, c.orders))
            .collect::<Vec<_>>(),
        vec![
            ("x", Money::from_major(30), 3, 2),
            ("y", Money::from_major(5), 1, 1)
        ]
    );
    Ok(())
}

#[test]
fn rfm_scores_tiers_and_staleness_by_hand() -> crmdb::Result<()> {
    let (db, _clock) = database()?;
    let contacts = db.write(|tx| -> crmdb::Result<_> {
        let mut ids = Vec::new();
        for i in 0..10i64 {
            let id = tx.insert(Contact {
                name: format!("c{i}"),
                ..Default::default()
            })?;
            for _ in 0..=i {
                tx.insert(Order {
                    contact: Some(id),
                    at: day(i),
                    total: Money(100),
                    currency: "CNY".into(),
                    ..Default::default()
                })?;
            }
            ids.push(id);
        }
        // A contact without orders gets no scores.
        tx.insert(Contact {
            name: "none".into(),
            ..Default::default()
        })?;
        Ok(ids)
    })?;
    let state = db.write(|tx| tx.refresh_rfm(day(20)))?;
    assert_eq!((state.customers, state.top20), (10, 2));
    assert!((state.top20_revenue_share - 19.0 / 55.0).abs() < 1e-12);
    let count = |q: &str| db.read(|r| r.count(EntityKind::Contact, &Query::parse(q)?));
    let ids = |q: &str| db.read(|r| r.ids(EntityKind::Contact, &Query::parse(q)?));
    assert_eq!(count("rfm.monetary exists")?, 10);
    for (score, members) in [
        (5, [9, 8]),
        (4, [7, 6]),
        (3, [5, 4]),
        (2, [3, 2]),
        (1, [1, 0]),
    ] {
        for field in ["rfm.recency", "rfm.frequency", "rfm.monetary"] {
            let got = ids(&format!("{field} = {score}"))?;
            let want: crmdb::RoaringBitmap = members.iter().map(|i| contacts[*i].get()).collect();
            assert_eq!(got, want, "{field} = {score}");
        }
    }
    assert_eq!(
        ids("tier:top20")?,
        [contacts[8].get(), contacts[9].get()].into_iter().collect()
    );
    assert_eq!(count("tier:rest")?, 8);
    assert_eq!(ids("band:1")?, [contacts[9].get()].into_iter().collect());
    assert_eq!(ids("band:10")?, [contacts[0].get()].into_iter().collect());
    assert_eq!(count("rfm.recency >= 4 AND tier:top20")?, 2);

    // Stale until refreshed: contact 0 buys a lot, its scores do not move.
    db.write(|tx| -> crmdb::Result<_> {
        tx.insert(Order {
            contact: Some(contacts[0]),
            at: day(21),
            total: Money(1_000_000),
            currency: "CNY".into(),
            ..Default::default()
        })?;
        Ok(())
    })?;
    assert_eq!(ids("band:10")?, [contacts[0].get()].into_iter().collect());
    let refreshed = db.write(|tx| tx.refresh_rfm(day(22)))?;
    assert_eq!(refreshed.refreshed_at, day(22));
    assert_eq!(ids("band:1")?, [contacts[0].get()].into_iter().collect());
    assert_eq!(db.read(analytics::rfm_state)?, Some(refreshed));

    // A purged contact leaves the derived indexes too.
    db.write(|tx| {
        for row in tx.ids(
            EntityKind::Order,
            &Query::field("contact").eq(contacts[9].get()),
        )? {
            tx.soft_delete(crmdb::OrderId::new(row))?;
            tx.purge(crmdb::OrderId::new(row))?;
        }
        tx.soft_delete(contacts[9])?;
        tx.purge(contacts[9])
    })?;
    db.write(|tx| -> crmdb::Result<_> {
        assert!(
            !tx.ids(EntityKind::Contact, &Query::All)?
                .contains(contacts[9].get())
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn lead_assignment_rules() -> crmdb::Result<()> {
    let (db, _clock) = database()?;
    let owner = |name: &str, team: &str, region: &str, capacity: u32| Owner {
        name: name.into(),
        team: Some(team.into()),
        region: Some(region.into()),
        capacity,
        ..Default::default()
    };
    let (o0, o1, o2, o3) = db.write(|tx| -> crmdb::Result<_> {
        let o0 = tx.insert(owner("o0", "east", "sh", 0))?;
        let o1 = tx.insert(owner("o1", "east", "bj", 0))?;
        let o2 = tx.insert(owner("o2", "west", "sh", 1))?;
        let o3 = tx.insert(owner("o3", "east", "sh", 0))?;
        Ok((o0, o1, o2, o3))
    })?;
    let lead = |region: &str| Contact {
        name: "lead".into(),
        region: Some(region.into()),
        ..Default::default()
    };
    let assigned =
        |db: &Database, id: ContactId| -> crmdb::Result<(Option<OwnerId>, Option<String>)> {
            db.read(|r| {
                let c = r.get(id)?;
                Ok((c.owner, c.assigned_by))
            })
        };

    // Round robin within a team, skipping the excluded owner.
    db.write(|tx| {
        tx.set_assignment(Assignment {
            rules: vec![AssignmentRule::RoundRobin {
                name: "east_rr".into(),
                team: "east".into(),
            }],
            excluded: [o3].into_iter().collect(),
            ..Assignment::default()
        })
    })?;
    let mut got = Vec::new();
    for _ in 0..3 {
        let id = db.write(|tx| tx.insert(lead("sh")))?;
        got.push(assigned(&db, id)?);
    }
    let rr = Some("east_rr".to_owned());
    assert_eq!(
        got,
        vec![
            (Some(o0), rr.clone()),
            (Some(o1), rr.clone()),
            (Some(o0), rr.clone())
        ]
    );
    // An explicit owner is kept and no rule is recorded.
    let explicit = db.write(|tx| {
        tx.insert(Contact {
            owner: Some(o3),
            ..lead("sh")
        })
    })?;
    assert_eq!(assigned(&db, explicit)?, (Some(o3), None));

    // By region, falling through to capacity-limited.
    db.write(|tx| {
        tx.set_assignment(Assignment {
            rules: vec![
                AssignmentRule::CapacityLimited {
                    name: "west_capacity".into(),
                    team: Some("west".into()),
                    period_days: 30,
                },
                AssignmentRule::ByRegion {
                    name: "region".into(),
                },
            ],
            excluded: [o3].into_iter().collect(),
            ..Assignment::default()
        })
    })?;
    let first = db.write(|tx| tx.insert(lead("bj")))?;
    assert_eq!(
        assigned(&db, first)?,
        (Some(o2), Some("west_capacity".into()))
    );
    // o2 is at capacity (1 open lead): the region rule takes over.
    let second = db.write(|tx| tx.insert(lead("bj")))?;
    assert_eq!(assigned(&db, second)?, (Some(o1), Some("region".into())));
    let third = db.write(|tx| tx.insert(lead("sh")))?;
    assert_eq!(assigned(&db, third)?.1, Some("region".into()));
    // No rule matches a region without owners: the lead stays unassigned.
    let nowhere = db.write(|tx| tx.insert(lead("gz")))?;
    assert_eq!(assigned(&db, nowhere)?, (None, None));
    // Once o2's lead moves on, o2 has capacity again and requalify picks it.
    db.write(|tx| tx.move_stage(first, "active"))?;
    let requalified = db.write(|tx| tx.requalify(nowhere))?;
    assert_eq!(requalified, Some(o2));
    assert_eq!(
        assigned(&db, nowhere)?,
        (Some(o2), Some("west_capacity".into()))
    );
    // A failed write rolls the round-robin pointer back with it: the next lead gets the
    // owner the rolled-back one had, and the one after it the other regional owner.
    let before = db.read(|r| r.count(EntityKind::Contact, &Query::All))?;
    let mut rolled_back_owner = None;
    let failed: crmdb::Result<()> = db.write(|tx| {
        let id = tx.insert(lead("sh"))?;
        rolled_back_owner = tx.get(id)?.owner;
        Err(crmdb::Error::InvalidArgument("abort".into()))
    });
    assert!(failed.is_err());
    assert_eq!(
        db.read(|r| r.count(EntityKind::Contact, &Query::All))?,
        before
    );
    let again = db.write(|tx| tx.insert(lead("sh")))?;
    assert_eq!(assigned(&db, again)?.0, rolled_back_owner);
    let next = db.write(|tx| tx.insert(lead("sh")))?;
    let regional = [Some(o0), Some(o2)];
    assert!(regional.contains(&rolled_back_owner));
    assert!(regional.contains(&assigned(&db, next)?.0));
    assert_ne!(assigned(&db, next)?.0, rolled_back_owner);
    Ok(())
}

/// Naive recomputation over generated data: funnel, product sales and RFM agree.
#[test]
fn analytics_agree_with_naive_recomputation() -> crmdb::Result<()> {
    for seed in [1u64, 7, 42] {
        let generator = crmdb::demo::Generator {
            contacts: 600,
            seed,
            ..Default::default()
        };
        let db = Builder::new()
            .clock(Arc::new(ManualClock::new(generator.now)))
            .in_memory()?;
        generator.load(&db, |_| {})?;
        let from = generator.now.plus_days(-400);
        let to = generator.now;
        db.read(|r| {
            // Funnel: entries per stage from the raw histories.
            let funnel = analytics::funnel(
                r,
                &FunnelRequest {
                    pipeline: "default".into(),
                    from,
                    to,
                    segment: None,
                },
            )?;
            let mut entered = std::collections::BTreeMap::<String, u64>::new();
            let mut won = 0;
            for (id, deal) in r.records::<Deal>()? {
                if deal.deleted_at.is_some() {
                    continue;
                }
                for change in r.history(id)? {
                    if change.at >= from && change.at < to {
                        *entered.entry(change.to.as_str().to_owned()).or_default() += 1;
                        won += u64::from(change.to.as_str() == "won");
                    }
                }
            }
            for stage in &funnel.stages {
                assert_eq!(
                    stage.entered,
                    entered.get(stage.stage.as_str()).copied().unwrap_or(0),
                    "seed {seed} stage {}",
                    stage.stage
                );
            }
            assert_eq!(funnel.won, won);

            // Product sales: revenue by product from raw orders.
            let (products, _) = analytics::product_sales(r, from, to)?;
            let mut revenue = std::collections::BTreeMap::<u32, i64>::new();
            for (_, order) in r.records::<Order>()? {
                if order.deleted_at.is_none()
                    && order.status == OrderStatus::Paid
                    && order.at.day() >= from.day()
                    && order.at.day() < to.day()
                {
                    for line in &order.line_items {
                        *revenue.entry(line.product.get()).or_default() +=
                            line.unit_price.0 * i64::from(line.quantity);
                    }
                }
            }
            let got: std::collections::BTreeMap<u32, i64> = products
                .iter()
                .map(|p| (p.product.get(), p.revenue.0))
                .collect();
            assert_eq!(got, revenue, "seed {seed}");
            Ok(())
        })?;
        // RFM monetary quintiles from a sort of the raw contacts.
        db.write(|tx| tx.refresh_rfm(generator.now))?;
        db.read(|r| {
            let mut customers: Vec<(i64, u32)> = r
                .records::<Contact>()?
                .into_iter()
                .filter(|(_, c)| c.deleted_at.is_none() && c.stats.order_count > 0)
                .map(|(id, c)| (c.stats.total_spent.0, id.get()))
                .collect();
            customers.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let n = customers.len() as u64;
            for (rank, (_, row)) in customers.iter().enumerate() {
                let rank = rank as u64;
                let band = (0..5u64).rev().find(|i| n * i / 5 <= rank).unwrap_or(0);
                let score = 5 - band;
                let got = r.ids(
                    EntityKind::Contact,
                    &Query::field("rfm.monetary").eq(score as i64),
                )?;
                assert!(
                    got.contains(*row),
                    "seed {seed}: contact {row} at rank {rank} should score {score}"
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}
