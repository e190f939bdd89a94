//! What the change feed and watched segments cost, each measured against the same
//! build without them in the same run:
//!
//! - a one-record write transaction with the change log on, against the log off
//!   (target: the log adds at most 25 %);
//! - the same transaction with 10 and 100 watched segments (narrow, broad, range,
//!   time-window and combined queries, no two alike), against none (target: 100
//!   watched at most 2×);
//! - bulk load with the log on, against the log off (target: at least 0.8×);
//! - reading the feed back, in events per second (target: at least 500 000/s);
//! - a time-window refresh of 10 watched segments over every contact.
//!
//! `CRMDB_BENCH_CONTACTS` sets the number of contacts (default 1 000 000).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crmdb::demo::{region_name, tag_name};
use crmdb::{ContactId, Database, EntityKind, Query, SavedSegment, Snapshot};

#[path = "support/write_path.rs"]
mod write_path;

use write_path::{DEFAULT_BATCH, Data, one_record_txn};

const STAGES: [&str; 6] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
];

/// The query of watched segment `i`: six shapes in turn (narrow tag and region, broad
/// negated stage, numeric range, time window, tag combination, figures and stage), each
/// with its own values, so that no two segments are the same query.
fn watched_query(i: usize) -> String {
    let n = i / 6;
    match i % 6 {
        0 => format!("tag:vip AND region = \"{}\"", region_name(n)),
        1 => format!("NOT stage:{}", STAGES[n % STAGES.len()]),
        2 => format!(
            "lifetime_value between {} and {}",
            100 * (n + 1),
            100 * (n + 1) + 5000
        ),
        3 => format!("created within {}d", 30 + 10 * n),
        4 => format!(
            "(tag:{} OR tag:gold) AND NOT tag:newsletter",
            tag_name(n + 3)
        ),
        _ => format!(
            "order_count >= {} AND stage:{}",
            1 + n % 4,
            STAGES[n % STAGES.len()]
        ),
    }
}

fn loaded(data: &Data, log: bool, watched: usize) -> Database {
    let db = data.builder().change_log(log).in_memory().expect("crmdb");
    data.load_crmdb(&db, data.contacts.clone(), DEFAULT_BATCH);
    watch(&db, watched);
    db
}

fn watch(db: &Database, count: usize) {
    db.write(|tx| -> crmdb::Result<()> {
        for i in 0..count {
            let name = format!("w{i}");
            let query = Query::parse(&watched_query(i))?;
            let kind = EntityKind::Contact;
            tx.save_segment(&name, SavedSegment::Dynamic { kind, query })?;
            tx.watch(&name)?;
        }
        Ok(())
    })
    .expect("watch segments");
}

/// Mean time of `count` one-record transactions on `db`.
fn time_txns(db: &Database, rows: &[u32], count: usize) -> Duration {
    let mask = rows.len() - 1;
    let start = Instant::now();
    for i in 0..count {
        one_record_txn(db, ContactId::new(rows[i & mask]), i);
    }
    start.elapsed() / count as u32
}

fn one_record(c: &mut Criterion, data: &Data) {
    let rows = data.random_rows(1 << 16);
    let mask = rows.len() - 1;
    let variants = [
        ("log_off", loaded(data, false, 0)),
        ("log_on", loaded(data, true, 0)),
        ("watched_10", loaded(data, true, 10)),
        ("watched_100", loaded(data, true, 100)),
    ];
    // The one-record batches are read back below: note where the bulk load ended.
    let loaded_at = variants[1].1.read(|r| r.sequence()).expect("sequence");
    let mut group = c.benchmark_group("feed_one_record_txn");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (name, db) in &variants {
        let mut i = 0;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i += 1;
                one_record_txn(db, ContactId::new(rows[i & mask]), i);
            });
        });
    }
    group.finish();

    const TXNS: usize = 3_000;
    let times: Vec<Duration> = variants
        .iter()
        .map(|(_, db)| time_txns(db, &rows, TXNS))
        .collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "one-record txn: log off {:.1} us, log on {:.1} us, ratio {:.2} (target <= 1.25)",
        us(times[0]),
        us(times[1]),
        ratio(times[1], times[0])
    );
    println!(
        "one-record txn, log on: 10 watched {:.1} us (ratio {:.2}), 100 watched {:.1} us \
         (ratio {:.2}, target <= 2.00) to none",
        us(times[2]),
        ratio(times[2], times[1]),
        us(times[3]),
        ratio(times[3], times[1])
    );

    // Reading back what the one-record transactions wrote.
    let db = &variants[1].1;
    let (events, elapsed) = read_all(db, loaded_at);
    println!(
        "feed read, one-record batches: {events} events in {:.1} ms, {:.0} events/s \
         (target >= 500000)",
        elapsed.as_secs_f64() * 1e3,
        events as f64 / elapsed.as_secs_f64()
    );
}

/// Reads every batch after `after` in pages of 1000; returns the events and the time.
fn read_all(db: &Database, after: u64) -> (usize, Duration) {
    let start = Instant::now();
    let mut position = after;
    let mut events = 0;
    loop {
        let batches = db.changes(position, 1000).expect("read the feed");
        let Some(last) = batches.last() else { break };
        position = last.sequence;
        events += batches.iter().map(|b| b.events.len()).sum::<usize>();
    }
    (events, start.elapsed())
}

fn bulk(data: &Data) {
    let time_load = |log: bool| {
        let db = data.builder().change_log(log).in_memory().expect("crmdb");
        let start = Instant::now();
        data.load_crmdb(&db, data.contacts.clone(), DEFAULT_BATCH);
        (start.elapsed(), db)
    };
    // Alternate, and keep the faster of two runs each, against machine noise.
    let (off_a, _) = time_load(false);
    let (on_a, _) = time_load(true);
    let (off_b, _) = time_load(false);
    let (on_b, db) = time_load(true);
    let (off, on) = (off_a.min(off_b), on_a.min(on_b));
    let rate = |d: Duration| data.rows() as f64 / d.as_secs_f64();
    println!(
        "bulk load: log off {:.0} rows/s, log on {:.0} rows/s, ratio {:.2} (target >= 0.80)",
        rate(off),
        rate(on),
        rate(on) / rate(off)
    );
    let (events, elapsed) = read_all(&db, 0);
    println!(
        "feed read, bulk-load batches: {events} events in {:.1} ms, {:.0} events/s \
         (target >= 500000)",
        elapsed.as_secs_f64() * 1e3,
        events as f64 / elapsed.as_secs_f64()
    );
}

fn refresh(data: &Data) {
    let db = loaded(data, true, 10);
    let mut times = Vec::new();
    for days in [31, 62] {
        let now = data.generator.now.plus_days(days);
        let start = Instant::now();
        let refreshed = db.write(|tx| tx.refresh_watched(now)).expect("refresh");
        times.push(start.elapsed());
        let left: u64 = refreshed.iter().map(|r| r.left).sum();
        println!(
            "time-window refresh, 10 watched over {} contacts, now +{days}d: {:.1} ms, {left} left",
            data.rows(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn feed(c: &mut Criterion) {
    let data = Data::new();
    one_record(c, &data);
    bulk(&data);
    refresh(&data);
}

criterion_group!(benches, feed);
criterion_main!(benches);
