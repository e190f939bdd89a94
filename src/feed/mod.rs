//! The change feed: what every commit changed, as one batch of events under the
//! commit's sequence number, stored in the `changes` table by the commit itself
//! (`txn::feed` writes it; this module defines the events, their stored form, and
//! reads them back).
//!
//! A batch holds the commit's sequence, time and actor and its events in the order they
//! happened. A record changed several times in one transaction has one record event
//! there, at its first change: its insert with the last state, or one update from the
//! state before the transaction to the state after (the states between were never
//! visible); its tag and stage events stay one per change. Record events carry the record images (`Inserted` the new record,
//! `Updated` both, `Deleted` and `Restored` the record after); applying them by
//! (kind, id, sequence) onto an empty copy gives the database's records. Tag and stage
//! events say the same changes again in their own terms. Segment membership events
//! (`Entered`, `Left`) come from watched segments.

mod read;
pub(crate) mod stored;

use std::time::Duration;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::config::Assignment;
use crate::lifecycle::{Machines, StageChange};
use crate::schema::{AnyRecord, CustomSchema, EntityKind, Timestamp};

pub(crate) use read::{oldest_kept, read_batches};

/// The most events one stored part of a batch holds; a larger batch is split into
/// several parts under the same sequence.
pub(crate) const PART_EVENTS: usize = 512;

/// The most batch parts one commit trims, so that trimming a long backlog is spread
/// over many commits.
pub(crate) const TRIM_PER_COMMIT: usize = 256;

/// One committed write transaction's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The commit's sequence number.
    pub sequence: u64,
    /// When it committed (the database clock).
    pub time: Timestamp,
    /// The transaction's actor when it committed.
    pub actor: String,
    /// What it changed, in order.
    pub events: Vec<Event>,
}

/// One change inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The transaction time when it happened (a backdated import's time, a sweep's
    /// `now`).
    pub time: Timestamp,
    /// Why it happened.
    pub cause: Cause,
    /// What changed.
    pub change: Change,
}

/// Why a change happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// The caller's own write.
    Write,
    /// A write to another record: an order or activity recomputing its contact's
    /// figures, perhaps moving its stage automatically (the stage event's history
    /// entry names the rule).
    Effect {
        /// The kind of the record written.
        kind: EntityKind,
        /// Its row id.
        id: u32,
    },
    /// The dormancy sweep.
    Sweep,
    /// A machine replacement remapping stages.
    Remap,
    /// A lead assignment rule.
    Assignment {
        /// The rule's name.
        rule: String,
    },
    /// A refresh: the RFM refresh, or a refresh of watched segments as time passes.
    Refresh,
    /// A merge of two records, or undoing one: the merge's number.
    Merge {
        /// The merge.
        merge: u64,
    },
}

/// What changed.
// Record images are kept inline: events are built once per read and moved little.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A record was inserted.
    Inserted {
        /// Its row id.
        id: u32,
        /// The record as stored.
        record: AnyRecord,
    },
    /// A live record was changed.
    Updated {
        /// Its row id.
        id: u32,
        /// The record before.
        before: AnyRecord,
        /// The record after. [`Change::changed_fields`] names the fields that differ.
        after: AnyRecord,
    },
    /// A record moved to the recycle bin.
    Deleted {
        /// Its row id.
        id: u32,
        /// The record as stored, with its deletion time.
        record: AnyRecord,
    },
    /// A record came back from the recycle bin.
    Restored {
        /// Its row id.
        id: u32,
        /// The record as stored.
        record: AnyRecord,
    },
    /// A record was removed for good.
    Purged {
        /// Its kind.
        kind: EntityKind,
        /// Its row id.
        id: u32,
    },
    /// A tag was added to a record.
    TagAdded {
        /// The record's kind.
        kind: EntityKind,
        /// Its row id.
        id: u32,
        /// The tag.
        tag: String,
    },
    /// A tag was removed from a record.
    TagRemoved {
        /// The record's kind.
        kind: EntityKind,
        /// Its row id.
        id: u32,
        /// The tag.
        tag: String,
    },
    /// A contact or deal changed stage: its new stage-history entry.
    StageChanged {
        /// The record's kind.
        kind: EntityKind,
        /// Its row id.
        id: u32,
        /// The history entry (from, to, time, actor, reason, kind of move).
        change: StageChange,
    },
    /// A kind's custom-field schema changed.
    SchemaChanged {
        /// The kind.
        kind: EntityKind,
        /// The new schema.
        schema: CustomSchema,
    },
    /// The lifecycle machines were replaced.
    MachinesReplaced {
        /// The new machines.
        machines: Machines,
    },
    /// A segment was saved (or replaced).
    SegmentSaved {
        /// Its name.
        name: String,
    },
    /// A segment was deleted.
    SegmentDeleted {
        /// Its name.
        name: String,
    },
    /// The lead assignment configuration was replaced.
    AssignmentChanged {
        /// The new configuration.
        assignment: Assignment,
    },
    /// The RFM indexes of a kind were refreshed.
    RfmRefreshed {
        /// The kind (contacts).
        kind: EntityKind,
    },
    /// A segment started being watched; its current members follow as `Entered`.
    Watched {
        /// The segment.
        segment: String,
    },
    /// A segment stopped being watched; nothing further is said of its members.
    Unwatched {
        /// The segment.
        segment: String,
    },
    /// Records entered a watched segment.
    Entered {
        /// The segment.
        segment: String,
        /// The kind it selects.
        kind: EntityKind,
        /// The row ids that entered.
        ids: RoaringBitmap,
    },
    /// Records left a watched segment.
    Left {
        /// The segment.
        segment: String,
        /// The kind it selects.
        kind: EntityKind,
        /// The row ids that left.
        ids: RoaringBitmap,
    },
    /// `other` was merged into `survivor`. The same batch holds the record events of
    /// the merge (the survivor's update, the other's deletion, each re-pointed record),
    /// with cause [`Cause::Merge`].
    Merged {
        /// The kind of both.
        kind: EntityKind,
        /// The record that stays.
        survivor: u32,
        /// The record merged into it, now a redirect.
        other: u32,
        /// The merge's number, for its lineage and for undoing it.
        merge: u64,
    },
    /// A contact's personal data was erased (`WriteTransaction::erase`): its row is
    /// anonymous now, and earlier events of it were rewritten without personal values.
    Erased {
        /// The record's kind.
        kind: EntityKind,
        /// Its row id.
        id: u32,
    },
    /// A contact's consent ledger got an entry: its new state in a channel.
    ConsentRecorded {
        /// The contact's row id.
        id: u32,
        /// The channel.
        channel: String,
        /// The state.
        status: crate::schema::ConsentStatus,
    },
    /// A merge was undone: `other` is back, with the records the merge had moved.
    Unmerged {
        /// The kind of both.
        kind: EntityKind,
        /// The record that stayed.
        survivor: u32,
        /// The record restored.
        other: u32,
        /// The merge undone.
        merge: u64,
    },
}

impl Change {
    /// The record a record, tag or stage event is about.
    pub fn target(&self) -> Option<(EntityKind, u32)> {
        match self {
            Change::Inserted { id, record }
            | Change::Deleted { id, record }
            | Change::Restored { id, record } => Some((record.kind(), *id)),
            Change::Updated { id, after, .. } => Some((after.kind(), *id)),
            Change::Purged { kind, id }
            | Change::TagAdded { kind, id, .. }
            | Change::TagRemoved { kind, id, .. }
            | Change::StageChanged { kind, id, .. } => Some((*kind, *id)),
            Change::Merged { kind, survivor, .. } | Change::Unmerged { kind, survivor, .. } => {
                Some((*kind, *survivor))
            }
            Change::ConsentRecorded { id, .. } => Some((EntityKind::Contact, *id)),
            Change::Erased { kind, id } => Some((*kind, *id)),
            _ => None,
        }
    }

    /// The names of the fields an update changed, in declaration order
    /// (`custom.<name>` for each custom field); empty for every other change. Computed
    /// from the two images on each call: each top-level field is encoded separately and
    /// compared, custom fields key by key.
    pub fn changed_fields(&self) -> Vec<String> {
        match self {
            Change::Updated { before, after, .. } => changed_fields(before, after),
            _ => Vec::new(),
        }
    }

    /// The event's name in the feed's JSON form (`inserted`, `stage_changed` …).
    pub fn name(&self) -> &'static str {
        match self {
            Change::Inserted { .. } => "inserted",
            Change::Updated { .. } => "updated",
            Change::Deleted { .. } => "deleted",
            Change::Restored { .. } => "restored",
            Change::Purged { .. } => "purged",
            Change::TagAdded { .. } => "tag_added",
            Change::TagRemoved { .. } => "tag_removed",
            Change::StageChanged { .. } => "stage_changed",
            Change::SchemaChanged { .. } => "schema_changed",
            Change::MachinesReplaced { .. } => "machines_replaced",
            Change::SegmentSaved { .. } => "segment_saved",
            Change::SegmentDeleted { .. } => "segment_deleted",
            Change::AssignmentChanged { .. } => "assignment_changed",
            Change::RfmRefreshed { .. } => "rfm_refreshed",
            Change::Watched { .. } => "watched",
            Change::Unwatched { .. } => "unwatched",
            Change::Entered { .. } => "entered",
            Change::Left { .. } => "left",
            Change::Merged { .. } => "merged",
            Change::ConsentRecorded { .. } => "consent_recorded",
            Change::Erased { .. } => "erased",
            Change::Unmerged { .. } => "unmerged",
        }
    }
}

/// How much of the change log is kept beyond what registered consumers still need.
/// A batch is trimmed once every registered consumer has acknowledged it and it is
/// outside the window. Trimming happens in ordinary commits, a bounded number of
/// batch parts per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep every batch.
    All,
    /// Keep the last `n` batches.
    Batches(u64),
    /// Keep batches younger than this (by commit time).
    Age(Duration),
}

impl Default for Retention {
    /// The last 100 000 batches.
    fn default() -> Self {
        Retention::Batches(100_000)
    }
}

/// A durable consumer: a name and the last sequence it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Its name.
    pub name: String,
    /// The last sequence it acknowledged; it resumes after it.
    pub acknowledged: u64,
}

/// The names of the fields that differ between two images of one record: top-level
/// fields, with the custom-field map compared name by name.
fn changed_fields(before: &AnyRecord, after: &AnyRecord) -> Vec<String> {
    let old = codec::struct_fields(before);
    let new = codec::struct_fields(after);
    let mut fields = Vec::new();
    for ((name, a), (_, b)) in old.iter().zip(new.iter()) {
        if a == b {
            continue;
        }
        if name == "custom" {
            let (a, b) = (before.custom(), after.custom());
            let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in names {
                if a.get(key) != b.get(key) {
                    fields.push(format!("custom.{key}"));
                }
            }
        } else {
            fields.push(name.to_owned());
        }
    }
    fields
}
