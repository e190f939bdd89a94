//! The example HTTP server: every endpoint and every kind of bad input, in process
//! through the router, plus one test over a real loopback socket (slow client cut off,
//! shutdown).

// Only the router, the serving loop and the import are exercised here, not `main`.
#[allow(dead_code)]
#[path = "../../examples/server.rs"]
mod server;

mod analytics;
mod auth;
mod bad_input;
mod browser;
mod cdp;
mod changes;
mod console;
mod crash;
mod identity;
mod import;
mod lead_assignment;
mod listing;
mod records;
mod segments;
mod slow_clients;
mod stages;
mod support;
