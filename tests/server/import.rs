//! Importing CSV and JSON lines, and a durable file holding only what was imported.

use crmdb::Database;

use crate::server;

#[test]
fn import_csv_and_json_lines() {
    let db = Database::in_memory().expect("database");
    let dir = std::env::temp_dir();
    let stem = format!("crmdb-server-import-{}", std::process::id());
    let csv = dir.join(format!("{stem}.csv"));
    std::fs::write(
        &csv,
        "name,email,phone,region,source,tags,stage,lifetime_value\n\
         Li Lei,li@example.com,123,shanghai,web,vip;gold,active,1200.50\n\
         \"Wang, Fang\",wang@example.com,,beijing,,\"vip\",,7\n\
         Bad Email,nope,,,,,,\n\
         Bad Money,money@example.com,,,,,,12.345\n\
         Short,row\n\
         Li Lei again,LI@example.com,,guangzhou,,,,\n\
         No Email,,,,,,,\n",
    )
    .expect("write csv");
    let report = server::import::import_file(&db, &csv).expect("csv imports");
    let _ = std::fs::remove_file(&csv);
    assert_eq!(report.rows, 7);
    assert_eq!((report.inserted, report.updated), (3, 1));
    let lines: Vec<u64> = report.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [4, 5, 6]);

    let jsonl = dir.join(format!("{stem}.jsonl"));
    std::fs::write(
        &jsonl,
        "{\"name\": \"Zhang\", \"email\": \"zhang@example.com\", \"tags\": [\"vip\"]}\n\
         \n\
         {\"name\": \"Broken\"\n\
         {\"name\": \"Wang Fang\", \"email\": \"wang@example.com\", \"region\": \"tianjin\"}\n",
    )
    .expect("write jsonl");
    let report = server::import::import_file(&db, &jsonl).expect("jsonl imports");
    let _ = std::fs::remove_file(&jsonl);
    assert_eq!(
        (report.inserted, report.updated, report.rejected.len()),
        (1, 1, 1)
    );
    assert_eq!(report.rejected[0].0, 3);

    use crmdb::{EntityKind, Query, Snapshot};
    let vips = db
        .read(|r| r.count(EntityKind::Contact, &Query::parse("tag:vip")?))
        .expect("query");
    // An upsert replaces the contact, tags included: only Zhang is still a vip.
    assert_eq!(vips, 1);
}

/// `--db FILE --import FILE` puts exactly the imported rows into the new file: demo
/// data belongs to the in-memory default, or to an explicit `--demo N`.
#[test]
fn a_durable_file_gets_only_what_the_user_puts_there() {
    use clap::Parser as _;
    use crmdb::{EntityKind, Snapshot};
    let dir = std::env::temp_dir();
    let stem = format!("crmdb-server-demo-{}", std::process::id());
    let csv = dir.join(format!("{stem}.csv"));
    let file = dir.join(format!("{stem}.redb"));
    let demo_file = dir.join(format!("{stem}-demo.redb"));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&demo_file);
    std::fs::write(
        &csv,
        "name,email\nLi Lei,li@example.com\nWang Fang,wang@example.com\n",
    )
    .expect("write csv");
    let parse = |args: &[&str]| {
        server::Args::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .expect("arguments parse")
    };
    let (csv_arg, file_arg) = (
        csv.to_str().expect("utf-8 path"),
        file.to_str().expect("utf-8 path"),
    );

    assert_eq!(parse(&[]).demo_contacts(), 20_000);
    assert_eq!(parse(&["--demo", "0"]).demo_contacts(), 0);
    assert_eq!(parse(&["--size", "7"]).demo_contacts(), 7);
    assert_eq!(parse(&["--import", csv_arg]).demo_contacts(), 0);
    assert_eq!(parse(&["--db", file_arg]).demo_contacts(), 0);

    let args = parse(&["--db", file_arg, "--import", csv_arg]);
    let db = server::prepare(&args).expect("the file opens and the rows import");
    let count = |db: &Database| {
        db.read(|r| Ok(r.live(EntityKind::Contact)?.len()))
            .expect("count")
    };
    assert_eq!(count(&db), 2, "only the imported rows");
    drop(db);
    let reopened = Database::open(&file).expect("reopen");
    assert_eq!(count(&reopened), 2);
    drop(reopened);

    let demo_arg = demo_file.to_str().expect("utf-8 path");
    let db = server::prepare(&parse(&["--db", demo_arg, "--demo", "25"])).expect("demo loads");
    assert_eq!(count(&db), 25, "an explicit --demo fills a durable file");
    drop(db);
    for path in [&csv, &file, &demo_file] {
        let _ = std::fs::remove_file(path);
    }
}

/// `mapping=` as a query parameter.
fn mapping_param(mapping: &serde_json::Value) -> String {
    crate::support::percent_encode(&mapping.to_string())
}

/// The database's rows and indexes, as bytes, for "the dry run wrote nothing".
fn stored(db: &Database) -> Vec<u8> {
    use crmdb::{EntityKind, Snapshot};
    db.read(|r| {
        let mut out = Vec::new();
        for (id, contact) in r.records::<crmdb::Contact>()? {
            out.extend(format!("{id:?}{contact:?}").into_bytes());
        }
        out.extend(format!("{:?}", r.live(EntityKind::Contact)?).into_bytes());
        Ok(out)
    })
    .expect("read")
}

#[tokio::test]
async fn the_api_imports_with_a_mapping_and_a_dry_run() {
    use axum::http::StatusCode;
    use crmdb::{EntityKind, FieldDef, FieldType, Query, Snapshot};
    use serde_json::json;

    use crate::support::{check_error, raw};

    let db = Database::in_memory().expect("database");
    db.write(|tx| -> crmdb::Result<()> {
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("joined", FieldType::Date),
        )?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("visits", FieldType::Integer),
        )?;
        tx.insert(crmdb::Contact {
            name: "Existing".into(),
            email: Some("old@mail.example".into()),
            ..crmdb::Contact::default()
        })?;
        Ok(())
    })
    .expect("schema");
    let app = server::app(db.clone());
    let csv = "Full Name,E-mail,Labels,Joined,Visits,Notes\n\
               Li Lei,li@mail.example,vip|gold,03/12/2026,4,call back\n\
               Old One,OLD@mail.example,,01/02/2025,,\n\
               Bad Date,bad@mail.example,,31/13/2026,,\n\
               Bad Count,count@mail.example,,,many,\n\
               \"Wang, Fang\",wang@mail.example,new,,7,\n";
    let mapping = json!({
        "Full Name": "name",
        "e-mail": "email",
        "Labels": {"field": "tags", "split": "|"},
        "Joined": {"field": "custom.joined", "date": "%d/%m/%Y"},
        "Visits": "custom.visits",
    });
    let uri = |dry: bool| {
        format!(
            "/import/contacts?dry_run={dry}&mapping={}",
            mapping_param(&mapping)
        )
    };

    let before = stored(&db);
    let (status, dry) = raw(&app, &uri(true), Some("text/csv"), csv.into()).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(stored(&db), before, "a dry run writes nothing");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["rows"].as_u64(), dry["inserted"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(dry["updated"], 1);
    assert_eq!(dry["ignored_columns"], json!(["Notes"]));
    let lines: Vec<u64> = dry["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [4, 5]);
    assert!(
        dry["rejected"][1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Visits"))
    );

    // The real import does what the dry run said.
    let (status, done) = raw(
        &app,
        &uri(false),
        Some("text/csv; charset=utf-8"),
        csv.into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    for field in ["rows", "inserted", "updated", "rejected", "ignored_columns"] {
        assert_eq!(done[field], dry[field], "{field}");
    }
    let count = |q: &str| {
        db.read(|r| r.count(EntityKind::Contact, &Query::parse(q)?))
            .expect("count")
    };
    assert_eq!(count("tag:gold AND custom.visits = 4"), 1);
    assert_eq!(count("custom.joined >= 2026-12-03"), 1);
    assert_eq!(count("custom.joined = 2025-02-01"), 1, "the upserted row");
    assert_eq!(count("*"), 3);

    // JSON Lines with a mapping of its keys; other keys are the contact's own.
    let lines = "{\"fullName\": \"Zhang San\", \"mail\": \"zhang@mail.example\", \"tags\": [\"vip\"], \"joined\": \"2026-01-05\"}\n";
    let jsonl_mapping = json!({"fullName": "name", "mail": "email", "joined": {"field": "custom.joined", "date": "%Y-%m-%d"}});
    let uri = format!("/import/contacts?mapping={}", mapping_param(&jsonl_mapping));
    let (status, report) = raw(&app, &uri, Some("application/x-ndjson"), lines.into()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["inserted"], 1, "{report}");
    assert_eq!(count("custom.joined = 2026-01-05 AND tag:vip"), 1);

    // Refusals: a mapping to no field, a bad transform, an unknown format, no name
    // column.
    for bad in [
        json!({"E-mail": "mail_address"}),
        json!({"Joined": {"field": "created_at", "date": "%d.%q"}}),
        json!({"Labels": {"field": "tags", "separator": "|"}}),
        json!(["email"]),
    ] {
        let uri = format!("/import/contacts?mapping={}", mapping_param(&bad));
        let refused = raw(&app, &uri, Some("text/csv"), csv.into()).await;
        check_error(
            &refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_mapping",
        );
    }
    let refused = raw(
        &app,
        "/import/contacts",
        Some("application/pdf"),
        csv.into(),
    )
    .await;
    check_error(
        &refused,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let refused = raw(&app, "/import/contacts", Some("text/csv"), csv.into()).await;
    check_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_import");
    let refused = raw(&app, "/import/contacts?format=csv", None, vec![0xff, 0xfe]).await;
    check_error(&refused, StatusCode::BAD_REQUEST, "unreadable_body");
}
