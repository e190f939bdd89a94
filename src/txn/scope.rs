//! Scoped reads: a read transaction seen through a principal's [`Visibility`], so
//! that the whole [`Snapshot`] API (records, queries, pages, group-bys, tags,
//! histories, segments, analytics, duplicate candidates and the change feed) sees only
//! the records the principal may see. A record out of sight is absent, exactly as one
//! that never existed: `get` answers [`Error::NotFound`] for both.
//!
//! A query over one kind is evaluated on the full ("wide") indexes and its result
//! narrowed to the visible rows once (`Source::narrowing`). Every other read of a
//! bitmap or numeric index of a kind with a visible set gets it intersected with that
//! set, kept for the transaction so that each is paid once. Record bytes, unique keys,
//! histories, consent ledgers and change events of unseen records are withheld; for a
//! principal without personal fields, contacts are redacted and the indexes of their
//! personal fields read empty, wide or not.
//!
//! The write side ([`ScopedWrite`], shares, reporting lines) is in `scope_write.rs`.
//!
//! [`ScopedWrite`]: crate::ScopedWrite
//! [`Snapshot`]: crate::Snapshot
//! [`Error::NotFound`]: crate::Error::NotFound

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use roaring::RoaringBitmap;

use super::ReadTransaction;
use crate::Snapshot;
use crate::access::{Principal, REDACTED, Visibility};
use crate::config::Config;
use crate::db::Database;
use crate::error::Result;
use crate::feed::{Batch, Change};
use crate::index::Bsi;
use crate::lifecycle::StageChange;
use crate::schema::{AnyRecord, Contact, EntityKind, Record, RecordId, Timestamp};
use crate::storage::source::{Source, decode_record};
use crate::{codec, index};

/// A transaction as one principal sees it; every [`Snapshot`] method works on it. A
/// [`ScopedRead`] wraps a read transaction, a [`ScopedWrite`] a write transaction.
///
/// [`Snapshot`]: crate::Snapshot
/// [`ScopedWrite`]: crate::ScopedWrite
pub struct Scoped<T> {
    pub(super) inner: T,
    pub(super) principal: Principal,
    pub(super) visibility: Visibility,
    /// What is redacted, for a principal that does not read personal fields.
    redaction: Option<Redaction>,
    /// Bitmaps already intersected with the visible rows, by key.
    seen: Mutex<HashMap<String, Arc<RoaringBitmap>>>,
    /// Numeric indexes already narrowed to the visible rows, by base key.
    seen_bsi: Mutex<HashMap<String, Arc<Bsi>>>,
}

/// The personal fields of contacts a principal does not read: redacted in rows and
/// change events, and their indexes and natural keys out of reach.
#[derive(Debug)]
struct Redaction {
    /// The custom fields of contacts marked personal.
    custom: BTreeSet<String>,
    /// The index keys of those fields (`contact/custom.x=`, `contact/custom.x#`).
    prefixes: Vec<String>,
}

impl Redaction {
    fn of(config: &Config) -> Redaction {
        let custom = config
            .personal
            .get(&EntityKind::Contact)
            .cloned()
            .unwrap_or_default();
        let prefixes = custom
            .iter()
            .flat_map(|name| {
                let field = format!("custom.{name}");
                [
                    index::cat_prefix(EntityKind::Contact, &field),
                    index::bsi_base(EntityKind::Contact, &field),
                ]
            })
            .collect();
        Redaction { custom, prefixes }
    }

    fn contact(&self, contact: &mut Contact) {
        super::erase::strip_personal(contact, REDACTED, &self.custom);
    }

    fn record(&self, record: &mut AnyRecord) {
        if let AnyRecord::Contact(contact) = record {
            self.contact(contact);
        }
    }

    fn bytes(&self, row: u32, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut contact: Contact = decode_record(row, bytes)?;
        self.contact(&mut contact);
        Ok(codec::encode(&contact))
    }

    /// Gives `new`, a contact written by a principal that reads it redacted, the
    /// personal fields of `old`, the stored version: what it cannot read, it does not
    /// overwrite.
    fn keep<R: Record>(&self, row: u32, new: &mut R, old: &R) -> Result<()> {
        if R::KIND != EntityKind::Contact {
            return Ok(());
        }
        let mut contact: Contact = decode_record(row, &codec::encode(&*new))?;
        let stored: Contact = decode_record(row, &codec::encode(old))?;
        contact.name = stored.name;
        contact.email = stored.email;
        contact.phone = stored.phone;
        contact.custom.retain(|name, _| !self.custom.contains(name));
        for (name, value) in stored.custom {
            if self.custom.contains(&name) {
                contact.custom.insert(name, value);
            }
        }
        *new = decode_record(row, &codec::encode(&contact))?;
        Ok(())
    }

    fn hides(&self, key: &str) -> bool {
        self.prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix.as_str()))
    }

    fn change(&self, change: &mut Change) {
        match change {
            Change::Inserted { record, .. }
            | Change::Deleted { record, .. }
            | Change::Restored { record, .. } => self.record(record),
            Change::Updated { before, after, .. } => {
                self.record(before);
                self.record(after);
            }
            _ => {}
        }
    }
}

/// A read transaction as one principal sees it.
pub type ScopedRead = Scoped<ReadTransaction>;

impl<T> std::fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl ScopedRead {
    /// `inner` as `principal` sees it.
    ///
    /// # Errors
    /// A storage or decode failure while reading what the principal sees.
    pub fn new(inner: ReadTransaction, principal: Principal) -> Result<ScopedRead> {
        Scoped::over(inner, principal)
    }
}

impl<T: Source> Scoped<T> {
    /// `inner` as `principal` sees it.
    pub(super) fn over(inner: T, principal: Principal) -> Result<Scoped<T>> {
        let config = inner.config()?;
        let visibility = Visibility::of(&inner, &principal, &config.reports_to)?;
        let redaction = (!principal.sees_personal()).then(|| Redaction::of(&config));
        Ok(Scoped {
            inner,
            principal,
            visibility,
            redaction,
            seen: Mutex::new(HashMap::new()),
            seen_bsi: Mutex::new(HashMap::new()),
        })
    }

    /// Gives `new` the personal fields of `old` when the principal reads them redacted
    /// (see [`Principal::without_personal`]).
    pub(super) fn keep_personal<R: Record>(&self, row: u32, new: &mut R, old: &R) -> Result<()> {
        match &self.redaction {
            Some(redaction) => redaction.keep(row, new, old),
            None => Ok(()),
        }
    }

    /// Forgets the intersections kept so far: the bitmaps under them changed.
    pub(super) fn forget(&mut self) {
        self.seen.get_mut().clear();
        self.seen_bsi.get_mut().clear();
    }

    /// Whom this transaction reads for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The rows of `kind` the principal sees.
    ///
    /// # Errors
    /// A storage failure.
    pub fn visible(&self, kind: EntityKind) -> Result<RoaringBitmap> {
        match self.rows(kind)? {
            Some(rows) => Ok(rows.clone()),
            None => {
                let mut all = (*self.inner.live_rows(kind)?).clone();
                all |= self.inner.deleted(kind)?;
                Ok(all)
            }
        }
    }

    /// The rows of `kind` seen, worked out on first use; `None` when all are.
    fn rows(&self, kind: EntityKind) -> Result<Option<&RoaringBitmap>> {
        self.visibility.rows(&self.inner, kind)
    }

    /// Whether row `row` of `kind` is seen.
    pub(super) fn sees(&self, kind: EntityKind, row: u32) -> Result<bool> {
        self.visibility.sees(&self.inner, kind, row)
    }

    /// The rows seen of the kind a bitmap key belongs to (`{kind}/…`), if narrowed.
    fn key_rows(&self, key: &str) -> Result<Option<&RoaringBitmap>> {
        match key.split('/').next().and_then(EntityKind::from_name) {
            Some(kind) => self.rows(kind),
            None => Ok(None),
        }
    }

    /// A change event as the principal sees it: whole, narrowed to the visible ids of
    /// a segment's comings and goings, or not at all.
    fn event_seen(&self, change: &Change) -> Result<Option<Change>> {
        Ok(match change {
            Change::Entered { segment, kind, ids } | Change::Left { segment, kind, ids } => {
                let rows = match self.rows(*kind)? {
                    Some(rows) => ids & rows,
                    None => ids.clone(),
                };
                if rows.is_empty() {
                    return Ok(None);
                }
                let (segment, kind) = (segment.clone(), *kind);
                Some(match change {
                    Change::Entered { .. } => Change::Entered {
                        segment,
                        kind,
                        ids: rows,
                    },
                    _ => Change::Left {
                        segment,
                        kind,
                        ids: rows,
                    },
                })
            }
            Change::Merged { kind, other, .. } | Change::Unmerged { kind, other, .. } => {
                let survivor = match change.target() {
                    Some((_, row)) => self.sees(*kind, row)?,
                    None => false,
                };
                (survivor && self.sees(*kind, *other)?).then(|| change.clone())
            }
            _ => match change.target() {
                Some((kind, row)) if !self.sees(kind, row)? => None,
                _ => Some(change.clone()),
            },
        })
    }

    /// Whether an identity-table entry is about records the principal sees: consent
    /// ledgers by their contact; merges and erasures only for a principal that sees
    /// every contact, since they name several.
    fn identity_seen(&self, key: &str) -> Result<bool> {
        let Some(contacts) = self.rows(EntityKind::Contact)? else {
            return Ok(true);
        };
        Ok(match key.strip_prefix(crate::storage::identity::CONSENT) {
            Some(rest) => rest
                .split('/')
                .next()
                .and_then(|row| row.parse::<u32>().ok())
                .is_some_and(|row| contacts.contains(row)),
            None => false,
        })
    }
}

impl<T: Source> Source for Scoped<T> {
    fn row_bytes(&self, kind: EntityKind, row: u32) -> Result<Option<Vec<u8>>> {
        if !self.sees(kind, row)? {
            return Ok(None);
        }
        let bytes = self.inner.row_bytes(kind, row)?;
        match (&self.redaction, bytes) {
            (Some(redaction), Some(bytes)) if kind == EntityKind::Contact => {
                Ok(Some(redaction.bytes(row, &bytes)?))
            }
            (_, bytes) => Ok(bytes),
        }
    }

    fn record<I: RecordId>(&self, id: I) -> Result<Option<I::Record>> {
        use crate::schema::Record as _;
        if !self.sees(I::Record::KIND, id.row())? {
            return Ok(None);
        }
        if self.redaction.is_some() && I::Record::KIND == EntityKind::Contact {
            return match self.row_bytes(I::Record::KIND, id.row())? {
                Some(bytes) => Ok(Some(decode_record(id.row(), &bytes)?)),
                None => Ok(None),
            };
        }
        self.inner.record(id)
    }

    fn rows_in(&self, kind: EntityKind) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self.inner.rows_in(kind)?;
        let rows: Vec<(u32, Vec<u8>)> = match self.rows(kind)? {
            Some(seen) => rows
                .into_iter()
                .filter(|(row, _)| seen.contains(*row))
                .collect(),
            None => rows,
        };
        match &self.redaction {
            Some(redaction) if kind == EntityKind::Contact => rows
                .into_iter()
                .map(|(row, bytes)| Ok((row, redaction.bytes(row, &bytes)?)))
                .collect(),
            _ => Ok(rows),
        }
    }

    fn bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        let Some(rows) = self.key_rows(key)? else {
            return self.wide_bitmap(key);
        };
        if let Some(seen) = self.seen.lock().get(key) {
            return Ok(Arc::clone(seen));
        }
        let seen = Arc::new(&*self.wide_bitmap(key)? & rows);
        self.seen.lock().insert(key.to_owned(), Arc::clone(&seen));
        Ok(seen)
    }

    /// Numeric indexes are narrowed like bitmaps: a range is not always intersected
    /// with the live set (`lifetime_value > 5 OR tag:vip`).
    fn bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        let Some(rows) = self.key_rows(base)? else {
            return self.wide_bsi(base);
        };
        if let Some(seen) = self.seen_bsi.lock().get(base) {
            return Ok(Arc::clone(seen));
        }
        let seen = Arc::new(self.wide_bsi(base)?.restrict(rows));
        self.seen_bsi
            .lock()
            .insert(base.to_owned(), Arc::clone(&seen));
        Ok(seen)
    }

    fn narrowing(&self, kind: EntityKind) -> Result<Option<&RoaringBitmap>> {
        self.rows(kind)
    }

    /// Personal fields stay out of reach when redacted, wide or not.
    fn wide_bitmap(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        if self.redaction.as_ref().is_some_and(|r| r.hides(key)) {
            return Ok(Arc::new(RoaringBitmap::new()));
        }
        self.inner.bitmap(key)
    }

    fn wide_bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        if self.redaction.as_ref().is_some_and(|r| r.hides(base)) {
            return Ok(Arc::new(Bsi::default()));
        }
        self.inner.bsi(base)
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = self.inner.keys_with_prefix(prefix)?;
        if let Some(redaction) = &self.redaction {
            keys.retain(|key| !redaction.hides(key));
        }
        Ok(keys)
    }

    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_bytes(name)
    }

    /// A unique key held by a record out of sight is free, as far as reading goes.
    fn unique_row(&self, field: &str, value: &str) -> Result<Option<u32>> {
        if self.redaction.is_some() && field == "contact.email" {
            return Ok(None);
        }
        let row = self.inner.unique_row(field, value)?;
        let kind = field.split('.').next().and_then(EntityKind::from_name);
        match (row, kind) {
            (Some(row), Some(kind)) if !self.sees(kind, row)? => Ok(None),
            (row, _) => Ok(row),
        }
    }

    fn history_entries(&self, kind: EntityKind, row: u32) -> Result<Vec<StageChange>> {
        if !self.sees(kind, row)? {
            return Ok(Vec::new());
        }
        self.inner.history_entries(kind, row)
    }

    fn segment_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.segment_bytes(name)
    }

    fn segment_names(&self) -> Result<Vec<String>> {
        self.inner.segment_names()
    }

    fn config(&self) -> Result<Arc<Config>> {
        self.inner.config()
    }

    fn change_batches(&self, after: u64, limit: usize) -> Result<Vec<Batch>> {
        let mut batches = self.inner.change_batches(after, limit)?;
        for batch in &mut batches {
            let mut kept = Vec::with_capacity(batch.events.len());
            for mut event in std::mem::take(&mut batch.events) {
                let Some(change) = self.event_seen(&event.change)? else {
                    continue;
                };
                event.change = change;
                if let Some(redaction) = &self.redaction {
                    redaction.change(&mut event.change);
                }
                kept.push(event);
            }
            batch.events = kept;
        }
        Ok(batches)
    }

    fn oldest_kept(&self) -> Result<u64> {
        self.inner.oldest_kept()
    }

    fn commit_counter(&self, key: &str) -> Result<Option<u64>> {
        self.inner.commit_counter(key)
    }

    fn consumer_list(&self) -> Result<Vec<(String, u64)>> {
        self.inner.consumer_list()
    }

    fn watched_list(&self) -> Result<Vec<(String, EntityKind)>> {
        self.inner.watched_list()
    }

    fn clock_now(&self) -> Timestamp {
        self.inner.clock_now()
    }

    fn identity_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if !self.identity_seen(key)? {
            return Ok(None);
        }
        self.inner.identity_bytes(key)
    }

    fn identity_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut kept = Vec::new();
        for (key, bytes) in self.inner.identity_entries(prefix)? {
            if self.identity_seen(&key)? {
                kept.push((key, bytes));
            }
        }
        Ok(kept)
    }
}

impl Database {
    /// Runs `f` on a read snapshot as `principal` sees it (see [`ScopedRead`]).
    ///
    /// # Errors
    /// The closure's error, or a storage failure on begin.
    pub fn read_as<T>(
        &self,
        principal: &Principal,
        f: impl FnOnce(&ScopedRead) -> Result<T>,
    ) -> Result<T> {
        let scoped = ScopedRead::new(self.begin_read()?, principal.clone())?;
        f(&scoped)
    }
}
