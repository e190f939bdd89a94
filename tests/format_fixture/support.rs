//! Shared helpers: the committed fixture, scratch copies of it, and value builders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crmdb::{
    ChangeKind, Database, LineItem, ManualClock, Money, ProductId, Record, RecordId, Stage,
    StageChange, Timestamp, Value,
};

use crate::generator::write_fixture;
use crate::temp_dir::TempDir;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The command that rewrites the fixture, for messages.
pub(crate) const REGENERATE: &str = "CRMDB_WRITE_FIXTURE=1 cargo test --test format_fixture";

/// A UTC time from its calendar parts.
pub(crate) fn utc(year: i32, month: u32, day: u32, hour: i64, minute: i64) -> Timestamp {
    let midnight = Timestamp::from_ymd(year, month, day).expect("a valid calendar date");
    Timestamp(midnight.0 + hour * 3600 + minute * 60)
}

/// The clock of every check: the fixture's last write time, so that `within` queries
/// have fixed answers.
fn check_time() -> Timestamp {
    utc(2026, 4, 30, 9, 0)
}

pub(crate) fn strs(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn custom<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

pub(crate) fn select(s: &str) -> Value {
    Value::Select(s.to_owned())
}

pub(crate) fn line(product: u32, quantity: u32, unit_price: i64) -> LineItem {
    LineItem {
        product: ProductId::new(product),
        quantity,
        unit_price: Money(unit_price),
    }
}

/// A committed fixture: one file per format version, written by a build of that
/// format from the same generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fixture {
    /// `format_v1.redb`: bitmap chunks in roaring's portable layout alone. Opening it
    /// upgrades it to format 2 in place.
    V1,
    /// `format_v2.redb`: bitmap chunks with a form tag (`src/codec/chunk.rs`).
    V2,
}

impl Fixture {
    pub(crate) const ALL: [Fixture; 2] = [Fixture::V1, Fixture::V2];

    /// The format version the file was written in.
    pub(crate) fn version(self) -> u8 {
        match self {
            Fixture::V1 => 1,
            Fixture::V2 => 2,
        }
    }

    fn file_name(self) -> String {
        format!("format_v{}.redb", self.version())
    }

    fn committed_path(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.file_name())
    }

    /// The committed file. `CRMDB_WRITE_FIXTURE=1` rewrites the current format's file
    /// first (once per test run); older ones stay as committed, since this build cannot
    /// write their format.
    pub(crate) fn path(self) -> &'static Path {
        static FIXTURES: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
        FIXTURES[self as usize].get_or_init(|| {
            let path = self.committed_path();
            if self == Fixture::V2 && std::env::var("CRMDB_WRITE_FIXTURE").is_ok_and(|v| v == "1") {
                regenerate(&path);
            }
            assert!(
                path.is_file(),
                "{} is missing: it is committed with the repository and pins format {}; \
                 restore it from git{}",
                path.display(),
                self.version(),
                if self == Fixture::V2 {
                    format!(", or write a new one on purpose with `{REGENERATE}`")
                } else {
                    String::new()
                }
            );
            path
        })
    }
}

/// Runs a check against every committed fixture, naming the one being checked.
pub(crate) fn each_fixture(check: fn(Fixture) -> TestResult) -> TestResult {
    for fixture in Fixture::ALL {
        eprintln!("checking {}", fixture.file_name());
        check(fixture)?;
    }
    Ok(())
}

/// Writes the fixture next to its final place and renames it over, so that a failed
/// run never leaves a half-written fixture behind.
fn regenerate(path: &Path) {
    let fresh = path.with_extension("redb.new");
    let dir = path.parent().expect("the fixture path has a directory");
    std::fs::create_dir_all(dir).expect("create tests/fixtures");
    // A leftover from an interrupted run would be opened, not created afresh.
    let _ = std::fs::remove_file(&fresh);
    if let Err(e) = write_fixture(&fresh) {
        let _ = std::fs::remove_file(&fresh);
        panic!("writing the fixture failed: {e}");
    }
    std::fs::rename(&fresh, path).expect("move the new fixture into place");
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    eprintln!("wrote {} ({size} bytes)", path.display());
}

/// A scratch directory (removed on drop, also when a check panics) for copies of the
/// fixtures.
pub(crate) struct Scratch(TempDir);

impl Scratch {
    pub(crate) fn new(label: &str) -> Scratch {
        Scratch(TempDir::new(&format!("format-fixture-{label}")))
    }

    /// A fresh copy of a committed fixture in this directory. Written from the bytes
    /// rather than with `fs::copy`, so that the copy is writable whatever the committed
    /// file's permissions.
    pub(crate) fn copy_of_fixture(&self, fixture: Fixture) -> PathBuf {
        let copy = self.0.0.join(fixture.file_name());
        let bytes = std::fs::read(fixture.path()).expect("read the committed fixture");
        std::fs::write(&copy, bytes).expect("write the scratch copy");
        copy
    }
}

/// Opens a copy with the defaults (no machines given, so the stored ones are used
/// unchecked) on a manual clock at [`check_time`].
pub(crate) fn open_copy(copy: &Path) -> crmdb::Result<(Database, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(check_time()));
    let db = Database::builder().clock(clock.clone()).open(copy)?;
    Ok((db, clock))
}

/// Compares stored records with the expected ones, one record at a time so that a
/// failure names the record.
pub(crate) fn assert_records<R: Record + PartialEq>(
    found: Vec<(R::Id, R)>,
    expected: Vec<(R::Id, R)>,
) {
    let rows = |v: &[(R::Id, R)]| v.iter().map(|(id, _)| id.row()).collect::<Vec<_>>();
    assert_eq!(rows(&found), rows(&expected), "{} row ids", R::KIND);
    for ((id, found), (_, expected)) in found.iter().zip(&expected) {
        assert_eq!(found, expected, "{} {}", R::KIND, id.row());
    }
}

pub(crate) fn rows(bitmap: &crmdb::RoaringBitmap) -> Vec<u32> {
    bitmap.iter().collect()
}

/// One history entry.
pub(crate) fn change(
    from: Option<&str>,
    to: &str,
    at: Timestamp,
    actor: &str,
    reason: Option<&str>,
    kind: ChangeKind,
) -> StageChange {
    StageChange {
        from: from.map(Stage::new),
        to: Stage::new(to),
        at,
        actor: actor.into(),
        reason: reason.map(str::to_owned),
        kind,
    }
}
