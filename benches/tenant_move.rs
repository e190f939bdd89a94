//! Moving a tenant under writers (`TenantMove`) against the offline alternative.
//!
//! A tenant of `CRMDB_BENCH_MOVE_CONTACTS` contacts (default 100 000, with their
//! orders and activities, from the demo generator) on a file, with two writer threads
//! committing one-record transactions throughout. Each iteration moves the tenant to a
//! new file: backup, two catch-ups, then the cutover; the writers move with it. The
//! next iteration moves the copy on. Measured, with the ratio printed:
//! - `tenant_move/cut_over`: the cutover, which is how long writers are held up;
//! - `tenant_move/offline_copy`: a backup of the same tenant, the least an offline move
//!   (stop writers, copy, reopen) holds writers up for.
//!
//! Also printed: batches applied per second while catching up, and the slowest write
//! the writers saw.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crmdb::demo::Generator;
use crmdb::{Builder, ContactId, Database, Error, TenantMove};
use parking_lot::RwLock;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tenant where it is now, the file it is in, and how many moves it has made.
struct Current {
    db: Database,
    path: PathBuf,
    moves: u64,
}

/// One writer: tag toggles on existing contacts, following the tenant when it moves,
/// until `stop`. Records its slowest write in microseconds; a write the cutover refuses
/// is retried on the new file, and the wait counts as its latency.
fn writer(current: &RwLock<Current>, me: u32, contacts: u32, stop: &AtomicBool, worst: &AtomicU64) {
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let id = ContactId::new((round * 7919 + me * 104_729) % contacts);
        let started = Instant::now();
        loop {
            let (db, moves) = {
                let now = current.read();
                (now.db.clone(), now.moves)
            };
            let result = db.write(|tx| {
                if round % 2 == 0 {
                    tx.add_tag(id, "moving")
                } else {
                    tx.remove_tag(id, "moving")
                }
            });
            match result {
                Ok(()) => break,
                Err(Error::Moved { .. }) => {
                    while current.read().moves == moves {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                Err(e) => panic!("writer {me}: {e}"),
            }
        }
        worst.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        round += 1;
    }
}

fn tenant_move(c: &mut Criterion) {
    let contacts = env("CRMDB_BENCH_MOVE_CONTACTS", 100_000) as u32;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("crmdb-bench-move-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).expect("scratch");
    let first = scratch.0.join("tenant-0.redb");
    let db = Database::create(&first).expect("create");
    let started = Instant::now();
    Generator::new(contacts)
        .load(&db, |_| {})
        .expect("demo load");
    println!(
        "loaded {contacts} contacts in {:.1} s ({:.0} MiB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&first).map_or(0, |m| m.len()) as f64 / f64::from(1 << 20)
    );
    let current = RwLock::new(Current {
        db,
        path: first,
        moves: 0,
    });
    let stop = AtomicBool::new(false);
    let worst = AtomicU64::new(0);
    let files = AtomicU64::new(1);
    let next_path = |dir: &Path| {
        dir.join(format!(
            "tenant-{}.redb",
            files.fetch_add(1, Ordering::Relaxed)
        ))
    };
    let mut applied = 0u64;
    let mut catching_up = Duration::ZERO;
    let mut cut_overs = Vec::new();
    let mut offline = Vec::new();

    std::thread::scope(|s| {
        for me in 0..2 {
            let (current, stop, worst) = (&current, &stop, &worst);
            s.spawn(move || writer(current, me, contacts, stop, worst));
        }
        let mut group = c.benchmark_group("tenant_move");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(5));
        group.bench_function("cut_over", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let source = current.read().db.clone();
                    let path = next_path(&scratch.0);
                    let mut moving =
                        TenantMove::start(&source, &path, &Builder::new()).expect("start");
                    let before = moving.applied();
                    let started = Instant::now();
                    std::thread::sleep(Duration::from_millis(20));
                    moving.catch_up().expect("catch up");
                    moving.catch_up().expect("catch up");
                    catching_up += started.elapsed();
                    applied += moving.applied() - before;
                    let started = Instant::now();
                    let target = moving.cut_over("the next file").expect("cut over");
                    let took = started.elapsed();
                    total += took;
                    cut_overs.push(took);
                    let old = {
                        let mut now = current.write();
                        let moves = now.moves + 1;
                        std::mem::replace(
                            &mut *now,
                            Current {
                                db: target,
                                path,
                                moves,
                            },
                        )
                    };
                    drop(source);
                    let _ = std::fs::remove_file(&old.path);
                }
                total
            });
        });
        group.bench_function("offline_copy", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let path = next_path(&scratch.0);
                    let started = Instant::now();
                    current.read().db.backup(&path).expect("backup");
                    let took = started.elapsed();
                    total += took;
                    offline.push(took);
                    let _ = std::fs::remove_file(&path);
                }
                total
            });
        });
        group.finish();
        stop.store(true, Ordering::Relaxed);
    });

    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let (cut, copy) = (median(&mut cut_overs), median(&mut offline));
    println!(
        "cutover median {:.2} ms over {} moves; offline copy median {:.1} ms: \
         the cutover holds writers up {:.3}x as long",
        cut.as_secs_f64() * 1e3,
        cut_overs.len(),
        copy.as_secs_f64() * 1e3,
        cut.as_secs_f64() / copy.as_secs_f64().max(1e-9)
    );
    println!(
        "catching up applied {applied} batches at {:.0} batches/s; slowest write {:.1} ms",
        applied as f64 / catching_up.as_secs_f64().max(1e-9),
        worst.load(Ordering::Relaxed) as f64 / 1e3
    );
}

criterion_group!(benches, tenant_move);
criterion_main!(benches);
