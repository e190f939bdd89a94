//! Concurrent durable writers on a file: 1, 8 and 32 threads, each inserting contacts
//! (with their tags and every index) one durable write at a time, in three ways in the
//! same run:
//!
//! - **grouped**: crmdb's `Database::write_grouped`, concurrent writes sharing commits;
//! - **per_write**: crmdb's `Database::write`, one commit (and fsync) per write;
//! - **sqlite**: SQLite in WAL mode with `synchronous=FULL`, a connection per thread,
//!   one `BEGIN IMMEDIATE … COMMIT` per write.
//!
//! After the criterion groups, one timed round per mode and thread count prints the
//! rate, the p50 and p99 latency of a write (from the call to its durable answer) and
//! the grouped/per-write ratio (target at 32 threads: at least 10×).
//!
//! `CRMDB_BENCH_GROUP_WRITES` sets the writes per thread in a round (default 40). Files
//! go under the system temp directory; the figures mean what that file system's fsync
//! means.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use crmdb::demo::Generator;
use crmdb::{Contact, Database};

#[path = "support/sqlite_contacts.rs"]
mod sqlite_contacts;
#[path = "support/write_path.rs"]
mod write_path;

use write_path::Scratch;

const THREAD_COUNTS: [usize; 3] = [1, 8, 32];

fn writes_per_thread() -> usize {
    std::env::var("CRMDB_BENCH_GROUP_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Grouped,
    PerWrite,
    Sqlite,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Grouped, Mode::PerWrite, Mode::Sqlite];

    fn name(self) -> &'static str {
        match self {
            Mode::Grouped => "grouped",
            Mode::PerWrite => "per_write",
            Mode::Sqlite => "sqlite",
        }
    }
}

/// One target: a fresh durable file per mode and thread count, written by every
/// round of that pair (each write inserts a new contact).
struct Target {
    mode: Mode,
    crmdb: Option<Arc<Database>>,
    sqlite: PathBuf,
    next: Arc<AtomicU32>,
    generator: Arc<Generator>,
    _dir: Scratch,
}

/// Numbers the scratch directories of one run.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Target {
    fn new(mode: Mode, generator: &Arc<Generator>) -> Target {
        let dir = Scratch::new(&format!("group-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let sqlite = dir.0.join("crm.sqlite");
        let crmdb = match mode {
            Mode::Sqlite => {
                sqlite_contacts::durable_file(&sqlite);
                None
            }
            _ => Some(Arc::new(
                Database::create(dir.0.join("crm.redb")).expect("crmdb file"),
            )),
        };
        Target {
            mode,
            crmdb,
            sqlite,
            next: Arc::new(AtomicU32::new(0)),
            generator: Arc::clone(generator),
            _dir: dir,
        }
    }

    /// Commits so far (crmdb's commit sequence; 0 for SQLite).
    fn commits(&self) -> u64 {
        self.crmdb.as_ref().map_or(0, |db| {
            db.read(crmdb::Snapshot::sequence).expect("sequence")
        })
    }

    /// `threads` threads each make `writes` durable writes; returns the wall time and
    /// every write's latency.
    fn round(&self, threads: usize, writes: usize) -> (Duration, Vec<Duration>) {
        let start = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let start = Arc::clone(&start);
                let next = Arc::clone(&self.next);
                let generator = Arc::clone(&self.generator);
                let crmdb = self.crmdb.clone();
                let mut sqlite = matches!(self.mode, Mode::Sqlite)
                    .then(|| sqlite_contacts::open_durable(&self.sqlite));
                let mode = self.mode;
                std::thread::spawn(move || {
                    start.wait();
                    let mut latencies = Vec::with_capacity(writes);
                    for _ in 0..writes {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let contact = contact(&generator, i);
                        let began = Instant::now();
                        match (mode, &crmdb, &mut sqlite) {
                            (Mode::Grouped, Some(db), _) => db
                                .write_grouped(|tx| tx.insert(contact).map(drop))
                                .expect("grouped write"),
                            (Mode::PerWrite, Some(db), _) => {
                                db.write(|tx| tx.insert(contact).map(drop)).expect("write")
                            }
                            (Mode::Sqlite, _, Some(conn)) => {
                                sqlite_contacts::insert_one(conn, i64::from(i), &contact);
                            }
                            _ => unreachable!("every mode has its target"),
                        }
                        latencies.push(began.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let latencies: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer thread"))
            .collect();
        (began.elapsed(), latencies)
    }
}

/// The `i`th contact of the generator's sequence (cycled), with a unique email and no
/// owner or account, so that no other records are needed.
fn contact(generator: &Generator, i: u32) -> Contact {
    let mut contact = generator.contact(i % generator.contacts).contact;
    contact.owner = None;
    contact.account = None;
    contact.email = Some(format!("writer{i}@example.com"));
    contact
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn group_commit(c: &mut Criterion) {
    let generator = Arc::new(Generator::new(10_000));
    let writes = writes_per_thread();
    for threads in THREAD_COUNTS {
        let mut group = c.benchmark_group(format!("durable_writes_{threads}_threads"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements((threads * writes) as u64));
        for mode in Mode::ALL {
            let target = Target::new(mode, &generator);
            group.bench_function(mode.name(), |b| {
                b.iter_custom(|rounds| (0..rounds).map(|_| target.round(threads, writes).0).sum());
            });
        }
        group.finish();
    }

    for threads in THREAD_COUNTS {
        let mut rates = Vec::new();
        for mode in Mode::ALL {
            let target = Target::new(mode, &generator);
            // A first round warms the file and the caches.
            target.round(threads, writes.min(10));
            let commits_before = target.commits();
            let (elapsed, mut latencies) = target.round(threads, writes);
            let commits = target.commits() - commits_before;
            latencies.sort_unstable();
            let rate = latencies.len() as f64 / elapsed.as_secs_f64();
            let per_commit = match mode {
                Mode::Sqlite => String::new(),
                _ => format!(
                    ", {:.1} writes per commit",
                    latencies.len() as f64 / commits as f64
                ),
            };
            println!(
                "durable writes, {threads} threads, {}: {rate:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms{per_commit}",
                mode.name(),
                percentile(&latencies, 0.50).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            );
            rates.push(rate);
        }
        println!(
            "durable writes, {threads} threads: grouped/per_write {:.2} (target at 32 threads >= 10), grouped/sqlite {:.2}",
            rates[0] / rates[1],
            rates[0] / rates[2]
        );
    }
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
