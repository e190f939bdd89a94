//! Follows the change feeds of a tenant set into ClickHouse, for analytics across
//! tenants.
//!
//! ```text
//! cargo run --example clickhouse_sink -- --out ch-files            # demo tenants, files
//! cargo run --example clickhouse_sink -- --tenants data/ --http http://127.0.0.1:8123
//! cargo run --example clickhouse_sink -- --tenants data/ --out ch-files --format rowbinary \
//!     --follow 60
//! ```
//!
//! Each tenant gets a durable consumer, `clickhouse_sink`. Records go to
//! `ReplacingMergeTree(seq, is_deleted)` tables keyed by (tenant, id), one per kind;
//! watched segments' members go to `crm_segment_members` as `groupBitmap` states
//! (`clickhouse_sink/tables.rs`, `clickhouse_sink/state.rs`). Batches are acknowledged
//! only once ClickHouse (or the file) has them, and delivering one twice changes
//! nothing (`clickhouse_sink/sink.rs`). The tables, the loading statements and example
//! queries across tenants are in `docs/scale-out.md`.
//!
//! Without `--tenants` the sink runs on demo tenants made in a scratch directory that
//! is removed afterwards.

#[path = "clickhouse_sink/sink.rs"]
pub mod sink;
#[path = "clickhouse_sink/state.rs"]
pub mod state;
#[path = "clickhouse_sink/tables.rs"]
pub mod tables;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crmdb::{EntityKind, Query, SavedSegment, TenantOptions, TenantSet};

use sink::{Destination, FileDestination, HttpDestination, Sink, SinkError};
use tables::Format;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Rowbinary,
}

#[derive(Debug, Parser)]
#[command(about = "Follow crmdb tenants' change feeds into ClickHouse")]
struct Args {
    /// The tenant set's directory (one `<tenant>.redb` per tenant). Without it, demo
    /// tenants are made in a scratch directory.
    #[arg(long)]
    tenants: Option<PathBuf>,
    /// Demo tenants to make when `--tenants` is not given.
    #[arg(long, default_value_t = 3)]
    demo_tenants: u32,
    /// Contacts per demo tenant.
    #[arg(long, default_value_t = 1000)]
    demo_contacts: u32,
    /// Write files for batch loading under this directory.
    #[arg(long, conflicts_with = "http")]
    out: Option<PathBuf>,
    /// Insert through ClickHouse's HTTP interface, e.g. `http://127.0.0.1:8123`.
    #[arg(long)]
    http: Option<String>,
    /// ClickHouse user (with `--http`).
    #[arg(long, requires = "http")]
    user: Option<String>,
    /// ClickHouse password (with `--user`).
    #[arg(long, requires = "user", default_value = "")]
    password: String,
    /// The rows' format.
    #[arg(long, value_enum, default_value = "json")]
    format: FormatArg,
    /// Keep delivering for this many seconds, once a second; 0 delivers once.
    #[arg(long, default_value_t = 0)]
    follow: u64,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("clickhouse_sink: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), SinkError> {
    let format = match args.format {
        FormatArg::Json => Format::JsonEachRow,
        FormatArg::Rowbinary => Format::RowBinary,
    };
    match (&args.out, &args.http) {
        (_, Some(url)) => {
            let user = args.user.clone().map(|u| (u, args.password.clone()));
            let destination = HttpDestination::new(url, user)?;
            follow(&args, Sink::new(destination, format))
        }
        (Some(dir), None) => follow(&args, Sink::new(FileDestination::new(dir, format)?, format)),
        (None, None) => Err(SinkError::Address(
            "no destination: give --out DIR or --http URL".into(),
        )),
    }
}

/// Delivers every tenant once, or once a second for `--follow` seconds.
fn follow<D: Destination>(args: &Args, mut sink: Sink<D>) -> Result<(), SinkError> {
    let scratch = match &args.tenants {
        Some(_) => None,
        None => Some(demo_tenants(args.demo_tenants, args.demo_contacts)?),
    };
    let dir = args
        .tenants
        .clone()
        .or_else(|| scratch.clone())
        .unwrap_or_default();
    let result = (|| {
        let set = TenantSet::open(&dir, TenantOptions::default())?;
        let until = Instant::now() + Duration::from_secs(args.follow);
        loop {
            for name in set.list()? {
                let db = set.get(&name)?;
                let started = Instant::now();
                let delivery = sink.deliver(&name, &db)?;
                let seconds = started.elapsed().as_secs_f64();
                if delivery.through != delivery.after || delivery.bootstrapped {
                    println!(
                        "{name}: sequences {}..={} delivered{}: {} record rows, {} segment \
                         states in {:.3} s ({:.0} rows/s)",
                        delivery.after + 1,
                        delivery.through,
                        if delivery.bootstrapped {
                            " (first copy)"
                        } else {
                            ""
                        },
                        delivery.rows,
                        delivery.segments,
                        seconds,
                        delivery.rows as f64 / seconds.max(1e-9)
                    );
                }
            }
            if Instant::now() >= until {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })();
    if let Some(scratch) = scratch {
        let _ = std::fs::remove_dir_all(scratch);
    }
    result
}

/// Demo tenants in a new scratch directory, each with two watched segments.
fn demo_tenants(count: u32, contacts: u32) -> Result<PathBuf, SinkError> {
    let dir = std::env::temp_dir().join(format!("crmdb-sink-demo-{}", std::process::id()));
    let set = TenantSet::open(&dir, TenantOptions::default())?;
    for i in 0..count {
        let name = format!("tenant_{i}");
        let db = set.create(&name)?;
        let generator = crmdb::demo::Generator {
            seed: 100 + u64::from(i),
            ..crmdb::demo::Generator::new(contacts)
        };
        generator.load(&db, |_| {})?;
        watch_demo_segments(&db)?;
    }
    Ok(dir)
}

/// The two segments the demo tenants watch: `vips` and `big_spenders`.
pub fn watch_demo_segments(db: &crmdb::Database) -> crmdb::Result<()> {
    db.write(|tx| -> crmdb::Result<()> {
        for (name, query) in [("vips", "tag:vip"), ("big_spenders", "total_spent >= 500")] {
            tx.save_segment(
                name,
                SavedSegment::Dynamic {
                    kind: EntityKind::Contact,
                    query: Query::parse(query)?,
                },
            )?;
            tx.watch(name)?;
        }
        Ok(())
    })
}
