//! A record of any kind, as the change feed carries it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::sealed::RecordInternal;

use super::{
    Account, Activity, Contact, Deal, EntityKind, Order, Owner, Product, Task, Timestamp, Value,
};

/// A record of any kind: the before and after images of change-feed events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum AnyRecord {
    Contact(Contact),
    Account(Account),
    Deal(Deal),
    Activity(Activity),
    Order(Order),
    Product(Product),
    Owner(Owner),
    Task(Task),
}

macro_rules! any_from {
    ($($kind:ident),*) => {
        $(impl From<$kind> for AnyRecord {
            fn from(record: $kind) -> AnyRecord {
                AnyRecord::$kind(record)
            }
        })*

        impl AnyRecord {
            /// The record's kind.
            pub fn kind(&self) -> EntityKind {
                match self {
                    $(AnyRecord::$kind(_) => EntityKind::$kind,)*
                }
            }

            /// The record's custom fields.
            pub fn custom(&self) -> &BTreeMap<String, Value> {
                match self {
                    $(AnyRecord::$kind(record) => record.custom(),)*
                }
            }

            /// When the record went to the recycle bin, if it is there.
            pub fn deleted_at(&self) -> Option<Timestamp> {
                match self {
                    $(AnyRecord::$kind(record) => record.deleted_at(),)*
                }
            }
        }
    };
}

any_from!(
    Contact, Account, Deal, Activity, Order, Product, Owner, Task
);
