//! The server's JSON shapes for the eight record kinds: what a client sends on create
//! and replace, what it gets back, and the conversions to and from crmdb's types.
//!
//! The engine types stay free of HTTP concerns; everything JSON lives here and in
//! `fields.rs`, which converts single values (money as an exact decimal string, times,
//! custom fields checked against the kind's schema). Each kind is one field table, so
//! that the fields every kind has are read and written by the same code.

use crmdb::{
    Account, Activity, ActivityKind, Contact, ContactId, CustomSchema, Deal, Direction, EntityKind,
    LineItem, Money, Order, Owner, Product, Record, RecordId, Result, Stage, StageChange, Subject,
    Task, Timestamp,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Map, Value as Json, json};

use super::fields::{
    About, Amount, Choice, Codec, Id, LineItemIn, Lines, MoneyIn, Plain, StageName, Stats,
    SubjectIn, Tags, Time, TimeIn, custom_in, custom_json, time_json,
};

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
    /// A record with every field empty: what the kind's JSON shape is read from.
    fn blank() -> Self;
    /// On replace, keeps what the body left unset but only the engine may change
    /// (a contact's or deal's stage, which moves through its own endpoint).
    fn keep_on_replace(&mut self, _stored: &Self) {}
}

/// Writes a kind's request struct and its [`Resource`] impl from one field table.
///
/// A table line reads `name: RequestType as Codec => shown`: attributes pass through to
/// the request struct, the codec (else [`Plain`]) converts both ways, and `=> path`
/// shows `path(&record)` instead. Fields are converted in table order, so the first bad
/// one is the one refused. Every kind gets the same tail: `custom`, `created_at`, then
/// the `engine { … }` fields (shown, ignored on input), then the echoed `id`,
/// `updated_at` and `deleted_at`. `base` builds what the table leaves out (default:
/// `Default::default()`); `then` adjusts the finished record.
macro_rules! resource {
    (@codec) => { Plain };
    (@codec $codec:ty) => { $codec };
    (@show $record:ident, $value:expr,) => { $value };
    (@show $record:ident, $value:expr, $shown:path) => { json!($shown($record)) };
    (@base) => { Default::default() };
    (@base $base:expr) => { $base };
    (
        $(#[$meta:meta])*
        $kind:ident as $input:ident at $path:literal {
            $($(#[$field_meta:meta])* $field:ident: $wire:ty $(as $codec:ty)? $(=> $shown:path)?),*
            $(,)?
        }
        $(engine { $($engine:ident: $engine_wire:ty as $engine_codec:ty),* $(,)? })?
        $(base $base:expr;)?
        $(then $then:path;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $input {
            $($(#[$field_meta])* $field: $wire,)*
            #[serde(default)]
            custom: Map<String, Json>,
            created_at: Option<TimeIn>,
            // Engine-maintained fields, ignored when a client echoes a response back.
            $($(#[serde(default)] $engine: $engine_wire,)*)?
            #[serde(default, rename = "id")]
            _id: Option<IgnoredAny>,
            #[serde(default, rename = "updated_at")]
            _updated_at: Option<IgnoredAny>,
            #[serde(default, rename = "deleted_at")]
            _deleted_at: Option<IgnoredAny>,
        }

        impl Resource for $kind {
            const PATH: &'static str = $path;
            type Input = $input;

            fn blank() -> $kind {
                resource!(@base $($base)?)
            }

            fn from_input(input: $input, schema: &CustomSchema) -> Result<$kind> {
                const K: EntityKind = <$kind as Record>::KIND;
                let record = $kind {
                    $($field: <resource!(@codec $($codec)?) as Codec<$wire, _>>::decode(
                        K,
                        stringify!($field),
                        input.$field,
                    )?,)*
                    custom: custom_in(K, schema, input.custom)?,
                    created_at: <Time as Codec<Option<TimeIn>, _>>::decode(
                        K,
                        "created_at",
                        input.created_at,
                    )?,
                    $($($engine: <$engine_codec as Codec<$engine_wire, _>>::decode(
                        K,
                        stringify!($engine),
                        input.$engine,
                    )?,)*)?
                    ..resource!(@base $($base)?)
                };
                $(let record = $then(record);)?
                Ok(record)
            }

            fn to_json(id: <$kind as Record>::Id, record: &$kind) -> Json {
                let mut out = Map::new();
                out.insert("id".to_owned(), json!(id.row()));
                $(out.insert(
                    stringify!($field).to_owned(),
                    resource!(
                        @show record,
                        <resource!(@codec $($codec)?) as Codec<$wire, _>>::encode(&record.$field),
                        $($shown)?
                    ),
                );)*
                $($(out.insert(
                    stringify!($engine).to_owned(),
                    <$engine_codec as Codec<$engine_wire, _>>::encode(&record.$engine),
                );)*)?
                out.insert("custom".to_owned(), custom_json(&record.custom));
                out.insert("created_at".to_owned(), time_json(record.created_at));
                out.insert("updated_at".to_owned(), time_json(Some(record.updated_at)));
                out.insert("deleted_at".to_owned(), time_json(record.deleted_at));
                Json::Object(out)
            }

            fn keep_on_replace(&mut self, stored: &$kind) {
                $(<resource!(@codec $($codec)?) as Codec<$wire, _>>::keep(
                    &mut self.$field,
                    &stored.$field,
                );)*
            }
        }
    };
}

resource! {
    /// A contact in a request.
    #[derive(Default)]
    Contact as ContactIn at "contacts" {
        name: String,
        email: Option<String>,
        phone: Option<String>,
        region: Option<String>,
        gender: Option<String>,
        birth_year: Option<i32>,
        source: Option<String>,
        owner: Option<u32> as Id,
        account: Option<u32> as Id,
        stage: Option<String> as StageName,
        #[serde(default)] roles: Vec<String> as Choice,
        #[serde(default)] tags: Vec<String> as Tags,
        #[serde(default)] unsubscribed: bool,
        lifetime_value: Option<MoneyIn> as Amount,
    }
    engine { stats: Option<IgnoredAny> as Stats }
}

resource! {
    /// An account in a request.
    Account as AccountIn at "accounts" {
        name: String,
        industry: Option<String>,
        region: Option<String>,
        size: Option<u32>,
        tier: Option<String>,
        owner: Option<u32> as Id,
        #[serde(default)] tags: Vec<String> as Tags,
    }
}

resource! {
    /// A deal in a request.
    Deal as DealIn at "deals" {
        name: String,
        #[serde(default)] pipeline: String => Deal::pipeline_name,
        stage: Option<String> as StageName,
        account: Option<u32> as Id,
        contact: Option<u32> as Id,
        #[serde(default)] participants: Vec<u32> as Id,
        owner: Option<u32> as Id,
        amount: Option<MoneyIn> as Amount,
        #[serde(default)] currency: String,
        close_date: Option<TimeIn> as Time,
        probability_override: Option<u8>,
        lost_reason: Option<String>,
        #[serde(default)] line_items: Vec<LineItemIn> as Lines,
        #[serde(default)] tags: Vec<String> as Tags,
    }
}

resource! {
    /// An activity in a request.
    Activity as ActivityIn at "activities" {
        kind: String as Choice,
        direction: Option<String> as Choice,
        subject: SubjectIn as About,
        owner: Option<u32> as Id,
        at: Option<TimeIn> as Time,
        outcome: Option<String>,
    }
    base blank_activity();
}

/// What an activity is built on: the table overwrites every field it names and the
/// engine fills in the rest. `Activity` has no `Default`, a real one needs a subject.
fn blank_activity() -> Activity {
    let nobody = Subject::Contact(ContactId::new(0));
    Activity::new(
        ActivityKind::default(),
        Direction::default(),
        nobody,
        Timestamp(0),
    )
}

resource! {
    /// An order in a request.
    Order as OrderIn at "orders" {
        contact: Option<u32> as Id,
        account: Option<u32> as Id,
        at: Option<TimeIn> as Time,
        status: Option<String> as Choice,
        #[serde(default)] currency: String,
        #[serde(default)] line_items: Vec<LineItemIn> as Lines,
        total: Option<MoneyIn> as Amount,
    }
    then fill_in_total;
}

/// The engine asks for a total equal to the lines' sum; zero means "fill it in".
fn fill_in_total(mut order: Order) -> Order {
    if order.total == Money::ZERO {
        order.total = Money(
            order
                .line_items
                .iter()
                .filter_map(LineItem::amount)
                .fold(0i64, |sum, m| sum.saturating_add(m.0)),
        );
    }
    order
}

resource! {
    /// A product in a request.
    Product as ProductIn at "products" {
        sku: String,
        name: String,
        category: Option<String>,
        list_price: Option<MoneyIn> as Amount,
    }
}

resource! {
    /// An owner in a request.
    Owner as OwnerIn at "owners" {
        name: String,
        email: Option<String>,
        team: Option<String>,
        region: Option<String>,
        #[serde(default)] capacity: u32,
    }
}

resource! {
    /// A task in a request.
    Task as TaskIn at "tasks" {
        title: String,
        assignee: Option<u32> as Id,
        due: Option<TimeIn> as Time,
        status: Option<String> as Choice,
        related: Option<SubjectIn> as About,
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
