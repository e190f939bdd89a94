//! Accounts: companies (B2B, seed 001).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::record::{
    FieldProblem, check_tags, check_text, day, opt_ref, record_common, record_impl, sealed,
};
use super::{EntityKind, Field, OwnerId, Timestamp, Value};

/// A company (B2B).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Company name.
    pub name: String,
    /// Industry; indexed.
    pub industry: Option<String>,
    /// Region; indexed.
    pub region: Option<String>,
    /// Number of employees; range-indexed.
    pub size: Option<u32>,
    /// Account tier (A/B/C, key account); indexed.
    pub tier: Option<String>,
    /// Responsible owner.
    pub owner: Option<OwnerId>,
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

record_impl!(Account, AccountId, Account);

type F = Field<Account>;

impl sealed::RecordInternal for Account {
    record_common!();

    fn tags(&self) -> Option<&BTreeSet<String>> {
        Some(&self.tags)
    }

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    const FIELDS: &'static [F] = &[
        F::cat("industry", |a, t, f| t.cat_opt(f, a.industry.as_deref())),
        F::cat("region", |a, t, f| t.cat_opt(f, a.region.as_deref())),
        F::cat("tier", |a, t, f| t.cat_opt(f, a.tier.as_deref())),
        F::id("owner", EntityKind::Owner, |a, t, f| {
            t.cat_id(f, a.owner.map(|o| o.get()))
        }),
        F::multi("tag", |a, t, f| {
            for tag in &a.tags {
                t.cat(f, tag);
            }
        }),
        F::int("size", |a, t, f| t.num_opt(f, a.size.map(i64::from))),
        F::date("created", |a, t, f| t.num_opt(f, a.created_at.map(day))),
    ];

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        check_tags(&self.tags)
    }
}
