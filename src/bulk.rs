//! Bulk loading: many records in large transactions, bad rows rejected one by one.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::schema::Record;

/// A bulk load: records go in batches of `batch_size` per write transaction. A record
/// the engine refuses (duplicate email, broken relation, bad field) is skipped and
/// reported; the rest of its batch still commits, since a refused insert applies
/// nothing of itself.
///
/// # Defaults
/// `batch_size`: 50 000.
#[derive(Debug, Clone)]
pub struct BulkLoad<'db> {
    db: &'db Database,
    batch_size: usize,
}

/// What a bulk load did.
#[derive(Debug, Default)]
pub struct BulkReport {
    /// Records inserted.
    pub inserted: u64,
    /// Records refused: position in the input and why.
    pub rejected: Vec<(u64, Error)>,
}

impl<'db> BulkLoad<'db> {
    /// A bulk load into `db`.
    pub fn new(db: &'db Database) -> BulkLoad<'db> {
        BulkLoad {
            db,
            batch_size: 50_000,
        }
    }

    /// Records per write transaction.
    pub fn batch_size(&mut self, records: usize) -> &mut Self {
        self.batch_size = records.max(1);
        self
    }

    /// Inserts every record, calling `progress` with the running count after each batch.
    ///
    /// # Errors
    /// A storage failure; batches committed before it stay committed.
    pub fn run<R: Record>(
        &self,
        records: impl IntoIterator<Item = R>,
        mut progress: impl FnMut(u64),
    ) -> Result<BulkReport> {
        let mut report = BulkReport::default();
        let mut records = records.into_iter().peekable();
        let mut position = 0u64;
        while records.peek().is_some() {
            let mut tx = self.db.begin_write()?;
            for record in records.by_ref().take(self.batch_size) {
                match tx.insert(record) {
                    Ok(_) => report.inserted += 1,
                    Err(e @ (Error::Storage(_) | Error::Poisoned | Error::Corrupt { .. })) => {
                        return Err(e);
                    }
                    Err(e) => report.rejected.push((position, e)),
                }
                position += 1;
            }
            tx.commit()?;
            progress(position);
        }
        Ok(report)
    }
}
