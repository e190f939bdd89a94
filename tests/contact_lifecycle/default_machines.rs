//! Legal and illegal moves of the default contact lifecycle and deal pipeline.

use crmdb::{ChangeKind, Contact, Database, Deal, EntityKind, Error, Guard, Rule, Snapshot};

use crate::support::{OK, Op, check_move, contact_in, deal_in};

#[test]
fn default_contact_machine_moves() -> crmdb::Result<()> {
    use Op::{Move, Regress, Reopen};
    let db = Database::in_memory()?;
    let refused = Some;
    let cases = [
        // Forward, with skips.
        (("prospect", "responder", Move), OK),
        (("prospect", "new_customer", Move), OK),
        (("prospect", "churned", Move), OK),
        (("responder", "active", Move), OK),
        (("new_customer", "active", Move), OK),
        (("active", "dormant", Move), OK),
        (("dormant", "churned", Move), OK),
        // Win-back returns are plain moves.
        (("dormant", "active", Move), OK),
        (("churned", "active", Move), OK),
        // Every other backward move needs a regress with a reason.
        (
            ("responder", "prospect", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("new_customer", "responder", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("active", "prospect", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("active", "new_customer", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("dormant", "new_customer", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("churned", "dormant", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (
            ("churned", "prospect", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (("active", "prospect", Regress("entered by mistake")), OK),
        (("churned", "dormant", Regress("reactivated by hand")), OK),
        (("dormant", "active", Regress("win-back")), OK),
        (
            ("active", "prospect", Regress("")),
            refused(Rule::ReasonRequired),
        ),
        (
            ("active", "prospect", Regress("   ")),
            refused(Rule::ReasonRequired),
        ),
        (
            ("prospect", "active", Regress("forward")),
            refused(Rule::RegressNotBackward),
        ),
        // Unknown stages and operations that do not apply.
        (("prospect", "vip", Move), refused(Rule::UnknownStage)),
        (("prospect", "won", Move), refused(Rule::UnknownStage)),
        (
            ("active", "prospect", Reopen("no terminal stage")),
            refused(Rule::ReopenNotApplicable),
        ),
    ];
    for (step, expected) in cases {
        check_move(&db, contact_in(step.0), step, expected);
    }
    Ok(())
}

#[test]
fn same_stage_move_is_a_no_op() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let id = db.write(contact_in("active"))?;
    db.write(|tx| tx.move_stage(id, "active"))?;
    assert_eq!(db.read(|r| r.history(id))?.len(), 1);
    Ok(())
}

#[test]
fn default_deal_pipeline_moves() -> crmdb::Result<()> {
    use Op::{Move, Regress, Reopen};
    let db = Database::in_memory()?;
    let refused = Some;
    let guard = |g| Some(Rule::Guard(g));
    // (from, amount, close date, lost reason) -> (to, op)
    let cases = [
        (("lead", 0, false, None), ("qualified", Move), OK),
        (("lead", 0, false, None), ("negotiation", Move), OK),
        (("negotiation", 0, false, None), ("lead", Move), OK),
        (("proposal", 5, false, None), ("qualified", Move), OK),
        (
            ("lead", 0, false, None),
            ("proposal", Move),
            guard(Guard::AmountPositive),
        ),
        (("lead", 10, false, None), ("proposal", Move), OK),
        (
            ("lead", -10, false, None),
            ("proposal", Move),
            guard(Guard::AmountPositive),
        ),
        (
            ("negotiation", 10, false, None),
            ("won", Move),
            guard(Guard::CloseDateSet),
        ),
        (
            ("negotiation", 0, true, None),
            ("won", Move),
            guard(Guard::AmountPositive),
        ),
        (("negotiation", 10, true, None), ("won", Move), OK),
        (("lead", 10, true, None), ("won", Move), OK),
        (
            ("qualified", 0, false, None),
            ("lost", Move),
            guard(Guard::LostReasonSet),
        ),
        (
            ("qualified", 0, false, Some("  ")),
            ("lost", Move),
            guard(Guard::LostReasonSet),
        ),
        (("qualified", 0, false, Some("budget")), ("lost", Move), OK),
        // Terminal stages are left only by a reopen with a reason.
        (
            ("won", 10, true, None),
            ("negotiation", Move),
            refused(Rule::TerminalNeedsReopen),
        ),
        (
            ("won", 10, true, Some("x")),
            ("lost", Move),
            refused(Rule::TerminalNeedsReopen),
        ),
        (
            ("lost", 0, false, Some("price")),
            ("lead", Move),
            refused(Rule::TerminalNeedsReopen),
        ),
        (
            ("lost", 0, false, Some("price")),
            ("lead", Regress("retry")),
            refused(Rule::TerminalNeedsReopen),
        ),
        (
            ("won", 10, true, None),
            ("negotiation", Reopen("contract cancelled")),
            OK,
        ),
        (
            ("lost", 0, false, Some("price")),
            ("qualified", Reopen("budget found")),
            OK,
        ),
        (
            ("lost", 0, false, Some("price")),
            ("proposal", Reopen("budget found")),
            guard(Guard::AmountPositive),
        ),
        (
            ("won", 10, true, None),
            ("negotiation", Reopen("")),
            refused(Rule::ReasonRequired),
        ),
        (
            ("lead", 0, false, None),
            ("qualified", Reopen("not closed")),
            refused(Rule::ReopenNotApplicable),
        ),
        (
            ("won", 10, true, Some("x")),
            ("lost", Reopen("wrong outcome")),
            refused(Rule::ReopenNotApplicable),
        ),
        (
            ("negotiation", 0, false, None),
            ("lead", Regress("requalify")),
            OK,
        ),
        (
            ("lead", 0, false, None),
            ("active", Move),
            refused(Rule::UnknownStage),
        ),
    ];
    for ((from, amount, close, lost), (to, op), expected) in cases {
        check_move(
            &db,
            deal_in(from, amount, close, lost),
            (from, to, op),
            expected,
        );
    }
    Ok(())
}

#[test]
fn creating_in_a_stage_checks_its_guards_and_pipeline() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let created = db.write(deal_in("won", 0, true, None));
    match created {
        Err(Error::IllegalTransition {
            kind: EntityKind::Deal,
            from,
            to,
            rule,
            ..
        }) => {
            assert_eq!((from.as_str(), to.as_str()), ("(none)", "won"));
            assert_eq!(rule, Rule::Guard(Guard::AmountPositive));
        }
        other => panic!("expected a guard failure, got {other:?}"),
    }
    let unknown = db.write(|tx| {
        tx.insert(Deal {
            pipeline: "enterprise".into(),
            ..Default::default()
        })
    });
    assert!(
        matches!(&unknown, Err(Error::IllegalTransition { rule: Rule::UnknownPipeline(p), .. }) if p == "enterprise"),
        "{unknown:?}"
    );
    let unknown_stage = db.write(contact_in("vip"));
    assert!(
        matches!(
            unknown_stage,
            Err(Error::IllegalTransition {
                rule: Rule::UnknownStage,
                ..
            })
        ),
        "{unknown_stage:?}"
    );
    // Records without a stage start in their machine's first stage.
    db.write(|tx| -> crmdb::Result<_> {
        let c = tx.insert(Contact::default())?;
        let d = tx.insert(Deal::default())?;
        assert_eq!(tx.get(c)?.stage.as_str(), "prospect");
        assert_eq!(tx.get(d)?.stage.as_str(), "lead");
        assert_eq!(tx.history(c)?[0].kind, ChangeKind::Create);
        assert_eq!(tx.history(c)?[0].from, None);
        Ok(())
    })?;
    Ok(())
}
