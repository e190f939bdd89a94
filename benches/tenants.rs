//! Many tenants under one memory budget (`TenantSet`).
//!
//! `CRMDB_BENCH_TENANTS` tenants (default 1 000) of `CRMDB_BENCH_TENANT_CONTACTS`
//! contacts each (default 1 000, with their orders and activities, from the demo
//! generator with a seed per tenant) in one directory, under a 512 MiB budget with at
//! most 64 open. Measured, with ratios printed:
//! - `tenants/cold_first_query`: the first query on a closed tenant (open + query);
//! - `tenants/hot_query` against `tenants/lone_query`: a query on an open, warmed
//!   tenant against the same query on the same file opened alone with default caches;
//! - `tenants/zipf_mix`: 1 000 random segment queries over tenants picked with a
//!   skewed (Zipf, s = 1.1) popularity, and the process's resident memory after them
//!   against the budget.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use crmdb::demo::{Generator, Rng};
use crmdb::{Database, EntityKind, Query, Snapshot, TenantOptions, TenantSet};

const BUDGET: usize = 512 << 20;
const MAX_OPEN: usize = 64;
const MIX: usize = 1000;

const QUERIES: [&str; 4] = [
    r#"region = "shanghai" AND stage:active"#,
    "tag:vip OR total_spent >= 500",
    "NOT stage:prospect AND created within 365d",
    r#"lifetime_value between 100 and 2000 AND source = "wechat""#,
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The resident set size of this process, where the system reports it.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn name(i: usize) -> String {
    format!("tenant-{i:05}")
}

fn count(db: &Database, query: &Query) -> u64 {
    db.read(|r| r.count(EntityKind::Contact, query))
        .expect("query")
}

fn tenants(c: &mut Criterion) {
    let tenants = env("CRMDB_BENCH_TENANTS", 1000);
    let contacts = env("CRMDB_BENCH_TENANT_CONTACTS", 1000) as u32;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("crmdb-bench-tenants-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let rss_before = rss_bytes();
    let options = TenantOptions {
        memory_budget: BUDGET,
        max_open: MAX_OPEN,
        ..TenantOptions::default()
    };
    let set = TenantSet::open(&scratch.0, options).expect("tenant set");
    let start = Instant::now();
    for i in 0..tenants {
        let db = set.create(&name(i)).expect("create");
        let generator = Generator {
            seed: 7 + i as u64,
            ..Generator::new(contacts)
        };
        generator.load(&db, |_| {}).expect("demo load");
    }
    let files: u64 = set
        .stats()
        .expect("stats")
        .iter()
        .map(|s| s.file_bytes)
        .sum();
    println!(
        "loaded {tenants} tenants of {contacts} contacts in {:.1} s ({:.0} MiB of files)",
        start.elapsed().as_secs_f64(),
        files as f64 / f64::from(1 << 20)
    );
    let queries: Vec<Query> = QUERIES
        .iter()
        .map(|q| Query::parse(q).expect("a valid query"))
        .collect();

    let mut group = c.benchmark_group("tenants");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3));

    // The first query on a closed tenant: the tenants in turn, each closed first.
    let mut next = 0usize;
    let mut cold = Vec::new();
    group.bench_function("cold_first_query", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % tenants;
                let tenant = name(next);
                set.close(&tenant).expect("close");
                tenant
            },
            |tenant| {
                let start = Instant::now();
                let db = set.get(&tenant).expect("open");
                black_box(count(&db, &queries[0]));
                cold.push(start.elapsed());
            },
            BatchSize::PerIteration,
        );
    });

    // One hot tenant in the set against the same file opened alone.
    let hot = set.get(&name(0)).expect("hot tenant");
    let copy = scratch.0.join("lone-copy.bin");
    std::fs::copy(scratch.0.join(format!("{}.redb", name(0))), &copy).expect("copy");
    let lone = Database::open(&copy).expect("lone database");
    for q in &queries {
        assert_eq!(count(&hot, q), count(&lone, q), "the same answers");
    }
    let mut i = 0usize;
    group.bench_function("hot_query", |b| {
        b.iter(|| {
            i += 1;
            black_box(count(&hot, &queries[i % queries.len()]))
        });
    });
    group.bench_function("lone_query", |b| {
        b.iter(|| {
            i += 1;
            black_box(count(&lone, &queries[i % queries.len()]))
        });
    });
    drop(hot);

    // Skewed traffic over every tenant.
    let mut rng = Rng::new(99);
    let mut busy = 0u64;
    group.bench_function("zipf_mix", |b| {
        b.iter(|| {
            for _ in 0..MIX {
                let tenant = name(rng.zipf(tenants, 1.1));
                match set.get(&tenant) {
                    Ok(db) => {
                        let q = &queries[rng.below(queries.len() as u64) as usize];
                        black_box(count(&db, q));
                    }
                    Err(crmdb::Error::TenantsBusy { .. }) => busy += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        });
    });
    group.finish();

    // The same medians for the summary, timed by hand on fresh rounds.
    let time = |f: &mut dyn FnMut()| {
        let rounds = 200;
        let start = Instant::now();
        for _ in 0..rounds {
            f();
        }
        start.elapsed() / rounds
    };
    let hot = set.get(&name(0)).expect("hot tenant");
    let mut k = 0usize;
    let hot_time = time(&mut || {
        k += 1;
        black_box(count(&hot, &queries[k % queries.len()]));
    });
    let lone_time = time(&mut || {
        k += 1;
        black_box(count(&lone, &queries[k % queries.len()]));
    });
    cold.sort_unstable();
    let median = cold.get(cold.len() / 2).copied().unwrap_or_default();
    let p99 = cold.get(cold.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "cold first query: median {:.2} ms, p99 {:.2} ms over {} opens (target <= 20 ms)",
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        cold.len()
    );
    println!(
        "hot tenant query {:.1} us, lone database {:.1} us, ratio {:.2} (target <= 1.20)",
        hot_time.as_secs_f64() * 1e6,
        lone_time.as_secs_f64() * 1e6,
        hot_time.as_secs_f64() / lone_time.as_secs_f64()
    );
    println!(
        "open tenants {}, bitmap cache {:.1} of {:.0} MiB, page cache {:.1} MiB a tenant; \
         {busy} picks refused as busy",
        set.open_count(),
        set.bitmap_cache_bytes() as f64 / f64::from(1 << 20),
        set.bitmap_cache_share() as f64 / f64::from(1 << 20),
        set.page_cache_share() as f64 / f64::from(1 << 20),
    );
    match (rss_before, rss_bytes()) {
        (Some(before), Some(after)) => println!(
            "resident memory {:.0} MiB after the mix (budget {:.0} MiB; {:.0} MiB before the \
             set was opened)",
            after as f64 / f64::from(1 << 20),
            BUDGET as f64 / f64::from(1 << 20),
            before as f64 / f64::from(1 << 20)
        ),
        _ => println!("resident memory: not reported by this system"),
    }
}

criterion_group!(benches, tenants);
criterion_main!(benches);
