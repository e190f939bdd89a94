//! The stored form of batches: what the `changes` table holds under
//! `(sequence, part)`. Part 0 is a [`Head`] and the first events; further parts hold
//! the rest, [`PART_EVENTS`](super::PART_EVENTS) at most each. Record images are the
//! record's own stored bytes, so writing an event costs no second encoding of the
//! record.

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use super::{Batch, Cause, Change, Event};
use crate::codec;
use crate::config::Assignment;
use crate::error::{Error, Result};
use crate::lifecycle::{Machines, StageChange};
use crate::schema::{AnyRecord, CustomSchema, EntityKind, KindVisitor, Record, Timestamp};
use crate::storage::source::decode_record;

/// The batch header, stored first in part 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) time: Timestamp,
    pub(crate) actor: String,
    /// How many parts the batch has (at least 1).
    pub(crate) parts: u32,
}

/// Part 0 of a batch.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FirstPart {
    pub(crate) head: Head,
    pub(crate) events: Vec<StoredEvent>,
}

/// One stored event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    pub(crate) time: Timestamp,
    pub(crate) cause: Cause,
    pub(crate) change: StoredChange,
}

/// [`Change`] with record images as stored bytes and id sets as sorted lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredChange {
    Inserted {
        kind: EntityKind,
        id: u32,
        record: Vec<u8>,
    },
    Updated {
        kind: EntityKind,
        id: u32,
        before: Vec<u8>,
        after: Vec<u8>,
    },
    Deleted {
        kind: EntityKind,
        id: u32,
        record: Vec<u8>,
    },
    Restored {
        kind: EntityKind,
        id: u32,
        record: Vec<u8>,
    },
    Purged {
        kind: EntityKind,
        id: u32,
    },
    TagAdded {
        kind: EntityKind,
        id: u32,
        tag: String,
    },
    TagRemoved {
        kind: EntityKind,
        id: u32,
        tag: String,
    },
    StageChanged {
        kind: EntityKind,
        id: u32,
        change: StageChange,
    },
    SchemaChanged {
        kind: EntityKind,
        schema: CustomSchema,
    },
    MachinesReplaced {
        machines: Machines,
    },
    SegmentSaved {
        name: String,
    },
    SegmentDeleted {
        name: String,
    },
    AssignmentChanged {
        assignment: Assignment,
    },
    RfmRefreshed {
        kind: EntityKind,
    },
    Watched {
        segment: String,
    },
    Unwatched {
        segment: String,
    },
    Entered {
        segment: String,
        kind: EntityKind,
        ids: Vec<u32>,
    },
    Left {
        segment: String,
        kind: EntityKind,
        ids: Vec<u32>,
    },
    Merged {
        kind: EntityKind,
        survivor: u32,
        other: u32,
        merge: u64,
    },
    Erased {
        kind: EntityKind,
        id: u32,
    },
    ConsentRecorded {
        id: u32,
        channel: String,
        status: crate::schema::ConsentStatus,
    },
    Unmerged {
        kind: EntityKind,
        survivor: u32,
        other: u32,
        merge: u64,
    },
}

/// Decodes a stored record image of `kind` at `row`.
fn image(kind: EntityKind, row: u32, bytes: &[u8]) -> Result<AnyRecord> {
    struct Decode<'a>(u32, &'a [u8]);
    impl KindVisitor for Decode<'_> {
        type Output = Result<AnyRecord>;
        fn visit<R: Record>(self) -> Self::Output {
            Ok(decode_record::<R>(self.0, self.1)?.into())
        }
    }
    kind.visit(Decode(row, bytes))
}

fn ids(ids: Vec<u32>) -> RoaringBitmap {
    ids.into_iter().collect()
}

impl StoredEvent {
    pub(crate) fn decode(self) -> Result<Event> {
        let change = match self.change {
            StoredChange::Inserted { kind, id, record } => Change::Inserted {
                id,
                record: image(kind, id, &record)?,
            },
            StoredChange::Updated {
                kind,
                id,
                before,
                after,
            } => Change::Updated {
                id,
                before: image(kind, id, &before)?,
                after: image(kind, id, &after)?,
            },
            StoredChange::Deleted { kind, id, record } => Change::Deleted {
                id,
                record: image(kind, id, &record)?,
            },
            StoredChange::Restored { kind, id, record } => Change::Restored {
                id,
                record: image(kind, id, &record)?,
            },
            StoredChange::Purged { kind, id } => Change::Purged { kind, id },
            StoredChange::TagAdded { kind, id, tag } => Change::TagAdded { kind, id, tag },
            StoredChange::TagRemoved { kind, id, tag } => Change::TagRemoved { kind, id, tag },
            StoredChange::StageChanged { kind, id, change } => {
                Change::StageChanged { kind, id, change }
            }
            StoredChange::SchemaChanged { kind, schema } => Change::SchemaChanged { kind, schema },
            StoredChange::MachinesReplaced { machines } => Change::MachinesReplaced { machines },
            StoredChange::SegmentSaved { name } => Change::SegmentSaved { name },
            StoredChange::SegmentDeleted { name } => Change::SegmentDeleted { name },
            StoredChange::AssignmentChanged { assignment } => {
                Change::AssignmentChanged { assignment }
            }
            StoredChange::RfmRefreshed { kind } => Change::RfmRefreshed { kind },
            StoredChange::Watched { segment } => Change::Watched { segment },
            StoredChange::Unwatched { segment } => Change::Unwatched { segment },
            StoredChange::Entered {
                segment,
                kind,
                ids: rows,
            } => Change::Entered {
                segment,
                kind,
                ids: ids(rows),
            },
            StoredChange::Left {
                segment,
                kind,
                ids: rows,
            } => Change::Left {
                segment,
                kind,
                ids: ids(rows),
            },
            StoredChange::Merged {
                kind,
                survivor,
                other,
                merge,
            } => Change::Merged {
                kind,
                survivor,
                other,
                merge,
            },
            StoredChange::Erased { kind, id } => Change::Erased { kind, id },
            StoredChange::ConsentRecorded {
                id,
                channel,
                status,
            } => Change::ConsentRecorded {
                id,
                channel,
                status,
            },
            StoredChange::Unmerged {
                kind,
                survivor,
                other,
                merge,
            } => Change::Unmerged {
                kind,
                survivor,
                other,
                merge,
            },
        };
        Ok(Event {
            time: self.time,
            cause: self.cause,
            change,
        })
    }
}

/// The stored parts of one batch: part 0 with the head, then the rest.
pub(crate) fn encode_batch(
    head_time: Timestamp,
    actor: &str,
    events: &[StoredEvent],
) -> Vec<Vec<u8>> {
    let chunks: Vec<&[StoredEvent]> = if events.is_empty() {
        vec![&[]]
    } else {
        events.chunks(super::PART_EVENTS).collect()
    };
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        if i == 0 {
            let first = FirstPart {
                head: Head {
                    time: head_time,
                    actor: actor.to_owned(),
                    parts,
                },
                events: chunk.to_vec(),
            };
            out.push(codec::encode(&first));
        } else {
            out.push(codec::encode(&chunk));
        }
    }
    out
}

/// Stored part `part` of batch `sequence` with `event` applied to each of its events
/// and `actor` to the batch's actor (part 0); `None` when neither changed anything.
pub(crate) fn rewrite_part(
    sequence: u64,
    part: u32,
    bytes: &[u8],
    event: &mut dyn FnMut(&mut StoredEvent) -> Result<bool>,
    actor: &mut dyn FnMut(&mut String) -> bool,
) -> Result<Option<Vec<u8>>> {
    let mut changed = false;
    if part == 0 {
        let mut first: FirstPart = codec::decode("changes", &sequence, bytes)?;
        changed |= actor(&mut first.head.actor);
        for e in &mut first.events {
            changed |= event(e)?;
        }
        return Ok(changed.then(|| codec::encode(&first)));
    }
    let mut events: Vec<StoredEvent> = codec::decode("changes", &sequence, bytes)?;
    for e in &mut events {
        changed |= event(e)?;
    }
    Ok(changed.then(|| codec::encode(&events)))
}

/// Decodes a batch from its stored parts, in part order.
pub(crate) fn decode_batch(sequence: u64, parts: &[(u32, Vec<u8>)]) -> Result<Batch> {
    let (head, stored) = decode_stored(sequence, parts)?;
    let mut events = Vec::with_capacity(stored.len());
    for event in stored {
        events.push(event.decode()?);
    }
    Ok(Batch {
        sequence,
        time: head.time,
        actor: head.actor,
        events,
    })
}

/// The head and the stored events of a batch from its stored parts, in part order.
pub(crate) fn decode_stored(
    sequence: u64,
    parts: &[(u32, Vec<u8>)],
) -> Result<(Head, Vec<StoredEvent>)> {
    let corrupt = |reason: &str| Error::Corrupt {
        what: "changes",
        key: sequence.to_string(),
        reason: reason.into(),
    };
    let Some(((0, first), rest)) = parts.split_first().map(|(f, r)| ((f.0, &f.1), r)) else {
        return Err(corrupt("the batch has no first part"));
    };
    let first: FirstPart = codec::decode("changes", &sequence, first)?;
    if first.head.parts as usize != parts.len() {
        return Err(corrupt("the batch is missing parts"));
    }
    let mut events = first.events;
    for (i, (part, bytes)) in rest.iter().enumerate() {
        if *part as usize != i + 1 {
            return Err(corrupt("the batch parts are out of order"));
        }
        let stored: Vec<StoredEvent> = codec::decode("changes", &sequence, bytes)?;
        events.extend(stored);
    }
    Ok((first.head, events))
}
