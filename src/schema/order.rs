//! Orders: purchases, contracts and renewals (seeds 001, 002). Paid orders drive a
//! contact's figures, RFM and automatic lifecycle moves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::deal::lines_total;
use super::record::{
    FieldProblem, day, opt_ref, record_common, record_impl, repoint_back_slot, repoint_slot, sealed,
};
use super::{
    AccountId, ContactEffect, ContactId, Contribution, EntityKind, Field, LineItem, Money,
    Timestamp, Value,
};

/// The state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum OrderStatus {
    /// Placed, not paid.
    Pending,
    /// Paid: counts towards a contact's figures and lifecycle.
    #[default]
    Paid,
    /// Paid back.
    Refunded,
    /// Cancelled before payment.
    Cancelled,
}

impl OrderStatus {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A purchase, contract or renewal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Buyer (B2C).
    pub contact: Option<ContactId>,
    /// Buyer (B2B).
    pub account: Option<AccountId>,
    /// When it was placed.
    pub at: Timestamp,
    /// Status.
    pub status: OrderStatus,
    /// ISO currency code.
    pub currency: String,
    /// Lines; when present, `total` must equal their sum (or be zero to have it filled in).
    pub line_items: Vec<LineItem>,
    /// Total in minor units.
    pub total: Money,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

record_impl!(Order, OrderId, Order);

type F = Field<Order>;

impl sealed::RecordInternal for Order {
    record_common!();

    const AFFECTS_CONTACTS: bool = true;
    const FIELDS: &'static [F] = &[
        F::cat("status", |o, t, f| t.cat(f, o.status.as_str())),
        F::id("contact", EntityKind::Contact, |o, t, f| {
            t.cat_id(f, o.contact.map(|c| c.get()))
        }),
        F::id("account", EntityKind::Account, |o, t, f| {
            t.cat_id(f, o.account.map(|a| a.get()))
        }),
        F::id("product", EntityKind::Product, |o, t, f| {
            for line in &o.line_items {
                t.cat_id(f, Some(line.product.get()));
            }
        }),
        F::date("at", |o, t, f| t.num(f, o.at.day())),
        F::money("total", |o, t, f| t.num(f, o.total.0)),
        F::date("created", |o, t, f| t.num_opt(f, o.created_at.map(day))),
    ];

    fn normalise_new(&mut self) {
        if self.total.0 == 0 && !self.line_items.is_empty() {
            // A zero total with lines means "the lines' sum"; an overflow is left for
            // `check` to report.
            self.total = self
                .line_items
                .iter()
                .try_fold(Money(0), |acc, l| {
                    l.amount().and_then(|a| acc.0.checked_add(a.0)).map(Money)
                })
                .unwrap_or(self.total);
        }
    }

    fn contact_effect(&self) -> Option<ContactEffect> {
        Some(ContactEffect {
            contact: self.contact,
            live: self.deleted_at.is_none(),
            contribution: Contribution::Order {
                paid: self.status == OrderStatus::Paid,
                total: self.total,
                at: self.at,
            },
        })
    }

    fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        match kind {
            EntityKind::Contact => repoint_slot(&mut self.contact, from, to),
            EntityKind::Account => repoint_slot(&mut self.account, from, to),
            _ => false,
        }
    }

    fn repoint_back(&mut self, before: &Self, kind: EntityKind, survivor: u32, other: u32) -> bool {
        match kind {
            EntityKind::Contact => {
                repoint_back_slot(&mut self.contact, before.contact, survivor, other)
            }
            EntityKind::Account => {
                repoint_back_slot(&mut self.account, before.account, survivor, other)
            }
            _ => false,
        }
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Contact, self.contact, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        out.extend(
            self.line_items
                .iter()
                .map(|l| (EntityKind::Product, l.product.get())),
        );
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        let sum = lines_total(&self.line_items)?;
        if !self.line_items.is_empty() && sum != self.total {
            return Err((
                "total",
                format!("{} differs from the line items' sum {sum}", self.total),
            ));
        }
        if self.total.0 < 0 {
            return Err(("total", "negative".into()));
        }
        Ok(())
    }
}
