//! The domain model: entity kinds, typed ids, time and money, the record types and the
//! custom-field schema.

mod account;
mod activity;
mod any;
mod consent;
mod contact;
mod custom;
mod deal;
mod field;
pub(crate) mod kind;
mod order;
mod owner;
mod product;
pub(crate) mod record;
mod stage;
mod task;
mod terms;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use account::Account;
pub use activity::{Activity, ActivityKind, Direction, Subject};
pub use any::AnyRecord;
pub use consent::{
    Consent, ConsentEntry, ConsentStatus, DEFAULT_CHANNELS, LawfulBasis, UNSUBSCRIBED_SOURCE,
};
pub use contact::{Contact, ContactRole, ContactStats};
pub use custom::{CustomSchema, FieldDef, FieldType, Value};
pub use deal::{DEFAULT_PIPELINE, Deal, LineItem};
pub use field::{FieldInfo, FieldShape};
pub use kind::EntityKind;
pub use order::{Order, OrderStatus};
pub use owner::Owner;
pub use product::Product;
pub use record::Record;
pub use stage::Stage;
pub use task::{Task, TaskStatus};

pub(crate) use consent::consent_field;
pub(crate) use custom::custom_is_categorical;
pub(crate) use field::{Field, FieldKind};
pub(crate) use record::sealed::RecordInternal;
pub(crate) use record::{
    ContactEffect, Contribution, GuardView, KindVisitor, Lead, Staged, normalise_key,
};
pub(crate) use terms::{Terms, check_tag};

/// The typed id of a stored record.
///
/// Implemented by [`ContactId`], [`AccountId`] and the other id types; it links an id to
/// its record type so that `tx.get(id)` returns the right struct.
pub trait RecordId: Copy + Eq + std::hash::Hash + fmt::Debug + Send + Sync + 'static {
    /// The record type this id names.
    type Record: Record<Id = Self>;
    /// Wraps a dense row id.
    fn from_row(row: u32) -> Self;
    /// The dense row id inside.
    fn row(self) -> u32;
}

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident => $rec:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(u32);

        impl $name {
            /// Wraps a row id, as returned by [`RecordId::row`] or a query result.
            pub const fn new(row: u32) -> Self {
                $name(row)
            }
            /// The dense row id inside.
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl RecordId for $name {
            type Record = $rec;
            fn from_row(row: u32) -> Self {
                $name(row)
            }
            fn row(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    )*};
}

ids! {
    /// Id of a [`Contact`].
    ContactId => Contact,
    /// Id of an [`Account`].
    AccountId => Account,
    /// Id of a [`Deal`].
    DealId => Deal,
    /// Id of an [`Activity`].
    ActivityId => Activity,
    /// Id of an [`Order`].
    OrderId => Order,
    /// Id of a [`Product`].
    ProductId => Product,
    /// Id of an [`Owner`].
    OwnerId => Owner,
    /// Id of a [`Task`].
    TaskId => Task,
}

/// A point in time: whole seconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

/// Seconds in a day.
pub const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// Midnight UTC at the start of a civil date. `None` if the date is not valid.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Timestamp> {
        days_from_civil(year, month, day).map(|d| Timestamp(d * SECONDS_PER_DAY))
    }

    /// Days since the Unix epoch (floor), the granularity of date indexes.
    pub fn day(self) -> i64 {
        self.0.div_euclid(SECONDS_PER_DAY)
    }

    /// This time plus a number of days (negative to go back).
    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(days.saturating_mul(SECONDS_PER_DAY)))
    }

    /// The civil date (year, month, day) in UTC.
    pub fn to_ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.day())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.to_ymd();
        let secs = self.0.rem_euclid(SECONDS_PER_DAY);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

pub(crate) fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        m,
        d,
    )
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap { 29 } else { 28 }
        }
    }
}

/// An amount of money in integer minor units (cents, fen). Never a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Money(pub i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// From whole major units (yuan, dollars), assuming two decimals.
    pub const fn from_major(units: i64) -> Money {
        Money(units.saturating_mul(100))
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Checks a stage or pipeline name: 1 to 64 bytes of `[a-z0-9_]`.
pub(crate) fn check_stage_name(name: &str) -> crate::error::Result<()> {
    custom::check_name("stage", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2026, 11, 22), (1899, 12, 31)] {
            let t = Timestamp::from_ymd(y, m, d).expect("valid date");
            assert_eq!(t.to_ymd(), (y, m, d));
        }
        assert_eq!(Timestamp::from_ymd(1970, 1, 2), Some(Timestamp(86_400)));
        assert_eq!(Timestamp::from_ymd(2025, 2, 29), None);
        assert_eq!(Timestamp::from_ymd(2025, 13, 1), None);
    }

    #[test]
    fn money_display() {
        assert_eq!(Money(123_456).to_string(), "1234.56");
        assert_eq!(Money(-5).to_string(), "-0.05");
    }
}
