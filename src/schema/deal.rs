//! Deals (opportunities) moving through a pipeline, and the line items deals and
//! orders share.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::record::MAX_LINE_ITEMS;
use super::record::{
    FieldProblem, check_tags, check_text, day, opt_ref, record_common, record_impl,
    repoint_back_list, repoint_back_slot, repoint_list, repoint_slot, sealed,
};
use super::{
    AccountId, ContactId, EntityKind, Field, GuardView, Money, OwnerId, ProductId, Stage, Staged,
    Timestamp, Value,
};

/// The pipeline name used by deals whose `pipeline` is empty.
pub const DEFAULT_PIPELINE: &str = "default";

/// A product line on a deal or an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product; must exist and be live.
    pub product: ProductId,
    /// Units.
    pub quantity: u32,
    /// Price per unit.
    pub unit_price: Money,
}

impl LineItem {
    /// `quantity × unit_price`, `None` on overflow.
    pub fn amount(&self) -> Option<Money> {
        self.unit_price
            .0
            .checked_mul(i64::from(self.quantity))
            .map(Money)
    }
}

pub(crate) fn lines_total(lines: &[LineItem]) -> Result<Money, FieldProblem> {
    if lines.len() > MAX_LINE_ITEMS {
        return Err((
            "line_items",
            format!("more than {MAX_LINE_ITEMS} line items"),
        ));
    }
    let mut total = 0i64;
    for line in lines {
        let amount = line
            .amount()
            .ok_or(("line_items", "line amount overflows".to_owned()))?;
        total = total
            .checked_add(amount.0)
            .ok_or(("line_items", "total overflows".to_owned()))?;
    }
    Ok(Money(total))
}

/// A sales opportunity moving through a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// Deal name.
    pub name: String,
    /// The pipeline (lifecycle machine) the deal runs in; empty means `default`.
    pub pipeline: String,
    /// Pipeline stage; empty on insert means the machine's first stage.
    pub stage: Stage,
    /// Company.
    pub account: Option<AccountId>,
    /// Main contact.
    pub contact: Option<ContactId>,
    /// Further contacts involved (B2B buying centre).
    pub participants: Vec<ContactId>,
    /// Responsible owner.
    pub owner: Option<OwnerId>,
    /// Amount in minor units.
    pub amount: Money,
    /// ISO currency code.
    pub currency: String,
    /// Expected (or, once won, actual) close date.
    pub close_date: Option<Timestamp>,
    /// Probability in percent overriding the stage's.
    pub probability_override: Option<u8>,
    /// Why the deal was lost; required to enter a lost stage with that guard.
    pub lost_reason: Option<String>,
    /// Products quoted.
    pub line_items: Vec<LineItem>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

impl Deal {
    /// The pipeline name with the empty default resolved.
    pub fn pipeline_name(&self) -> &str {
        if self.pipeline.is_empty() {
            DEFAULT_PIPELINE
        } else {
            &self.pipeline
        }
    }
}

record_impl!(Deal, DealId, Deal);

type F = Field<Deal>;

impl sealed::RecordInternal for Deal {
    record_common!();

    fn tags(&self) -> Option<&BTreeSet<String>> {
        Some(&self.tags)
    }

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    const FIELDS: &'static [F] = &[
        F::cat("pipeline", |d, t, f| t.cat(f, d.pipeline_name())),
        F::stage("stage", |d, t, f| t.cat(f, d.stage.as_str())),
        F::id("owner", EntityKind::Owner, |d, t, f| {
            t.cat_id(f, d.owner.map(|o| o.get()))
        }),
        F::id("account", EntityKind::Account, |d, t, f| {
            t.cat_id(f, d.account.map(|a| a.get()))
        }),
        F::id("contact", EntityKind::Contact, |d, t, f| {
            t.cat_id(f, d.contact.map(|c| c.get()))
        }),
        F::id("participant", EntityKind::Contact, |d, t, f| {
            for participant in &d.participants {
                t.cat_id(f, Some(participant.get()));
            }
        }),
        F::id("product", EntityKind::Product, |d, t, f| {
            for line in &d.line_items {
                t.cat_id(f, Some(line.product.get()));
            }
        }),
        F::multi("tag", |d, t, f| {
            for tag in &d.tags {
                t.cat(f, tag);
            }
        }),
        F::money("amount", |d, t, f| t.num(f, d.amount.0)),
        F::date("close_date", |d, t, f| t.num_opt(f, d.close_date.map(day))),
        F::date("created", |d, t, f| t.num_opt(f, d.created_at.map(day))),
    ];

    fn staged(&self) -> Option<Staged<'_>> {
        Some(Staged {
            stage: &self.stage,
            pipeline: Some(self.pipeline_name()),
            guard: GuardView {
                amount: Some(self.amount),
                close_date: self.close_date,
                lost_reason: self.lost_reason.as_deref(),
                custom: &self.custom,
            },
        })
    }

    fn stage_mut(&mut self) -> Option<&mut Stage> {
        Some(&mut self.stage)
    }

    fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        match kind {
            EntityKind::Contact => {
                let contact = repoint_slot(&mut self.contact, from, to);
                repoint_list(&mut self.participants, from, to) | contact
            }
            EntityKind::Account => repoint_slot(&mut self.account, from, to),
            _ => false,
        }
    }

    fn repoint_back(&mut self, before: &Self, kind: EntityKind, survivor: u32, other: u32) -> bool {
        match kind {
            EntityKind::Contact => {
                let contact = repoint_back_slot(&mut self.contact, before.contact, survivor, other);
                repoint_back_list(
                    &mut self.participants,
                    &before.participants,
                    survivor,
                    other,
                ) | contact
            }
            EntityKind::Account => {
                repoint_back_slot(&mut self.account, before.account, survivor, other)
            }
            _ => false,
        }
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        opt_ref(EntityKind::Contact, self.contact, &mut out);
        out.extend(
            self.participants
                .iter()
                .map(|c| (EntityKind::Contact, c.get())),
        );
        out.extend(
            self.line_items
                .iter()
                .map(|l| (EntityKind::Product, l.product.get())),
        );
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        if self.probability_override.is_some_and(|p| p > 100) {
            return Err(("probability_override", "above 100".into()));
        }
        if self.participants.len() > MAX_LINE_ITEMS {
            return Err((
                "participants",
                format!("more than {MAX_LINE_ITEMS} participants"),
            ));
        }
        lines_total(&self.line_items)?;
        check_tags(&self.tags)
    }
}
