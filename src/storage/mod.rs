//! Storage plumbing: the redb table definitions and key layouts. See `docs/design.md`.
//!
//! **Invariant**: every byte value in these tables is written by `codec`, and only
//! the `txn` module opens them for writing. Every meta key is named in [`meta`].

pub(crate) mod source;

use redb::{Key, TableDefinition, Value};

use crate::error::Result;
use crate::schema::EntityKind;

/// Rows of one entity kind: dense row id → versioned record bytes.
pub(crate) type RowsTable = TableDefinition<'static, u32, &'static [u8]>;

const ROWS: [RowsTable; 8] = [
    TableDefinition::new("rows.contact"),
    TableDefinition::new("rows.account"),
    TableDefinition::new("rows.deal"),
    TableDefinition::new("rows.activity"),
    TableDefinition::new("rows.order"),
    TableDefinition::new("rows.product"),
    TableDefinition::new("rows.owner"),
    TableDefinition::new("rows.task"),
];

/// The rows table of an entity kind.
pub(crate) fn rows(kind: EntityKind) -> RowsTable {
    ROWS[kind as usize]
}

/// Database-wide settings and counters: name → versioned bytes.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Natural keys: (`"contact.email"` | `"product.sku"`, normalised value) → row id.
pub(crate) const UNIQUE: TableDefinition<(&str, &str), u32> = TableDefinition::new("unique");

/// Bitmap chunks: (bitmap key, row id >> 12) → versioned portable roaring bytes holding
/// only row ids of that chunk. A missing chunk is empty.
pub(crate) const BITMAPS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("bitmaps");

/// Index generations: cache key → generation of the commit that last changed it.
/// A bitmap key that was ever written has an entry, even once empty. The empty key
/// ([`GENERATION_KEY`]) holds the generation of the last commit that changed an index.
pub(crate) const BITMAP_GEN: TableDefinition<&str, u64> = TableDefinition::new("bitmap_gen");

/// The `bitmap_gen` key of the commit generation counter; no bitmap key is empty.
pub(crate) const GENERATION_KEY: &str = "";

/// The `bitmap_gen` key of the commit sequence: the number of the last commit that
/// changed anything (absent before the first). Kept beside the generation, which nearly
/// every changing commit writes anyway, so that a commit touches one table fewer. No
/// bitmap key starts with `#`. Files written before it was kept here have it under
/// [`meta::SEQUENCE`], read when this key is absent.
pub(crate) const SEQUENCE_KEY: &str = "#sequence";

/// Stage history: (entity kind, row id, sequence) → versioned history entry.
pub(crate) const HISTORY: TableDefinition<(u8, u32, u32), &[u8]> = TableDefinition::new("history");

/// Saved segments: name → versioned segment definition.
pub(crate) const SEGMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("segments");

/// The change log: (commit sequence, part) → versioned batch part (`feed::stored`).
pub(crate) const CHANGES: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("changes");

/// Durable change-feed consumers: name → the last sequence acknowledged.
pub(crate) const CONSUMERS: TableDefinition<&str, u64> = TableDefinition::new("consumers");

/// Watched segments: name → versioned kind of records the segment selects. Members are
/// the bitmap [`watch_key`](crate::index::watch_key).
pub(crate) const WATCHED: TableDefinition<&str, &[u8]> = TableDefinition::new("watched");

/// Customer identity: merge lineages, redirects, consent ledgers and erasure
/// records, under the keys of [`identity`] → versioned entries (`txn::merge`).
pub(crate) const IDENTITY: TableDefinition<&str, &[u8]> = TableDefinition::new("identity");

/// Keys of the [`IDENTITY`] table. Numbers are zero-padded so that keys sort in
/// numeric order.
pub(crate) mod identity {
    use crate::schema::EntityKind;

    /// Prefix of merge lineages.
    pub(crate) const MERGE: &str = "merge/";
    /// The lineage of merge `id`.
    pub(crate) fn merge(id: u64) -> String {
        format!("{MERGE}{id:020}")
    }
    /// Prefix of every consent ledger.
    pub(crate) const CONSENT: &str = "consent/";
    /// The prefix of a contact's consent ledger.
    pub(crate) fn consent_prefix(row: u32) -> String {
        format!("{CONSENT}{row:010}/")
    }
    /// Entry `seq` of a contact's consent ledger.
    pub(crate) fn consent(row: u32, seq: u32) -> String {
        format!("consent/{row:010}/{seq:010}")
    }
    /// Prefix of erasure records.
    pub(crate) const ERASURE: &str = "erasure/";
    /// Erasure record `id`.
    pub(crate) fn erasure(id: u64) -> String {
        format!("{ERASURE}{id:020}")
    }
    /// The redirect of a merged record: to the merge that merged it.
    pub(crate) fn redirect(kind: EntityKind, row: u32) -> String {
        format!("redirect/{kind}/{row:010}")
    }
}

/// Meta keys.
pub(crate) mod meta {
    /// The database format version (one byte).
    pub(crate) const FORMAT: &str = "format";
    /// Custom field schemas of every kind.
    pub(crate) const SCHEMA: &str = "schema";
    /// Lifecycle machines.
    pub(crate) const MACHINES: &str = "machines";
    /// Next row id of a kind: `next_row.<kind>`.
    pub(crate) const NEXT_ROW: &str = "next_row.";
    /// Lead assignment rules.
    pub(crate) const ASSIGNMENT: &str = "assignment";
    /// Round-robin pointers of the assignment rules: the last owner picked per pool.
    pub(crate) const ROUND_ROBIN: &str = "assignment.round_robin";
    /// Where files written before [`SEQUENCE_KEY`](super::SEQUENCE_KEY) keep the commit
    /// sequence; read only, when that key is absent.
    pub(crate) const SEQUENCE: &str = "commit.sequence";
    /// The consent channels (`txn::consent`).
    pub(crate) const CONSENT_CHANNELS: &str = "consent.channels";
    /// The custom fields marked personal, per kind (`txn::erase`).
    pub(crate) const PERSONAL: &str = "schema.personal";
    /// Reporting lines, owner → manager (`txn::scope`).
    pub(crate) const REPORTS: &str = "access.reports";
    /// The number of the last erasure (`txn::erase`).
    pub(crate) const LAST_ERASURE: &str = "identity.last_erasure";
    /// The number of the last merge (`txn::merge`).
    pub(crate) const LAST_MERGE: &str = "identity.last_merge";
    /// The state of the last RFM refresh.
    pub(crate) const RFM: &str = "analytics.rfm";
}

/// Something done to each table of the layout, with that table's own key and value
/// types: creating every table on open, copying every table into a backup.
pub(crate) trait EachTable {
    fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<()>;
}

/// Runs `visit` on every table: the one list of them.
pub(crate) fn each_table(visit: &mut impl EachTable) -> Result<()> {
    for kind in EntityKind::ALL {
        visit.table(rows(kind))?;
    }
    visit.table(META)?;
    visit.table(UNIQUE)?;
    visit.table(BITMAPS)?;
    visit.table(BITMAP_GEN)?;
    visit.table(HISTORY)?;
    visit.table(SEGMENTS)?;
    visit.table(CHANGES)?;
    visit.table(CONSUMERS)?;
    visit.table(WATCHED)?;
    visit.table(IDENTITY)
}
