//! The write path and point reads, each measured beside plain redb doing the same raw
//! work on the same encoded bytes, and beside SQLite doing the same CRM work, in the
//! same run:
//!
//! - bulk load of generated contacts with every index, against plain redb inserting the
//!   same encoded rows in one transaction (target: at least half the plain redb rate)
//!   and against SQLite loading the same rows and then building its indexes, in memory
//!   and on a file in WAL mode (target: faster than SQLite);
//! - point read of a decoded contact on a reused read transaction, against a plain redb
//!   get of the same bytes (target: at least 1M reads/s);
//! - a one-record write transaction (update the region, tag, move the stage, commit),
//!   against a plain redb single-row insert and commit (target: within 3×) and SQLite
//!   in memory making the same change;
//! - the demo set (contacts with their orders, activities and deals) loaded onto a
//!   durable file, one timed run, and the first segment query after reopening that file
//!   (target: at most 20 ms at 1M contacts), measured by criterion on fresh opens.
//!
//! Contacts come from the shared demo generator with `owner` and `account` cleared, so
//! that no other records are needed. Their `updated_at` is set to the generator's "now"
//! and the database clock stopped there, so crmdb stores exactly the bytes plain redb
//! gets. After each comparison the bench times both sides once more and prints the rates
//! and their ratio.
//!
//! `CRMDB_BENCH_CONTACTS` sets the number of contacts (default 1 000 000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use crmdb::demo::{Generator, region_name};
use crmdb::{Contact, ContactId, Database, EntityKind, Query, Snapshot};
use redb::ReadableDatabase;

#[path = "support/sqlite_contacts.rs"]
mod sqlite_contacts;
#[path = "support/write_path.rs"]
mod write_path;

use write_path::{DEFAULT_BATCH, Data, ROWS, one_record_txn};

fn bulk_load(c: &mut Criterion, data: &Data) {
    let mut group = c.benchmark_group("bulk_load");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(data.rows()));
    group.bench_function("crmdb", |b| {
        b.iter_batched(
            || (data.empty_crmdb(), data.contacts.clone()),
            |(db, contacts)| {
                data.load_crmdb(&db, contacts, DEFAULT_BATCH);
                db
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("redb", |b| {
        b.iter_batched(
            || data.empty_redb(),
            |db| {
                data.load_redb(&db);
                db
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("sqlite_memory", |b| {
        b.iter_batched(
            sqlite_contacts::in_memory,
            |mut conn| {
                sqlite_contacts::bulk_load(&mut conn, &data.contacts);
                conn
            },
            BatchSize::PerIteration,
        );
    });
    let scratch = write_path::Scratch::new("bulk");
    let mut files = 0;
    group.bench_function("sqlite_file", |b| {
        b.iter_batched(
            || {
                files += 1;
                sqlite_contacts::file_for_load(&scratch.0.join(format!("load{files}.sqlite")))
            },
            |mut conn| {
                sqlite_contacts::bulk_load(&mut conn, &data.contacts);
                conn
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let crmdb = {
        let (db, contacts) = (data.empty_crmdb(), data.contacts.clone());
        let start = Instant::now();
        data.load_crmdb(&db, contacts, DEFAULT_BATCH);
        start.elapsed()
    };
    let redb = {
        let db = data.empty_redb();
        let start = Instant::now();
        data.load_redb(&db);
        start.elapsed()
    };
    let sqlite_memory = {
        let mut conn = sqlite_contacts::in_memory();
        let start = Instant::now();
        sqlite_contacts::bulk_load(&mut conn, &data.contacts);
        start.elapsed()
    };
    let sqlite_file = {
        let mut conn = sqlite_contacts::file_for_load(&scratch.0.join("timed.sqlite"));
        let start = Instant::now();
        sqlite_contacts::bulk_load(&mut conn, &data.contacts);
        start.elapsed()
    };
    let rate = |d: Duration| data.rows() as f64 / d.as_secs_f64();
    println!(
        "bulk load: crmdb {:.0} rows/s, redb {:.0} rows/s, ratio {:.2} (target >= 0.50)",
        rate(crmdb),
        rate(redb),
        rate(crmdb) / rate(redb)
    );
    println!(
        "bulk load: sqlite load + index build {:.0} rows/s in memory, {:.0} rows/s on a WAL file; \
         crmdb/sqlite {:.2} and {:.2} (target > 1.00)",
        rate(sqlite_memory),
        rate(sqlite_file),
        rate(crmdb) / rate(sqlite_memory),
        rate(crmdb) / rate(sqlite_file)
    );
    // Batch sizes: one timed run each, beside the plain redb run above.
    let mut sizes = vec![10_000, DEFAULT_BATCH, 250_000, data.contacts.len()];
    sizes.retain(|&size| size <= data.contacts.len());
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let (db, contacts) = (data.empty_crmdb(), data.contacts.clone());
        let start = Instant::now();
        data.load_crmdb(&db, contacts, size);
        let elapsed = start.elapsed();
        println!(
            "bulk load batch {size}: crmdb {:.0} rows/s, ratio to redb {:.2}",
            rate(elapsed),
            rate(elapsed) / rate(redb)
        );
    }
    // Records prepared on worker threads through channels vs the one-by-one loop
    // (threads 0), one timed run each.
    let mut one_by_one = None;
    for threads in [0, 1, 2] {
        let (db, contacts) = (data.empty_crmdb(), data.contacts.clone());
        let start = Instant::now();
        data.load_crmdb_with(&db, contacts, DEFAULT_BATCH, Some(threads));
        let elapsed = start.elapsed();
        let baseline = *one_by_one.get_or_insert(elapsed);
        println!(
            "bulk load threads {threads}: crmdb {:.0} rows/s, {:.2}x the one-by-one loop, ratio to redb {:.2}",
            rate(elapsed),
            rate(elapsed) / rate(baseline),
            rate(elapsed) / rate(redb)
        );
    }
}

fn point_read(c: &mut Criterion, data: &Data) {
    let db = data.empty_crmdb();
    data.load_crmdb(&db, data.contacts.clone(), DEFAULT_BATCH);
    let plain = data.empty_redb();
    data.load_redb(&plain);
    let rows = data.random_rows(1 << 16);
    let mask = rows.len() - 1;

    let read = db.begin_read().expect("begin read");
    let plain_read = plain.begin_read().expect("begin read");
    let table = plain_read.open_table(ROWS).expect("table");
    // The same record either way.
    let row = rows[0];
    assert_eq!(
        read.get(ContactId::new(row)).expect("get"),
        crmdb::raw::decode_record::<Contact>(
            table.get(row).expect("get").expect("present").value()
        )
        .expect("decode")
    );

    let crmdb_get = |i: usize| read.get(ContactId::new(rows[i & mask])).expect("get");
    let redb_get = |i: usize| {
        let value = table.get(rows[i & mask]).expect("get").expect("present");
        black_box(value.value().len())
    };
    let redb_decode = |i: usize| {
        let value = table.get(rows[i & mask]).expect("get").expect("present");
        crmdb::raw::decode_record::<Contact>(value.value()).expect("decode")
    };

    let mut group = c.benchmark_group("point_read");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("crmdb", |b| {
        b.iter(|| {
            i += 1;
            crmdb_get(i)
        });
    });
    group.bench_function("redb", |b| {
        b.iter(|| {
            i += 1;
            redb_get(i)
        });
    });
    group.bench_function("redb_and_decode", |b| {
        b.iter(|| {
            i += 1;
            redb_decode(i)
        });
    });
    group.finish();

    const READS: usize = 500_000;
    let time = |f: &dyn Fn(usize)| {
        let start = Instant::now();
        for i in 0..READS {
            f(i);
        }
        READS as f64 / start.elapsed().as_secs_f64()
    };
    let crmdb = time(&|i| {
        black_box(crmdb_get(i));
    });
    let redb = time(&|i| {
        black_box(redb_get(i));
    });
    let decoded = time(&|i| {
        black_box(redb_decode(i));
    });
    println!(
        "point read: crmdb {crmdb:.0} reads/s (target >= 1000000), redb {redb:.0} reads/s, \
         redb+decode {decoded:.0} reads/s, crmdb/redb ratio {:.2}",
        crmdb / redb
    );
}

fn one_row_insert(db: &redb::Database, row: u32, bytes: &[u8]) {
    let txn = db.begin_write().expect("begin");
    {
        let mut table = txn.open_table(ROWS).expect("table");
        table.insert(row, bytes).expect("insert");
    }
    txn.commit().expect("commit");
}

fn write_txn(c: &mut Criterion, data: &Data) {
    let db = data.empty_crmdb();
    data.load_crmdb(&db, data.contacts.clone(), DEFAULT_BATCH);
    let plain = data.empty_redb();
    data.load_redb(&plain);
    let rows = data.random_rows(1 << 16);
    let mask = rows.len() - 1;

    let mut sqlite = sqlite_contacts::in_memory();
    sqlite_contacts::bulk_load(&mut sqlite, &data.contacts);
    let sqlite = std::cell::RefCell::new(sqlite);

    let crmdb_txn = |i: usize| one_record_txn(&db, ContactId::new(rows[i & mask]), i);
    let redb_txn = |i: usize| {
        let row = rows[i & mask];
        one_row_insert(&plain, row, &data.encoded[row as usize]);
    };
    let sqlite_txn = |i: usize| {
        let row = rows[i & mask];
        sqlite_contacts::one_record(
            &mut sqlite.borrow_mut(),
            i64::from(row),
            region_name(i),
            write_path::BENCH_TAG,
        );
    };

    let mut group = c.benchmark_group("one_record_txn");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("crmdb", |b| {
        b.iter(|| {
            i += 1;
            crmdb_txn(i);
        });
    });
    group.bench_function("redb", |b| {
        b.iter(|| {
            i += 1;
            redb_txn(i);
        });
    });
    group.bench_function("sqlite", |b| {
        b.iter(|| {
            i += 1;
            sqlite_txn(i);
        });
    });
    group.finish();

    const TXNS: usize = 5_000;
    let time = |f: &dyn Fn(usize)| {
        let start = Instant::now();
        for i in 0..TXNS {
            f(i);
        }
        start.elapsed() / TXNS as u32
    };
    let crmdb = time(&crmdb_txn);
    let redb = time(&redb_txn);
    let sqlite = time(&sqlite_txn);
    println!(
        "one-record txn: crmdb {:.1} us, redb {:.1} us, ratio {:.2} (target <= 3.00); \
         sqlite {:.1} us, crmdb/sqlite {:.2}",
        crmdb.as_secs_f64() * 1e6,
        redb.as_secs_f64() * 1e6,
        crmdb.as_secs_f64() / redb.as_secs_f64(),
        sqlite.as_secs_f64() * 1e6,
        crmdb.as_secs_f64() / sqlite.as_secs_f64()
    );
}

/// The first query after reopening: a narrow segment over indexes no earlier query of
/// the process has read.
const FIRST_QUERY: &str = "region = \"shanghai\" AND stage:active AND total_spent >= 500";

/// The demo set onto a durable file (one timed run), then the first query after
/// reopening it.
fn demo_set(c: &mut Criterion, contacts: u32) {
    let scratch = write_path::Scratch::new("demo");
    let path = scratch.0.join("demo.redb");
    let generator = Generator::new(contacts);
    let start = Instant::now();
    let summary = {
        let db = Database::create(&path).expect("demo file");
        generator.load(&db, |_| {}).expect("demo load")
    };
    let load = start.elapsed();
    println!(
        "demo set load: {} contacts, {} orders, {} activities, {} deals in {:.1} s ({:.0} records/s)",
        summary.contacts,
        summary.orders,
        summary.activities,
        summary.deals,
        load.as_secs_f64(),
        (summary.contacts + summary.orders + summary.activities + summary.deals) as f64
            / load.as_secs_f64()
    );
    let query = Query::parse(FIRST_QUERY).expect("a valid query");
    let first = |db: &Database| {
        db.read(|r| r.count(EntityKind::Contact, &query))
            .expect("first query")
    };

    let mut group = c.benchmark_group("reopen");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("first_query", |b| {
        b.iter_batched(
            || Database::open(&path).expect("reopen"),
            |db| {
                first(&db);
                db
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let db = Database::open(&path).expect("reopen");
    let start = Instant::now();
    let count = first(&db);
    let cold = start.elapsed();
    let start = Instant::now();
    first(&db);
    let warm = start.elapsed();
    println!(
        "first query after reopen ({count} contacts): {:.2} ms (target <= 20 ms at 1M), then {:.3} ms",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
}

fn writes(c: &mut Criterion) {
    let data = Data::new();
    bulk_load(c, &data);
    point_read(c, &data);
    write_txn(c, &data);
    demo_set(c, write_path::contact_count());
}

criterion_group!(benches, writes);
criterion_main!(benches);
