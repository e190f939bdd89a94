//! **The** transition function and the one stage resolution every write goes through.

use super::{Backward, ChangeKind, Forward, Guard, Machine, Machines, MoveOp, Rule, StageChange};
use crate::error::{Error, Result};
use crate::schema::{EntityKind, GuardView, Record, Stage, Timestamp};

/// The actor recorded for automatic moves and when no actor is set.
pub const SYSTEM_ACTOR: &str = "system";

/// The one constructor of [`Error::IllegalTransition`]: a refused move of record `row`
/// of `kind` from `from` (`None` on create) to `to`.
pub(crate) fn illegal(
    kind: EntityKind,
    row: u32,
    from: Option<&Stage>,
    to: &Stage,
    rule: Rule,
) -> Error {
    Error::IllegalTransition {
        kind,
        id: row,
        from: from.map_or_else(|| "(none)".into(), Stage::to_string),
        to: to.to_string(),
        rule,
    }
}

fn holds(record: &GuardView<'_>, guard: &Guard) -> bool {
    match guard {
        Guard::CustomFieldSet(name) => record.custom.contains_key(name),
        // Deal-only guards never hold for records without the field (contacts).
        Guard::AmountPositive => record.amount.is_some_and(|a| a.0 > 0),
        Guard::CloseDateSet => record.close_date.is_some(),
        Guard::LostReasonSet => record.lost_reason.is_some_and(|r| !r.trim().is_empty()),
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
        if stage == to && !holds(record, guard) {
            return Err(Rule::Guard(guard.clone()));
        }
    }
    Ok(())
}

/// **The** stage resolution of a write: fills an unset stage (the stored one, or the
/// machine's first), and checks a change with [`check_transition`]. Returns the
/// history entry to append if the stage changes. Pure: no storage access. Records
/// without a stage resolve to `None`.
pub(crate) fn resolve<R: Record>(
    machines: &Machines,
    row: u32,
    old: Option<&R>,
    new: &mut R,
    op: MoveOp<'_>,
    now: Timestamp,
    actor: &str,
) -> Result<Option<StageChange>> {
    let Some(staged) = new.staged() else {
        return Ok(None);
    };
    let pipeline = staged.pipeline.map(str::to_owned);
    let old_staged = old.and_then(|o| o.staged());
    let old_stage = old_staged.as_ref().map(|s| s.stage.clone());
    let machine = machines.for_pipeline(pipeline.as_deref()).ok_or_else(|| {
        illegal(
            R::KIND,
            row,
            old_stage.as_ref(),
            staged.stage,
            Rule::UnknownPipeline(pipeline.clone().unwrap_or_default()),
        )
    })?;
    if old_staged.is_some_and(|o| o.pipeline != pipeline.as_deref()) {
        return Err(Error::InvalidField {
            kind: R::KIND,
            field: "pipeline".into(),
            reason: "a deal cannot change pipeline; close it and open a new deal".into(),
        });
    }
    if let Some(stage) = new.stage_mut()
        && stage.is_unset()
    {
        *stage = old_stage
            .clone()
            .or_else(|| machine.initial().cloned())
            .unwrap_or_default();
    }
    let Some(staged) = new.staged() else {
        return Ok(None);
    };
    let new_stage = staged.stage;
    if old_stage.as_ref() == Some(new_stage) {
        return Ok(None);
    }
    let op = if old_stage.is_none() {
        MoveOp::Create
    } else {
        op
    };
    check_transition(machine, old_stage.as_ref(), new_stage, op, &staged.guard)
        .map_err(|rule| illegal(R::KIND, row, old_stage.as_ref(), new_stage, rule))?;
    let actor = if matches!(op, MoveOp::Automatic(_) | MoveOp::Sweep(_)) {
        SYSTEM_ACTOR
    } else {
        actor
    };
    Ok(Some(StageChange {
        from: old_stage,
        to: new_stage.clone(),
        at: now,
        actor: actor.to_owned(),
        reason: op.reason().map(str::to_owned),
        kind: op.change_kind(),
    }))
}

/// A merge entry: the survivor took the stage of the record merged into it, further
/// along its machine (`undo` false), or got its own back when the merge was undone.
/// Not checked against the machine: a merge takes a stage the other record reached
/// through it, and undoing puts back one the survivor had.
pub(crate) fn merged(
    from: &Stage,
    to: &Stage,
    now: Timestamp,
    actor: &str,
    reason: String,
    undo: bool,
) -> StageChange {
    StageChange {
        from: Some(from.clone()),
        to: to.clone(),
        at: now,
        actor: actor.to_owned(),
        reason: Some(reason),
        kind: if undo {
            ChangeKind::Unmerge
        } else {
            ChangeKind::Merge
        },
    }
}

/// A remap entry: the record's stage changed by a machine replacement.
pub(crate) fn remapped(from: &Stage, to: &Stage, now: Timestamp, actor: &str) -> StageChange {
    StageChange {
        from: Some(from.clone()),
        to: to.clone(),
        at: now,
        actor: actor.to_owned(),
        reason: Some("machine replaced".into()),
        kind: ChangeKind::Remap,
    }
}
