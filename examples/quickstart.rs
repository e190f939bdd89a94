//! A first walk through crmdb: open a database, write related records in one
//! transaction, tag and query them, read them back, and see a failed write leave
//! nothing behind.
//!
//! Run with `cargo run --example quickstart`.

use crmdb::{
    Account, Contact, Database, Deal, EntityKind, Money, Owner, Query, Snapshot, Timestamp,
};

/// The host application's own error type: a write closure may return it, since a crmdb
/// error converts into it.
#[derive(Debug)]
enum AppError {
    Crm(crmdb::Error),
    Cancelled(&'static str),
}

impl From<crmdb::Error> for AppError {
    fn from(e: crmdb::Error) -> Self {
        AppError::Crm(e)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Crm(e) => write!(f, "crmdb: {e}"),
            AppError::Cancelled(why) => write!(f, "cancelled: {why}"),
        }
    }
}

impl std::error::Error for AppError {}

fn main() -> Result<(), AppError> {
    // An in-memory database with the default contact lifecycle and deal pipeline.
    // `Database::create(path)` gives the same API on a durable file.
    let db = Database::in_memory()?;

    // One write transaction: the closure's `Ok` commits everything in it at once.
    // Records refer to each other by typed ids; a reference to a record that does not
    // exist would fail the insert.
    let (owner, account, contact, deal) = db.write(|tx| -> crmdb::Result<_> {
        tx.set_actor("onboarding");
        let owner = tx.insert(Owner {
            name: "Wang Fang".into(),
            team: Some("east".into()),
            ..Default::default()
        })?;
        let account = tx.insert(Account {
            name: "Shanghai Tea Co.".into(),
            industry: Some("retail".into()),
            region: Some("shanghai".into()),
            owner: Some(owner),
            ..Default::default()
        })?;
        let contact = tx.insert(Contact {
            name: "Li Lei".into(),
            email: Some("li.lei@example.com".into()),
            region: Some("shanghai".into()),
            owner: Some(owner),
            account: Some(account),
            lifetime_value: Money::from_major(2500),
            ..Default::default()
        })?;
        let deal = tx.insert(Deal {
            name: "Annual tea supply".into(),
            account: Some(account),
            contact: Some(contact),
            owner: Some(owner),
            amount: Money::from_major(12_000),
            currency: "CNY".into(),
            close_date: Timestamp::from_ymd(2026, 6, 30),
            ..Default::default()
        })?;
        // Tags are indexed in the same transaction as the rows.
        tx.add_tag(contact, "vip")?;
        tx.add_tag(account, "key_account")?;
        Ok((owner, account, contact, deal))
    })?;
    println!("committed owner {owner}, account {account}, contact {contact}, deal {deal}");

    // Reads see one consistent snapshot. Segment queries are boolean expressions over
    // indexed fields, in text or built in Rust.
    db.read(|snapshot| {
        let text = Query::parse(r#"tag:vip AND region = "shanghai" AND lifetime_value >= 1000"#)?;
        let built = Query::tag("vip").and(Query::field("owner").eq(owner.get()));
        println!(
            "vip contacts in shanghai worth 1000+: {}",
            snapshot.count(EntityKind::Contact, &text)?
        );
        println!(
            "vip contacts of {owner}: {}",
            snapshot.count(EntityKind::Contact, &built)?
        );
        println!(
            "open deals above 10000: {}",
            snapshot.count(
                EntityKind::Deal,
                &Query::parse("amount > 10000 AND NOT stage:won AND NOT stage:lost")?
            )?
        );

        // Reading records back: typed ids return typed records.
        let li = snapshot.get(contact)?;
        let company = snapshot.get(account)?;
        let opportunity = snapshot.get(deal)?;
        println!(
            "{} ({}) works at {}, stage {}, tags {:?}",
            li.name,
            li.email.as_deref().unwrap_or("no email"),
            company.name,
            li.stage,
            li.tags
        );
        println!(
            "deal {:?}: {} {} in stage {}",
            opportunity.name, opportunity.amount, opportunity.currency, opportunity.stage
        );
        // Email lookups are case-insensitive.
        println!(
            "LI.LEI@EXAMPLE.COM belongs to contact {:?}",
            snapshot.contact_by_email("LI.LEI@EXAMPLE.COM")?
        );
        Ok(())
    })?;

    // A write whose closure returns an error rolls back everything it did: the new
    // contact, its tag and the stage move all vanish together. The error is the
    // application's own; crmdb errors inside convert into it with `?`.
    let failed = db.write(|tx| {
        let han = tx.insert(Contact {
            name: "Han Meimei".into(),
            email: Some("han@example.com".into()),
            ..Default::default()
        })?;
        tx.add_tag(han, "trial")?;
        tx.move_stage(contact, "active")?;
        println!(
            "inside the failing write: {} contacts",
            tx.live(EntityKind::Contact)?.len()
        );
        Err(AppError::Cancelled("the import was stopped by the user"))
    });
    match failed {
        Err(e) => println!("the write failed and was rolled back: {e}"),
        Ok(()) => println!("unexpected: the write committed"),
    }

    db.read(|snapshot| {
        println!(
            "after the rollback: {} contacts, han@example.com -> {:?}, Li Lei still in stage {}",
            snapshot.live(EntityKind::Contact)?.len(),
            snapshot.contact_by_email("han@example.com")?,
            snapshot.get(contact)?.stage
        );
        // The rolled-back tag was never committed: no record carries it.
        let trial = snapshot.count(EntityKind::Contact, &Query::tag("trial"))?;
        println!("tag:trial matches {trial}");
        Ok(())
    })?;
    Ok(())
}
