//! Lifecycle state machines: stages, edges, probabilities, guards, and **the** transition
//! function. **Invariant**: every stage change of every record, whatever path it takes
//! (insert, update, import, regress, reopen, automatic move, sweep, machine change),
//! is checked by [`check_transition`] and recorded by `txn.rs` in the history table in the
//! same transaction.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{Contact, Deal, Timestamp, Value};

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

/// The pipeline name used by deals whose `pipeline` is empty.
pub const DEFAULT_PIPELINE: &str = "default";

/// A stage name. Empty means "not set" (on insert: the machine's first stage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stage(String);

impl Stage {
    /// A stage by name.
    pub fn new(name: impl Into<String>) -> Stage {
        Stage(name.into())
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether no stage is set.
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Stage {
    fn from(name: &str) -> Stage {
        Stage(name.to_owned())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { &self.0 })
    }
}

/// One stage of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageDef {
    /// The name.
    pub name: Stage,
    /// Win probability in percent (deal pipelines), used for weighted pipeline.
    pub probability: Option<u8>,
    /// Terminal stages can be left only by an explicit reopen.
    pub terminal: bool,
}

/// How far forward a plain move may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// Only to the next stage.
    Adjacent,
    /// To any later stage.
    Skip,
}

/// Whether a plain move may go backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backward {
    /// Backward moves between open stages are plain moves (deal pipelines).
    Free,
    /// Backward moves need an explicit regress with a reason (contact lifecycle), except
    /// the machine's declared returns.
    RegressOnly,
}

/// A condition for entering a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guard {
    /// The deal's amount is above zero.
    AmountPositive,
    /// The deal has a close date.
    CloseDateSet,
    /// The deal has a non-empty lost reason.
    LostReasonSet,
    /// The record carries a value for this custom field.
    CustomFieldSet(String),
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guard::AmountPositive => f.write_str("amount must be above zero"),
            Guard::CloseDateSet => f.write_str("close date must be set"),
            Guard::LostReasonSet => f.write_str("lost reason must be set"),
            Guard::CustomFieldSet(name) => write!(f, "custom field {name:?} must be set"),
        }
    }
}

/// What causes an automatic contact move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// The contact's first paid order.
    FirstOrder,
    /// A paid order after the first.
    RepeatOrder,
    /// Any paid order.
    AnyOrder,
    /// An inbound activity about the contact.
    InboundActivity,
}

/// An automatic move: on `trigger`, a contact in one of `from` moves to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoMove {
    /// The cause.
    pub trigger: Trigger,
    /// Stages the move applies to.
    pub from: Vec<Stage>,
    /// The stage moved to.
    pub to: Stage,
}

/// An inactivity rule for [`sweep`](crate::WriteTransaction::sweep): contacts in `from`
/// with no activity, order or creation in the last `after_days` days move to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRule {
    /// Stages swept.
    pub from: Vec<Stage>,
    /// Where inactive contacts go.
    pub to: Stage,
    /// Days without activity, order or creation.
    pub after_days: u32,
}

/// A lifecycle state machine, declared as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The stages, in forward order.
    pub stages: Vec<StageDef>,
    /// Forward rule.
    pub forward: Forward,
    /// Backward rule.
    pub backward: Backward,
    /// Extra edges allowed as plain moves whatever the backward rule (win-back returns).
    pub returns: Vec<(Stage, Stage)>,
    /// Conditions for entering stages.
    pub guards: Vec<(Stage, Guard)>,
}

fn stage_def(name: &str, probability: Option<u8>, terminal: bool) -> StageDef {
    StageDef {
        name: Stage::new(name),
        probability,
        terminal,
    }
}

impl Machine {
    /// The default contact lifecycle (seed 000): prospect → responder → new_customer →
    /// active → dormant → churned; forward skips allowed; dormant → active and
    /// churned → active allowed (win-back); other backward moves only by regress.
    pub fn contact_default() -> Machine {
        Machine {
            stages: [
                "prospect",
                "responder",
                "new_customer",
                "active",
                "dormant",
                "churned",
            ]
            .into_iter()
            .map(|s| stage_def(s, None, false))
            .collect(),
            forward: Forward::Skip,
            backward: Backward::RegressOnly,
            returns: vec![
                (Stage::new("dormant"), Stage::new("active")),
                (Stage::new("churned"), Stage::new("active")),
            ],
            guards: Vec::new(),
        }
    }

    /// The default deal pipeline (seed 001): lead 10% → qualified 20% → needs_analysis 40%
    /// → proposal 60% → negotiation 80% → won 100% | lost 0%. Skips and backward moves
    /// between open stages allowed; won and lost terminal; proposal needs an amount, won
    /// needs amount and close date, lost needs a lost reason.
    pub fn deal_default() -> Machine {
        Machine {
            stages: vec![
                stage_def("lead", Some(10), false),
                stage_def("qualified", Some(20), false),
                stage_def("needs_analysis", Some(40), false),
                stage_def("proposal", Some(60), false),
                stage_def("negotiation", Some(80), false),
                stage_def("won", Some(100), true),
                stage_def("lost", Some(0), true),
            ],
            forward: Forward::Skip,
            backward: Backward::Free,
            returns: Vec::new(),
            guards: vec![
                (Stage::new("proposal"), Guard::AmountPositive),
                (Stage::new("won"), Guard::AmountPositive),
                (Stage::new("won"), Guard::CloseDateSet),
                (Stage::new("lost"), Guard::LostReasonSet),
            ],
        }
    }

    /// The position of a stage, `None` if the machine does not have it.
    pub fn position(&self, stage: &Stage) -> Option<usize> {
        self.stages.iter().position(|s| &s.name == stage)
    }

    /// One stage's definition.
    pub fn stage(&self, stage: &Stage) -> Option<&StageDef> {
        self.stages.iter().find(|s| &s.name == stage)
    }

    /// The first stage, used when a record is inserted without one.
    pub fn initial(&self) -> Option<&Stage> {
        self.stages.first().map(|s| &s.name)
    }

    /// Checks that the machine is well formed.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidMachine { reason });
        if self.stages.is_empty() {
            return bad("a machine needs at least one stage".into());
        }
        for (i, stage) in self.stages.iter().enumerate() {
            if crate::schema::check_stage_name(stage.name.as_str()).is_err() {
                return bad(format!(
                    "stage name {:?} must be 1 to 64 bytes of [a-z0-9_]",
                    stage.name.as_str()
                ));
            }
            if self.stages[..i].iter().any(|s| s.name == stage.name) {
                return bad(format!("stage {} declared twice", stage.name));
            }
            if stage.probability.is_some_and(|p| p > 100) {
                return bad(format!("stage {} has a probability above 100", stage.name));
            }
        }
        if self.stages.iter().all(|s| s.terminal) {
            return bad("a machine needs at least one open stage".into());
        }
        for (from, to) in &self.returns {
            if self.position(from).is_none() || self.position(to).is_none() {
                return bad(format!("return {from} -> {to} names an unknown stage"));
            }
        }
        for (stage, _) in &self.guards {
            if self.position(stage).is_none() {
                return bad(format!("guard on unknown stage {stage}"));
            }
        }
        Ok(())
    }
}

/// Every machine of a database plus its automatic rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machines {
    /// The contact lifecycle.
    pub contact: Machine,
    /// Deal pipelines by name; `default` must exist.
    pub pipelines: BTreeMap<String, Machine>,
    /// Automatic contact moves.
    pub auto_moves: Vec<AutoMove>,
    /// Inactivity rules applied by the sweep.
    pub sweep: Vec<SweepRule>,
}

impl Default for Machines {
    /// The spec's defaults, with a sweep of active → dormant after 90 days and to churned
    /// after 180 days.
    fn default() -> Machines {
        let s = Stage::new;
        Machines {
            contact: Machine::contact_default(),
            pipelines: BTreeMap::from([(DEFAULT_PIPELINE.to_owned(), Machine::deal_default())]),
            auto_moves: vec![
                AutoMove {
                    trigger: Trigger::FirstOrder,
                    from: vec![s("prospect"), s("responder")],
                    to: s("new_customer"),
                },
                AutoMove {
                    trigger: Trigger::RepeatOrder,
                    from: vec![s("new_customer")],
                    to: s("active"),
                },
                AutoMove {
                    trigger: Trigger::AnyOrder,
                    from: vec![s("dormant"), s("churned")],
                    to: s("active"),
                },
                AutoMove {
                    trigger: Trigger::InboundActivity,
                    from: vec![s("prospect")],
                    to: s("responder"),
                },
            ],
            sweep: vec![
                SweepRule {
                    from: vec![s("active")],
                    to: s("dormant"),
                    after_days: 90,
                },
                SweepRule {
                    from: vec![s("active"), s("dormant")],
                    to: s("churned"),
                    after_days: 180,
                },
            ],
        }
    }
}

impl Machines {
    /// Checks every machine and rule.
    pub fn validate(&self) -> Result<()> {
        self.contact.validate()?;
        if !self.pipelines.contains_key(DEFAULT_PIPELINE) {
            return Err(Error::InvalidMachine {
                reason: "the default pipeline is missing".into(),
            });
        }
        for (name, machine) in &self.pipelines {
            crate::schema::check_stage_name(name).map_err(|_| Error::InvalidMachine {
                reason: format!("bad pipeline name {name:?}"),
            })?;
            machine.validate()?;
        }
        let known = |s: &Stage| self.contact.position(s).is_some();
        for rule in &self.auto_moves {
            if !known(&rule.to) || !rule.from.iter().all(known) {
                return Err(Error::InvalidMachine {
                    reason: format!("automatic move to {} names an unknown stage", rule.to),
                });
            }
        }
        for rule in &self.sweep {
            if !known(&rule.to) || !rule.from.iter().all(known) {
                return Err(Error::InvalidMachine {
                    reason: format!("sweep rule to {} names an unknown stage", rule.to),
                });
            }
        }
        Ok(())
    }

    /// The pipeline machine of a deal.
    pub(crate) fn pipeline(&self, name: &str) -> Option<&Machine> {
        self.pipelines.get(name)
    }
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
}

/// The rule that refused a stage change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Rule {
    /// The target stage is not part of the machine.
    UnknownStage,
    /// The record's pipeline does not exist.
    UnknownPipeline(String),
    /// The machine allows only moves to the next stage.
    SkipNotAllowed,
    /// Backward moves need an explicit regress with a reason.
    BackwardNeedsRegress,
    /// A terminal stage can be left only by an explicit reopen with a reason.
    TerminalNeedsReopen,
    /// Reopen applies only to records in a terminal stage, towards an open stage.
    ReopenNotApplicable,
    /// Regress applies only to backward moves out of open stages.
    RegressNotBackward,
    /// Regress and reopen need a non-empty reason.
    ReasonRequired,
    /// A guard of the target stage failed.
    Guard(Guard),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::UnknownStage => f.write_str("the stage is not part of the machine"),
            Rule::UnknownPipeline(p) => write!(f, "pipeline {p:?} does not exist"),
            Rule::SkipNotAllowed => f.write_str("the machine does not allow skipping stages"),
            Rule::BackwardNeedsRegress => {
                f.write_str("backward moves need an explicit regress with a reason")
            }
            Rule::TerminalNeedsReopen => {
                f.write_str("a terminal stage can be left only by an explicit reopen with a reason")
            }
            Rule::ReopenNotApplicable => {
                f.write_str("reopen moves a record from a terminal stage to an open stage")
            }
            Rule::RegressNotBackward => {
                f.write_str("regress moves a record backward between open stages")
            }
            Rule::ReasonRequired => f.write_str("a reason is required"),
            Rule::Guard(guard) => write!(f, "guard failed: {guard}"),
        }
    }
}

/// What a guard looks at.
pub(crate) enum GuardView<'a> {
    Contact(&'a Contact),
    Deal(&'a Deal),
}

impl GuardView<'_> {
    fn holds(&self, guard: &Guard) -> bool {
        let custom = |name: &str| -> bool {
            let values: &BTreeMap<String, Value> = match self {
                GuardView::Contact(c) => &c.custom,
                GuardView::Deal(d) => &d.custom,
            };
            values.contains_key(name)
        };
        match (guard, self) {
            (Guard::CustomFieldSet(name), _) => custom(name),
            (Guard::AmountPositive, GuardView::Deal(d)) => d.amount.0 > 0,
            (Guard::CloseDateSet, GuardView::Deal(d)) => d.close_date.is_some(),
            (Guard::LostReasonSet, GuardView::Deal(d)) => d
                .lost_reason
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty()),
            // Deal-only guards never hold for contacts.
            (_, GuardView::Contact(_)) => false,
        }
    }
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

/// **The** transition function: may a record in `from` (`None` on create) go to `to`
/// by `op`, given the record as it will be written?
pub(crate) fn check_transition(
    machine: &Machine,
    from: Option<&Stage>,
    to: &Stage,
    op: MoveOp<'_>,
    record: &GuardView<'_>,
) -> std::result::Result<(), Rule> {
    let Some(to_pos) = machine.position(to) else {
        return Err(Rule::UnknownStage);
    };
    let to_def = &machine.stages[to_pos];
    if let MoveOp::Regress(reason) | MoveOp::Reopen(reason) = op
        && reason.trim().is_empty()
    {
        return Err(Rule::ReasonRequired);
    }
    match (op, from) {
        (MoveOp::Create, _) | (_, None) => {}
        (_, Some(from)) => {
            // A record in a stage the machine no longer has can only be remapped; treat
            // its position as unknown and allow nothing but reopen-like explicit moves.
            let from_pos = machine.position(from).ok_or(Rule::UnknownStage)?;
            let from_def = &machine.stages[from_pos];
            match op {
                MoveOp::Reopen(_) => {
                    if !from_def.terminal || to_def.terminal {
                        return Err(Rule::ReopenNotApplicable);
                    }
                }
                _ if from_def.terminal => return Err(Rule::TerminalNeedsReopen),
                MoveOp::Regress(_) => {
                    if to_pos >= from_pos || to_def.terminal {
                        return Err(Rule::RegressNotBackward);
                    }
                }
                _ => {
                    let is_return = machine.returns.iter().any(|(f, t)| f == from && t == to);
                    if to_pos > from_pos {
                        if machine.forward == Forward::Adjacent
                            && to_pos != from_pos + 1
                            && !is_return
                        {
                            return Err(Rule::SkipNotAllowed);
                        }
                    } else if !is_return && machine.backward == Backward::RegressOnly {
                        return Err(Rule::BackwardNeedsRegress);
                    }
                }
            }
        }
    }
    for (stage, guard) in &machine.guards {
        if stage == to && !record.holds(guard) {
            return Err(Rule::Guard(guard.clone()));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_machines_are_valid() {
        Machines::default().validate().expect("defaults are valid");
    }
}
