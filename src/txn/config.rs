//! Configuration writes: custom-field schemas, lifecycle machines (replacement and the
//! sweep, both applying pure plans from `lifecycle`), saved segments, lead assignment,
//! and the derived indexes (`rfm.*`, `tier`, `band`) behind one narrow interface.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::WriteTransaction;
use crate::assign::{Decision, round_robin_state};
use crate::codec;
use crate::config::Assignment;
use crate::error::{Error, Result};
use crate::feed::Cause;
use crate::feed::stored::StoredChange;
use crate::index::{self, Bsi};
use crate::lifecycle::{Machines, MoveOp, SweepMove, remap, sweep, transition};
use crate::query::{self, SavedSegment};
use crate::schema::Stage;
use crate::schema::{
    Contact, ContactId, CustomSchema, Deal, DealId, EntityKind, FieldDef, Record, RecordId,
    RecordInternal, Timestamp, custom_is_categorical,
};
use crate::storage;
use crate::storage::meta;
use crate::storage::source::Source;
use crate::txn::Snapshot;

/// The lead assignment configuration.
///
/// # Errors
/// A decode or storage failure.
pub fn assignment<S: Snapshot + ?Sized>(snap: &S) -> Result<Assignment> {
    Ok(snap.config()?.assignment.clone())
}

/// A new state of one kind's derived indexes, computed by a refresh: the full target
/// of each derived numeric field and of each derived categorical key.
#[derive(Debug, Default)]
pub(crate) struct DerivedIndexes {
    pub(crate) nums: Vec<(&'static str, Bsi)>,
    /// Keys of derived categorical fields (`tier=top20`, `band=3`) and their rows;
    /// keys of those fields not listed end up empty.
    pub(crate) cats: BTreeMap<String, RoaringBitmap>,
}

impl WriteTransaction {
    /// Declares (or redeclares) a custom field. Existing values must fit a redeclared type.
    ///
    /// # Errors
    /// A malformed declaration, or [`Error::Schema`] if stored values would not fit.
    pub fn define_field(&mut self, kind: EntityKind, def: FieldDef) -> Result<()> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let mut schema = config.schema(kind);
            let previous = schema.field(&def.name).cloned();
            schema.define(def.clone())?;
            if let Some(previous) = previous
                && previous.field_type != def.field_type
                && tx.field_in_use(kind, &previous)?
            {
                return Err(Error::Schema {
                    reason: format!(
                        "{kind} field custom.{} holds values; remove them before changing its type",
                        def.name
                    ),
                });
            }
            tx.store_schema(kind, schema)
        })
    }

    /// Removes a custom field declaration. Refused while any record holds a value.
    ///
    /// # Errors
    /// [`Error::UnknownField`], [`Error::Schema`].
    pub fn remove_field(&mut self, kind: EntityKind, name: &str) -> Result<()> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let mut schema = config.schema(kind);
            let def = schema.remove(name).ok_or_else(|| Error::UnknownField {
                kind,
                field: format!("custom.{name}"),
            })?;
            if tx.field_in_use(kind, &def)? {
                return Err(Error::Schema {
                    reason: format!("{kind} field custom.{name} still holds values"),
                });
            }
            tx.store_schema(kind, schema)
        })
    }

    fn field_in_use(&self, kind: EntityKind, def: &FieldDef) -> Result<bool> {
        let field = format!("custom.{}", def.name);
        if custom_is_categorical(&def.field_type) {
            for key in self.keys_with_prefix(&index::cat_prefix(kind, &field))? {
                if !self.bitmap(&key)?.is_empty() {
                    return Ok(true);
                }
            }
            Ok(false)
        } else {
            Ok(!self.bsi(&index::bsi_base(kind, &field))?.exists.is_empty())
        }
    }

    fn store_schema(&mut self, kind: EntityKind, schema: CustomSchema) -> Result<()> {
        let config = self.config_arc()?;
        let mut next = (*config).clone();
        next.schemas.insert(kind, schema.clone());
        self.put_meta(meta::SCHEMA, &codec::encode(&next.schemas))?;
        self.set_config(next);
        self.log(StoredChange::SchemaChanged { kind, schema });
        self.rewatch();
        Ok(())
    }

    /// Replaces the lifecycle machines of a database that may hold data. `mapping` says
    /// where records in stages the new machines lack go (old stage → new stage, applied to
    /// contacts and to deals of every pipeline); remapped records get a `Remap` history
    /// entry. Returns how many records were remapped.
    ///
    /// # Errors
    /// [`Error::InvalidMachine`] for a malformed machine, or when any record would be left
    /// in a stage (or pipeline) the new machines do not define.
    pub fn replace_machines(
        &mut self,
        machines: Machines,
        mapping: &BTreeMap<Stage, Stage>,
    ) -> Result<u64> {
        machines.validate()?;
        self.guarded(|tx| {
            // Plan every remap first, so that a refusal applies nothing.
            let mut groups = Vec::new();
            let prefix = index::cat_prefix(EntityKind::Contact, "stage");
            for key in tx.keys_with_prefix(&prefix)? {
                groups.push(remap::Group {
                    kind: EntityKind::Contact,
                    pipeline: None,
                    stage: Stage::new(&key[prefix.len()..]),
                    rows: tx.bitmap(&key)?.iter().collect(),
                });
            }
            let mut deals: BTreeMap<(String, Stage), Vec<u32>> = BTreeMap::new();
            for (id, deal) in tx.records::<Deal>()? {
                deals
                    .entry((deal.pipeline_name().to_owned(), deal.stage.clone()))
                    .or_default()
                    .push(id.get());
            }
            groups.extend(
                deals
                    .into_iter()
                    .map(|((pipeline, stage), rows)| remap::Group {
                        kind: EntityKind::Deal,
                        pipeline: Some(pipeline),
                        stage,
                        rows,
                    }),
            );
            let plan = remap::plan(&machines, mapping, &groups)?;
            tx.put_meta(meta::MACHINES, &codec::encode(&machines))?;
            tx.log(StoredChange::MachinesReplaced {
                machines: machines.clone(),
            });
            tx.rewatch();
            let mut next = (*tx.config_arc()?).clone();
            next.machines = machines;
            tx.set_config(next);
            let count = plan.len() as u64;
            tx.with_cause(Cause::Remap, |tx| tx.apply_remaps(plan))?;
            Ok(count)
        })
    }

    fn apply_remaps(&mut self, plan: Vec<remap::Remap>) -> Result<()> {
        let tx = self;
        {
            for remap in plan {
                match remap.kind {
                    EntityKind::Contact => {
                        tx.remap_record(ContactId::new(remap.row), &remap.to)?;
                    }
                    EntityKind::Deal => tx.remap_record(DealId::new(remap.row), &remap.to)?,
                    // The groups above hold contacts and deals only.
                    other => {
                        return Err(Error::InvalidArgument(format!(
                            "{other} records have no stage"
                        )));
                    }
                }
            }
            Ok(())
        }
    }

    /// Moves a record to `to` as a machine replacement planned it, with a `Remap`
    /// history entry. The new machine is not consulted: the mapping is the rule.
    fn remap_record<I: RecordId>(&mut self, id: I, to: &Stage) -> Result<()> {
        let old = self.get(id)?;
        let mut record = old.clone();
        let (Some(from), Some(stage)) = (old.staged().map(|s| s.stage.clone()), record.stage_mut())
        else {
            return Ok(());
        };
        let change = transition::remapped(&from, to, self.now(), &self.actor);
        *stage = to.clone();
        self.write_row(id.row(), Some(&old), &record)?;
        self.append_history(I::Record::KIND, id.row(), &change)
    }

    /// Moves inactive contacts as the sweep rules say, at a caller-given `now`: a contact
    /// in a rule's `from` stages whose latest activity, order and creation are all more
    /// than `after_days` before `now` moves to the rule's `to` stage. Where several rules
    /// apply, the one with the longest `after_days` wins. Returns the moves made.
    ///
    /// # Errors
    /// A storage failure; a move the machine refuses is an [`Error::IllegalTransition`].
    pub fn sweep(&mut self, now: Timestamp) -> Result<Vec<SweepMove>> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            let live = tx.live_rows(EntityKind::Contact)?;
            let planned = sweep::plan(&config.machines.sweep, now, |rule| {
                // The day indexes rule out contacts seen after the cutoff day; the
                // planner decides the boundary day to the second.
                let cutoff_day = now.plus_days(-i64::from(rule.after_days)).day();
                let mut from = RoaringBitmap::new();
                for stage in &rule.from {
                    from |= &*tx.bitmap(&index::cat_key(
                        EntityKind::Contact,
                        "stage",
                        stage.as_str(),
                    ))?;
                }
                from &= &*live;
                for field in ["last_activity", "last_order", "created"] {
                    let bsi = tx.bsi(&index::bsi_base(EntityKind::Contact, field))?;
                    // Recent enough on this field: still active.
                    from -= bsi.compare(index::bsi::Cmp::Gt, cutoff_day, Some(&from));
                }
                let mut candidates = Vec::with_capacity(from.len() as usize);
                for row in &from {
                    let contact: Contact = tx.get(ContactId::new(row))?;
                    let latest = [
                        contact.stats.last_activity,
                        contact.stats.last_order,
                        contact.created_at,
                    ]
                    .into_iter()
                    .flatten()
                    .max();
                    candidates.push(sweep::Candidate {
                        row,
                        stage: contact.stage,
                        latest,
                    });
                }
                Ok(candidates)
            })?;
            // Check every move before applying any.
            for (row, planned) in &planned {
                let old: Contact = tx.get(ContactId::new(*row))?;
                let mut new = old.clone();
                new.stage = planned.to.clone();
                transition::resolve(
                    &config.machines,
                    *row,
                    Some(&old),
                    &mut new,
                    MoveOp::Sweep(&planned.reason),
                    now,
                    &tx.actor,
                )?;
            }
            let mut moved = Vec::with_capacity(planned.len());
            // The moves, and the refresh of watched segments, happen at the sweep's `now`.
            let previous_time = tx.time_override.replace(now);
            let result = tx.with_cause(Cause::Sweep, |tx| {
                for (row, planned) in planned {
                    let id = ContactId::new(row);
                    tx.restage_record(id, planned.to.clone(), MoveOp::Sweep(&planned.reason))?;
                    moved.push(SweepMove {
                        contact: id,
                        from: planned.from,
                        to: planned.to,
                    });
                }
                tx.refresh_all()
            });
            tx.time_override = previous_time;
            result.map(|_| moved)
        })
    }

    /// Saves (or replaces) a segment. A dynamic segment is checked by binding it, which
    /// also refuses references to itself.
    ///
    /// # Errors
    /// A bad name, a query that does not bind, [`Error::SegmentCycle`].
    pub fn save_segment(&mut self, name: &str, segment: SavedSegment) -> Result<()> {
        crate::schema::check_stage_name(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "segment name {} must be 1 to 64 bytes of [a-z0-9_]",
                crate::error::quote(name)
            ))
        })?;
        self.guarded(|tx| {
            if let SavedSegment::Dynamic { kind, query } = &segment {
                query::eval::check_segment(tx, name, *kind, query)?;
            }
            if tx.watched_reads(name)?
                && let Ok(old) = query::load_segment(tx, name)
                && old.kind() != segment.kind()
            {
                return Err(Error::Watched(name.to_owned()));
            }
            tx.mark_changed();
            tx.note_segment(name)?;
            let mut table = tx.txn()?.open_table(storage::SEGMENTS)?;
            let stored = query::StoredSegment::of(&segment);
            table.insert(name, codec::encode(&stored).as_slice())?;
            drop(table);
            tx.log(StoredChange::SegmentSaved {
                name: name.to_owned(),
            });
            tx.rewatch();
            Ok(())
        })
    }

    /// Deletes a saved segment. Returns whether it existed.
    ///
    /// # Errors
    /// A storage failure.
    pub fn delete_segment(&mut self, name: &str) -> Result<bool> {
        self.guarded(|tx| {
            if tx.watched_reads(name)? {
                return Err(Error::Watched(name.to_owned()));
            }
            tx.note_segment(name)?;
            let existed = tx
                .txn()?
                .open_table(storage::SEGMENTS)?
                .remove(name)?
                .is_some();
            if existed {
                tx.mark_changed();
                tx.log(StoredChange::SegmentDeleted {
                    name: name.to_owned(),
                });
            }
            Ok(existed)
        })
    }

    /// Replaces the lead assignment configuration.
    ///
    /// # Errors
    /// A rule without a name, an excluded owner that does not exist, or a storage failure.
    pub fn set_assignment(&mut self, assignment: Assignment) -> Result<()> {
        if let Some(rule) = assignment.rules.iter().find(|r| r.name().trim().is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "assignment rule {rule:?} needs a name"
            )));
        }
        for owner in &assignment.excluded {
            if self.find(*owner)?.is_none() {
                return Err(Error::NotFound {
                    kind: EntityKind::Owner,
                    id: owner.get(),
                });
            }
        }
        self.guarded(|tx| {
            tx.put_meta(meta::ASSIGNMENT, &codec::encode(&assignment))?;
            tx.log(StoredChange::AssignmentChanged {
                assignment: assignment.clone(),
            });
            let mut next = (*tx.config_arc()?).clone();
            next.assignment = assignment;
            tx.set_config(next);
            Ok(())
        })
    }

    /// Stores a round-robin pointer after a decision is applied.
    pub(super) fn record_assignment(&mut self, decision: &Decision) -> Result<()> {
        if let Some((key, row)) = &decision.pointer {
            let mut state = round_robin_state(self)?;
            state.insert(key.clone(), *row);
            self.put_meta(meta::ROUND_ROBIN, &codec::encode(&state))?;
        }
        Ok(())
    }

    /// Replaces one kind's derived indexes with `derived` and stores `state` under the
    /// meta key `state_key`: the one way a refresh (`refresh_rfm`) writes them.
    pub(crate) fn replace_derived(
        &mut self,
        kind: EntityKind,
        derived: DerivedIndexes,
        state: (&'static str, Vec<u8>),
    ) -> Result<()> {
        self.guarded(|tx| {
            for (field, target) in &derived.nums {
                let base = index::bsi_base(kind, field);
                let current = tx.bsi(&base)?;
                tx.delta.num_mut(&base).replace(&current, target);
            }
            let mut keys: Vec<String> = Vec::new();
            for (field, field_kind) in kind.derived_fields() {
                if !field_kind.is_numeric() {
                    keys.extend(tx.keys_with_prefix(&index::cat_prefix(kind, field))?);
                }
            }
            for key in derived.cats.keys() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
            let empty = RoaringBitmap::new();
            for key in keys {
                let current = tx.bitmap(&key)?;
                let want = derived.cats.get(&key).unwrap_or(&empty);
                let add = want - &*current;
                let remove = &*current - want;
                tx.delta.cat_mut(&key).compose(&add, &remove);
            }
            tx.with_cause(Cause::Refresh, |tx| {
                tx.log(StoredChange::RfmRefreshed { kind });
                Ok(())
            })?;
            tx.rewatch();
            tx.put_meta(state.0, &state.1)
        })
    }

    /// Takes a purged row out of its kind's derived indexes.
    pub(super) fn clear_derived(&mut self, kind: EntityKind, row: u32) -> Result<()> {
        for (field, field_kind) in kind.derived_fields() {
            if field_kind.is_numeric() {
                let base = index::bsi_base(kind, field);
                if let Some(value) = self.bsi(&base)?.value(row) {
                    self.delta.num_mut(&base).change(row, Some(value), None);
                }
            } else {
                for key in self.keys_with_prefix(&index::cat_prefix(kind, field))? {
                    if self.bitmap(&key)?.contains(row) {
                        self.delta.set_key(&key, row, false);
                    }
                }
            }
        }
        Ok(())
    }
}
