//! The generator that writes the fixture, run only with `CRMDB_WRITE_FIXTURE=1`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use crmdb::{
    Account, AccountId, Activity, ActivityKind, Assignment, AssignmentRule, Backward, Contact,
    ContactId, ContactRole, Database, Deal, DealId, Direction, EntityKind, FieldDef, FieldType,
    Forward, Guard, Machine, Machines, ManualClock, Money, Order, OrderId, OrderStatus, Owner,
    OwnerId, Product, Query, SavedSegment, Stage, StageDef, Subject, Task, TaskId, TaskStatus,
    Value,
};

use crate::support::{custom, line, select, strs, text, utc};

/// The machines of the fixture: the defaults plus a second, adjacent-only pipeline with
/// a custom-field guard, so that every machine option is stored.
fn fixture_machines() -> Machines {
    let mut machines = Machines::default();
    let stage = |name: &str, probability: u8, terminal: bool| StageDef {
        name: Stage::new(name),
        probability: Some(probability),
        terminal,
    };
    machines.pipelines.insert(
        "renewal".to_owned(),
        Machine {
            stages: vec![
                stage("open", 30, false),
                stage("quoted", 60, false),
                stage("renewed", 100, true),
                stage("cancelled", 0, true),
            ],
            forward: Forward::Adjacent,
            backward: Backward::RegressOnly,
            returns: Vec::new(),
            guards: vec![(
                Stage::new("renewed"),
                Guard::CustomFieldSet("contract_no".into()),
            )],
        },
    );
    machines
}

/// Writes the fixture database at `path` through the public API, at fixed clock times.
pub(crate) fn write_fixture(path: &Path) -> crmdb::Result<()> {
    let clock = Arc::new(ManualClock::new(utc(2026, 1, 5, 9, 0)));
    let db = Database::builder()
        .clock(clock.clone())
        .machines(fixture_machines())
        .create(path)?;

    // Custom fields of every kind, every field type on contacts; owners and the lead
    // assignment rules.
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("admin");
        let contact_fields = [
            FieldDef::new("nickname", FieldType::Text),
            FieldDef::new("loyalty_points", FieldType::Integer),
            FieldDef::new("credit_limit", FieldType::Money),
            FieldDef::new("renewal_date", FieldType::Date),
            FieldDef::new("verified", FieldType::Bool),
            FieldDef::new(
                "industry",
                FieldType::SingleSelect(vec![
                    "saas".into(),
                    "retail".into(),
                    "manufacturing".into(),
                ]),
            ),
            FieldDef::new(
                "interests",
                FieldType::MultiSelect(vec![
                    "golf".into(),
                    "wine".into(),
                    "travel".into(),
                    "tech".into(),
                ]),
            ),
        ];
        for def in contact_fields {
            tx.define_field(EntityKind::Contact, def)?;
        }
        tx.define_field(
            EntityKind::Account,
            FieldDef::new("website", FieldType::Text),
        )?;
        tx.define_field(
            EntityKind::Deal,
            FieldDef::new(
                "deal_source",
                FieldType::SingleSelect(vec![
                    "referral".into(),
                    "inbound".into(),
                    "outbound".into(),
                ]),
            )
            .required(),
        )?;
        tx.define_field(
            EntityKind::Deal,
            FieldDef::new("contract_no", FieldType::Text),
        )?;
        tx.define_field(
            EntityKind::Activity,
            FieldDef::new(
                "sentiment",
                FieldType::SingleSelect(vec![
                    "positive".into(),
                    "neutral".into(),
                    "negative".into(),
                ]),
            ),
        )?;
        tx.define_field(EntityKind::Order, FieldDef::new("coupon", FieldType::Text))?;
        tx.define_field(
            EntityKind::Product,
            FieldDef::new("discontinued", FieldType::Bool),
        )?;
        tx.define_field(
            EntityKind::Owner,
            FieldDef::new("employee_no", FieldType::Integer),
        )?;
        tx.define_field(
            EntityKind::Task,
            FieldDef::new("reminder_at", FieldType::Date),
        )?;

        tx.insert(Owner {
            name: "Wang Fang".into(),
            email: Some("wang.fang@brand.example".into()),
            team: Some("east".into()),
            region: Some("shanghai".into()),
            capacity: 5,
            custom: custom([("employee_no", Value::Integer(1001))]),
            ..Default::default()
        })?;
        tx.insert(Owner {
            name: "Zhang Wei".into(),
            email: Some("zhang.wei@brand.example".into()),
            team: Some("east".into()),
            region: Some("beijing".into()),
            capacity: 0,
            custom: custom([("employee_no", Value::Integer(1002))]),
            ..Default::default()
        })?;
        tx.insert(Owner {
            name: "Liu Yang".into(),
            team: Some("west".into()),
            region: Some("chengdu".into()),
            capacity: 3,
            ..Default::default()
        })?;
        let manager = tx.insert(Owner {
            name: "Chen Jie".into(),
            email: Some("chen.jie@brand.example".into()),
            team: Some("management".into()),
            region: Some("shanghai".into()),
            custom: custom([("employee_no", Value::Integer(9001))]),
            ..Default::default()
        })?;
        tx.set_assignment(Assignment {
            rules: vec![
                AssignmentRule::ByRegion {
                    name: "regional".into(),
                },
                AssignmentRule::RoundRobin {
                    name: "east_round_robin".into(),
                    team: "east".into(),
                },
                AssignmentRule::CapacityLimited {
                    name: "least_loaded".into(),
                    team: None,
                    period_days: 30,
                },
            ],
            excluded: BTreeSet::from([manager]),
            lead_stages: vec![Stage::new("prospect"), Stage::new("responder")],
        })
    })?;

    clock.set(utc(2026, 1, 5, 10, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Account {
            name: "Hangzhou Cloud Ltd".into(),
            industry: Some("saas".into()),
            region: Some("hangzhou".into()),
            size: Some(120),
            tier: Some("A".into()),
            owner: Some(OwnerId::new(0)),
            tags: strs(&["key_account", "partner"]),
            custom: custom([("website", text("https://hzcloud.example"))]),
            ..Default::default()
        })?;
        tx.insert(Account {
            name: "Suzhou Retail Group".into(),
            industry: Some("retail".into()),
            region: Some("suzhou".into()),
            size: Some(2400),
            tier: Some("B".into()),
            owner: Some(OwnerId::new(1)),
            tags: strs(&["key_account"]),
            ..Default::default()
        })?;
        tx.insert(Product {
            sku: "SKU-CRM-01".into(),
            name: "CRM seat (annual)".into(),
            category: Some("software".into()),
            list_price: Money(19_900),
            custom: custom([("discontinued", Value::Bool(false))]),
            ..Default::default()
        })?;
        tx.insert(Product {
            sku: "SKU-HW-02".into(),
            name: "Barcode scanner".into(),
            category: Some("hardware".into()),
            list_price: Money(45_050),
            custom: custom([("discontinued", Value::Bool(true))]),
            ..Default::default()
        })?;
        tx.insert(Product {
            sku: "Svc-Onboard".into(),
            name: "Onboarding package".into(),
            category: None,
            list_price: Money(120_000),
            ..Default::default()
        })?;
        Ok(())
    })?;

    // Contacts: owners given, or chosen by the assignment rules (Zhao Qiang by region,
    // Sun Li by the east team's round robin, Ma Lin by region).
    clock.set(utc(2026, 1, 6, 9, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Contact {
            name: "Li Lei".into(),
            email: Some("Li.Lei@Example.com".into()),
            phone: Some("+86 138 0013 8000".into()),
            region: Some("shanghai".into()),
            gender: Some("male".into()),
            birth_year: Some(1988),
            source: Some("wechat".into()),
            owner: Some(OwnerId::new(0)),
            account: Some(AccountId::new(0)),
            roles: BTreeSet::from([
                ContactRole::Consumer,
                ContactRole::Advocate,
                ContactRole::DecisionMaker,
            ]),
            tags: strs(&["vip", "newsletter"]),
            lifetime_value: Money(250_000),
            custom: custom([
                ("nickname", text("Lei")),
                ("loyalty_points", Value::Integer(1200)),
                ("credit_limit", Value::Money(Money(5_000_000))),
                ("renewal_date", Value::Date(utc(2026, 6, 30, 0, 0))),
                ("verified", Value::Bool(true)),
                ("industry", select("saas")),
                ("interests", Value::MultiSelect(strs(&["golf", "tech"]))),
            ]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Han Meimei".into(),
            email: Some("han.meimei@example.com".into()),
            region: Some("beijing".into()),
            gender: Some("female".into()),
            birth_year: Some(1992),
            source: Some("douyin".into()),
            owner: Some(OwnerId::new(1)),
            roles: BTreeSet::from([ContactRole::Fan, ContactRole::Member]),
            tags: strs(&["vip"]),
            lifetime_value: Money(88_000),
            custom: custom([
                ("verified", Value::Bool(false)),
                ("industry", select("retail")),
                ("interests", Value::MultiSelect(strs(&["wine", "travel"]))),
            ]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Zhao Qiang".into(),
            email: Some("zhao.qiang@example.com".into()),
            region: Some("shanghai".into()),
            gender: Some("male".into()),
            birth_year: Some(1979),
            source: Some("website".into()),
            roles: BTreeSet::from([ContactRole::User]),
            tags: strs(&["newsletter"]),
            unsubscribed: true,
            custom: custom([
                ("nickname", text("Q")),
                ("loyalty_points", Value::Integer(-20)),
                ("credit_limit", Value::Money(Money(-1_550))),
            ]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Sun Li".into(),
            email: Some("sun.li@example.com".into()),
            region: Some("guangzhou".into()),
            source: Some("trade_show".into()),
            tags: strs(&["trade_show"]),
            lifetime_value: Money(19_900),
            custom: custom([("industry", select("manufacturing"))]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Temp Lead".into(),
            email: Some("temp.lead@example.com".into()),
            owner: Some(OwnerId::new(1)),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Zhou Min".into(),
            email: Some("zhou.min@example.com".into()),
            region: Some("hangzhou".into()),
            owner: Some(OwnerId::new(1)),
            account: Some(AccountId::new(1)),
            tags: strs(&["vip", "trade_show"]),
            lifetime_value: Money(1_200_000),
            custom: custom([("loyalty_points", Value::Integer(50))]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Wu Gang".into(),
            email: Some("wu.gang@example.com".into()),
            phone: Some("+86 139 0000 0006".into()),
            region: Some("shanghai".into()),
            gender: Some("male".into()),
            owner: Some(OwnerId::new(0)),
            account: Some(AccountId::new(0)),
            roles: BTreeSet::from([ContactRole::DecisionMaker, ContactRole::Influencer]),
            lifetime_value: Money(9_900),
            custom: custom([("renewal_date", Value::Date(utc(2027, 1, 31, 0, 0)))]),
            ..Default::default()
        })?;
        tx.insert(Contact {
            name: "Ma Lin".into(),
            email: Some("ma.lin@example.com".into()),
            region: Some("chengdu".into()),
            gender: Some("female".into()),
            birth_year: Some(2001),
            source: Some("import".into()),
            lifetime_value: Money(45_050),
            custom: custom([("interests", Value::MultiSelect(strs(&["travel"])))]),
            // An imported contact keeps the creation time it came with.
            created_at: Some(utc(2025, 6, 1, 0, 0)),
            ..Default::default()
        })?;
        Ok(())
    })?;

    // An inbound email: Li Lei moves prospect -> responder automatically.
    clock.set(utc(2026, 1, 7, 11, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Activity {
            owner: Some(OwnerId::new(0)),
            outcome: Some("asked for pricing".into()),
            custom: custom([("sentiment", select("positive"))]),
            ..Activity::new(
                ActivityKind::Email,
                Direction::Inbound,
                Subject::Contact(ContactId::new(0)),
                utc(2026, 1, 7, 10, 45),
            )
        })?;
        Ok(())
    })?;

    // Li Lei's first paid order: responder -> new_customer automatically; the total is
    // filled in from the lines.
    clock.set(utc(2026, 1, 10, 15, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Order {
            contact: Some(ContactId::new(0)),
            at: utc(2026, 1, 10, 14, 30),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            line_items: vec![line(0, 2, 19_900)],
            custom: custom([("coupon", text("NEWYEAR"))]),
            ..Default::default()
        })?;
        Ok(())
    })?;

    // Han Meimei: a plain skip forward, a regress with a reason, a plain move again.
    clock.set(utc(2026, 1, 12, 16, 30));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("zhang.wei");
        tx.insert(Activity {
            owner: Some(OwnerId::new(1)),
            outcome: Some("no answer".into()),
            ..Activity::new(
                ActivityKind::Call,
                Direction::Outbound,
                Subject::Contact(ContactId::new(1)),
                utc(2026, 1, 12, 16, 0),
            )
        })?;
        tx.move_stage(ContactId::new(1), "new_customer")
    })?;
    clock.set(utc(2026, 1, 13, 9, 15));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("zhang.wei");
        tx.regress(ContactId::new(1), "responder", "first order refunded")
    })?;
    clock.set(utc(2026, 1, 15, 8, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("zhang.wei");
        tx.move_stage(ContactId::new(1), "active")
    })?;

    // Deals in both pipelines, tasks, and activities about a deal, an account and two
    // contacts (one inbound: Sun Li moves to responder).
    clock.set(utc(2026, 1, 15, 9, 30));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Deal {
            name: "Hangzhou Cloud CRM seats".into(),
            account: Some(AccountId::new(0)),
            contact: Some(ContactId::new(0)),
            participants: vec![ContactId::new(6)],
            owner: Some(OwnerId::new(0)),
            amount: Money(995_000),
            currency: "CNY".into(),
            close_date: Some(utc(2026, 3, 31, 0, 0)),
            probability_override: Some(70),
            line_items: vec![line(0, 50, 19_900)],
            tags: strs(&["q1", "upsell"]),
            custom: custom([("deal_source", select("referral"))]),
            ..Default::default()
        })?;
        tx.insert(Deal {
            name: "Suzhou scanners".into(),
            pipeline: "default".into(),
            account: Some(AccountId::new(1)),
            contact: Some(ContactId::new(1)),
            owner: Some(OwnerId::new(1)),
            amount: Money(450_500),
            currency: "CNY".into(),
            lost_reason: Some("budget frozen until Q3".into()),
            line_items: vec![line(1, 10, 45_050)],
            tags: strs(&["hardware"]),
            custom: custom([("deal_source", select("outbound"))]),
            ..Default::default()
        })?;
        tx.insert(Deal {
            name: "Hangzhou Cloud renewal 2026".into(),
            pipeline: "renewal".into(),
            account: Some(AccountId::new(0)),
            contact: Some(ContactId::new(0)),
            participants: vec![ContactId::new(6), ContactId::new(2)],
            owner: Some(OwnerId::new(0)),
            amount: Money(300_000),
            currency: "CNY".into(),
            close_date: Some(utc(2026, 12, 31, 0, 0)),
            custom: custom([
                ("deal_source", select("inbound")),
                ("contract_no", text("HC-2026-001")),
            ]),
            ..Default::default()
        })?;
        tx.insert(Task {
            title: "Send contract to Hangzhou Cloud".into(),
            assignee: Some(OwnerId::new(0)),
            due: Some(utc(2026, 1, 30, 18, 0)),
            status: TaskStatus::Open,
            related: Some(Subject::Deal(DealId::new(0))),
            custom: custom([("reminder_at", Value::Date(utc(2026, 1, 29, 9, 0)))]),
            ..Default::default()
        })?;
        tx.insert(Task {
            title: "Call back Han Meimei".into(),
            assignee: Some(OwnerId::new(1)),
            due: Some(utc(2026, 1, 16, 10, 0)),
            status: TaskStatus::Done,
            related: Some(Subject::Contact(ContactId::new(1))),
            ..Default::default()
        })?;
        tx.insert(Task {
            title: "Prepare Suzhou visit".into(),
            assignee: Some(OwnerId::new(1)),
            status: TaskStatus::Cancelled,
            related: Some(Subject::Account(AccountId::new(1))),
            ..Default::default()
        })?;
        tx.insert(Task {
            title: "Scratch task".into(),
            ..Default::default()
        })?;
        tx.insert(Activity {
            owner: Some(OwnerId::new(0)),
            outcome: Some("product demo".into()),
            ..Activity::new(
                ActivityKind::Meeting,
                Direction::Outbound,
                Subject::Deal(DealId::new(0)),
                utc(2026, 1, 15, 10, 0),
            )
        })?;
        tx.insert(Activity {
            owner: Some(OwnerId::new(1)),
            custom: custom([("sentiment", select("neutral"))]),
            ..Activity::new(
                ActivityKind::Visit,
                Direction::Outbound,
                Subject::Account(AccountId::new(1)),
                utc(2026, 1, 16, 14, 0),
            )
        })?;
        tx.insert(Activity::new(
            ActivityKind::CampaignResponse,
            Direction::Inbound,
            Subject::Contact(ContactId::new(3)),
            utc(2026, 1, 15, 12, 0),
        ))?;
        tx.insert(Activity {
            owner: Some(OwnerId::new(1)),
            outcome: Some("procurement paused".into()),
            ..Activity::new(
                ActivityKind::Note,
                Direction::Outbound,
                Subject::Deal(DealId::new(1)),
                utc(2026, 1, 15, 17, 0),
            )
        })?;
        Ok(())
    })?;

    // A web visit: Wu Gang moves to responder; the deal advances.
    clock.set(utc(2026, 1, 20, 10, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Activity::new(
            ActivityKind::WebVisit,
            Direction::Inbound,
            Subject::Contact(ContactId::new(6)),
            utc(2026, 1, 20, 9, 40),
        ))?;
        tx.move_stage(DealId::new(0), "qualified")
    })?;
    clock.set(utc(2026, 1, 22, 14, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.move_stage(DealId::new(0), "proposal")
    })?;

    // Orders: Li Lei's repeat order (new_customer -> active), first orders of Wu Gang,
    // Ma Lin and Sun Li (-> new_customer), a pending, a refunded and a cancelled
    // account-only order.
    clock.set(utc(2026, 1, 25, 16, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Order {
            contact: Some(ContactId::new(0)),
            account: Some(AccountId::new(0)),
            at: utc(2026, 1, 25, 10, 0),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            line_items: vec![line(2, 1, 120_000)],
            total: Money(120_000),
            ..Default::default()
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(6)),
            at: utc(2026, 1, 25, 11, 0),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            total: Money(9_900),
            ..Default::default()
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(1)),
            at: utc(2026, 1, 25, 12, 0),
            status: OrderStatus::Pending,
            currency: "CNY".into(),
            line_items: vec![line(1, 1, 45_050)],
            total: Money(45_050),
            ..Default::default()
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(7)),
            at: utc(2026, 1, 25, 13, 0),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            line_items: vec![line(1, 1, 45_050)],
            ..Default::default()
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(3)),
            at: utc(2026, 1, 25, 14, 0),
            status: OrderStatus::Paid,
            currency: "USD".into(),
            line_items: vec![line(0, 1, 19_900)],
            total: Money(19_900),
            ..Default::default()
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(6)),
            at: utc(2026, 1, 25, 15, 0),
            status: OrderStatus::Refunded,
            currency: "CNY".into(),
            total: Money(5_000),
            custom: custom([("coupon", text("SORRY5"))]),
            ..Default::default()
        })?;
        tx.insert(Order {
            account: Some(AccountId::new(1)),
            at: utc(2026, 1, 25, 15, 30),
            status: OrderStatus::Cancelled,
            currency: "CNY".into(),
            ..Default::default()
        })?;
        Ok(())
    })?;

    // The seat deal is won; the scanner deal is lost.
    clock.set(utc(2026, 2, 2, 11, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.move_stage(DealId::new(0), "won")?;
        tx.set_actor("zhang.wei");
        tx.move_stage(DealId::new(1), "lost")
    })?;

    // The won deal is reopened and grows; the renewal is quoted.
    clock.set(utc(2026, 2, 10, 9, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("li.manager");
        tx.reopen(
            DealId::new(0),
            "negotiation",
            "customer asked for 20 more seats",
        )?;
        tx.modify(DealId::new(0), |deal| {
            deal.line_items = vec![line(0, 70, 19_900)];
            deal.amount = Money(1_393_000);
        })?;
        tx.set_actor("wang.fang");
        tx.move_stage(DealId::new(2), "quoted")
    })?;

    // Tags added and removed through the tag API.
    clock.set(utc(2026, 2, 11, 10, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.add_tag(ContactId::new(6), "trade_show")?;
        tx.add_tag(AccountId::new(1), "at_risk")?;
        tx.add_tag(DealId::new(2), "renewal_2026")?;
        tx.remove_tag(DealId::new(0), "q1")
    })?;

    // The grown deal is won again.
    clock.set(utc(2026, 2, 12, 17, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.move_stage(DealId::new(0), "won")
    })?;

    // The recycle bin: Zhou Min and the refunded order stay there; the temp lead and
    // the scratch task are purged, leaving row id gaps.
    clock.set(utc(2026, 2, 15, 12, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("admin");
        tx.soft_delete(ContactId::new(5))?;
        tx.soft_delete(OrderId::new(6))?;
        tx.soft_delete(ContactId::new(4))?;
        tx.purge(ContactId::new(4))?;
        tx.soft_delete(TaskId::new(3))?;
        tx.purge(TaskId::new(3))
    })?;

    // A later meeting keeps Li Lei active through the sweep.
    clock.set(utc(2026, 3, 26, 10, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("wang.fang");
        tx.insert(Activity {
            owner: Some(OwnerId::new(0)),
            outcome: Some("quarterly review".into()),
            custom: custom([("sentiment", select("positive"))]),
            ..Activity::new(
                ActivityKind::Meeting,
                Direction::Outbound,
                Subject::Contact(ContactId::new(0)),
                utc(2026, 3, 26, 9, 0),
            )
        })?;
        Ok(())
    })?;

    // The inactivity sweep moves Han Meimei active -> dormant ...
    clock.set(utc(2026, 4, 15, 6, 0));
    db.write(|tx| -> crmdb::Result<()> {
        let moves = tx.sweep(utc(2026, 4, 15, 6, 0))?;
        assert_eq!(
            moves.len(),
            1,
            "the sweep moves exactly Han Meimei: {moves:?}"
        );
        Ok(())
    })?;
    // ... and her paid order brings her back (dormant -> active automatically).
    clock.set(utc(2026, 4, 20, 10, 30));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("zhang.wei");
        tx.insert(Order {
            contact: Some(ContactId::new(1)),
            at: utc(2026, 4, 20, 10, 0),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            total: Money(60_000),
            ..Default::default()
        })?;
        Ok(())
    })?;

    // RFM scores and tiers, then the saved segments.
    clock.set(utc(2026, 4, 30, 9, 0));
    db.write(|tx| -> crmdb::Result<()> {
        tx.set_actor("admin");
        tx.refresh_rfm(utc(2026, 4, 30, 0, 0))?;
        tx.save_segment(
            "vip_list",
            SavedSegment::of_ids([ContactId::new(0), ContactId::new(1), ContactId::new(5)]),
        )?;
        tx.save_segment(
            "high_value",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("tag:vip AND lifetime_value >= 800")?,
            },
        )?;
        tx.save_segment(
            "high_value_shanghai",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse(r#"segment:high_value AND region = "shanghai""#)?,
            },
        )?;
        tx.save_segment(
            "open_deals",
            SavedSegment::Dynamic {
                kind: EntityKind::Deal,
                query: Query::parse(
                    "NOT stage in (\"won\", \"lost\", \"renewed\", \"cancelled\")",
                )?,
            },
        )
    })?;
    Ok(())
}
