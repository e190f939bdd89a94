//! Merging two contacts into one and undoing it: the survivor takes the other's
//! related records, tags, roles, the field values the policy gives it and the further
//! stage; the other becomes a redirect; a lineage keeps what undoing needs.
//!
//! What each step writes, all in the caller's transaction:
//! - **merge**: every record referring to the other (orders, activities, deals and
//!   their participants, tasks; live or in the recycle bin) re-pointed to the survivor;
//!   the other written as a redirect (in the recycle bin, without the email if the
//!   survivor took it); the survivor with its new values and recomputed figures, a
//!   stage-history entry of kind [`ChangeKind::Merge`] if the stage moved; the lineage;
//!   the redirect; a [`Change::Merged`](crate::Change::Merged) event. The record events
//!   of all of these have cause [`Cause::Merge`].
//! - **unmerge**: the records the merge moved that still exist pointed back (restored
//!   byte for byte where nothing changed them since, else only the references the merge
//!   changed); the other as it was; from the survivor what came only from the other,
//!   unless changed since (byte for byte the survivor before the merge when nothing
//!   changed it since); both contacts' figures recomputed; the lineage marked undone;
//!   a [`Change::Unmerged`](crate::Change::Unmerged) event.

use std::collections::{BTreeMap, BTreeSet};

use super::WriteTransaction;
use super::lineage::{FieldRule, Lineage, MergePolicy, MovedRecord, Undone};
use super::lineage::{Redirect, lineage_of, redirect_of};
use crate::codec;
use crate::error::{Error, Result};
use crate::feed::Cause;
use crate::feed::stored::StoredChange;
use crate::index;
use crate::lifecycle::transition;
use crate::schema::{
    Consent, ConsentStatus, Contact, ContactId, ContactRole, EntityKind, KindVisitor, Record,
    RecordId, normalise_key,
};
use crate::storage::identity as keys;
use crate::storage::meta;
use crate::storage::source::{Source, decode_record};

/// A contact's latest state in each channel it has entries in.
fn latest_states<S: Source + ?Sized>(
    source: &S,
    row: u32,
) -> Result<BTreeMap<String, ConsentStatus>> {
    Ok(super::consent::state_of(source, row)?
        .into_iter()
        .map(|(channel, e)| (channel, e.consent.status))
        .collect())
}

/// One merged field: its name, whether a contact has no value in it, whether two
/// contacts hold the same value, and copying it from one contact to another.
struct MergedField {
    name: &'static str,
    empty: fn(&Contact) -> bool,
    same: fn(&Contact, &Contact) -> bool,
    copy: fn(&mut Contact, &Contact),
}

macro_rules! merged_fields {
    ($($field:ident: $empty:expr),* $(,)?) => {
        &[$(MergedField {
            name: stringify!($field),
            empty: |c| ($empty)(&c.$field),
            same: |a, b| a.$field == b.$field,
            copy: |to, from| to.$field = from.$field.clone(),
        }),*]
    };
}

/// The built-in fields a merge picks values for.
const MERGED_FIELDS: &[MergedField] = merged_fields!(
    name: |v: &String| v.trim().is_empty(),
    email: Option::is_none,
    phone: Option::is_none,
    region: Option::is_none,
    gender: Option::is_none,
    birth_year: Option::is_none,
    source: Option::is_none,
    owner: Option::is_none,
    account: Option::is_none,
    lifetime_value: |v: &crate::schema::Money| v.0 == 0,
);

/// Whether the merged value of a field comes from the other record.
fn take_other(rule: FieldRule, survivor_empty: bool, other_empty: bool, other_newer: bool) -> bool {
    if other_empty {
        return false;
    }
    match rule {
        FieldRule::Survivor => survivor_empty,
        FieldRule::Other => true,
        FieldRule::NewestNonEmpty => other_newer || survivor_empty,
    }
}

/// The survivor's values merged with the other's by `policy`; the names of the fields
/// taken from the other.
fn merge_fields(
    survivor: &mut Contact,
    other: &Contact,
    policy: &MergePolicy,
    other_newer: bool,
) -> Vec<String> {
    let mut taken = Vec::new();
    for field in MERGED_FIELDS {
        let take = take_other(
            policy.rule(field.name),
            (field.empty)(survivor),
            (field.empty)(other),
            other_newer,
        );
        if take && !(field.same)(survivor, other) {
            (field.copy)(survivor, other);
            taken.push(field.name.to_owned());
        }
    }
    for (name, value) in &other.custom {
        let field = format!("custom.{name}");
        let current = survivor.custom.get(name);
        if take_other(policy.rule(&field), current.is_none(), false, other_newer)
            && current != Some(value)
        {
            survivor.custom.insert(name.clone(), value.clone());
            taken.push(field);
        }
    }
    if other.unsubscribed && !survivor.unsubscribed {
        survivor.unsubscribed = true;
        taken.push("unsubscribed".into());
    }
    taken
}

/// Puts back on `current` the survivor's value of each field the merge took from the
/// other, where `current` still holds the other's value (`unsubscribed` follows the
/// email channel instead: see `unmerge_contacts`).
fn restore_fields(current: &mut Contact, lineage: &Lineage) {
    let (before, other) = (&lineage.survivor_before, &lineage.other_before);
    for name in &lineage.fields_taken {
        if let Some(custom) = name.strip_prefix("custom.") {
            if current.custom.get(custom) == other.custom.get(custom) {
                match before.custom.get(custom) {
                    Some(value) => current.custom.insert(custom.to_owned(), value.clone()),
                    None => current.custom.remove(custom),
                };
            }
        } else if let Some(field) = MERGED_FIELDS.iter().find(|f| f.name == name)
            && (field.same)(current, other)
        {
            (field.copy)(current, before);
        }
    }
}

/// Re-points one record of a kind known at run time (see [`MovedRecord`]).
struct Repoint<'a> {
    tx: &'a mut WriteTransaction,
    row: u32,
    target: EntityKind,
    from: u32,
    to: u32,
}

impl KindVisitor for Repoint<'_> {
    type Output = Result<Option<MovedRecord>>;

    fn visit<R: Record>(self) -> Self::Output {
        let Some(before) = self.tx.row_bytes(R::KIND, self.row)? else {
            return Ok(None);
        };
        let old: R = decode_record(self.row, &before)?;
        let mut new = old.clone();
        if !new.repoint(self.target, self.from, self.to) {
            return Ok(None);
        }
        new.set_updated_at(self.tx.now());
        self.tx.write_row(self.row, Some(&old), &new)?;
        Ok(Some(MovedRecord {
            kind: R::KIND,
            id: self.row,
            before,
            after: codec::encode(&new),
        }))
    }
}

/// Points one moved record back (see [`MovedRecord`]).
struct PointBack<'a> {
    tx: &'a mut WriteTransaction,
    moved: &'a MovedRecord,
    target: EntityKind,
    survivor: u32,
    other: u32,
}

impl KindVisitor for PointBack<'_> {
    type Output = Result<()>;

    fn visit<R: Record>(self) -> Self::Output {
        let row = self.moved.id;
        let Some(current) = self.tx.row_bytes(R::KIND, row)? else {
            return Ok(()); // purged since
        };
        let old: R = decode_record(row, &current)?;
        let before: R = decode_record(row, &self.moved.before)?;
        let new = if current == self.moved.after {
            before
        } else {
            let mut new = old.clone();
            if !new.repoint_back(&before, self.target, self.survivor, self.other) {
                return Ok(());
            }
            new.set_updated_at(self.tx.now());
            new
        };
        self.tx.write_row(row, Some(&old), &new)
    }
}

impl WriteTransaction {
    /// Merges contact `other` into contact `survivor` (see [`MergePolicy`] for the
    /// values) and returns the merge's number. Afterwards `other` is in the recycle bin
    /// as a redirect: [`Snapshot::resolve`](crate::Snapshot::resolve) and
    /// [`Snapshot::contact_by_email`](crate::Snapshot::contact_by_email) lead to
    /// the survivor, and writes to it are refused with [`Error::Merged`].
    /// [`unmerge`](Self::unmerge) undoes it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a record merged with itself; [`Error::NotFound`],
    /// [`Error::Deleted`], or [`Error::Merged`] for either record; the survivor's new
    /// values checked as an update's are ([`Error::BrokenRelation`] …). Nothing is
    /// written then.
    pub fn merge(
        &mut self,
        survivor: ContactId,
        other: ContactId,
        policy: &MergePolicy,
    ) -> Result<u64> {
        self.guarded(|tx| tx.merge_contacts(survivor, other, policy))
    }

    /// Undoes merge `merge` (see the module docs of what it writes).
    ///
    /// # Errors
    /// [`Error::UnknownMerge`]; [`Error::UnmergeConflict`] when it was undone already,
    /// when the survivor has been merged into another record since (undo that first),
    /// erased, deleted or purged, or when the other's email is held by another contact
    /// now; the restored records checked as updates are. Nothing is written then.
    pub fn unmerge(&mut self, merge: u64) -> Result<()> {
        self.guarded(|tx| tx.unmerge_contacts(merge))
    }

    /// A contact that exists, is live and is no redirect.
    fn mergeable(&mut self, id: ContactId) -> Result<Contact> {
        self.live_record(id)
    }

    fn merge_contacts(
        &mut self,
        survivor_id: ContactId,
        other_id: ContactId,
        policy: &MergePolicy,
    ) -> Result<u64> {
        if survivor_id == other_id {
            return Err(Error::InvalidArgument(format!(
                "contact {} cannot be merged into itself",
                survivor_id.row()
            )));
        }
        let survivor_before = self.mergeable(survivor_id)?;
        let other_before = self.mergeable(other_id)?;
        let (s, o) = (survivor_id.row(), other_id.row());
        let now = self.now();

        let mut survivor = survivor_before.clone();
        let other_newer = other_before.updated_at > survivor_before.updated_at;
        let fields_taken = merge_fields(&mut survivor, &other_before, policy, other_newer);
        let tags_added: BTreeSet<String> = other_before
            .tags
            .difference(&survivor_before.tags)
            .cloned()
            .collect();
        let roles_added: BTreeSet<ContactRole> = other_before
            .roles
            .difference(&survivor_before.roles)
            .copied()
            .collect();
        survivor.tags.extend(tags_added.iter().cloned());
        survivor.roles.extend(roles_added.iter().copied());
        let config = self.config_arc()?;
        let machine = &config.machines.contact;
        let further = match (
            machine.position(&survivor_before.stage),
            machine.position(&other_before.stage),
        ) {
            (Some(mine), Some(theirs)) => theirs > mine,
            (None, Some(_)) => true,
            _ => false,
        };
        let stage = further.then(|| (survivor_before.stage.clone(), other_before.stage.clone()));
        if let Some((_, to)) = &stage {
            survivor.stage = to.clone();
        }
        let email_taken = fields_taken.iter().any(|f| f == "email");
        // Checked before the first write; the other's email, if taken, is released by
        // writing the other first.
        let mut probe = survivor.clone();
        if email_taken {
            probe.email = survivor_before.email.clone();
        }
        self.check_record(&probe, Some(s))?;

        let merge = self.next_merge()?;
        self.with_cause(Cause::Merge { merge }, |tx| {
            let moved = tx.repoint_all(EntityKind::Contact, o, s)?;
            let mut redirected = other_before.clone();
            redirected.deleted_at = Some(now);
            redirected.updated_at = now;
            if email_taken {
                redirected.email = None;
            }
            redirected.stats = tx.contact_stats(other_id, None)?;
            tx.write_row(o, Some(&other_before), &redirected)?;
            survivor.stats = tx.contact_stats(survivor_id, None)?;
            survivor.updated_at = now;
            tx.write_row(s, Some(&survivor_before), &survivor)?;
            let denials_taken = tx.take_denials(o, s, merge)?;
            if let Some((from, to)) = &stage {
                let reason = format!("merged contact {o} (merge {merge})");
                let change = transition::merged(from, to, now, &tx.actor, reason, false);
                tx.append_history(EntityKind::Contact, s, &change)?;
            }
            let lineage = Lineage {
                merge,
                kind: EntityKind::Contact,
                survivor: s,
                other: o,
                at: now,
                actor: tx.actor.clone(),
                policy: policy.clone(),
                survivor_before,
                other_before,
                fields_taken,
                tags_added,
                roles_added,
                stage,
                denials_taken,
                moved,
                undone: None,
                erased: None,
                survivor_after: codec::encode(&survivor),
            };
            tx.put_identity(&keys::merge(merge), Some(&codec::encode(&lineage)))?;
            let redirect = Redirect { into: s, merge };
            tx.put_identity(
                &keys::redirect(EntityKind::Contact, o),
                Some(&codec::encode(&redirect)),
            )?;
            tx.log(StoredChange::Merged {
                kind: EntityKind::Contact,
                survivor: s,
                other: o,
                merge,
            });
            Ok(merge)
        })
    }

    fn unmerge_contacts(&mut self, merge: u64) -> Result<()> {
        let mut lineage = lineage_of(self, merge)?;
        let conflict = |reason: String| Error::UnmergeConflict { merge, reason };
        if let Some(undone) = &lineage.undone {
            return Err(conflict(format!("it was undone at {}", undone.at)));
        }
        if let Some(erasure) = lineage.erased {
            return Err(conflict(format!(
                "erasure {erasure} removed the personal data it would restore"
            )));
        }
        let (s, o) = (lineage.survivor, lineage.other);
        let (survivor_id, other_id) = (ContactId::new(s), ContactId::new(o));
        if let Some(later) = redirect_of(self, EntityKind::Contact, s)? {
            return Err(conflict(format!(
                "contact {s} was merged into contact {} by merge {}; undo that merge first",
                later.into, later.merge
            )));
        }
        let Some(current) = self.record(survivor_id)? else {
            return Err(conflict(format!("contact {s} no longer exists")));
        };
        if current.deleted_at.is_some() {
            return Err(conflict(format!(
                "contact {s} is deleted; restore it first"
            )));
        }
        match redirect_of(self, EntityKind::Contact, o)? {
            Some(redirect) if redirect.merge == merge => {}
            _ => {
                return Err(conflict(format!(
                    "contact {o} is no longer this merge's redirect"
                )));
            }
        }
        let Some(redirected) = self.record(other_id)? else {
            return Err(conflict(format!("contact {o} no longer exists")));
        };
        let now = self.now();

        // The survivor without what came only from the other.
        let survivor_after: Contact = codec::decode("identity", &merge, &lineage.survivor_after)?;
        let mut untouched = current == survivor_after;
        let mut survivor = if untouched {
            lineage.survivor_before.clone()
        } else {
            let mut survivor = current.clone();
            for tag in &lineage.tags_added {
                survivor.tags.remove(tag);
            }
            for role in &lineage.roles_added {
                survivor.roles.remove(role);
            }
            restore_fields(&mut survivor, &lineage);
            survivor
        };
        // The denials the merge carried over whose entries are still the latest go
        // back; the flag follows the email channel, so it goes back only with it.
        let states = super::consent::state_of(self, s)?;
        let source = format!("merge {merge}");
        let given_back: Vec<(String, ConsentStatus)> = lineage
            .denials_taken
            .iter()
            .filter(|(channel, _)| {
                states
                    .get(channel)
                    .is_some_and(|e| e.consent.source.as_deref() == Some(source.as_str()))
            })
            .cloned()
            .collect();
        if lineage.fields_taken.iter().any(|f| f == "unsubscribed") {
            let email_back = given_back.iter().any(|(channel, _)| channel == "email");
            survivor.unsubscribed = if email_back {
                lineage.survivor_before.unsubscribed
            } else {
                current.unsubscribed
            };
            untouched &= survivor.unsubscribed == lineage.survivor_before.unsubscribed;
        }
        let stage_back = match &lineage.stage {
            Some((from, to)) if !untouched && current.stage == *to => {
                survivor.stage = from.clone();
                Some((to.clone(), from.clone()))
            }
            Some((from, to)) if untouched => Some((to.clone(), from.clone())),
            _ => None,
        };
        // The other's email must be free, or about to be released by the survivor.
        let mut other = lineage.other_before.clone();
        let mut probe = other.clone();
        if let Some(email) = &other.email {
            let key = normalise_key(email);
            let releasing = survivor.email.as_deref().map(normalise_key) != Some(key.clone());
            match self.unique_row("contact.email", &key)? {
                None => {}
                Some(row) if row == o => {}
                Some(row) if row == s && releasing => probe.email = None,
                Some(row) => {
                    return Err(conflict(format!(
                        "its email {} is held by contact {row} now",
                        crate::error::quote(email)
                    )));
                }
            }
        }
        self.check_record(&survivor, Some(s))?;
        self.check_record(&probe, Some(o))?;

        self.with_cause(Cause::Merge { merge }, |tx| {
            for moved in &lineage.moved {
                moved.kind.visit(PointBack {
                    tx: &mut *tx,
                    moved,
                    target: EntityKind::Contact,
                    survivor: s,
                    other: o,
                })?;
            }
            let figures = tx.contact_stats(survivor_id, None)?;
            if !untouched || figures != survivor.stats {
                survivor.stats = figures;
                survivor.updated_at = now;
            }
            tx.write_row(s, Some(&current), &survivor)?;
            tx.give_back_denials(s, merge, &given_back)?;
            if let Some((from, to)) = stage_back {
                let reason = format!("undid merge {merge} of contact {o}");
                let change = transition::merged(&from, &to, now, &tx.actor, reason, true);
                tx.append_history(EntityKind::Contact, s, &change)?;
            }
            let figures = tx.contact_stats(other_id, None)?;
            if figures != other.stats {
                other.stats = figures;
                other.updated_at = now;
            }
            tx.write_row(o, Some(&redirected), &other)?;
            lineage.undone = Some(Undone {
                at: now,
                actor: tx.actor.clone(),
            });
            tx.put_identity(&keys::merge(merge), Some(&codec::encode(&lineage)))?;
            tx.put_identity(&keys::redirect(EntityKind::Contact, o), None)?;
            tx.log(StoredChange::Unmerged {
                kind: EntityKind::Contact,
                survivor: s,
                other: o,
                merge,
            });
            Ok(())
        })
    }

    /// Denies the survivor every consent channel the other's state denies and the
    /// survivor's does not; returns those channels with the survivor's state before.
    fn take_denials(
        &mut self,
        other: u32,
        survivor: u32,
        merge: u64,
    ) -> Result<Vec<(String, ConsentStatus)>> {
        let mut theirs = latest_states(self, other)?;
        // The flag and the email channel are kept in step; a file written before the
        // ledger existed may hold only the flag.
        if self
            .record(ContactId::new(other))?
            .is_some_and(|c| c.unsubscribed)
        {
            theirs.insert("email".into(), ConsentStatus::Denied);
        }
        let mine = latest_states(self, survivor)?;
        let mut taken = Vec::new();
        for (channel, status) in theirs {
            let before = mine
                .get(&channel)
                .copied()
                .unwrap_or(ConsentStatus::Unknown);
            if status == ConsentStatus::Denied && before != ConsentStatus::Denied {
                let consent = Consent {
                    source: Some(format!("merge {merge}")),
                    ..Consent::new(channel.clone(), ConsentStatus::Denied)
                };
                self.append_consent(survivor, consent)?;
                taken.push((channel, before));
            }
        }
        Ok(taken)
    }

    /// Puts back the survivor's state before the merge in each of `channels`.
    fn give_back_denials(
        &mut self,
        survivor: u32,
        merge: u64,
        channels: &[(String, ConsentStatus)],
    ) -> Result<()> {
        for (channel, before) in channels {
            let consent = Consent {
                source: Some(format!("unmerge {merge}")),
                ..Consent::new(channel.clone(), *before)
            };
            self.append_consent(survivor, consent)?;
        }
        Ok(())
    }

    /// Re-points every record referring to row `from` of `kind` to row `to`.
    fn repoint_all(&mut self, kind: EntityKind, from: u32, to: u32) -> Result<Vec<MovedRecord>> {
        let mut seen = BTreeSet::new();
        let mut moved = Vec::new();
        let target = from.to_string();
        for (referrer_kind, field) in kind.referrers() {
            let rows = self.bitmap(&index::cat_key(referrer_kind, field, &target))?;
            for row in rows.iter() {
                if (referrer_kind, row) == (kind, from) || !seen.insert((referrer_kind, row)) {
                    continue;
                }
                let repoint = Repoint {
                    tx: &mut *self,
                    row,
                    target: kind,
                    from,
                    to,
                };
                if let Some(record) = referrer_kind.visit(repoint)? {
                    moved.push(record);
                }
            }
        }
        Ok(moved)
    }

    /// The next merge number, taken.
    fn next_merge(&mut self) -> Result<u64> {
        let last: u64 = match self.meta_bytes(meta::LAST_MERGE)? {
            Some(bytes) => codec::decode("meta", &meta::LAST_MERGE, &bytes)?,
            None => 0,
        };
        let next = last + 1;
        self.put_meta(meta::LAST_MERGE, &codec::encode(&next))?;
        Ok(next)
    }

    /// Writes (`Some`) or removes (`None`) an identity entry.
    pub(super) fn put_identity(&mut self, key: &str, bytes: Option<&[u8]>) -> Result<()> {
        self.mark_changed();
        self.note_identity(key)?;
        let mut table = self.txn()?.open_table(crate::storage::IDENTITY)?;
        match bytes {
            Some(bytes) => table.insert(key, bytes)?,
            None => table.remove(key)?,
        };
        Ok(())
    }

    /// [`Error::Merged`] if row `row` of `R` is a merged record's redirect.
    pub(super) fn refuse_merged<R: Record>(&self, row: u32) -> Result<()> {
        match redirect_of(self, R::KIND, row)? {
            Some(redirect) => Err(Error::Merged {
                kind: R::KIND,
                id: row,
                into: redirect.into,
                merge: redirect.merge,
            }),
            None => Ok(()),
        }
    }
}
