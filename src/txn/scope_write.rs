//! Scoped writes: a write transaction as one principal sees it ([`ScopedWrite`]), and
//! the writes that shape what principals see (shares, reporting lines).
//!
//! A scoped write reads as a [`ScopedRead`] does and offers the record writes: each
//! refuses a record out of sight exactly as one that does not exist
//! ([`Error::NotFound`]; a relation to one is [`Error::BrokenRelation`]) before it
//! writes anything. A natural key held by a record out of sight is
//! [`Error::Taken`]: the value is in use, and which record holds it is not said. A
//! record the principal creates stays in its sight: when its owner is not in the
//! principal's reach (no owner, another rep's, or the one the assignment rules chose),
//! it is shared with the principal in the same transaction. A reassignment out of the
//! principal's reach takes the record out of its sight, as in any CRM. Configuration
//! (fields, machines, segments, assignment rules, reporting lines, consent channels)
//! and the bulk loader are the host's: they are written through an unscoped
//! transaction.
//!
//! Shares are bitmaps written in the transaction's index delta, so they commit with the
//! rows.
//!
//! [`ScopedRead`]: crate::ScopedRead
//! [`Error::NotFound`]: crate::Error::NotFound
//! [`Error::BrokenRelation`]: crate::Error::BrokenRelation
//! [`Error::Taken`]: crate::Error::Taken

use super::scope::Scoped;
use super::{Erasure, MergePolicy, StagedId, Upserted, WriteTransaction};
use crate::access::{self, Grantee, Principal};
use crate::codec;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::schema::normalise_key;
use crate::schema::{
    Consent, Contact, ContactId, EntityKind, OwnerId, Record, RecordId, RecordInternal, Stage,
    Timestamp,
};
use crate::storage::meta;
use crate::storage::source::Source;
use crate::txn::Snapshot;

/// A write transaction as one principal sees it: every [`Snapshot`] read, and the
/// record writes, each refusing what the principal does not see (see the module docs
/// of `txn::scope_write`).
///
/// [`Snapshot`]: crate::Snapshot
pub type ScopedWrite<'t> = Scoped<&'t mut WriteTransaction>;

impl Database {
    /// Runs `f` in a write transaction as `principal` sees it: commits if it returns
    /// `Ok`, rolls back otherwise.
    ///
    /// # Errors
    /// The closure's error, or a storage failure on begin or commit.
    pub fn write_as<T, E: From<Error>>(
        &self,
        principal: &Principal,
        f: impl FnOnce(&mut ScopedWrite<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin_write()?;
        let value = f(&mut tx.scoped(principal)?)?;
        tx.commit()?;
        Ok(value)
    }
}

impl WriteTransaction {
    /// This transaction as `principal` sees it, for as long as the borrow lasts.
    ///
    /// # Errors
    /// A storage or decode failure while reading what the principal sees.
    pub fn scoped(&mut self, principal: &Principal) -> Result<ScopedWrite<'_>> {
        Scoped::over(self, principal.clone())
    }
}

impl Scoped<&mut WriteTransaction> {
    /// Refuses a record out of sight as one that does not exist.
    fn in_sight(&self, kind: EntityKind, row: u32) -> Result<()> {
        if self.sees(kind, row)? {
            Ok(())
        } else {
            Err(Error::NotFound { kind, id: row })
        }
    }

    /// An error as the principal may read it: a merged record whose survivor is out of
    /// sight is only deleted, since the survivor and the merge are not its to know.
    fn hide(&self, error: Error) -> Error {
        match error {
            Error::Merged { kind, id, into, .. } if !self.sees(kind, into).unwrap_or(false) => {
                Error::Deleted { kind, id }
            }
            other => other,
        }
    }

    /// Refuses what a write of `record` (replacing `old` at `row`) would reveal: a new
    /// relation to a record out of sight, or a natural key held by one.
    fn check_reveals<R: Record>(
        &self,
        record: &R,
        old: Option<&R>,
        row: Option<u32>,
    ) -> Result<()> {
        let before = old.map(RecordInternal::references).unwrap_or_default();
        for (target_kind, target_id) in record.references() {
            if !before.contains(&(target_kind, target_id)) && !self.sees(target_kind, target_id)? {
                return Err(Error::BrokenRelation {
                    kind: R::KIND,
                    target_kind,
                    target_id,
                });
            }
        }
        for (field, value) in record.unique_keys() {
            if let Some(holder) = self.inner.unique_row(field, &value)?
                && Some(holder) != row
                && !self.sees(R::KIND, holder)?
            {
                return Err(Error::Taken {
                    kind: R::KIND,
                    field,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Runs `write` on a record in sight (refused as not found otherwise), with its
    /// errors as the principal may read them, and follows the write.
    fn on_record<T>(
        &mut self,
        kind: EntityKind,
        row: u32,
        write: impl FnOnce(&mut WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.in_sight(kind, row)?;
        let value = write(self.inner).map_err(|e| self.hide(e))?;
        self.written(kind, row)?;
        Ok(value)
    }

    /// After a write of row `row` of `kind`: forgets the intersections kept, and works
    /// out again whether the row is seen.
    fn written(&mut self, kind: EntityKind, row: u32) -> Result<()> {
        self.forget();
        let inner: &WriteTransaction = self.inner;
        self.visibility.recheck(inner, kind, row)?;
        Ok(())
    }

    /// Sets who is making the changes (see [`WriteTransaction::set_actor`]).
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.inner.set_actor(actor);
    }

    /// The transaction clock's current time.
    pub fn now(&self) -> Timestamp {
        self.inner.now()
    }

    /// Inserts a record (see [`WriteTransaction::insert`]); it stays in the principal's
    /// sight, shared with it when its owner is out of the principal's reach.
    ///
    /// # Errors
    /// As [`WriteTransaction::insert`]; [`Error::BrokenRelation`] for a relation to a
    /// record out of sight; [`Error::Taken`] for a natural key held by one;
    /// [`Error::InvalidArgument`] for a kind the principal cannot see (orders, unless
    /// it sees everything).
    pub fn insert<R: Record>(&mut self, record: R) -> Result<R::Id> {
        let kind = R::KIND;
        if self.visibility.narrows(kind) && access::owner_field(kind).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{kind} records are written by a principal that sees every record"
            )));
        }
        self.check_reveals(&record, None, None)?;
        let id = self.inner.insert(record).map_err(|e| self.hide(e))?;
        let row = id.row();
        self.written(kind, row)?;
        if !self.sees(kind, row)?
            && let Some(grantee) = self.principal.grantee()
        {
            self.inner
                .delta
                .set_key(&access::share_key(kind, &grantee), row, true);
            self.written(kind, row)?;
        }
        Ok(id)
    }

    /// Replaces a record in sight (see [`WriteTransaction::update`]). A principal that
    /// does not read personal fields does not write them either: the stored ones are
    /// kept.
    ///
    /// # Errors
    /// As [`WriteTransaction::update`], with a record out of sight [`Error::NotFound`],
    /// and as [`insert`](Self::insert) for what the new version refers to.
    pub fn update<I: RecordId>(&mut self, id: I, mut record: I::Record) -> Result<()> {
        let kind = I::Record::KIND;
        self.in_sight(kind, id.row())?;
        let old = self.inner.get(id)?;
        self.keep_personal(id.row(), &mut record, &old)?;
        self.check_reveals(&record, Some(&old), Some(id.row()))?;
        self.inner.update(id, record).map_err(|e| self.hide(e))?;
        self.written(kind, id.row())
    }

    /// Reads a record in sight (redacted, for a principal that does not read personal
    /// fields), lets `f` change it, and writes it back as [`update`](Self::update)
    /// does.
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub fn modify<I: RecordId>(&mut self, id: I, f: impl FnOnce(&mut I::Record)) -> Result<()> {
        let mut record = self.get(id)?;
        f(&mut record);
        self.update(id, record)
    }

    /// Inserts a contact, or replaces the one in sight holding its email.
    ///
    /// # Errors
    /// As [`WriteTransaction::upsert_contact_by_email`]; [`Error::Taken`] when a
    /// contact out of sight holds the email.
    pub fn upsert_contact_by_email(&mut self, contact: Contact) -> Result<(ContactId, Upserted)> {
        let holder = match contact.email.as_deref() {
            Some(email) => self.inner.contact_by_email(email)?,
            None => return self.inner.upsert_contact_by_email(contact),
        };
        match holder {
            Some(id) if self.sees(EntityKind::Contact, id.row())? => {
                self.update(id, contact)?;
                Ok((id, Upserted::Updated))
            }
            Some(_) => Err(Error::Taken {
                kind: EntityKind::Contact,
                field: "contact.email",
                value: normalise_key(contact.email.as_deref().unwrap_or_default()),
            }),
            None => Ok((self.insert(contact)?, Upserted::Inserted)),
        }
    }

    /// Adds a tag to a record in sight.
    ///
    /// # Errors
    /// As [`WriteTransaction::add_tag`]; a record out of sight is [`Error::NotFound`].
    pub fn add_tag<I: RecordId>(&mut self, id: I, tag: &str) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.add_tag(id, tag))
    }

    /// Removes a tag from a record in sight.
    ///
    /// # Errors
    /// As [`add_tag`](Self::add_tag).
    pub fn remove_tag<I: RecordId>(&mut self, id: I, tag: &str) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.remove_tag(id, tag))
    }

    /// Moves a contact or deal in sight to another stage.
    ///
    /// # Errors
    /// As [`WriteTransaction::move_stage`]; a record out of sight is
    /// [`Error::NotFound`].
    pub fn move_stage(&mut self, id: impl Into<StagedId>, to: impl Into<Stage>) -> Result<()> {
        let id = id.into();
        let (kind, row) = id.kind_row();
        self.on_record(kind, row, |tx| tx.move_stage(id, to))
    }

    /// Moves a contact or deal in sight backward with a reason.
    ///
    /// # Errors
    /// As [`WriteTransaction::regress`] and [`move_stage`](Self::move_stage).
    pub fn regress(
        &mut self,
        id: impl Into<StagedId>,
        to: impl Into<Stage>,
        reason: &str,
    ) -> Result<()> {
        let id = id.into();
        let (kind, row) = id.kind_row();
        self.on_record(kind, row, |tx| tx.regress(id, to, reason))
    }

    /// Moves a record in sight out of a terminal stage with a reason.
    ///
    /// # Errors
    /// As [`WriteTransaction::reopen`] and [`move_stage`](Self::move_stage).
    pub fn reopen(
        &mut self,
        id: impl Into<StagedId>,
        to: impl Into<Stage>,
        reason: &str,
    ) -> Result<()> {
        let id = id.into();
        let (kind, row) = id.kind_row();
        self.on_record(kind, row, |tx| tx.reopen(id, to, reason))
    }

    /// Moves a record in sight to the recycle bin.
    ///
    /// # Errors
    /// As [`WriteTransaction::soft_delete`]; a record out of sight is
    /// [`Error::NotFound`].
    pub fn soft_delete<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.soft_delete(id))
    }

    /// Brings a record in sight back from the recycle bin.
    ///
    /// # Errors
    /// As [`soft_delete`](Self::soft_delete).
    pub fn restore<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.restore(id))
    }

    /// Removes a record in sight for good.
    ///
    /// # Errors
    /// As [`soft_delete`](Self::soft_delete) and [`WriteTransaction::purge`].
    pub fn purge<I: RecordId>(&mut self, id: I) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.purge(id))
    }

    /// Runs the assignment rules again for a lead in sight; a new owner out of the
    /// principal's reach takes it out of sight.
    ///
    /// # Errors
    /// As [`WriteTransaction::requalify`]; a contact out of sight is
    /// [`Error::NotFound`].
    pub fn requalify(&mut self, id: ContactId) -> Result<Option<OwnerId>> {
        self.on_record(EntityKind::Contact, id.row(), |tx| tx.requalify(id))
    }

    /// Records a consent entry for a contact in sight.
    ///
    /// # Errors
    /// As [`WriteTransaction::record_consent`]; a contact out of sight is
    /// [`Error::NotFound`].
    pub fn record_consent(&mut self, contact: ContactId, consent: Consent) -> Result<()> {
        self.on_record(EntityKind::Contact, contact.row(), |tx| {
            tx.record_consent(contact, consent)
        })
    }

    /// Merges two contacts in sight (see [`WriteTransaction::merge`]).
    ///
    /// # Errors
    /// As [`WriteTransaction::merge`]; a contact out of sight is [`Error::NotFound`].
    pub fn merge(
        &mut self,
        survivor: ContactId,
        other: ContactId,
        policy: &MergePolicy,
    ) -> Result<u64> {
        self.in_sight(EntityKind::Contact, other.row())?;
        let merge = self.on_record(EntityKind::Contact, survivor.row(), |tx| {
            tx.merge(survivor, other, policy)
        })?;
        self.written(EntityKind::Contact, other.row())?;
        Ok(merge)
    }

    /// Undoes a merge the principal sees (merges are seen by a principal that sees
    /// every contact, since they name two).
    ///
    /// # Errors
    /// As [`WriteTransaction::unmerge`]; a merge out of sight is
    /// [`Error::UnknownMerge`].
    pub fn unmerge(&mut self, merge: u64) -> Result<()> {
        let lineage = self.lineage(merge)?;
        self.inner.unmerge(merge)?;
        self.written(lineage.kind, lineage.survivor)?;
        self.written(lineage.kind, lineage.other)
    }

    /// Erases a person whose contact is in sight (see [`WriteTransaction::erase`]).
    ///
    /// # Errors
    /// As [`WriteTransaction::erase`]; a contact out of sight is [`Error::NotFound`].
    pub fn erase(&mut self, contact: ContactId, reason: &str) -> Result<Erasure> {
        self.on_record(EntityKind::Contact, contact.row(), |tx| {
            tx.erase(contact, reason)
        })
    }

    /// Shares a record in sight with `grantee`.
    ///
    /// # Errors
    /// As [`WriteTransaction::share`]; a record out of sight is [`Error::NotFound`].
    pub fn share<I: RecordId>(&mut self, id: I, grantee: &Grantee) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.share(id, grantee))
    }

    /// Takes back a share of a record in sight; taking back the share that kept it in
    /// sight takes it out.
    ///
    /// # Errors
    /// As [`share`](Self::share).
    pub fn unshare<I: RecordId>(&mut self, id: I, grantee: &Grantee) -> Result<()> {
        self.on_record(I::Record::KIND, id.row(), |tx| tx.unshare(id, grantee))
    }

    /// Who a record in sight is shared with.
    ///
    /// # Errors
    /// A record out of sight is [`Error::NotFound`]; a storage failure.
    pub fn shares<I: RecordId>(&self, id: I) -> Result<Vec<Grantee>> {
        // A scoped `get`: out of sight and nonexistent alike are not found.
        self.get(id)?;
        shares_of(&*self.inner, id)
    }
}

impl WriteTransaction {
    /// Shares record `id` with `grantee`, who then sees it as if they owned it.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidArgument`] for a kind without owners (orders,
    /// products, owners) or an empty team name; [`Error::BrokenRelation`] for an owner
    /// grantee that does not exist.
    pub fn share<I: RecordId>(&mut self, id: I, grantee: &Grantee) -> Result<()> {
        self.set_share(id, grantee, true)
    }

    /// Takes a share back; taking back one that was never given does nothing.
    ///
    /// # Errors
    /// As [`share`](Self::share).
    pub fn unshare<I: RecordId>(&mut self, id: I, grantee: &Grantee) -> Result<()> {
        self.set_share(id, grantee, false)
    }

    fn set_share<I: RecordId>(&mut self, id: I, grantee: &Grantee, on: bool) -> Result<()> {
        use crate::schema::Record as _;
        let kind = I::Record::KIND;
        self.guarded(|tx| {
            if access::owner_field(kind).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "{kind} records have no owner and are not shared"
                )));
            }
            tx.get(id)?;
            match grantee {
                Grantee::Owner(owner) => {
                    if tx.find(*owner)?.is_none() {
                        return Err(Error::BrokenRelation {
                            kind,
                            target_kind: EntityKind::Owner,
                            target_id: owner.get(),
                        });
                    }
                }
                Grantee::Team(team) if team.trim().is_empty() => {
                    return Err(Error::InvalidArgument("a team name is not empty".into()));
                }
                Grantee::Team(_) => {}
            }
            tx.delta
                .set_key(&access::share_key(kind, grantee), id.row(), on);
            Ok(())
        })
    }

    /// Who a record is shared with.
    ///
    /// # Errors
    /// A storage failure.
    pub fn shares<I: RecordId>(&self, id: I) -> Result<Vec<Grantee>> {
        shares_of(self, id)
    }

    /// Sets whom `owner` reports to (`None`: nobody); a manager sees their reports'
    /// records.
    ///
    /// # Errors
    /// [`Error::BrokenRelation`] for an owner that does not exist;
    /// [`Error::InvalidArgument`] for a line that would make a cycle.
    pub fn set_manager(&mut self, owner: OwnerId, manager: Option<OwnerId>) -> Result<()> {
        self.guarded(|tx| {
            for id in std::iter::once(owner).chain(manager) {
                if tx.find(id)?.is_none() {
                    return Err(Error::BrokenRelation {
                        kind: EntityKind::Owner,
                        target_kind: EntityKind::Owner,
                        target_id: id.get(),
                    });
                }
            }
            let config = tx.config_arc()?;
            let mut next = (*config).clone();
            match manager {
                Some(manager) => {
                    // Up from the manager: reaching `owner` would close a cycle.
                    let mut at = Some(manager.get());
                    for _ in 0..=next.reports_to.len() {
                        match at {
                            Some(up) if up == owner.get() => {
                                return Err(Error::InvalidArgument(format!(
                                    "owner {} already manages owner {} (directly or not)",
                                    owner.get(),
                                    manager.get()
                                )));
                            }
                            Some(up) => at = next.reports_to.get(&up).copied(),
                            None => break,
                        }
                    }
                    next.reports_to.insert(owner.get(), manager.get());
                }
                None => {
                    next.reports_to.remove(&owner.get());
                }
            }
            tx.put_meta(meta::REPORTS, &codec::encode(&next.reports_to))?;
            tx.set_config(next);
            Ok(())
        })
    }
}

/// The grantees a record is shared with, read from the share bitmaps.
fn shares_of<S: Source + ?Sized, I: RecordId>(snap: &S, id: I) -> Result<Vec<Grantee>> {
    use crate::schema::Record as _;
    let kind = I::Record::KIND;
    let mut out = Vec::new();
    for (field, make) in [
        (
            access::SHARE_OWNER,
            (|v: &str| v.parse().ok().map(|o| Grantee::Owner(OwnerId::new(o))))
                as fn(&str) -> Option<Grantee>,
        ),
        (access::SHARE_TEAM, |v: &str| {
            Some(Grantee::Team(v.to_owned()))
        }),
    ] {
        let prefix = crate::index::cat_prefix(kind, field);
        for key in snap.keys_with_prefix(&prefix)? {
            if snap.bitmap(&key)?.contains(id.row())
                && let Some(grantee) = make(&key[prefix.len()..])
            {
                out.push(grantee);
            }
        }
    }
    Ok(out)
}
