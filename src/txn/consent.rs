//! The consent ledger: per contact and channel, entries of granted, denied or unknown
//! with a lawful basis, a source and a time. The latest entry of a channel is the
//! contact's state in it; every entry is kept and readable.
//!
//! The state is indexed as the bitmaps `consent.<channel>=granted` and `=denied` (no
//! entry, or a last entry of `unknown`, is unknown), written with the entry, so that
//! segments ask `consent.email = granted` or `consent.sms != denied` (see the query
//! binder). The `email` channel and the contact's `unsubscribed` flag are kept in
//! step, both ways: an email entry of denied or granted sets the flag, and a write that
//! changes the flag (insert, update, import) appends an email entry with source
//! `unsubscribed`.

use super::WriteTransaction;
use crate::codec;
use crate::error::{Error, Result};
use crate::feed::stored::StoredChange;
use crate::index;
use crate::schema::{
    Consent, ConsentEntry, ConsentStatus, ContactId, EntityKind, Record, RecordId, RecordInternal,
    consent_field,
};
use crate::storage::identity as keys;
use crate::storage::source::Source;

/// Longest source or note, in bytes.
const MAX_TEXT: usize = 1024;

/// A contact's ledger, oldest first.
pub(crate) fn ledger_of<S: Source + ?Sized>(source: &S, row: u32) -> Result<Vec<ConsentEntry>> {
    source
        .identity_entries(&keys::consent_prefix(row))?
        .into_iter()
        .map(|(key, bytes)| codec::decode("identity", &key, &bytes))
        .collect()
}

/// A contact's latest entry in each channel it has entries in.
pub(crate) fn state_of<S: Source + ?Sized>(
    source: &S,
    row: u32,
) -> Result<std::collections::BTreeMap<String, ConsentEntry>> {
    Ok(ledger_of(source, row)?
        .into_iter()
        .map(|e| (e.consent.channel.clone(), e))
        .collect())
}

/// The key of the bitmap of contacts whose state in `channel` is `status`.
pub(crate) fn state_key(channel: &str, status: ConsentStatus) -> String {
    index::cat_key(
        EntityKind::Contact,
        &consent_field(channel),
        status.as_str(),
    )
}

impl WriteTransaction {
    /// Appends `consent` to a live contact's ledger: its new state in the channel. An
    /// email entry of granted or denied also sets the contact's `unsubscribed` flag.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a channel the database does not declare or a
    /// source or note over 1 KiB; [`Error::NotFound`], [`Error::Deleted`],
    /// [`Error::Merged`].
    pub fn record_consent(&mut self, contact: ContactId, consent: Consent) -> Result<()> {
        self.guarded(|tx| {
            let record = tx.live_record(contact)?;
            tx.check_consent(&consent)?;
            let flag = match (consent.channel.as_str(), consent.status) {
                ("email", ConsentStatus::Denied) => Some(true),
                ("email", ConsentStatus::Granted) => Some(false),
                _ => None,
            };
            tx.append_consent(contact.row(), consent)?;
            if let Some(unsubscribed) = flag
                && record.unsubscribed != unsubscribed
            {
                let mut new = record.clone();
                new.unsubscribed = unsubscribed;
                new.updated_at = tx.now();
                tx.write_row(contact.row(), Some(&record), &new)?;
            }
            Ok(())
        })
    }

    /// Replaces the consent channels. Each is 1 to 32 characters of `a-z`, `0-9` and
    /// `_`; `email` is always one. A channel holding states cannot be dropped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`].
    pub fn set_consent_channels(&mut self, channels: &[&str]) -> Result<()> {
        self.guarded(|tx| {
            let good = |c: &&str| {
                (1..=32).contains(&c.len())
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            };
            if let Some(bad) = channels.iter().find(|c| !good(c)) {
                return Err(Error::InvalidArgument(format!(
                    "consent channel {} must be 1 to 32 characters of a-z, 0-9 and _",
                    crate::error::quote(bad)
                )));
            }
            if !channels.contains(&"email") {
                return Err(Error::InvalidArgument(
                    "the email channel cannot be dropped: it follows `unsubscribed`".into(),
                ));
            }
            let config = tx.config_arc()?;
            for old in &config.consent_channels {
                let held = [ConsentStatus::Granted, ConsentStatus::Denied]
                    .into_iter()
                    .map(|s| tx.bitmap(&state_key(old, s)))
                    .collect::<Result<Vec<_>>>()?;
                if !channels.contains(&old.as_str()) && held.iter().any(|b| !b.is_empty()) {
                    return Err(Error::InvalidArgument(format!(
                        "consent channel {} holds states and cannot be dropped",
                        crate::error::quote(old)
                    )));
                }
            }
            let mut next = (*config).clone();
            next.consent_channels = channels.iter().map(|c| (*c).to_owned()).collect();
            next.consent_channels.dedup();
            tx.put_meta(
                crate::storage::meta::CONSENT_CHANNELS,
                &codec::encode(&next.consent_channels),
            )?;
            tx.set_config(next);
            tx.rewatch();
            Ok(())
        })
    }

    fn check_consent(&mut self, consent: &Consent) -> Result<()> {
        let config = self.config_arc()?;
        if !config.consent_channels.contains(&consent.channel) {
            return Err(Error::InvalidArgument(format!(
                "unknown consent channel {} (channels: {})",
                crate::error::quote(&consent.channel),
                config.consent_channels.join(", ")
            )));
        }
        for text in [&consent.source, &consent.note].into_iter().flatten() {
            if text.len() > MAX_TEXT {
                return Err(Error::InvalidArgument(format!(
                    "a consent source or note is at most {MAX_TEXT} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Appends an entry and moves the contact between the channel's state bitmaps.
    pub(super) fn append_consent(&mut self, row: u32, consent: Consent) -> Result<()> {
        let ledger = ledger_of(self, row)?;
        let previous = ledger
            .iter()
            .rev()
            .find(|e| e.consent.channel == consent.channel)
            .map(|e| e.consent.status);
        if previous != Some(consent.status) {
            if let Some(old) = previous.filter(|s| *s != ConsentStatus::Unknown) {
                self.delta
                    .set_key(&state_key(&consent.channel, old), row, false);
            }
            if consent.status != ConsentStatus::Unknown {
                let key = state_key(&consent.channel, consent.status);
                self.delta.set_key(&key, row, true);
            }
        }
        self.touched
            .entry(EntityKind::Contact)
            .or_default()
            .insert(row);
        self.log(StoredChange::ConsentRecorded {
            id: row,
            channel: consent.channel.clone(),
            status: consent.status,
        });
        let entry = ConsentEntry {
            consent,
            at: self.now(),
            actor: self.actor.clone(),
        };
        let key = keys::consent(row, ledger.len() as u32);
        self.put_identity(&key, Some(&codec::encode(&entry)))
    }

    /// Keeps the email channel in step with a contact write that changed
    /// `unsubscribed` (see the module docs).
    pub(super) fn follow_unsubscribed<R: Record>(
        &mut self,
        row: u32,
        old: Option<&R>,
        new: &R,
    ) -> Result<()> {
        let Some(now) = new.unsubscribed() else {
            return Ok(());
        };
        let before = old.and_then(RecordInternal::unsubscribed).unwrap_or(false);
        if before == now {
            return Ok(());
        }
        self.append_consent(row, Consent::unsubscribed(now))
    }

    /// Removes a purged contact's ledger and states (nothing for other kinds).
    pub(super) fn clear_consent<R: Record>(&mut self, row: u32, old: &R) -> Result<()> {
        if old.unsubscribed().is_none() {
            return Ok(());
        }
        let config = self.config_arc()?;
        for channel in &config.consent_channels {
            for status in [ConsentStatus::Granted, ConsentStatus::Denied] {
                let key = state_key(channel, status);
                if self.bitmap(&key)?.contains(row) {
                    self.delta.set_key(&key, row, false);
                }
            }
        }
        let entries = self.identity_entries(&keys::consent_prefix(row))?;
        for (key, _) in entries {
            self.put_identity(&key, None)?;
        }
        Ok(())
    }
}
