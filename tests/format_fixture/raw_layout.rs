//! The committed file is a cleanly closed redb file with the documented table layout.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{Fixture, REGENERATE, Scratch, TestResult, each_fixture, rows};

#[test]
fn committed_file_is_a_cleanly_closed_redb_file() -> TestResult {
    each_fixture(committed_file_is_a_cleanly_closed_redb_file_in)
}

fn committed_file_is_a_cleanly_closed_redb_file_in(fixture: Fixture) -> TestResult {
    let bytes = std::fs::read(fixture.path())?;
    // redb's magic number, then its header: page size at byte 12, the god byte at 9
    // (bit 0: primary commit slot; bit 1: recovery required), commit slots of 128
    // bytes from byte 64 whose first byte is redb's file format version.
    const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    assert!(
        bytes.starts_with(&REDB_MAGIC),
        "{} is not a redb file; restore it from git or rewrite it with `{REGENERATE}`",
        fixture.path().display()
    );
    assert_eq!(&bytes[12..16], &4096u32.to_le_bytes(), "page size");
    let god = bytes[9];
    assert_eq!(
        god & 2,
        0,
        "the fixture was closed cleanly (no recovery needed)"
    );
    let primary = 64 + 128 * usize::from(god & 1);
    assert_eq!(
        bytes[primary], 3,
        "redb file format version of the primary slot"
    );
    // A small file: a few hundred KiB of pages (redb grows in regions as needed).
    assert!(
        bytes.len() < 1 << 20,
        "the fixture is {} bytes; it should stay a few hundred KiB",
        bytes.len()
    );
    Ok(())
}

/// The layout of `docs/design.md` read with redb directly: the tables, the meta keys,
/// a version byte on every byte-string value, the natural keys, the history keys,
/// bitmap key names, bucket numbering and chunking, and saved segments as query text.
#[test]
fn raw_tables_have_the_documented_layout() -> TestResult {
    each_fixture(raw_tables_have_the_documented_layout_in)
}

fn raw_tables_have_the_documented_layout_in(fixture: Fixture) -> TestResult {
    use redb::TableHandle as _;
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    let scratch = Scratch::new("raw");
    let copy = scratch.copy_of_fixture(fixture);
    let db = redb::ReadOnlyDatabase::open(&copy)?;
    let txn = db.begin_read()?;

    let mut tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    tables.sort();
    // Format-1 files were written before the change feed's tables (`changes`,
    // `consumers`, `watched`), which an open creates.
    let feed_tables = ["changes", "consumers", "watched"];
    if fixture == Fixture::V2 {
        for name in feed_tables {
            let at = tables.iter().position(|t| t == name);
            tables.remove(at.ok_or(format!("no table {name}"))?);
        }
    }
    assert_eq!(
        tables,
        [
            "bitmap_gen",
            "bitmaps",
            "history",
            "meta",
            "rows.account",
            "rows.activity",
            "rows.contact",
            "rows.deal",
            "rows.order",
            "rows.owner",
            "rows.product",
            "rows.task",
            "segments",
            "unique",
        ]
    );

    // Every value starts with the file's format-version byte; `format` holds it and
    // the row counters are bincode varints (one byte below 251).
    let meta = txn.open_table(TableDefinition::<&str, &[u8]>::new("meta"))?;
    let mut entries = BTreeMap::new();
    for entry in meta.iter()? {
        let (key, value) = entry?;
        entries.insert(key.value().to_owned(), value.value().to_vec());
    }
    assert_eq!(
        entries.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "analytics.rfm",
            "assignment",
            "assignment.round_robin",
            "format",
            "machines",
            "next_row.account",
            "next_row.activity",
            "next_row.contact",
            "next_row.deal",
            "next_row.order",
            "next_row.owner",
            "next_row.product",
            "next_row.task",
            "schema",
        ]
    );
    for (key, value) in &entries {
        assert_eq!(
            value.first(),
            Some(&fixture.version()),
            "version byte of meta {key}"
        );
    }
    assert_eq!(
        entries["format"],
        [fixture.version(), fixture.version()],
        "the database format version"
    );
    for (kind, next) in [
        ("contact", 8),
        ("account", 2),
        ("deal", 3),
        ("activity", 8),
        ("order", 9),
        ("product", 3),
        ("owner", 4),
        ("task", 4),
    ] {
        assert_eq!(
            entries[&format!("next_row.{kind}")],
            [fixture.version(), next],
            "next_row.{kind}"
        );
    }

    for (kind, count) in [
        ("contact", 7),
        ("account", 2),
        ("deal", 3),
        ("activity", 8),
        ("order", 9),
        ("product", 3),
        ("owner", 4),
        ("task", 3),
    ] {
        let name = format!("rows.{kind}");
        let table = txn.open_table(TableDefinition::<u32, &[u8]>::new(&name))?;
        assert_eq!(table.len()?, count, "rows.{kind}");
        for entry in table.iter()? {
            let (row, value) = entry?;
            assert_eq!(
                value.value()[0],
                fixture.version(),
                "version byte of {kind} {}",
                row.value()
            );
        }
    }

    // Natural keys, trimmed and lowercased; the soft-deleted contact keeps its email,
    // the purged one's is gone.
    let unique = txn.open_table(TableDefinition::<(&str, &str), u32>::new("unique"))?;
    let mut keys = Vec::new();
    for entry in unique.iter()? {
        let (key, row) = entry?;
        let (field, value) = key.value();
        keys.push((field.to_owned(), value.to_owned(), row.value()));
    }
    let key = |f: &str, v: &str, r: u32| (f.to_owned(), v.to_owned(), r);
    assert_eq!(
        keys,
        [
            key("contact.email", "han.meimei@example.com", 1),
            key("contact.email", "li.lei@example.com", 0),
            key("contact.email", "ma.lin@example.com", 7),
            key("contact.email", "sun.li@example.com", 3),
            key("contact.email", "wu.gang@example.com", 6),
            key("contact.email", "zhao.qiang@example.com", 2),
            key("contact.email", "zhou.min@example.com", 5),
            key("product.sku", "sku-crm-01", 0),
            key("product.sku", "sku-hw-02", 1),
            key("product.sku", "svc-onboard", 2),
        ]
    );

    // History keys: (entity kind as u8 — contact 0, deal 2 —, row, sequence from 0).
    let history = txn.open_table(TableDefinition::<(u8, u32, u32), &[u8]>::new("history"))?;
    let mut lengths: BTreeMap<(u8, u32), u32> = BTreeMap::new();
    for entry in history.iter()? {
        let (key, value) = entry?;
        let (kind, row, seq) = key.value();
        let next = lengths.entry((kind, row)).or_default();
        assert_eq!(seq, *next, "history sequence of {kind}/{row}");
        *next += 1;
        assert_eq!(
            value.value()[0],
            fixture.version(),
            "version byte of history {kind}/{row}/{seq}"
        );
    }
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        [
            ((0, 0), 4),
            ((0, 1), 6),
            ((0, 2), 1),
            ((0, 3), 3),
            ((0, 5), 1),
            ((0, 6), 3),
            ((0, 7), 2),
            ((2, 0), 6),
            ((2, 1), 2),
            ((2, 2), 2),
        ]
    );

    // Bitmap chunks: every row id is below 4096, so every bitmap is one chunk 0.
    let bitmaps = txn.open_table(TableDefinition::<(&str, u32), &[u8]>::new("bitmaps"))?;
    let mut names = BTreeSet::new();
    for entry in bitmaps.iter()? {
        let (key, value) = entry?;
        let (name, chunk) = key.value();
        assert_eq!(chunk, 0, "chunk of {name}");
        assert_eq!(
            value.value()[0],
            fixture.version(),
            "version byte of bitmap {name}"
        );
        if fixture == Fixture::V2 {
            // A chunk of a few rows takes roaring's portable form (tag 0).
            assert_eq!(value.value()[1], 0, "form tag of bitmap {name}");
        }
        names.insert(name.to_owned());
    }
    for name in [
        "contact/_state=live",
        "contact/_state=deleted",
        "contact/tag=vip",
        "contact/stage=active",
        "contact/role=decision_maker",
        "contact/unsubscribed=true",
        "contact/custom.industry=saas",
        "contact/custom.interests=travel",
        "contact/custom.verified=true",
        "contact/custom.nickname=",
        "contact/lifetime_value#e",
        "contact/custom.loyalty_points#63",
        "contact/custom.loyalty_points#b238",
        "contact/tier=top20",
        "contact/band=2",
        "contact/rfm.recency#e",
        "deal/owner=0",
        "deal/pipeline=default",
        "deal/participant=6",
        "order/product=1",
        "task/deal=0",
    ] {
        assert!(names.contains(name), "bitmap {name} is missing");
    }
    let bitmap = |name: &str| -> Result<Vec<u32>, Box<dyn std::error::Error>> {
        let value = bitmaps
            .get((name, 0))?
            .ok_or(format!("no chunk of {name}"))?;
        Ok(rows(&crmdb::raw::decode_chunk(0, value.value())?))
    };
    // Indexes hold binned rows too; queries take the live set.
    assert_eq!(bitmap("contact/tag=vip")?, [0, 1, 5]);
    assert_eq!(bitmap("contact/_state=deleted")?, [5]);
    assert_eq!(bitmap("contact/lifetime_value#e")?, [0, 1, 2, 3, 5, 6, 7]);
    // -20: the sign slice of two's complement, and bucket 251 - 1 - 12 (the second
    // quarter of [16, 32), negative side).
    assert_eq!(bitmap("contact/custom.loyalty_points#63")?, [2]);
    assert_eq!(bitmap("contact/custom.loyalty_points#b238")?, [2]);
    assert_eq!(
        bitmap("contact/lifetime_value#b251")?,
        [2],
        "the zero bucket"
    );

    let generations = txn.open_table(TableDefinition::<&str, u64>::new("bitmap_gen"))?;
    for key in [
        "",
        "contact/tag=vip",
        "contact/lifetime_value#",
        "contact/rfm.monetary#",
        "contact/tier=top20",
    ] {
        assert!(generations.get(key)?.is_some(), "bitmap_gen entry {key:?}");
    }

    // Dynamic segments are stored as their canonical query text.
    let segments = txn.open_table(TableDefinition::<&str, &[u8]>::new("segments"))?;
    assert_eq!(segments.len()?, 4);
    for (name, text) in [
        ("high_value", r#"(tag = "vip" AND lifetime_value >= 800)"#),
        (
            "high_value_shanghai",
            r#"(segment:high_value AND region = "shanghai")"#,
        ),
        (
            "open_deals",
            r#"NOT stage IN ("won", "lost", "renewed", "cancelled")"#,
        ),
    ] {
        let value = segments.get(name)?.ok_or(format!("no segment {name}"))?;
        let bytes = value.value();
        assert_eq!(
            bytes[0],
            fixture.version(),
            "version byte of segment {name}"
        );
        assert!(
            bytes.ends_with(text.as_bytes()),
            "segment {name} is stored as its text: {bytes:?}"
        );
    }
    Ok(())
}
