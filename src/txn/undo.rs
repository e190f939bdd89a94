//! Taking back part of a write transaction: group commit runs several callers' writes
//! in one redb transaction and must undo one caller's writes without touching the
//! others'. redb's savepoints cannot help there (it refuses a savepoint once a table has
//! been opened), so while a mark is set every table write of `txn/` first notes the
//! value it replaces, and [`WriteTransaction::rollback_to`] writes those back in
//! reverse order. The index delta saves each key on its first change after the mark
//! (`IndexDelta::set_mark`); the rest of the in-memory state (events, touched rows, row
//! counters, configuration) is copied at the mark and put back whole.
//!
//! The table writes at commit (bitmaps, generations, the change log, counters, the
//! sequence) need no notes: they happen after every caller's writes.

use std::collections::HashMap;
use std::sync::Arc;

use redb::ReadableTable;

use super::{WriteTransaction, feed};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::feed::Cause;
use crate::schema::EntityKind;
use crate::storage;
use crate::storage::source::Source;

/// A table entry as it was before a write.
pub(super) enum Undo {
    Row {
        kind: EntityKind,
        row: u32,
        old: Option<Vec<u8>>,
    },
    Unique {
        field: String,
        value: String,
        old: Option<u32>,
    },
    History {
        key: (u8, u32, u32),
        old: Option<Vec<u8>>,
    },
    Meta {
        name: String,
        old: Option<Vec<u8>>,
    },
    Segment {
        name: String,
        old: Option<Vec<u8>>,
    },
    Consumer {
        name: String,
        old: Option<u64>,
    },
    Watched {
        name: String,
        old: Option<Vec<u8>>,
    },
    Identity {
        key: String,
        old: Option<Vec<u8>>,
    },
    Change {
        key: (u64, u32),
        old: Option<Vec<u8>>,
    },
}

/// The state of a write transaction at a mark (the index delta keeps its own).
pub(super) struct Mark {
    events: usize,
    touched: feed::Touched,
    next_rows: HashMap<EntityKind, u32>,
    config: Option<Arc<Config>>,
    config_changed: bool,
    changed: bool,
    rewatch: bool,
    watch_set_changed: bool,
}

impl WriteTransaction {
    /// Sets a mark: from here on table writes are noted so that
    /// [`rollback_to`](Self::rollback_to) can take them back. Record events written
    /// before the mark are closed, so that later writes append events of their own.
    pub(super) fn mark(&mut self) -> Mark {
        self.undo = Some(Vec::new());
        self.record_events.clear();
        self.delta.set_mark();
        Mark {
            events: self.events.len(),
            touched: self.touched.clone(),
            next_rows: self.next_rows.clone(),
            config: self.config.clone(),
            config_changed: self.config_changed,
            changed: self.changed,
            rewatch: self.rewatch,
            watch_set_changed: self.watch_set_changed,
        }
    }

    /// Takes back every write since `mark`.
    ///
    /// # Errors
    /// A storage failure, which poisons the transaction.
    pub(super) fn rollback_to(&mut self, mark: Mark) -> Result<()> {
        let undo = self.undo.take().unwrap_or_default();
        let result = self.apply_undo(undo);
        if result.is_err() {
            self.poisoned = true;
        }
        result?;
        self.delta.rollback_to_mark();
        self.events.truncate(mark.events);
        self.record_events.clear();
        self.touched = mark.touched;
        self.next_rows = mark.next_rows;
        self.config = mark.config;
        self.config_changed = mark.config_changed;
        self.changed = mark.changed;
        self.rewatch = mark.rewatch;
        self.watch_set_changed = mark.watch_set_changed;
        Ok(())
    }

    /// Stops noting writes and puts back what a caller may have set (actor, clock
    /// override, cause), so that the next caller does not inherit it.
    pub(super) fn end_mark(&mut self) {
        self.undo = None;
        self.delta.clear_mark();
        self.actor = super::SYSTEM_ACTOR.to_owned();
        self.time_override = None;
        self.cause = Cause::Write;
    }

    fn apply_undo(&mut self, undo: Vec<Undo>) -> Result<()> {
        let txn = self.txn.as_ref().ok_or(Error::Poisoned)?;
        for entry in undo.into_iter().rev() {
            match entry {
                Undo::Row { kind, row, old } => {
                    let mut table = txn.open_table(storage::rows(kind))?;
                    match old {
                        Some(bytes) => table.insert(row, bytes.as_slice())?,
                        None => table.remove(row)?,
                    };
                }
                Undo::Unique { field, value, old } => {
                    let mut table = txn.open_table(storage::UNIQUE)?;
                    let key = (field.as_str(), value.as_str());
                    match old {
                        Some(row) => table.insert(key, row)?,
                        None => table.remove(key)?,
                    };
                }
                Undo::History { key, old } => {
                    let mut table = txn.open_table(storage::HISTORY)?;
                    match old {
                        Some(bytes) => table.insert(key, bytes.as_slice())?,
                        None => table.remove(key)?,
                    };
                }
                Undo::Meta { name, old } => {
                    let mut table = txn.open_table(storage::META)?;
                    match old {
                        Some(bytes) => table.insert(name.as_str(), bytes.as_slice())?,
                        None => table.remove(name.as_str())?,
                    };
                }
                Undo::Segment { name, old } => {
                    let mut table = txn.open_table(storage::SEGMENTS)?;
                    match old {
                        Some(bytes) => table.insert(name.as_str(), bytes.as_slice())?,
                        None => table.remove(name.as_str())?,
                    };
                }
                Undo::Consumer { name, old } => {
                    let mut table = txn.open_table(storage::CONSUMERS)?;
                    match old {
                        Some(at) => table.insert(name.as_str(), at)?,
                        None => table.remove(name.as_str())?,
                    };
                }
                Undo::Watched { name, old } => {
                    let mut table = txn.open_table(storage::WATCHED)?;
                    match old {
                        Some(bytes) => table.insert(name.as_str(), bytes.as_slice())?,
                        None => table.remove(name.as_str())?,
                    };
                }
                Undo::Change { key, old } => {
                    let mut table = txn.open_table(storage::CHANGES)?;
                    match old {
                        Some(bytes) => table.insert(key, bytes.as_slice())?,
                        None => table.remove(key)?,
                    };
                }
                Undo::Identity { key, old } => {
                    let mut table = txn.open_table(storage::IDENTITY)?;
                    match old {
                        Some(bytes) => table.insert(key.as_str(), bytes.as_slice())?,
                        None => table.remove(key.as_str())?,
                    };
                }
            }
        }
        Ok(())
    }

    fn push_undo(&mut self, entry: Undo) {
        if let Some(undo) = &mut self.undo {
            undo.push(entry);
        }
    }

    // ---- notes, taken before each table write while a mark is set ----

    pub(super) fn note_row(&mut self, kind: EntityKind, row: u32) -> Result<()> {
        if self.undo.is_some() {
            let old = self.row_bytes(kind, row)?;
            self.push_undo(Undo::Row { kind, row, old });
        }
        Ok(())
    }

    pub(super) fn note_unique(&mut self, field: &str, value: &str) -> Result<()> {
        if self.undo.is_some() {
            let old = self.unique_row(field, value)?;
            self.push_undo(Undo::Unique {
                field: field.to_owned(),
                value: value.to_owned(),
                old,
            });
        }
        Ok(())
    }

    /// Notes every history entry of a record (before a purge removes them) or the one
    /// at `seq`.
    pub(super) fn note_history(
        &mut self,
        kind: EntityKind,
        row: u32,
        seq: Option<u32>,
    ) -> Result<()> {
        if self.undo.is_none() {
            return Ok(());
        }
        let k = kind as u8;
        let table = self.txn()?.open_table(storage::HISTORY)?;
        let mut notes = Vec::new();
        match seq {
            Some(seq) => notes.push(Undo::History {
                key: (k, row, seq),
                old: table.get((k, row, seq))?.map(|v| v.value().to_vec()),
            }),
            None => {
                for entry in table.range((k, row, 0)..=(k, row, u32::MAX))? {
                    let (key, value) = entry?;
                    notes.push(Undo::History {
                        key: key.value(),
                        old: Some(value.value().to_vec()),
                    });
                }
            }
        }
        drop(table);
        for note in notes {
            self.push_undo(note);
        }
        Ok(())
    }

    pub(super) fn note_meta(&mut self, name: &str) -> Result<()> {
        if self.undo.is_some() {
            let old = self.meta_bytes(name)?;
            self.push_undo(Undo::Meta {
                name: name.to_owned(),
                old,
            });
        }
        Ok(())
    }

    pub(super) fn note_segment(&mut self, name: &str) -> Result<()> {
        if self.undo.is_some() {
            let old = self.segment_bytes(name)?;
            self.push_undo(Undo::Segment {
                name: name.to_owned(),
                old,
            });
        }
        Ok(())
    }

    pub(super) fn note_consumer(&mut self, name: &str) -> Result<()> {
        if self.undo.is_some() {
            let table = self.txn()?.open_table(storage::CONSUMERS)?;
            let old = table.get(name)?.map(|v| v.value());
            drop(table);
            self.push_undo(Undo::Consumer {
                name: name.to_owned(),
                old,
            });
        }
        Ok(())
    }

    pub(super) fn note_change(&mut self, key: (u64, u32)) -> Result<()> {
        if self.undo.is_some() {
            let table = self.txn()?.open_table(storage::CHANGES)?;
            let old = table.get(key)?.map(|v| v.value().to_vec());
            drop(table);
            self.push_undo(Undo::Change { key, old });
        }
        Ok(())
    }

    pub(super) fn note_identity(&mut self, key: &str) -> Result<()> {
        if self.undo.is_some() {
            let old = self.identity_bytes(key)?;
            self.push_undo(Undo::Identity {
                key: key.to_owned(),
                old,
            });
        }
        Ok(())
    }

    pub(super) fn note_watched(&mut self, name: &str) -> Result<()> {
        if self.undo.is_some() {
            let table = self.txn()?.open_table(storage::WATCHED)?;
            let old = table.get(name)?.map(|v| v.value().to_vec());
            drop(table);
            self.push_undo(Undo::Watched {
                name: name.to_owned(),
                old,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::clock::ManualClock;
    use crate::error::Result;
    use crate::schema::{Contact, ContactId, EntityKind, Money, Order, Timestamp};
    use crate::schema::{FieldDef, FieldType};
    use crate::storage::source::Source;
    use crate::{Database, Query, SavedSegment, Snapshot, WriteTransaction};

    fn contact(name: &str) -> Contact {
        Contact {
            name: name.into(),
            email: Some(format!("{name}@example.com")),
            region: Some("north".into()),
            ..Default::default()
        }
    }

    fn clocked() -> Result<Database> {
        let at = Timestamp::from_ymd(2026, 3, 1).expect("valid date");
        Database::builder()
            .clock(Arc::new(ManualClock::new(at)))
            .in_memory()
    }

    /// What both databases must agree on: every record, history, index answer, saved
    /// and watched segment, consumer and change-log event.
    fn state(db: &Database) -> Result<Vec<String>> {
        db.read(|r| {
            let mut out = Vec::new();
            for (id, c) in r.records::<Contact>()? {
                out.push(format!("{id:?} {c:?} {:?}", r.history(id)?));
            }
            for (id, o) in r.records::<Order>()? {
                out.push(format!("{id:?} {o:?}"));
            }
            for text in [
                "tag:vip",
                "region:north",
                "stage:prospect",
                "stage:new_customer",
                "not tag:none",
                "order_count >= 1",
                "total_spent >= 1",
                "lifetime_value >= 1",
                "lifetime_value = 0",
            ] {
                let query = Query::parse(text).expect("a valid query");
                let ids: Vec<u32> = r.ids(EntityKind::Contact, &query)?.iter().collect();
                out.push(format!("{text} {ids:?}"));
            }
            out.push(format!("{:?}", r.segment_names()?));
            out.push(format!("{:?}", r.watched()?));
            out.push(format!("{:?}", r.consumers()?));
            out.push(format!("{:?}", r.config()?.schema(EntityKind::Contact)));
            for batch in r.changes(0, 1000)? {
                out.push(format!("{} {:?}", batch.sequence, batch.events));
            }
            Ok(out)
        })
    }

    fn before(tx: &mut WriteTransaction) -> Result<(ContactId, ContactId)> {
        let ada = tx.insert(contact("ada"))?;
        let bob = tx.insert(contact("bob"))?;
        tx.add_tag(ada, "vip")?;
        tx.soft_delete(bob)?;
        tx.save_segment(
            "vips",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::tag("vip"),
            },
        )?;
        tx.register_consumer("search", 0)?;
        Ok((ada, bob))
    }

    /// Writes after the rollback (to records of their own: a record written before a
    /// mark and again after it gets an event of its own each time, not one folded event).
    fn after(tx: &mut WriteTransaction) -> Result<()> {
        let eve = tx.insert(contact("eve"))?;
        tx.add_tag(eve, "vip")?;
        Ok(())
    }

    /// Writes of every kind after a mark, taken back, leave the transaction as if they
    /// had never been made: the rest commits exactly as without them.
    #[test]
    fn rollback_takes_back_every_write_since_the_mark() -> Result<()> {
        let reference = clocked()?;
        reference.write(|tx| -> Result<()> {
            before(tx)?;
            after(tx)
        })?;

        let db = clocked()?;
        let mut tx = db.begin_write()?;
        let (ada, bob) = before(&mut tx)?;
        let mark = tx.mark();
        tx.set_actor("intruder");
        let cid = tx.insert(Contact {
            lifetime_value: Money::from_major(12),
            ..contact("cid")
        })?;
        tx.modify(ada, |c| c.lifetime_value = Money::from_major(7))?;
        tx.add_tag(cid, "vip")?;
        tx.move_stage(ada, "responder")?;
        tx.modify(ada, |c| c.name = "ada lovelace".into())?;
        tx.remove_tag(ada, "vip")?;
        tx.insert(Order {
            contact: Some(ada),
            at: tx.now(),
            total: Money::from_major(10),
            ..Default::default()
        })?;
        tx.purge(bob)?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("score", FieldType::Integer),
        )?;
        tx.save_segment("everyone", SavedSegment::of_ids([ada, cid]))?;
        tx.delete_segment("vips")?;
        tx.watch("everyone")?;
        tx.acknowledge("search", 0)?;
        tx.unregister_consumer("search")?;
        tx.register_consumer("other", 0)?;
        tx.rollback_to(mark)?;
        tx.end_mark();
        after(&mut tx)?;
        tx.commit()?;

        assert_eq!(state(&db)?, state(&reference)?);
        Ok(())
    }
}
