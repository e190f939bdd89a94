//! Fixtures shared by the integration test crates: the clock every test starts at, a
//! database on a manual clock, and the records most tests build.

#![allow(dead_code)]

use std::sync::Arc;

use crmdb::{Contact, ContactId, Database, ManualClock, Money, Order, Timestamp};

/// 2026-03-01T00:00:00Z, the start of every clock in these tests.
pub fn t0() -> Timestamp {
    Timestamp::from_ymd(2026, 3, 1).expect("valid date")
}

/// An in-memory database on a manual clock stopped at [`t0`].
pub fn clocked() -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(t0()));
    let db = Database::builder().clock(clock.clone()).in_memory()?;
    Ok((db, clock))
}

/// A contact with a name and an email.
pub fn contact(name: &str, email: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        ..Default::default()
    }
}

/// A paid order of 10.00 for `contact` at `at`.
pub fn paid_order(contact: ContactId, at: Timestamp) -> Order {
    Order {
        contact: Some(contact),
        at,
        total: Money::from_major(10),
        ..Default::default()
    }
}
