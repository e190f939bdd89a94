//! Lifecycle state machines: stages, edges, probabilities, guards, and **the**
//! transition function. **Invariant**: every stage change of every record, whatever
//! path it takes (insert, update, import, regress, reopen, automatic move, sweep,
//! machine change), is resolved by [`transition::resolve`] (which calls
//! [`transition::check_transition`]) or planned by [`remap`], and recorded by the
//! transaction in the history table in the same transaction.
//!
//! The planners here are pure: they decide from data the transaction reads (which
//! automatic move fires, which contacts a sweep moves, how a machine change remaps
//! stages), and the transaction applies their plans.

pub(crate) mod auto;
mod machine;
pub(crate) mod remap;
pub(crate) mod rule;
pub(crate) mod sweep;
pub(crate) mod transition;

use serde::{Deserialize, Serialize};

use crate::schema::{Stage, Timestamp};

pub use machine::{AutoMove, Backward, Forward, Machine, Machines, StageDef, SweepRule, Trigger};
pub use rule::{Guard, Rule};

/// The stage names of the default machines ([`Machine::contact_default`],
/// [`Machine::deal_default`]), for code that moves records through them.
pub mod stages {
    /// The default contact lifecycle (seed 000), in forward order.
    pub mod contact {
        /// Not yet a customer.
        pub const PROSPECT: &str = "prospect";
        /// Has responded (an inbound activity).
        pub const RESPONDER: &str = "responder";
        /// Has made a first paid order.
        pub const NEW_CUSTOMER: &str = "new_customer";
        /// Buys repeatedly.
        pub const ACTIVE: &str = "active";
        /// Quiet for a while (the sweep's first rule).
        pub const DORMANT: &str = "dormant";
        /// Quiet for long (the sweep's second rule).
        pub const CHURNED: &str = "churned";
        /// Every stage, in forward order.
        pub const ALL: [&str; 6] = [PROSPECT, RESPONDER, NEW_CUSTOMER, ACTIVE, DORMANT, CHURNED];
    }

    /// The default deal pipeline (seed 001), in forward order.
    pub mod deal {
        /// 10%.
        pub const LEAD: &str = "lead";
        /// 20%.
        pub const QUALIFIED: &str = "qualified";
        /// 40%.
        pub const NEEDS_ANALYSIS: &str = "needs_analysis";
        /// 60%; needs an amount.
        pub const PROPOSAL: &str = "proposal";
        /// 80%.
        pub const NEGOTIATION: &str = "negotiation";
        /// 100%, terminal; needs an amount and a close date.
        pub const WON: &str = "won";
        /// 0%, terminal; needs a lost reason.
        pub const LOST: &str = "lost";
        /// Every stage, in forward order.
        pub const ALL: [&str; 7] = [
            LEAD,
            QUALIFIED,
            NEEDS_ANALYSIS,
            PROPOSAL,
            NEGOTIATION,
            WON,
            LOST,
        ];
    }
}

/// A move the sweep made ([`WriteTransaction::sweep`](crate::WriteTransaction::sweep)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepMove {
    /// The contact moved.
    pub contact: crate::ContactId,
    /// The stage it was in.
    pub from: Stage,
    /// The stage it moved to.
    pub to: Stage,
}

/// The kind of a stage change, recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The record was created in this stage.
    Create,
    /// A plain move.
    Move,
    /// An explicit backward move with a reason.
    Regress,
    /// An explicit move out of a terminal stage with a reason.
    Reopen,
    /// An automatic move caused by an order or activity.
    Automatic,
    /// An inactivity sweep.
    Sweep,
    /// A machine replacement mapped the record.
    Remap,
    /// A merge took the merged record's stage, further along the machine.
    Merge,
    /// Undoing a merge put back the stage the survivor had before it.
    Unmerge,
}

/// One accepted stage change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageChange {
    /// The stage left; `None` on create.
    pub from: Option<Stage>,
    /// The stage entered.
    pub to: Stage,
    /// When (the transaction clock).
    pub at: Timestamp,
    /// Who (the transaction's actor, or `system` for automatic moves).
    pub actor: String,
    /// Why, for regress, reopen, automatic moves and sweeps.
    pub reason: Option<String>,
    /// How.
    pub kind: ChangeKind,
}

/// The operation asking for a stage change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveOp<'a> {
    Create,
    Move,
    Regress(&'a str),
    Reopen(&'a str),
    /// An automatic move, with its cause.
    Automatic(&'a str),
    /// An inactivity sweep, with the rule that fired.
    Sweep(&'a str),
}

impl<'a> MoveOp<'a> {
    pub(crate) fn change_kind(self) -> ChangeKind {
        match self {
            MoveOp::Create => ChangeKind::Create,
            MoveOp::Move => ChangeKind::Move,
            MoveOp::Regress(_) => ChangeKind::Regress,
            MoveOp::Reopen(_) => ChangeKind::Reopen,
            MoveOp::Automatic(_) => ChangeKind::Automatic,
            MoveOp::Sweep(_) => ChangeKind::Sweep,
        }
    }

    pub(crate) fn reason(self) -> Option<&'a str> {
        match self {
            MoveOp::Regress(r) | MoveOp::Reopen(r) | MoveOp::Automatic(r) | MoveOp::Sweep(r) => {
                Some(r)
            }
            MoveOp::Create | MoveOp::Move => None,
        }
    }
}
