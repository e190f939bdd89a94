//! Owners: sales reps and employees (lead assignment, employee analysis; seed 001).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{FieldProblem, check_text, day, record_common, record_impl, sealed};
use super::{EntityKind, Field, Timestamp, Value};

/// A sales rep or employee.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Name.
    pub name: String,
    /// Email (not unique).
    pub email: Option<String>,
    /// Team; indexed.
    pub team: Option<String>,
    /// Region; indexed.
    pub region: Option<String>,
    /// Most open leads at once for capacity-limited assignment (0 = no limit).
    pub capacity: u32,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

record_impl!(Owner, OwnerId, Owner);

type F = Field<Owner>;

impl sealed::RecordInternal for Owner {
    record_common!();

    const FIELDS: &'static [F] = &[
        F::cat("team", |o, t, f| t.cat_opt(f, o.team.as_deref())),
        F::cat("region", |o, t, f| t.cat_opt(f, o.region.as_deref())),
        F::int("capacity", |o, t, f| t.num(f, i64::from(o.capacity))),
        F::date("created", |o, t, f| t.num_opt(f, o.created_at.map(day))),
    ];

    fn references(&self) -> Vec<(EntityKind, u32)> {
        Vec::new()
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)
    }
}
