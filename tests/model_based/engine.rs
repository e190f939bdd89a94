//! Runs an operation on the engine and compares its outcome with the model.

use crmdb::{
    Account, AccountId, Contact, ContactId, Money, Order, OrderId, OrderStatus, Owner, OwnerId,
    WriteTransaction,
};

use crate::ops::{EMAILS, LTVS, Op, REGIONS, STAGE_NAMES, TAGS};
use crate::reference::{Model, outcome_of};

fn run_engine(tx: &mut WriteTransaction, op: &Op, m: &Model) -> crmdb::Result<()> {
    match op {
        Op::NewContact {
            email,
            region,
            tags,
            ltv,
            owner,
            account,
            stage,
        } => tx
            .insert(Contact {
                name: "c".into(),
                email: email.map(|e| EMAILS[usize::from(e)].to_owned()),
                region: region.map(|r| REGIONS[usize::from(r)].to_owned()),
                owner: owner.map(|o| OwnerId::new(m.pick(1, o))),
                account: account.map(|a| AccountId::new(m.pick(2, a))),
                stage: stage.map_or_else(Default::default, |s| STAGE_NAMES[usize::from(s)].into()),
                tags: tags
                    .iter()
                    .map(|t| TAGS[usize::from(*t)].to_owned())
                    .collect(),
                lifetime_value: Money(LTVS[usize::from(*ltv)]),
                ..Default::default()
            })
            .map(drop),
        Op::Update {
            who,
            region,
            ltv,
            email,
            owner,
        } => tx.modify(ContactId::new(m.pick(0, *who)), |c| {
            c.region = region.map(|r| REGIONS[usize::from(r)].to_owned());
            c.lifetime_value = Money(LTVS[usize::from(*ltv)]);
            c.email = email.map(|e| EMAILS[usize::from(e)].to_owned());
            c.owner = owner.map(|o| OwnerId::new(m.pick(1, o)));
        }),
        Op::Tag { who, tag, add } => {
            let id = ContactId::new(m.pick(0, *who));
            let tag = TAGS[usize::from(*tag)];
            if *add {
                tx.add_tag(id, tag)
            } else {
                tx.remove_tag(id, tag)
            }
        }
        Op::Move { who, stage } => tx.move_stage(
            ContactId::new(m.pick(0, *who)),
            STAGE_NAMES[usize::from(*stage)],
        ),
        Op::Regress { who, stage, reason } => tx.regress(
            ContactId::new(m.pick(0, *who)),
            STAGE_NAMES[usize::from(*stage)],
            if *reason { "asked to" } else { " " },
        ),
        Op::Delete { kind, who } => {
            let row = m.pick(usize::from(*kind), *who);
            match kind {
                0 => tx.soft_delete(ContactId::new(row)),
                1 => tx.soft_delete(OwnerId::new(row)),
                2 => tx.soft_delete(AccountId::new(row)),
                _ => tx.soft_delete(OrderId::new(row)),
            }
        }
        Op::Restore { kind, who } => {
            let row = m.pick(usize::from(*kind), *who);
            match kind {
                0 => tx.restore(ContactId::new(row)),
                1 => tx.restore(OwnerId::new(row)),
                2 => tx.restore(AccountId::new(row)),
                _ => tx.restore(OrderId::new(row)),
            }
        }
        Op::Purge { kind, who } => {
            let row = m.pick(usize::from(*kind), *who);
            match kind {
                0 => tx.purge(ContactId::new(row)),
                1 => tx.purge(OwnerId::new(row)),
                2 => tx.purge(AccountId::new(row)),
                _ => tx.purge(OrderId::new(row)),
            }
        }
        Op::NewOwner => tx
            .insert(Owner {
                name: "o".into(),
                ..Default::default()
            })
            .map(drop),
        Op::NewAccount => tx
            .insert(Account {
                name: "a".into(),
                ..Default::default()
            })
            .map(drop),
        Op::NewOrder { who, paid, total } => tx
            .insert(Order {
                contact: Some(ContactId::new(m.pick(0, *who))),
                at: tx.now(),
                status: if *paid {
                    OrderStatus::Paid
                } else {
                    OrderStatus::Pending
                },
                total: Money(i64::from(*total) * 1_000),
                ..Default::default()
            })
            .map(drop),
        Op::Tick(_) | Op::Txn { .. } | Op::Reopen => unreachable!("handled by the runner"),
    }
}

/// Applies one operation to the model and the engine and compares the outcomes.
pub(crate) fn step(tx: &mut WriteTransaction, op: &Op, m: &mut Model) -> Result<(), String> {
    if matches!(op, Op::Tick(_)) {
        // The clock does not move inside a transaction.
        return Ok(());
    }
    let now = tx.now();
    let result = run_engine(tx, op, m);
    let expected = m.apply(op, now);
    let got = outcome_of(&result);
    if got != expected {
        return Err(format!("{op:?}: expected {expected:?}, got {result:?}"));
    }
    Ok(())
}
