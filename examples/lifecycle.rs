//! Lifecycle machines at work: a contact walked from prospect to active, a deal from
//! lead to won, one refused move with its error, and the stage history.
//!
//! Run with `cargo run --example lifecycle`.

use std::sync::Arc;

use crmdb::stages::{contact as contact_stage, deal as deal_stage};

use crmdb::{
    Activity, ActivityKind, Contact, Database, Deal, Direction, Error, ManualClock, Money, Order,
    Snapshot, StageChange, Subject, Timestamp,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock makes the history's times easy to read.
    let start = Timestamp::from_ymd(2026, 3, 1).ok_or("bad start date")?;
    let clock = Arc::new(ManualClock::new(start));
    let db = Database::builder().clock(clock.clone()).in_memory()?;

    // A new contact starts in the first stage of the contact lifecycle: prospect.
    let contact = db.write(|tx| {
        tx.insert(Contact {
            name: "Li Lei".into(),
            email: Some("li.lei@example.com".into()),
            ..Default::default()
        })
    })?;
    println!("new contact is a {}", db.read(|r| r.get(contact))?.stage);

    // An inbound activity moves a prospect to responder automatically.
    clock.advance_days(2);
    db.write(|tx| {
        let now = tx.now();
        tx.insert(Activity::new(
            ActivityKind::WebVisit,
            Direction::Inbound,
            Subject::Contact(contact),
            now,
        ))
    })?;
    println!(
        "after an inbound visit: {}",
        db.read(|r| r.get(contact))?.stage
    );

    // The first paid order makes a new customer, the second an active one.
    for days in [5, 30] {
        clock.advance_days(days);
        db.write(|tx| {
            let now = tx.now();
            tx.insert(Order {
                contact: Some(contact),
                at: now,
                total: Money::from_major(199),
                currency: "CNY".into(),
                ..Default::default()
            })
        })?;
        println!("after a paid order: {}", db.read(|r| r.get(contact))?.stage);
    }

    // Moving an active customer back to prospect is a regression: a plain move is
    // refused with a typed error, and nothing of it is applied.
    let refused = db.write(|tx| tx.move_stage(contact, contact_stage::PROSPECT));
    if let Err(e) = &refused {
        println!("refused: {e}");
    }
    if let Err(Error::IllegalTransition { rule, .. }) = refused {
        println!("  the rule: {rule:?}");
    }

    // A deal walks the default pipeline. Proposal needs an amount; won needs an amount
    // and a close date.
    let deal = db.write(|tx| {
        tx.set_actor("wang.fang");
        tx.insert(Deal {
            name: "Annual tea supply".into(),
            contact: Some(contact),
            ..Default::default()
        })
    })?;
    let early = db.write(|tx| tx.move_stage(deal, deal_stage::PROPOSAL));
    if let Err(e) = early {
        println!("refused: {e}");
    }
    db.write(|tx| {
        tx.set_actor("wang.fang");
        tx.move_stage(deal, deal_stage::QUALIFIED)?;
        tx.modify(deal, |d| d.amount = Money::from_major(12_000))?;
        tx.move_stage(deal, deal_stage::PROPOSAL)?;
        tx.move_stage(deal, deal_stage::NEGOTIATION)
    })?;
    clock.advance_days(10);
    db.write(|tx| {
        tx.set_actor("wang.fang");
        let now = tx.now();
        tx.modify(deal, |d| d.close_date = Some(now))?;
        tx.move_stage(deal, deal_stage::WON)
    })?;
    println!("the deal is {}", db.read(|r| r.get(deal))?.stage);

    // Every accepted move is in the history, with who, when, how and why.
    db.read(|r| {
        print_history("contact", &r.history(contact)?);
        print_history("deal", &r.history(deal)?);
        let asked = start.plus_days(3);
        println!(
            "on {asked} the contact was a {:?}",
            r.stage_at(contact, asked)?.map(|s| s.to_string())
        );
        Ok(())
    })?;
    Ok(())
}

/// Prints a stage history, oldest first.
fn print_history(what: &str, changes: &[StageChange]) {
    println!("{what} history:");
    for change in changes {
        let from = change
            .from
            .as_ref()
            .map_or_else(|| "(new)".to_owned(), |s| s.to_string());
        println!(
            "  {} {from} -> {} by {} ({:?})",
            change.at, change.to, change.actor, change.kind
        );
    }
}
