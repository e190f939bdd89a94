//! The analytics the seed documents ask for, on the generated demo data: a sales funnel
//! with time in stage, an owner ranking, product and category sales, RFM scores and the
//! 80/20 value tiers, and a lead assigned by a round-robin rule.

use std::sync::Arc;

use crmdb::analytics::{self, FunnelRequest, OwnerSort};
use crmdb::{
    Assignment, AssignmentRule, Builder, Contact, EntityKind, ManualClock, Query, Snapshot,
};

fn days(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| format!("{:.1}d", s as f64 / 86_400.0))
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn main() -> crmdb::Result<()> {
    // A database whose clock is the data set's "now", so windows are reproducible.
    let generator = crmdb::demo::Generator::new(5_000);
    let db = Builder::new()
        .clock(Arc::new(ManualClock::new(generator.now)))
        .in_memory()?;
    let summary = generator.load(&db, |_| {})?;
    println!("loaded {summary:?}");
    let from = generator.now.plus_days(-365);
    let to = generator.now;

    // The funnel of the default pipeline over the last year, from the stage history.
    let funnel = db.read(|r| {
        analytics::funnel(
            r,
            &FunnelRequest {
                pipeline: "default".into(),
                from,
                to,
                segment: None,
            },
        )
    })?;
    println!(
        "\nfunnel (last 365 days): {} deals, win rate {}, median cycle {}",
        funnel.deals,
        percent(funnel.win_rate),
        days(funnel.median_cycle_time)
    );
    for stage in &funnel.stages {
        println!(
            "  {:<15} entered {:>5}  converted {:>5} ({:>6})  median time in stage {}",
            stage.stage.as_str(),
            stage.entered,
            stage.converted,
            percent(stage.conversion_rate),
            days(stage.median_time_in_stage)
        );
    }

    // Owners ranked by won amount.
    let ranking = db.read(|r| analytics::owner_ranking(r, from, to, OwnerSort::WonAmount))?;
    println!("\ntop owners by won amount:");
    for owner in ranking.iter().take(5) {
        println!(
            "  {:<10} won {:>12} in {:>3} deals, win rate {:>6}, weighted pipeline {:>12}, {} activities",
            owner.name,
            owner.won_amount.to_string(),
            owner.won_count,
            percent(owner.conversion_rate),
            owner.weighted_pipeline.to_string(),
            owner.activity_count
        );
    }

    // Product and category sales.
    let (products, categories) = db.read(|r| analytics::product_sales(r, from, to))?;
    println!("\ntop products:");
    for p in products.iter().take(3) {
        println!(
            "  {} revenue {} units {} orders {}",
            p.sku, p.revenue, p.units, p.orders
        );
    }
    println!("top categories:");
    for c in categories.iter().take(3) {
        println!(
            "  {} revenue {} units {} orders {}",
            c.category, c.revenue, c.units, c.orders
        );
    }

    // RFM scores and value tiers, then segments that use them.
    let state = db.write(|tx| tx.refresh_rfm(generator.now))?;
    println!(
        "\nRFM refreshed: {} customers; the top 20% hold {:.1}% of revenue",
        state.customers,
        state.top20_revenue_share * 100.0
    );
    let champions = Query::parse("rfm.recency >= 4 AND rfm.frequency >= 4 AND rfm.monetary >= 4")?;
    let at_risk = Query::parse("tier:top20 AND rfm.recency <= 2")?;
    db.read(|r| {
        println!("  champions: {}", r.count(EntityKind::Contact, &champions)?);
        println!(
            "  top-20% customers at risk: {}",
            r.count(EntityKind::Contact, &at_risk)?
        );
        Ok(())
    })?;

    // Lead assignment: round robin within team_0, applied in the write that creates the lead.
    let lead = db.write(|tx| {
        tx.set_assignment(Assignment {
            rules: vec![AssignmentRule::RoundRobin {
                name: "team_0_round_robin".into(),
                team: "team_0".into(),
            }],
            ..Assignment::default()
        })?;
        tx.insert(Contact {
            name: "New Lead".into(),
            region: Some("shanghai".into()),
            ..Default::default()
        })
    })?;
    db.read(|r| {
        let contact = r.get(lead)?;
        println!(
            "\nnew lead assigned to owner {:?} by rule {:?}",
            contact.owner, contact.assigned_by
        );
        Ok(())
    })?;
    Ok(())
}
