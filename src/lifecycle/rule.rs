//! Guards and the rules that refuse stage changes: the context of
//! `Error::IllegalTransition`. A leaf module, so that the error type can name them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::quote::quote;

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
            Guard::CustomFieldSet(name) => write!(f, "custom field {} must be set", quote(name)),
        }
    }
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
            Rule::UnknownPipeline(p) => {
                write!(f, "pipeline {} does not exist", quote(p))
            }
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
