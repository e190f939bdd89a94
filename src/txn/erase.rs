//! Erasure: a contact's personal data removed from everywhere the engine keeps it,
//! while its orders, deals and activities stay, linked to the anonymous record.
//!
//! Personal data is the name, email and phone, and the custom fields marked personal
//! ([`WriteTransaction::set_personal`]). Erasing a contact erases the person: the
//! contact an id resolves to (the survivor, for a merged id) and every contact merged
//! into it by a merge not undone, transitively. For each, in one transaction:
//! - the row, anonymised: name `[erased]`, no email, no phone, no personal custom
//!   fields; the natural-key entry of the email and the index terms of those custom
//!   fields leave with it;
//! - its stage history and that of the deals it is on: actors and reasons quoting a
//!   personal value get `[erased]` in its place;
//! - its consent ledger: sources and notes removed, actors quoting it scrubbed
//!   (statuses, bases and times stay);
//! - every lineage naming it: its images anonymised, and the lineage marked erased, so
//!   that the merge can no longer be undone;
//! - the change log: every earlier event of it **rewritten**, its record images
//!   anonymised and its stage entries scrubbed, and a batch actor quoting it scrubbed.
//!   Rewritten rather than dropped: a consumer replaying the log still sees each
//!   record's inserts, updates and deletions in order, and the events of other records
//!   in the same batches are untouched. Rewriting reads the whole log kept, once per
//!   erasure.
//!
//! An [`Erasure`] record keeps who erased, when, why and which ids, and no personal
//! data; the change event, [`Change::Erased`](crate::feed::Change::Erased), names the
//! id only. The caller's reason is stored as given: it should not quote the person.
//!
//! Freed pages of a database file may still hold the old bytes until they are reused;
//! [`Database::compact`](crate::Database::compact) after an erasure rewrites the file
//! without them.

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::WriteTransaction;
use super::lineage::{Lineage, lineages, resolve_row};
use crate::codec;
use crate::error::{Error, Result};
use crate::feed::stored::{StoredChange, StoredEvent, rewrite_part};
use crate::lifecycle::StageChange;
use crate::schema::{Contact, ContactId, EntityKind, RecordId, Timestamp, Value};
use crate::storage::source::{Source, decode_record};
use crate::storage::{self, identity as keys, meta};

/// What an erased name becomes, and what replaces personal values in free text.
pub const ERASED: &str = "[erased]";

/// An erasure: who, when, why, which contacts. No personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Its number (from 1, in order).
    pub erasure: u64,
    /// The contacts erased: the one asked for first, then those merged into it.
    pub contacts: Vec<u32>,
    /// When (the transaction clock).
    pub at: Timestamp,
    /// Who (the transaction's actor).
    pub actor: String,
    /// Why, as the caller gave it.
    pub reason: String,
}

/// Every erasure, in order.
pub(crate) fn erasures<S: Source + ?Sized>(source: &S) -> Result<Vec<Erasure>> {
    source
        .identity_entries(keys::ERASURE)?
        .into_iter()
        .map(|(key, bytes)| codec::decode("identity", &key, &bytes))
        .collect()
}

/// Takes a contact's personal data out: the name becomes `name`, the email and phone
/// go, and so do the custom fields in `personal`. Erasure and redaction
/// ([`Principal::without_personal`](crate::Principal::without_personal)) both use it.
pub(super) fn strip_personal(contact: &mut Contact, name: &str, personal: &BTreeSet<String>) {
    contact.name = name.into();
    contact.email = None;
    contact.phone = None;
    contact.custom.retain(|field, _| !personal.contains(field));
}

/// What is erased: the rows, and how to anonymise a contact and scrub text.
struct Scrubber {
    rows: BTreeSet<u32>,
    personal: BTreeSet<String>,
    /// Personal values that free text may quote, longest first.
    needles: Vec<String>,
}

impl Scrubber {
    fn contact(&self, contact: &Contact) -> Contact {
        let mut clean = contact.clone();
        strip_personal(&mut clean, ERASED, &self.personal);
        clean
    }

    /// `text` with every personal value replaced; whether it changed.
    fn text(&self, text: &mut String) -> bool {
        let mut changed = false;
        for needle in &self.needles {
            if let Some(at) = find_ignoring_case(text, needle) {
                let mut out = text[..at].to_owned();
                let mut rest = &text[at..];
                while let Some(at) = find_ignoring_case(rest, needle) {
                    out.push_str(&rest[..at]);
                    out.push_str(ERASED);
                    rest = &rest[at + needle.len()..];
                }
                out.push_str(rest);
                *text = out;
                changed = true;
            }
        }
        changed
    }

    fn stage(&self, change: &mut StageChange) -> bool {
        let actor = self.text(&mut change.actor);
        let reason = change.reason.as_mut().is_some_and(|r| self.text(r));
        actor | reason
    }

    /// A stored contact image anonymised; whether it changed.
    fn image(&self, row: u32, bytes: &mut Vec<u8>) -> Result<bool> {
        let contact: Contact = decode_record(row, bytes)?;
        let clean = self.contact(&contact);
        if clean == contact {
            return Ok(false);
        }
        *bytes = codec::encode(&clean);
        Ok(true)
    }

    /// An event of an erased contact rewritten; whether it changed.
    fn event(&self, event: &mut StoredEvent) -> Result<bool> {
        let erased =
            |kind: &EntityKind, id: &u32| *kind == EntityKind::Contact && self.rows.contains(id);
        Ok(match &mut event.change {
            StoredChange::Inserted { kind, id, record }
            | StoredChange::Deleted { kind, id, record }
            | StoredChange::Restored { kind, id, record }
                if erased(kind, id) =>
            {
                self.image(*id, record)?
            }
            StoredChange::Updated {
                kind,
                id,
                before,
                after,
            } if erased(kind, id) => self.image(*id, before)? | self.image(*id, after)?,
            // Stage entries of any record (a deal's, say) may name the person as actor.
            StoredChange::StageChanged { change, .. } => self.stage(change),
            _ => false,
        })
    }
}

/// The byte offset of `needle` in `haystack`, compared ASCII case-insensitively.
fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    (0..=haystack.len() - needle.len()).find(|&at| {
        haystack.is_char_boundary(at)
            && haystack.is_char_boundary(at + needle.len())
            && haystack[at..at + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// The text forms of a custom value, for scrubbing free text.
fn value_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Text(s) | Value::Select(s) => out.push(s.clone()),
        Value::MultiSelect(set) => out.extend(set.iter().cloned()),
        Value::Integer(_) | Value::Money(_) | Value::Date(_) | Value::Bool(_) => {}
    }
}

impl WriteTransaction {
    /// Marks a declared custom field as personal (erased with the name, email and
    /// phone) or not.
    ///
    /// # Errors
    /// [`Error::UnknownField`] for an undeclared field.
    pub fn set_personal(&mut self, kind: EntityKind, field: &str, personal: bool) -> Result<()> {
        self.guarded(|tx| {
            let config = tx.config_arc()?;
            if config.schema(kind).field(field).is_none() {
                return Err(Error::UnknownField {
                    kind,
                    field: format!("custom.{field}"),
                });
            }
            let mut next = (*config).clone();
            let set = next.personal.entry(kind).or_default();
            if personal {
                set.insert(field.to_owned());
            } else {
                set.remove(field);
            }
            tx.put_meta(meta::PERSONAL, &codec::encode(&next.personal))?;
            tx.set_config(next);
            Ok(())
        })
    }

    /// Erases the person `contact` stands for (see the module docs) and returns the
    /// erasure record.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidArgument`] for an empty reason or one
    /// over 1 KiB.
    pub fn erase(&mut self, contact: ContactId, reason: &str) -> Result<Erasure> {
        self.guarded(|tx| tx.erase_person(contact, reason))
    }

    pub(super) fn erase_person(&mut self, contact: ContactId, reason: &str) -> Result<Erasure> {
        if reason.trim().is_empty() || reason.len() > 1024 {
            return Err(Error::InvalidArgument(
                "an erasure needs a reason of 1 to 1024 bytes".into(),
            ));
        }
        let first = resolve_row(self, EntityKind::Contact, contact.row())?;
        if self.record(ContactId::new(first))?.is_none() {
            return Err(Error::NotFound {
                kind: EntityKind::Contact,
                id: contact.row(),
            });
        }
        // The person: the contact and every contact merged into it, transitively.
        let all = lineages(self)?;
        let mut order = vec![first];
        let mut rows = BTreeSet::from([first]);
        let mut at = 0;
        while at < order.len() {
            let survivor = order[at];
            for lineage in &all {
                if lineage.survivor == survivor
                    && lineage.undone.is_none()
                    && rows.insert(lineage.other)
                {
                    order.push(lineage.other);
                }
            }
            at += 1;
        }
        let config = self.config_arc()?;
        let personal = config
            .personal
            .get(&EntityKind::Contact)
            .cloned()
            .unwrap_or_default();
        let mut needles = Vec::new();
        let mut contacts = BTreeMap::new();
        for row in &order {
            let Some(contact) = self.record(ContactId::new(*row))? else {
                continue;
            };
            needles.push(contact.name.trim().to_owned());
            needles.extend(contact.email.iter().map(|e| e.trim().to_owned()));
            needles.extend(contact.phone.iter().map(|p| p.trim().to_owned()));
            for (name, value) in &contact.custom {
                if personal.contains(name) {
                    value_texts(value, &mut needles);
                }
            }
            contacts.insert(*row, contact);
        }
        // Short values would scrub unrelated text; the anonymous name is no needle.
        needles.retain(|n| n.chars().count() >= 3 && n != ERASED);
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        let scrubber = Scrubber {
            rows,
            personal,
            needles,
        };
        let erasure = self.next_erasure()?;

        for (row, contact) in &contacts {
            let clean = scrubber.contact(contact);
            if clean != *contact {
                let bytes = codec::encode(&clean);
                self.store_row(*row, Some(contact), &clean, &bytes)?;
            }
            self.touched
                .entry(EntityKind::Contact)
                .or_default()
                .insert(*row);
            self.scrub_history(*row, &scrubber)?;
            self.scrub_consent(*row, &scrubber)?;
            self.log(StoredChange::Erased {
                kind: EntityKind::Contact,
                id: *row,
            });
        }
        self.scrub_lineages(all, &scrubber, erasure)?;
        self.scrub_log(&scrubber)?;
        let mut actor = self.actor.clone();
        scrubber.text(&mut actor);
        let record = Erasure {
            erasure,
            contacts: order,
            at: self.now(),
            actor,
            reason: reason.to_owned(),
        };
        self.put_identity(&keys::erasure(erasure), Some(&codec::encode(&record)))?;
        Ok(record)
    }

    /// Scrubs the stage histories of a contact and of the deals it is on.
    fn scrub_history(&mut self, row: u32, scrubber: &Scrubber) -> Result<()> {
        let mut records = vec![(EntityKind::Contact, row)];
        for field in ["contact", "participant"] {
            let key = crate::index::cat_key(EntityKind::Deal, field, &row.to_string());
            records.extend(self.bitmap(&key)?.iter().map(|d| (EntityKind::Deal, d)));
        }
        records.sort_unstable();
        records.dedup();
        for (kind, row) in records {
            let entries = self.history_entries(kind, row)?;
            for (seq, mut change) in entries.into_iter().enumerate() {
                if scrubber.stage(&mut change) {
                    let seq = seq as u32;
                    self.mark_changed();
                    self.note_history(kind, row, Some(seq))?;
                    let mut table = self.txn()?.open_table(storage::HISTORY)?;
                    table.insert((kind as u8, row, seq), codec::encode(&change).as_slice())?;
                }
            }
        }
        Ok(())
    }

    fn scrub_consent(&mut self, row: u32, scrubber: &Scrubber) -> Result<()> {
        for (key, bytes) in self.identity_entries(&keys::consent_prefix(row))? {
            let mut entry: crate::schema::ConsentEntry = codec::decode("identity", &key, &bytes)?;
            let actor = scrubber.text(&mut entry.actor);
            if actor || entry.consent.source.is_some() || entry.consent.note.is_some() {
                entry.consent.source = None;
                entry.consent.note = None;
                self.put_identity(&key, Some(&codec::encode(&entry)))?;
            }
        }
        Ok(())
    }

    fn scrub_lineages(
        &mut self,
        all: Vec<Lineage>,
        scrubber: &Scrubber,
        erasure: u64,
    ) -> Result<()> {
        for mut lineage in all {
            let (s, o) = (lineage.survivor, lineage.other);
            if !scrubber.rows.contains(&s) && !scrubber.rows.contains(&o) {
                continue;
            }
            if scrubber.rows.contains(&s) {
                lineage.survivor_before = scrubber.contact(&lineage.survivor_before);
                lineage.scrub_survivor_after(|row, bytes| scrubber.image(row, bytes))?;
            }
            if scrubber.rows.contains(&o) {
                lineage.other_before = scrubber.contact(&lineage.other_before);
            }
            scrubber.text(&mut lineage.actor);
            if let Some(undone) = &mut lineage.undone {
                scrubber.text(&mut undone.actor);
            }
            lineage.erased = Some(erasure);
            self.put_identity(&keys::merge(lineage.merge), Some(&codec::encode(&lineage)))?;
        }
        Ok(())
    }

    /// Rewrites the kept change log and this transaction's own events.
    fn scrub_log(&mut self, scrubber: &Scrubber) -> Result<()> {
        let mut events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for event in &mut events {
            if let Err(e) = scrubber.event(event) {
                result = Err(e);
                break;
            }
        }
        self.events = events;
        result?;
        self.scrub_actor(scrubber);
        let mut rewritten = Vec::new();
        {
            let table = self.txn()?.open_table(storage::CHANGES)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                let (sequence, part) = key.value();
                let new = rewrite_part(
                    sequence,
                    part,
                    value.value(),
                    &mut |event| scrubber.event(event),
                    &mut |actor| scrubber.text(actor),
                )?;
                if let Some(new) = new {
                    rewritten.push(((sequence, part), new));
                }
            }
        }
        for (key, bytes) in rewritten {
            self.note_change(key)?;
            self.mark_changed();
            let mut table = self.txn()?.open_table(storage::CHANGES)?;
            table.insert(key, bytes.as_slice())?;
        }
        Ok(())
    }

    /// This transaction's actor, if it quotes the person.
    fn scrub_actor(&mut self, scrubber: &Scrubber) {
        let mut actor = self.actor.clone();
        if scrubber.text(&mut actor) {
            self.actor = actor;
        }
    }

    /// The next erasure number, taken.
    fn next_erasure(&mut self) -> Result<u64> {
        let last: u64 = match self.meta_bytes(meta::LAST_ERASURE)? {
            Some(bytes) => codec::decode("meta", &meta::LAST_ERASURE, &bytes)?,
            None => 0,
        };
        self.put_meta(meta::LAST_ERASURE, &codec::encode(&(last + 1)))?;
        Ok(last + 1)
    }
}
