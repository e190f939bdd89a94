//! The record types. Fields marked *engine-maintained* are ignored on write and filled in
//! by the engine; everything else is the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{
    AccountId, ActivityId, ContactId, DealId, EntityKind, Money, OrderId, OwnerId, ProductId,
    RecordId, TaskId, Timestamp, Value,
};
use crate::index::Terms;
use crate::lifecycle::Stage;

pub(crate) mod sealed {
    use super::*;

    /// The engine-maintained fields every record has: creation time (kept unless the
    /// update sets one), last write time, recycle-bin time.
    pub(crate) fn keep_common_fields<R: RecordInternal>(new: &mut R, stored: &R) {
        if new.created_at().is_none()
            && let Some(at) = stored.created_at()
        {
            new.set_created_at(at);
        }
        new.set_updated_at(stored.updated_at());
        new.set_deleted_at(stored.deleted_at());
    }

    /// What the engine needs from every record type; not nameable outside the crate.
    pub trait RecordInternal {
        fn custom(&self) -> &BTreeMap<String, Value>;
        /// Index terms of the caller's fields (not `live`/`deleted`, not custom fields).
        fn terms(&self, terms: &mut Terms);
        /// Records this one points at; each must exist and be live on write.
        fn references(&self) -> Vec<(EntityKind, u32)>;
        fn created_at(&self) -> Option<Timestamp>;
        fn set_created_at(&mut self, at: Timestamp);
        fn set_updated_at(&mut self, at: Timestamp);
        fn updated_at(&self) -> Timestamp;
        fn deleted_at(&self) -> Option<Timestamp>;
        fn set_deleted_at(&mut self, at: Option<Timestamp>);
        /// Copies engine-maintained fields from the stored version onto a caller's update.
        fn keep_engine_fields(&mut self, stored: &Self)
        where
            Self: Sized,
        {
            keep_common_fields(self, stored);
        }
        /// Checks invariants that need no other record (lengths, totals).
        fn check(&self) -> Result<(), FieldProblem>;
        /// The tag set, for records that carry tags.
        fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
            None
        }
        /// Natural keys that must be unique: `(name, normalised value)`.
        fn unique_keys(&self) -> Vec<(&'static str, String)> {
            Vec::new()
        }
    }
}

/// A record type stored by crmdb: [`Contact`], [`Account`], [`Deal`], [`Activity`],
/// [`Order`], [`Product`], [`Owner`] or [`Task`].
pub trait Record:
    sealed::RecordInternal + Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
    /// The typed id of this record type.
    type Id: RecordId<Record = Self>;
    /// The entity kind.
    const KIND: EntityKind;
}

/// Longest accepted free-text built-in field (names, notes), in bytes.
pub(crate) const MAX_FIELD_BYTES: usize = 4096;
/// Most tags on one record.
pub(crate) const MAX_TAGS: usize = 256;
/// Most line items on one order or deal.
pub(crate) const MAX_LINE_ITEMS: usize = 1024;

/// A field that failed a record check, and why.
pub(crate) type FieldProblem = (&'static str, String);

fn check_text(name: &'static str, value: &str) -> Result<(), FieldProblem> {
    if value.len() > MAX_FIELD_BYTES {
        return Err((name, format!("longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

fn check_tags(tags: &BTreeSet<String>) -> Result<(), FieldProblem> {
    if tags.len() > MAX_TAGS {
        return Err(("tags", format!("more than {MAX_TAGS} tags")));
    }
    for tag in tags {
        crate::index::check_tag(tag).map_err(|reason| ("tags", reason))?;
    }
    Ok(())
}

/// The form natural keys are compared in: trimmed, lowercase.
pub(crate) fn normalise_key(value: &str) -> String {
    value.trim().to_lowercase()
}

fn day(t: Timestamp) -> i64 {
    t.day()
}

/// The roles one person can hold towards the brand (seed 000); several at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ContactRole {
    /// Follows the brand.
    Fan,
    /// Has bought.
    Consumer,
    /// Holds a membership.
    Member,
    /// Uses the product.
    User,
    /// Recommends the brand.
    Advocate,
    /// Decides a B2B purchase.
    DecisionMaker,
    /// Influences a B2B purchase.
    Influencer,
}

impl ContactRole {
    /// Every role.
    pub const ALL: [ContactRole; 7] = [
        ContactRole::Fan,
        ContactRole::Consumer,
        ContactRole::Member,
        ContactRole::User,
        ContactRole::Advocate,
        ContactRole::DecisionMaker,
        ContactRole::Influencer,
    ];

    /// The lowercase name used in queries (`role:advocate`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContactRole::Fan => "fan",
            ContactRole::Consumer => "consumer",
            ContactRole::Member => "member",
            ContactRole::User => "user",
            ContactRole::Advocate => "advocate",
            ContactRole::DecisionMaker => "decision_maker",
            ContactRole::Influencer => "influencer",
        }
    }
}

/// Figures the engine derives from a contact's orders and activities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactStats {
    /// Paid orders.
    pub order_count: u32,
    /// Sum of paid order totals.
    pub total_spent: Money,
    /// Time of the latest paid order.
    pub last_order: Option<Timestamp>,
    /// Time of the latest activity about the contact.
    pub last_activity: Option<Timestamp>,
    /// Activities about the contact.
    pub activity_count: u32,
}

/// A person the brand can reach, customer or not yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Display name.
    pub name: String,
    /// Unique per database, compared case-insensitively.
    pub email: Option<String>,
    /// Phone number as given.
    pub phone: Option<String>,
    /// Region (city or province); indexed.
    pub region: Option<String>,
    /// Gender as the tenant records it; indexed.
    pub gender: Option<String>,
    /// Birth year; range-indexed.
    pub birth_year: Option<i32>,
    /// Acquisition channel; indexed.
    pub source: Option<String>,
    /// Responsible owner; must exist and be live.
    pub owner: Option<OwnerId>,
    /// Company (B2B); must exist and be live.
    pub account: Option<AccountId>,
    /// Lifecycle stage. Left empty on insert, the machine's first stage is used.
    /// Changed only through the lifecycle machine.
    pub stage: Stage,
    /// Roles held; indexed as `role:<name>`.
    pub roles: BTreeSet<ContactRole>,
    /// Tags; indexed as `tag:<name>`.
    pub tags: BTreeSet<String>,
    /// Opted out of marketing.
    pub unsubscribed: bool,
    /// Lifetime value as the host computes it; range-indexed.
    pub lifetime_value: Money,
    /// *Engine-maintained* figures from orders and activities.
    pub stats: ContactStats,
    /// *Engine-maintained*: the assignment rule that gave the contact its owner.
    pub assigned_by: Option<String>,
    /// Custom field values, checked against the contact schema.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; the transaction clock fills it in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*: time of the last write.
    pub updated_at: Timestamp,
    /// *Engine-maintained*: set while the record is in the recycle bin.
    pub deleted_at: Option<Timestamp>,
}

/// A company (B2B).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Company name.
    pub name: String,
    /// Industry; indexed.
    pub industry: Option<String>,
    /// Region; indexed.
    pub region: Option<String>,
    /// Number of employees; range-indexed.
    pub size: Option<u32>,
    /// Account tier (A/B/C, key account); indexed.
    pub tier: Option<String>,
    /// Responsible owner.
    pub owner: Option<OwnerId>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

/// A product line on a deal or an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product; must exist and be live.
    pub product: ProductId,
    /// Units.
    pub quantity: u32,
    /// Price per unit.
    pub unit_price: Money,
}

impl LineItem {
    /// `quantity × unit_price`, `None` on overflow.
    pub fn amount(&self) -> Option<Money> {
        self.unit_price
            .0
            .checked_mul(i64::from(self.quantity))
            .map(Money)
    }
}

fn lines_total(lines: &[LineItem]) -> Result<Money, FieldProblem> {
    if lines.len() > MAX_LINE_ITEMS {
        return Err((
            "line_items",
            format!("more than {MAX_LINE_ITEMS} line items"),
        ));
    }
    let mut total = 0i64;
    for line in lines {
        let amount = line
            .amount()
            .ok_or(("line_items", "line amount overflows".to_owned()))?;
        total = total
            .checked_add(amount.0)
            .ok_or(("line_items", "total overflows".to_owned()))?;
    }
    Ok(Money(total))
}

/// A sales opportunity moving through a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// Deal name.
    pub name: String,
    /// The pipeline (lifecycle machine) the deal runs in; empty means `default`.
    pub pipeline: String,
    /// Pipeline stage; empty on insert means the machine's first stage.
    pub stage: Stage,
    /// Company.
    pub account: Option<AccountId>,
    /// Main contact.
    pub contact: Option<ContactId>,
    /// Further contacts involved (B2B buying centre).
    pub participants: Vec<ContactId>,
    /// Responsible owner.
    pub owner: Option<OwnerId>,
    /// Amount in minor units.
    pub amount: Money,
    /// ISO currency code.
    pub currency: String,
    /// Expected (or, once won, actual) close date.
    pub close_date: Option<Timestamp>,
    /// Probability in percent overriding the stage's.
    pub probability_override: Option<u8>,
    /// Why the deal was lost; required to enter a lost stage with that guard.
    pub lost_reason: Option<String>,
    /// Products quoted.
    pub line_items: Vec<LineItem>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

impl Deal {
    /// The pipeline name with the empty default resolved.
    pub fn pipeline_name(&self) -> &str {
        if self.pipeline.is_empty() {
            crate::lifecycle::DEFAULT_PIPELINE
        } else {
            &self.pipeline
        }
    }
}

/// What an activity was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// A contact.
    Contact(ContactId),
    /// An account.
    Account(AccountId),
    /// A deal.
    Deal(DealId),
}

impl Subject {
    fn reference(self) -> (EntityKind, u32) {
        match self {
            Subject::Contact(id) => (EntityKind::Contact, id.get()),
            Subject::Account(id) => (EntityKind::Account, id.get()),
            Subject::Deal(id) => (EntityKind::Deal, id.get()),
        }
    }
}

/// The kind of an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ActivityKind {
    /// Phone call.
    Call,
    /// Email.
    Email,
    /// Meeting.
    Meeting,
    /// On-site visit.
    Visit,
    /// Internal note.
    #[default]
    Note,
    /// Response to a campaign.
    CampaignResponse,
    /// Visit to the website.
    WebVisit,
}

impl ActivityKind {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Email => "email",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Visit => "visit",
            ActivityKind::Note => "note",
            ActivityKind::CampaignResponse => "campaign_response",
            ActivityKind::WebVisit => "web_visit",
        }
    }
}

/// Who started an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Direction {
    /// The customer reached out (moves a Prospect to Responder).
    Inbound,
    /// The brand reached out.
    #[default]
    Outbound,
}

/// An interaction or follow-up record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Call, email, meeting …
    pub kind: ActivityKind,
    /// Inbound or outbound.
    pub direction: Direction,
    /// What it was about; must exist and be live.
    pub subject: Subject,
    /// Who handled it.
    pub owner: Option<OwnerId>,
    /// When it happened.
    pub at: Timestamp,
    /// Outcome as recorded.
    pub outcome: Option<String>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

impl Activity {
    /// An activity about `subject` at `at`, everything else default.
    pub fn new(kind: ActivityKind, direction: Direction, subject: Subject, at: Timestamp) -> Self {
        Activity {
            kind,
            direction,
            subject,
            owner: None,
            at,
            outcome: None,
            custom: BTreeMap::new(),
            created_at: None,
            updated_at: Timestamp(0),
            deleted_at: None,
        }
    }
}

/// The state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum OrderStatus {
    /// Placed, not paid.
    Pending,
    /// Paid: counts towards a contact's figures and lifecycle.
    #[default]
    Paid,
    /// Paid back.
    Refunded,
    /// Cancelled before payment.
    Cancelled,
}

impl OrderStatus {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A purchase, contract or renewal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Buyer (B2C).
    pub contact: Option<ContactId>,
    /// Buyer (B2B).
    pub account: Option<AccountId>,
    /// When it was placed.
    pub at: Timestamp,
    /// Status.
    pub status: OrderStatus,
    /// ISO currency code.
    pub currency: String,
    /// Lines; when present, `total` must equal their sum (or be zero to have it filled in).
    pub line_items: Vec<LineItem>,
    /// Total in minor units.
    pub total: Money,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

/// Something sold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Stock keeping unit, unique per database (case-insensitive).
    pub sku: String,
    /// Name.
    pub name: String,
    /// Category; indexed.
    pub category: Option<String>,
    /// List price.
    pub list_price: Money,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

/// A sales rep or employee.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Name.
    pub name: String,
    /// Email (not unique).
    pub email: Option<String>,
    /// Team; indexed.
    pub team: Option<String>,
    /// Region; indexed.
    pub region: Option<String>,
    /// Most open leads at once for capacity-limited assignment (0 = no limit).
    pub capacity: u32,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

/// The state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TaskStatus {
    /// To do.
    #[default]
    Open,
    /// Done.
    Done,
    /// Dropped.
    Cancelled,
}

impl TaskStatus {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// A sales task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// What to do.
    pub title: String,
    /// Who does it.
    pub assignee: Option<OwnerId>,
    /// Due time.
    pub due: Option<Timestamp>,
    /// Status.
    pub status: TaskStatus,
    /// Related record.
    pub related: Option<Subject>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

/// The common part of [`sealed::RecordInternal`]: every record has these four fields.
macro_rules! record_common {
    () => {
        fn custom(&self) -> &BTreeMap<String, Value> {
            &self.custom
        }
        fn created_at(&self) -> Option<Timestamp> {
            self.created_at
        }
        fn set_created_at(&mut self, at: Timestamp) {
            self.created_at = Some(at);
        }
        fn set_updated_at(&mut self, at: Timestamp) {
            self.updated_at = at;
        }
        fn deleted_at(&self) -> Option<Timestamp> {
            self.deleted_at
        }
        fn set_deleted_at(&mut self, at: Option<Timestamp>) {
            self.deleted_at = at;
        }
        fn updated_at(&self) -> Timestamp {
            self.updated_at
        }
    };
}

macro_rules! record_impl {
    ($rec:ident, $id:ident, $kind:ident) => {
        impl Record for $rec {
            type Id = $id;
            const KIND: EntityKind = EntityKind::$kind;
        }
    };
}

record_impl!(Contact, ContactId, Contact);
record_impl!(Account, AccountId, Account);
record_impl!(Deal, DealId, Deal);
record_impl!(Activity, ActivityId, Activity);
record_impl!(Order, OrderId, Order);
record_impl!(Product, ProductId, Product);
record_impl!(Owner, OwnerId, Owner);
record_impl!(Task, TaskId, Task);

fn opt_ref<I: RecordId>(kind: EntityKind, id: Option<I>, out: &mut Vec<(EntityKind, u32)>) {
    if let Some(id) = id {
        out.push((kind, id.row()));
    }
}

impl sealed::RecordInternal for Contact {
    record_common!();

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    fn unique_keys(&self) -> Vec<(&'static str, String)> {
        self.email
            .iter()
            .map(|e| ("contact.email", normalise_key(e)))
            .collect()
    }

    fn terms(&self, t: &mut Terms) {
        t.cat_opt("region", self.region.as_deref());
        t.cat_opt("gender", self.gender.as_deref());
        t.cat_opt("source", self.source.as_deref());
        t.cat_id("owner", self.owner.map(|o| o.get()));
        t.cat_id("account", self.account.map(|a| a.get()));
        t.cat("stage", self.stage.as_str());
        for role in &self.roles {
            t.cat("role", role.as_str());
        }
        for tag in &self.tags {
            t.cat("tag", tag);
        }
        t.cat(
            "unsubscribed",
            if self.unsubscribed { "true" } else { "false" },
        );
        t.num("lifetime_value", self.lifetime_value.0);
        t.num("order_count", i64::from(self.stats.order_count));
        t.num("total_spent", self.stats.total_spent.0);
        t.num("activity_count", i64::from(self.stats.activity_count));
        t.num_opt("last_order", self.stats.last_order.map(day));
        t.num_opt("last_activity", self.stats.last_activity.map(day));
        t.num_opt("created", self.created_at.map(day));
        t.num_opt("birth_year", self.birth_year.map(i64::from));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        out
    }

    fn keep_engine_fields(&mut self, stored: &Self) {
        self.stats = stored.stats.clone();
        self.assigned_by = stored.assigned_by.clone();
        sealed::keep_common_fields(self, stored);
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        for (name, value) in [
            ("email", &self.email),
            ("phone", &self.phone),
            ("region", &self.region),
            ("gender", &self.gender),
            ("source", &self.source),
        ] {
            if let Some(v) = value {
                check_text(name, v)?;
            }
        }
        if let Some(email) = &self.email
            && !crate::txn::looks_like_email(email)
        {
            return Err((
                "email",
                format!("{} is not an address", crate::error::quote(email)),
            ));
        }
        check_tags(&self.tags)
    }
}

impl sealed::RecordInternal for Account {
    record_common!();

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    fn terms(&self, t: &mut Terms) {
        t.cat_opt("industry", self.industry.as_deref());
        t.cat_opt("region", self.region.as_deref());
        t.cat_opt("tier", self.tier.as_deref());
        t.cat_id("owner", self.owner.map(|o| o.get()));
        for tag in &self.tags {
            t.cat("tag", tag);
        }
        t.num_opt("size", self.size.map(i64::from));
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        check_tags(&self.tags)
    }
}

impl sealed::RecordInternal for Deal {
    record_common!();

    fn tags_mut(&mut self) -> Option<&mut BTreeSet<String>> {
        Some(&mut self.tags)
    }

    fn terms(&self, t: &mut Terms) {
        t.cat("pipeline", self.pipeline_name());
        t.cat("stage", self.stage.as_str());
        t.cat_id("owner", self.owner.map(|o| o.get()));
        t.cat_id("account", self.account.map(|a| a.get()));
        t.cat_id("contact", self.contact.map(|c| c.get()));
        for participant in &self.participants {
            t.cat_id("participant", Some(participant.get()));
        }
        for line in &self.line_items {
            t.cat_id("product", Some(line.product.get()));
        }
        for tag in &self.tags {
            t.cat("tag", tag);
        }
        t.num("amount", self.amount.0);
        t.num_opt("close_date", self.close_date.map(day));
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        opt_ref(EntityKind::Contact, self.contact, &mut out);
        out.extend(
            self.participants
                .iter()
                .map(|c| (EntityKind::Contact, c.get())),
        );
        out.extend(
            self.line_items
                .iter()
                .map(|l| (EntityKind::Product, l.product.get())),
        );
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)?;
        if self.probability_override.is_some_and(|p| p > 100) {
            return Err(("probability_override", "above 100".into()));
        }
        if self.participants.len() > MAX_LINE_ITEMS {
            return Err((
                "participants",
                format!("more than {MAX_LINE_ITEMS} participants"),
            ));
        }
        lines_total(&self.line_items)?;
        check_tags(&self.tags)
    }
}

impl sealed::RecordInternal for Activity {
    record_common!();

    fn terms(&self, t: &mut Terms) {
        t.cat("kind", self.kind.as_str());
        t.cat(
            "direction",
            match self.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
        );
        t.cat_id("owner", self.owner.map(|o| o.get()));
        let (kind, id) = self.subject.reference();
        t.cat_id(kind.as_str(), Some(id));
        t.num("at", self.at.day());
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = vec![self.subject.reference()];
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        if let Some(outcome) = &self.outcome {
            check_text("outcome", outcome)?;
        }
        Ok(())
    }
}

impl sealed::RecordInternal for Order {
    record_common!();

    fn terms(&self, t: &mut Terms) {
        t.cat("status", self.status.as_str());
        t.cat_id("contact", self.contact.map(|c| c.get()));
        t.cat_id("account", self.account.map(|a| a.get()));
        for line in &self.line_items {
            t.cat_id("product", Some(line.product.get()));
        }
        t.num("at", self.at.day());
        t.num("total", self.total.0);
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Contact, self.contact, &mut out);
        opt_ref(EntityKind::Account, self.account, &mut out);
        out.extend(
            self.line_items
                .iter()
                .map(|l| (EntityKind::Product, l.product.get())),
        );
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        let sum = lines_total(&self.line_items)?;
        if !self.line_items.is_empty() && sum != self.total {
            return Err((
                "total",
                format!("{} differs from the line items' sum {sum}", self.total),
            ));
        }
        if self.total.0 < 0 {
            return Err(("total", "negative".into()));
        }
        Ok(())
    }
}

impl sealed::RecordInternal for Product {
    record_common!();

    fn unique_keys(&self) -> Vec<(&'static str, String)> {
        vec![("product.sku", normalise_key(&self.sku))]
    }

    fn terms(&self, t: &mut Terms) {
        t.cat_opt("category", self.category.as_deref());
        t.num("list_price", self.list_price.0);
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        Vec::new()
    }

    fn check(&self) -> Result<(), FieldProblem> {
        if self.sku.trim().is_empty() {
            return Err(("sku", "empty".into()));
        }
        check_text("sku", &self.sku)?;
        check_text("name", &self.name)
    }
}

impl sealed::RecordInternal for Owner {
    record_common!();

    fn terms(&self, t: &mut Terms) {
        t.cat_opt("team", self.team.as_deref());
        t.cat_opt("region", self.region.as_deref());
        t.num("capacity", i64::from(self.capacity));
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        Vec::new()
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("name", &self.name)
    }
}

impl sealed::RecordInternal for Task {
    record_common!();

    fn terms(&self, t: &mut Terms) {
        t.cat("status", self.status.as_str());
        t.cat_id("assignee", self.assignee.map(|o| o.get()));
        if let Some(subject) = self.related {
            let (kind, id) = subject.reference();
            t.cat_id(kind.as_str(), Some(id));
        }
        t.num_opt("due", self.due.map(day));
        t.num_opt("created", self.created_at.map(day));
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = Vec::new();
        opt_ref(EntityKind::Owner, self.assignee, &mut out);
        if let Some(subject) = self.related {
            out.push(subject.reference());
        }
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_text("title", &self.title)
    }
}
