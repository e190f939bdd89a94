//! The entity kinds. A leaf module: the error type names kinds, and everything else
//! returns errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The entity types crmdb stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    /// [`Contact`](crate::Contact)
    Contact,
    /// [`Account`](crate::Account)
    Account,
    /// [`Deal`](crate::Deal)
    Deal,
    /// [`Activity`](crate::Activity)
    Activity,
    /// [`Order`](crate::Order)
    Order,
    /// [`Product`](crate::Product)
    Product,
    /// [`Owner`](crate::Owner)
    Owner,
    /// [`Task`](crate::Task)
    Task,
}

impl EntityKind {
    /// Every entity kind, in a fixed order.
    pub const ALL: [EntityKind; 8] = [
        EntityKind::Contact,
        EntityKind::Account,
        EntityKind::Deal,
        EntityKind::Activity,
        EntityKind::Order,
        EntityKind::Product,
        EntityKind::Owner,
        EntityKind::Task,
    ];

    /// The lowercase name used in index keys, queries and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Contact => "contact",
            EntityKind::Account => "account",
            EntityKind::Deal => "deal",
            EntityKind::Activity => "activity",
            EntityKind::Order => "order",
            EntityKind::Product => "product",
            EntityKind::Owner => "owner",
            EntityKind::Task => "task",
        }
    }

    /// Parses the lowercase name back.
    pub fn from_name(name: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
