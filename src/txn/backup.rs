//! Online backup: a consistent copy of a database as of one read snapshot, taken while
//! writers continue (a redb read transaction never blocks the writer).

use std::path::Path;

use redb::{Key, ReadableTable, TableDefinition, Value};

use super::snapshot::{ReadTransaction, Snapshot};
use crate::error::{Error, Result};
use crate::schema::EntityKind;
use crate::storage;

/// What a backup reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    /// The change-feed sequence of the last commit the copy holds: a follower that
    /// applies the source's batches after it brings the copy up to date.
    pub sequence: u64,
    /// Entries copied, over every table.
    pub entries: u64,
}

/// Copies every entry of one table from the snapshot into the new file's transaction.
fn copy<K: Key + 'static, V: Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    let mut entries = 0;
    for entry in source.iter()? {
        let (key, value) = entry?;
        target.insert(key.value(), value.value())?;
        entries += 1;
    }
    Ok(entries)
}

impl ReadTransaction {
    /// Writes everything this snapshot sees to a new database file at `path`, which
    /// then opens as a normal database (`Database::open`). Writers go on meanwhile; the
    /// copy holds exactly the commits up to [`Backup::sequence`]. The new file is
    /// written in one transaction and synced before this returns, so a crash leaves no
    /// half copy behind, only an empty file or none.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `path` exists; storage errors from either file.
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<Backup> {
        let path = path.as_ref();
        if path.exists() {
            return Err(Error::InvalidArgument(format!(
                "backup target {} exists already",
                path.display()
            )));
        }
        let sequence = self.sequence()?;
        let from = self.redb_txn();
        let target = redb::Database::create(path)?;
        let to = target.begin_write()?;
        let mut entries = 0;
        for kind in EntityKind::ALL {
            entries += copy(from, &to, storage::rows(kind))?;
        }
        entries += copy(from, &to, storage::META)?;
        entries += copy(from, &to, storage::UNIQUE)?;
        entries += copy(from, &to, storage::BITMAPS)?;
        entries += copy(from, &to, storage::BITMAP_GEN)?;
        entries += copy(from, &to, storage::HISTORY)?;
        entries += copy(from, &to, storage::SEGMENTS)?;
        entries += copy(from, &to, storage::CHANGES)?;
        entries += copy(from, &to, storage::CONSUMERS)?;
        entries += copy(from, &to, storage::WATCHED)?;
        to.commit()?;
        Ok(Backup { sequence, entries })
    }
}
