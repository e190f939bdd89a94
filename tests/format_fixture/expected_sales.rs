//! The expected activities, orders, products, owners and tasks, spelled out.

use std::collections::BTreeMap;

use crmdb::{
    AccountId, Activity, ActivityId, ActivityKind, ContactId, DealId, Direction, LineItem, Money,
    Order, OrderId, OrderStatus, Owner, OwnerId, Product, ProductId, Subject, Task, TaskId,
    TaskStatus, Timestamp, Value,
};

use crate::support::{custom, line, select, text, utc};

#[allow(clippy::too_many_arguments)]
fn activity(
    kind: ActivityKind,
    direction: Direction,
    subject: Subject,
    owner: Option<u32>,
    at: Timestamp,
    outcome: Option<&str>,
    sentiment: Option<&str>,
    created: Timestamp,
) -> Activity {
    Activity {
        kind,
        direction,
        subject,
        owner: owner.map(OwnerId::new),
        at,
        outcome: outcome.map(str::to_owned),
        custom: sentiment.map_or_else(BTreeMap::new, |s| custom([("sentiment", select(s))])),
        created_at: Some(created),
        updated_at: created,
        deleted_at: None,
    }
}

pub(crate) fn expected_activities() -> Vec<(ActivityId, Activity)> {
    use ActivityKind as K;
    use Direction::{Inbound, Outbound};
    let batch = utc(2026, 1, 15, 9, 30);
    vec![
        (
            ActivityId::new(0),
            activity(
                K::Email,
                Inbound,
                Subject::Contact(ContactId::new(0)),
                Some(0),
                utc(2026, 1, 7, 10, 45),
                Some("asked for pricing"),
                Some("positive"),
                utc(2026, 1, 7, 11, 0),
            ),
        ),
        (
            ActivityId::new(1),
            activity(
                K::Call,
                Outbound,
                Subject::Contact(ContactId::new(1)),
                Some(1),
                utc(2026, 1, 12, 16, 0),
                Some("no answer"),
                None,
                utc(2026, 1, 12, 16, 30),
            ),
        ),
        (
            ActivityId::new(2),
            activity(
                K::Meeting,
                Outbound,
                Subject::Deal(DealId::new(0)),
                Some(0),
                utc(2026, 1, 15, 10, 0),
                Some("product demo"),
                None,
                batch,
            ),
        ),
        (
            ActivityId::new(3),
            activity(
                K::Visit,
                Outbound,
                Subject::Account(AccountId::new(1)),
                Some(1),
                utc(2026, 1, 16, 14, 0),
                None,
                Some("neutral"),
                batch,
            ),
        ),
        (
            ActivityId::new(4),
            activity(
                K::CampaignResponse,
                Inbound,
                Subject::Contact(ContactId::new(3)),
                None,
                utc(2026, 1, 15, 12, 0),
                None,
                None,
                batch,
            ),
        ),
        (
            ActivityId::new(5),
            activity(
                K::Note,
                Outbound,
                Subject::Deal(DealId::new(1)),
                Some(1),
                utc(2026, 1, 15, 17, 0),
                Some("procurement paused"),
                None,
                batch,
            ),
        ),
        (
            ActivityId::new(6),
            activity(
                K::WebVisit,
                Inbound,
                Subject::Contact(ContactId::new(6)),
                None,
                utc(2026, 1, 20, 9, 40),
                None,
                None,
                utc(2026, 1, 20, 10, 0),
            ),
        ),
        (
            ActivityId::new(7),
            activity(
                K::Meeting,
                Outbound,
                Subject::Contact(ContactId::new(0)),
                Some(0),
                utc(2026, 3, 26, 9, 0),
                Some("quarterly review"),
                Some("positive"),
                utc(2026, 3, 26, 10, 0),
            ),
        ),
    ]
}

pub(crate) fn expected_orders() -> Vec<(OrderId, Order)> {
    let batch = utc(2026, 1, 25, 16, 0);
    let order = |contact: Option<u32>,
                 account: Option<u32>,
                 at: Timestamp,
                 status: OrderStatus,
                 currency: &str,
                 line_items: Vec<LineItem>,
                 total: i64,
                 created: Timestamp| Order {
        contact: contact.map(ContactId::new),
        account: account.map(AccountId::new),
        at,
        status,
        currency: currency.into(),
        line_items,
        total: Money(total),
        custom: BTreeMap::new(),
        created_at: Some(created),
        updated_at: created,
        deleted_at: None,
    };
    use OrderStatus::{Cancelled, Paid, Pending, Refunded};
    vec![
        (
            OrderId::new(0),
            Order {
                custom: custom([("coupon", text("NEWYEAR"))]),
                // The zero total was filled in from the lines.
                ..order(
                    Some(0),
                    None,
                    utc(2026, 1, 10, 14, 30),
                    Paid,
                    "CNY",
                    vec![line(0, 2, 19_900)],
                    39_800,
                    utc(2026, 1, 10, 15, 0),
                )
            },
        ),
        (
            OrderId::new(1),
            order(
                Some(0),
                Some(0),
                utc(2026, 1, 25, 10, 0),
                Paid,
                "CNY",
                vec![line(2, 1, 120_000)],
                120_000,
                batch,
            ),
        ),
        (
            OrderId::new(2),
            order(
                Some(6),
                None,
                utc(2026, 1, 25, 11, 0),
                Paid,
                "CNY",
                Vec::new(),
                9_900,
                batch,
            ),
        ),
        (
            OrderId::new(3),
            order(
                Some(1),
                None,
                utc(2026, 1, 25, 12, 0),
                Pending,
                "CNY",
                vec![line(1, 1, 45_050)],
                45_050,
                batch,
            ),
        ),
        (
            OrderId::new(4),
            order(
                Some(7),
                None,
                utc(2026, 1, 25, 13, 0),
                Paid,
                "CNY",
                vec![line(1, 1, 45_050)],
                45_050,
                batch,
            ),
        ),
        (
            OrderId::new(5),
            order(
                Some(3),
                None,
                utc(2026, 1, 25, 14, 0),
                Paid,
                "USD",
                vec![line(0, 1, 19_900)],
                19_900,
                batch,
            ),
        ),
        (
            OrderId::new(6),
            Order {
                custom: custom([("coupon", text("SORRY5"))]),
                deleted_at: Some(utc(2026, 2, 15, 12, 0)),
                ..order(
                    Some(6),
                    None,
                    utc(2026, 1, 25, 15, 0),
                    Refunded,
                    "CNY",
                    Vec::new(),
                    5_000,
                    batch,
                )
            },
        ),
        (
            OrderId::new(7),
            order(
                None,
                Some(1),
                utc(2026, 1, 25, 15, 30),
                Cancelled,
                "CNY",
                Vec::new(),
                0,
                batch,
            ),
        ),
        (
            OrderId::new(8),
            order(
                Some(1),
                None,
                utc(2026, 4, 20, 10, 0),
                Paid,
                "CNY",
                Vec::new(),
                60_000,
                utc(2026, 4, 20, 10, 30),
            ),
        ),
    ]
}

pub(crate) fn expected_products() -> Vec<(ProductId, Product)> {
    let created = utc(2026, 1, 5, 10, 0);
    vec![
        (
            ProductId::new(0),
            Product {
                sku: "SKU-CRM-01".into(),
                name: "CRM seat (annual)".into(),
                category: Some("software".into()),
                list_price: Money(19_900),
                custom: custom([("discontinued", Value::Bool(false))]),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
        (
            ProductId::new(1),
            Product {
                sku: "SKU-HW-02".into(),
                name: "Barcode scanner".into(),
                category: Some("hardware".into()),
                list_price: Money(45_050),
                custom: custom([("discontinued", Value::Bool(true))]),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
        (
            ProductId::new(2),
            Product {
                sku: "Svc-Onboard".into(),
                name: "Onboarding package".into(),
                category: None,
                list_price: Money(120_000),
                custom: BTreeMap::new(),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
    ]
}

pub(crate) fn expected_owners() -> Vec<(OwnerId, Owner)> {
    let created = utc(2026, 1, 5, 9, 0);
    let owner = |name: &str,
                 email: Option<&str>,
                 team: &str,
                 region: &str,
                 capacity: u32,
                 employee_no: Option<i64>| Owner {
        name: name.into(),
        email: email.map(str::to_owned),
        team: Some(team.into()),
        region: Some(region.into()),
        capacity,
        custom: employee_no.map_or_else(BTreeMap::new, |n| {
            custom([("employee_no", Value::Integer(n))])
        }),
        created_at: Some(created),
        updated_at: created,
        deleted_at: None,
    };
    vec![
        (
            OwnerId::new(0),
            owner(
                "Wang Fang",
                Some("wang.fang@brand.example"),
                "east",
                "shanghai",
                5,
                Some(1001),
            ),
        ),
        (
            OwnerId::new(1),
            owner(
                "Zhang Wei",
                Some("zhang.wei@brand.example"),
                "east",
                "beijing",
                0,
                Some(1002),
            ),
        ),
        (
            OwnerId::new(2),
            owner("Liu Yang", None, "west", "chengdu", 3, None),
        ),
        (
            OwnerId::new(3),
            owner(
                "Chen Jie",
                Some("chen.jie@brand.example"),
                "management",
                "shanghai",
                0,
                Some(9001),
            ),
        ),
    ]
}

pub(crate) fn expected_tasks() -> Vec<(TaskId, Task)> {
    let created = utc(2026, 1, 15, 9, 30);
    vec![
        (
            TaskId::new(0),
            Task {
                title: "Send contract to Hangzhou Cloud".into(),
                assignee: Some(OwnerId::new(0)),
                due: Some(utc(2026, 1, 30, 18, 0)),
                status: TaskStatus::Open,
                related: Some(Subject::Deal(DealId::new(0))),
                custom: custom([("reminder_at", Value::Date(utc(2026, 1, 29, 9, 0)))]),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
        (
            TaskId::new(1),
            Task {
                title: "Call back Han Meimei".into(),
                assignee: Some(OwnerId::new(1)),
                due: Some(utc(2026, 1, 16, 10, 0)),
                status: TaskStatus::Done,
                related: Some(Subject::Contact(ContactId::new(1))),
                custom: BTreeMap::new(),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
        (
            TaskId::new(2),
            Task {
                title: "Prepare Suzhou visit".into(),
                assignee: Some(OwnerId::new(1)),
                due: None,
                status: TaskStatus::Cancelled,
                related: Some(Subject::Account(AccountId::new(1))),
                custom: BTreeMap::new(),
                created_at: Some(created),
                updated_at: created,
                deleted_at: None,
            },
        ),
        // Row 3 (Scratch task) was purged.
    ]
}
