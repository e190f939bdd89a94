//! # crmdb
//!
//! An embedded CRM database engine: contacts, accounts, deals, activities, orders,
//! products, owners and tasks in typed tables on [redb], with tags and categorical
//! attributes indexed as roaring bitmaps in the same ACID transaction as the rows,
//! numeric and date fields as bit-sliced bitmaps, and customer lifecycles and deal
//! pipelines enforced as state machines at write time.
//!
//! ```
//! use crmdb::{Contact, Database, EntityKind, Query, Snapshot};
//!
//! let db = Database::in_memory()?;
//! let id = db.write(|tx| -> crmdb::Result<_> {
//!     let id = tx.insert(Contact {
//!         name: "Li Lei".into(),
//!         email: Some("li.lei@example.com".into()),
//!         region: Some("shanghai".into()),
//!         ..Default::default()
//!     })?;
//!     tx.add_tag(id, "vip")?;
//!     tx.move_stage(id, "active")?;
//!     Ok(id)
//! })?;
//! let vips = db.read(|r| r.count(EntityKind::Contact, &Query::parse("tag:vip AND region = \"shanghai\"")?))?;
//! assert_eq!(vips, 1);
//! db.read(|r| {
//!     assert_eq!(r.get(id)?.stage.as_str(), "active");
//!     Ok(())
//! })?;
//! # Ok::<(), crmdb::Error>(())
//! ```
//!
//! ## What it is not
//! - Not a SQL database: segments are boolean expressions over indexed fields.
//! - Not a server: the `server` example is one way to put HTTP in front of it.
//! - Not multi-process: one process opens a database file at a time.
//!
//! ## Transactions
//! [`Database::write`] runs a closure in a write transaction and commits if it returns
//! `Ok`; an `Err` rolls back everything of it. The closure may return the host
//! application's own error type if a crmdb [`Error`] converts into it; a closure that
//! only uses crmdb's names its result type (`|tx| -> crmdb::Result<_> { … }`) when
//! nothing else fixes it. A refused operation inside (an illegal
//! stage move, a duplicate email) returns its error and applies nothing of itself; the
//! closure may handle it and go on. [`Database::read`] sees one consistent snapshot and
//! never blocks the writer. Reads live on the [`Snapshot`] trait, implemented by both
//! transaction types; a write transaction's reads see its own writes.
//!
//! ## Many tenants, backups, moves
//! A [`TenantSet`] keeps one database file per tenant in a directory, opens tenants on
//! demand and closes idle ones least recently used first, under one memory budget for
//! every open tenant's caches. [`Database::backup`] writes a consistent copy of a live
//! database from one snapshot while writers continue ([`Backup::sequence`] says which
//! commit it reflects). A [`TenantMove`] moves a database to a new file while writers
//! continue: a backup, then the source's change log applied to the copy, then a
//! cutover after which the source refuses writes with [`Error::Moved`].
//!
//! ## Identity
//! [`identity::duplicate_candidates`] proposes pairs of contacts (or accounts) that may
//! be one, with their reasons and a score, from blocking keys (normalised email, phone,
//! name within region or account) and a fuzzy name comparison.
//! [`WriteTransaction::merge`] merges one contact into another in one transaction:
//! related records re-pointed, tags and roles united, values by
//! [`identity::MergePolicy`], figures recomputed, the further stage taken; the merged
//! contact becomes a redirect ([`Snapshot::resolve`]) and a [`identity::Lineage`]
//! keeps what [`WriteTransaction::unmerge`] needs to undo it.
//! [`WriteTransaction::record_consent`] appends to a contact's consent ledger (per
//! channel: granted, denied or unknown, a lawful basis, a source, the time); the
//! latest entry is the state, queryable in segments, and the email channel is kept in
//! step with `unsubscribed`. [`WriteTransaction::erase`] removes a person's personal
//! data (name, email, phone, custom fields marked personal) from rows, keys, indexes,
//! histories, consent ledgers, lineages and the kept change log, while their orders,
//! deals and activities stay; [`Database::compact`] then rewrites the file without
//! the old bytes.
//!
//! ## Query language
//! ```text
//! tag:vip AND region = "shanghai" AND NOT stage:churned
//!   AND lifetime_value >= 1000 AND last_activity within 90d
//! (tag:vip OR tag:gold) AND owner = 12 AND created between 2026-01-01 and 2026-06-30
//! segment:high_value AND NOT tag:unsubscribed AND custom.industry in ("saas", "retail")
//! ```
//! - `NOT` binds tighter than `AND`, `AND` tighter than `OR`; parentheses group;
//!   keywords are case-insensitive; `*` is every live record.
//! - `field:value` means `field = value` (`tag:vip`, `stage:active`, `role:advocate`,
//!   `region:shanghai`); `segment:name` is a saved segment.
//! - Comparisons `= != < <= > >=`, `field in (a, b)`, `field between a and b`
//!   (inclusive), `field within 90d` (or `12w`: a date no earlier than that many days
//!   before today, by the database clock), `field exists`.
//! - Literals: `"strings"` (with `\"` and `\\` escapes), integers, decimals with at
//!   most two places, dates `YYYY-MM-DD`, `true`/`false`. On money fields an integer is
//!   whole major units (`1000` is 1000.00) and a decimal is exact (`99.5`).
//!   Dates compare by day (UTC).
//! - **Two-valued semantics**: a condition on a record that has no value for the field
//!   is false, whatever the operator, so `region != "x"` does not match records without
//!   a region. `NOT q` is the complement of `q` within the live records of the entity
//!   kind, so `NOT region = "x"` does match them. Soft-deleted records never match.
//!   On multi-valued fields (`tag`, `role`, multi selects) `=` means "has this value"
//!   and `!=` means "has some value, and not this one".
//! - Errors name the byte offset and what was expected; unknown fields, stages and
//!   segments are named. A tag that no record carries matches nothing (a segment does
//!   not start failing because its tag is new). Empty values (`tag:""`) and segment
//!   names outside `[a-z0-9_]` are refused. Queries are at most [`MAX_QUERY_BYTES`]
//!   long and nested at most [`MAX_QUERY_DEPTH`] deep.
//!
//! Fields per kind ([`EntityKind::fields`] lists them with their shapes; derived fields
//! are written by [`WriteTransaction::refresh_rfm`]):
//! - contact: `region gender source owner account stage role tag unsubscribed
//!   lifetime_value order_count total_spent activity_count last_order last_activity
//!   created birth_year`, derived `rfm.recency rfm.frequency rfm.monetary tier band`
//! - account: `industry region tier owner tag size created`
//! - deal: `pipeline stage owner account contact participant product tag amount
//!   close_date created`
//! - activity: `kind direction owner contact account deal at created`
//! - order: `status contact account product at total created`
//! - product: `category list_price created`
//! - owner: `team region capacity created`
//! - task: `status assignee contact account deal due created`
//!
//! and `custom.<name>` for the custom fields declared on a kind. Contacts also have
//! `consent.<channel>` for each consent channel (`email sms phone wechat` unless
//! changed): `consent.email = "granted"`, `consent.sms != "denied"`. Every contact has
//! a state in every channel, `"unknown"` when its ledger has no entry there, so `!=`
//! and `"unknown"` include the contacts without one.

#![deny(missing_docs, unsafe_code)]
// The sealed traits `Record` and `Snapshot` name crate-private types in their hidden
// supertraits; those traits cannot be named or implemented outside the crate.
#![allow(private_interfaces)]
#![warn(clippy::unwrap_used)]

mod access;
mod assign;
mod bulk;
mod clock;
mod codec;
mod config;
mod db;
mod error;
pub mod feed;
mod index;
mod lifecycle;
mod moving;
mod query;
mod schema;
mod storage;
mod tenants;
mod txn;

pub mod analytics;
pub mod demo;
pub mod identity;

pub use roaring::RoaringBitmap;

pub use crate::access::{Grantee, Principal, REDACTED, Reach};
pub use crate::bulk::{BulkLoad, BulkReport, Rejection};
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::{Assignment, AssignmentRule};
pub use crate::db::{Builder, Database, DatabaseStats, KindStats};
pub use crate::error::{Error, QueryError, QueryErrorKind, Result};
pub use crate::lifecycle::{
    AutoMove, Backward, ChangeKind, Forward, Guard, Machine, Machines, Rule, StageChange, StageDef,
    SweepMove, SweepRule, Trigger, stages,
};
pub use crate::moving::TenantMove;
pub use crate::query::{
    CmpOp, FieldRef, Group, GroupBy, Literal, MAX_IN_VALUES, MAX_QUERY_BYTES, MAX_QUERY_DEPTH,
    Page, Predicate, Query, SavedSegment, SortBy, TagCount,
};
pub use crate::schema::{
    Account, AccountId, Activity, ActivityId, ActivityKind, AnyRecord, Contact, ContactId,
    ContactRole, ContactStats, CustomSchema, DEFAULT_PIPELINE, Deal, DealId, Direction, EntityKind,
    FieldDef, FieldInfo, FieldShape, FieldType, LineItem, Money, Order, OrderId, OrderStatus,
    Owner, OwnerId, Product, ProductId, Record, RecordId, SECONDS_PER_DAY, Stage, Subject, Task,
    TaskId, TaskStatus, Timestamp, Value,
};
pub use crate::tenants::{
    MAX_TENANT_NAME, TenantOptions, TenantSet, TenantStats, check_tenant_name,
};
pub use crate::txn::{
    Backup, ReadTransaction, SYSTEM_ACTOR, Scoped, ScopedRead, ScopedWrite, Snapshot, StagedId,
    Upserted, WatchRefresh, WriteTransaction, assignment,
};

/// Raw decoders for tools that read crmdb's stored bytes (the fuzz targets).
#[doc(hidden)]
pub mod raw {
    use crate::error::Result;
    use crate::schema::Record;

    /// Decodes one stored record.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] or [`crate::Error::UnsupportedFormat`].
    pub fn decode_record<R: Record>(bytes: &[u8]) -> Result<R> {
        crate::codec::decode(R::KIND.as_str(), &"raw", bytes)
    }

    /// Encodes one record as it is stored.
    pub fn encode_record<R: Record>(record: &R) -> Vec<u8> {
        crate::codec::encode(record)
    }

    /// Decodes one stored bitmap chunk, number `chunk` (row ids `chunk << 12` to
    /// `chunk << 12 | 4095`), on its own.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] or [`crate::Error::UnsupportedFormat`].
    pub fn decode_chunk(chunk: u32, bytes: &[u8]) -> Result<roaring::RoaringBitmap> {
        let window = crate::index::store::chunk_range(chunk);
        crate::codec::decode_chunk("bitmap chunk", &"raw", window, bytes)
    }

    /// Builds one bitmap from stored chunks, as loading a bitmap does.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] or [`crate::Error::UnsupportedFormat`].
    pub fn assemble_chunks(chunks: &[(u32, &[u8])]) -> Result<roaring::RoaringBitmap> {
        let mut assembler = crate::codec::ChunkAssembler::new();
        for &(chunk, bytes) in chunks {
            let window = crate::index::store::chunk_range(chunk);
            assembler.add("bitmap chunk", &"raw", window, bytes)?;
        }
        Ok(assembler.finish())
    }

    /// Encodes one chunk, number `chunk`, of rows inside it, as it is stored.
    pub fn encode_chunk(chunk: u32, bitmap: &roaring::RoaringBitmap) -> Vec<u8> {
        let window = crate::index::store::chunk_range(chunk);
        crate::codec::encode_chunk(&mut bitmap.clone(), window)
    }
}

#[cfg(test)]
mod promises {
    use crate::EntityKind;

    /// The crate docs' field list ("Fields per kind") is the field tables, derived
    /// fields included.
    #[test]
    fn crate_docs_list_every_field() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!").map(str::trim))
            .collect::<Vec<_>>()
            .join("\n");
        let start = docs.find("Fields per kind").expect("the field list");
        let list = &docs[start..];
        let list = &list[..list.find("custom.<name>").expect("the list's end")];
        for kind in EntityKind::ALL {
            let entry = format!("- {kind}: ");
            let at = list
                .find(&entry)
                .unwrap_or_else(|| panic!("{kind} is listed"));
            let rest = &list[at + entry.len()..];
            let end = rest.find("\n- ").unwrap_or(rest.len());
            let (own, derived) = match rest[..end].split_once("derived") {
                Some((own, derived)) => (own, derived),
                None => (&rest[..end], ""),
            };
            let words = |text: &str| -> Vec<String> {
                text.split('`')
                    .skip(1)
                    .step_by(2)
                    .flat_map(|w| w.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect()
            };
            let fields = kind.fields();
            let table = |derived: bool| -> Vec<String> {
                fields
                    .iter()
                    .filter(|f| f.derived == derived)
                    .map(|f| f.name.to_owned())
                    .collect()
            };
            assert_eq!(words(own), table(false), "{kind}: documented fields");
            assert_eq!(
                words(derived),
                table(true),
                "{kind}: documented derived fields"
            );
        }
    }

    fn is_send_sync<T: Send + Sync>() {}
    fn is_send<T: Send>() {}

    #[test]
    fn thread_safety() {
        is_send_sync::<crate::Database>();
        is_send_sync::<crate::Error>();
        is_send::<crate::ReadTransaction>();
        is_send::<crate::WriteTransaction>();
    }
}
