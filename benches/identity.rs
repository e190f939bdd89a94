//! Duplicate candidates on the demo data with planted duplicates, against the query a
//! hand-written CRM runs on SQLite. Size from `CRMDB_BENCH_CONTACTS` (default
//! 1 000 000 contacts, with one planted duplicate per 100 contacts).
//!
//! - `identity/duplicate_candidates`: blocking, scoring and ranking every live
//!   contact with the default options;
//! - `identity/sqlite_exact_keys`: the SQLite alternative, contacts grouped by
//!   lowercased trimmed email and by phone digits (`GROUP BY … HAVING count(*) > 1`,
//!   each over its own index), which finds only exact matches.
//!
//! Printed: the ratio of the two, and the recall of each against the planted truth.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crmdb::demo::Generator;
use crmdb::identity::{DuplicateOptions, duplicate_candidates};
use crmdb::{Contact, Database, EntityKind, RecordId, Snapshot};
use rusqlite::Connection;

fn contacts() -> u32 {
    std::env::var("CRMDB_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The contact table with the two normalised keys as indexed columns, as an
/// application would keep them.
fn sqlite(db: &Database) -> Connection {
    let conn = Connection::open_in_memory().expect("sqlite");
    conn.execute_batch(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email_key TEXT,
         phone_key TEXT);",
    )
    .expect("schema");
    let rows = db.read(|r| r.records::<Contact>()).expect("contacts");
    let tx = conn.unchecked_transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare("INSERT INTO contacts VALUES (?1, ?2, lower(trim(?3)), ?4)")
            .expect("insert");
        for (id, c) in &rows {
            let digits: Option<String> = c.phone.as_ref().map(|p| {
                let d: String = p.chars().filter(char::is_ascii_digit).collect();
                d.trim_start_matches("86").to_owned()
            });
            insert
                .execute(rusqlite::params![id.row(), c.name, c.email, digits])
                .expect("row");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch(
        "CREATE INDEX contacts_email ON contacts (email_key);
         CREATE INDEX contacts_phone ON contacts (phone_key);",
    )
    .expect("indexes");
    conn
}

/// Pairs sharing an exact key, as SQLite finds them.
fn sqlite_pairs(conn: &Connection) -> HashSet<(u32, u32)> {
    let mut pairs = HashSet::new();
    for column in ["email_key", "phone_key"] {
        let sql = format!(
            "SELECT group_concat(id) FROM contacts WHERE {column} IS NOT NULL
             GROUP BY {column} HAVING count(*) > 1"
        );
        let mut statement = conn.prepare(&sql).expect("query");
        let groups = statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("groups");
        for group in groups {
            let ids: Vec<u32> = group
                .expect("group")
                .split(',')
                .map(|id| id.parse().expect("id"))
                .collect();
            for (i, a) in ids.iter().enumerate() {
                for b in &ids[i + 1..] {
                    pairs.insert((*a.min(b), *a.max(b)));
                }
            }
        }
    }
    pairs
}

fn bench(c: &mut Criterion) {
    let generator = Generator::new(contacts());
    let db = Database::in_memory().expect("in-memory database");
    let started = Instant::now();
    generator.load(&db, |_| {}).expect("demo data loads");
    let planted = generator
        .plant_duplicates(&db, generator.contacts / 100)
        .expect("planted");
    println!(
        "loaded {} contacts and planted {} duplicates in {:.1?}",
        generator.contacts,
        planted.len(),
        started.elapsed()
    );
    let truth: HashSet<(u32, u32)> = planted
        .iter()
        .map(|p| (p.original.row(), p.copy.row()))
        .collect();
    let options = DuplicateOptions::default();
    let conn = sqlite(&db);
    let recall = |found: &HashSet<(u32, u32)>| {
        found.intersection(&truth).count() as f64 / truth.len() as f64
    };

    let mut group = c.benchmark_group("identity");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut ours = Duration::ZERO;
    let mut found = HashSet::new();
    let mut compared = (0, 0);
    group.bench_function("duplicate_candidates", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                let report = db
                    .read(|r| duplicate_candidates(r, EntityKind::Contact, &options))
                    .expect("candidates");
                found = report.candidates.iter().map(|c| (c.a, c.b)).collect();
                compared = (report.compared, report.oversized_blocks);
            }
            let elapsed = started.elapsed();
            ours = elapsed / iterations as u32;
            elapsed
        })
    });
    let mut theirs = Duration::ZERO;
    let mut exact = HashSet::new();
    group.bench_function("sqlite_exact_keys", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                exact = sqlite_pairs(&conn);
            }
            let elapsed = started.elapsed();
            theirs = elapsed / iterations as u32;
            elapsed
        })
    });
    group.finish();
    println!(
        "duplicate candidates {ours:.2?} (recall {:.3}, {} candidates, {} pairs compared, \
         {} oversized blocks), SQLite exact keys {theirs:.2?} (recall {:.3}); \
         crmdb / SQLite = {:.2}",
        recall(&found),
        found.len(),
        compared.0,
        compared.1,
        recall(&exact),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
