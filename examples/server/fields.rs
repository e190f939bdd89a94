//! The JSON form of single field values, shared by the record kinds and analytics:
//! money, times, custom fields, subjects, product lines and engine enums, and the
//! [`Codec`]s that carry a built-in field from a request into a record and back out.
//!
//! Money is sent back as an exact decimal string (`"1234.50"`) and accepted as a string
//! or a number of major units with at most two decimals. Times are sent back as
//! `YYYY-MM-DDTHH:MM:SSZ` and accepted in that form, as `YYYY-MM-DD`, or as seconds
//! since the Unix epoch.

use std::collections::{BTreeMap, BTreeSet};

use crmdb::{
    AccountId, ActivityKind, ContactId, ContactRole, ContactStats, CustomSchema, DealId, Direction,
    EntityKind, Error, FieldType, LineItem, Money, OrderStatus, ProductId, RecordId, Result, Stage,
    Subject, TaskStatus, Timestamp, Value,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

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
/// Money in a response: an exact decimal string, `"1234.50"`.
pub fn money_json(money: Money) -> Json {
    Json::String(money.to_string())
}

/// A time in a response; `null` when absent.
pub fn time_json(at: Option<Timestamp>) -> Json {
    at.map_or(Json::Null, |t| Json::String(t.to_string()))
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

/// The custom-field object of a response.
pub fn custom_json(values: &BTreeMap<String, Value>) -> Json {
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

/// How one built-in field travels: from its type `W` in a request struct to its type
/// `T` in the record, and back out as JSON. One codec serves several pairs (`Time`
/// fills an optional time, or a required one and then refuses an absent time), so a
/// field table names the codec alone and the record's field type picks the impl.
/// Codecs are empty enums: only their impls are used, never a value.
pub trait Codec<W, T> {
    /// The record's value; `field` is the JSON name, for errors.
    fn decode(kind: EntityKind, field: &str, wire: W) -> Result<T>;
    /// The response's value.
    fn encode(value: &T) -> Json;
    /// On replace, restores a stored value that only the engine may change.
    fn keep(_new: &mut T, _stored: &T) {}
}

/// Taken and shown as is.
pub enum Plain {}

impl<T: Serialize> Codec<T, T> for Plain {
    fn decode(_: EntityKind, _: &str, wire: T) -> Result<T> {
        Ok(wire)
    }
    fn encode(value: &T) -> Json {
        json!(value)
    }
}

/// A reference to another record by row id.
pub enum Id {}

impl<I: RecordId> Codec<Option<u32>, Option<I>> for Id {
    fn decode(_: EntityKind, _: &str, wire: Option<u32>) -> Result<Option<I>> {
        Ok(wire.map(I::from_row))
    }
    fn encode(value: &Option<I>) -> Json {
        json!(value.map(I::row))
    }
}

impl<I: RecordId> Codec<Vec<u32>, Vec<I>> for Id {
    fn decode(_: EntityKind, _: &str, wire: Vec<u32>) -> Result<Vec<I>> {
        Ok(wire.into_iter().map(I::from_row).collect())
    }
    fn encode(value: &Vec<I>) -> Json {
        json!(value.iter().map(|id| id.row()).collect::<Vec<_>>())
    }
}

/// A tag list; repeats collapse.
pub enum Tags {}

impl Codec<Vec<String>, BTreeSet<String>> for Tags {
    fn decode(_: EntityKind, _: &str, wire: Vec<String>) -> Result<BTreeSet<String>> {
        Ok(wire.into_iter().collect())
    }
    fn encode(value: &BTreeSet<String>) -> Json {
        json!(value)
    }
}

/// Money, zero when absent.
pub enum Amount {}

impl Codec<Option<MoneyIn>, Money> for Amount {
    fn decode(kind: EntityKind, field: &str, wire: Option<MoneyIn>) -> Result<Money> {
        money_opt(kind, field, wire)
    }
    fn encode(value: &Money) -> Json {
        money_json(*value)
    }
}

/// A time, optional or required according to the record's field.
pub enum Time {}

impl Codec<Option<TimeIn>, Option<Timestamp>> for Time {
    fn decode(kind: EntityKind, field: &str, wire: Option<TimeIn>) -> Result<Option<Timestamp>> {
        time_opt(kind, field, wire)
    }
    fn encode(value: &Option<Timestamp>) -> Json {
        time_json(*value)
    }
}

impl Codec<Option<TimeIn>, Timestamp> for Time {
    fn decode(kind: EntityKind, field: &str, wire: Option<TimeIn>) -> Result<Timestamp> {
        time_opt(kind, field, wire)?.ok_or_else(|| invalid(kind, field, "required"))
    }
    fn encode(value: &Timestamp) -> Json {
        time_json(Some(*value))
    }
}

/// A lifecycle stage; unset on create means the machine's initial stage.
pub enum StageName {}

impl Codec<Option<String>, Stage> for StageName {
    fn decode(_: EntityKind, _: &str, wire: Option<String>) -> Result<Stage> {
        Ok(wire.map(Stage::new).unwrap_or_default())
    }
    fn encode(value: &Stage) -> Json {
        json!(value.as_str())
    }
    // A stage moves through its own endpoint, so a replace without one keeps it.
    fn keep(new: &mut Stage, stored: &Stage) {
        if new.is_unset() {
            *new = stored.clone();
        }
    }
}

/// The subject of an activity or task: `{"contact": 3}`.
pub enum About {}

impl Codec<SubjectIn, Subject> for About {
    fn decode(_: EntityKind, _: &str, wire: SubjectIn) -> Result<Subject> {
        Ok(wire.into())
    }
    fn encode(value: &Subject) -> Json {
        subject_json(*value)
    }
}

impl Codec<Option<SubjectIn>, Option<Subject>> for About {
    fn decode(_: EntityKind, _: &str, wire: Option<SubjectIn>) -> Result<Option<Subject>> {
        Ok(wire.map(Subject::from))
    }
    fn encode(value: &Option<Subject>) -> Json {
        value.map_or(Json::Null, subject_json)
    }
}

/// Product lines.
pub enum Lines {}

impl Codec<Vec<LineItemIn>, Vec<LineItem>> for Lines {
    fn decode(kind: EntityKind, _: &str, wire: Vec<LineItemIn>) -> Result<Vec<LineItem>> {
        lines_in(kind, wire)
    }
    fn encode(value: &Vec<LineItem>) -> Json {
        Json::Array(
            value
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
}

/// A contact's engine-derived figures: shown, and ignored when a client echoes them.
pub enum Stats {}

impl Codec<Option<IgnoredAny>, ContactStats> for Stats {
    fn decode(_: EntityKind, _: &str, _: Option<IgnoredAny>) -> Result<ContactStats> {
        Ok(ContactStats::default())
    }
    fn encode(s: &ContactStats) -> Json {
        json!({
            "order_count": s.order_count,
            "total_spent": money_json(s.total_spent),
            "last_order": time_json(s.last_order),
            "last_activity": time_json(s.last_activity),
            "activity_count": s.activity_count,
        })
    }
}

/// An engine enum by its lowercase name.
pub trait Named: Copy + 'static {
    /// Every value, in the order a refusal lists them.
    const ALL: &'static [Self];
    /// The JSON name.
    fn name(self) -> &'static str;
}

macro_rules! named {
    ($($ty:ident: $all:expr, $name:path;)*) => {$(
        impl Named for $ty {
            const ALL: &'static [Self] = $all;
            fn name(self) -> &'static str {
                $name(self)
            }
        }
    )*};
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

named! {
    ContactRole: &ContactRole::ALL, ContactRole::as_str;
    ActivityKind: &[
        ActivityKind::Call,
        ActivityKind::Email,
        ActivityKind::Meeting,
        ActivityKind::Visit,
        ActivityKind::Note,
        ActivityKind::CampaignResponse,
        ActivityKind::WebVisit,
    ], ActivityKind::as_str;
    Direction: &[Direction::Inbound, Direction::Outbound], direction_name;
    OrderStatus: &[
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Refunded,
        OrderStatus::Cancelled,
    ], OrderStatus::as_str;
    TaskStatus: &[TaskStatus::Open, TaskStatus::Done, TaskStatus::Cancelled], TaskStatus::as_str;
}

fn choice<T: Named>(kind: EntityKind, field: &str, given: &str) -> Result<T> {
    T::ALL
        .iter()
        .copied()
        .find(|v| v.name() == given)
        .ok_or_else(|| {
            let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
            invalid(kind, field, format!("expected one of {}", names.join(", ")))
        })
}

/// One of an engine enum's names: required, defaulted when absent, or a set.
pub enum Choice {}

impl<T: Named> Codec<String, T> for Choice {
    fn decode(kind: EntityKind, field: &str, wire: String) -> Result<T> {
        choice(kind, field, &wire)
    }
    fn encode(value: &T) -> Json {
        json!(value.name())
    }
}

impl<T: Named + Default> Codec<Option<String>, T> for Choice {
    fn decode(kind: EntityKind, field: &str, wire: Option<String>) -> Result<T> {
        wire.map_or(Ok(T::default()), |given| choice(kind, field, &given))
    }
    fn encode(value: &T) -> Json {
        json!(value.name())
    }
}

impl<T: Named + Ord> Codec<Vec<String>, BTreeSet<T>> for Choice {
    fn decode(kind: EntityKind, field: &str, wire: Vec<String>) -> Result<BTreeSet<T>> {
        wire.iter()
            .map(|given| choice(kind, field, given))
            .collect()
    }
    fn encode(value: &BTreeSet<T>) -> Json {
        json!(value.iter().map(|v| v.name()).collect::<Vec<_>>())
    }
}
