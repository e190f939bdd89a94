//! What a merge keeps: the policy it ran by, its [`Lineage`] in the identity table, and
//! the redirect of the merged record; reading them (`txn::merge` writes them).

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::schema::{ConsentStatus, Contact, ContactRole, EntityKind, Stage, Timestamp};
use crate::storage::identity as keys;
use crate::storage::source::Source;
use std::collections::{BTreeMap, BTreeSet};

/// Where a field's merged value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FieldRule {
    /// The survivor's value; the other's only where the survivor has none.
    #[default]
    Survivor,
    /// The other's value; the survivor's only where the other has none.
    Other,
    /// The value of the record written last (by `updated_at`), if it has one; else the
    /// other record's.
    NewestNonEmpty,
}

/// How a merge picks field values: a rule for every field, and rules per field by
/// name (`email`, `phone`, `custom.<name>` …) that override it.
///
/// Whatever the policy, tags and roles are the union of both records', the figures
/// are recomputed from the orders and activities both records had, the stage is the
/// one further along the lifecycle, and `unsubscribed` is true if either record was
/// unsubscribed; in each consent channel where the other's state is denied, the
/// survivor's becomes denied (an opt-out is never lost by merging). The merged fields
/// are `name`,
/// `email`, `phone`, `region`, `gender`, `birth_year`, `source`, `owner`, `account`,
/// `lifetime_value` and each custom field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MergePolicy {
    /// The rule of every field without one of its own.
    pub default: FieldRule,
    /// Rules of single fields.
    pub fields: BTreeMap<String, FieldRule>,
}

impl MergePolicy {
    /// The survivor's values win; the other fills the survivor's empty fields.
    pub fn survivor_wins() -> MergePolicy {
        MergePolicy::default()
    }

    /// The newest non-empty value of each field wins.
    pub fn newest_non_empty() -> MergePolicy {
        MergePolicy {
            default: FieldRule::NewestNonEmpty,
            fields: BTreeMap::new(),
        }
    }

    /// This policy with `rule` for `field`.
    pub fn with(mut self, field: impl Into<String>, rule: FieldRule) -> MergePolicy {
        self.fields.insert(field.into(), rule);
        self
    }

    pub(super) fn rule(&self, field: &str) -> FieldRule {
        self.fields.get(field).copied().unwrap_or(self.default)
    }
}

/// A record a merge re-pointed, with its images before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedRecord {
    /// Its kind.
    pub kind: EntityKind,
    /// Its row id.
    pub id: u32,
    pub(super) before: Vec<u8>,
    pub(super) after: Vec<u8>,
}

/// When a merge was undone, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undone {
    /// The transaction clock's time.
    pub at: Timestamp,
    /// The transaction's actor.
    pub actor: String,
}

/// What a merge did, kept so that it can be read and undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The merge's number (from 1, in order).
    pub merge: u64,
    /// The kind of both records.
    pub kind: EntityKind,
    /// The record that stayed.
    pub survivor: u32,
    /// The record merged into it.
    pub other: u32,
    /// When (the transaction clock).
    pub at: Timestamp,
    /// Who (the transaction's actor).
    pub actor: String,
    /// The policy the values were picked by.
    pub policy: MergePolicy,
    /// The survivor before the merge.
    pub survivor_before: Contact,
    /// The other record before the merge.
    pub other_before: Contact,
    /// The fields whose value the survivor took from the other.
    pub fields_taken: Vec<String>,
    /// The tags only the other had.
    pub tags_added: BTreeSet<String>,
    /// The roles only the other had.
    pub roles_added: BTreeSet<ContactRole>,
    /// The survivor's stage before and the other's stage it took, if it took it.
    pub stage: Option<(Stage, Stage)>,
    /// The consent channels the other had denied and the survivor had not, with the
    /// survivor's state in each before: a denial is never lost by merging.
    pub denials_taken: Vec<(String, ConsentStatus)>,
    /// The records re-pointed from the other to the survivor.
    pub moved: Vec<MovedRecord>,
    /// Set once the merge is undone.
    pub undone: Option<Undone>,
    /// The erasure that anonymised a record of this lineage, if one did: the merge can
    /// no longer be undone.
    pub erased: Option<u64>,
    /// The survivor as the merge wrote it.
    pub(super) survivor_after: Vec<u8>,
}

impl Lineage {
    /// Applies `scrub` to the stored image of the survivor after the merge.
    pub(crate) fn scrub_survivor_after(
        &mut self,
        scrub: impl FnOnce(u32, &mut Vec<u8>) -> Result<bool>,
    ) -> Result<bool> {
        scrub(self.survivor, &mut self.survivor_after)
    }
}

/// A merged record's redirect: the survivor and the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Redirect {
    pub(crate) into: u32,
    pub(crate) merge: u64,
}

/// The redirect of a merged record, if it is one.
pub(crate) fn redirect_of<S: Source + ?Sized>(
    source: &S,
    kind: EntityKind,
    row: u32,
) -> Result<Option<Redirect>> {
    let key = keys::redirect(kind, row);
    source
        .identity_bytes(&key)?
        .map(|bytes| codec::decode("identity", &key, &bytes))
        .transpose()
}

/// The lineage of merge `merge`.
pub(crate) fn lineage_of<S: Source + ?Sized>(source: &S, merge: u64) -> Result<Lineage> {
    let key = keys::merge(merge);
    match source.identity_bytes(&key)? {
        Some(bytes) => codec::decode("identity", &key, &bytes),
        None => Err(Error::UnknownMerge(merge)),
    }
}

/// Every lineage, in merge order.
pub(crate) fn lineages<S: Source + ?Sized>(source: &S) -> Result<Vec<Lineage>> {
    source
        .identity_entries(keys::MERGE)?
        .into_iter()
        .map(|(key, bytes)| codec::decode("identity", &key, &bytes))
        .collect()
}

/// Most redirects followed from one record: more means a corrupt chain.
const MAX_REDIRECTS: usize = 1024;

/// The record `row` of `kind` resolves to: itself, or the survivor its merges lead to.
pub(crate) fn resolve_row<S: Source + ?Sized>(
    source: &S,
    kind: EntityKind,
    row: u32,
) -> Result<u32> {
    let mut at = row;
    for _ in 0..MAX_REDIRECTS {
        match redirect_of(source, kind, at)? {
            Some(redirect) => at = redirect.into,
            None => return Ok(at),
        }
    }
    Err(Error::Corrupt {
        what: "identity",
        key: keys::redirect(kind, row),
        reason: "the redirects form a cycle".into(),
    })
}
