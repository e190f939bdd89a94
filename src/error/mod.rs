//! The one public error type.

use std::fmt;

pub(crate) mod quote;

use crate::lifecycle::rule::Rule;
use crate::schema::kind::EntityKind;
pub(crate) use quote::quote;

/// A specialised `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in crmdb.
///
/// Variants carry typed context; messages are lowercase without trailing punctuation.
/// Errors that leave a write transaction unusable say so in their docs; every other
/// error leaves the transaction as it was before the failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage layer (redb) failed. The write transaction that saw it is poisoned:
    /// it refuses further work and rolls back on drop.
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),

    /// A stored record or index could not be decoded.
    #[error("corrupt {what} (key {key}): {reason}")]
    Corrupt {
        /// What was being decoded (a table or record kind).
        what: &'static str,
        /// The key of the damaged entry, rendered for humans.
        key: String,
        /// Why decoding failed.
        reason: String,
    },

    /// A stored record was written by a newer, unknown format version.
    #[error("unsupported format version {found} in {what} (this build reads up to {supported})")]
    UnsupportedFormat {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },

    /// No live or deleted record has this id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// The record's entity type.
        kind: EntityKind,
        /// The row id.
        id: u32,
    },

    /// The record is in the recycle bin; restore it first.
    #[error("{kind} {id} is deleted")]
    Deleted {
        /// The record's entity type.
        kind: EntityKind,
        /// The row id.
        id: u32,
    },

    /// The operation needs a record in the recycle bin, and this one is live.
    #[error("{kind} {id} is not deleted")]
    NotDeleted {
        /// The record's entity type.
        kind: EntityKind,
        /// The row id.
        id: u32,
    },

    /// A record refers to another that does not exist or is deleted.
    #[error("{kind} refers to {target_kind} {target_id}, which does not exist or is deleted")]
    BrokenRelation {
        /// The entity type of the record being written.
        kind: EntityKind,
        /// The entity type referred to.
        target_kind: EntityKind,
        /// The row id referred to.
        target_id: u32,
    },

    /// A hard purge was refused because other records still refer to the record.
    #[error("{kind} {id} is still referred to by {referrer_kind} {referrer_id}")]
    StillReferenced {
        /// The record to purge.
        kind: EntityKind,
        /// Its row id.
        id: u32,
        /// The entity type of one referring record.
        referrer_kind: EntityKind,
        /// The row id of one referring record.
        referrer_id: u32,
    },

    /// A natural key (contact email, product sku) is already taken.
    #[error("{field} {} is already used by {kind} {existing}", quote(.value))]
    Duplicate {
        /// The entity type.
        kind: EntityKind,
        /// The unique field.
        field: &'static str,
        /// The value that collided (normalised).
        value: String,
        /// The row id of the record holding it.
        existing: u32,
    },

    /// A natural key is already taken by a record the scoped transaction does not see:
    /// the value is in use, and which record holds it is not said (see
    /// [`ScopedWrite`](crate::ScopedWrite)).
    #[error("{field} {} is already in use", quote(.value))]
    Taken {
        /// The entity type.
        kind: EntityKind,
        /// The unique field.
        field: &'static str,
        /// The value that collided (normalised).
        value: String,
    },

    /// A field name is not part of the entity's built-in fields or custom schema.
    #[error("unknown field {} on {kind}", quote(.field))]
    UnknownField {
        /// The entity type.
        kind: EntityKind,
        /// The field name as given.
        field: String,
    },

    /// A field value broke the schema (wrong type, unknown option, bad format).
    #[error("invalid value for {kind} field {}: {reason}", quote(.field))]
    InvalidField {
        /// The entity type.
        kind: EntityKind,
        /// The field name.
        field: String,
        /// What is wrong with the value.
        reason: String,
    },

    /// A schema change was refused.
    #[error("schema change refused: {reason}")]
    Schema {
        /// Why.
        reason: String,
    },

    /// A stage move broke the lifecycle machine. Nothing of the move was applied.
    #[error("{kind} {id}: move from {from} to {to} refused: {rule}")]
    IllegalTransition {
        /// The entity type (contact or deal).
        kind: EntityKind,
        /// The record's row id.
        id: u32,
        /// The stage the record is in (`(none)` on create).
        from: String,
        /// The stage asked for.
        to: String,
        /// The rule that refused the move.
        rule: Rule,
    },

    /// A machine definition or a machine replacement was refused.
    #[error("invalid lifecycle machine: {reason}")]
    InvalidMachine {
        /// Why.
        reason: String,
    },

    /// A segment query could not be parsed or bound.
    #[error(transparent)]
    Query(#[from] QueryError),

    /// A saved segment name is unknown.
    #[error("unknown segment {}", quote(.0))]
    UnknownSegment(String),

    /// A dynamic segment refers to itself, directly or through others.
    #[error("segment {} refers to itself", quote(.0))]
    SegmentCycle(String),

    /// The change log no longer holds the batches after `after`: retention trimmed
    /// them. Bootstrap again from a snapshot, or read from `oldest - 1`.
    #[error("changes after sequence {after} are no longer kept; the oldest kept is {oldest}")]
    Trimmed {
        /// The sequence asked to read after.
        after: u64,
        /// The oldest sequence the log holds.
        oldest: u64,
    },

    /// No durable consumer of the change feed has this name.
    #[error("unknown consumer {}", quote(.0))]
    UnknownConsumer(String),

    /// A segment that is watched cannot be deleted or redefined to another kind.
    #[error("segment {} is watched; unwatch it first", quote(.0))]
    Watched(String),

    /// An argument was outside what the call accepts (an empty name, a zero limit).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A resource limit was hit (row ids exhausted, input too large).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),

    /// The write transaction failed earlier with a storage error and can only be dropped.
    #[error("the write transaction was poisoned by an earlier storage error")]
    Poisoned,

    /// The shared commit of a grouped write failed
    /// ([`Database::write_grouped`](crate::Database::write_grouped)): nothing of the
    /// write was applied. Carries the commit's error as text.
    #[error("the group commit this write was part of failed: {0}")]
    GroupCommitFailed(String),

    /// No tenant of that name in the tenant set.
    #[error("unknown tenant {}", quote(.0))]
    UnknownTenant(String),

    /// A tenant of that name exists already.
    #[error("tenant {} exists already", quote(.0))]
    TenantExists(String),

    /// The tenant is held by a caller (or an open transaction), so it cannot be closed
    /// or dropped now.
    #[error("tenant {} is in use", quote(.0))]
    TenantBusy(String),

    /// Every open slot of the tenant set is held by a caller, so no other tenant can be
    /// opened within the memory budget now.
    #[error("all {max_open} open tenants are in use; release one and retry")]
    TenantsBusy {
        /// The set's open limit.
        max_open: usize,
    },

    /// The database has moved (a tenant move cut over): it takes no more writes; they
    /// go to where it moved. Reads still see its last commit.
    #[error("this database has moved to {}; write there", quote(.to))]
    Moved {
        /// Where it moved, as the cutover named it.
        to: String,
    },

    /// The record was merged into another ([`WriteTransaction::merge`]): reads by its id
    /// resolve to the survivor, and it takes no writes of its own until the merge is
    /// undone.
    ///
    /// [`WriteTransaction::merge`]: crate::WriteTransaction::merge
    #[error("{kind} {id} was merged into {kind} {into} (merge {merge})")]
    Merged {
        /// The record's kind.
        kind: EntityKind,
        /// The merged record.
        id: u32,
        /// The record it was merged into.
        into: u32,
        /// The merge.
        merge: u64,
    },

    /// No merge has this number.
    #[error("unknown merge {0}")]
    UnknownMerge(u64),

    /// The merge cannot be undone: what stands in the way.
    #[error("merge {merge} cannot be undone: {reason}")]
    UnmergeConflict {
        /// The merge.
        merge: u64,
        /// The conflict, naming the later merge, erasure or record in the way.
        reason: String,
    },

    /// An I/O error outside redb (opening a path).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether this error leaves a write transaction unusable: a failure of storage or
    /// of decoding stored bytes, after which the transaction may be half-written. The
    /// one list of such errors; every writer consults it.
    pub(crate) fn poisons(&self) -> bool {
        matches!(
            self,
            Error::Storage(_)
                | Error::Corrupt { .. }
                | Error::UnsupportedFormat { .. }
                | Error::Poisoned
                | Error::Io(_)
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A segment query that could not be parsed or bound to the schema.
///
/// `offset` is a byte offset into the query text (0 for queries built in Rust).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query error at byte {offset}: {kind}")]
pub struct QueryError {
    /// Byte offset into the query text.
    pub offset: usize,
    /// What went wrong.
    pub kind: QueryErrorKind,
}

/// The kinds of [`QueryError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryErrorKind {
    /// The parser expected something else here.
    Expected {
        /// What would have been accepted, e.g. `"a value"`.
        expected: String,
        /// What was found, e.g. `"end of input"`.
        found: String,
    },
    /// The query text is longer than the limit.
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// Parentheses or NOTs are nested deeper than the limit.
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// The field is not known for this entity type.
    UnknownField(String),
    /// The saved segment does not exist.
    UnknownSegment(String),
    /// The stage is not part of this entity's lifecycle machine.
    UnknownStage(String),
    /// The operator or literal does not fit the field's type.
    TypeMismatch {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for QueryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryErrorKind::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            QueryErrorKind::TooLong { limit } => write!(f, "query longer than {limit} bytes"),
            QueryErrorKind::TooDeep { limit } => write!(f, "query nested deeper than {limit}"),
            QueryErrorKind::UnknownField(name) => write!(f, "unknown field {}", quote(name)),
            QueryErrorKind::UnknownSegment(name) => write!(f, "unknown segment {}", quote(name)),
            QueryErrorKind::UnknownStage(name) => write!(f, "unknown stage {}", quote(name)),
            QueryErrorKind::TypeMismatch { field, reason } => {
                write!(f, "type mismatch on {}: {reason}", quote(field))
            }
        }
    }
}
