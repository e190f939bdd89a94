//! Online backup: a consistent copy of a database as of one read snapshot, taken while
//! writers continue (a redb read transaction never blocks the writer).

use std::path::Path;

use redb::{Key, ReadableTable, TableDefinition, Value};

use super::snapshot::{ReadTransaction, Snapshot};
use crate::error::{Error, Result};
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

/// Copies every entry of each table from the snapshot into the new file's transaction.
struct Copy<'a> {
    from: &'a redb::ReadTransaction,
    to: &'a redb::WriteTransaction,
    entries: u64,
}

impl storage::EachTable for Copy<'_> {
    fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        let source = self.from.open_table(table)?;
        let mut target = self.to.open_table(table)?;
        for entry in source.iter()? {
            let (key, value) = entry?;
            target.insert(key.value(), value.value())?;
            self.entries += 1;
        }
        Ok(())
    }
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
        let target = redb::Database::create(path)?;
        let to = target.begin_write()?;
        let mut copy = Copy {
            from: self.redb_txn(),
            to: &to,
            entries: 0,
        };
        storage::each_table(&mut copy)?;
        let entries = copy.entries;
        to.commit()?;
        Ok(Backup { sequence, entries })
    }
}
