//! Pins crmdb's on-disk formats, versions 1 and 2, with a committed database file of
//! each, in the manner of redb's `tests/backward_compatibility.rs`.
//!
//! `tests/fixtures/format_v1.redb` was written by a format-1 build and
//! `tests/fixtures/format_v2.redb` by a format-2 build, through the public API alone
//! ([`write_fixture`] below, on a [`ManualClock`], so every time in them is fixed):
//! every record kind with most fields set, custom fields of every type, stage histories
//! of every kind of change, saved segments, a soft-deleted and a purged record, an RFM
//! refresh and lead assignment rules. Every test runs against both files: it opens a
//! copy (a committed file is never opened for writing) and checks it against values
//! spelled out here, not recomputed: every record field by field, every index kind
//! through queries with their answers, the histories, segments, schemas, machines and
//! configuration, the raw table layout and redb's header; then it writes to the copy
//! (the format-1 copy is upgraded to format 2 by its open).
//!
//! A failure here means that this build reads a format's files differently from the
//! build that wrote them. That calls for a format bump with an upgrade path
//! (`docs/design.md`, "Format versions and migration"), not for a new fixture. Only the
//! current format's file is regenerated, only on purpose, and then the literal
//! expectations below are updated by hand to what the new file holds:
//!
//! ```text
//! CRMDB_WRITE_FIXTURE=1 cargo test --test format_fixture
//! ```

mod expected_config;
mod expected_crm;
mod expected_queries;
mod expected_sales;
mod generator;
mod new_writes;
mod raw_layout;
mod read_back;
mod support;
#[path = "../support/temp_dir.rs"]
mod temp_dir;
