//! Scoped segment queries against unscoped ones on the demo data set, in the same run:
//!
//! - **unscoped**: `count` on a reused read transaction (warm bitmap cache);
//! - **scoped, warm**: `count` on a reused scoped read: the query evaluated on the full
//!   indexes, then the length of its intersection with the visible rows (worked out
//!   on the first query and kept);
//! - **scoped, fresh**: `read_as` and one `count`, every time: the visible contacts
//!   worked out from the owner and share bitmaps, then the same.
//!
//! Principals: a sales rep (owner 3), a manager (owner 0, with owners 1–9 reporting to
//! them), and a team. Counts are checked against the unscoped ids narrowed to the visible
//! rows. Target: scoped within 1.2× of unscoped. After criterion's measurements the bench
//! prints a table of medians and ratios timed in the same run.
//!
//! `CRMDB_BENCH_CONTACTS` sets the number of contacts (default 1 000 000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use crmdb::demo::Generator;
use crmdb::{Database, EntityKind, OwnerId, Principal, Query, Snapshot};

fn contact_count() -> u32 {
    std::env::var("CRMDB_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

const QUERIES: [(&str, &str); 5] = [
    (
        "narrow",
        "tag:vip AND region = \"shanghai\" AND lifetime_value >= 1000",
    ),
    (
        "window",
        "tag:newsletter AND last_activity within 90d AND unsubscribed = false",
    ),
    ("range", "lifetime_value between 100 and 5000"),
    (
        "broad_or",
        "tag:vip OR tag:newsletter OR region = \"beijing\"",
    ),
    ("not", "NOT stage:churned AND NOT tag:t01"),
];

fn principals(team: String) -> Vec<(&'static str, Principal)> {
    vec![
        ("rep", Principal::owner(OwnerId::new(3))),
        ("manager", Principal::manager(OwnerId::new(0))),
        ("team", Principal::team(team)),
    ]
}

fn setup() -> Database {
    let db = Database::in_memory().expect("database");
    Generator::new(contact_count())
        .load(&db, |_| {})
        .expect("demo data");
    db.write(|tx| -> crmdb::Result<()> {
        for report in 1..10 {
            tx.set_manager(OwnerId::new(report), Some(OwnerId::new(0)))?;
        }
        Ok(())
    })
    .expect("reporting lines");
    db
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn bench(c: &mut Criterion) {
    let db = setup();
    let queries: Vec<(&str, Query)> = QUERIES
        .iter()
        .map(|(name, text)| (*name, Query::parse(text).expect("query parses")))
        .collect();
    let plain = db.begin_read().expect("read");
    let team = plain
        .records::<crmdb::Owner>()
        .expect("owners")
        .into_iter()
        .find_map(|(_, o)| o.team)
        .expect("a team");
    let principals = principals(team);

    // The answers agree before anything is timed.
    for (who, principal) in &principals {
        db.read_as(principal, |r| {
            let seen = r.visible(EntityKind::Contact)?;
            for (name, query) in &queries {
                let all = plain.ids(EntityKind::Contact, query)?;
                assert_eq!(
                    r.count(EntityKind::Contact, query)?,
                    (&all & &seen).len(),
                    "{who} {name}"
                );
            }
            Ok(())
        })
        .expect("scoped counts agree");
    }

    let mut group = c.benchmark_group("access");
    group.sampling_mode(SamplingMode::Flat);
    for (name, query) in &queries {
        group.bench_function(format!("{name}/unscoped"), |b| {
            b.iter(|| black_box(plain.count(EntityKind::Contact, query).expect("count")))
        });
        for (who, principal) in &principals {
            let scoped = crmdb::ScopedRead::new(db.begin_read().expect("read"), principal.clone())
                .expect("scope");
            group.bench_function(format!("{name}/{who}/warm"), |b| {
                b.iter(|| black_box(scoped.count(EntityKind::Contact, query).expect("count")))
            });
            group.bench_function(format!("{name}/{who}/fresh"), |b| {
                b.iter(|| {
                    black_box(
                        db.read_as(principal, |r| r.count(EntityKind::Contact, query))
                            .expect("count"),
                    )
                })
            });
        }
    }
    group.finish();

    println!(
        "\n{:<10} {:<8} {:>12} {:>12} {:>12} {:>8} {:>8} {:>9}",
        "query", "who", "unscoped", "warm", "fresh", "warm×", "fresh×", "visible"
    );
    let runs = 31;
    for (name, query) in &queries {
        let unscoped = time(runs, || {
            black_box(plain.count(EntityKind::Contact, query).expect("count"));
        });
        for (who, principal) in &principals {
            let scoped = crmdb::ScopedRead::new(db.begin_read().expect("read"), principal.clone())
                .expect("scope");
            let visible = scoped.visible(EntityKind::Contact).expect("visible").len();
            let warm = time(runs, || {
                black_box(scoped.count(EntityKind::Contact, query).expect("count"));
            });
            let fresh = time(runs, || {
                black_box(
                    db.read_as(principal, |r| r.count(EntityKind::Contact, query))
                        .expect("count"),
                );
            });
            println!(
                "{name:<10} {who:<8} {:>12.1?} {:>12.1?} {:>12.1?} {:>8.2} {:>8.2} {visible:>9}",
                unscoped,
                warm,
                fresh,
                warm.as_secs_f64() / unscoped.as_secs_f64(),
                fresh.as_secs_f64() / unscoped.as_secs_f64(),
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
