//! The ClickHouse sink: groupBitmap states against states ClickHouse itself produced,
//! the record tables against every field of every kind, delivery and redelivery into
//! files and over HTTP, and (with `CRMDB_CHDB_PYTHON` naming a Python that has
//! `chdb-core`) ClickHouse loading the output and answering as crmdb does.

// The example's `main` and CLI are not exercised here, only its modules.
#[allow(dead_code)]
#[path = "../examples/clickhouse_sink.rs"]
mod example;

#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crmdb::demo::Generator;
use crmdb::{
    Account, Activity, ActivityKind, Contact, ContactId, Database, Deal, Direction, EntityKind,
    Money, Order, OrderStatus, Owner, Product, RoaringBitmap, Snapshot, Subject, Task,
    TenantOptions, TenantSet, Timestamp,
};
use example::sink::{Body, Destination, FileDestination, HttpDestination, Sink, SinkError};
use example::state::{self, StateError};
use example::tables::{self, Format, Table};
use proptest::prelude::*;
use serde_json::Value as Json;
use temp_dir::TempDir as Scratch;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `1,3-5` → {1, 3, 4, 5}.
fn ids(text: &str) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                out.insert_range(a.parse::<u32>().expect("id")..=b.parse::<u32>().expect("id"));
            }
            None => {
                out.insert(part.parse().expect("id"));
            }
        }
    }
    out
}

/// (name, exact, state bytes, ids) of every state in the ClickHouse fixture.
fn fixture() -> Vec<(String, bool, Vec<u8>, RoaringBitmap)> {
    let text = include_str!("fixtures/clickhouse_group_bitmap.tsv");
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "{line}");
            (
                fields[0].to_owned(),
                fields[1] == "1",
                unhex(fields[2]),
                ids(fields[3]),
            )
        })
        .collect()
}

#[test]
fn states_clickhouse_wrote_decode_and_crmdb_writes_the_same_bytes() {
    let states = fixture();
    assert_eq!(states.len(), 10);
    let mut forms = BTreeSet::new();
    for (name, exact, bytes, ids) in &states {
        forms.insert(bytes[0]);
        assert_eq!(&state::decode(bytes).expect(name), ids, "{name}");
        if *exact {
            assert_eq!(&state::encode(ids), bytes, "{name}: crmdb's bytes");
        }
        let cardinality = ids.len();
        assert_eq!(bytes[0] == 0, cardinality <= 32, "{name}: the form by size");
    }
    // Both forms are in the fixture, and a small set ClickHouse kept out of order.
    assert_eq!(forms, BTreeSet::from([0, 1]));
    assert!(states.iter().any(|(_, exact, _, _)| !exact));
}

#[test]
fn bad_state_bytes_are_refused_with_a_reason() {
    let cases: [(&[u8], StateError); 8] = [
        (&[], StateError::Empty),
        (&[2, 0], StateError::UnknownKind(2)),
        (&[0, 33], StateError::SmallTooLarge(33)),
        (&[0, 2, 1, 0, 0, 0], StateError::Truncated),
        (&[0, 1, 1, 0, 0, 0, 9], StateError::Trailing(1)),
        (&[1], StateError::Truncated),
        (&[1, 0xff, 0xff, 0xff, 0xff, 0xff], StateError::Truncated),
        (&[1, 0xff, 0xff, 0xff, 0xff, 0x7f], StateError::BadLength),
    ];
    for (bytes, want) in cases {
        assert_eq!(state::decode(bytes), Err(want), "{bytes:?}");
    }
    assert!(matches!(
        state::decode(&[1, 4, 1, 2, 3, 4]),
        Err(StateError::Roaring(_))
    ));
    // Every cut and every flipped byte of ClickHouse's states decodes or is refused;
    // none panics, and no cut short large state passes.
    for (name, _, bytes, _) in fixture() {
        for cut in 0..bytes.len().min(200) {
            let result = state::decode(&bytes[..cut]);
            assert!(result.is_err() || bytes[0] == 0, "{name} cut at {cut}");
        }
        for at in 0..bytes.len().min(64) {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5a;
            let _ = state::decode(&flipped);
        }
    }
}

proptest! {
    #[test]
    fn states_round_trip(ids in proptest::collection::btree_set(any::<u32>(), 0..200),
                         run in 0u32..100_000, start in any::<u32>()) {
        let mut bitmap: RoaringBitmap = ids.into_iter().collect();
        bitmap.insert_range(start..start.saturating_add(run));
        let bytes = state::encode(&bitmap);
        prop_assert_eq!(bytes[0] == 0, bitmap.len() <= 32);
        prop_assert_eq!(state::decode(&bytes).expect("decodes"), bitmap);
    }
}

fn json(record: &impl serde::Serialize) -> Json {
    serde_json::to_value(record).expect("a record serialises")
}

/// The JSON form of the first demo record of every kind, and of a task (the demo makes
/// none).
fn every_kind(db: &Database) -> crmdb::Result<Vec<(EntityKind, Json)>> {
    db.read(|r| {
        Ok(vec![
            (EntityKind::Contact, json(&r.records::<Contact>()?[0].1)),
            (EntityKind::Account, json(&r.records::<Account>()?[0].1)),
            (EntityKind::Deal, json(&r.records::<Deal>()?[0].1)),
            (EntityKind::Activity, json(&r.records::<Activity>()?[0].1)),
            (EntityKind::Order, json(&r.records::<Order>()?[0].1)),
            (EntityKind::Product, json(&r.records::<Product>()?[0].1)),
            (EntityKind::Owner, json(&r.records::<Owner>()?[0].1)),
            (
                EntityKind::Task,
                json(&Task {
                    title: "call back".into(),
                    related: Some(Subject::Contact(ContactId::new(3))),
                    due: Some(Timestamp(1_800_000_000)),
                    ..Task::default()
                }),
            ),
        ])
    })
}

#[test]
fn every_field_of_every_kind_has_a_column() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    Generator::new(50).load(&db, |_| {})?;
    let records = every_kind(&db)?;
    assert_eq!(records.len(), EntityKind::ALL.len());
    for (kind, record) in records {
        let table = Table::of(kind);
        let fields: BTreeSet<&str> = record
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let covered: BTreeSet<&str> = table
            .columns
            .iter()
            .filter(|c| !c.path.is_empty())
            .map(|c| c.path.split('.').next().unwrap_or_default())
            .collect();
        assert_eq!(
            covered, fields,
            "{kind}: the columns cover exactly the fields"
        );
        let row = tables::record_row(&table, "t", 1, 2, false, Some(&record))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(row.len(), table.columns.len());
        // Both formats encode it; the DDL names every column.
        assert!(
            !tables::encode_rows(&table, std::slice::from_ref(&row), Format::RowBinary).is_empty()
        );
        let line = tables::encode_rows(&table, &[row], Format::JsonEachRow);
        let parsed: Json = serde_json::from_slice(&line).expect("one JSON row");
        for column in &table.columns {
            assert!(parsed.get(column.name).is_some(), "{kind}.{}", column.name);
            assert!(table.ddl().contains(&format!("    {} ", column.name)));
        }
    }
    // A value of the wrong shape is refused, naming the column.
    let table = Table::of(EntityKind::Contact);
    let bad = serde_json::json!({ "name": 7 });
    let refused = tables::record_row(&table, "t", 1, 2, false, Some(&bad)).expect_err("refused");
    assert_eq!(refused.column, "name");
    Ok(())
}

/// Three tenants with demo data and two watched segments each.
fn tenants(dir: &Path, contacts: u32) -> crmdb::Result<TenantSet> {
    let set = TenantSet::open(dir, TenantOptions::default())?;
    for i in 0..3u64 {
        let db = set.create(&format!("tenant_{i}"))?;
        Generator {
            seed: 500 + i,
            ..Generator::new(contacts)
        }
        .load(&db, |_| {})?;
        example::watch_demo_segments(&db)?;
    }
    Ok(set)
}

/// Writes of every kind the sink must follow, on one tenant.
fn churn(db: &Database, round: u32) -> crmdb::Result<()> {
    db.write(|tx| -> crmdb::Result<()> {
        let base = round * 10;
        tx.add_tag(ContactId::new(base), "vip")?;
        tx.remove_tag(ContactId::new(base + 1), "vip").ok();
        tx.modify(ContactId::new(base + 2), |c| {
            c.region = Some("hangzhou".into())
        })?;
        tx.insert(Order {
            contact: Some(ContactId::new(base + 3)),
            at: Timestamp(1_790_000_000),
            status: OrderStatus::Paid,
            total: Money(700_000),
            currency: "CNY".into(),
            ..Default::default()
        })?;
        tx.insert(Activity::new(
            ActivityKind::Call,
            Direction::Outbound,
            Subject::Contact(ContactId::new(base + 4)),
            Timestamp(1_790_000_000),
        ))?;
        tx.soft_delete(ContactId::new(base + 5))?;
        let doomed = tx.insert(Contact {
            name: format!("doomed {round}"),
            email: Some(format!("doomed{round}@example.com")),
            ..Default::default()
        })?;
        tx.soft_delete(doomed)?;
        tx.purge(doomed)?;
        Ok(())
    })
}

/// What crmdb says of a tenant, in the shape `tests/clickhouse/check.py` prints.
#[derive(Debug, Default, PartialEq)]
struct Answers {
    contacts: BTreeMap<String, (u64, i64)>,
    emails: BTreeMap<String, u64>,
    deals: BTreeMap<String, BTreeMap<String, (u64, i64)>>,
    orders: BTreeMap<String, (u64, i64)>,
    segments: BTreeMap<String, BTreeMap<String, u64>>,
    both: BTreeMap<String, u64>,
}

fn crmdb_answers(set: &TenantSet) -> crmdb::Result<Answers> {
    let mut answers = Answers::default();
    for name in set.list()? {
        let db = set.get(&name)?;
        db.read(|r| {
            let contacts: Vec<Contact> = r
                .records::<Contact>()?
                .into_iter()
                .map(|(_, c)| c)
                .filter(|c| c.deleted_at.is_none())
                .collect();
            let spent = contacts.iter().map(|c| c.stats.total_spent.0).sum();
            answers
                .contacts
                .insert(name.clone(), (contacts.len() as u64, spent));
            let emails: BTreeSet<&String> =
                contacts.iter().filter_map(|c| c.email.as_ref()).collect();
            answers.emails.insert(name.clone(), emails.len() as u64);
            for (_, deal) in r.records::<Deal>()? {
                if deal.deleted_at.is_none() {
                    let entry = answers
                        .deals
                        .entry(name.clone())
                        .or_default()
                        .entry(deal.stage.to_string())
                        .or_default();
                    entry.0 += 1;
                    entry.1 += deal.amount.0;
                }
            }
            let orders: Vec<Order> = r
                .records::<Order>()?
                .into_iter()
                .map(|(_, o)| o)
                .filter(|o| o.deleted_at.is_none())
                .collect();
            let paid = orders
                .iter()
                .filter(|o| o.status == OrderStatus::Paid)
                .map(|o| o.total.0)
                .sum();
            answers
                .orders
                .insert(name.clone(), (orders.len() as u64, paid));
            let vips = r.members("vips")?;
            let big = r.members("big_spenders")?;
            let segments = answers.segments.entry(name.clone()).or_default();
            segments.insert("vips".into(), vips.len());
            segments.insert("big_spenders".into(), big.len());
            answers.both.insert(name.clone(), (&vips & &big).len());
            Ok(())
        })?;
    }
    Ok(answers)
}

/// The answers ClickHouse's ReplacingMergeTree would give over JSONEachRow files: per
/// (tenant, id) the row of the highest version, rows marked deleted left out.
fn files_answers(dir: &Path) -> Answers {
    fn latest(dir: &Path, table: &str, key: &[&str]) -> Vec<Json> {
        let mut best: BTreeMap<String, Json> = BTreeMap::new();
        let Ok(files) = std::fs::read_dir(dir.join(table)) else {
            return Vec::new();
        };
        for file in files {
            let path = file.expect("entry").path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).expect("file").lines() {
                let row: Json = serde_json::from_str(line).expect("row");
                let id = key
                    .iter()
                    .map(|k| row[*k].to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                let newer = best
                    .get(&id)
                    .is_none_or(|b| b["seq"].as_u64() <= row["seq"].as_u64());
                if newer {
                    best.insert(id, row);
                }
            }
        }
        best.into_values()
            .filter(|row| row["is_deleted"] == 0)
            .collect()
    }
    let mut answers = Answers::default();
    let text = |v: &Json| v.as_str().expect("text").to_owned();
    for row in latest(dir, "crm_contact", &["tenant", "id"]) {
        let entry = answers.contacts.entry(text(&row["tenant"])).or_default();
        entry.0 += 1;
        entry.1 += row["stats_total_spent"].as_i64().expect("money");
    }
    let mut emails: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in latest(dir, "crm_contact", &["tenant", "id"]) {
        if let Some(email) = row["email"].as_str() {
            emails
                .entry(text(&row["tenant"]))
                .or_default()
                .insert(email.to_owned());
        }
    }
    answers.emails = emails
        .into_iter()
        .map(|(t, e)| (t, e.len() as u64))
        .collect();
    for row in latest(dir, "crm_deal", &["tenant", "id"]) {
        let entry = answers
            .deals
            .entry(text(&row["tenant"]))
            .or_default()
            .entry(text(&row["stage"]))
            .or_default();
        entry.0 += 1;
        entry.1 += row["amount"].as_i64().expect("money");
    }
    for row in latest(dir, "crm_order", &["tenant", "id"]) {
        let entry = answers.orders.entry(text(&row["tenant"])).or_default();
        entry.0 += 1;
        if row["status"] == "Paid" {
            entry.1 += row["total"].as_i64().expect("money");
        }
    }
    let mut members: BTreeMap<String, BTreeMap<String, RoaringBitmap>> = BTreeMap::new();
    for row in latest(dir, tables::SEGMENTS, &["tenant", "segment"]) {
        let ids: RoaringBitmap = row["members"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        members
            .entry(text(&row["tenant"]))
            .or_default()
            .insert(text(&row["segment"]), ids);
    }
    for (tenant, segments) in members {
        let both = &segments["vips"] & &segments["big_spenders"];
        answers.both.insert(tenant.clone(), both.len());
        answers.segments.insert(
            tenant,
            segments
                .into_iter()
                .map(|(s, ids)| (s, ids.len()))
                .collect(),
        );
    }
    answers
}

fn deliver_all<D: Destination>(set: &TenantSet, sink: &mut Sink<D>) -> Result<usize, SinkError> {
    let mut rows = 0;
    for name in set.list()? {
        rows += sink.deliver(&name, &set.get(&name)?)?.rows;
    }
    Ok(rows)
}

#[test]
fn deliveries_follow_every_tenant_and_a_redelivery_changes_nothing() -> Result<(), SinkError> {
    let scratch = Scratch::new("sink-files");
    let set = tenants(&scratch.0.join("tenants"), 200)?;
    let out = scratch.0.join("out");
    let mut sink = Sink::new(
        FileDestination::new(&out, Format::JsonEachRow)?,
        Format::JsonEachRow,
    );
    assert!(
        deliver_all(&set, &mut sink)? > 600,
        "the first delivery copies every tenant"
    );
    assert_eq!(files_answers(&out), crmdb_answers(&set)?);

    // Writes, then a delivery of only what they changed.
    let before = set.get("tenant_1")?.read(|r| r.sequence())?;
    for round in 0..3 {
        churn(&set.get("tenant_1")?, round)?;
        churn(&set.get("tenant_2")?, round)?;
    }
    let delivered = sink.deliver("tenant_1", &set.get("tenant_1")?)?;
    assert_eq!((delivered.after, delivered.bootstrapped), (before, false));
    assert!(delivered.rows > 0 && delivered.rows < 100, "{delivered:?}");
    assert!(delivered.segments > 0);
    deliver_all(&set, &mut sink)?;
    let expected = crmdb_answers(&set)?;
    assert_eq!(files_answers(&out), expected);
    // Acknowledged: the next delivery has nothing to do.
    assert_eq!(deliver_all(&set, &mut sink)?, 0);

    // A redelivery from before the writes (a crash before the acknowledgement) writes
    // those batches again; the answers stay.
    let db = set.get("tenant_1")?;
    let again = sink.deliver_from("tenant_1", &db.begin_read()?, before)?;
    assert_eq!(again.rows, delivered.rows);
    assert_eq!(files_answers(&out), expected);
    Ok(())
}

/// A destination that fails until told otherwise.
struct Flaky<D> {
    inner: D,
    fail: bool,
}

impl<D: Destination> Destination for Flaky<D> {
    fn write(&mut self, body: &Body<'_>) -> Result<(), SinkError> {
        if self.fail {
            return Err(SinkError::Http {
                status: 503,
                body: "unavailable".into(),
            });
        }
        self.inner.write(body)
    }
}

#[test]
fn nothing_is_acknowledged_before_the_destination_has_it() -> Result<(), SinkError> {
    let scratch = Scratch::new("sink-ack");
    let set = tenants(&scratch.0.join("tenants"), 100)?;
    let out = scratch.0.join("out");
    let files = FileDestination::new(&out, Format::RowBinary)?;
    let mut sink = Sink::new(
        Flaky {
            inner: files,
            fail: true,
        },
        Format::RowBinary,
    );
    let db = set.get("tenant_0")?;
    // The first copy fails: no consumer is registered, so the next attempt copies again.
    assert!(matches!(
        sink.deliver("tenant_0", &db),
        Err(SinkError::Http { status: 503, .. })
    ));
    assert!(db.read(|r| r.consumers())?.is_empty());
    sink.destination.fail = false;
    assert!(sink.deliver("tenant_0", &db)?.bootstrapped);
    let registered = db.read(|r| r.consumers())?[0].acknowledged;
    churn(&db, 0)?;
    sink.destination.fail = true;
    assert!(sink.deliver("tenant_0", &db).is_err());
    assert_eq!(db.read(|r| r.consumers())?[0].acknowledged, registered);
    sink.destination.fail = false;
    let delivery = sink.deliver("tenant_0", &db)?;
    assert_eq!(delivery.after, registered);
    assert_eq!(
        db.read(|r| r.consumers())?[0].acknowledged,
        delivery.through
    );
    Ok(())
}

/// Answers one HTTP request with `status`, returning the request's target and body.
fn answer_once(listener: &TcpListener, status: &str) -> (String, Vec<u8>) {
    let (stream, _) = listener.accept().expect("accept");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("request line");
    let target = line.split(' ').nth(1).expect("target").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("header");
        if header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n"
    )
    .expect("answer");
    (target, body)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_http_destination_posts_each_insert_and_reports_refusals() -> Result<(), SinkError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let table = Table::segments();
    let mut ids = RoaringBitmap::new();
    ids.insert_range(0..100);
    let rows = vec![tables::segment_row(
        "t",
        "vips",
        EntityKind::Contact,
        9,
        Some(ids),
    )];
    let bytes = tables::encode_rows(&table, &rows, Format::RowBinary);
    let body = Body {
        table: &table,
        tenant: "t",
        from: 1,
        to: 9,
        format: Format::RowBinary,
        bytes: bytes.clone(),
        rows: 1,
    };
    std::thread::scope(|s| -> Result<(), SinkError> {
        let server = s.spawn(|| {
            let first = answer_once(&listener, "200 OK");
            let second = answer_once(&listener, "500 Internal Server Error");
            (first, second)
        });
        let mut http = HttpDestination::new(&url, Some(("sink".into(), "secret".into())))?;
        http.write(&body)?;
        let refused = http.write(&body);
        let ((target, received), _) = server.join().expect("server");
        assert_eq!(
            percent_decode(target.strip_prefix("/?query=").expect("query")),
            table.insert_sql(Format::RowBinary)
        );
        assert_eq!(received, bytes);
        assert!(
            matches!(&refused, Err(SinkError::Http { status: 500, body }) if body == "oops"),
            "{refused:?}"
        );
        Ok(())
    })?;
    assert!(matches!(
        HttpDestination::new("https://example.com", None),
        Err(SinkError::Address(_))
    ));
    Ok(())
}

/// ClickHouse itself loads the sink's output (both formats) and answers as crmdb does,
/// also after a redelivered range. Needs `CRMDB_CHDB_PYTHON`: a Python with
/// `chdb-core` installed (`.ci/run` installs one).
#[test]
fn clickhouse_loads_the_output_and_answers_as_crmdb() -> Result<(), SinkError> {
    let Some(python) = std::env::var_os("CRMDB_CHDB_PYTHON") else {
        eprintln!(
            "skipped: set CRMDB_CHDB_PYTHON to a Python with chdb-core installed \
             (pip install chdb-core) to run ClickHouse against the sink's output"
        );
        return Ok(());
    };
    let scratch = Scratch::new("sink-chdb");
    let set = tenants(&scratch.0.join("tenants"), 400)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clickhouse/check.py");
    let run = |out: &Path| -> Json {
        let output = std::process::Command::new(&python)
            .arg(&script)
            .arg(out)
            .arg(scratch.0.join("session"))
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "check.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("answers")
    };
    let expect = |answers: &Answers| -> Json {
        let pair = |(n, s): &(u64, i64)| serde_json::json!([n, s]);
        serde_json::json!({
            "contacts": answers.contacts.iter().map(|(t, v)| (t.clone(), pair(v))).collect::<serde_json::Map<_, _>>(),
            "emails": answers.emails,
            "deals": answers.deals.iter().map(|(t, stages)| (t.clone(), Json::Object(stages.iter().map(|(s, v)| (s.clone(), pair(v))).collect()))).collect::<serde_json::Map<_, _>>(),
            "orders": answers.orders.iter().map(|(t, v)| (t.clone(), pair(v))).collect::<serde_json::Map<_, _>>(),
            "segments": answers.segments,
            "both": answers.both,
        })
    };
    // One sink per format, each with its own consumer.
    let mut sinks = Vec::new();
    for format in [Format::JsonEachRow, Format::RowBinary] {
        let out = scratch.0.join(format.extension());
        let sink = Sink::new(FileDestination::new(&out, format)?, format)
            .consumer(&format!("clickhouse_{}", format.extension()));
        sinks.push((format, out, sink));
    }
    let rows = |answers: &mut Json| {
        answers
            .as_object_mut()
            .and_then(|o| o.remove("rows"))
            .and_then(|n| n.as_u64())
            .unwrap_or_default()
    };
    for (format, out, sink) in &mut sinks {
        deliver_all(&set, sink)?;
        let mut got = run(out);
        rows(&mut got);
        assert_eq!(got, expect(&crmdb_answers(&set)?), "{format:?}: first copy");
        eprintln!("{format:?}: ClickHouse agrees with crmdb on the first copy of 3 tenants");
    }
    // Writes on two tenants, delivered; then tenant_1's batches delivered again, as
    // after a crash before the acknowledgement.
    let before = set.get("tenant_1")?.read(|r| r.sequence())?;
    for round in 0..4 {
        churn(&set.get("tenant_1")?, round)?;
        churn(&set.get("tenant_2")?, round)?;
    }
    let want = expect(&crmdb_answers(&set)?);
    for (format, out, sink) in &mut sinks {
        deliver_all(&set, sink)?;
        let mut got = run(out);
        let delivered_rows = rows(&mut got);
        assert_eq!(got, want, "{format:?}: after the writes");
        let db = set.get("tenant_1")?;
        sink.deliver_from("tenant_1", &db.begin_read()?, before)?;
        sink.deliver_from("tenant_1", &db.begin_read()?, before + 2)?;
        let mut again = run(out);
        let redelivered_rows = rows(&mut again);
        assert_eq!(again, want, "{format:?}: after a redelivery");
        assert!(
            redelivered_rows > delivered_rows,
            "the redelivery added rows ({redelivered_rows:?} > {delivered_rows:?}), which FINAL folds"
        );
        eprintln!(
            "{format:?}: ClickHouse agrees with crmdb after the writes and after a redelivery"
        );
    }
    Ok(())
}
