//! A deterministic demo and benchmark data generator shared by tests, benchmarks and
//! the example server: seeded, with realistic skew (Zipf-like tag frequencies, uneven
//! regions, owners and stages, log-spread lifetime values, order and activity
//! histories). Every value is a pure function of the seed and the record index, so
//! other engines can be loaded with exactly the same data.

use crate::bulk::BulkLoad;
use crate::db::Database;
use crate::error::Result;
use crate::schema::Stage;
use crate::schema::{
    Account, AccountId, Activity, ActivityKind, Contact, ContactId, ContactRole, Deal, Direction,
    LineItem, Money, Order, OrderStatus, Owner, OwnerId, Product, ProductId, Subject, Timestamp,
};
use crate::txn::Snapshot;

/// Number of distinct tags.
pub const TAGS: usize = 64;
/// Number of distinct regions.
pub const REGIONS: usize = 32;
/// Number of owners.
pub const OWNERS: usize = 50;
/// Number of products.
pub const PRODUCTS: usize = 200;
/// Acquisition channels.
pub const SOURCES: [&str; 8] = [
    "web",
    "wechat",
    "referral",
    "event",
    "ads",
    "store",
    "partner",
    "cold_call",
];
const STAGES: [(&str, u32); 6] = [
    ("prospect", 30),
    ("responder", 15),
    ("new_customer", 15),
    ("active", 20),
    ("dormant", 12),
    ("churned", 8),
];
const CITIES: [&str; REGIONS] = [
    "shanghai",
    "beijing",
    "guangzhou",
    "shenzhen",
    "chengdu",
    "hangzhou",
    "wuhan",
    "xian",
    "chongqing",
    "tianjin",
    "nanjing",
    "suzhou",
    "changsha",
    "zhengzhou",
    "dongguan",
    "qingdao",
    "shenyang",
    "ningbo",
    "kunming",
    "dalian",
    "xiamen",
    "hefei",
    "foshan",
    "fuzhou",
    "harbin",
    "jinan",
    "wenzhou",
    "changchun",
    "shijiazhuang",
    "changzhou",
    "quanzhou",
    "nanning",
];

/// Family names, most frequent first (pinyin).
const SURNAMES: [&str; 40] = [
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma",
    "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo", "Zheng", "Liang", "Xie", "Song", "Tang", "Han",
    "Feng", "Deng", "Cao", "Peng", "Zeng", "Xiao", "Tian", "Dong", "Pan", "Yuan", "Cai", "Jiang",
    "Yu", "Du",
];

/// Syllables of given names (pinyin).
const GIVEN: [&str; 48] = [
    "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie",
    "tao", "ming", "chao", "xiu", "xia", "ping", "gang", "hui", "hua", "bin", "peng", "dan", "fei",
    "hong", "lan", "ning", "qing", "rui", "shan", "ting", "xin", "yu", "zhen", "kai", "hao", "bo",
    "yi", "long", "mei", "lin", "xue", "yun", "jia", "hai", "feng",
];

/// A person's name, `Surname Given`: skewed family names and one- or two-syllable
/// given names, so that a large data set holds people of the same name as real ones
/// do.
pub fn person_name(rng: &mut Rng) -> String {
    let surname = SURNAMES[rng.zipf(SURNAMES.len(), 0.9)];
    let first = GIVEN[rng.zipf(GIVEN.len(), 0.6)];
    let mut given = String::with_capacity(12);
    given.push_str(&first[..1].to_uppercase());
    given.push_str(&first[1..]);
    if rng.below(3) != 0 {
        given.push_str(GIVEN[rng.below(GIVEN.len() as u64) as usize]);
    }
    format!("{surname} {given}")
}

/// A small fast deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A Zipf-like pick in `0..n`: index `k` with weight `1 / (k + 1)^s`.
    pub fn zipf(&mut self, n: usize, s: f64) -> usize {
        // Inverse-CDF on the continuous approximation; good enough for skewed demo data.
        let u = self.unit();
        let n = n as f64;
        let k = if (s - 1.0).abs() < 1e-9 {
            (u * (n + 1.0).ln()).exp() - 1.0
        } else {
            let a = 1.0 - s;
            ((u * ((n + 1.0).powf(a) - 1.0) + 1.0).powf(1.0 / a)) - 1.0
        };
        (k as usize).min(n as usize - 1)
    }
}

/// The name of tag `k` (0-based); tag 0 is the most frequent.
pub fn tag_name(k: usize) -> String {
    const NAMED: [&str; 8] = [
        "vip",
        "newsletter",
        "gold",
        "wechat_fan",
        "high_intent",
        "discount_seeker",
        "b2b",
        "event_2026",
    ];
    NAMED
        .get(k)
        .map_or_else(|| format!("t{k:02}"), |s| (*s).to_owned())
}

/// Probability that a contact carries tag `k`: a Zipf-like decay.
pub fn tag_probability(k: usize) -> f64 {
    0.35 / ((k + 1) as f64).powf(0.75)
}

/// The name of region `k`.
pub fn region_name(k: usize) -> &'static str {
    CITIES[k % REGIONS]
}

/// The demo data set's shape.
///
/// # Defaults
/// 10 000 contacts, seed 42, "now" 2026-11-01.
#[derive(Debug, Clone)]
pub struct Generator {
    /// Number of contacts.
    pub contacts: u32,
    /// The seed.
    pub seed: u64,
    /// The time the data set is "as of"; histories lie before it.
    pub now: Timestamp,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            contacts: 10_000,
            seed: 42,
            now: Timestamp::from_ymd(2026, 11, 1).unwrap_or_default(),
        }
    }
}

/// A generated contact with what happens to it afterwards.
#[derive(Debug, Clone)]
pub struct DemoContact {
    /// The contact as inserted.
    pub contact: Contact,
    /// Its orders (contact ids filled in at load).
    pub orders: Vec<Order>,
    /// Its activities.
    pub activities: Vec<Activity>,
}

/// A generated deal and the stage moves it goes through.
#[derive(Debug, Clone)]
pub struct DemoDeal {
    /// The deal as inserted (in the first stage, at `created_at`).
    pub deal: Deal,
    /// Later moves: when, and to which stage. A move to `won` comes with a close date
    /// set on the deal, a move to `lost` with a lost reason.
    pub moves: Vec<(Timestamp, Stage)>,
}

/// What [`Generator::load`] inserted.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Owners inserted.
    pub owners: u64,
    /// Accounts inserted.
    pub accounts: u64,
    /// Products inserted.
    pub products: u64,
    /// Contacts inserted.
    pub contacts: u64,
    /// Orders inserted.
    pub orders: u64,
    /// Activities inserted.
    pub activities: u64,
    /// Deals inserted.
    pub deals: u64,
}

impl Generator {
    /// A generator for `contacts` contacts with the default seed.
    pub fn new(contacts: u32) -> Generator {
        Generator {
            contacts,
            ..Generator::default()
        }
    }

    /// Number of deals: one per 10 contacts, at least one.
    pub fn deals(&self) -> u32 {
        (self.contacts / 10).max(1)
    }

    /// Deal `i` with its stage moves through the default pipeline. Refers to contact
    /// `10 * i` and its account, owner and products by their load-order row ids.
    pub fn deal(&self, i: u32) -> DemoDeal {
        const OPEN: [&str; 5] = [
            "lead",
            "qualified",
            "needs_analysis",
            "proposal",
            "negotiation",
        ];
        let mut rng = self.rng(4, u64::from(i));
        let contact_row = (i * 10).min(self.contacts.saturating_sub(1));
        let demo_contact = self.contact(contact_row);
        let created = self.now.plus_days(-(rng.below(720) as i64) - 30);
        let product = ProductId::new(rng.zipf(PRODUCTS, 1.0) as u32);
        let quantity = 1 + rng.below(20) as u32;
        let unit_price = Money(10_000 + rng.below(500_000) as i64);
        let deal = Deal {
            name: format!("Deal {i}"),
            pipeline: String::new(),
            account: demo_contact.contact.account,
            contact: Some(ContactId::new(contact_row)),
            owner: Some(OwnerId::new(rng.zipf(OWNERS, 0.8) as u32)),
            amount: Money(unit_price.0 * i64::from(quantity)),
            currency: "CNY".into(),
            line_items: vec![LineItem {
                product,
                quantity,
                unit_price,
            }],
            created_at: Some(created),
            ..Default::default()
        };
        let mut moves = Vec::new();
        let mut at = created;
        let mut position = 0usize;
        loop {
            at = at.plus_days(1 + rng.below(30) as i64);
            if at >= self.now {
                break;
            }
            let roll = rng.below(100);
            if roll < 12 {
                moves.push((at, Stage::new("lost")));
                break;
            }
            if position == OPEN.len() - 1 {
                if roll < 60 {
                    moves.push((at, Stage::new("won")));
                    break;
                }
                continue;
            }
            // Mostly one stage forward, sometimes a skip.
            position = (position + 1 + usize::from(roll > 90)).min(OPEN.len() - 1);
            moves.push((at, Stage::new(OPEN[position])));
            if roll > 85 {
                break;
            }
        }
        DemoDeal { deal, moves }
    }

    /// Number of accounts: one per 50 contacts, at least one.
    pub fn accounts(&self) -> u32 {
        (self.contacts / 50).max(1)
    }

    fn rng(&self, stream: u64, index: u64) -> Rng {
        let mut rng = Rng::new(
            self.seed
                ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)
                ^ index.wrapping_mul(0x9E37_79B9),
        );
        rng.next_u64();
        rng
    }

    /// Owner `i` (0-based).
    pub fn owner(&self, i: u32) -> Owner {
        Owner {
            name: format!("Owner {i}"),
            email: Some(format!("owner{i}@crm.example")),
            team: Some(format!("team_{}", i % 5)),
            region: Some(region_name(i as usize % 8).to_owned()),
            capacity: 200 + (i % 4) * 100,
            ..Default::default()
        }
    }

    /// Product `i`.
    pub fn product(&self, i: u32) -> Product {
        let mut rng = self.rng(1, u64::from(i));
        Product {
            sku: format!("SKU-{i:05}"),
            name: format!("Product {i}"),
            category: Some(format!("category_{}", i % 12)),
            list_price: Money(1_000 + rng.below(200_000) as i64),
            ..Default::default()
        }
    }

    /// Account `i`.
    pub fn account(&self, i: u32) -> Account {
        let mut rng = self.rng(2, u64::from(i));
        const INDUSTRIES: [&str; 8] = [
            "saas",
            "retail",
            "manufacturing",
            "finance",
            "education",
            "healthcare",
            "logistics",
            "media",
        ];
        Account {
            name: format!("Company {i}"),
            industry: Some(INDUSTRIES[rng.zipf(INDUSTRIES.len(), 1.0)].to_owned()),
            region: Some(region_name(rng.zipf(REGIONS, 1.1)).to_owned()),
            size: Some(5 + rng.below(5_000) as u32),
            tier: Some(["a", "b", "c"][rng.below(3) as usize].to_owned()),
            owner: Some(OwnerId::new(rng.below(u64::from(OWNERS as u32)) as u32)),
            created_at: Some(self.now.plus_days(-(rng.below(1500) as i64))),
            ..Default::default()
        }
    }

    /// Contact `i` with its orders and activities. Row ids of owners, accounts and
    /// products are those [`Generator::load`] gives them (0-based, in order).
    pub fn contact(&self, i: u32) -> DemoContact {
        let mut rng = self.rng(3, u64::from(i));
        let mut tags = std::collections::BTreeSet::new();
        for k in 0..TAGS {
            if rng.unit() < tag_probability(k) {
                tags.insert(tag_name(k));
            }
        }
        let total_weight: u32 = STAGES.iter().map(|s| s.1).sum();
        let mut pick = rng.below(u64::from(total_weight)) as u32;
        let mut stage = STAGES[0].0;
        for (name, weight) in STAGES {
            if pick < weight {
                stage = name;
                break;
            }
            pick -= weight;
        }
        let mut roles = std::collections::BTreeSet::new();
        for role in ContactRole::ALL.iter().take(5) {
            if rng.below(4) == 0 {
                roles.insert(*role);
            }
        }
        let created_days_ago = rng.below(1400) as i64 + 1;
        let created = self.now.plus_days(-created_days_ago);
        // Log-spread lifetime value, 0 to about 100 000.00.
        let ltv = ((rng.unit() * 16.0).exp2() * 150.0) as i64;
        let account = (rng.below(3) == 0)
            .then(|| AccountId::new(rng.below(u64::from(self.accounts())) as u32));
        let contact = Contact {
            // Its own stream, so that the other fields do not depend on the name.
            name: person_name(&mut self.rng(9, u64::from(i))),
            email: Some(format!("c{i}@mail.example")),
            phone: Some(format!("+86 1{:010}", u64::from(i) * 7919 % 10_000_000_000)),
            region: Some(region_name(rng.zipf(REGIONS, 1.1)).to_owned()),
            gender: Some(["f", "m", "x"][rng.below(3) as usize].to_owned()),
            birth_year: Some(1950 + rng.below(56) as i32),
            source: Some(SOURCES[rng.zipf(SOURCES.len(), 1.0)].to_owned()),
            owner: Some(OwnerId::new(rng.zipf(OWNERS, 0.8) as u32)),
            account,
            stage: stage.into(),
            roles,
            tags,
            unsubscribed: rng.below(10) == 0,
            lifetime_value: Money(ltv),
            created_at: Some(created),
            ..Default::default()
        };
        let orders = (0..rng.zipf(4, 1.2))
            .map(|_| {
                let product = ProductId::new(rng.zipf(PRODUCTS, 1.0) as u32);
                let quantity = 1 + rng.below(3) as u32;
                let unit_price = Money(1_000 + rng.below(50_000) as i64);
                Order {
                    at: created.plus_days(rng.below(created_days_ago as u64) as i64),
                    status: if rng.below(20) == 0 {
                        OrderStatus::Refunded
                    } else {
                        OrderStatus::Paid
                    },
                    currency: "CNY".into(),
                    line_items: vec![LineItem {
                        product,
                        quantity,
                        unit_price,
                    }],
                    total: Money(unit_price.0 * i64::from(quantity)),
                    ..Default::default()
                }
            })
            .collect();
        const KINDS: [ActivityKind; 7] = [
            ActivityKind::Email,
            ActivityKind::Call,
            ActivityKind::WebVisit,
            ActivityKind::Meeting,
            ActivityKind::CampaignResponse,
            ActivityKind::Visit,
            ActivityKind::Note,
        ];
        let activities = (0..rng.zipf(4, 0.9))
            .map(|_| {
                let mut a = Activity::new(
                    KINDS[rng.zipf(KINDS.len(), 1.0)],
                    if rng.below(3) == 0 {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    Subject::Contact(ContactId::new(0)),
                    created.plus_days(rng.below(created_days_ago as u64) as i64),
                );
                a.owner = contact.owner;
                a
            })
            .collect();
        DemoContact {
            contact,
            orders,
            activities,
        }
    }

    /// Loads the whole data set into `db`: owners, products, accounts, then contacts with
    /// their orders and activities (which drive figures and automatic stage moves).
    ///
    /// # Errors
    /// A storage failure, or a refused record (none with a fresh database).
    pub fn load(&self, db: &Database, mut progress: impl FnMut(u64)) -> Result<DemoSummary> {
        let mut summary = DemoSummary::default();
        let bulk = BulkLoad::new(db);
        let owners = bulk.run((0..OWNERS as u32).map(|i| self.owner(i)), |_| {})?;
        let products = bulk.run((0..PRODUCTS as u32).map(|i| self.product(i)), |_| {})?;
        let accounts = bulk.run((0..self.accounts()).map(|i| self.account(i)), |_| {})?;
        for report in [&owners, &products, &accounts] {
            if let Some(rejection) = report.rejected.first() {
                return Err(refused(rejection));
            }
        }
        summary.owners = owners.inserted;
        summary.products = products.inserted;
        summary.accounts = accounts.inserted;
        const BATCH: u32 = 20_000;
        let mut start = 0;
        let mut load = BulkLoad::new(db);
        load.batch_size(BATCH as usize);
        while start < self.contacts {
            let end = (start + BATCH).min(self.contacts);
            let mut contacts = Vec::new();
            let mut orders = Vec::new();
            let mut activities = Vec::new();
            for demo in (start..end).map(|i| self.contact(i)) {
                contacts.push(demo.contact);
                orders.push(demo.orders);
                activities.push(demo.activities);
            }
            let inserted = refused_none(load.run(contacts, |_| {})?)?;
            // Each contact's orders, then each contact's activities: every contact sees
            // its records in the order a one-by-one load would give them.
            let ids: Vec<ContactId> = inserted.iter().map(|&row| ContactId::new(row)).collect();
            let orders = ids.iter().copied().zip(orders).flat_map(|(id, orders)| {
                orders.into_iter().map(move |mut order: Order| {
                    order.contact = Some(id);
                    order
                })
            });
            summary.orders += refused_none(load.run(orders, |_| {})?)?.len() as u64;
            let activities = ids
                .iter()
                .copied()
                .zip(activities)
                .flat_map(|(id, activities)| {
                    activities.into_iter().map(move |mut activity: Activity| {
                        activity.subject = Subject::Contact(id);
                        activity
                    })
                });
            summary.activities += refused_none(load.run(activities, |_| {})?)?.len() as u64;
            summary.contacts += inserted.len() as u64;
            start = end;
            progress(u64::from(start));
        }
        let deals = self.deals();
        let mut start = 0;
        while start < deals {
            let end = (start + BATCH).min(deals);
            db.write(|tx| -> Result<()> {
                for i in start..end {
                    let demo = self.deal(i);
                    tx.set_time(demo.deal.created_at);
                    let id = tx.insert(demo.deal)?;
                    for (at, stage) in demo.moves {
                        tx.set_time(Some(at));
                        match stage.as_str() {
                            "won" => tx.modify(id, |d| d.close_date = Some(at))?,
                            "lost" => tx.modify(id, |d| d.lost_reason = Some("price".into()))?,
                            _ => {}
                        }
                        tx.move_stage(id, stage)?;
                    }
                    summary.deals += 1;
                }
                tx.set_time(None);
                Ok(())
            })?;
            start = end;
        }
        Ok(summary)
    }
}

/// How a planted duplicate differs from the contact it copies: the ways one person
/// arrives again from another channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DuplicateVariant {
    /// A web form: the name in other case and spacing, a `+web` address at the same
    /// mailbox, the phone with its country code and spaces.
    WebForm,
    /// A store's till: the same name and phone written as `138-0013-8000`; no email,
    /// birth year or gender.
    StoreTill,
    /// Typed in again: two letters of the name swapped, the phone in national form.
    Typo,
    /// A sales rep's spreadsheet: a misspelt name, a work email, the same account; no
    /// phone.
    SalesSheet,
}

impl DuplicateVariant {
    /// Every variant, in the order they are planted.
    pub const ALL: [DuplicateVariant; 4] = [
        DuplicateVariant::WebForm,
        DuplicateVariant::StoreTill,
        DuplicateVariant::Typo,
        DuplicateVariant::SalesSheet,
    ];
}

/// A duplicate [`Generator::plant_duplicates`] inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantedDuplicate {
    /// The demo contact it copies.
    pub original: ContactId,
    /// The copy.
    pub copy: ContactId,
    /// How the copy differs.
    pub variant: DuplicateVariant,
}

impl Generator {
    /// Inserts `count` duplicates of this data set's contacts (loaded into `db` by
    /// [`Generator::load`]), the variants in turn, in one transaction, and returns
    /// them: the truth that duplicate detection is measured against. The originals are
    /// distinct contacts spread over the set; a spreadsheet copy is made of a contact
    /// with an account.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for more duplicates than half the contacts,
    /// or a refused write.
    pub fn plant_duplicates(&self, db: &Database, count: u32) -> Result<Vec<PlantedDuplicate>> {
        if u64::from(count) * 2 > u64::from(self.contacts) {
            return Err(crate::Error::InvalidArgument(format!(
                "{count} duplicates of {} contacts: at most half can be copied",
                self.contacts
            )));
        }
        db.write(|tx| {
            let mut planted = Vec::with_capacity(count as usize);
            let mut used = std::collections::HashSet::new();
            let mut rng = self.rng(10, 0);
            for n in 0..count {
                let variant = DuplicateVariant::ALL[n as usize % DuplicateVariant::ALL.len()];
                // A contact not copied yet, with an account for a spreadsheet copy.
                let (row, original) = loop {
                    let row = rng.below(u64::from(self.contacts)) as u32;
                    if used.contains(&row) {
                        continue;
                    }
                    let contact = tx.get(ContactId::new(row))?;
                    if variant != DuplicateVariant::SalesSheet || contact.account.is_some() {
                        break (row, contact);
                    }
                };
                used.insert(row);
                let copy = duplicate_of(&original, variant, n, &mut rng);
                let id = tx.insert(copy)?;
                planted.push(PlantedDuplicate {
                    original: ContactId::new(row),
                    copy: id,
                    variant,
                });
            }
            Ok(planted)
        })
    }
}

/// The copy of `original` a channel of `variant` would hold.
fn duplicate_of(original: &Contact, variant: DuplicateVariant, n: u32, rng: &mut Rng) -> Contact {
    let national: String = original
        .phone
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .skip(2)
        .collect();
    let grouped = |sep: &str| {
        if national.len() == 11 {
            format!(
                "{}{sep}{}{sep}{}",
                &national[..3],
                &national[3..7],
                &national[7..]
            )
        } else {
            national.clone()
        }
    };
    let mut copy = Contact {
        name: original.name.clone(),
        region: original.region.clone(),
        birth_year: original.birth_year,
        gender: original.gender.clone(),
        ..Default::default()
    };
    match variant {
        DuplicateVariant::WebForm => {
            copy.name = original.name.to_lowercase().replace(' ', "  ");
            copy.email = original.email.as_ref().map(|e| match e.split_once('@') {
                Some((local, domain)) => format!("{local}+web@{}", domain.to_uppercase()),
                None => format!("{e}+web"),
            });
            copy.phone = Some(format!("+86 {}", grouped(" ")));
            copy.source = Some("web".into());
        }
        DuplicateVariant::StoreTill => {
            copy.phone = Some(grouped("-"));
            copy.birth_year = None;
            copy.gender = None;
            copy.source = Some("store".into());
        }
        DuplicateVariant::Typo => {
            copy.name = misspell(&original.name, rng, true);
            copy.phone = Some(national.clone());
        }
        DuplicateVariant::SalesSheet => {
            copy.name = misspell(&original.name, rng, false);
            let handle: String = original
                .name
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(".");
            copy.email = Some(format!("{handle}.{n}@corp.example"));
            copy.account = original.account;
            copy.source = Some("partner".into());
        }
    }
    copy
}

/// `name` with two adjacent letters of its given name swapped (`swap`), or one letter
/// of it changed.
fn misspell(name: &str, rng: &mut Rng, swap: bool) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    let start = chars.iter().position(|c| *c == ' ').map_or(0, |i| i + 1);
    if chars.len() < start + 2 {
        return format!("{name}e");
    }
    let at = start + rng.below((chars.len() - start - 1) as u64) as usize;
    if swap && chars[at] != chars[at + 1] {
        chars.swap(at, at + 1);
    } else {
        let letters = b"aeiouhngs";
        let mut replacement = letters[rng.below(letters.len() as u64) as usize] as char;
        if replacement == chars[at].to_ascii_lowercase() {
            replacement = if replacement == 'a' { 'e' } else { 'a' };
        }
        chars[at] = replacement;
    }
    chars.into_iter().collect()
}

/// The error of a demo record the engine refused (none with a fresh database).
fn refused(rejection: &crate::bulk::Rejection) -> crate::Error {
    crate::Error::InvalidArgument(format!("demo data refused: {}", rejection.error))
}

/// The inserted rows of a bulk load that must have refused nothing.
fn refused_none(report: crate::BulkReport) -> Result<Vec<u32>> {
    match report.rejected.first() {
        Some(rejection) => Err(refused(rejection)),
        None => Ok(report.rows),
    }
}
