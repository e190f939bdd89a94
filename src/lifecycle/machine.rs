//! Lifecycle machines as data: stages in forward order, edges, probabilities, guards,
//! automatic moves and sweep rules, with the defaults of seeds 000 and 001.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{DEFAULT_PIPELINE, Stage};

use super::{Guard, stages};

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
            stages: stages::contact::ALL
                .into_iter()
                .map(|s| stage_def(s, None, false))
                .collect(),
            forward: Forward::Skip,
            backward: Backward::RegressOnly,
            returns: vec![
                (
                    Stage::new(stages::contact::DORMANT),
                    Stage::new(stages::contact::ACTIVE),
                ),
                (
                    Stage::new(stages::contact::CHURNED),
                    Stage::new(stages::contact::ACTIVE),
                ),
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
                stage_def(stages::deal::LEAD, Some(10), false),
                stage_def(stages::deal::QUALIFIED, Some(20), false),
                stage_def(stages::deal::NEEDS_ANALYSIS, Some(40), false),
                stage_def(stages::deal::PROPOSAL, Some(60), false),
                stage_def(stages::deal::NEGOTIATION, Some(80), false),
                stage_def(stages::deal::WON, Some(100), true),
                stage_def(stages::deal::LOST, Some(0), true),
            ],
            forward: Forward::Skip,
            backward: Backward::Free,
            returns: Vec::new(),
            guards: vec![
                (Stage::new(stages::deal::PROPOSAL), Guard::AmountPositive),
                (Stage::new(stages::deal::WON), Guard::AmountPositive),
                (Stage::new(stages::deal::WON), Guard::CloseDateSet),
                (Stage::new(stages::deal::LOST), Guard::LostReasonSet),
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
                    "stage name {} must be 1 to 64 bytes of [a-z0-9_]",
                    crate::error::quote(stage.name.as_str())
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
                    from: vec![s(stages::contact::PROSPECT), s(stages::contact::RESPONDER)],
                    to: s(stages::contact::NEW_CUSTOMER),
                },
                AutoMove {
                    trigger: Trigger::RepeatOrder,
                    from: vec![s(stages::contact::NEW_CUSTOMER)],
                    to: s(stages::contact::ACTIVE),
                },
                AutoMove {
                    trigger: Trigger::AnyOrder,
                    from: vec![s(stages::contact::DORMANT), s(stages::contact::CHURNED)],
                    to: s(stages::contact::ACTIVE),
                },
                AutoMove {
                    trigger: Trigger::InboundActivity,
                    from: vec![s(stages::contact::PROSPECT)],
                    to: s(stages::contact::RESPONDER),
                },
            ],
            sweep: vec![
                SweepRule {
                    from: vec![s(stages::contact::ACTIVE)],
                    to: s(stages::contact::DORMANT),
                    after_days: 90,
                },
                SweepRule {
                    from: vec![s(stages::contact::ACTIVE), s(stages::contact::DORMANT)],
                    to: s(stages::contact::CHURNED),
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
                reason: format!("bad pipeline name {}", crate::error::quote(name)),
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

    /// The machine a staged record runs in: its deal pipeline, or the contact
    /// lifecycle (`None`).
    pub(crate) fn for_pipeline(&self, pipeline: Option<&str>) -> Option<&Machine> {
        match pipeline {
            None => Some(&self.contact),
            Some(name) => self.pipeline(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_machines_are_valid() {
        Machines::default().validate().expect("defaults are valid");
    }

    #[test]
    fn stage_constants_are_the_default_machines_stages() {
        let names = |m: &Machine| {
            m.stages
                .iter()
                .map(|s| s.name.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&Machine::contact_default()), stages::contact::ALL);
        assert_eq!(names(&Machine::deal_default()), stages::deal::ALL);
    }
}
