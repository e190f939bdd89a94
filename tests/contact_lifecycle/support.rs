//! Shared helpers: a manual clock, record builders and the move checker of the case tables.

use crmdb::{
    ChangeKind, Contact, ContactId, Database, Deal, DealId, Error, Money, Rule, Snapshot, Stage,
    StageDef, WriteTransaction,
};

/// An accepted move in the case tables.
pub(crate) const OK: Option<Rule> = None;

#[path = "../support/records.rs"]
mod records;

pub(crate) use records::{clocked, paid_order, t0};

/// How a case asks for the move.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Move,
    Regress(&'static str),
    Reopen(&'static str),
}

fn apply(tx: &mut WriteTransaction, id: crmdb::StagedId, to: &str, op: Op) -> crmdb::Result<()> {
    match op {
        Op::Move => tx.move_stage(id, to),
        Op::Regress(reason) => tx.regress(id, to, reason),
        Op::Reopen(reason) => tx.reopen(id, to, reason),
    }
}

fn change_kind(op: Op) -> ChangeKind {
    match op {
        Op::Move => ChangeKind::Move,
        Op::Regress(_) => ChangeKind::Regress,
        Op::Reopen(_) => ChangeKind::Reopen,
    }
}

/// Checks one move of a record created in `from`: accepted with one new history entry,
/// or refused with the error naming record, stages and rule, and nothing applied.
#[track_caller]
pub(crate) fn check_move<I>(
    db: &Database,
    insert: impl FnOnce(&mut WriteTransaction) -> crmdb::Result<I>,
    (from, to, op): (&str, &str, Op),
    expected: Option<Rule>,
) where
    I: Into<crmdb::StagedId> + Copy + crmdb::RecordId,
    I::Record: Staged,
{
    let case = format!("{from} -> {to} by {op:?}");
    let id = db
        .write(insert)
        .unwrap_or_else(|e| panic!("{case}: setting up in {from}: {e}"));
    let result = db.write(|tx| {
        tx.set_actor("tester");
        apply(tx, id.into(), to, op)
    });
    let (stage, history) = db
        .read(|r| Ok((r.get(id)?.stage(), r.history(id)?)))
        .unwrap_or_else(|e| panic!("{case}: reading back: {e}"));
    match (expected, result) {
        (None, Ok(())) => {
            assert_eq!(stage.as_str(), to, "{case}");
            assert_eq!(history.len(), 2, "{case}: create and move");
            let last = &history[1];
            assert_eq!(last.from.as_ref().map(Stage::as_str), Some(from), "{case}");
            assert_eq!(last.to.as_str(), to, "{case}");
            assert_eq!(last.kind, change_kind(op), "{case}");
            assert_eq!(last.actor, "tester", "{case}");
            let reason = match op {
                Op::Move => None,
                Op::Regress(r) | Op::Reopen(r) => Some(r),
            };
            assert_eq!(last.reason.as_deref(), reason, "{case}");
        }
        (
            Some(rule),
            Err(Error::IllegalTransition {
                kind,
                id: row,
                from: f,
                to: t,
                rule: r,
            }),
        ) => {
            assert_eq!(kind, <I::Record as crmdb::Record>::KIND, "{case}");
            assert_eq!(row, id.row(), "{case}");
            assert_eq!((f.as_str(), t.as_str()), (from, to), "{case}");
            assert_eq!(r, rule, "{case}");
            assert_eq!(stage.as_str(), from, "{case}: nothing applied");
            assert_eq!(history.len(), 1, "{case}: no history for a refusal");
        }
        (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
    }
}

/// Records with a stage.
pub(crate) trait Staged {
    fn stage(&self) -> Stage;
}

impl Staged for Contact {
    fn stage(&self) -> Stage {
        self.stage.clone()
    }
}

impl Staged for Deal {
    fn stage(&self) -> Stage {
        self.stage.clone()
    }
}

pub(crate) fn contact_in(
    stage: &str,
) -> impl FnOnce(&mut WriteTransaction) -> crmdb::Result<ContactId> {
    let stage = Stage::new(stage);
    move |tx| {
        tx.insert(Contact {
            stage,
            ..Default::default()
        })
    }
}

/// A deal created in `stage` with the given amount, close date and lost reason.
pub(crate) fn deal_in(
    stage: &str,
    amount: i64,
    close_date: bool,
    lost_reason: Option<&str>,
) -> impl FnOnce(&mut WriteTransaction) -> crmdb::Result<DealId> {
    let deal = Deal {
        name: "deal".into(),
        stage: Stage::new(stage),
        amount: Money::from_major(amount),
        close_date: close_date.then(t0),
        lost_reason: lost_reason.map(str::to_owned),
        ..Default::default()
    };
    move |tx| tx.insert(deal)
}

pub(crate) fn stage_defs(names: &[(&str, bool)]) -> Vec<StageDef> {
    names
        .iter()
        .map(|(name, terminal)| StageDef {
            name: Stage::new(*name),
            probability: None,
            terminal: *terminal,
        })
        .collect()
}
