//! A mix of narrow and broad segment queries on the demo data set, each measured three
//! ways in the same run:
//!
//! - **crmdb**: `count` on a reused read transaction (warm bitmap cache);
//! - **floor**: the same bitmap operations done directly on roaring bitmaps in this
//!   process, built from the generator's values: one bitmap per categorical value, and
//!   bit-sliced numeric indexes with crmdb's logarithmic buckets, answered the same way
//!   (the buckets inside a range as they are, the cut ones refined by one O'Neil pass);
//! - **sqlite**: SQLite in memory with single-column indexes on every filtered column and
//!   a `contact_tag(contact_id, tag)` table indexed on `tag`.
//!
//! All three must give the same count for every query. Targets: crmdb within 2× of the
//! floor, and at least 100× faster than SQLite. After criterion's measurements the bench
//! prints a table of medians timed in the same run, with both ratios.
//!
//! The database is loaded with `Generator::load`: contacts with their orders and
//! activities, on a clock stopped at the generator's "now" so that `within` windows are
//! deterministic. The load moves some contacts' stages automatically (a first paid order
//! makes a prospect a new customer, and so on); [`stage_after_load`] replays those rules
//! so that the floor and SQLite hold the same stages as crmdb.
//!
//! `CRMDB_BENCH_CONTACTS` sets the number of contacts (default 1 000 000).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use crmdb::demo::{DemoContact, Generator};
use crmdb::{
    Builder, Direction, EntityKind, ManualClock, OrderStatus, Query, ReadTransaction,
    RoaringBitmap, Snapshot,
};
use rusqlite::Connection;

fn contact_count() -> u32 {
    std::env::var("CRMDB_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The stage a generated contact is in once `Generator::load` has inserted it and then
/// its orders and activities, under the default automatic moves: a first paid order
/// moves prospects and responders to new_customer, a repeat paid order moves
/// new_customer to active, any paid order wins back dormant and churned contacts, and an
/// inbound activity moves a prospect to responder.
fn stage_after_load(demo: &DemoContact) -> String {
    let mut stage = demo.contact.stage.as_str().to_owned();
    let mut paid = 0;
    for order in &demo.orders {
        if order.status != OrderStatus::Paid {
            continue;
        }
        let first = paid == 0;
        let next = match stage.as_str() {
            "prospect" | "responder" if first => Some("new_customer"),
            "new_customer" if !first => Some("active"),
            "dormant" | "churned" => Some("active"),
            _ => None,
        };
        if let Some(next) = next {
            stage = next.to_owned();
        }
        paid += 1;
    }
    for activity in &demo.activities {
        if activity.direction == Direction::Inbound && stage == "prospect" {
            stage = "responder".to_owned();
        }
    }
    stage
}

/// One contact's queried values, as plain data.
struct Row {
    tags: Vec<String>,
    region: String,
    source: String,
    owner: u32,
    stage: String,
    /// Minor units.
    lifetime_value: i64,
    /// Days since the epoch.
    created: i64,
}

fn rows(generator: &Generator) -> Vec<Row> {
    (0..generator.contacts)
        .map(|i| {
            let demo = generator.contact(i);
            let stage = stage_after_load(&demo);
            let c = demo.contact;
            Row {
                tags: c.tags.into_iter().collect(),
                region: c.region.expect("generated region"),
                source: c.source.expect("generated source"),
                owner: c.owner.expect("generated owner").get(),
                stage,
                lifetime_value: c.lifetime_value.0,
                created: c.created_at.expect("generated created").day(),
            }
        })
        .collect()
}

/// A bit-sliced index over non-negative values with crmdb's logarithmic buckets: zero
/// alone, magnitudes 1, 2 and 3 alone, then four buckets per power of two (split by the
/// two bits after the leading one); numbered as crmdb numbers them.
#[derive(Default)]
struct Slices {
    bits: Vec<RoaringBitmap>,
    buckets: BTreeMap<u16, RoaringBitmap>,
}

const ZERO_BUCKET: u16 = 3 + 62 * 4;

fn bucket_of(value: i64) -> u16 {
    let m = value.unsigned_abs();
    if m == 0 {
        return ZERO_BUCKET;
    }
    if m < 4 {
        return ZERO_BUCKET + m as u16;
    }
    let octave = 63 - m.leading_zeros();
    ZERO_BUCKET + 4 + (octave as u16 - 2) * 4 + ((m >> (octave - 2)) & 3) as u16
}

fn bucket_bounds(bucket: u16) -> (i64, i64) {
    let off = bucket - ZERO_BUCKET;
    if off < 4 {
        return (i64::from(off), i64::from(off));
    }
    let octave = u32::from(off - 4) / 4 + 2;
    let sub = i128::from((off - 4) % 4);
    let low = (4 + sub) << (octave - 2);
    let high = ((5 + sub) << (octave - 2)) - 1;
    (low as i64, high.min(i128::from(i64::MAX)) as i64)
}

impl Slices {
    fn build(values: impl Iterator<Item = (u32, i64)>) -> Slices {
        let mut slices = Slices::default();
        for (row, value) in values {
            assert!(value >= 0, "the floor's slices hold non-negative values");
            slices
                .buckets
                .entry(bucket_of(value))
                .or_default()
                .insert(row);
            let width = (64 - value.leading_zeros()) as usize;
            if slices.bits.len() < width {
                slices.bits.resize_with(width, RoaringBitmap::new);
            }
            for (bit, slice) in slices.bits.iter_mut().enumerate() {
                if value >> bit & 1 == 1 {
                    slice.insert(row);
                }
            }
        }
        slices
    }

    /// Rows of `within` with a value `>= c`.
    fn ge(&self, c: i64, within: &RoaringBitmap) -> RoaringBitmap {
        self.range(c, i64::MAX, within)
    }

    /// Rows of `within` with `low <= value <= high` (`0 <= low <= high`): the buckets
    /// inside the range as they are, the cut ones refined by [`Slices::refine`].
    fn range(&self, low: i64, high: i64, within: &RoaringBitmap) -> RoaringBitmap {
        let mut whole = RoaringBitmap::new();
        let mut cut = RoaringBitmap::new();
        for (&bucket, rows) in self.buckets.range(bucket_of(low)..=bucket_of(high)) {
            let (first, last) = bucket_bounds(bucket);
            if low <= first && last <= high {
                whole |= rows & within;
            } else {
                cut |= rows & within;
            }
        }
        if !cut.is_empty() {
            whole |= self.refine(low, high, cut);
        }
        whole
    }

    /// Rows of `rows` with `low <= value <= high`: O'Neil's comparison from the top
    /// slice, one pass for both bounds.
    fn refine(&self, low: i64, high: i64, rows: RoaringBitmap) -> RoaringBitmap {
        let top = self.bits.len();
        if low >> top != 0 {
            return RoaringBitmap::new();
        }
        let high = high.min((1 << top) - 1);
        let rest = |bit: usize| (1i64 << (bit + 1)) - 1;
        let mut eq = rows;
        let mut bits = (0..top).rev();
        // The common prefix of `low` and `high`.
        let split = loop {
            let Some(bit) = bits.next() else {
                return eq;
            };
            if eq.is_empty() || (low & rest(bit) == 0 && high & rest(bit) == rest(bit)) {
                return eq;
            }
            let slice = &self.bits[bit];
            match (low >> bit & 1 == 1, high >> bit & 1 == 1) {
                (true, true) => eq &= slice,
                (false, false) => eq -= slice,
                _ => break bit,
            }
        };
        let mut le = &eq & &self.bits[split];
        let mut ge = eq - &self.bits[split];
        let mut inside = RoaringBitmap::new();
        for bit in (0..split).rev() {
            if low & rest(bit) == 0 {
                inside |= std::mem::take(&mut ge);
            }
            if high & rest(bit) == rest(bit) {
                inside |= std::mem::take(&mut le);
            }
            if ge.is_empty() && le.is_empty() {
                break;
            }
            let slice = &self.bits[bit];
            if !ge.is_empty() {
                if low >> bit & 1 == 1 {
                    ge &= slice;
                } else {
                    inside |= &ge & slice;
                    ge -= slice;
                }
            }
            if !le.is_empty() {
                if high >> bit & 1 == 1 {
                    inside |= &le - slice;
                    le &= slice;
                } else {
                    le -= slice;
                }
            }
        }
        inside | ge | le
    }
}

/// The floor's indexes, built straight from the rows.
struct Floor {
    all: RoaringBitmap,
    tags: HashMap<String, RoaringBitmap>,
    regions: HashMap<String, RoaringBitmap>,
    sources: HashMap<String, RoaringBitmap>,
    owners: HashMap<u32, RoaringBitmap>,
    stages: HashMap<String, RoaringBitmap>,
    lifetime_value: Slices,
    created: Slices,
}

impl Floor {
    fn build(rows: &[Row]) -> Floor {
        let mut floor = Floor {
            all: (0..rows.len() as u32).collect(),
            tags: HashMap::new(),
            regions: HashMap::new(),
            sources: HashMap::new(),
            owners: HashMap::new(),
            stages: HashMap::new(),
            lifetime_value: Slices::build(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| (i as u32, r.lifetime_value)),
            ),
            created: Slices::build(rows.iter().enumerate().map(|(i, r)| (i as u32, r.created))),
        };
        for (i, row) in rows.iter().enumerate() {
            let i = i as u32;
            for tag in &row.tags {
                floor.tags.entry(tag.clone()).or_default().insert(i);
            }
            floor
                .regions
                .entry(row.region.clone())
                .or_default()
                .insert(i);
            floor
                .sources
                .entry(row.source.clone())
                .or_default()
                .insert(i);
            floor.owners.entry(row.owner).or_default().insert(i);
            floor.stages.entry(row.stage.clone()).or_default().insert(i);
        }
        floor
    }

    fn tag(&self, tag: &str) -> &RoaringBitmap {
        &self.tags[tag]
    }

    fn region(&self, region: &str) -> &RoaringBitmap {
        &self.regions[region]
    }

    fn source(&self, source: &str) -> &RoaringBitmap {
        &self.sources[source]
    }

    fn owner(&self, owner: u32) -> &RoaringBitmap {
        &self.owners[&owner]
    }

    fn stage(&self, stage: &str) -> &RoaringBitmap {
        &self.stages[stage]
    }
}

fn sqlite(rows: &[Row]) -> Connection {
    let mut conn = Connection::open_in_memory().expect("sqlite in memory");
    conn.execute_batch(
        "CREATE TABLE contacts (
             id INTEGER PRIMARY KEY,
             region TEXT NOT NULL,
             source TEXT NOT NULL,
             owner INTEGER NOT NULL,
             stage TEXT NOT NULL,
             lifetime_value INTEGER NOT NULL,
             created INTEGER NOT NULL
         );
         CREATE TABLE contact_tag (contact_id INTEGER NOT NULL, tag TEXT NOT NULL);",
    )
    .expect("schema");
    let txn = conn.transaction().expect("begin");
    {
        let mut contact = txn
            .prepare("INSERT INTO contacts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .expect("prepare");
        let mut tag = txn
            .prepare("INSERT INTO contact_tag VALUES (?1, ?2)")
            .expect("prepare");
        for (i, row) in rows.iter().enumerate() {
            contact
                .execute(rusqlite::params![
                    i as i64,
                    row.region,
                    row.source,
                    row.owner,
                    row.stage,
                    row.lifetime_value,
                    row.created
                ])
                .expect("insert contact");
            for t in &row.tags {
                tag.execute(rusqlite::params![i as i64, t])
                    .expect("insert tag");
            }
        }
    }
    txn.commit().expect("commit");
    conn.execute_batch(
        "CREATE INDEX contacts_region ON contacts (region);
         CREATE INDEX contacts_source ON contacts (source);
         CREATE INDEX contacts_owner ON contacts (owner);
         CREATE INDEX contacts_stage ON contacts (stage);
         CREATE INDEX contacts_lifetime_value ON contacts (lifetime_value);
         CREATE INDEX contacts_created ON contacts (created);
         CREATE INDEX contact_tag_tag ON contact_tag (tag);
         ANALYZE;",
    )
    .expect("indexes");
    conn
}

/// One query in the three forms.
struct Case {
    name: &'static str,
    query: &'static str,
    sql: String,
    floor: Box<dyn Fn(&Floor) -> RoaringBitmap>,
}

fn tagged(tag: &str) -> String {
    format!("id IN (SELECT contact_id FROM contact_tag WHERE tag = '{tag}')")
}

/// The query mix. `cutoff` is the first day inside `created within 365d`.
fn cases(cutoff: i64) -> Vec<Case> {
    vec![
        Case {
            name: "narrow_and_range_window",
            query: "tag:vip AND region = \"shanghai\" AND NOT stage:churned \
                    AND lifetime_value >= 1000 AND created within 365d",
            sql: format!(
                "SELECT count(*) FROM contacts WHERE {} AND region = 'shanghai' \
                 AND NOT stage = 'churned' AND lifetime_value >= 100000 AND created >= {cutoff}",
                tagged("vip")
            ),
            floor: Box::new(move |f| {
                let rows = f.region("shanghai") & f.tag("vip");
                let rows = f.lifetime_value.ge(100_000, &rows);
                let mut rows = f.created.ge(cutoff, &rows);
                rows -= f.stage("churned");
                rows
            }),
        },
        Case {
            name: "tag_or_and_owner",
            query: "(tag:vip OR tag:gold) AND owner = 12",
            sql: format!(
                "SELECT count(*) FROM contacts WHERE ({} OR {}) AND owner = 12",
                tagged("vip"),
                tagged("gold")
            ),
            floor: Box::new(|f| {
                let owner = f.owner(12);
                (owner & f.tag("vip")) | (owner & f.tag("gold"))
            }),
        },
        Case {
            name: "broad_not_or",
            query: "NOT tag:newsletter OR stage:active",
            sql: format!(
                "SELECT count(*) FROM contacts WHERE NOT {} OR stage = 'active'",
                tagged("newsletter")
            ),
            floor: Box::new(|f| (&f.all - f.tag("newsletter")) | f.stage("active")),
        },
        Case {
            name: "range_and_source",
            query: "lifetime_value between 500 and 5000 AND source = \"wechat\"",
            sql: "SELECT count(*) FROM contacts \
                  WHERE lifetime_value BETWEEN 50000 AND 500000 AND source = 'wechat'"
                .to_owned(),
            floor: Box::new(|f| f.lifetime_value.range(50_000, 500_000, f.source("wechat"))),
        },
        Case {
            name: "two_rare_tags",
            query: "tag:t20 AND tag:t30",
            sql: format!(
                "SELECT count(*) FROM contacts WHERE {} AND {}",
                tagged("t20"),
                tagged("t30")
            ),
            floor: Box::new(|f| f.tag("t20") & f.tag("t30")),
        },
        Case {
            name: "broad_not_stage",
            query: "NOT stage:prospect",
            sql: "SELECT count(*) FROM contacts WHERE NOT stage = 'prospect'".to_owned(),
            floor: Box::new(|f| &f.all - f.stage("prospect")),
        },
    ]
}

fn crmdb_count(read: &ReadTransaction, query: &Query) -> u64 {
    read.count(EntityKind::Contact, query).expect("count")
}

fn sqlite_count(conn: &Connection, sql: &str) -> u64 {
    let count: i64 = conn
        .prepare_cached(sql)
        .expect("prepare")
        .query_row([], |r| r.get(0))
        .expect("query");
    count as u64
}

/// The median of `runs` timed calls.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn segment_queries(c: &mut Criterion) {
    let generator = Generator::new(contact_count());
    let db = Builder::new()
        .clock(Arc::new(ManualClock::new(generator.now)))
        .in_memory()
        .expect("in-memory crmdb");
    let start = Instant::now();
    let summary = generator.load(&db, |_| {}).expect("load");
    println!(
        "loaded {} contacts, {} orders, {} activities into crmdb in {:.1} s",
        summary.contacts,
        summary.orders,
        summary.activities,
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let rows = rows(&generator);
    let floor = Floor::build(&rows);
    println!(
        "built the floor's bitmaps in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let conn = sqlite(&rows);
    println!(
        "loaded and indexed SQLite in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    drop(rows);

    let cutoff = generator.now.day() - 365;
    let cases = cases(cutoff);
    let read = db.begin_read().expect("begin read");
    let queries: Vec<Query> = cases
        .iter()
        .map(|case| Query::parse(case.query).expect("query parses"))
        .collect();

    let mut counts = Vec::new();
    for (case, query) in cases.iter().zip(&queries) {
        let crmdb = crmdb_count(&read, query);
        let floor = (case.floor)(&floor).len();
        let sqlite = sqlite_count(&conn, &case.sql);
        assert!(
            crmdb == floor && crmdb == sqlite,
            "{}: crmdb, floor and SQLite disagree (crmdb {crmdb}, floor {floor}, sqlite {sqlite})",
            case.name
        );
        counts.push(crmdb);
    }

    for (case, query) in cases.iter().zip(&queries) {
        let mut group = c.benchmark_group(case.name);
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
        group.bench_function("crmdb", |b| b.iter(|| crmdb_count(&read, query)));
        group.bench_function("floor", |b| b.iter(|| (case.floor)(&floor).len()));
        group.bench_function("sqlite", |b| b.iter(|| sqlite_count(&conn, &case.sql)));
        group.finish();
    }

    println!();
    println!(
        "{:<26} {:>9} {:>11} {:>11} {:>11} {:>12} {:>13}",
        "query", "count", "crmdb ms", "floor ms", "sqlite ms", "crmdb/floor", "sqlite/crmdb"
    );
    for ((case, query), count) in cases.iter().zip(&queries).zip(&counts) {
        let crmdb = median(31, || {
            black_box(crmdb_count(&read, query));
        });
        let floor_time = median(31, || {
            black_box((case.floor)(&floor).len());
        });
        let sqlite = median(5, || {
            black_box(sqlite_count(&conn, &case.sql));
        });
        println!(
            "{:<26} {:>9} {:>11.3} {:>11.3} {:>11.3} {:>12.2} {:>13.0}",
            case.name,
            count,
            millis(crmdb),
            millis(floor_time),
            millis(sqlite),
            crmdb.as_secs_f64() / floor_time.as_secs_f64(),
            sqlite.as_secs_f64() / crmdb.as_secs_f64()
        );
    }
    println!("targets: crmdb/floor <= 2, sqlite/crmdb >= 100");
}

criterion_group!(benches, segment_queries);
criterion_main!(benches);
