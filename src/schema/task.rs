//! Tasks: sales follow-ups with an assignee and a due time (seed 001).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{FieldProblem, check_text, day, opt_ref, record_common, record_impl, sealed};
use super::{EntityKind, Field, OwnerId, Subject, Timestamp, Value};

/// The state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TaskStatus {
    /// To do.
    #[default]
    Open,
    /// Done.
    Done,
    /// Dropped.
    Cancelled,
}

impl TaskStatus {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// A sales task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// What to do.
    pub title: String,
    /// Who does it.
    pub assignee: Option<OwnerId>,
    /// Due time.
    pub due: Option<Timestamp>,
    /// Status.
    pub status: TaskStatus,
    /// Related record.
    pub related: Option<Subject>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

record_impl!(Task, TaskId, Task);

type F = Field<Task>;

/// The related record's row id when it is of `kind`.
fn related_row(task: &Task, kind: EntityKind) -> Option<u32> {
    task.related
        .map(Subject::reference)
        .filter(|(k, _)| *k == kind)
        .map(|(_, row)| row)
}

impl sealed::RecordInternal for Task {
    record_common!();

    const FIELDS: &'static [F] = &[
        F::cat("status", |k, t, f| t.cat(f, k.status.as_str())),
        F::id("assignee", EntityKind::Owner, |k, t, f| {
            t.cat_id(f, k.assignee.map(|o| o.get()))
        }),
        F::id("contact", EntityKind::Contact, |k, t, f| {
            t.cat_id(f, related_row(k, EntityKind::Contact))
        }),
        F::id("account", EntityKind::Account, |k, t, f| {
            t.cat_id(f, related_row(k, EntityKind::Account))
        }),
        F::id("deal", EntityKind::Deal, |k, t, f| {
            t.cat_id(f, related_row(k, EntityKind::Deal))
        }),
        F::date("due", |k, t, f| t.num_opt(f, k.due.map(day))),
        F::date("created", |k, t, f| t.num_opt(f, k.created_at.map(day))),
    ];

    fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        match &mut self.related {
            Some(subject) => subject.repoint(kind, from, to),
            None => false,
        }
    }

    fn repoint_back(&mut self, before: &Self, kind: EntityKind, survivor: u32, other: u32) -> bool {
        match (&mut self.related, before.related) {
            (Some(subject), Some(was)) => subject.repoint_back(was, kind, survivor, other),
            _ => false,
        }
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.assignee, &mut out);
        if let Some(subject) = self.related {
            out.push(subject.reference());
        }
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("title", &self.title)
    }
}
