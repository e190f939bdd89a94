//! A custom machine's moves and guards, and malformed machines refused.

use crmdb::{
    Backward, Database, Deal, DealId, EntityKind, Error, FieldDef, FieldType, Forward, Guard,
    Machine, Machines, Rule, Snapshot, Stage, Value, WriteTransaction,
};

use crate::support::{OK, Op, check_move, contact_in, deal_in, stage_defs};

/// A contact machine that allows only adjacent forward moves with one return, and an
/// `enterprise` pipeline whose review stage needs a custom field.
fn custom_machines() -> Machines {
    let contact = Machine {
        stages: stage_defs(&[
            ("new", false),
            ("engaged", false),
            ("customer", false),
            ("lapsed", false),
        ]),
        forward: Forward::Adjacent,
        backward: Backward::RegressOnly,
        returns: vec![
            (Stage::new("lapsed"), Stage::new("customer")),
            (Stage::new("new"), Stage::new("customer")),
        ],
        guards: vec![],
    };
    let enterprise = Machine {
        stages: stage_defs(&[
            ("intake", false),
            ("review", false),
            ("signed", true),
            ("dropped", true),
        ]),
        forward: Forward::Adjacent,
        backward: Backward::Free,
        returns: vec![],
        guards: vec![(
            Stage::new("review"),
            Guard::CustomFieldSet("budget_code".into()),
        )],
    };
    let mut machines = Machines {
        contact,
        ..Machines::default()
    };
    machines.pipelines.insert("enterprise".into(), enterprise);
    machines.auto_moves.clear();
    machines.sweep.clear();
    machines
}

fn enterprise_deal(
    stage: &str,
    budget_code: bool,
) -> impl FnOnce(&mut WriteTransaction) -> crmdb::Result<DealId> {
    let mut deal = Deal {
        pipeline: "enterprise".into(),
        stage: Stage::new(stage),
        ..Default::default()
    };
    if budget_code {
        deal.custom
            .insert("budget_code".into(), Value::Text("B-7".into()));
    }
    move |tx| tx.insert(deal)
}

#[test]
fn custom_machine_moves() -> crmdb::Result<()> {
    use Op::{Move, Regress, Reopen};
    let db = Database::builder()
        .machines(custom_machines())
        .in_memory()?;
    db.write(|tx| {
        tx.define_field(
            EntityKind::Deal,
            FieldDef::new("budget_code", FieldType::Text),
        )
    })?;
    assert_eq!(db.read(|r| r.machines())?, custom_machines());
    let refused = Some;
    let contact_cases = [
        (("new", "engaged", Move), OK),
        (("new", "customer", Move), OK),
        (("new", "lapsed", Move), refused(Rule::SkipNotAllowed)),
        (("engaged", "lapsed", Move), refused(Rule::SkipNotAllowed)),
        (("customer", "lapsed", Move), OK),
        (("lapsed", "customer", Move), OK),
        (
            ("lapsed", "engaged", Move),
            refused(Rule::BackwardNeedsRegress),
        ),
        (("lapsed", "new", Regress("reset")), OK),
        (("engaged", "prospect", Move), refused(Rule::UnknownStage)),
    ];
    for (step, expected) in contact_cases {
        check_move(&db, contact_in(step.0), step, expected);
    }
    // Stages of the default machine do not exist here at all.
    let created = db.write(contact_in("prospect"));
    assert!(
        matches!(
            created,
            Err(Error::IllegalTransition {
                rule: Rule::UnknownStage,
                ..
            })
        ),
        "{created:?}"
    );
    let guard = Some(Rule::Guard(Guard::CustomFieldSet("budget_code".into())));
    let deal_cases = [
        (("intake", false), ("review", Move), guard.clone()),
        (("intake", true), ("review", Move), OK),
        (("review", true), ("signed", Move), OK),
        (
            ("intake", true),
            ("signed", Move),
            refused(Rule::SkipNotAllowed),
        ),
        (("review", true), ("intake", Move), OK),
        (
            ("signed", true),
            ("review", Move),
            refused(Rule::TerminalNeedsReopen),
        ),
        (("signed", true), ("review", Reopen("amended")), OK),
        (("signed", false), ("review", Reopen("amended")), guard),
        (
            ("review", true),
            ("dropped", Move),
            refused(Rule::SkipNotAllowed),
        ),
        (
            ("intake", false),
            ("lost", Move),
            refused(Rule::UnknownStage),
        ),
    ];
    for ((from, code), (to, op), expected) in deal_cases {
        check_move(&db, enterprise_deal(from, code), (from, to, op), expected);
    }
    // The default pipeline is still there for other deals.
    check_move(
        &db,
        deal_in("lead", 0, false, None),
        ("lead", "negotiation", Move),
        None,
    );
    Ok(())
}

#[test]
fn malformed_machines_are_refused() {
    let mut no_stages = Machines::default();
    no_stages.contact.stages.clear();
    let mut no_default = Machines::default();
    no_default.pipelines.clear();
    let mut twice = Machines::default();
    twice.contact.stages = stage_defs(&[("a", false), ("a", false)]);
    let mut all_terminal = Machines::default();
    all_terminal.contact.stages = stage_defs(&[("a", true)]);
    let bad_auto = Machines {
        contact: custom_machines().contact,
        ..Machines::default()
    };
    let mut bad_name = Machines::default();
    bad_name.contact.stages = stage_defs(&[("Big Stage", false)]);
    for (what, machines) in [
        ("no stages", no_stages),
        ("no default pipeline", no_default),
        ("a stage twice", twice),
        ("only terminal stages", all_terminal),
        ("automatic moves naming missing stages", bad_auto),
        ("a bad stage name", bad_name),
    ] {
        let result = Database::builder().machines(machines).in_memory();
        assert!(
            matches!(result, Err(Error::InvalidMachine { .. })),
            "{what}: {result:?}"
        );
    }
}
