//! Pins crmdb's on-disk format, version 1, with a committed database file, in the manner
//! of redb's `tests/backward_compatibility.rs`.
//!
//! `tests/fixtures/format_v1.redb` was written by a format-1 build through the public
//! API alone ([`write_fixture`] below, on a [`ManualClock`], so every time in it is
//! fixed): every record kind with most fields set, custom fields of every type, stage
//! histories of every kind of change, saved segments, a soft-deleted and a purged
//! record, an RFM refresh and lead assignment rules. The tests open a copy of it (the
//! committed file is never opened for writing) and check it against values spelled out
//! here, not recomputed: every record field by field, every index kind through queries
//! with their answers, the histories, segments, schemas, machines and configuration,
//! the raw table layout and redb's header; then they write to the copy.
//!
//! A failure here means that this build reads format-1 files differently from the
//! build that wrote them. That calls for a format bump with an upgrade path
//! (`docs/design.md`, "Format versions and migration"), not for a new fixture. The file
//! is regenerated only on purpose, and then the literal expectations below are updated
//! by hand to what the new file holds:
//!
//! ```text
//! CRMDB_WRITE_FIXTURE=1 cargo test --test format_fixture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crmdb::analytics::RfmState;
use crmdb::{
    Account, AccountId, Activity, ActivityId, ActivityKind, Assignment, AssignmentRule, AutoMove,
    Backward, ChangeKind, Contact, ContactId, ContactRole, ContactStats, Database, Deal, DealId,
    Direction, EntityKind, Error, FieldDef, FieldType, Forward, Group, GroupBy, Guard, LineItem,
    Machine, Machines, ManualClock, Money, Order, OrderId, OrderStatus, Owner, OwnerId, Product,
    ProductId, Query, Record, RecordId, Rule, SavedSegment, Snapshot, SortBy, Stage, StageChange,
    StageDef, Subject, SweepRule, Task, TaskId, TaskStatus, Timestamp, Trigger, Value,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The command that rewrites the fixture, for messages.
const REGENERATE: &str = "CRMDB_WRITE_FIXTURE=1 cargo test --test format_fixture";

// ---- helpers ----

/// A UTC time from its calendar parts.
fn utc(year: i32, month: u32, day: u32, hour: i64, minute: i64) -> Timestamp {
    let midnight = Timestamp::from_ymd(year, month, day).expect("a valid calendar date");
    Timestamp(midnight.0 + hour * 3600 + minute * 60)
}

/// The clock of every check: the fixture's last write time, so that `within` queries
/// have fixed answers.
fn check_time() -> Timestamp {
    utc(2026, 4, 30, 9, 0)
}

fn strs(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn custom<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn select(s: &str) -> Value {
    Value::Select(s.to_owned())
}

fn line(product: u32, quantity: u32, unit_price: i64) -> LineItem {
    LineItem {
        product: ProductId::new(product),
        quantity,
        unit_price: Money(unit_price),
    }
}

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format_v1.redb")
}

/// The committed fixture, rewritten first (once per test run) when
/// `CRMDB_WRITE_FIXTURE=1` asks for it.
fn fixture() -> &'static Path {
    static FIXTURE: OnceLock<PathBuf> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = committed_path();
        if std::env::var("CRMDB_WRITE_FIXTURE").is_ok_and(|v| v == "1") {
            regenerate(&path);
        }
        assert!(
            path.is_file(),
            "{} is missing: it is committed with the repository and pins format 1; \
             restore it from git, or write a new one on purpose with `{REGENERATE}`",
            path.display()
        );
        path
    })
}

/// Writes the fixture next to its final place and renames it over, so that a failed
/// run never leaves a half-written fixture behind.
fn regenerate(path: &Path) {
    let fresh = path.with_extension("redb.new");
    let dir = path.parent().expect("the fixture path has a directory");
    std::fs::create_dir_all(dir).expect("create tests/fixtures");
    // A leftover from an interrupted run would be opened, not created afresh.
    let _ = std::fs::remove_file(&fresh);
    if let Err(e) = write_fixture(&fresh) {
        let _ = std::fs::remove_file(&fresh);
        panic!("writing the fixture failed: {e}");
    }
    std::fs::rename(&fresh, path).expect("move the new fixture into place");
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    eprintln!("wrote {} ({size} bytes)", path.display());
}

/// A directory under the system temp dir, unique to this process and call, removed on
/// drop (also when a check panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "crmdb-format-fixture-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch dir");
        Scratch(path)
    }

    /// A fresh copy of the committed fixture in this directory. Written from the bytes
    /// rather than with `fs::copy`, so that the copy is writable whatever the committed
    /// file's permissions.
    fn copy_of_fixture(&self) -> PathBuf {
        let copy = self.0.join("format_v1.redb");
        let bytes = std::fs::read(fixture()).expect("read the committed fixture");
        std::fs::write(&copy, bytes).expect("write the scratch copy");
        copy
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a copy with the defaults (no machines given, so the stored ones are used
/// unchecked) on a manual clock at [`check_time`].
fn open_copy(copy: &Path) -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(check_time()));
    let db = Database::builder().clock(clock.clone()).open(copy)?;
    Ok((db, clock))
}

/// Compares stored records with the expected ones, one record at a time so that a
/// failure names the record.
fn assert_records<R: Record + PartialEq>(found: Vec<(R::Id, R)>, expected: Vec<(R::Id, R)>) {
    let rows = |v: &[(R::Id, R)]| v.iter().map(|(id, _)| id.row()).collect::<Vec<_>>();
    assert_eq!(rows(&found), rows(&expected), "{} row ids", R::KIND);
    for ((id, found), (_, expected)) in found.iter().zip(&expected) {
        assert_eq!(found, expected, "{} {}", R::KIND, id.row());
    }
}

fn rows(bitmap: &crmdb::RoaringBitmap) -> Vec<u32> {
    bitmap.iter().collect()
}

// ---- the generator ----

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
fn write_fixture(path: &Path) -> crmdb::Result<()> {
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

// ---- the expected contents, spelled out ----

fn expected_contacts() -> Vec<(ContactId, Contact)> {
    let created = Some(utc(2026, 1, 6, 9, 0));
    vec![
        (
            ContactId::new(0),
            Contact {
                name: "Li Lei".into(),
                // Stored as given; only the natural key is normalised.
                email: Some("Li.Lei@Example.com".into()),
                phone: Some("+86 138 0013 8000".into()),
                region: Some("shanghai".into()),
                gender: Some("male".into()),
                birth_year: Some(1988),
                source: Some("wechat".into()),
                owner: Some(OwnerId::new(0)),
                account: Some(AccountId::new(0)),
                stage: Stage::new("active"),
                roles: BTreeSet::from([
                    ContactRole::Consumer,
                    ContactRole::Advocate,
                    ContactRole::DecisionMaker,
                ]),
                tags: strs(&["newsletter", "vip"]),
                unsubscribed: false,
                lifetime_value: Money(250_000),
                stats: ContactStats {
                    order_count: 2,
                    total_spent: Money(159_800),
                    last_order: Some(utc(2026, 1, 25, 10, 0)),
                    last_activity: Some(utc(2026, 3, 26, 9, 0)),
                    activity_count: 2,
                },
                assigned_by: None,
                custom: custom([
                    ("credit_limit", Value::Money(Money(5_000_000))),
                    ("industry", select("saas")),
                    ("interests", Value::MultiSelect(strs(&["golf", "tech"]))),
                    ("loyalty_points", Value::Integer(1200)),
                    ("nickname", text("Lei")),
                    ("renewal_date", Value::Date(utc(2026, 6, 30, 0, 0))),
                    ("verified", Value::Bool(true)),
                ]),
                created_at: created,
                updated_at: utc(2026, 3, 26, 10, 0),
                deleted_at: None,
            },
        ),
        (
            ContactId::new(1),
            Contact {
                name: "Han Meimei".into(),
                email: Some("han.meimei@example.com".into()),
                phone: None,
                region: Some("beijing".into()),
                gender: Some("female".into()),
                birth_year: Some(1992),
                source: Some("douyin".into()),
                owner: Some(OwnerId::new(1)),
                account: None,
                stage: Stage::new("active"),
                roles: BTreeSet::from([ContactRole::Fan, ContactRole::Member]),
                tags: strs(&["vip"]),
                unsubscribed: false,
                lifetime_value: Money(88_000),
                stats: ContactStats {
                    order_count: 1,
                    total_spent: Money(60_000),
                    last_order: Some(utc(2026, 4, 20, 10, 0)),
                    last_activity: Some(utc(2026, 1, 12, 16, 0)),
                    activity_count: 1,
                },
                assigned_by: None,
                custom: custom([
                    ("industry", select("retail")),
                    ("interests", Value::MultiSelect(strs(&["travel", "wine"]))),
                    ("verified", Value::Bool(false)),
                ]),
                created_at: created,
                updated_at: utc(2026, 4, 20, 10, 30),
                deleted_at: None,
            },
        ),
        (
            ContactId::new(2),
            Contact {
                name: "Zhao Qiang".into(),
                email: Some("zhao.qiang@example.com".into()),
                phone: None,
                region: Some("shanghai".into()),
                gender: Some("male".into()),
                birth_year: Some(1979),
                source: Some("website".into()),
                owner: Some(OwnerId::new(0)),
                account: None,
                stage: Stage::new("prospect"),
                roles: BTreeSet::from([ContactRole::User]),
                tags: strs(&["newsletter"]),
                unsubscribed: true,
                lifetime_value: Money(0),
                stats: ContactStats::default(),
                assigned_by: Some("regional".into()),
                custom: custom([
                    ("credit_limit", Value::Money(Money(-1_550))),
                    ("loyalty_points", Value::Integer(-20)),
                    ("nickname", text("Q")),
                ]),
                created_at: created,
                updated_at: utc(2026, 1, 6, 9, 0),
                deleted_at: None,
            },
        ),
        (
            ContactId::new(3),
            Contact {
                name: "Sun Li".into(),
                email: Some("sun.li@example.com".into()),
                phone: None,
                region: Some("guangzhou".into()),
                gender: None,
                birth_year: None,
                source: Some("trade_show".into()),
                owner: Some(OwnerId::new(0)),
                account: None,
                stage: Stage::new("new_customer"),
                roles: BTreeSet::new(),
                tags: strs(&["trade_show"]),
                unsubscribed: false,
                lifetime_value: Money(19_900),
                stats: ContactStats {
                    order_count: 1,
                    total_spent: Money(19_900),
                    last_order: Some(utc(2026, 1, 25, 14, 0)),
                    last_activity: Some(utc(2026, 1, 15, 12, 0)),
                    activity_count: 1,
                },
                assigned_by: Some("east_round_robin".into()),
                custom: custom([("industry", select("manufacturing"))]),
                created_at: created,
                updated_at: utc(2026, 1, 25, 16, 0),
                deleted_at: None,
            },
        ),
        // Row 4 (Temp Lead) was purged.
        (
            ContactId::new(5),
            Contact {
                name: "Zhou Min".into(),
                email: Some("zhou.min@example.com".into()),
                phone: None,
                region: Some("hangzhou".into()),
                gender: None,
                birth_year: None,
                source: None,
                owner: Some(OwnerId::new(1)),
                account: Some(AccountId::new(1)),
                stage: Stage::new("prospect"),
                roles: BTreeSet::new(),
                tags: strs(&["trade_show", "vip"]),
                unsubscribed: false,
                lifetime_value: Money(1_200_000),
                stats: ContactStats::default(),
                assigned_by: None,
                custom: custom([("loyalty_points", Value::Integer(50))]),
                created_at: created,
                // A soft delete keeps the last write time and stamps the bin time.
                updated_at: utc(2026, 1, 6, 9, 0),
                deleted_at: Some(utc(2026, 2, 15, 12, 0)),
            },
        ),
        (
            ContactId::new(6),
            Contact {
                name: "Wu Gang".into(),
                email: Some("wu.gang@example.com".into()),
                phone: Some("+86 139 0000 0006".into()),
                region: Some("shanghai".into()),
                gender: Some("male".into()),
                birth_year: None,
                source: None,
                owner: Some(OwnerId::new(0)),
                account: Some(AccountId::new(0)),
                stage: Stage::new("new_customer"),
                roles: BTreeSet::from([ContactRole::DecisionMaker, ContactRole::Influencer]),
                tags: strs(&["trade_show"]),
                unsubscribed: false,
                lifetime_value: Money(9_900),
                stats: ContactStats {
                    order_count: 1,
                    total_spent: Money(9_900),
                    last_order: Some(utc(2026, 1, 25, 11, 0)),
                    last_activity: Some(utc(2026, 1, 20, 9, 40)),
                    activity_count: 1,
                },
                assigned_by: None,
                custom: custom([("renewal_date", Value::Date(utc(2027, 1, 31, 0, 0)))]),
                created_at: created,
                // Binning the refunded order recomputed (and stamped) its figures.
                updated_at: utc(2026, 2, 15, 12, 0),
                deleted_at: None,
            },
        ),
        (
            ContactId::new(7),
            Contact {
                name: "Ma Lin".into(),
                email: Some("ma.lin@example.com".into()),
                phone: None,
                region: Some("chengdu".into()),
                gender: Some("female".into()),
                birth_year: Some(2001),
                source: Some("import".into()),
                owner: Some(OwnerId::new(2)),
                account: None,
                stage: Stage::new("new_customer"),
                roles: BTreeSet::new(),
                tags: BTreeSet::new(),
                unsubscribed: false,
                lifetime_value: Money(45_050),
                stats: ContactStats {
                    order_count: 1,
                    total_spent: Money(45_050),
                    last_order: Some(utc(2026, 1, 25, 13, 0)),
                    last_activity: None,
                    activity_count: 0,
                },
                assigned_by: Some("regional".into()),
                custom: custom([("interests", Value::MultiSelect(strs(&["travel"])))]),
                created_at: Some(utc(2025, 6, 1, 0, 0)),
                updated_at: utc(2026, 1, 25, 16, 0),
                deleted_at: None,
            },
        ),
    ]
}

fn expected_accounts() -> Vec<(AccountId, Account)> {
    vec![
        (
            AccountId::new(0),
            Account {
                name: "Hangzhou Cloud Ltd".into(),
                industry: Some("saas".into()),
                region: Some("hangzhou".into()),
                size: Some(120),
                tier: Some("A".into()),
                owner: Some(OwnerId::new(0)),
                tags: strs(&["key_account", "partner"]),
                custom: custom([("website", text("https://hzcloud.example"))]),
                created_at: Some(utc(2026, 1, 5, 10, 0)),
                updated_at: utc(2026, 1, 5, 10, 0),
                deleted_at: None,
            },
        ),
        (
            AccountId::new(1),
            Account {
                name: "Suzhou Retail Group".into(),
                industry: Some("retail".into()),
                region: Some("suzhou".into()),
                size: Some(2400),
                tier: Some("B".into()),
                owner: Some(OwnerId::new(1)),
                tags: strs(&["at_risk", "key_account"]),
                custom: BTreeMap::new(),
                created_at: Some(utc(2026, 1, 5, 10, 0)),
                updated_at: utc(2026, 2, 11, 10, 0),
                deleted_at: None,
            },
        ),
    ]
}

fn expected_deals() -> Vec<(DealId, Deal)> {
    let created = Some(utc(2026, 1, 15, 9, 30));
    vec![
        (
            DealId::new(0),
            Deal {
                name: "Hangzhou Cloud CRM seats".into(),
                // Stored empty; indexed (and queried) as the default pipeline.
                pipeline: String::new(),
                stage: Stage::new("won"),
                account: Some(AccountId::new(0)),
                contact: Some(ContactId::new(0)),
                participants: vec![ContactId::new(6)],
                owner: Some(OwnerId::new(0)),
                amount: Money(1_393_000),
                currency: "CNY".into(),
                close_date: Some(utc(2026, 3, 31, 0, 0)),
                probability_override: Some(70),
                lost_reason: None,
                line_items: vec![line(0, 70, 19_900)],
                tags: strs(&["upsell"]),
                custom: custom([("deal_source", select("referral"))]),
                created_at: created,
                updated_at: utc(2026, 2, 12, 17, 0),
                deleted_at: None,
            },
        ),
        (
            DealId::new(1),
            Deal {
                name: "Suzhou scanners".into(),
                pipeline: "default".into(),
                stage: Stage::new("lost"),
                account: Some(AccountId::new(1)),
                contact: Some(ContactId::new(1)),
                participants: Vec::new(),
                owner: Some(OwnerId::new(1)),
                amount: Money(450_500),
                currency: "CNY".into(),
                close_date: None,
                probability_override: None,
                lost_reason: Some("budget frozen until Q3".into()),
                line_items: vec![line(1, 10, 45_050)],
                tags: strs(&["hardware"]),
                custom: custom([("deal_source", select("outbound"))]),
                created_at: created,
                updated_at: utc(2026, 2, 2, 11, 0),
                deleted_at: None,
            },
        ),
        (
            DealId::new(2),
            Deal {
                name: "Hangzhou Cloud renewal 2026".into(),
                pipeline: "renewal".into(),
                stage: Stage::new("quoted"),
                account: Some(AccountId::new(0)),
                contact: Some(ContactId::new(0)),
                // Kept in the given order.
                participants: vec![ContactId::new(6), ContactId::new(2)],
                owner: Some(OwnerId::new(0)),
                amount: Money(300_000),
                currency: "CNY".into(),
                close_date: Some(utc(2026, 12, 31, 0, 0)),
                probability_override: None,
                lost_reason: None,
                line_items: Vec::new(),
                tags: strs(&["renewal_2026"]),
                custom: custom([
                    ("contract_no", text("HC-2026-001")),
                    ("deal_source", select("inbound")),
                ]),
                created_at: created,
                updated_at: utc(2026, 2, 11, 10, 0),
                deleted_at: None,
            },
        ),
    ]
}

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

fn expected_activities() -> Vec<(ActivityId, Activity)> {
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

fn expected_orders() -> Vec<(OrderId, Order)> {
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

fn expected_products() -> Vec<(ProductId, Product)> {
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

fn expected_owners() -> Vec<(OwnerId, Owner)> {
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

fn expected_tasks() -> Vec<(TaskId, Task)> {
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

/// One history entry.
fn change(
    from: Option<&str>,
    to: &str,
    at: Timestamp,
    actor: &str,
    reason: Option<&str>,
    kind: ChangeKind,
) -> StageChange {
    StageChange {
        from: from.map(Stage::new),
        to: Stage::new(to),
        at,
        actor: actor.into(),
        reason: reason.map(str::to_owned),
        kind,
    }
}

fn expected_contact_histories() -> Vec<(u32, Vec<StageChange>)> {
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

fn expected_deal_histories() -> Vec<(u32, Vec<StageChange>)> {
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

fn expected_machines() -> Machines {
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

fn expected_schema(kind: EntityKind) -> Vec<FieldDef> {
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

/// Segment queries with their answers (live row ids), covering every index kind:
/// categorical values of built-in and custom fields, tags, roles, stages, record ids,
/// booleans, text `exists`, numeric and date slices and buckets (money, integers,
/// negative values, dates, `within`), derived RFM indexes, and saved segments of both
/// kinds, one referring to another.
const QUERIES: &[(EntityKind, &str, &[u32])] = {
    use EntityKind::{Account, Activity, Contact, Deal, Order, Owner, Product, Task};
    &[
        (Contact, "*", &[0, 1, 2, 3, 6, 7]),
        (Contact, "tag:vip", &[0, 1]),
        (Contact, "tag:trade_show", &[3, 6]),
        (Contact, "tag:newsletter AND NOT tag:vip", &[2]),
        (Contact, "tag:never_used", &[]),
        (Contact, "stage:active", &[0, 1]),
        (Contact, "stage:new_customer", &[3, 6, 7]),
        (Contact, r#"stage in ("prospect", "responder")"#, &[2]),
        (Contact, "stage:dormant", &[]),
        (Contact, "region:shanghai", &[0, 2, 6]),
        (Contact, r#"gender = "female""#, &[1, 7]),
        (Contact, r#"source in ("wechat", "douyin")"#, &[0, 1]),
        (Contact, "owner = 0", &[0, 2, 3, 6]),
        (Contact, "owner = 2", &[7]),
        (Contact, "account = 0", &[0, 6]),
        (Contact, "role:decision_maker", &[0, 6]),
        (Contact, "role:fan OR role:user", &[1, 2]),
        (Contact, "unsubscribed = true", &[2]),
        (Contact, "NOT unsubscribed = true", &[0, 1, 3, 6, 7]),
        (Contact, "lifetime_value >= 800", &[0, 1]),
        (Contact, "lifetime_value between 99 and 450.50", &[3, 6, 7]),
        (Contact, "lifetime_value < 100", &[2, 6]),
        (Contact, "order_count >= 1", &[0, 1, 3, 6, 7]),
        (Contact, "order_count = 2", &[0]),
        (Contact, "total_spent > 500", &[0, 1]),
        (Contact, "activity_count = 0", &[2, 7]),
        (
            Contact,
            "last_order between 2026-01-01 and 2026-01-31",
            &[0, 3, 6, 7],
        ),
        (Contact, "last_activity within 40d", &[0]),
        (Contact, "created < 2026-01-01", &[7]),
        (Contact, "birth_year between 1980 and 1995", &[0, 1]),
        (Contact, "birth_year exists", &[0, 1, 2, 7]),
        (Contact, "custom.nickname exists", &[0, 2]),
        (Contact, "custom.loyalty_points < 0", &[2]),
        (Contact, "custom.loyalty_points >= 0", &[0]),
        (Contact, "custom.credit_limit >= 10000", &[0]),
        (Contact, "custom.credit_limit < 0", &[2]),
        (
            Contact,
            "custom.renewal_date between 2026-01-01 and 2026-12-31",
            &[0],
        ),
        (Contact, "custom.renewal_date > 2026-12-31", &[6]),
        (Contact, "custom.verified = true", &[0]),
        (Contact, "custom.verified = false", &[1]),
        (
            Contact,
            r#"custom.industry in ("saas", "manufacturing")"#,
            &[0, 3],
        ),
        (Contact, r#"custom.interests = "travel""#, &[1, 7]),
        (Contact, r#"custom.interests != "travel""#, &[0]),
        (Contact, "rfm.monetary = 5", &[0]),
        (Contact, "rfm.frequency = 5", &[0]),
        (Contact, "rfm.recency = 5", &[1]),
        (Contact, "tier:top20", &[0]),
        (Contact, "tier:rest", &[1, 3, 6, 7]),
        (Contact, "band:2", &[0]),
        (Contact, "segment:vip_list", &[0, 1]),
        (Contact, "NOT segment:vip_list", &[2, 3, 6, 7]),
        (Contact, "segment:high_value", &[0, 1]),
        (Contact, "segment:high_value_shanghai", &[0]),
        (Account, "industry:saas", &[0]),
        (Account, r#"tier in ("A", "B")"#, &[0, 1]),
        (Account, "owner = 1", &[1]),
        (Account, "tag:at_risk", &[1]),
        (Account, "tag:key_account", &[0, 1]),
        (Account, "size > 1000", &[1]),
        (Account, "size between 100 and 200", &[0]),
        (Account, "region:suzhou", &[1]),
        (Account, "custom.website exists", &[0]),
        (Account, "created = 2026-01-05", &[0, 1]),
        (Deal, "pipeline:default", &[0, 1]),
        (Deal, "pipeline:renewal", &[2]),
        (Deal, "stage:won", &[0]),
        (Deal, "stage:lost", &[1]),
        (Deal, "stage:quoted", &[2]),
        (Deal, "segment:open_deals", &[2]),
        (Deal, "owner = 0", &[0, 2]),
        (Deal, "account = 0", &[0, 2]),
        (Deal, "contact = 1", &[1]),
        (Deal, "participant = 6", &[0, 2]),
        (Deal, "participant = 2", &[2]),
        (Deal, "product = 0", &[0]),
        (Deal, "product = 1", &[1]),
        (Deal, "tag:upsell", &[0]),
        (Deal, "tag:q1", &[]),
        (Deal, "amount >= 10000", &[0]),
        (Deal, "amount between 3000 and 4505", &[1, 2]),
        (Deal, "close_date <= 2026-03-31", &[0]),
        (Deal, "close_date exists", &[0, 2]),
        (Deal, r#"custom.deal_source = "inbound""#, &[2]),
        (Deal, "custom.contract_no exists", &[2]),
        (Activity, "kind:meeting", &[2, 7]),
        (Activity, r#"kind in ("call", "email")"#, &[0, 1]),
        (Activity, "kind:visit", &[3]),
        (Activity, "kind:campaign_response", &[4]),
        (Activity, "kind:note", &[5]),
        (Activity, "kind:web_visit", &[6]),
        (Activity, "direction:inbound", &[0, 4, 6]),
        (Activity, "contact = 0", &[0, 7]),
        (Activity, "deal = 0", &[2]),
        (Activity, "account = 1", &[3]),
        (Activity, "owner = 1", &[1, 3, 5]),
        (Activity, "at >= 2026-03-01", &[7]),
        (
            Activity,
            "at between 2026-01-15 and 2026-01-16",
            &[2, 3, 4, 5],
        ),
        (Activity, r#"custom.sentiment = "positive""#, &[0, 7]),
        (Order, "*", &[0, 1, 2, 3, 4, 5, 7, 8]),
        (Order, "status:paid", &[0, 1, 2, 4, 5, 8]),
        (Order, "status:pending", &[3]),
        (Order, "status:refunded", &[]),
        (Order, "status:cancelled", &[7]),
        (Order, "contact = 6", &[2]),
        (Order, "account = 0", &[1]),
        (Order, "account = 1", &[7]),
        (Order, "product = 0", &[0, 5]),
        (Order, "product = 1", &[3, 4]),
        (Order, "total >= 450.50", &[1, 3, 4, 8]),
        (Order, "total = 0", &[7]),
        (Order, "at < 2026-01-20", &[0]),
        (Order, "custom.coupon exists", &[0]),
        (Product, "category:hardware", &[1]),
        (Product, "category exists", &[0, 1]),
        (Product, "list_price > 1000", &[2]),
        (Product, "list_price between 199 and 450.50", &[0, 1]),
        (Product, "custom.discontinued = true", &[1]),
        (Owner, "team:east", &[0, 1]),
        (Owner, "region:shanghai", &[0, 3]),
        (Owner, "capacity > 0", &[0, 2]),
        (Owner, "capacity = 0", &[1, 3]),
        (Owner, "custom.employee_no >= 9000", &[3]),
        (Task, "status:open", &[0]),
        (Task, r#"status in ("done", "cancelled")"#, &[1, 2]),
        (Task, "assignee = 1", &[1, 2]),
        (Task, "deal = 0", &[0]),
        (Task, "contact = 1", &[1]),
        (Task, "account = 1", &[2]),
        (Task, "due < 2026-01-20", &[1]),
        (Task, "due exists", &[0, 1]),
        (Task, "custom.reminder_at = 2026-01-29", &[0]),
    ]
};

// ---- the checks ----

#[test]
fn committed_file_is_a_cleanly_closed_redb_file() -> TestResult {
    let bytes = std::fs::read(fixture())?;
    // redb's magic number, then its header: page size at byte 12, the god byte at 9
    // (bit 0: primary commit slot; bit 1: recovery required), commit slots of 128
    // bytes from byte 64 whose first byte is redb's file format version.
    const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    assert!(
        bytes.starts_with(&REDB_MAGIC),
        "{} is not a redb file; restore it from git or rewrite it with `{REGENERATE}`",
        fixture().display()
    );
    assert_eq!(&bytes[12..16], &4096u32.to_le_bytes(), "page size");
    let god = bytes[9];
    assert_eq!(
        god & 2,
        0,
        "the fixture was closed cleanly (no recovery needed)"
    );
    let primary = 64 + 128 * usize::from(god & 1);
    assert_eq!(
        bytes[primary], 3,
        "redb file format version of the primary slot"
    );
    // A small file: a few hundred KiB of pages (redb grows in regions as needed).
    assert!(
        bytes.len() < 1 << 20,
        "the fixture is {} bytes; it should stay a few hundred KiB",
        bytes.len()
    );
    Ok(())
}

/// The layout of `docs/design.md` read with redb directly: the tables, the meta keys,
/// a version byte on every byte-string value, the natural keys, the history keys,
/// bitmap key names, bucket numbering and chunking, and saved segments as query text.
#[test]
fn raw_tables_have_the_documented_layout() -> TestResult {
    use redb::TableHandle as _;
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    let scratch = Scratch::new("raw");
    let copy = scratch.copy_of_fixture();
    let db = redb::ReadOnlyDatabase::open(&copy)?;
    let txn = db.begin_read()?;

    let mut tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            "bitmap_gen",
            "bitmaps",
            "history",
            "meta",
            "rows.account",
            "rows.activity",
            "rows.contact",
            "rows.deal",
            "rows.order",
            "rows.owner",
            "rows.product",
            "rows.task",
            "segments",
            "unique",
        ]
    );

    // Every value starts with the format-version byte 1; `format` holds 1 itself and
    // the row counters are bincode varints (one byte below 251).
    let meta = txn.open_table(TableDefinition::<&str, &[u8]>::new("meta"))?;
    let mut entries = BTreeMap::new();
    for entry in meta.iter()? {
        let (key, value) = entry?;
        entries.insert(key.value().to_owned(), value.value().to_vec());
    }
    assert_eq!(
        entries.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "analytics.rfm",
            "assignment",
            "assignment.round_robin",
            "format",
            "machines",
            "next_row.account",
            "next_row.activity",
            "next_row.contact",
            "next_row.deal",
            "next_row.order",
            "next_row.owner",
            "next_row.product",
            "next_row.task",
            "schema",
        ]
    );
    for (key, value) in &entries {
        assert_eq!(value.first(), Some(&1), "version byte of meta {key}");
    }
    assert_eq!(entries["format"], [1, 1], "the database format version");
    for (kind, next) in [
        ("contact", 8),
        ("account", 2),
        ("deal", 3),
        ("activity", 8),
        ("order", 9),
        ("product", 3),
        ("owner", 4),
        ("task", 4),
    ] {
        assert_eq!(
            entries[&format!("next_row.{kind}")],
            [1, next],
            "next_row.{kind}"
        );
    }

    for (kind, count) in [
        ("contact", 7),
        ("account", 2),
        ("deal", 3),
        ("activity", 8),
        ("order", 9),
        ("product", 3),
        ("owner", 4),
        ("task", 3),
    ] {
        let name = format!("rows.{kind}");
        let table = txn.open_table(TableDefinition::<u32, &[u8]>::new(&name))?;
        assert_eq!(table.len()?, count, "rows.{kind}");
        for entry in table.iter()? {
            let (row, value) = entry?;
            assert_eq!(
                value.value()[0],
                1,
                "version byte of {kind} {}",
                row.value()
            );
        }
    }

    // Natural keys, trimmed and lowercased; the soft-deleted contact keeps its email,
    // the purged one's is gone.
    let unique = txn.open_table(TableDefinition::<(&str, &str), u32>::new("unique"))?;
    let mut keys = Vec::new();
    for entry in unique.iter()? {
        let (key, row) = entry?;
        let (field, value) = key.value();
        keys.push((field.to_owned(), value.to_owned(), row.value()));
    }
    let key = |f: &str, v: &str, r: u32| (f.to_owned(), v.to_owned(), r);
    assert_eq!(
        keys,
        [
            key("contact.email", "han.meimei@example.com", 1),
            key("contact.email", "li.lei@example.com", 0),
            key("contact.email", "ma.lin@example.com", 7),
            key("contact.email", "sun.li@example.com", 3),
            key("contact.email", "wu.gang@example.com", 6),
            key("contact.email", "zhao.qiang@example.com", 2),
            key("contact.email", "zhou.min@example.com", 5),
            key("product.sku", "sku-crm-01", 0),
            key("product.sku", "sku-hw-02", 1),
            key("product.sku", "svc-onboard", 2),
        ]
    );

    // History keys: (entity kind as u8 — contact 0, deal 2 —, row, sequence from 0).
    let history = txn.open_table(TableDefinition::<(u8, u32, u32), &[u8]>::new("history"))?;
    let mut lengths: BTreeMap<(u8, u32), u32> = BTreeMap::new();
    for entry in history.iter()? {
        let (key, value) = entry?;
        let (kind, row, seq) = key.value();
        let next = lengths.entry((kind, row)).or_default();
        assert_eq!(seq, *next, "history sequence of {kind}/{row}");
        *next += 1;
        assert_eq!(
            value.value()[0],
            1,
            "version byte of history {kind}/{row}/{seq}"
        );
    }
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        [
            ((0, 0), 4),
            ((0, 1), 6),
            ((0, 2), 1),
            ((0, 3), 3),
            ((0, 5), 1),
            ((0, 6), 3),
            ((0, 7), 2),
            ((2, 0), 6),
            ((2, 1), 2),
            ((2, 2), 2),
        ]
    );

    // Bitmap chunks: every row id is below 4096, so every bitmap is one chunk 0.
    let bitmaps = txn.open_table(TableDefinition::<(&str, u32), &[u8]>::new("bitmaps"))?;
    let mut names = BTreeSet::new();
    for entry in bitmaps.iter()? {
        let (key, value) = entry?;
        let (name, chunk) = key.value();
        assert_eq!(chunk, 0, "chunk of {name}");
        assert_eq!(value.value()[0], 1, "version byte of bitmap {name}");
        names.insert(name.to_owned());
    }
    for name in [
        "contact/_state=live",
        "contact/_state=deleted",
        "contact/tag=vip",
        "contact/stage=active",
        "contact/role=decision_maker",
        "contact/unsubscribed=true",
        "contact/custom.industry=saas",
        "contact/custom.interests=travel",
        "contact/custom.verified=true",
        "contact/custom.nickname=",
        "contact/lifetime_value#e",
        "contact/custom.loyalty_points#63",
        "contact/custom.loyalty_points#b238",
        "contact/tier=top20",
        "contact/band=2",
        "contact/rfm.recency#e",
        "deal/owner=0",
        "deal/pipeline=default",
        "deal/participant=6",
        "order/product=1",
        "task/deal=0",
    ] {
        assert!(names.contains(name), "bitmap {name} is missing");
    }
    let bitmap = |name: &str| -> Result<Vec<u32>, Box<dyn std::error::Error>> {
        let value = bitmaps
            .get((name, 0))?
            .ok_or(format!("no chunk of {name}"))?;
        Ok(rows(&crmdb::raw::decode_bitmap(value.value())?))
    };
    // Indexes hold binned rows too; queries take the live set.
    assert_eq!(bitmap("contact/tag=vip")?, [0, 1, 5]);
    assert_eq!(bitmap("contact/_state=deleted")?, [5]);
    assert_eq!(bitmap("contact/lifetime_value#e")?, [0, 1, 2, 3, 5, 6, 7]);
    // -20: the sign slice of two's complement, and bucket 251 - 1 - 12 (the second
    // quarter of [16, 32), negative side).
    assert_eq!(bitmap("contact/custom.loyalty_points#63")?, [2]);
    assert_eq!(bitmap("contact/custom.loyalty_points#b238")?, [2]);
    assert_eq!(
        bitmap("contact/lifetime_value#b251")?,
        [2],
        "the zero bucket"
    );

    let generations = txn.open_table(TableDefinition::<&str, u64>::new("bitmap_gen"))?;
    for key in [
        "",
        "contact/tag=vip",
        "contact/lifetime_value#",
        "contact/rfm.monetary#",
        "contact/tier=top20",
    ] {
        assert!(generations.get(key)?.is_some(), "bitmap_gen entry {key:?}");
    }

    // Dynamic segments are stored as their canonical query text.
    let segments = txn.open_table(TableDefinition::<&str, &[u8]>::new("segments"))?;
    assert_eq!(segments.len()?, 4);
    for (name, text) in [
        ("high_value", r#"(tag = "vip" AND lifetime_value >= 800)"#),
        (
            "high_value_shanghai",
            r#"(segment:high_value AND region = "shanghai")"#,
        ),
        (
            "open_deals",
            r#"NOT stage IN ("won", "lost", "renewed", "cancelled")"#,
        ),
    ] {
        let value = segments.get(name)?.ok_or(format!("no segment {name}"))?;
        let bytes = value.value();
        assert_eq!(bytes[0], 1, "version byte of segment {name}");
        assert!(
            bytes.ends_with(text.as_bytes()),
            "segment {name} is stored as its text: {bytes:?}"
        );
    }
    Ok(())
}

#[test]
fn records_read_back_field_by_field() -> TestResult {
    let scratch = Scratch::new("records");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture())?;
    db.read(|r| {
        assert_records(r.records::<Contact>()?, expected_contacts());
        assert_records(r.records::<Account>()?, expected_accounts());
        assert_records(r.records::<Deal>()?, expected_deals());
        assert_records(r.records::<Activity>()?, expected_activities());
        assert_records(r.records::<Order>()?, expected_orders());
        assert_records(r.records::<Product>()?, expected_products());
        assert_records(r.records::<Owner>()?, expected_owners());
        assert_records(r.records::<Task>()?, expected_tasks());

        // Natural keys, compared trimmed and case-insensitively.
        assert_eq!(
            r.contact_by_email("li.lei@example.com")?,
            Some(ContactId::new(0))
        );
        assert_eq!(
            r.contact_by_email("  LI.LEI@EXAMPLE.COM ")?,
            Some(ContactId::new(0))
        );
        assert_eq!(
            r.contact_by_email("zhou.min@example.com")?,
            Some(ContactId::new(5))
        );
        assert_eq!(r.contact_by_email("temp.lead@example.com")?, None);
        assert_eq!(r.product_by_sku("sku-crm-01")?, Some(ProductId::new(0)));
        assert_eq!(r.product_by_sku("SKU-HW-02")?, Some(ProductId::new(1)));
        assert_eq!(r.product_by_sku("svc-onboard")?, Some(ProductId::new(2)));
        assert_eq!(r.product_by_sku("SKU-NONE")?, None);

        // The purged rows 4 (contact) and 3 (task) are in neither set.
        for (kind, live, deleted) in [
            (EntityKind::Contact, &[0, 1, 2, 3, 6, 7][..], &[5][..]),
            (EntityKind::Account, &[0, 1], &[]),
            (EntityKind::Deal, &[0, 1, 2], &[]),
            (EntityKind::Activity, &[0, 1, 2, 3, 4, 5, 6, 7], &[]),
            (EntityKind::Order, &[0, 1, 2, 3, 4, 5, 7, 8], &[6]),
            (EntityKind::Product, &[0, 1, 2], &[]),
            (EntityKind::Owner, &[0, 1, 2, 3], &[]),
            (EntityKind::Task, &[0, 1, 2], &[]),
        ] {
            assert_eq!(rows(&r.live(kind)?), live, "{kind} live");
            assert_eq!(rows(&r.deleted(kind)?), deleted, "{kind} deleted");
        }

        // Tags of live records, most used first, ties by name; the binned contact's
        // tags do not count.
        let tags = |kind| -> crmdb::Result<Vec<(String, u64)>> {
            Ok(r.tags(kind)?
                .into_iter()
                .map(|t| (t.tag, t.count))
                .collect())
        };
        let tag = |t: &str, n: u64| (t.to_owned(), n);
        assert_eq!(
            tags(EntityKind::Contact)?,
            [tag("newsletter", 2), tag("trade_show", 2), tag("vip", 2)]
        );
        assert_eq!(
            tags(EntityKind::Account)?,
            [tag("key_account", 2), tag("at_risk", 1), tag("partner", 1)]
        );
        assert_eq!(
            tags(EntityKind::Deal)?,
            [tag("hardware", 1), tag("renewal_2026", 1), tag("upsell", 1)]
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn indexes_answer_spelled_out_queries() -> TestResult {
    let scratch = Scratch::new("queries");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture())?;
    db.read(|r| {
        for &(kind, text, expected) in QUERIES {
            let query = Query::parse(text)?;
            assert_eq!(rows(&r.ids(kind, &query)?), expected, "{kind}: {text}");
            assert_eq!(
                r.count(kind, &query)?,
                expected.len() as u64,
                "{kind}: {text}"
            );
        }

        // Counts and exact sums from the bit-sliced index.
        let groups = r.group_by(
            EntityKind::Contact,
            &Query::all(),
            &GroupBy::new("stage").sum("lifetime_value"),
        )?;
        let group = |value: &str, count: u64, sum: i128| Group {
            value: value.into(),
            count,
            sum: Some(sum),
        };
        assert_eq!(
            groups,
            [
                group("new_customer", 3, 74_850),
                group("active", 2, 338_000),
                group("prospect", 1, 0),
            ]
        );

        // A page sorted by a numeric field.
        let page = r.page::<Contact>(
            &Query::all(),
            &SortBy::field("lifetime_value").descending(),
            3,
            None,
        )?;
        let ids: Vec<u32> = page.items.iter().map(|(id, _)| id.get()).collect();
        assert_eq!(ids, [0, 1, 7]);
        assert_eq!(page.total, 6);
        assert!(page.next_cursor.is_some());
        Ok(())
    })?;
    Ok(())
}

#[test]
fn histories_segments_and_configuration_read_back() -> TestResult {
    let scratch = Scratch::new("config");
    let (db, _clock) = open_copy(&scratch.copy_of_fixture())?;
    db.read(|r| {
        for (row, expected) in expected_contact_histories() {
            let found = r.history(ContactId::new(row))?;
            assert_eq!(found.len(), expected.len(), "contact {row} history length");
            for (i, (found, expected)) in found.iter().zip(&expected).enumerate() {
                assert_eq!(found, expected, "contact {row} history entry {i}");
            }
        }
        for (row, expected) in expected_deal_histories() {
            let found = r.history(DealId::new(row))?;
            assert_eq!(found.len(), expected.len(), "deal {row} history length");
            for (i, (found, expected)) in found.iter().zip(&expected).enumerate() {
                assert_eq!(found, expected, "deal {row} history entry {i}");
            }
        }
        assert_eq!(
            r.stage_at(ContactId::new(1), utc(2026, 4, 16, 0, 0))?,
            Some(Stage::new("dormant"))
        );

        assert_eq!(
            r.segments()?,
            [
                "high_value",
                "high_value_shanghai",
                "open_deals",
                "vip_list"
            ]
        );
        assert_eq!(
            r.segment("vip_list")?,
            SavedSegment::Static {
                kind: EntityKind::Contact,
                rows: vec![0, 1, 5],
            }
        );
        // Read back by parsing the stored canonical text; spelled out here as that text.
        for (name, kind, text) in [
            (
                "high_value",
                EntityKind::Contact,
                r#"(tag = "vip" AND lifetime_value >= 800)"#,
            ),
            (
                "high_value_shanghai",
                EntityKind::Contact,
                r#"(segment:high_value AND region = "shanghai")"#,
            ),
            (
                "open_deals",
                EntityKind::Deal,
                r#"NOT stage IN ("won", "lost", "renewed", "cancelled")"#,
            ),
        ] {
            let segment = r.segment(name)?;
            assert_eq!(
                segment,
                SavedSegment::Dynamic {
                    kind,
                    query: Query::parse(text)?,
                },
                "segment {name}"
            );
            let SavedSegment::Dynamic { query, .. } = segment else {
                unreachable!("compared as dynamic above");
            };
            assert_eq!(query.to_string(), text, "segment {name} text");
        }

        for kind in EntityKind::ALL {
            let fields: Vec<FieldDef> = r.schema(kind)?.fields().cloned().collect();
            assert_eq!(fields, expected_schema(kind), "{kind} schema");
        }
        assert_eq!(r.machines()?, expected_machines());
        assert_eq!(
            crmdb::assignment(r)?,
            Assignment {
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
                excluded: BTreeSet::from([OwnerId::new(3)]),
                lead_stages: vec![Stage::new("prospect"), Stage::new("responder")],
            }
        );
        assert_eq!(
            crmdb::analytics::rfm_state(r)?,
            Some(RfmState {
                refreshed_at: utc(2026, 4, 30, 0, 0),
                customers: 5,
                top20: 1,
                // 159 800 of 294 650 spent, stored as the f64 itself.
                top20_revenue_share: 0.542338367554726,
            })
        );
        Ok(())
    })?;
    Ok(())
}

/// The copy takes writes through every path the fixture's stored state feeds:
/// assignment round robin, natural keys, tags, both machines, the recycle bin, static
/// and dynamic segments, and row ids that continue past the purged ones.
#[test]
fn the_copy_takes_new_writes() -> TestResult {
    let committed = std::fs::read(fixture())?;
    let scratch = Scratch::new("writes");
    let copy = scratch.copy_of_fixture();
    let (mut db, clock) = open_copy(&copy)?;
    assert!(
        db.check_integrity()?,
        "redb integrity of the copy as committed"
    );

    clock.set(utc(2026, 5, 4, 9, 0));
    let (lead, task) = db.write(|tx| -> crmdb::Result<_> {
        tx.set_actor("qa");
        // No owner is in guangzhou, so the east team's round robin picks: it last gave
        // Sun Li to Wang Fang (0), so Zhang Wei (1) is next.
        let lead = tx.insert(Contact {
            name: "Lin Tao".into(),
            email: Some("lin.tao@example.com".into()),
            region: Some("guangzhou".into()),
            tags: strs(&["vip"]),
            lifetime_value: Money(100_000),
            ..Default::default()
        })?;
        let duplicate = tx.insert(Contact {
            name: "Li Lei again".into(),
            email: Some(" LI.LEI@example.com".into()),
            ..Default::default()
        });
        assert!(
            matches!(duplicate, Err(Error::Duplicate { existing: 0, .. })),
            "{duplicate:?}"
        );
        let task = tx.insert(Task {
            title: "Welcome call".into(),
            assignee: Some(OwnerId::new(1)),
            related: Some(Subject::Contact(lead)),
            ..Default::default()
        })?;
        tx.add_tag(ContactId::new(2), "vip")?;
        tx.move_stage(ContactId::new(2), "responder")?;
        let backward = tx.move_stage(ContactId::new(0), "prospect");
        assert!(
            matches!(
                backward,
                Err(Error::IllegalTransition {
                    rule: Rule::BackwardNeedsRegress,
                    ..
                })
            ),
            "{backward:?}"
        );
        // The renewal pipeline's guard reads the deal's custom field.
        tx.move_stage(DealId::new(2), "renewed")?;
        tx.restore(ContactId::new(5))?;
        Ok((lead, task))
    })?;
    // Ids are never reused: the purged contact 4 and task 3 stay gaps.
    assert_eq!(lead, ContactId::new(8));
    assert_eq!(task, TaskId::new(4));

    let check = |db: &Database| -> crmdb::Result<()> {
        db.read(|r| {
            let lead: Contact = r.get(ContactId::new(8))?;
            assert_eq!(lead.owner, Some(OwnerId::new(1)));
            assert_eq!(lead.assigned_by.as_deref(), Some("east_round_robin"));
            assert_eq!(lead.stage, Stage::new("prospect"));
            assert_eq!(lead.created_at, Some(utc(2026, 5, 4, 9, 0)));
            assert_eq!(
                r.contact_by_email("lin.tao@example.com")?,
                Some(ContactId::new(8))
            );
            assert_eq!(r.find(ContactId::new(4))?, None);
            assert_eq!(r.find(TaskId::new(3))?, None);
            assert_eq!(r.get(TaskId::new(4))?.title, "Welcome call");
            assert_eq!(
                rows(&r.live(EntityKind::Contact)?),
                [0, 1, 2, 3, 5, 6, 7, 8]
            );
            assert!(r.deleted(EntityKind::Contact)?.is_empty());
            assert_eq!(rows(&r.live(EntityKind::Task)?), [0, 1, 2, 4]);

            let ids = |kind, text: &str| -> crmdb::Result<Vec<u32>> {
                Ok(rows(&r.ids(kind, &Query::parse(text)?)?))
            };
            assert_eq!(ids(EntityKind::Contact, "tag:vip")?, [0, 1, 2, 5, 8]);
            assert_eq!(ids(EntityKind::Contact, "stage:responder")?, [2]);
            assert_eq!(ids(EntityKind::Contact, "segment:vip_list")?, [0, 1, 5]);
            assert_eq!(
                ids(EntityKind::Contact, "segment:high_value")?,
                [0, 1, 5, 8]
            );
            assert_eq!(
                ids(EntityKind::Contact, "segment:high_value_shanghai")?,
                [0]
            );
            assert_eq!(ids(EntityKind::Deal, "segment:open_deals")?, [] as [u32; 0]);
            assert_eq!(ids(EntityKind::Deal, "stage:renewed")?, [2]);
            assert_eq!(ids(EntityKind::Contact, "owner = 1")?, [1, 5, 8]);

            let tags: Vec<(String, u64)> = r
                .tags(EntityKind::Contact)?
                .into_iter()
                .map(|t| (t.tag, t.count))
                .collect();
            let tag = |t: &str, n: u64| (t.to_owned(), n);
            assert_eq!(
                tags,
                [tag("vip", 5), tag("trade_show", 3), tag("newsletter", 2)]
            );

            let moved = |from: &str, to: &str| {
                change(
                    Some(from),
                    to,
                    utc(2026, 5, 4, 9, 0),
                    "qa",
                    None,
                    ChangeKind::Move,
                )
            };
            let history = r.history(ContactId::new(2))?;
            assert_eq!(history.len(), 2);
            assert_eq!(history[1], moved("prospect", "responder"));
            let history = r.history(DealId::new(2))?;
            assert_eq!(history.len(), 3);
            assert_eq!(history[2], moved("quoted", "renewed"));
            Ok(())
        })
    };
    check(&db)?;
    // And the writes are durable in the new file.
    drop(db);
    let (mut db, _clock) = open_copy(&copy)?;
    check(&db)?;
    assert!(db.check_integrity()?, "redb integrity after the writes");
    drop(db);

    assert!(
        std::fs::read(fixture())? == committed,
        "the committed fixture changed during the test"
    );
    Ok(())
}
