//! Property test: the stage index and history agree with the rows.

use crmdb::{
    Activity, ActivityKind, Contact, ContactId, Database, Deal, DealId, Direction, EntityKind,
    Error, Money, Query, Snapshot, Subject, Timestamp,
};
use proptest::prelude::*;

use crate::support::{clocked, paid_order, t0};

const CONTACT_STAGES: [&str; 6] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
];
const DEAL_STAGES: [&str; 7] = [
    "lead",
    "qualified",
    "needs_analysis",
    "proposal",
    "negotiation",
    "won",
    "lost",
];

#[derive(Debug, Clone)]
enum Step {
    ContactMove(usize, usize),
    ContactRegress(usize, usize, bool),
    Order(usize),
    Inbound(usize),
    DealMove(usize, usize),
    DealRegress(usize, usize),
    DealReopen(usize, usize, bool),
    DealFields(usize, bool, bool, bool),
    Sweep(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 0..6usize).prop_map(|(i, s)| Step::ContactMove(i, s)),
        2 => (0..3usize, 0..6usize, any::<bool>())
            .prop_map(|(i, s, r)| Step::ContactRegress(i, s, r)),
        1 => (0..3usize).prop_map(Step::Order),
        1 => (0..3usize).prop_map(Step::Inbound),
        3 => (0..2usize, 0..7usize).prop_map(|(i, s)| Step::DealMove(i, s)),
        1 => (0..2usize, 0..7usize).prop_map(|(i, s)| Step::DealRegress(i, s)),
        1 => (0..2usize, 0..7usize, any::<bool>())
            .prop_map(|(i, s, r)| Step::DealReopen(i, s, r)),
        1 => (0..2usize, any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, a, c, l)| Step::DealFields(i, a, c, l)),
        1 => (0..200u8).prop_map(Step::Sweep),
    ]
}

fn pos(stages: &[&str], s: &str) -> usize {
    stages.iter().position(|x| *x == s).expect("known stage")
}

/// The spec's contact rules, written out independently of the engine.
fn contact_allows(from: &str, to: &str, regress: Option<bool>) -> bool {
    let (f, t) = (pos(&CONTACT_STAGES, from), pos(&CONTACT_STAGES, to));
    if f == t {
        return true;
    }
    match regress {
        Some(reason) => reason && t < f,
        None => t > f || to == "active" && (from == "dormant" || from == "churned"),
    }
}

/// The spec's deal rules, with the deal's fields as they are.
fn deal_allows(from: &str, to: &str, deal: &Deal, reopen: Option<bool>) -> bool {
    if from == to {
        return true;
    }
    let terminal = |s: &str| s == "won" || s == "lost";
    let path_ok = match reopen {
        Some(reason) => reason && terminal(from) && !terminal(to),
        None => !terminal(from),
    };
    let amount = deal.amount.0 > 0;
    let guards_ok = match to {
        "proposal" => amount,
        "won" => amount && deal.close_date.is_some(),
        "lost" => deal
            .lost_reason
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty()),
        _ => true,
    };
    path_ok && guards_ok
}

fn check_agreement(db: &Database) -> crmdb::Result<()> {
    db.read(|r| {
        let contacts = r.records::<Contact>()?;
        for stage in CONTACT_STAGES {
            let expected = contacts.iter().filter(|(_, c)| c.stage.as_str() == stage);
            let ids: Vec<u32> = expected.map(|(id, _)| id.get()).collect();
            let got: Vec<u32> = r
                .ids(EntityKind::Contact, &Query::stage(stage))?
                .into_iter()
                .collect();
            assert_eq!(got, ids, "contact stage {stage}");
        }
        for (id, c) in &contacts {
            let history = r.history(*id)?;
            assert_eq!(
                history.last().map(|h| &h.to),
                Some(&c.stage),
                "contact {id}"
            );
            for pair in history.windows(2) {
                assert_eq!(pair[1].from.as_ref(), Some(&pair[0].to), "contact {id}");
            }
        }
        let deals = r.records::<Deal>()?;
        for stage in DEAL_STAGES {
            let ids: Vec<u32> = deals
                .iter()
                .filter(|(_, d)| d.stage.as_str() == stage)
                .map(|(id, _)| id.get())
                .collect();
            let got: Vec<u32> = r
                .ids(EntityKind::Deal, &Query::stage(stage))?
                .into_iter()
                .collect();
            assert_eq!(got, ids, "deal stage {stage}");
        }
        for (id, d) in &deals {
            let history = r.history(*id)?;
            assert_eq!(history.last().map(|h| &h.to), Some(&d.stage), "deal {id}");
            for pair in history.windows(2) {
                assert_eq!(pair[1].from.as_ref(), Some(&pair[0].to), "deal {id}");
            }
        }
        Ok(())
    })
}

fn run(steps: &[Step]) -> crmdb::Result<()> {
    let (db, clock) = clocked()?;
    let (contacts, deals) = db.write(|tx| -> crmdb::Result<_> {
        let contacts: Vec<ContactId> = (0..3)
            .map(|_| tx.insert(Contact::default()))
            .collect::<crmdb::Result<_>>()?;
        let deals: Vec<DealId> = (0..2)
            .map(|_| tx.insert(Deal::default()))
            .collect::<crmdb::Result<_>>()?;
        Ok((contacts, deals))
    })?;
    for step in steps {
        clock.advance_days(1);
        match *step {
            Step::ContactMove(i, s) | Step::ContactRegress(i, s, _) => {
                let id = contacts[i];
                let to = CONTACT_STAGES[s];
                let from = db.read(|r| Ok(r.get(id)?.stage))?;
                let (regress, result) = match *step {
                    Step::ContactRegress(_, _, reason) => {
                        let text = if reason { "because" } else { "" };
                        (Some(reason), db.write(|tx| tx.regress(id, to, text)))
                    }
                    _ => (None, db.write(|tx| tx.move_stage(id, to))),
                };
                let allowed = contact_allows(from.as_str(), to, regress);
                match result {
                    Ok(()) => assert!(allowed, "{from} -> {to} accepted ({step:?})"),
                    Err(Error::IllegalTransition { .. }) => {
                        assert!(!allowed, "{from} -> {to} refused ({step:?})")
                    }
                    Err(e) => return Err(e),
                }
            }
            Step::Order(i) => {
                db.write(|tx| {
                    let now = tx.now();
                    tx.insert(paid_order(contacts[i], now))
                })?;
            }
            Step::Inbound(i) => {
                db.write(|tx| {
                    let now = tx.now();
                    tx.insert(Activity::new(
                        ActivityKind::Email,
                        Direction::Inbound,
                        Subject::Contact(contacts[i]),
                        now,
                    ))
                })?;
            }
            Step::DealMove(i, s) | Step::DealRegress(i, s) | Step::DealReopen(i, s, _) => {
                let id = deals[i];
                let to = DEAL_STAGES[s];
                let deal = db.read(|r| r.get(id))?;
                let from = deal.stage.as_str().to_owned();
                let (allowed, result) = match *step {
                    Step::DealReopen(_, _, reason) => {
                        let text = if reason { "because" } else { "" };
                        (
                            deal_allows(&from, to, &deal, Some(reason)),
                            db.write(|tx| tx.reopen(id, to, text)),
                        )
                    }
                    Step::DealRegress(..) => {
                        let backward = pos(&DEAL_STAGES, to) < pos(&DEAL_STAGES, &from)
                            && to != "won"
                            && to != "lost";
                        (
                            from == to || backward && deal_allows(&from, to, &deal, None),
                            db.write(|tx| tx.regress(id, to, "because")),
                        )
                    }
                    _ => (
                        deal_allows(&from, to, &deal, None),
                        db.write(|tx| tx.move_stage(id, to)),
                    ),
                };
                match result {
                    Ok(()) => assert!(allowed, "{from} -> {to} accepted ({step:?})"),
                    Err(Error::IllegalTransition { .. }) => {
                        assert!(!allowed, "{from} -> {to} refused ({step:?})")
                    }
                    Err(e) => return Err(e),
                }
            }
            Step::DealFields(i, amount, close, lost) => {
                // A field edit is not a move: guards are checked on entering a stage.
                db.write(|tx| {
                    tx.modify(deals[i], |d| {
                        d.amount = Money::from_major(if amount { 50 } else { 0 });
                        d.close_date = close.then(t0);
                        d.lost_reason = lost.then(|| "price".to_owned());
                    })
                })?;
            }
            Step::Sweep(days) => {
                let now = clock_now(&db).plus_days(i64::from(days));
                db.write(|tx| tx.sweep(now))?;
            }
        }
        check_agreement(&db)?;
    }
    Ok(())
}

fn clock_now(db: &Database) -> Timestamp {
    db.now()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn stage_index_and_history_agree_with_rows(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        run(&steps).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
