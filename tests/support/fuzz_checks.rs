//! The checks behind the fuzz targets in `fuzz/`, written once and used twice: the fuzz
//! targets include this file, and `tests/fuzz_corpus.rs` replays every corpus file through
//! it in a plain `cargo test`. It therefore depends on nothing but `crmdb` and `std`:
//! operation sequences are decoded from raw bytes by [`ByteReader`], not by `arbitrary`.
//!
//! Every check panics on a wrong answer; a returned error from the engine is an answer
//! like any other and is compared with what the reference model expects.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crmdb::{
    Account, ActivityKind, ChangeKind, Contact, ContactId, Database, Deal, EntityKind, FieldDef,
    FieldType, ManualClock, Money, Order, OrderStatus, Owner, Product, Query, RoaringBitmap,
    SavedSegment, Snapshot, Stage, StageChange, Task, Timestamp, Value, WriteTransaction, raw,
};

/// 2026-01-01T00:00:00Z, where every database of these checks starts its clock.
const EPOCH: i64 = 1_767_225_600;

// ---------------------------------------------------------------------------------------
// A tiny byte reader: the one decoder of fuzz input shared by fuzzing and replay.
// ---------------------------------------------------------------------------------------

/// Reads small choices from fuzz input; an exhausted input reads as zeros.
pub struct ByteReader<'a> {
    data: &'a [u8],
}

impl<'a> ByteReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteReader { data }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// One bit.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

// ---------------------------------------------------------------------------------------
// query_parse: parse, round-trip through the canonical text, evaluate.
// ---------------------------------------------------------------------------------------

/// The query with every source offset zeroed: `Display` promises equality up to offsets.
pub fn without_offsets(query: &Query) -> Query {
    match query {
        Query::All => Query::All,
        Query::And(items) => Query::And(items.iter().map(without_offsets).collect()),
        Query::Or(items) => Query::Or(items.iter().map(without_offsets).collect()),
        Query::Not(inner) => Query::Not(Box::new(without_offsets(inner))),
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

fn contact(name: &str, email: &str, region: &str, tags: &[&str]) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        region: Some(region.into()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

fn build_query_db() -> crmdb::Result<Database> {
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let db = Database::builder().clock(clock.clone()).in_memory()?;
    db.write(|tx| -> crmdb::Result<_> {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new(
                "industry",
                FieldType::SingleSelect(vec!["saas".into(), "retail".into()]),
            ),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new(
                "interests",
                FieldType::MultiSelect(vec!["golf".into(), "wine".into(), "tech".into()]),
            ),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("score", FieldType::Integer),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("budget", FieldType::Money),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("renewal", FieldType::Date),
        )?;
        tx.define_field(EntityKind::Contact, FieldDef::new("vip", FieldType::Bool))?;
        tx.define_field(EntityKind::Contact, FieldDef::new("note", FieldType::Text))?;

        let owner = tx.insert(Owner {
            name: "Wang Fang".into(),
            team: Some("east".into()),
            region: Some("shanghai".into()),
            capacity: 40,
            ..Default::default()
        })?;
        let account = tx.insert(Account {
            name: "Acme".into(),
            industry: Some("saas".into()),
            region: Some("beijing".into()),
            size: Some(120),
            tags: ["key_account".to_owned()].into(),
            owner: Some(owner),
            ..Default::default()
        })?;
        let product = tx.insert(Product {
            sku: "TEA-01".into(),
            name: "Green tea".into(),
            category: Some("tea".into()),
            list_price: Money(12_50),
            ..Default::default()
        })?;

        let mut li = contact("Li Lei", "li@example.com", "shanghai", &["vip", "gold"]);
        li.owner = Some(owner);
        li.account = Some(account);
        li.birth_year = Some(1990);
        li.lifetime_value = Money(150_000);
        li.custom = BTreeMap::from([
            ("industry".to_owned(), Value::Select("saas".into())),
            (
                "interests".to_owned(),
                Value::MultiSelect(["golf".to_owned(), "tech".to_owned()].into()),
            ),
            ("score".to_owned(), Value::Integer(42)),
            ("budget".to_owned(), Value::Money(Money(99_50))),
            (
                "renewal".to_owned(),
                Value::Date(Timestamp(EPOCH + 30 * 86_400)),
            ),
            ("vip".to_owned(), Value::Bool(true)),
            ("note".to_owned(), Value::Text("met at a fair".into())),
        ]);
        let li = tx.insert(li)?;
        let mut han = contact("Han Meimei", "han@example.com", "beijing", &["gold"]);
        han.custom = BTreeMap::from([
            ("industry".to_owned(), Value::Select("retail".into())),
            ("score".to_owned(), Value::Integer(-7)),
            ("vip".to_owned(), Value::Bool(false)),
        ]);
        han.gender = Some("f".into());
        let han = tx.insert(han)?;
        let zhao = tx.insert(contact(
            "Zhao Wei",
            "zhao@example.com",
            "shanghai",
            &["unsubscribed_once"],
        ))?;
        let gone = tx.insert(contact("Gone", "gone@example.com", "x", &["vip"]))?;
        tx.soft_delete(gone)?;

        tx.move_stage(li, "active")?;
        tx.move_stage(zhao, "responder")?;
        tx.insert(Order {
            contact: Some(han),
            at: Timestamp(EPOCH - 86_400),
            status: OrderStatus::Paid,
            currency: "CNY".into(),
            line_items: vec![crmdb::LineItem {
                product,
                quantity: 4,
                unit_price: Money(12_50),
            }],
            ..Default::default()
        })?;
        tx.insert(crmdb::Activity::new(
            ActivityKind::Call,
            crmdb::Direction::Inbound,
            crmdb::Subject::Contact(zhao),
            Timestamp(EPOCH - 3 * 86_400),
        ))?;
        let deal = tx.insert(Deal {
            name: "Acme renewal".into(),
            account: Some(account),
            contact: Some(li),
            amount: Money(2_000_000),
            tags: ["q1".to_owned()].into(),
            ..Default::default()
        })?;
        tx.move_stage(deal, "proposal")?;
        tx.insert(Task {
            title: "Call back".into(),
            assignee: Some(owner),
            related: Some(crmdb::Subject::Contact(li)),
            due: Some(Timestamp(EPOCH + 86_400)),
            ..Default::default()
        })?;
        tx.save_segment(
            "high_value",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("lifetime_value >= 1000")?,
            },
        )?;
        tx.save_segment("picked", SavedSegment::of_ids([li, zhao]))?;
        tx.save_segment(
            "gold_high",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("tag:gold AND segment:high_value")?,
            },
        )?;
        Ok(())
    })?;
    clock.advance_days(10);
    Ok(db)
}

fn query_db() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| build_query_db().expect("the fixed query database builds"))
}

/// Parses `data` as a query; a parsed query must survive its canonical text and must
/// evaluate (to a result or an error, never a panic) against a small fixed database,
/// with `q` and `NOT q` splitting the live records between them.
pub fn check_query_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let canonical = query.to_string();
    match Query::parse(&canonical) {
        Ok(again) => assert_eq!(
            without_offsets(&again),
            without_offsets(&query),
            "canonical text {canonical:?} of {text:?} parses to another query"
        ),
        Err(e) => panic!("canonical text {canonical:?} of {text:?} does not parse: {e}"),
    }
    let outcome = query_db().read(|r| {
        for kind in EntityKind::ALL {
            let Ok(matching) = r.ids(kind, &query) else {
                continue;
            };
            let live = r.live(kind)?;
            assert!(
                matching.is_subset(&live),
                "{text:?} on {kind} matched records that are not live"
            );
            match r.ids(kind, &!query.clone()) {
                Ok(complement) => assert!(
                    (&matching & &complement).is_empty() && (&matching | &complement) == live,
                    "{text:?} and its negation do not split the live {kind} records"
                ),
                // One more level of nesting may pass the limit; nothing else may fail.
                Err(crmdb::Error::Query(crmdb::QueryError {
                    kind: crmdb::QueryErrorKind::TooDeep { .. },
                    ..
                })) => {}
                Err(e) => panic!("NOT ({text:?}) fails on {kind}: {e}"),
            }
        }
        Ok(())
    });
    outcome.expect("reading the fixed query database");
}

// ---------------------------------------------------------------------------------------
// decode: arbitrary bytes through every stored-value decoder.
// ---------------------------------------------------------------------------------------

fn decode_one<R: crmdb::Record + PartialEq>(data: &[u8]) {
    if let Ok(record) = raw::decode_record::<R>(data) {
        let bytes = raw::encode_record(&record);
        let again = raw::decode_record::<R>(&bytes)
            .unwrap_or_else(|e| panic!("a decoded {} does not decode re-encoded: {e}", R::KIND));
        assert_eq!(
            again,
            record,
            "a decoded {} changes when re-encoded",
            R::KIND
        );
    }
}

/// Feeds `data` to the decoder of each of the eight record types and to the bitmap
/// decoder: each must return an error or a value that survives re-encoding.
pub fn check_decode(data: &[u8]) {
    decode_one::<Contact>(data);
    decode_one::<Account>(data);
    decode_one::<Deal>(data);
    decode_one::<crmdb::Activity>(data);
    decode_one::<Order>(data);
    decode_one::<Product>(data);
    decode_one::<Owner>(data);
    decode_one::<Task>(data);
    if let Ok(bitmap) = raw::decode_bitmap(data) {
        let values: Vec<u32> = bitmap.iter().collect();
        assert_eq!(values.len() as u64, bitmap.len(), "bitmap length disagrees");
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "a decoded bitmap iterates out of order"
        );
        assert_eq!(bitmap.min(), values.first().copied());
        assert_eq!(bitmap.max(), values.last().copied());
        let rebuilt: RoaringBitmap = values.iter().copied().collect();
        assert_eq!(
            rebuilt, bitmap,
            "a decoded bitmap differs from its own values"
        );
        let again = raw::decode_bitmap(&raw::encode_bitmap(&bitmap))
            .unwrap_or_else(|e| panic!("a decoded bitmap does not decode re-encoded: {e}"));
        assert_eq!(again, bitmap);
    }
}

// ---------------------------------------------------------------------------------------
// ops_model: operation sequences against crmdb and a reference model.
// ---------------------------------------------------------------------------------------

/// Most operations decoded from one input.
pub const MAX_OPS: usize = 96;

const STAGES: [&str; 7] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
    // Not part of the contact lifecycle.
    "vip",
];
const KNOWN_STAGES: usize = 6;
const NAMES: [&str; 4] = ["Li Lei", "Han Meimei", "", "Zhao Wei"];
/// The first two are the same address once normalised; the last is not an address.
const EMAILS: [&str; 5] = [
    "ann@example.com",
    " ANN@Example.com ",
    "bob@example.com",
    "cy@example.org",
    "not-an-email",
];
const REGIONS: [&str; 3] = ["shanghai", "beijing", "shenzhen"];
/// The last is refused (surrounding space).
const TAGS: [&str; 5] = ["vip", "gold", "churn_risk", "b2b", " bad"];
const VALID_TAGS: usize = 4;
const ACTOR: &str = "fuzzer";

/// One decoded operation. Targets are indexes into the model's contacts; one past the end
/// names a contact that does not exist.
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert a contact.
    Insert {
        /// Index into `NAMES`.
        name: usize,
        /// Index into `EMAILS`, or none.
        email: Option<usize>,
        /// Index into `REGIONS`, or none.
        region: Option<usize>,
        /// Bit set over the valid tags.
        tags: u8,
        /// Lifetime value in whole units.
        value: u8,
        /// Index into `STAGES`, or none for the machine's first stage.
        stage: Option<usize>,
    },
    /// Replace a contact's caller fields, keeping tags and stage.
    Update {
        /// Contact index.
        target: usize,
        /// Index into `NAMES`.
        name: usize,
        /// Index into `EMAILS`, or none.
        email: Option<usize>,
        /// Index into `REGIONS`, or none.
        region: Option<usize>,
        /// Lifetime value in whole units.
        value: u8,
    },
    /// Add a tag.
    AddTag {
        /// Contact index.
        target: usize,
        /// Index into `TAGS`.
        tag: usize,
    },
    /// Remove a tag.
    RemoveTag {
        /// Contact index.
        target: usize,
        /// Index into `TAGS`.
        tag: usize,
    },
    /// A plain stage move.
    Move {
        /// Contact index.
        target: usize,
        /// Index into `STAGES`.
        stage: usize,
    },
    /// A regress, with or without a reason.
    Regress {
        /// Contact index.
        target: usize,
        /// Index into `STAGES`.
        stage: usize,
        /// Whether a reason is given.
        reason: bool,
    },
    /// Move to the recycle bin.
    SoftDelete {
        /// Contact index.
        target: usize,
    },
    /// Bring back from the recycle bin.
    Restore {
        /// Contact index.
        target: usize,
    },
    /// A paid order of the contact, which updates its figures and may move its stage.
    PaidOrder {
        /// Contact index.
        target: usize,
        /// Total in whole units.
        amount: u8,
    },
    /// Commit the open transaction.
    Commit,
    /// Abort the open transaction.
    Abort,
}

fn maybe(reader: &mut ByteReader<'_>, n: usize) -> Option<usize> {
    let choice = reader.below(n + 1);
    (choice < n).then_some(choice)
}

/// Decodes up to [`MAX_OPS`] operations. `contacts` bounds targets: the decoder keeps a
/// running upper bound of how many contacts may exist so targets stay small.
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut reader = ByteReader::new(data);
    let mut ops = Vec::new();
    let mut inserts = 0usize;
    while !reader.is_empty() && ops.len() < MAX_OPS {
        let target_of = |reader: &mut ByteReader<'_>, inserts: usize| reader.below(inserts + 1);
        let op = match reader.below(12) {
            0 | 1 => {
                inserts += 1;
                Op::Insert {
                    name: reader.below(NAMES.len()),
                    email: maybe(&mut reader, EMAILS.len()),
                    region: maybe(&mut reader, REGIONS.len()),
                    tags: reader.byte() & 0b1111,
                    value: reader.byte(),
                    stage: maybe(&mut reader, STAGES.len()),
                }
            }
            2 => Op::Update {
                target: target_of(&mut reader, inserts),
                name: reader.below(NAMES.len()),
                email: maybe(&mut reader, EMAILS.len()),
                region: maybe(&mut reader, REGIONS.len()),
                value: reader.byte(),
            },
            3 => Op::AddTag {
                target: target_of(&mut reader, inserts),
                tag: reader.below(TAGS.len()),
            },
            4 => Op::RemoveTag {
                target: target_of(&mut reader, inserts),
                tag: reader.below(TAGS.len()),
            },
            5 => Op::Move {
                target: target_of(&mut reader, inserts),
                stage: reader.below(STAGES.len()),
            },
            6 => Op::Regress {
                target: target_of(&mut reader, inserts),
                stage: reader.below(STAGES.len()),
                reason: reader.flag(),
            },
            7 => Op::SoftDelete {
                target: target_of(&mut reader, inserts),
            },
            8 => Op::Restore {
                target: target_of(&mut reader, inserts),
            },
            9 => Op::PaidOrder {
                target: target_of(&mut reader, inserts),
                amount: reader.byte(),
            },
            10 => Op::Commit,
            _ => Op::Abort,
        };
        ops.push(op);
    }
    ops
}

/// What the database should hold.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    contacts: Vec<Contact>,
    histories: Vec<Vec<StageChange>>,
    orders: Vec<Order>,
}

fn normalised(email: &str) -> String {
    email.trim().to_lowercase()
}

fn stage_position(stage: &Stage) -> Option<usize> {
    STAGES[..KNOWN_STAGES]
        .iter()
        .position(|s| *s == stage.as_str())
}

impl Model {
    fn live(&self, target: usize) -> Option<&Contact> {
        self.contacts.get(target).filter(|c| c.deleted_at.is_none())
    }

    fn email_taken(&self, email: &str, except: Option<usize>) -> bool {
        let key = normalised(email);
        self.contacts.iter().enumerate().any(|(i, c)| {
            Some(i) != except && c.email.as_deref().map(normalised) == Some(key.clone())
        })
    }

    fn email_ok(&self, email: Option<&str>, except: Option<usize>) -> bool {
        email.is_none_or(|e| e.contains('@') && !self.email_taken(e, except))
    }

    fn change(
        &self,
        from: Option<&Stage>,
        to: &str,
        at: Timestamp,
        kind: ChangeKind,
    ) -> StageChange {
        StageChange {
            from: from.cloned(),
            to: Stage::new(to),
            at,
            actor: if kind == ChangeKind::Automatic {
                crmdb::SYSTEM_ACTOR.to_owned()
            } else {
                ACTOR.to_owned()
            },
            reason: None,
            kind,
        }
    }

    /// Applies `op` at time `now`; returns whether the engine should accept it.
    fn apply(&mut self, op: &Op, now: Timestamp) -> bool {
        match *op {
            Op::Insert {
                name,
                email,
                region,
                tags,
                value,
                stage,
            } => {
                let email = email.map(|e| EMAILS[e]);
                if !self.email_ok(email, None) {
                    return false;
                }
                let stage = match stage {
                    None => "prospect",
                    Some(s) if s < KNOWN_STAGES => STAGES[s],
                    Some(_) => return false,
                };
                let contact = Contact {
                    name: NAMES[name].into(),
                    email: email.map(str::to_owned),
                    region: region.map(|r| REGIONS[r].to_owned()),
                    tags: (0..VALID_TAGS)
                        .filter(|bit| tags & (1 << bit) != 0)
                        .map(|bit| TAGS[bit].to_owned())
                        .collect(),
                    lifetime_value: Money(i64::from(value) * 100),
                    stage: Stage::new(stage),
                    created_at: Some(now),
                    updated_at: now,
                    ..Default::default()
                };
                self.contacts.push(contact);
                self.histories
                    .push(vec![self.change(None, stage, now, ChangeKind::Create)]);
                true
            }
            Op::Update {
                target,
                name,
                email,
                region,
                value,
            } => {
                let email = email.map(|e| EMAILS[e]);
                if self.live(target).is_none() || !self.email_ok(email, Some(target)) {
                    return false;
                }
                let c = &mut self.contacts[target];
                c.name = NAMES[name].into();
                c.email = email.map(str::to_owned);
                c.region = region.map(|r| REGIONS[r].to_owned());
                c.lifetime_value = Money(i64::from(value) * 100);
                c.updated_at = now;
                true
            }
            Op::AddTag { target, tag } | Op::RemoveTag { target, tag } => {
                if tag >= VALID_TAGS || self.live(target).is_none() {
                    return false;
                }
                let c = &mut self.contacts[target];
                let changed = if matches!(op, Op::AddTag { .. }) {
                    c.tags.insert(TAGS[tag].to_owned())
                } else {
                    c.tags.remove(TAGS[tag])
                };
                if changed {
                    c.updated_at = now;
                }
                true
            }
            Op::Move { target, stage } | Op::Regress { target, stage, .. } => {
                let Some(current) = self.live(target).map(|c| c.stage.clone()) else {
                    return false;
                };
                if stage >= KNOWN_STAGES {
                    return false;
                }
                let to = STAGES[stage];
                let from_pos = stage_position(&current).expect("model stages are known");
                let entry = if current.as_str() == to {
                    // Same stage: rewritten, nothing to check, no history.
                    None
                } else if let Op::Regress { reason, .. } = *op {
                    if !reason || stage >= from_pos {
                        return false;
                    }
                    let mut entry = self.change(Some(&current), to, now, ChangeKind::Regress);
                    entry.reason = Some("win back".into());
                    Some(entry)
                } else {
                    let is_return =
                        matches!((current.as_str(), to), ("dormant" | "churned", "active"));
                    if stage < from_pos && !is_return {
                        return false;
                    }
                    Some(self.change(Some(&current), to, now, ChangeKind::Move))
                };
                let c = &mut self.contacts[target];
                c.stage = Stage::new(to);
                c.updated_at = now;
                if let Some(entry) = entry {
                    self.histories[target].push(entry);
                }
                true
            }
            Op::SoftDelete { target } => {
                if self.live(target).is_none() {
                    return false;
                }
                self.contacts[target].deleted_at = Some(now);
                true
            }
            Op::Restore { target } => {
                match self.contacts.get_mut(target) {
                    Some(c) if c.deleted_at.is_some() => c.deleted_at = None,
                    _ => return false,
                }
                true
            }
            Op::PaidOrder { target, amount } => {
                let Some(c) = self.live(target) else {
                    return false;
                };
                let total = Money(i64::from(amount) * 100);
                let first = c.stats.order_count == 0;
                let from = c.stage.clone();
                // The default machines' automatic moves, first match wins, each recorded
                // with its cause.
                let to = match from.as_str() {
                    "prospect" | "responder" if first => Some(("new_customer", "first paid order")),
                    "new_customer" if !first => Some(("active", "repeat paid order")),
                    "dormant" | "churned" => Some(("active", "paid order")),
                    _ => None,
                };
                let to = to.map(|(to, cause)| {
                    let mut entry = self.change(Some(&from), to, now, ChangeKind::Automatic);
                    entry.reason = Some(cause.to_owned());
                    self.histories[target].push(entry);
                    to
                });
                let c = &mut self.contacts[target];
                if let Some(to) = to {
                    c.stage = Stage::new(to);
                }
                c.stats.order_count += 1;
                c.stats.total_spent.0 += total.0;
                c.stats.last_order = c.stats.last_order.max(Some(now));
                c.updated_at = now;
                self.orders.push(Order {
                    contact: Some(ContactId::new(target as u32)),
                    at: now,
                    status: OrderStatus::Paid,
                    currency: "EUR".into(),
                    total,
                    created_at: Some(now),
                    updated_at: now,
                    ..Default::default()
                });
                true
            }
            Op::Commit | Op::Abort => true,
        }
    }
}

/// Runs `op` on the engine; returns whether it was accepted.
fn run(tx: &mut WriteTransaction, model: &Model, op: &Op, now: Timestamp) -> bool {
    let id = |target: usize| ContactId::new(target as u32);
    let result = match *op {
        Op::Insert {
            name,
            email,
            region,
            tags,
            value,
            stage,
        } => tx
            .insert(Contact {
                name: NAMES[name].into(),
                email: email.map(|e| EMAILS[e].to_owned()),
                region: region.map(|r| REGIONS[r].to_owned()),
                tags: (0..VALID_TAGS)
                    .filter(|bit| tags & (1 << bit) != 0)
                    .map(|bit| TAGS[bit].to_owned())
                    .collect(),
                lifetime_value: Money(i64::from(value) * 100),
                stage: stage.map(|s| Stage::new(STAGES[s])).unwrap_or_default(),
                ..Default::default()
            })
            .map(|_| ()),
        Op::Update {
            target,
            name,
            email,
            region,
            value,
        } => {
            // The caller's version: what it last read, with its edits.
            let mut record = model.contacts.get(target).cloned().unwrap_or_default();
            record.name = NAMES[name].into();
            record.email = email.map(|e| EMAILS[e].to_owned());
            record.region = region.map(|r| REGIONS[r].to_owned());
            record.lifetime_value = Money(i64::from(value) * 100);
            tx.update(id(target), record)
        }
        Op::AddTag { target, tag } => tx.add_tag(id(target), TAGS[tag]),
        Op::RemoveTag { target, tag } => tx.remove_tag(id(target), TAGS[tag]),
        Op::Move { target, stage } => tx.move_stage(id(target), STAGES[stage]),
        Op::Regress {
            target,
            stage,
            reason,
        } => tx.regress(
            id(target),
            STAGES[stage],
            if reason { "win back" } else { "" },
        ),
        Op::SoftDelete { target } => tx.soft_delete(id(target)),
        Op::Restore { target } => tx.restore(id(target)),
        Op::PaidOrder { target, amount } => tx
            .insert(Order {
                contact: Some(id(target)),
                at: now,
                status: OrderStatus::Paid,
                currency: "EUR".into(),
                total: Money(i64::from(amount) * 100),
                ..Default::default()
            })
            .map(|_| ()),
        Op::Commit | Op::Abort => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(crmdb::Error::Storage(e)) => panic!("{op:?} hit a storage error: {e}"),
        Err(crmdb::Error::Poisoned) => panic!("{op:?} found the transaction poisoned"),
        Err(_) => false,
    }
}

/// Rows must equal the model.
fn compare_rows<S: Snapshot>(snap: &S, model: &Model, context: &str) {
    let contacts: Vec<Contact> = snap
        .records::<Contact>()
        .expect("reading contacts")
        .into_iter()
        .enumerate()
        .map(|(i, (id, c))| {
            assert_eq!(id.get() as usize, i, "{context}: contact ids are not dense");
            c
        })
        .collect();
    assert_eq!(contacts, model.contacts, "{context}: contacts differ");
    let orders: Vec<Order> = snap
        .records::<Order>()
        .expect("reading orders")
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(orders, model.orders, "{context}: orders differ");
}

/// Rows, histories, unique keys and every index the model can predict must agree.
fn compare_all<S: Snapshot>(snap: &S, model: &Model, context: &str) {
    compare_rows(snap, model, context);
    let ok = |r: crmdb::Result<u64>, what: &str| -> u64 {
        r.unwrap_or_else(|e| panic!("{context}: counting {what}: {e}"))
    };
    let live: Vec<(usize, &Contact)> = model
        .contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.deleted_at.is_none())
        .collect();
    for (i, history) in model.histories.iter().enumerate() {
        let stored = snap
            .history(ContactId::new(i as u32))
            .expect("reading a history");
        assert_eq!(
            &stored, history,
            "{context}: history of contact {i} differs"
        );
    }

    let live_ids: RoaringBitmap = live.iter().map(|(i, _)| *i as u32).collect();
    let deleted_ids: RoaringBitmap = (0..model.contacts.len() as u32)
        .filter(|i| !live_ids.contains(*i))
        .collect();
    assert_eq!(
        snap.live(EntityKind::Contact).expect("live"),
        live_ids,
        "{context}: live"
    );
    assert_eq!(
        snap.deleted(EntityKind::Contact).expect("deleted"),
        deleted_ids,
        "{context}: recycle bin"
    );
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &Query::all()), "*"),
        live.len() as u64,
        "{context}: *"
    );

    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for (_, c) in &live {
        for tag in &c.tags {
            *tags.entry(tag.clone()).or_default() += 1;
        }
    }
    let stored: BTreeMap<String, u64> = snap
        .tags(EntityKind::Contact)
        .expect("tag counts")
        .into_iter()
        .map(|t| (t.tag, t.count))
        .collect();
    assert_eq!(stored, tags, "{context}: tag counts differ");
    for (tag, n) in &tags {
        assert_eq!(
            ok(snap.count(EntityKind::Contact, &Query::tag(tag)), tag),
            *n,
            "{context}: tag:{tag}"
        );
    }
    for stage in &STAGES[..KNOWN_STAGES] {
        let n = live
            .iter()
            .filter(|(_, c)| c.stage.as_str() == *stage)
            .count();
        assert_eq!(
            ok(
                snap.count(EntityKind::Contact, &Query::stage(*stage)),
                stage
            ),
            n as u64,
            "{context}: stage:{stage}"
        );
    }
    for region in REGIONS {
        let n = live
            .iter()
            .filter(|(_, c)| c.region.as_deref() == Some(region))
            .count();
        let q = Query::field("region").eq(region);
        assert_eq!(
            ok(snap.count(EntityKind::Contact, &q), region),
            n as u64,
            "{context}: region {region}"
        );
    }
    let rich = live
        .iter()
        .filter(|(_, c)| c.lifetime_value.0 >= 10_000)
        .count();
    let q = Query::field("lifetime_value").ge(100);
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &q), "value"),
        rich as u64,
        "{context}: lifetime_value >= 100"
    );
    let buyers = live
        .iter()
        .filter(|(_, c)| c.stats.order_count >= 2)
        .count();
    let q = Query::field("order_count").ge(2);
    assert_eq!(
        ok(snap.count(EntityKind::Contact, &q), "orders"),
        buyers as u64,
        "{context}: order_count >= 2"
    );
    for email in EMAILS {
        let holder = model
            .contacts
            .iter()
            .position(|c| c.email.as_deref().map(normalised) == Some(normalised(email)))
            .map(|i| ContactId::new(i as u32));
        assert_eq!(
            snap.contact_by_email(email).expect("email lookup"),
            holder,
            "{context}: holder of {email:?}"
        );
    }
}

/// Applies the operations decoded from `data` to a fresh in-memory database and to the
/// model: every operation must be accepted or refused as the model says; a refused one
/// must leave the transaction as it was; after every commit or abort the committed state
/// must equal the model, indexes included.
pub fn check_ops_model(data: &[u8]) {
    let ops = decode_ops(data);
    let clock = Arc::new(ManualClock::new(Timestamp(EPOCH)));
    let db = Database::builder()
        .clock(clock.clone())
        .in_memory()
        .expect("an in-memory database opens");
    let mut committed = Model::default();
    let mut pending = Model::default();
    let mut tx: Option<WriteTransaction> = None;
    for (step, op) in ops.iter().enumerate() {
        let now = Timestamp(EPOCH + 60 * (step as i64 + 1));
        clock.set(now);
        let context = format!("step {step} ({op:?})");
        match op {
            Op::Commit => {
                if let Some(tx) = tx.take() {
                    tx.commit()
                        .unwrap_or_else(|e| panic!("{context}: commit: {e}"));
                }
                committed = pending.clone();
                db.read(|r| {
                    compare_all(r, &committed, &context);
                    Ok(())
                })
                .expect("reading the committed state");
            }
            Op::Abort => {
                if let Some(tx) = tx.take() {
                    tx.abort()
                        .unwrap_or_else(|e| panic!("{context}: abort: {e}"));
                }
                pending = committed.clone();
                db.read(|r| {
                    compare_all(r, &committed, &context);
                    Ok(())
                })
                .expect("reading the committed state");
            }
            _ => {
                let tx = match &mut tx {
                    Some(tx) => tx,
                    None => {
                        let mut fresh = db.begin_write().expect("begin a write transaction");
                        fresh.set_actor(ACTOR);
                        tx.insert(fresh)
                    }
                };
                let before = pending.clone();
                let expected = pending.apply(op, now);
                let accepted = run(tx, &before, op, now);
                assert_eq!(
                    accepted,
                    expected,
                    "{context}: the engine {} it, the model {} it",
                    if accepted { "accepted" } else { "refused" },
                    if expected { "accepts" } else { "refuses" },
                );
                compare_rows(&*tx, &pending, &context);
            }
        }
    }
    drop(tx);
    db.read(|r| {
        compare_all(r, &committed, "after rolling back the open transaction");
        Ok(())
    })
    .expect("reading the committed state");
}
