//! Group commit: concurrent callers' writes share one redb transaction and one commit
//! (one fsync on a durable file).
//!
//! Callers take turns on the open transaction: each runs its closure under a mark
//! (`undo.rs`), so that a closure that fails or panics takes back only its own writes.
//! Callers that arrive while a commit is being written wait for it and then run one
//! after another in the next transaction; the last of them to run commits it (or the
//! one that fills it to [`MAX_WRITES`]). Every caller whose closure succeeded is
//! answered only once that commit has returned, that is, once its write is durable.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{SYSTEM_ACTOR, Shared, WriteTransaction};
use crate::error::{Error, Result};

/// Closures per shared transaction at most: a bound on the work one commit carries
/// and on what a failing closure's caller waits for.
pub(crate) const MAX_WRITES: usize = 256;

/// The group commit of one database.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    turn: Condvar,
    /// Callers that have asked to write and not yet run their closure, counted before
    /// they take the lock, so that the caller before them leaves the commit to them.
    waiting: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// The open transaction, between callers.
    txn: Option<WriteTransaction>,
    /// The number of the open (or last) shared transaction.
    batch: u64,
    /// Closures of the open transaction that succeeded and wait for its commit.
    members: usize,
    /// The actors they set: the change-log batch records the actor they agree on.
    actors: BTreeSet<String>,
    /// Whether a shared transaction is being committed (no other can begin meanwhile).
    committing: bool,
    /// The last shared transaction whose commit has returned.
    done: u64,
    /// Shared transactions whose commit failed, with the reason, until every member has
    /// read it.
    failed: HashMap<u64, (String, usize)>,
}

/// Runs `f` in the database's shared write transaction and returns once the commit
/// that holds its writes is durable.
pub(crate) fn run<T, E: From<Error>>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut WriteTransaction) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let group = &shared.group;
    group.waiting.fetch_add(1, Ordering::SeqCst);
    let mut state = group.state.lock();
    while state.committing {
        group.turn.wait(&mut state);
    }
    let mut tx = match state.txn.take() {
        Some(tx) => tx,
        None => match WriteTransaction::begin(Arc::clone(shared)) {
            Ok(tx) => {
                state.batch += 1;
                state.members = 0;
                state.actors.clear();
                tx
            }
            Err(e) => {
                group.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(e.into());
            }
        },
    };
    let batch = state.batch;
    let mark = tx.mark();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
    let kept = matches!(outcome, Ok(Ok(_)));
    if kept {
        state.members += 1;
        state.actors.insert(tx.actor.clone());
    } else {
        // A rollback that fails poisons the transaction: its commit then fails and
        // every member is told.
        let _ = tx.rollback_to(mark);
    }
    tx.end_mark();
    let waiting = group.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
    // A poisoned transaction cannot take more writes: it is committed now (which fails
    // and tells its members), or dropped when it has none, and the next caller begins
    // a fresh one.
    let commit_now =
        state.members > 0 && (waiting == 0 || state.members >= MAX_WRITES || tx.poisoned);
    if state.members > 0 || (waiting > 0 && !tx.poisoned) {
        state.txn = Some(tx);
    }
    // Otherwise nothing is left to commit: dropping the transaction gives the writer back.
    let value = match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            if commit_now {
                let _ = commit(group, state, false);
            }
            return Err(e);
        }
        Err(panic) => {
            if commit_now {
                let _ = commit(group, state, false);
            } else {
                drop(state);
            }
            resume_unwind(panic);
        }
    };
    if commit_now {
        return commit(group, state, true).map(|()| value).map_err(E::from);
    }
    while state.done < batch {
        group.turn.wait(&mut state);
    }
    match state.failed.get_mut(&batch) {
        None => Ok(value),
        Some((reason, waiting)) => {
            let reason = reason.clone();
            *waiting -= 1;
            if *waiting == 0 {
                state.failed.remove(&batch);
            }
            Err(Error::GroupCommitFailed(reason).into())
        }
    }
}

/// Commits the open shared transaction outside the lock and tells its members; the
/// committing caller is one of them when `member`.
fn commit(group: &GroupCommit, mut state: MutexGuard<'_, State>, member: bool) -> Result<()> {
    let Some(mut txn) = state.txn.take() else {
        return Ok(());
    };
    let batch = state.batch;
    let waiting = state.members - usize::from(member);
    txn.actor = match state.actors.len() {
        1 => state.actors.pop_first().unwrap_or_default(),
        _ => SYSTEM_ACTOR.to_owned(),
    };
    state.committing = true;
    drop(state);
    // Whatever the commit does, the group is released afterwards: a panic in it must
    // not leave every later caller waiting.
    let outcome = catch_unwind(AssertUnwindSafe(|| txn.commit()));
    let mut state = group.state.lock();
    state.committing = false;
    state.done = batch;
    let reason = match &outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the commit panicked".to_owned()),
    };
    if let Some(reason) = reason
        && waiting > 0
    {
        state.failed.insert(batch, (reason, waiting));
    }
    group.turn.notify_all();
    drop(state);
    match outcome {
        Ok(result) => result,
        Err(panic) => resume_unwind(panic),
    }
}
