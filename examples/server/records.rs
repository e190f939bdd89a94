//! The server's JSON shapes for the eight record kinds: what a client sends on create
//! and replace, what it gets back, and the conversions to and from crmdb's types.
//!
//! The engine types stay free of HTTP concerns; everything JSON lives here. Money is
//! sent back as an exact decimal string (`"1234.50"`) and accepted as a string or a
//! number of major units with at most two decimals. Times are sent back as
//! `YYYY-MM-DDTHH:MM:SSZ` and accepted in that form, as `YYYY-MM-DD`, or as seconds
//! since the Unix epoch. Custom fields are checked against the kind's schema.

use std::collections::{BTreeMap, BTreeSet};

use crmdb::{
    Account, AccountId, Activity, ActivityId, ActivityKind, Contact, ContactId, ContactRole,
    CustomSchema, Deal, DealId, Direction, EntityKind, Error, FieldType, LineItem, Money, Order,
    OrderId, OrderStatus, Owner, OwnerId, Product, ProductId, Record, Result, Stage, StageChange,
    Subject, Task, TaskId, TaskStatus, Timestamp, Value,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Map, Value as Json, json};

/// A record kind the server exposes under `/<PATH>`.
pub trait Resource: Record {
    /// The URL segment, e.g. `contacts`.
    const PATH: &'static str;
    /// The request body for create and replace.
    type Input: DeserializeOwned + Send + 'static;
    /// Builds the record from a request body, checking custom fields against `schema`.
    fn from_input(input: Self::Input, schema: &CustomSchema) -> Result<Self>;
    /// The response body.
    fn to_json(id: Self::Id, record: &Self) -> Json;
    /// On replace, keeps what the body left unset but only the engine may change
    /// (a contact's or deal's stage, which moves through its own endpoint).
    fn keep_on_replace(&mut self, _stored: &Self) {}
}

/// Money in a request: a decimal string or a JSON number of major units.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MoneyIn {
    /// Whole major units.
    Whole(i64),
    /// Major units with a fraction; at most two decimals.
    Fraction(f64),
    /// An exact decimal string, `"99.50"`.
    Text(String),
}

/// A time in a request: seconds since the epoch or an ISO date (time).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeIn {
    /// Seconds since 1970-01-01T00:00:00Z.
    Seconds(i64),
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`.
    Text(String),
}

fn invalid(kind: EntityKind, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidField {
        kind,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Parses an exact decimal of major units with at most two places.
pub fn parse_money(text: &str) -> Option<Money> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || fraction.len() > 2 || !all_digits(fraction) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut cents: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    if fraction.len() == 1 {
        cents *= 10;
    }
    let minor = whole.checked_mul(100)?.checked_add(cents)?;
    Some(Money(if negative { -minor } else { minor }))
}

fn money_in(kind: EntityKind, field: &str, value: MoneyIn) -> Result<Money> {
    let bad = || invalid(kind, field, "money must have at most two decimals and fit");
    match value {
        MoneyIn::Whole(units) => units.checked_mul(100).map(Money).ok_or_else(bad),
        MoneyIn::Fraction(units) => {
            let minor = (units * 100.0).round();
            // Up to 2^53 minor units a float holds every cent exactly.
            if !minor.is_finite()
                || minor.abs() > 9_007_199_254_740_992.0
                || (units * 100.0 - minor).abs() > 1e-6
            {
                return Err(bad());
            }
            Ok(Money(minor as i64))
        }
        MoneyIn::Text(text) => parse_money(&text).ok_or_else(bad),
    }
}

fn money_opt(kind: EntityKind, field: &str, value: Option<MoneyIn>) -> Result<Money> {
    value.map_or(Ok(Money::ZERO), |v| money_in(kind, field, v))
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').unwrap_or(time))),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let midnight = Timestamp::from_ymd(year, month, day)?;
    let seconds = match time {
        None => 0,
        Some(time) => {
            let mut parts = time.splitn(3, ':');
            let h: i64 = parts.next()?.parse().ok()?;
            let m: i64 = parts.next()?.parse().ok()?;
            let s: i64 = parts.next().unwrap_or("0").parse().ok()?;
            if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) {
                return None;
            }
            h * 3600 + m * 60 + s
        }
    };
    Some(Timestamp(midnight.0 + seconds))
}

fn time_in(kind: EntityKind, field: &str, value: TimeIn) -> Result<Timestamp> {
    match value {
        TimeIn::Seconds(s) => Ok(Timestamp(s)),
        TimeIn::Text(text) => parse_time(&text).ok_or_else(|| {
            invalid(
                kind,
                field,
                "expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or epoch seconds",
            )
        }),
    }
}

fn time_opt(kind: EntityKind, field: &str, value: Option<TimeIn>) -> Result<Option<Timestamp>> {
    value.map(|v| time_in(kind, field, v)).transpose()
}

fn money_json(money: Money) -> Json {
    Json::String(money.to_string())
}

fn time_json(at: Option<Timestamp>) -> Json {
    at.map_or(Json::Null, |t| Json::String(t.to_string()))
}

fn stage_in(stage: Option<String>) -> Stage {
    stage.map(Stage::new).unwrap_or_default()
}

fn tags_in(tags: Vec<String>) -> BTreeSet<String> {
    tags.into_iter().collect()
}

/// Converts a custom-field object using the kind's schema.
pub fn custom_in(
    kind: EntityKind,
    schema: &CustomSchema,
    values: Map<String, Json>,
) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (name, value) in values {
        if value.is_null() {
            continue;
        }
        let def = schema.field(&name).ok_or_else(|| Error::UnknownField {
            kind,
            field: format!("custom.{name}"),
        })?;
        let field = format!("custom.{name}");
        let wrong = |expected: &str| invalid(kind, &field, format!("expected {expected}"));
        let converted = match &def.field_type {
            FieldType::Text => Value::Text(value.as_str().ok_or_else(|| wrong("a string"))?.into()),
            FieldType::Integer => {
                Value::Integer(value.as_i64().ok_or_else(|| wrong("an integer"))?)
            }
            FieldType::Money => {
                let money = serde_json::from_value::<MoneyIn>(value)
                    .map_err(|_| wrong("an amount of money"))?;
                Value::Money(money_in(kind, &field, money)?)
            }
            FieldType::Date => {
                let at =
                    serde_json::from_value::<TimeIn>(value).map_err(|_| wrong("a date or time"))?;
                Value::Date(time_in(kind, &field, at)?)
            }
            FieldType::Bool => Value::Bool(value.as_bool().ok_or_else(|| wrong("true or false"))?),
            FieldType::SingleSelect(_) => {
                Value::Select(value.as_str().ok_or_else(|| wrong("a string"))?.into())
            }
            FieldType::MultiSelect(_) => {
                let items = value
                    .as_array()
                    .ok_or_else(|| wrong("an array of strings"))?;
                let mut set = BTreeSet::new();
                for item in items {
                    set.insert(
                        item.as_str()
                            .ok_or_else(|| wrong("an array of strings"))?
                            .to_owned(),
                    );
                }
                Value::MultiSelect(set)
            }
        };
        out.insert(name, converted);
    }
    Ok(out)
}

fn custom_json(values: &BTreeMap<String, Value>) -> Json {
    let mut out = Map::new();
    for (name, value) in values {
        let json = match value {
            Value::Text(s) | Value::Select(s) => Json::String(s.clone()),
            Value::Integer(i) => json!(i),
            Value::Money(m) => money_json(*m),
            Value::Date(t) => Json::String(t.to_string()),
            Value::Bool(b) => Json::Bool(*b),
            Value::MultiSelect(set) => json!(set),
        };
        out.insert(name.clone(), json);
    }
    Json::Object(out)
}

/// A reference to a contact, account or deal: `{"contact": 3}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectIn {
    /// A contact.
    Contact(u32),
    /// An account.
    Account(u32),
    /// A deal.
    Deal(u32),
}

impl From<SubjectIn> for Subject {
    fn from(subject: SubjectIn) -> Subject {
        match subject {
            SubjectIn::Contact(id) => Subject::Contact(ContactId::new(id)),
            SubjectIn::Account(id) => Subject::Account(AccountId::new(id)),
            SubjectIn::Deal(id) => Subject::Deal(DealId::new(id)),
        }
    }
}

fn subject_json(subject: Subject) -> Json {
    match subject {
        Subject::Contact(id) => json!({ "contact": id.get() }),
        Subject::Account(id) => json!({ "account": id.get() }),
        Subject::Deal(id) => json!({ "deal": id.get() }),
    }
}

/// One product line in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItemIn {
    product: u32,
    quantity: u32,
    unit_price: MoneyIn,
}

fn lines_in(kind: EntityKind, lines: Vec<LineItemIn>) -> Result<Vec<LineItem>> {
    lines
        .into_iter()
        .map(|line| {
            Ok(LineItem {
                product: ProductId::new(line.product),
                quantity: line.quantity,
                unit_price: money_in(kind, "line_items.unit_price", line.unit_price)?,
            })
        })
        .collect()
}

fn lines_json(lines: &[LineItem]) -> Json {
    Json::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "product": l.product.get(),
                    "quantity": l.quantity,
                    "unit_price": money_json(l.unit_price),
                })
            })
            .collect(),
    )
}

fn enum_in<T: Copy>(
    kind: EntityKind,
    field: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
    given: &str,
) -> Result<T> {
    all.iter()
        .copied()
        .find(|v| name(*v) == given)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            invalid(kind, field, format!("expected one of {}", names.join(", ")))
        })
}

/// A contact in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    name: String,
    email: Option<String>,
    phone: Option<String>,
    region: Option<String>,
    gender: Option<String>,
    birth_year: Option<i32>,
    source: Option<String>,
    owner: Option<u32>,
    account: Option<u32>,
    stage: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    unsubscribed: bool,
    lifetime_value: Option<MoneyIn>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    // Engine-maintained fields, ignored when a client echoes a response back.
    #[serde(default, rename = "stats")]
    _stats: Option<IgnoredAny>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl ContactIn {
    /// A contact from the columns of an import row.
    pub fn from_columns(name: String, email: Option<String>) -> ContactIn {
        ContactIn {
            name,
            email,
            phone: None,
            region: None,
            gender: None,
            birth_year: None,
            source: None,
            owner: None,
            account: None,
            stage: None,
            roles: Vec::new(),
            tags: Vec::new(),
            unsubscribed: false,
            lifetime_value: None,
            custom: Map::new(),
            created_at: None,
            _stats: None,
            _id: None,
            _updated_at: None,
            _deleted_at: None,
        }
    }

    /// Sets the remaining import columns.
    pub fn with_columns(
        mut self,
        phone: Option<String>,
        region: Option<String>,
        source: Option<String>,
        tags: Vec<String>,
        stage: Option<String>,
        lifetime_value: Option<String>,
    ) -> ContactIn {
        self.phone = phone;
        self.region = region;
        self.source = source;
        self.tags = tags;
        self.stage = stage;
        self.lifetime_value = lifetime_value.map(MoneyIn::Text);
        self
    }
}

impl Resource for Contact {
    const PATH: &'static str = "contacts";
    type Input = ContactIn;

    fn from_input(input: ContactIn, schema: &CustomSchema) -> Result<Contact> {
        const K: EntityKind = EntityKind::Contact;
        let mut roles = BTreeSet::new();
        for role in &input.roles {
            roles.insert(enum_in(
                K,
                "roles",
                &ContactRole::ALL,
                ContactRole::as_str,
                role,
            )?);
        }
        Ok(Contact {
            name: input.name,
            email: input.email,
            phone: input.phone,
            region: input.region,
            gender: input.gender,
            birth_year: input.birth_year,
            source: input.source,
            owner: input.owner.map(OwnerId::new),
            account: input.account.map(AccountId::new),
            stage: stage_in(input.stage),
            roles,
            tags: tags_in(input.tags),
            unsubscribed: input.unsubscribed,
            lifetime_value: money_opt(K, "lifetime_value", input.lifetime_value)?,
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Contact::default()
        })
    }

    fn to_json(id: ContactId, c: &Contact) -> Json {
        json!({
            "id": id.get(),
            "name": c.name,
            "email": c.email,
            "phone": c.phone,
            "region": c.region,
            "gender": c.gender,
            "birth_year": c.birth_year,
            "source": c.source,
            "owner": c.owner.map(OwnerId::get),
            "account": c.account.map(AccountId::get),
            "stage": c.stage.as_str(),
            "roles": c.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "tags": c.tags,
            "unsubscribed": c.unsubscribed,
            "lifetime_value": money_json(c.lifetime_value),
            "stats": {
                "order_count": c.stats.order_count,
                "total_spent": money_json(c.stats.total_spent),
                "last_order": time_json(c.stats.last_order),
                "last_activity": time_json(c.stats.last_activity),
                "activity_count": c.stats.activity_count,
            },
            "custom": custom_json(&c.custom),
            "created_at": time_json(c.created_at),
            "updated_at": time_json(Some(c.updated_at)),
            "deleted_at": time_json(c.deleted_at),
        })
    }

    fn keep_on_replace(&mut self, stored: &Contact) {
        if self.stage.is_unset() {
            self.stage = stored.stage.clone();
        }
    }
}

/// An account in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    name: String,
    industry: Option<String>,
    region: Option<String>,
    size: Option<u32>,
    tier: Option<String>,
    owner: Option<u32>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Account {
    const PATH: &'static str = "accounts";
    type Input = AccountIn;

    fn from_input(input: AccountIn, schema: &CustomSchema) -> Result<Account> {
        const K: EntityKind = EntityKind::Account;
        Ok(Account {
            name: input.name,
            industry: input.industry,
            region: input.region,
            size: input.size,
            tier: input.tier,
            owner: input.owner.map(OwnerId::new),
            tags: tags_in(input.tags),
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Account::default()
        })
    }

    fn to_json(id: AccountId, a: &Account) -> Json {
        json!({
            "id": id.get(),
            "name": a.name,
            "industry": a.industry,
            "region": a.region,
            "size": a.size,
            "tier": a.tier,
            "owner": a.owner.map(OwnerId::get),
            "tags": a.tags,
            "custom": custom_json(&a.custom),
            "created_at": time_json(a.created_at),
            "updated_at": time_json(Some(a.updated_at)),
            "deleted_at": time_json(a.deleted_at),
        })
    }
}

/// A deal in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealIn {
    name: String,
    #[serde(default)]
    pipeline: String,
    stage: Option<String>,
    account: Option<u32>,
    contact: Option<u32>,
    #[serde(default)]
    participants: Vec<u32>,
    owner: Option<u32>,
    amount: Option<MoneyIn>,
    #[serde(default)]
    currency: String,
    close_date: Option<TimeIn>,
    probability_override: Option<u8>,
    lost_reason: Option<String>,
    #[serde(default)]
    line_items: Vec<LineItemIn>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Deal {
    const PATH: &'static str = "deals";
    type Input = DealIn;

    fn from_input(input: DealIn, schema: &CustomSchema) -> Result<Deal> {
        const K: EntityKind = EntityKind::Deal;
        Ok(Deal {
            name: input.name,
            pipeline: input.pipeline,
            stage: stage_in(input.stage),
            account: input.account.map(AccountId::new),
            contact: input.contact.map(ContactId::new),
            participants: input.participants.into_iter().map(ContactId::new).collect(),
            owner: input.owner.map(OwnerId::new),
            amount: money_opt(K, "amount", input.amount)?,
            currency: input.currency,
            close_date: time_opt(K, "close_date", input.close_date)?,
            probability_override: input.probability_override,
            lost_reason: input.lost_reason,
            line_items: lines_in(K, input.line_items)?,
            tags: tags_in(input.tags),
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Deal::default()
        })
    }

    fn to_json(id: DealId, d: &Deal) -> Json {
        json!({
            "id": id.get(),
            "name": d.name,
            "pipeline": d.pipeline_name(),
            "stage": d.stage.as_str(),
            "account": d.account.map(AccountId::get),
            "contact": d.contact.map(ContactId::get),
            "participants": d.participants.iter().map(|c| c.get()).collect::<Vec<_>>(),
            "owner": d.owner.map(OwnerId::get),
            "amount": money_json(d.amount),
            "currency": d.currency,
            "close_date": time_json(d.close_date),
            "probability_override": d.probability_override,
            "lost_reason": d.lost_reason,
            "line_items": lines_json(&d.line_items),
            "tags": d.tags,
            "custom": custom_json(&d.custom),
            "created_at": time_json(d.created_at),
            "updated_at": time_json(Some(d.updated_at)),
            "deleted_at": time_json(d.deleted_at),
        })
    }

    fn keep_on_replace(&mut self, stored: &Deal) {
        if self.stage.is_unset() {
            self.stage = stored.stage.clone();
        }
    }
}

const ACTIVITY_KINDS: [ActivityKind; 7] = [
    ActivityKind::Call,
    ActivityKind::Email,
    ActivityKind::Meeting,
    ActivityKind::Visit,
    ActivityKind::Note,
    ActivityKind::CampaignResponse,
    ActivityKind::WebVisit,
];

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

/// An activity in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityIn {
    kind: String,
    direction: Option<String>,
    subject: SubjectIn,
    owner: Option<u32>,
    at: Option<TimeIn>,
    outcome: Option<String>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Activity {
    const PATH: &'static str = "activities";
    type Input = ActivityIn;

    fn from_input(input: ActivityIn, schema: &CustomSchema) -> Result<Activity> {
        const K: EntityKind = EntityKind::Activity;
        let kind = enum_in(
            K,
            "kind",
            &ACTIVITY_KINDS,
            ActivityKind::as_str,
            &input.kind,
        )?;
        let direction = match input.direction.as_deref() {
            None => Direction::default(),
            Some(given) => enum_in(
                K,
                "direction",
                &[Direction::Inbound, Direction::Outbound],
                direction_name,
                given,
            )?,
        };
        let at = time_opt(K, "at", input.at)?.ok_or_else(|| invalid(K, "at", "required"))?;
        let mut activity = Activity::new(kind, direction, input.subject.into(), at);
        activity.owner = input.owner.map(OwnerId::new);
        activity.outcome = input.outcome;
        activity.custom = custom_in(K, schema, input.custom)?;
        activity.created_at = time_opt(K, "created_at", input.created_at)?;
        Ok(activity)
    }

    fn to_json(id: ActivityId, a: &Activity) -> Json {
        json!({
            "id": id.get(),
            "kind": a.kind.as_str(),
            "direction": direction_name(a.direction),
            "subject": subject_json(a.subject),
            "owner": a.owner.map(OwnerId::get),
            "at": time_json(Some(a.at)),
            "outcome": a.outcome,
            "custom": custom_json(&a.custom),
            "created_at": time_json(a.created_at),
            "updated_at": time_json(Some(a.updated_at)),
            "deleted_at": time_json(a.deleted_at),
        })
    }
}

/// An order in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    contact: Option<u32>,
    account: Option<u32>,
    at: Option<TimeIn>,
    status: Option<String>,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    line_items: Vec<LineItemIn>,
    total: Option<MoneyIn>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Order {
    const PATH: &'static str = "orders";
    type Input = OrderIn;

    fn from_input(input: OrderIn, schema: &CustomSchema) -> Result<Order> {
        const K: EntityKind = EntityKind::Order;
        const STATUSES: [OrderStatus; 4] = [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Refunded,
            OrderStatus::Cancelled,
        ];
        let status = match input.status.as_deref() {
            None => OrderStatus::default(),
            Some(given) => enum_in(K, "status", &STATUSES, OrderStatus::as_str, given)?,
        };
        let line_items = lines_in(K, input.line_items)?;
        let mut total = money_opt(K, "total", input.total)?;
        if total == Money::ZERO {
            // The engine asks for a total equal to the lines' sum; zero means "fill it in".
            total = Money(
                line_items
                    .iter()
                    .filter_map(LineItem::amount)
                    .fold(0i64, |sum, m| sum.saturating_add(m.0)),
            );
        }
        Ok(Order {
            contact: input.contact.map(ContactId::new),
            account: input.account.map(AccountId::new),
            at: time_opt(K, "at", input.at)?.ok_or_else(|| invalid(K, "at", "required"))?,
            status,
            currency: input.currency,
            line_items,
            total,
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Order::default()
        })
    }

    fn to_json(id: OrderId, o: &Order) -> Json {
        json!({
            "id": id.get(),
            "contact": o.contact.map(ContactId::get),
            "account": o.account.map(AccountId::get),
            "at": time_json(Some(o.at)),
            "status": o.status.as_str(),
            "currency": o.currency,
            "line_items": lines_json(&o.line_items),
            "total": money_json(o.total),
            "custom": custom_json(&o.custom),
            "created_at": time_json(o.created_at),
            "updated_at": time_json(Some(o.updated_at)),
            "deleted_at": time_json(o.deleted_at),
        })
    }
}

/// A product in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    sku: String,
    name: String,
    category: Option<String>,
    list_price: Option<MoneyIn>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Product {
    const PATH: &'static str = "products";
    type Input = ProductIn;

    fn from_input(input: ProductIn, schema: &CustomSchema) -> Result<Product> {
        const K: EntityKind = EntityKind::Product;
        Ok(Product {
            sku: input.sku,
            name: input.name,
            category: input.category,
            list_price: money_opt(K, "list_price", input.list_price)?,
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Product::default()
        })
    }

    fn to_json(id: ProductId, p: &Product) -> Json {
        json!({
            "id": id.get(),
            "sku": p.sku,
            "name": p.name,
            "category": p.category,
            "list_price": money_json(p.list_price),
            "custom": custom_json(&p.custom),
            "created_at": time_json(p.created_at),
            "updated_at": time_json(Some(p.updated_at)),
            "deleted_at": time_json(p.deleted_at),
        })
    }
}

/// An owner in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerIn {
    name: String,
    email: Option<String>,
    team: Option<String>,
    region: Option<String>,
    #[serde(default)]
    capacity: u32,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Owner {
    const PATH: &'static str = "owners";
    type Input = OwnerIn;

    fn from_input(input: OwnerIn, schema: &CustomSchema) -> Result<Owner> {
        const K: EntityKind = EntityKind::Owner;
        Ok(Owner {
            name: input.name,
            email: input.email,
            team: input.team,
            region: input.region,
            capacity: input.capacity,
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Owner::default()
        })
    }

    fn to_json(id: OwnerId, o: &Owner) -> Json {
        json!({
            "id": id.get(),
            "name": o.name,
            "email": o.email,
            "team": o.team,
            "region": o.region,
            "capacity": o.capacity,
            "custom": custom_json(&o.custom),
            "created_at": time_json(o.created_at),
            "updated_at": time_json(Some(o.updated_at)),
            "deleted_at": time_json(o.deleted_at),
        })
    }
}

/// A task in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskIn {
    title: String,
    assignee: Option<u32>,
    due: Option<TimeIn>,
    status: Option<String>,
    related: Option<SubjectIn>,
    #[serde(default)]
    custom: Map<String, Json>,
    created_at: Option<TimeIn>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "deleted_at")]
    _deleted_at: Option<IgnoredAny>,
}

impl Resource for Task {
    const PATH: &'static str = "tasks";
    type Input = TaskIn;

    fn from_input(input: TaskIn, schema: &CustomSchema) -> Result<Task> {
        const K: EntityKind = EntityKind::Task;
        const STATUSES: [TaskStatus; 3] =
            [TaskStatus::Open, TaskStatus::Done, TaskStatus::Cancelled];
        let status = match input.status.as_deref() {
            None => TaskStatus::default(),
            Some(given) => enum_in(K, "status", &STATUSES, TaskStatus::as_str, given)?,
        };
        Ok(Task {
            title: input.title,
            assignee: input.assignee.map(OwnerId::new),
            due: time_opt(K, "due", input.due)?,
            status,
            related: input.related.map(Subject::from),
            custom: custom_in(K, schema, input.custom)?,
            created_at: time_opt(K, "created_at", input.created_at)?,
            ..Task::default()
        })
    }

    fn to_json(id: TaskId, t: &Task) -> Json {
        json!({
            "id": id.get(),
            "title": t.title,
            "assignee": t.assignee.map(OwnerId::get),
            "due": time_json(t.due),
            "status": t.status.as_str(),
            "related": t.related.map_or(Json::Null, subject_json),
            "custom": custom_json(&t.custom),
            "created_at": time_json(t.created_at),
            "updated_at": time_json(Some(t.updated_at)),
            "deleted_at": time_json(t.deleted_at),
        })
    }
}

/// One entry of a stage history.
pub fn stage_change_json(change: &StageChange) -> Json {
    json!({
        "from": change.from.as_ref().map(Stage::as_str),
        "to": change.to.as_str(),
        "at": time_json(Some(change.at)),
        "actor": change.actor,
        "reason": change.reason,
        "kind": format!("{:?}", change.kind).to_lowercase(),
    })
}
