//! The expected stage histories, machines and custom-field schemas, spelled out.

use std::collections::BTreeMap;

use crmdb::{
    AutoMove, Backward, ChangeKind, EntityKind, FieldDef, FieldType, Forward, Guard, Machine,
    Machines, Stage, StageChange, StageDef, SweepRule, Trigger,
};

use crate::support::{change, utc};

pub(crate) fn expected_contact_histories() -> Vec<(u32, Vec<StageChange>)> {
    use ChangeKind::{Automatic, Create, Move, Regress, Sweep};
    let created = utc(2026, 1, 6, 9, 0);
    let create = || change(None, "prospect", created, "wang.fang", None, Create);
    let auto = |from, to, at, reason| change(Some(from), to, at, "system", Some(reason), Automatic);
    let orders = utc(2026, 1, 25, 16, 0);
    vec![
        (
            0,
            vec![
                create(),
                auto(
                    "prospect",
                    "responder",
                    utc(2026, 1, 7, 11, 0),
                    "inbound activity",
                ),
                auto(
                    "responder",
                    "new_customer",
                    utc(2026, 1, 10, 15, 0),
                    "first paid order",
                ),
                auto("new_customer", "active", orders, "repeat paid order"),
            ],
        ),
        (
            1,
            vec![
                create(),
                change(
                    Some("prospect"),
                    "new_customer",
                    utc(2026, 1, 12, 16, 30),
                    "zhang.wei",
                    None,
                    Move,
                ),
                change(
                    Some("new_customer"),
                    "responder",
                    utc(2026, 1, 13, 9, 15),
                    "zhang.wei",
                    Some("first order refunded"),
                    Regress,
                ),
                change(
                    Some("responder"),
                    "active",
                    utc(2026, 1, 15, 8, 0),
                    "zhang.wei",
                    None,
                    Move,
                ),
                change(
                    Some("active"),
                    "dormant",
                    utc(2026, 4, 15, 6, 0),
                    "system",
                    Some("no activity, order or creation for more than 90 days"),
                    Sweep,
                ),
                auto("dormant", "active", utc(2026, 4, 20, 10, 30), "paid order"),
            ],
        ),
        (2, vec![create()]),
        (
            3,
            vec![
                create(),
                auto(
                    "prospect",
                    "responder",
                    utc(2026, 1, 15, 9, 30),
                    "inbound activity",
                ),
                auto("responder", "new_customer", orders, "first paid order"),
            ],
        ),
        // The purged contact's history went with it.
        (4, Vec::new()),
        (5, vec![create()]),
        (
            6,
            vec![
                create(),
                auto(
                    "prospect",
                    "responder",
                    utc(2026, 1, 20, 10, 0),
                    "inbound activity",
                ),
                auto("responder", "new_customer", orders, "first paid order"),
            ],
        ),
        (
            7,
            vec![
                create(),
                auto("prospect", "new_customer", orders, "first paid order"),
            ],
        ),
    ]
}

pub(crate) fn expected_deal_histories() -> Vec<(u32, Vec<StageChange>)> {
    use ChangeKind::{Create, Move, Reopen};
    let created = utc(2026, 1, 15, 9, 30);
    let fang = |from, to, at| change(Some(from), to, at, "wang.fang", None, Move);
    vec![
        (
            0,
            vec![
                change(None, "lead", created, "wang.fang", None, Create),
                fang("lead", "qualified", utc(2026, 1, 20, 10, 0)),
                fang("qualified", "proposal", utc(2026, 1, 22, 14, 0)),
                fang("proposal", "won", utc(2026, 2, 2, 11, 0)),
                change(
                    Some("won"),
                    "negotiation",
                    utc(2026, 2, 10, 9, 0),
                    "li.manager",
                    Some("customer asked for 20 more seats"),
                    Reopen,
                ),
                fang("negotiation", "won", utc(2026, 2, 12, 17, 0)),
            ],
        ),
        (
            1,
            vec![
                change(None, "lead", created, "wang.fang", None, Create),
                change(
                    Some("lead"),
                    "lost",
                    utc(2026, 2, 2, 11, 0),
                    "zhang.wei",
                    None,
                    Move,
                ),
            ],
        ),
        (
            2,
            vec![
                change(None, "open", created, "wang.fang", None, Create),
                fang("open", "quoted", utc(2026, 2, 10, 9, 0)),
            ],
        ),
    ]
}

pub(crate) fn expected_machines() -> Machines {
    let s = Stage::new;
    let stage = |name: &str, probability: Option<u8>, terminal: bool| StageDef {
        name: Stage::new(name),
        probability,
        terminal,
    };
    let contact = Machine {
        stages: [
            "prospect",
            "responder",
            "new_customer",
            "active",
            "dormant",
            "churned",
        ]
        .into_iter()
        .map(|name| stage(name, None, false))
        .collect(),
        forward: Forward::Skip,
        backward: Backward::RegressOnly,
        returns: vec![(s("dormant"), s("active")), (s("churned"), s("active"))],
        guards: Vec::new(),
    };
    let default = Machine {
        stages: vec![
            stage("lead", Some(10), false),
            stage("qualified", Some(20), false),
            stage("needs_analysis", Some(40), false),
            stage("proposal", Some(60), false),
            stage("negotiation", Some(80), false),
            stage("won", Some(100), true),
            stage("lost", Some(0), true),
        ],
        forward: Forward::Skip,
        backward: Backward::Free,
        returns: Vec::new(),
        guards: vec![
            (s("proposal"), Guard::AmountPositive),
            (s("won"), Guard::AmountPositive),
            (s("won"), Guard::CloseDateSet),
            (s("lost"), Guard::LostReasonSet),
        ],
    };
    let renewal = Machine {
        stages: vec![
            stage("open", Some(30), false),
            stage("quoted", Some(60), false),
            stage("renewed", Some(100), true),
            stage("cancelled", Some(0), true),
        ],
        forward: Forward::Adjacent,
        backward: Backward::RegressOnly,
        returns: Vec::new(),
        guards: vec![(s("renewed"), Guard::CustomFieldSet("contract_no".into()))],
    };
    Machines {
        contact,
        pipelines: BTreeMap::from([
            ("default".to_owned(), default),
            ("renewal".to_owned(), renewal),
        ]),
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

pub(crate) fn expected_schema(kind: EntityKind) -> Vec<FieldDef> {
    let options = |o: &[&str]| o.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // By name: the schema keeps its fields sorted.
    match kind {
        EntityKind::Contact => vec![
            FieldDef::new("credit_limit", FieldType::Money),
            FieldDef::new(
                "industry",
                FieldType::SingleSelect(options(&["saas", "retail", "manufacturing"])),
            ),
            FieldDef::new(
                "interests",
                FieldType::MultiSelect(options(&["golf", "wine", "travel", "tech"])),
            ),
            FieldDef::new("loyalty_points", FieldType::Integer),
            FieldDef::new("nickname", FieldType::Text),
            FieldDef::new("renewal_date", FieldType::Date),
            FieldDef::new("verified", FieldType::Bool),
        ],
        EntityKind::Account => vec![FieldDef::new("website", FieldType::Text)],
        EntityKind::Deal => vec![
            FieldDef::new("contract_no", FieldType::Text),
            FieldDef {
                name: "deal_source".into(),
                field_type: FieldType::SingleSelect(options(&["referral", "inbound", "outbound"])),
                required: true,
            },
        ],
        EntityKind::Activity => vec![FieldDef::new(
            "sentiment",
            FieldType::SingleSelect(options(&["positive", "neutral", "negative"])),
        )],
        EntityKind::Order => vec![FieldDef::new("coupon", FieldType::Text)],
        EntityKind::Product => vec![FieldDef::new("discontinued", FieldType::Bool)],
        EntityKind::Owner => vec![FieldDef::new("employee_no", FieldType::Integer)],
        EntityKind::Task => vec![FieldDef::new("reminder_at", FieldType::Date)],
    }
}
