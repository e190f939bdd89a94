//! The command line: its arguments, opening and filling the database they name, and
//! the banner printed once the server listens.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crmdb::{Database, EntityKind, Query, Snapshot};

use super::import;

/// An HTTP/JSON server in front of crmdb: in memory with generated demo data by
/// default; a durable file (`--db`) or an import (`--import`) gets only what the user
/// puts there, unless `--demo N` asks for demo data too.
#[derive(Debug, clap::Parser)]
#[command(name = "server")]
pub struct Args {
    /// Address to listen on; only loopback addresses are accepted without `--tokens`.
    #[arg(long, default_value = "127.0.0.1")]
    pub(super) host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub(super) port: u16,
    /// Demo contacts to generate into an empty database (0 for none). Defaults to
    /// 20 000 in memory without an import, and to none with `--db` or `--import`.
    #[arg(long, alias = "size")]
    demo: Option<u32>,
    /// A database file to use instead of memory; created if missing.
    #[arg(long)]
    db: Option<PathBuf>,
    /// A CSV or JSON Lines file of contacts to import before serving.
    #[arg(long)]
    import: Option<PathBuf>,
    /// A JSON file of bearer tokens (SHA-256 digests) and their principals; with it,
    /// every request needs a token and sees what its principal sees.
    #[arg(long)]
    pub(super) tokens: Option<PathBuf>,
    /// Prints the digest of a token for the token file, and exits.
    #[arg(long, value_name = "TOKEN")]
    pub(super) hash_token: Option<String>,
}

pub(super) fn progress_bar(length: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{elapsed}})");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// The in-memory default's demo data set.
const DEFAULT_DEMO_CONTACTS: u32 = 20_000;

impl Args {
    /// How many demo contacts to generate: only what `--demo` says, or the default data
    /// set when the database is in memory and nothing is imported.
    pub fn demo_contacts(&self) -> u32 {
        match self.demo {
            Some(n) => n,
            None if self.db.is_none() && self.import.is_none() => DEFAULT_DEMO_CONTACTS,
            None => 0,
        }
    }
}

/// Opens the database the arguments name and loads what they ask for: demo data into an
/// empty database, then the import.
pub fn prepare(args: &Args) -> Result<Database, Box<dyn std::error::Error>> {
    let db = match &args.db {
        Some(path) => Database::create(path)?,
        None => Database::in_memory()?,
    };
    let contacts = db.read(|r| Ok(r.live(EntityKind::Contact)?.len()))?;
    let demo = args.demo_contacts();
    if contacts == 0 && demo > 0 {
        load_demo(&db, demo)?;
    } else if contacts > 0 && demo > 0 {
        println!("the database holds {contacts} contacts; no demo data generated");
    }
    if let Some(file) = &args.import {
        let report = import::import_file(&db, file)?;
        report.print();
    }
    Ok(db)
}

fn load_demo(db: &Database, contacts: u32) -> crmdb::Result<()> {
    println!("generating {contacts} demo contacts (seed 42) …");
    let bar = progress_bar(u64::from(contacts), "contacts");
    let summary = crmdb::demo::Generator::new(contacts).load(db, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    println!(
        "loaded {} contacts, {} orders, {} activities, {} accounts, {} products, {} owners",
        summary.contacts,
        summary.orders,
        summary.activities,
        summary.accounts,
        summary.products,
        summary.owners
    );
    Ok(())
}

/// A live contact still in `prospect`, for the printed stage-move example.
pub(super) fn example_prospect(db: &Database) -> Option<u32> {
    let query = Query::parse("stage:prospect").ok()?;
    db.read(|r| Ok(r.ids(EntityKind::Contact, &query)?.min()))
        .ok()
        .flatten()
}

/// What the server prints once it listens: where, and a few requests to try (with the
/// header a server run with `--tokens` wants).
pub(super) fn print_banner(address: SocketAddr, prospect: Option<u32>, tokens: bool) {
    let base = format!("http://{address}");
    println!("crmdb server listening on {base}");
    if tokens {
        println!(
            "console: open {base}/#token=YOUR_TOKEN in a browser; API description: {base}/openapi.json"
        );
    } else {
        println!("console: open {base}/ in a browser; API description: {base}/openapi.json");
    }
    let auth = if tokens {
        " -H 'authorization: Bearer YOUR_TOKEN'"
    } else {
        ""
    };
    println!("try:");
    println!(
        "  curl -s -X POST {base}/contacts{auth} -H 'content-type: application/json' \\\n    \
         -d '{{\"name\":\"Li Lei\",\"email\":\"li.lei@example.com\",\"region\":\"shanghai\",\"tags\":[\"vip\"]}}'"
    );
    println!(
        "  curl -s -X POST {base}/segments/query{auth} -H 'content-type: application/json' \\\n    \
         -d '{{\"kind\":\"contact\",\"query\":\"tag:vip AND lifetime_value >= 1000\",\"limit\":3,\
         \"sort\":\"lifetime_value\",\"descending\":true,\"group_by\":\"stage\",\"sum\":\"lifetime_value\"}}'"
    );
    match prospect {
        Some(id) => println!(
            "  curl -s -X POST {base}/contacts/{id}/stage{auth} -H 'content-type: application/json' \\\n    \
             -d '{{\"to\":\"active\"}}'"
        ),
        None => println!("  curl -s{auth} {base}/stats"),
    }
}
