//! Moving a database (a tenant) to another file, on this machine or another one,
//! while its writers go on: an online backup, then the source's change log followed
//! onto the copy, then a short cutover after which the source refuses writes with
//! [`Error::Moved`] and the copy takes over.
//!
//! **Invariant**: after [`TenantMove::cut_over`] the copy holds exactly the source's
//! last commit: its records, natural keys, indexes, histories, change log, consumers and
//! sequence, and no write is acknowledged by the source after that commit. *Enforced
//! by* the cutover order — refuse new writers, wait for the one under way, then apply
//! the rest (`txn::replica::freeze`, `WriteTransaction::begin`'s check) — and tested in
//! `tests/tenant_move.rs`, which compares both files table by table with writers
//! running throughout.

use std::path::{Path, PathBuf};

use crate::db::{Builder, Database};
use crate::error::{Error, Result};
use crate::txn::replica::{self, MOVE_CONSUMER};
use crate::txn::{ReadTransaction, Snapshot};

/// The most batches one commit of the copy applies.
const BATCHES_PER_COMMIT: usize = 1000;

/// A move under way: the copy follows the source until [`TenantMove::cut_over`].
///
/// ```no_run
/// # fn main() -> crmdb::Result<()> {
/// use crmdb::{Builder, Database, TenantMove};
/// let source = Database::open("acme.redb")?;
/// let mut moving = TenantMove::start(&source, "elsewhere/acme.redb", &Builder::new())?;
/// while moving.lag()? > 100 {
///     moving.catch_up()?; // writers go on meanwhile
/// }
/// let target = moving.cut_over("node-b")?; // the source now answers Error::Moved
/// # let _ = target; Ok(()) }
/// ```
#[derive(Debug)]
pub struct TenantMove<'a> {
    source: &'a Database,
    target: Database,
    path: PathBuf,
    /// The source sequence the copy holds.
    applied: u64,
}

impl<'a> TenantMove<'a> {
    /// Starts moving `source` to a new file at `path`, opened with `builder`: registers
    /// the move's durable consumer on the source (so that retention keeps what the copy
    /// has yet to apply), then takes an online backup.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the source's change log is off, when a move of
    /// it is under way already (its consumer `tenant_move` is registered: unregister it
    /// to abandon that move), or when `path` exists; storage errors.
    pub fn start(
        source: &'a Database,
        path: impl AsRef<Path>,
        builder: &Builder,
    ) -> Result<TenantMove<'a>> {
        let path = path.as_ref().to_path_buf();
        if !source.inner.feed.log {
            return Err(Error::InvalidArgument(
                "a move follows the change log, which this database keeps off".into(),
            ));
        }
        if path.exists() {
            return Err(Error::InvalidArgument(format!(
                "move target {} exists already",
                path.display()
            )));
        }
        source.write(|tx| {
            if tx.consumers()?.iter().any(|c| c.name == MOVE_CONSUMER) {
                return Err(Error::InvalidArgument(format!(
                    "a move of this database is under way (consumer {MOVE_CONSUMER} is \
                     registered); unregister it to abandon that move"
                )));
            }
            let last = tx.sequence()?;
            tx.register_consumer(MOVE_CONSUMER, last).map(|_| ())
        })?;
        let started = (|| -> Result<(Database, u64)> {
            let backup = source.backup(&path)?;
            let target = builder.open(&path)?;
            if !target.inner.feed.log {
                return Err(Error::InvalidArgument(
                    "a move's target must keep the change log on".into(),
                ));
            }
            source.write(|tx| tx.acknowledge(MOVE_CONSUMER, backup.sequence))?;
            Ok((target, backup.sequence))
        })();
        match started {
            Ok((target, applied)) => Ok(TenantMove {
                source,
                target,
                path,
                applied,
            }),
            Err(e) => {
                // Best effort: the move never started, so nothing must stay behind.
                let _ = source.write(|tx| tx.unregister_consumer(MOVE_CONSUMER));
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The source sequence the copy holds.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// How many of the source's commits the copy has yet to apply.
    ///
    /// # Errors
    /// A storage failure.
    pub fn lag(&self) -> Result<u64> {
        Ok(self
            .source
            .read(|r| r.sequence())?
            .saturating_sub(self.applied))
    }

    /// A read snapshot of the copy as it follows. The copy takes no writes until the
    /// cutover hands it over: a write of its own would not be the source's.
    ///
    /// # Errors
    /// A storage failure.
    pub fn read_target(&self) -> Result<ReadTransaction> {
        self.target.begin_read()
    }

    /// Applies every batch the source has committed since the last call, up to its last
    /// commit as of now, and acknowledges them on the source. Returns the sequence the
    /// copy now holds.
    ///
    /// # Errors
    /// Storage errors of either database; [`Error::Trimmed`] if the move's consumer was
    /// removed from the source and retention trimmed what the copy needed.
    pub fn catch_up(&mut self) -> Result<u64> {
        self.follow(false)?;
        let applied = self.applied;
        self.source
            .write(|tx| tx.acknowledge(MOVE_CONSUMER, applied))?;
        Ok(applied)
    }

    /// Brings the copy up to the source's snapshot as of now, `BATCHES_PER_COMMIT`
    /// batches per commit of the copy. With `sync`, the state the log does not carry
    /// is copied even when no batch is new.
    fn follow(&mut self, sync: bool) -> Result<()> {
        let snapshot = self.source.begin_read()?;
        let last = snapshot.sequence()?;
        if self.applied == last && !sync {
            return Ok(());
        }
        loop {
            let mut tx = self.target.begin_write()?;
            let through = tx.apply_from(&snapshot, self.applied, BATCHES_PER_COMMIT)?;
            tx.commit()?;
            self.applied = through;
            if through == last {
                return Ok(());
            }
        }
    }

    /// Cuts over: from now on the source refuses every write with [`Error::Moved`]
    /// naming `to` (where writers should go); the write under way finishes first, the
    /// batches since the last [`catch_up`](TenantMove::catch_up) are applied, the
    /// consumers, counters and derived indexes are copied, and the copy is handed back
    /// to take the writes. The pause writers see is this call's length, which
    /// [`lag`](TenantMove::lag) bounds: catch up until it is small, then cut over.
    ///
    /// # Errors
    /// Storage errors. On failure the source takes writes again (its move consumer is
    /// gone: start the move over), and the copy is left at `path` for inspection.
    pub fn cut_over(mut self, to: &str) -> Result<Database> {
        replica::freeze(&self.source.inner, to)?;
        match self.follow(true) {
            Ok(()) => Ok(self.target),
            Err(e) => {
                replica::thaw(&self.source.inner);
                Err(e)
            }
        }
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
