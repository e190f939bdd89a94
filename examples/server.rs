//! An HTTP/JSON server in front of crmdb.
//!
//! ```text
//! cargo run --release --example server                 # in memory, 20 000 demo contacts
//! cargo run --release --example server -- --db crm.redb --import contacts.csv
//! ```
//!
//! **Boundary**: this example is the only place that knows HTTP and JSON. The request and
//! response shapes live in `server/records.rs` (records), `server/fields.rs` (the
//! single values both share) and `server/analytics.rs` (analytics and lead assignment);
//! the engine sees typed records only.
//!
//! Every engine call runs on tokio's blocking pool, inside one transaction per request,
//! so a refused or malformed request leaves the database exactly as it was. Slow or
//! oversized requests are cut off: a header read timeout per connection, a body limit,
//! a whole-request timeout and a global concurrency limit.
//!
//! The change feed (`server/changes.rs`) is read by long poll (`GET /changes`) or as
//! server-sent events (`GET /changes/stream`). A stream outlives any request timeout, so
//! it bounds itself (a lifetime and a batch count) and holds a place of the concurrency
//! limit while it is open.

#[path = "server/analytics.rs"]
pub mod analytics;
#[path = "server/analytics_handlers.rs"]
mod analytics_handlers;
#[path = "server/auth.rs"]
pub mod auth;
#[path = "server/changes.rs"]
mod changes;
#[path = "server/cli.rs"]
mod cli;
#[path = "server/console.rs"]
mod console;
#[path = "server/errors.rs"]
mod errors;
#[path = "server/fields.rs"]
pub mod fields;
#[path = "server/identity.rs"]
mod identity;
#[path = "server/import.rs"]
pub mod import;
#[path = "server/listing.rs"]
mod listing;
#[path = "server/mapping.rs"]
mod mapping;
#[path = "server/record_handlers.rs"]
mod record_handlers;
#[path = "server/records.rs"]
pub mod records;
#[path = "server/routes.rs"]
mod routes;
#[path = "server/segments.rs"]
mod segments;
#[path = "server/serving.rs"]
mod serving;

pub use self::cli::{Args, prepare};
pub use self::routes::{app, app_secured, app_with, route_table};
pub use self::serving::{ServerConfig, serve};

use self::cli::{example_prospect, print_banner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use clap::Parser as _;
    let args = Args::parse();
    if let Some(token) = &args.hash_token {
        println!("{}", auth::hash_token(token));
        return Ok(());
    }
    let tokens = match &args.tokens {
        Some(path) => Some(std::sync::Arc::new(auth::Tokens::load(path)?)),
        None => None,
    };
    if !args.host.is_loopback() && tokens.is_none() {
        return Err(format!(
            "--host {} is not a loopback address; without --tokens this example serves only locally",
            args.host
        )
        .into());
    }

    let db = prepare(&args)?;

    let config = ServerConfig::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
        print_banner(
            listener.local_addr()?,
            example_prospect(&db),
            tokens.is_some(),
        );
        if let Some(tokens) = &tokens {
            println!(
                "{} tokens from {}: every request needs Authorization: Bearer <token>",
                tokens.count(),
                args.tokens
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        let router = app_secured(db, &config, tokens);
        // Stopped with Ctrl-C: every response was sent after its commit, and redb
        // needs no shutdown step to stay consistent.
        serve(listener, router, config, std::future::pending()).await
    })?;
    Ok(())
}
