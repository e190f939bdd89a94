//! The [`Record`] trait and its sealed internal half: what the engine needs from every
//! record kind, as trait methods, so that no code asks a record which type it is.
//! Per-kind behaviour (a stage and its machine, what an order or activity does to its
//! contact, normalisation on insert, lead assignment) is a hook with a default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};

use super::{
    Account, Activity, Contact, ContactId, ContactStats, Deal, EntityKind, Field, Money, Order,
    Owner, OwnerId, Product, RecordId, Stage, Task, Terms, Timestamp, Value,
};

/// Longest accepted free-text built-in field (names, notes), in bytes.
pub(crate) const MAX_FIELD_BYTES: usize = 4096;
/// Most tags on one record.
pub(crate) const MAX_TAGS: usize = 256;
/// Most line items on one order or deal.
pub(crate) const MAX_LINE_ITEMS: usize = 1024;

/// A field that failed a record check, and why.
pub(crate) type FieldProblem = (&'static str, String);

pub(crate) fn check_text(name: &'static str, value: &str) -> Result<(), FieldProblem> {
    if value.len() > MAX_FIELD_BYTES {
        return Err((name, format!("longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

pub(crate) fn check_tags(tags: &BTreeSet<String>) -> Result<(), FieldProblem> {
    if tags.len() > MAX_TAGS {
        return Err(("tags", format!("more than {MAX_TAGS} tags")));
    }
    for tag in tags {
        super::check_tag(tag).map_err(|reason| ("tags", reason))?;
    }
    Ok(())
}

/// The form natural keys are compared in: trimmed, lowercase.
pub(crate) fn normalise_key(value: &str) -> String {
    value.trim().to_lowercase()
}

pub(crate) fn day(t: Timestamp) -> i64 {
    t.day()
}

pub(crate) fn opt_ref<I: RecordId>(
    kind: EntityKind,
    id: Option<I>,
    out: &mut Vec<(EntityKind, u32)>,
) {
    if let Some(id) = id {
        out.push((kind, id.row()));
    }
}

/// A reference slot re-pointed from row `from` to row `to` (a merge); whether it was.
pub(crate) fn repoint_slot<I: RecordId>(slot: &mut Option<I>, from: u32, to: u32) -> bool {
    match slot {
        Some(id) if id.row() == from => {
            *slot = Some(I::from_row(to));
            true
        }
        _ => false,
    }
}

/// A reference slot pointed back at `other` if it held `other` in `before` and holds
/// `survivor` now (undoing a merge); whether it was.
pub(crate) fn repoint_back_slot<I: RecordId>(
    slot: &mut Option<I>,
    before: Option<I>,
    survivor: u32,
    other: u32,
) -> bool {
    if before.map(RecordId::row) == Some(other) && slot.map(RecordId::row) == Some(survivor) {
        *slot = before;
        true
    } else {
        false
    }
}

/// A list of references re-pointed from `from` to `to`, without listing `to` twice.
pub(crate) fn repoint_list<I: RecordId>(list: &mut Vec<I>, from: u32, to: u32) -> bool {
    let Some(at) = list.iter().position(|id| id.row() == from) else {
        return false;
    };
    if list.iter().any(|id| id.row() == to) {
        list.remove(at);
    } else {
        list[at] = I::from_row(to);
    }
    true
}

/// [`repoint_list`] undone: `other` back where it was in `before`, if it is missing now.
pub(crate) fn repoint_back_list<I: RecordId>(
    list: &mut Vec<I>,
    before: &[I],
    survivor: u32,
    other: u32,
) -> bool {
    let Some(was) = before.iter().position(|id| id.row() == other) else {
        return false;
    };
    if list.iter().any(|id| id.row() == other) {
        return false;
    }
    let survivor_before = before.iter().any(|id| id.row() == survivor);
    match list.iter().position(|id| id.row() == survivor) {
        Some(at) if !survivor_before => list[at] = I::from_row(other),
        _ => list.insert(was.min(list.len()), I::from_row(other)),
    }
    true
}

/// What a stage guard can look at in a record about to be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardView<'a> {
    pub(crate) amount: Option<Money>,
    pub(crate) close_date: Option<Timestamp>,
    pub(crate) lost_reason: Option<&'a str>,
    pub(crate) custom: &'a BTreeMap<String, Value>,
}

/// A staged record's stage and the machine it runs in.
pub(crate) struct Staged<'a> {
    pub(crate) stage: &'a Stage,
    /// The deal pipeline; `None` for the contact lifecycle.
    pub(crate) pipeline: Option<&'a str>,
    pub(crate) guard: GuardView<'a>,
}

/// What a record counts for in its contact's figures ([`ContactStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contribution {
    /// An order: counted when paid.
    Order {
        paid: bool,
        total: Money,
        at: Timestamp,
    },
    /// An activity about the contact.
    Activity { inbound: bool, at: Timestamp },
}

/// A record's effect on a contact: orders and activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContactEffect {
    pub(crate) contact: Option<ContactId>,
    /// Out of the recycle bin; deleted records count for nothing.
    pub(crate) live: bool,
    pub(crate) contribution: Contribution,
}

impl ContactEffect {
    /// Whether it counts as a paid order of a live record.
    pub(crate) fn paid_order(&self) -> bool {
        self.live && matches!(self.contribution, Contribution::Order { paid: true, .. })
    }

    /// Adds this effect to `stats` if it counts for `contact`.
    pub(crate) fn add_to(&self, contact: ContactId, stats: &mut ContactStats) {
        if self.contact != Some(contact) || !self.live {
            return;
        }
        match self.contribution {
            Contribution::Order {
                paid: true,
                total,
                at,
            } => {
                stats.order_count += 1;
                stats.total_spent.0 = stats.total_spent.0.saturating_add(total.0);
                stats.last_order = stats.last_order.max(Some(at));
            }
            Contribution::Order { paid: false, .. } => {}
            Contribution::Activity { at, .. } => {
                stats.activity_count += 1;
                stats.last_activity = stats.last_activity.max(Some(at));
            }
        }
    }
}

/// A lead the assignment rules may give an owner: a contact.
pub(crate) struct Lead<'a> {
    pub(crate) region: Option<&'a str>,
    pub(crate) owner: &'a mut Option<OwnerId>,
    pub(crate) assigned_by: &'a mut Option<String>,
}

pub(crate) mod sealed {
    use super::*;

    /// The engine-maintained fields every record has: creation time (kept unless the
    /// update sets one), last write time, recycle-bin time.
    pub(crate) fn keep_common_fields<R: RecordInternal>(new: &mut R, stored: &R) {
        if new.created_at().is_none()
            && let Some(at) = stored.created_at()
        {
            new.set_created_at(at);
        }
        new.set_updated_at(stored.updated_at());
        new.set_deleted_at(stored.deleted_at());
    }

    /// What the engine needs from every record type; not nameable outside the crate.
    pub trait RecordInternal: 'static {
        /// The kind's built-in fields: the one table everything reads.
        const FIELDS: &'static [Field<Self>];
        /// Whether writing such a record changes a contact ([`Self::contact_effect`]).
        const AFFECTS_CONTACTS: bool = false;
        /// Whether lead assignment rules apply to such records ([`Self::lead`]).
        const ASSIGNABLE: bool = false;
        fn custom(&self) -> &BTreeMap<String, Value>;
        /// Records this one points at; each must exist and be live on write.
        fn references(&self) -> Vec<(EntityKind, u32)>;
        fn created_at(&self) -> Option<Timestamp>;
        fn set_created_at(&mut self, at: Timestamp);
        fn set_updated_at(&mut self, at: Timestamp);
        fn updated_at(&self) -> Timestamp;
        fn deleted_at(&self) -> Option<Timestamp>;
        fn set_deleted_at(&mut self, at: Option<Timestamp>);
        /// Copies engine-maintained fields from the stored version onto a caller's update.
        fn keep_engine_fields(&mut self, stored: &Self)
        where
            Self: Sized,
        {
            keep_common_fields(self, stored);
        }
        /// Checks invariants that need no other record (lengths, totals).
        fn check(&self) -> Result<(), FieldProblem>;
        /// The tag set, for records that carry tags.
        fn tags(&self) -> Option<&BTreeSet<String>> {
            None
        }
        /// The tag set to change, for records that carry tags.
        fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
            None
        }
        /// Natural keys that must be unique: `(name, normalised value)`.
        fn unique_keys(&self) -> Vec<(&'static str, String)> {
            Vec::new()
        }
        /// Index terms of the built-in fields, from the field table (not `_state`, not
        /// custom fields, not derived fields).
        fn terms(&self, terms: &mut Terms) {
            for field in Self::FIELDS {
                if let Some(emit) = field.terms {
                    emit(self, terms, field.name);
                }
            }
        }
        /// Resets what only the engine may set on a record about to be inserted, and
        /// fills in what follows from the rest (an order's total from its lines).
        fn normalise_new(&mut self) {}
        /// The stage and machine of a staged record (contacts, deals).
        fn staged(&self) -> Option<Staged<'_>> {
            None
        }
        /// The stage, for staged records.
        fn stage_mut(&mut self) -> Option<&mut Stage> {
            None
        }
        /// What the record does to a contact's figures (orders, activities).
        fn contact_effect(&self) -> Option<ContactEffect> {
            None
        }
        /// The figures the engine derives from other records (contacts).
        fn figures_mut(&mut self) -> Option<&mut ContactStats> {
            None
        }
        /// The record as a lead for the assignment rules (contacts).
        fn lead(&mut self) -> Option<Lead<'_>> {
            None
        }
        /// The opt-out flag the email consent channel follows (contacts).
        fn unsubscribed(&self) -> Option<bool> {
            None
        }
        /// Points every reference to row `from` of `kind` at row `to` instead (a merge
        /// re-pointing related records); whether anything changed.
        fn repoint(&mut self, _kind: EntityKind, _from: u32, _to: u32) -> bool {
            false
        }
        /// Undoes [`repoint`](Self::repoint)`(kind, other, survivor)` where it still
        /// holds: a reference that was `other` in `before` and is `survivor` now points
        /// at `other` again; a reference changed since is left alone.
        fn repoint_back(
            &mut self,
            _before: &Self,
            _kind: EntityKind,
            _survivor: u32,
            _other: u32,
        ) -> bool
        where
            Self: Sized,
        {
            false
        }
    }
}

/// A record type stored by crmdb: [`Contact`], [`Account`], [`Deal`], [`Activity`],
/// [`Order`], [`Product`], [`Owner`] or [`Task`].
pub trait Record:
    sealed::RecordInternal
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + Into<super::AnyRecord>
    + 'static
{
    /// The typed id of this record type.
    type Id: RecordId<Record = Self>;
    /// The entity kind.
    const KIND: EntityKind;
}

/// Code generic over the record type, run for a kind known only at run time
/// ([`EntityKind::visit`]).
pub(crate) trait KindVisitor {
    type Output;
    fn visit<R: Record>(self) -> Self::Output;
}

impl EntityKind {
    /// Runs `visitor` with this kind's record type: the one place a kind is matched to
    /// its type.
    pub(crate) fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
        match self {
            EntityKind::Contact => visitor.visit::<Contact>(),
            EntityKind::Account => visitor.visit::<Account>(),
            EntityKind::Deal => visitor.visit::<Deal>(),
            EntityKind::Activity => visitor.visit::<Activity>(),
            EntityKind::Order => visitor.visit::<Order>(),
            EntityKind::Product => visitor.visit::<Product>(),
            EntityKind::Owner => visitor.visit::<Owner>(),
            EntityKind::Task => visitor.visit::<Task>(),
        }
    }

    /// The queryable built-in fields of this kind, in table order (custom fields are
    /// `custom.<name>`, declared per database).
    pub fn fields(self) -> Vec<super::FieldInfo> {
        struct Infos;
        impl KindVisitor for Infos {
            type Output = Vec<super::FieldInfo>;
            fn visit<R: Record>(self) -> Self::Output {
                R::FIELDS.iter().map(Field::info).collect()
            }
        }
        self.visit(Infos)
    }

    /// A built-in field of this kind by name: how it is indexed and what it refers to.
    pub(crate) fn field(self, name: &str) -> Option<(super::FieldKind, Option<EntityKind>)> {
        struct Find<'a>(&'a str);
        impl KindVisitor for Find<'_> {
            type Output = Option<(super::FieldKind, Option<EntityKind>)>;
            fn visit<R: Record>(self) -> Self::Output {
                R::FIELDS
                    .iter()
                    .find(|f| f.name == self.0)
                    .map(|f| (f.kind, f.refers_to))
            }
        }
        self.visit(Find(name))
    }

    /// The fields through which records of any kind refer to records of this kind:
    /// `(referring kind, field)`. A purge is refused while any of them holds the row.
    pub(crate) fn referrers(self) -> Vec<(EntityKind, &'static str)> {
        struct Refs(EntityKind);
        impl KindVisitor for Refs {
            type Output = Vec<&'static str>;
            fn visit<R: Record>(self) -> Self::Output {
                R::FIELDS
                    .iter()
                    .filter(|f| f.refers_to == Some(self.0))
                    .map(|f| f.name)
                    .collect()
            }
        }
        EntityKind::ALL
            .into_iter()
            .flat_map(|kind| {
                kind.visit(Refs(self))
                    .into_iter()
                    .map(move |field| (kind, field))
            })
            .collect()
    }

    /// The derived fields of this kind (written by a refresh, not from the row).
    pub(crate) fn derived_fields(self) -> Vec<(&'static str, super::FieldKind)> {
        struct Derived;
        impl KindVisitor for Derived {
            type Output = Vec<(&'static str, super::FieldKind)>;
            fn visit<R: Record>(self) -> Self::Output {
                R::FIELDS
                    .iter()
                    .filter(|f| f.terms.is_none())
                    .map(|f| (f.name, f.kind))
                    .collect()
            }
        }
        self.visit(Derived)
    }
}

/// The common part of [`sealed::RecordInternal`]: every record has these fields.
macro_rules! record_common {
    () => {
        fn custom(&self) -> &BTreeMap<String, Value> {
            &self.custom
        }
        fn created_at(&self) -> Option<Timestamp> {
            self.created_at
        }
        fn set_created_at(&mut self, at: Timestamp) {
            self.created_at = Some(at);
        }
        fn set_updated_at(&mut self, at: Timestamp) {
            self.updated_at = at;
        }
        fn deleted_at(&self) -> Option<Timestamp> {
            self.deleted_at
        }
        fn set_deleted_at(&mut self, at: Option<Timestamp>) {
            self.deleted_at = at;
        }
        fn updated_at(&self) -> Timestamp {
            self.updated_at
        }
    };
}
pub(crate) use record_common;

/// `impl Record` for a record type.
macro_rules! record_impl {
    ($rec:ident, $id:ident, $kind:ident) => {
        impl $crate::schema::Record for $rec {
            type Id = $crate::schema::$id;
            const KIND: $crate::schema::EntityKind = $crate::schema::EntityKind::$kind;
        }
    };
}
pub(crate) use record_impl;
