//! Analytics on the generated data set: funnel, owner ranking and RFM refresh.
//! Size from `CRMDB_BENCH_CONTACTS` (default 1 000 000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crmdb::analytics::{self, FunnelRequest, OwnerSort};
use crmdb::{Builder, ManualClock};

fn contacts() -> u32 {
    std::env::var("CRMDB_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn bench(c: &mut Criterion) {
    let generator = crmdb::demo::Generator::new(contacts());
    let db = Builder::new()
        .clock(Arc::new(ManualClock::new(generator.now)))
        .in_memory()
        .expect("in-memory database");
    let started = Instant::now();
    let summary = generator.load(&db, |_| {}).expect("demo data loads");
    println!("loaded {summary:?} in {:.1?}", started.elapsed());
    let from = generator.now.plus_days(-365);
    let to = generator.now;
    let request = FunnelRequest {
        pipeline: "default".into(),
        from,
        to,
        segment: None,
    };

    let mut group = c.benchmark_group("analytics");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("funnel_365d", |b| {
        b.iter(|| db.read(|r| analytics::funnel(r, &request)).expect("funnel"))
    });
    group.bench_function("owner_ranking_365d", |b| {
        b.iter(|| {
            db.read(|r| analytics::owner_ranking(r, from, to, OwnerSort::WonAmount))
                .expect("ranking")
        })
    });
    group.bench_function("rfm_refresh", |b| {
        b.iter(|| {
            // Measured without committing, so every iteration refreshes the same state.
            let mut tx = db.begin_write().expect("write transaction");
            let state = tx.refresh_rfm(generator.now).expect("refresh");
            tx.abort().expect("abort");
            state
        })
    });
    group.bench_function("product_sales_365d", |b| {
        b.iter(|| {
            db.read(|r| analytics::product_sales(r, from, to))
                .expect("product sales")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
