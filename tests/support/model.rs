//! A naive reference for segment queries over contacts: field values read straight off
//! the records, the documented two-valued semantics applied by hand, and proptest
//! strategies for data sets and well-typed query ASTs.
//!
//! Semantics implemented here (crate docs, "Query language"):
//! - a condition on a record without a value for the field is false, whatever the
//!   operator; on a multi-valued field `!=` means "has a value, and not this one";
//! - `NOT q` is the complement of `q` within the live records;
//! - on money fields an integer literal is whole major units (×100);
//! - dates compare by day; `within Nd` is `day >= today - N` by the database clock;
//! - soft-deleted records never match.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use crmdb::Snapshot as _;
use crmdb::{
    CmpOp, Contact, ContactId, ContactRole, FieldDef, FieldType, Literal, Money, OwnerId,
    Predicate, Query, RoaringBitmap, SavedSegment, Timestamp, Value,
};
use proptest::prelude::*;

pub const REGIONS: [&str; 4] = ["shanghai", "beijing", "shenzhen", "o\"brien\\x"];
pub const SOURCES: [&str; 3] = ["web", "store", "referral"];
pub const TAGS: [&str; 5] = ["vip", "gold", "churn_risk", "b2b", "newsletter"];
pub const STAGES: [&str; 6] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
];
pub const INDUSTRIES: [&str; 3] = ["saas", "retail", "edu"];
pub const CHANNELS: [&str; 3] = ["web", "shop", "app"];
/// Lifetime values in minor units, edge values included.
pub const LTVS: [i64; 9] = [0, 1, 99, 100, 99_999, 100_000, -250, i64::MAX, i64::MIN];

/// Day number of 2026-01-01.
pub fn base_day() -> i64 {
    Timestamp::from_ymd(2026, 1, 1)
        .map(|t| t.day())
        .unwrap_or_default()
}

/// The custom contact fields the data sets use.
pub fn custom_defs() -> Vec<FieldDef> {
    let strings = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        FieldDef::new("industry", FieldType::SingleSelect(strings(&INDUSTRIES))),
        FieldDef::new("channels", FieldType::MultiSelect(strings(&CHANNELS))),
        FieldDef::new("score", FieldType::Integer),
        FieldDef::new("budget", FieldType::Money),
        FieldDef::new("renewal", FieldType::Date),
        FieldDef::new("trial", FieldType::Bool),
        FieldDef::new("note", FieldType::Text),
    ]
}

/// How a contact field is indexed, as documented per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cat,
    Id,
    Stage,
    Bool,
    Text,
    Int,
    Money,
    Date,
}

impl Kind {
    pub fn is_numeric(self) -> bool {
        matches!(self, Kind::Int | Kind::Money | Kind::Date)
    }
}

/// Queryable contact fields (built-in and the custom ones of [`custom_defs`]).
pub const FIELDS: [(&str, Kind); 24] = [
    ("region", Kind::Cat),
    ("gender", Kind::Cat),
    ("source", Kind::Cat),
    ("owner", Kind::Id),
    ("account", Kind::Id),
    ("stage", Kind::Stage),
    ("role", Kind::Cat),
    ("tag", Kind::Cat),
    ("unsubscribed", Kind::Bool),
    ("lifetime_value", Kind::Money),
    ("order_count", Kind::Int),
    ("total_spent", Kind::Money),
    ("activity_count", Kind::Int),
    ("last_order", Kind::Date),
    ("last_activity", Kind::Date),
    ("created", Kind::Date),
    ("birth_year", Kind::Int),
    ("custom.industry", Kind::Cat),
    ("custom.channels", Kind::Cat),
    ("custom.score", Kind::Int),
    ("custom.budget", Kind::Money),
    ("custom.renewal", Kind::Date),
    ("custom.trial", Kind::Bool),
    ("custom.note", Kind::Text),
];

pub fn kind_of(field: &str) -> Kind {
    FIELDS
        .iter()
        .find(|(n, _)| *n == field)
        .map(|(_, k)| *k)
        .unwrap_or_else(|| panic!("unknown field {field}"))
}

/// The categorical values a contact holds for a field (several for multi-valued ones).
pub fn cat_values(c: &Contact, field: &str) -> Vec<String> {
    let opt = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    match field {
        "region" => opt(&c.region),
        "gender" => opt(&c.gender),
        "source" => opt(&c.source),
        "owner" => c.owner.iter().map(|o| o.get().to_string()).collect(),
        "account" => c.account.iter().map(|a| a.get().to_string()).collect(),
        "stage" => vec![c.stage.as_str().to_owned()],
        "role" => c.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        "tag" => c.tags.iter().cloned().collect(),
        "unsubscribed" => vec![c.unsubscribed.to_string()],
        other => match other.strip_prefix("custom.").and_then(|n| c.custom.get(n)) {
            None => Vec::new(),
            Some(Value::Text(_)) => vec![String::new()],
            Some(Value::Bool(b)) => vec![b.to_string()],
            Some(Value::Select(s)) => vec![s.clone()],
            Some(Value::MultiSelect(set)) => set.iter().cloned().collect(),
            Some(v) => panic!("{other} holds a numeric value {v:?}"),
        },
    }
}

/// The numeric value (minor units, days) a contact holds for a field.
pub fn num_value(c: &Contact, field: &str) -> Option<i64> {
    match field {
        "lifetime_value" => Some(c.lifetime_value.0),
        "order_count" => Some(i64::from(c.stats.order_count)),
        "total_spent" => Some(c.stats.total_spent.0),
        "activity_count" => Some(i64::from(c.stats.activity_count)),
        "last_order" => c.stats.last_order.map(|t| t.day()),
        "last_activity" => c.stats.last_activity.map(|t| t.day()),
        "created" => c.created_at.map(|t| t.day()),
        "birth_year" => c.birth_year.map(i64::from),
        other => match other.strip_prefix("custom.").and_then(|n| c.custom.get(n)) {
            None => None,
            Some(Value::Integer(i)) => Some(*i),
            Some(Value::Money(m)) => Some(m.0),
            Some(Value::Date(t)) => Some(t.day()),
            Some(v) => panic!("{other} holds a categorical value {v:?}"),
        },
    }
}

fn lit_string(lit: &Literal) -> String {
    match lit {
        Literal::Str(s) => s.clone(),
        Literal::Int(i) => i.to_string(),
        Literal::Bool(b) => b.to_string(),
        other => panic!("not a categorical literal: {other:?}"),
    }
}

/// A numeric literal in the field's unit: minor units for money, days for dates.
pub fn lit_number(kind: Kind, lit: &Literal) -> i64 {
    match (kind, lit) {
        (Kind::Money, Literal::Int(major)) => major * 100,
        (Kind::Money, Literal::Decimal(m)) | (Kind::Money, Literal::Money(Money(m))) => *m,
        (Kind::Date, Literal::Date(d)) => *d,
        (Kind::Int, Literal::Int(i)) => *i,
        other => panic!("ill-typed literal {other:?}"),
    }
}

fn cmp(op: CmpOp, a: i64, b: i64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// What a naive evaluation needs besides the record.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub today: i64,
    pub segments: BTreeMap<String, SavedSegment>,
}

/// Whether the live contact at `row` matches `q`.
pub fn matches(q: &Query, row: u32, c: &Contact, env: &Env) -> bool {
    match q {
        Query::All => true,
        Query::And(items) => items.iter().all(|i| matches(i, row, c, env)),
        Query::Or(items) => items.iter().any(|i| matches(i, row, c, env)),
        Query::Not(inner) => !matches(inner, row, c, env),
        Query::Segment { name, .. } => match env.segments.get(name) {
            Some(SavedSegment::Static { rows, .. }) => rows.contains(&row),
            Some(SavedSegment::Dynamic { query, .. }) => matches(query, row, c, env),
            None => panic!("unknown segment {name}"),
        },
        Query::Field {
            field, predicate, ..
        } => field_matches(field, predicate, c, env),
    }
}

fn field_matches(field: &str, predicate: &Predicate, c: &Contact, env: &Env) -> bool {
    let kind = kind_of(field);
    if kind.is_numeric() {
        let Some(v) = num_value(c, field) else {
            return false;
        };
        return match predicate {
            Predicate::Cmp(op, lit) => cmp(*op, v, lit_number(kind, lit)),
            Predicate::In(lits) => lits.iter().any(|l| v == lit_number(kind, l)),
            Predicate::Between(lo, hi) => lit_number(kind, lo) <= v && v <= lit_number(kind, hi),
            Predicate::Within { days } => v >= env.today - i64::from(*days),
            Predicate::Exists => true,
        };
    }
    let values = cat_values(c, field);
    if values.is_empty() {
        return false;
    }
    match predicate {
        Predicate::Cmp(CmpOp::Eq, lit) => values.contains(&lit_string(lit)),
        Predicate::Cmp(CmpOp::Ne, lit) => !values.contains(&lit_string(lit)),
        Predicate::In(lits) => lits.iter().any(|l| values.contains(&lit_string(l))),
        Predicate::Exists => true,
        other => panic!("ill-typed predicate {other:?} on {field}"),
    }
}

/// Rows of the live contacts among `records` matching `q`.
pub fn naive_ids(q: &Query, records: &[(ContactId, Contact)], env: &Env) -> RoaringBitmap {
    records
        .iter()
        .filter(|(_, c)| c.deleted_at.is_none())
        .filter(|(id, c)| matches(q, id.get(), c, env))
        .map(|(id, _)| id.get())
        .collect()
}

/// `q` with every source offset set to 0, for comparing parsed and built queries.
pub fn strip_offsets(q: &Query) -> Query {
    match q {
        Query::All => Query::All,
        Query::And(items) => Query::And(items.iter().map(strip_offsets).collect()),
        Query::Or(items) => Query::Or(items.iter().map(strip_offsets).collect()),
        Query::Not(inner) => Query::Not(Box::new(strip_offsets(inner))),
        Query::Segment { name, .. } => Query::Segment {
            name: name.clone(),
            offset: 0,
        },
        Query::Field {
            field, predicate, ..
        } => Query::Field {
            field: field.clone(),
            predicate: predicate.clone(),
            offset: 0,
        },
    }
}

// ---- generated data ----

/// One generated contact (before insert): row order is insertion order.
#[derive(Debug, Clone)]
pub struct GenContact {
    pub region: Option<usize>,
    pub source: Option<usize>,
    pub gender: Option<bool>,
    pub owner: Option<usize>,
    pub stage: usize,
    pub tags: BTreeSet<usize>,
    pub roles: BTreeSet<usize>,
    pub unsubscribed: bool,
    pub ltv: i64,
    pub birth_year: Option<i32>,
    pub created_offset: i64,
    pub industry: Option<usize>,
    pub channels: Option<BTreeSet<usize>>,
    pub score: Option<i64>,
    pub budget: Option<i64>,
    pub renewal_offset: Option<i64>,
    pub trial: Option<bool>,
    pub note: bool,
    pub deleted: bool,
}

fn ltv_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => (0usize..LTVS.len() - 2).prop_map(|i| LTVS[i]),
        3 => (-5i64..400).prop_map(|v| v * 50),
        1 => (0usize..2).prop_map(|i| LTVS[LTVS.len() - 2 + i]),
    ]
}

pub fn gen_contact() -> impl Strategy<Value = GenContact> {
    (
        (
            proptest::option::weighted(0.8, 0..REGIONS.len()),
            proptest::option::weighted(0.7, 0..SOURCES.len()),
            proptest::option::of(any::<bool>()),
            proptest::option::weighted(0.6, 0usize..3),
            0..STAGES.len(),
            proptest::collection::btree_set(0..TAGS.len(), 0..3),
            proptest::collection::btree_set(0..ContactRole::ALL.len(), 0..2),
            any::<bool>(),
            ltv_strategy(),
            proptest::option::weighted(0.6, 1950i32..2010),
        ),
        (
            -400i64..40,
            proptest::option::weighted(0.6, 0..INDUSTRIES.len()),
            proptest::option::weighted(
                0.5,
                proptest::collection::btree_set(0..CHANNELS.len(), 0..3),
            ),
            proptest::option::weighted(0.6, -20i64..20),
            proptest::option::weighted(0.6, -3i64..2000),
            proptest::option::weighted(0.5, -200i64..200),
            proptest::option::weighted(0.5, any::<bool>()),
            any::<bool>(),
            proptest::bool::weighted(0.15),
        ),
    )
        .prop_map(
            |(
                (region, source, gender, owner, stage, tags, roles, unsubscribed, ltv, birth_year),
                (
                    created_offset,
                    industry,
                    channels,
                    score,
                    budget,
                    renewal_offset,
                    trial,
                    note,
                    deleted,
                ),
            )| GenContact {
                region,
                source,
                gender,
                owner,
                stage,
                tags,
                roles,
                unsubscribed,
                ltv,
                birth_year,
                created_offset,
                industry,
                channels,
                score,
                budget,
                renewal_offset,
                trial,
                note,
                deleted,
            },
        )
}

/// The contact record for a generated one. `owners` are the owner ids to point at.
pub fn to_contact(g: &GenContact, owners: &[OwnerId]) -> Contact {
    let mut custom = BTreeMap::new();
    if let Some(i) = g.industry {
        custom.insert("industry".into(), Value::Select(INDUSTRIES[i].into()));
    }
    if let Some(set) = &g.channels {
        custom.insert(
            "channels".into(),
            Value::MultiSelect(set.iter().map(|i| CHANNELS[*i].to_owned()).collect()),
        );
    }
    if let Some(s) = g.score {
        custom.insert("score".into(), Value::Integer(s));
    }
    if let Some(b) = g.budget {
        custom.insert("budget".into(), Value::Money(Money(b * 25)));
    }
    if let Some(d) = g.renewal_offset {
        // Mid-day times: dates must compare by day, not by second.
        let t = Timestamp((base_day() + d) * 86_400 + 3_600 * ((d.rem_euclid(23)) + 1));
        custom.insert("renewal".into(), Value::Date(t));
    }
    if let Some(t) = g.trial {
        custom.insert("trial".into(), Value::Bool(t));
    }
    if g.note {
        custom.insert("note".into(), Value::Text("called back".into()));
    }
    Contact {
        name: "someone".into(),
        region: g.region.map(|i| REGIONS[i].to_owned()),
        source: g.source.map(|i| SOURCES[i].to_owned()),
        gender: g.gender.map(|f| if f { "f" } else { "m" }.to_owned()),
        owner: g.owner.and_then(|i| owners.get(i).copied()),
        stage: STAGES[g.stage].into(),
        tags: g.tags.iter().map(|i| TAGS[*i].to_owned()).collect(),
        roles: g.roles.iter().map(|i| ContactRole::ALL[*i]).collect(),
        unsubscribed: g.unsubscribed,
        lifetime_value: Money(g.ltv),
        birth_year: g.birth_year,
        created_at: Some(Timestamp(
            (base_day() + g.created_offset) * 86_400 + 7_200 + g.created_offset.rem_euclid(50_000),
        )),
        custom,
        ..Default::default()
    }
}

// ---- generated queries ----

fn date_lit() -> impl Strategy<Value = Literal> {
    (-420i64..60).prop_map(|d| Literal::Date(base_day() + d))
}

fn money_lit() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (-5i64..1100).prop_map(Literal::Int),
        (-300i64..110_000).prop_map(Literal::Decimal),
        (0usize..LTVS.len()).prop_map(|i| Literal::Money(Money(LTVS[i]))),
        (-300i64..110_000).prop_map(|m| Literal::Money(Money(m))),
    ]
}

fn int_lit(field: &str) -> BoxedStrategy<Literal> {
    match field {
        "birth_year" => (1945i64..2015).prop_map(Literal::Int).boxed(),
        _ => (-25i64..25).prop_map(Literal::Int).boxed(),
    }
}

fn num_lit(field: &str, kind: Kind) -> BoxedStrategy<Literal> {
    match kind {
        Kind::Money => money_lit().boxed(),
        Kind::Date => date_lit().boxed(),
        _ => int_lit(field),
    }
}

fn cat_lit(field: &str, kind: Kind) -> BoxedStrategy<Literal> {
    let pick = |xs: &'static [&'static str]| {
        proptest::sample::select(xs).prop_map(|s| Literal::Str(s.to_owned()))
    };
    match (field, kind) {
        (_, Kind::Bool) => any::<bool>().prop_map(Literal::Bool).boxed(),
        (_, Kind::Id) => (0i64..4).prop_map(Literal::Int).boxed(),
        (_, Kind::Stage) => pick(&STAGES).boxed(),
        ("region", _) => {
            prop_oneof![4 => pick(&REGIONS), 1 => Just(Literal::Str("nowhere".into()))].boxed()
        }
        ("source", _) => pick(&SOURCES).boxed(),
        ("gender", _) => pick(&["f", "m", "x"]).boxed(),
        ("tag", _) => pick(&TAGS).boxed(),
        ("role", _) => pick(&["fan", "consumer", "member", "advocate", "influencer"]).boxed(),
        ("custom.industry", _) => pick(&INDUSTRIES).boxed(),
        ("custom.channels", _) => pick(&CHANNELS).boxed(),
        other => panic!("no literals for {other:?}"),
    }
}

fn op_strategy() -> impl Strategy<Value = CmpOp> {
    proptest::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ])
}

/// A well-typed condition on one field, built with the public builder.
pub fn leaf() -> BoxedStrategy<Query> {
    proptest::sample::select(FIELDS.to_vec())
        .prop_flat_map(|(field, kind)| {
            let f = move || Query::field(field);
            if kind == Kind::Text {
                return Just(f().exists()).boxed();
            }
            if kind.is_numeric() {
                let lit = move || num_lit(field, kind);
                let mut options = vec![
                    (op_strategy(), lit())
                        .prop_map(move |(op, l)| match op {
                            CmpOp::Eq => f().eq(l),
                            CmpOp::Ne => f().ne(l),
                            CmpOp::Lt => f().lt(l),
                            CmpOp::Le => f().le(l),
                            CmpOp::Gt => f().gt(l),
                            CmpOp::Ge => f().ge(l),
                        })
                        .boxed(),
                    proptest::collection::vec(lit(), 1..4)
                        .prop_map(move |ls| f().is_in(ls))
                        .boxed(),
                    (lit(), lit())
                        .prop_map(move |(a, b)| f().between(a, b))
                        .boxed(),
                    Just(f().exists()).boxed(),
                ];
                if kind == Kind::Date {
                    options.push((0u32..500).prop_map(move |d| f().within_days(d)).boxed());
                }
                return proptest::strategy::Union::new(options).boxed();
            }
            let lit = move || cat_lit(field, kind);
            prop_oneof![
                3 => lit().prop_map(move |l| f().eq(l)),
                2 => lit().prop_map(move |l| f().ne(l)),
                2 => proptest::collection::vec(lit(), 1..4).prop_map(move |ls| f().is_in(ls)),
                1 => Just(f().exists()),
            ]
            .boxed()
        })
        .boxed()
}

/// A random query: leaves (and `segments` references) under AND, OR and NOT.
pub fn query(segments: Vec<String>) -> BoxedStrategy<Query> {
    let base = if segments.is_empty() {
        prop_oneof![12 => leaf(), 1 => Just(Query::all())].boxed()
    } else {
        prop_oneof![
            12 => leaf(),
            1 => Just(Query::all()),
            2 => proptest::sample::select(segments).prop_map(Query::segment),
        ]
        .boxed()
    };
    base.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|items| {
                let mut it = items.into_iter();
                let first = it.next().unwrap_or_else(Query::all);
                it.fold(first, Query::and)
            }),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|items| {
                let mut it = items.into_iter();
                let first = it.next().unwrap_or_else(Query::all);
                it.fold(first, Query::or)
            }),
            inner.prop_map(|q| !q),
        ]
    })
    .boxed()
}

/// Loads a generated data set into a new in-memory database whose clock stands at
/// `today`: the custom fields, three owners, a soft-deleted contact carrying every tag
/// (so that every tag is known to the engine, none of them through a live record), then
/// the contacts. Returns the database and every contact as read back.
pub fn load(
    contacts: &[GenContact],
    today: Timestamp,
) -> (crmdb::Database, Vec<(ContactId, Contact)>) {
    let db = crmdb::Database::builder()
        .clock(std::sync::Arc::new(crmdb::ManualClock::new(today)))
        .in_memory()
        .expect("open in memory");
    db.write(|tx| -> crmdb::Result<_> {
        for def in custom_defs() {
            tx.define_field(crmdb::EntityKind::Contact, def)?;
        }
        let owners: Vec<OwnerId> = (0..3)
            .map(|i| {
                tx.insert(crmdb::Owner {
                    name: format!("owner {i}"),
                    ..Default::default()
                })
            })
            .collect::<crmdb::Result<_>>()?;
        let seed = tx.insert(Contact {
            name: "seed".into(),
            tags: TAGS.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        })?;
        tx.soft_delete(seed)?;
        for g in contacts {
            let id = tx.insert(to_contact(g, &owners))?;
            if g.deleted {
                tx.soft_delete(id)?;
            }
        }
        Ok(())
    })
    .expect("load data set");
    let records = db.read(|r| r.records::<Contact>()).expect("read back");
    (db, records)
}
