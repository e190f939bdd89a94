//! Bulk loading: many records in large transactions, bad rows rejected one by one.
//!
//! redb has one writer. Records without side effects on other records (everything but
//! orders and activities, and contacts while lead assignment rules are set) are checked,
//! staged and encoded on worker threads, fed through crossbeam channels to the writer,
//! which only checks relations and natural keys and writes rows, keys, histories and
//! index deltas with its tables opened once per chunk. Orders and activities are written
//! one by one, but their effect on their contact (figures, automatic moves) is gathered
//! over the batch and each contact written once. Contacts under assignment rules go
//! through [`WriteTransaction::insert`](crate::WriteTransaction::insert) one by one.

use std::collections::BTreeMap;

use crossbeam_channel::{bounded, unbounded};

use crate::codec;
use crate::config::Config;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::index::IndexDelta;
use crate::lifecycle::{MoveOp, StageChange, transition};
use crate::schema::{EntityKind, Record};
use crate::schema::{Terms, Timestamp};
use crate::txn::{check_shape, normalise_new, record_terms};

/// A bulk load: records go in batches of `batch_size` per write transaction. A record
/// the engine refuses (duplicate email, broken relation, bad field, illegal stage) is
/// skipped and reported; the rest of its batch still commits, since a refused insert
/// applies nothing of itself.
///
/// # Defaults
/// - `batch_size`: 50 000 records per transaction.
/// - `threads`: as many preparing threads as the machine has cores (the writing thread
///   mostly waits on them); `threads(0)` inserts on the calling thread only, with no
///   gaps in row ids. With threads, the row ids of refused records stay unused.
#[derive(Debug, Clone)]
pub struct BulkLoad<'db> {
    db: &'db Database,
    batch_size: usize,
    threads: usize,
}

/// What a bulk load did.
#[derive(Debug, Default)]
pub struct BulkReport {
    /// Records inserted.
    pub inserted: u64,
    /// The row ids of the inserted records, in input order (`ContactId::new(row)` and
    /// the like give their ids).
    pub rows: Vec<u32>,
    /// Records refused, in input order.
    pub rejected: Vec<Rejection>,
}

/// A record a bulk load refused.
#[derive(Debug)]
pub struct Rejection {
    /// Its position in the input, from 0.
    pub position: u64,
    /// Why it was refused; nothing of it was applied.
    pub error: Error,
}

/// Records per unit of work handed to an encoding thread.
const CHUNK: usize = 1024;

impl<'db> BulkLoad<'db> {
    /// A bulk load into `db`.
    pub fn new(db: &'db Database) -> BulkLoad<'db> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        BulkLoad {
            db,
            batch_size: 50_000,
            threads: cores.saturating_sub(1).max(1),
        }
    }

    /// Records per write transaction.
    pub fn batch_size(&mut self, records: usize) -> &mut Self {
        self.batch_size = records.max(1);
        self
    }

    /// Encoding threads; 0 keeps all work on the calling thread.
    pub fn threads(&mut self, threads: usize) -> &mut Self {
        self.threads = threads;
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
            let batch: Vec<R> = records.by_ref().take(self.batch_size).collect();
            let count = batch.len() as u64;
            let mut tx = self.db.begin_write()?;
            // Records with effects on other records are written one by one.
            let parallel = self.threads > 0
                && !R::AFFECTS_CONTACTS
                && (!R::ASSIGNABLE || crate::txn::assignment(&tx)?.rules.is_empty());
            if parallel {
                self.parallel_batch(&mut tx, batch, position, &mut report)?;
            } else if R::AFFECTS_CONTACTS {
                let records = (position..).zip(batch);
                let rows = tx.insert_related(records, &mut report.rejected)?;
                report.inserted += rows.len() as u64;
                report.rows.extend(rows);
            } else {
                for (offset, record) in batch.into_iter().enumerate() {
                    match tx.insert(record) {
                        Ok(id) => {
                            report.inserted += 1;
                            report.rows.push(crate::RecordId::row(id));
                        }
                        Err(e) if e.poisons() => return Err(e),
                        Err(error) => report.rejected.push(Rejection {
                            position: position + offset as u64,
                            error,
                        }),
                    }
                }
            }
            tx.commit()?;
            position += count;
            progress(position);
        }
        Ok(report)
    }

    /// One batch: worker threads prepare chunks and their index deltas, this thread
    /// writes them in input order.
    fn parallel_batch<R: Record>(
        &self,
        tx: &mut crate::WriteTransaction,
        batch: Vec<R>,
        start: u64,
        report: &mut BulkReport,
    ) -> Result<()> {
        let (config, now, actor) = tx.prepare_context()?;
        let first_row = tx.reserve_rows(R::KIND, batch.len())?;
        let (work_tx, work_rx) = unbounded::<(usize, Vec<R>)>();
        let (done_tx, done_rx) = bounded::<(usize, Prepared, IndexDelta)>(self.threads * 4);
        let mut chunks = 0;
        let mut batch = batch.into_iter();
        loop {
            let chunk: Vec<R> = batch.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            // The receiver lives until the scope below ends.
            let _ = work_tx.send((chunks, chunk));
            chunks += 1;
        }
        drop(work_tx);
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..self.threads {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                let (config, actor) = (&config, actor.as_str());
                scope.spawn(move || {
                    for (index, chunk) in work_rx.iter() {
                        let offset = index * CHUNK;
                        let mut delta = IndexDelta::default();
                        let prepared = chunk
                            .into_iter()
                            .enumerate()
                            .map(|(i, record)| {
                                // Fits: `reserve_rows` checked the whole batch.
                                let row = first_row + (offset + i) as u32;
                                let mut prepared = prepare_insert(config, record, row, now, actor);
                                if let Ok(p) = &mut prepared
                                    && p.change.is_ok()
                                    && let Some(terms) = p.terms.take()
                                {
                                    delta.diff(R::KIND, row, None, Some(&terms));
                                }
                                (start + (offset + i) as u64, row, prepared)
                            })
                            .collect();
                        if done_tx.send((index, prepared, delta)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);
            // Owned here, so that an early return drops it and unblocks the workers
            // before the scope joins them.
            let done_rx = done_rx;
            // Write chunks in input order, so that natural-key conflicts inside the batch
            // resolve as a one-by-one load would.
            let mut waiting = BTreeMap::new();
            let mut next = 0;
            for (index, prepared, delta) in done_rx.iter() {
                waiting.insert(index, (prepared, delta));
                while let Some((prepared, delta)) = waiting.remove(&next) {
                    tx.insert_prepared(R::KIND, prepared, delta, report)?;
                    next += 1;
                }
            }
            if next != chunks {
                return Err(Error::InvalidArgument(
                    "a bulk-load worker stopped early".into(),
                ));
            }
            Ok(())
        })
    }
}

type Prepared = Vec<(u64, u32, Result<PreparedInsert>)>;

/// A new record checked, staged and encoded away from the writer (bulk loads): what is
/// left is the checks that need storage (relations, natural keys) and the writes.
pub(crate) struct PreparedInsert {
    pub(crate) bytes: Vec<u8>,
    /// Taken by the preparing thread when it records the row in its chunk delta.
    pub(crate) terms: Option<Terms>,
    pub(crate) unique: Vec<(&'static str, String)>,
    pub(crate) references: Vec<(EntityKind, u32)>,
    /// The create move, or why it was refused (reported after the link checks, in the
    /// same order as a one-by-one insert).
    pub(crate) change: Result<Option<StageChange>>,
    /// An opted-out contact: its email consent entry is written with it.
    pub(crate) unsubscribed: bool,
}

/// Prepares the insert of a record that has no side effects on other records (not an
/// order or activity, no assignment rule to apply) at `row`.
pub(crate) fn prepare_insert<R: Record>(
    config: &Config,
    mut record: R,
    row: u32,
    now: Timestamp,
    actor: &str,
) -> Result<PreparedInsert> {
    normalise_new(&mut record, now);
    check_shape(config, &record)?;
    let change = transition::resolve(
        &config.machines,
        row,
        None,
        &mut record,
        MoveOp::Create,
        now,
        actor,
    );
    Ok(PreparedInsert {
        bytes: codec::encode(&record),
        terms: Some(record_terms(&record)),
        unique: record.unique_keys(),
        references: record.references(),
        change,
        unsubscribed: record.unsubscribed() == Some(true),
    })
}
