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
