//! Contacts: people the brand can reach, customers or not yet (seed 000).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::FieldKind;
use super::record::{
    FieldProblem, check_tags, check_text, day, normalise_key, opt_ref, record_common, record_impl,
    repoint_back_slot, repoint_slot, sealed,
};
use super::{
    AccountId, EntityKind, Field, GuardView, Lead, Money, OwnerId, Stage, Staged, Timestamp, Value,
};

/// Whether `email` is shaped like an address: something, `@`, a dotted domain.
pub(crate) fn looks_like_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The roles one person can hold towards the brand (seed 000); several at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ContactRole {
    /// Follows the brand.
    Fan,
    /// Has bought.
    Consumer,
    /// Holds a membership.
    Member,
    /// Uses the product.
    User,
    /// Recommends the brand.
    Advocate,
    /// Decides a B2B purchase.
    DecisionMaker,
    /// Influences a B2B purchase.
    Influencer,
}

impl ContactRole {
    /// Every role.
    pub const ALL: [ContactRole; 7] = [
        ContactRole::Fan,
        ContactRole::Consumer,
        ContactRole::Member,
        ContactRole::User,
        ContactRole::Advocate,
        ContactRole::DecisionMaker,
        ContactRole::Influencer,
    ];

    /// The lowercase name used in queries (`role:advocate`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContactRole::Fan => "fan",
            ContactRole::Consumer => "consumer",
            ContactRole::Member => "member",
            ContactRole::User => "user",
            ContactRole::Advocate => "advocate",
            ContactRole::DecisionMaker => "decision_maker",
            ContactRole::Influencer => "influencer",
        }
    }
}

/// Figures the engine derives from a contact's orders and activities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactStats {
    /// Paid orders.
    pub order_count: u32,
    /// Sum of paid order totals.
    pub total_spent: Money,
    /// Time of the latest paid order.
    pub last_order: Option<Timestamp>,
    /// Time of the latest activity about the contact.
    pub last_activity: Option<Timestamp>,
    /// Activities about the contact.
    pub activity_count: u32,
}

/// A person the brand can reach, customer or not yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Display name.
    pub name: String,
    /// Unique per database, compared case-insensitively.
    pub email: Option<String>,
    /// Phone number as given.
    pub phone: Option<String>,
    /// Region (city or province); indexed.
    pub region: Option<String>,
    /// Gender as the tenant records it; indexed.
    pub gender: Option<String>,
    /// Birth year; range-indexed.
    pub birth_year: Option<i32>,
    /// Acquisition channel; indexed.
    pub source: Option<String>,
    /// Responsible owner; must exist and be live.
    pub owner: Option<OwnerId>,
    /// Company (B2B); must exist and be live.
    pub account: Option<AccountId>,
    /// Lifecycle stage. Left empty on insert, the machine's first stage is used.
    /// Changed only through the lifecycle machine.
    pub stage: Stage,
    /// Roles held; indexed as `role:<name>`.
    pub roles: BTreeSet<ContactRole>,
    /// Tags; indexed as `tag:<name>`.
    pub tags: BTreeSet<String>,
    /// Opted out of marketing.
    pub unsubscribed: bool,
    /// Lifetime value as the host computes it; range-indexed.
    pub lifetime_value: Money,
    /// *Engine-maintained* figures from orders and activities.
    pub stats: ContactStats,
    /// *Engine-maintained*: the assignment rule that gave the contact its owner.
    pub assigned_by: Option<String>,
    /// Custom field values, checked against the contact schema.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; the transaction clock fills it in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*: time of the last write.
    pub updated_at: Timestamp,
    /// *Engine-maintained*: set while the record is in the recycle bin.
    pub deleted_at: Option<Timestamp>,
}

record_impl!(Contact, ContactId, Contact);

type F = Field<Contact>;

impl sealed::RecordInternal for Contact {
    record_common!();

    fn tags(&self) -> Option<&BTreeSet<String>> {
        Some(&self.tags)
    }

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    fn unique_keys(&self) -> Vec<(&'static str, String)> {
        self.email
            .iter()
            .map(|e| ("contact.email", normalise_key(e)))
            .collect()
    }

    const ASSIGNABLE: bool = true;
    const FIELDS: &'static [F] = &[
        F::cat("region", |c, t, f| t.cat_opt(f, c.region.as_deref())),
        F::cat("gender", |c, t, f| t.cat_opt(f, c.gender.as_deref())),
        F::cat("source", |c, t, f| t.cat_opt(f, c.source.as_deref())),
        F::id("owner", EntityKind::Owner, |c, t, f| {
            t.cat_id(f, c.owner.map(|o| o.get()))
        }),
        F::id("account", EntityKind::Account, |c, t, f| {
            t.cat_id(f, c.account.map(|a| a.get()))
        }),
        F::stage("stage", |c, t, f| t.cat(f, c.stage.as_str())),
        F::multi("role", |c, t, f| {
            for role in &c.roles {
                t.cat(f, role.as_str());
            }
        }),
        F::multi("tag", |c, t, f| {
            for tag in &c.tags {
                t.cat(f, tag);
            }
        }),
        F::boolean("unsubscribed", |c, t, f| {
            t.cat(f, if c.unsubscribed { "true" } else { "false" })
        }),
        F::money("lifetime_value", |c, t, f| t.num(f, c.lifetime_value.0)),
        F::int("order_count", |c, t, f| {
            t.num(f, i64::from(c.stats.order_count))
        }),
        F::money("total_spent", |c, t, f| t.num(f, c.stats.total_spent.0)),
        F::int("activity_count", |c, t, f| {
            t.num(f, i64::from(c.stats.activity_count))
        }),
        F::date("last_order", |c, t, f| {
            t.num_opt(f, c.stats.last_order.map(day))
        }),
        F::date("last_activity", |c, t, f| {
            t.num_opt(f, c.stats.last_activity.map(day))
        }),
        F::date("created", |c, t, f| t.num_opt(f, c.created_at.map(day))),
        F::int("birth_year", |c, t, f| {
            t.num_opt(f, c.birth_year.map(i64::from))
        }),
        // Written by `refresh_rfm`, not from the row.
        F::derived("rfm.recency", FieldKind::Int),
        F::derived("rfm.frequency", FieldKind::Int),
        F::derived("rfm.monetary", FieldKind::Int),
        F::derived("tier", FieldKind::Cat { multi: false }),
        F::derived("band", FieldKind::Cat { multi: false }),
    ];

    fn unsubscribed(&self) -> Option<bool> {
        Some(self.unsubscribed)
    }

    fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        kind == EntityKind::Account && repoint_slot(&mut self.account, from, to)
    }

    fn repoint_back(&mut self, before: &Self, kind: EntityKind, survivor: u32, other: u32) -> bool {
        kind == EntityKind::Account
            && repoint_back_slot(&mut self.account, before.account, survivor, other)
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        out
    }

    fn normalise_new(&mut self) {
        self.stats = ContactStats::default();
        self.assigned_by = None;
    }

    fn staged(&self) -> Option<Staged<'_>> {
        Some(Staged {
            stage: &self.stage,
            pipeline: None,
            guard: GuardView {
                amount: None,
                close_date: None,
                lost_reason: None,
                custom: &self.custom,
            },
        })
    }

    fn stage_mut(&mut self) -> Option<&mut Stage> {
        Some(&mut self.stage)
    }

    fn figures_mut(&mut self) -> Option<&mut ContactStats> {
        Some(&mut self.stats)
    }

    fn lead(&mut self) -> Option<Lead<'_>> {
        Some(Lead {
            region: self.region.as_deref(),
            owner: &mut self.owner,
            assigned_by: &mut self.assigned_by,
        })
    }

    fn keep_engine_fields(&mut self, stored: &Self) {
        self.stats = stored.stats.clone();
        self.assigned_by = stored.assigned_by.clone();
        sealed::keep_common_fields(self, stored);
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        for (name, value) in [
            ("email", &self.email),
            ("phone", &self.phone),
            ("region", &self.region),
            ("gender", &self.gender),
            ("source", &self.source),
        ] {
            if let Some(v) = value {
                check_text(name, v)?;
            }
        }
        if let Some(email) = &self.email
            && !looks_like_email(email)
        {
            return Err((
                "email",
                format!("{} is not an address", crate::error::quote(email)),
            ));
        }
        check_tags(&self.tags)
    }
}
