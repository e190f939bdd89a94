//! Reading many records: `GET /{kind}` pages, a record's change events, the CSV export,
//! and the figures shown beside raw ones.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::server;
use crate::support::{call, check_error, demo_db, get_text, id_of};

/// Every id of a query, read page by page through `GET /{kind}`.
async fn all_ids(app: &axum::Router, base: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let uri = match &cursor {
            Some(c) => format!("{base}&limit=7&cursor={c}"),
            None => format!("{base}&limit=7"),
        };
        let (status, page) = call(app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        ids.extend(page["items"].as_array().expect("items").iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn every_kind_lists_with_the_segment_query_page() {
    let app = server::app(demo_db());
    for (path, kind) in [
        ("contacts", "contact"),
        ("accounts", "account"),
        ("deals", "deal"),
        ("activities", "activity"),
        ("orders", "order"),
        ("products", "product"),
        ("owners", "owner"),
        ("tasks", "task"),
    ] {
        let (status, listed) = call(&app, Method::GET, &format!("/{path}?limit=5"), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {listed}");
        let (_, queried) = call(
            &app,
            Method::POST,
            "/segments/query",
            Some(json!({"kind": kind, "limit": 5})),
        )
        .await;
        assert_eq!(listed, queried, "{path}");
        // The demo data has every kind but tasks.
        let count = listed["count"].as_u64().expect("count");
        assert!(count > 0 || kind == "task", "{path}");
    }

    // A filter, a sort and every page: the same ids as the segment query, in order.
    let query = "tag:vip%20AND%20lifetime_value%20%3E%20100";
    let base = format!("/contacts?query={query}&sort=lifetime_value&descending=true");
    let ids = all_ids(&app, &base).await;
    let (_, whole) = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(
            json!({"kind": "contact", "query": "tag:vip AND lifetime_value > 100",
                    "sort": "lifetime_value", "descending": true, "limit": 10000}),
        ),
    )
    .await;
    let expected: Vec<u64> = whole["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert!(expected.len() > 7, "more than one page");
    assert_eq!(ids, expected);

    // `limit=0` is the count alone.
    let (_, counted) = call(
        &app,
        Method::GET,
        &format!("/contacts?query={query}&limit=0"),
        None,
    )
    .await;
    assert_eq!(counted["count"], whole["count"]);
    assert_eq!(counted["items"], json!([]));

    // A bad query is refused at its offset; a bad parameter is a 400.
    let refused = call(&app, Method::GET, "/contacts?query=tag:vip%20AND", None).await;
    check_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert_eq!(refused.1["error"]["offset"], 11);
    let refused = call(&app, Method::GET, "/contacts?limit=many", None).await;
    check_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter");
    let refused = call(&app, Method::GET, "/contacts?colour=red", None).await;
    check_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter");
    let refused = call(&app, Method::GET, "/contacts?sort=shoe_size", None).await;
    assert!(refused.0.is_client_error(), "{}", refused.1);
}

#[tokio::test]
async fn a_record_shows_its_own_change_events() {
    let app = server::app(crmdb::Database::in_memory().expect("database"));
    let (_, a) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "Li Lei", "email": "li@mail.example"})),
    )
    .await;
    let (_, b) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "Other"})),
    )
    .await;
    let (a, b) = (id_of(&a), id_of(&b));
    let tag = call(
        &app,
        Method::POST,
        &format!("/contacts/{a}/tags"),
        Some(json!({"tag": "vip"})),
    )
    .await;
    assert_eq!(tag.0, StatusCode::OK, "{}", tag.1);
    let (_, _) = call(
        &app,
        Method::POST,
        &format!("/contacts/{b}/tags"),
        Some(json!({"tag": "other"})),
    )
    .await;

    let (status, events) = call(&app, Method::GET, &format!("/contacts/{a}/changes"), None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let types: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    // Newest first, and only this record's.
    assert_eq!(types.first(), Some(&"tag_added"));
    assert!(types.contains(&"inserted"), "{types:?}");
    for event in events["events"].as_array().expect("events") {
        assert_eq!(event["id"], a, "{event}");
        assert!(event["sequence"].is_u64(), "{event}");
    }
    assert_eq!(events["complete"], true, "the whole log was read");
    // The head is the last batch's sequence: reading after it gives nothing yet.
    let (_, head) = call(&app, Method::GET, "/changes/head", None).await;
    let (_, log) = call(&app, Method::GET, "/changes?after=0&limit=1000", None).await;
    assert_eq!(head["sequence"], log["last"]);
    assert_eq!(events["last"], log["last"]);
    let after = format!("/changes?after={}", head["sequence"]);
    let (_, nothing) = call(&app, Method::GET, &after, None).await;
    assert_eq!(nothing["batches"], json!([]));
    let (_, one) = call(
        &app,
        Method::GET,
        &format!("/contacts/{a}/changes?limit=1"),
        None,
    )
    .await;
    assert_eq!(one["events"].as_array().map(Vec::len), Some(1));

    let missing = call(&app, Method::GET, "/contacts/999/changes", None).await;
    check_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let missing = call(&app, Method::GET, &format!("/deals/{a}/changes"), None).await;
    check_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

/// Splits RFC 4180 text into rows of cells (quoted cells may hold commas, quotes and
/// line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "lines end in CRLF");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "the file ends a line"
    );
    rows
}

#[tokio::test]
async fn a_segment_exports_as_quoted_csv() {
    let db = demo_db();
    let app = server::app(db.clone());
    let awkward = "Wang, \"Fang\"\nthe second";
    let (status, created) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": awkward, "email": "wang@mail.example", "tags": ["vip", "export"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let uri =
        "/segments/export?kind=contact&query=tag:vip&fields=id,name,email,tags,lifetime_value";
    let (status, headers, text) = get_text(&app, uri).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/csv"))
    );
    let rows = parse_csv(&text);
    assert_eq!(rows[0], ["id", "name", "email", "tags", "lifetime_value"]);
    let (_, count) = call(&app, Method::GET, "/contacts?query=tag:vip&limit=0", None).await;
    assert_eq!(
        rows.len() as u64 - 1,
        count["count"].as_u64().expect("count")
    );
    let ids: BTreeSet<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), rows.len() - 1, "each record once");
    let id = created["id"].to_string();
    let mine = rows
        .iter()
        .find(|r| r[0] == id)
        .expect("the new contact is exported");
    assert_eq!(mine[1], awkward);
    assert_eq!(mine[3], "export;vip");
    // More than one page of the export: every demo contact, all fields by default.
    let (_, _, all) = get_text(&app, "/segments/export?kind=contact").await;
    let all = parse_csv(&all);
    assert_eq!(all.len(), 302);
    assert_eq!(all[0][0], "id");
    assert!(all[0].iter().any(|f| f == "stats"), "{:?}", all[0]);

    let refused = call(
        &app,
        Method::GET,
        "/segments/export?kind=contact&fields=id,shoe_size",
        None,
    )
    .await;
    check_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "unknown_field");
    let refused = call(
        &app,
        Method::GET,
        "/segments/export?kind=contact&query=(",
        None,
    )
    .await;
    check_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    let refused = call(&app, Method::GET, "/segments/export?kind=shoe", None).await;
    check_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_kind");
    let refused = call(&app, Method::GET, "/segments/export", None).await;
    check_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter");
}

fn days_of(seconds: &Value) -> Value {
    json!(
        seconds
            .as_f64()
            .map(|s| (s / 86_400.0 * 10.0).round() / 10.0)
    )
}

#[tokio::test]
async fn figures_are_also_shown_in_days_and_percent() {
    let app = server::app(demo_db());
    let (status, funnel) = call(
        &app,
        Method::POST,
        "/analytics/funnel",
        Some(json!({"from": "2000-01-01", "to": "2100-01-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{funnel}");
    let mut measured = 0;
    for stage in funnel["stages"].as_array().expect("stages") {
        assert_eq!(
            stage["median_days_in_stage"],
            days_of(&stage["median_time_in_stage"])
        );
        assert_eq!(
            stage["mean_days_in_stage"],
            days_of(&stage["mean_time_in_stage"])
        );
        if let Some(rate) = stage["conversion_rate"].as_f64() {
            assert_eq!(
                stage["conversion_percent"],
                json!((rate * 1000.0).round() / 10.0)
            );
            measured += 1;
        }
    }
    assert!(measured > 0, "{funnel}");
    assert_eq!(
        funnel["median_cycle_days"],
        days_of(&funnel["median_cycle_time"])
    );
    let rate = funnel["win_rate"].as_f64().expect("a win rate");
    assert_eq!(funnel["win_percent"], json!((rate * 1000.0).round() / 10.0));

    let (_, owners) = call(
        &app,
        Method::POST,
        "/analytics/owners",
        Some(json!({"from": "2000-01-01", "to": "2100-01-01"})),
    )
    .await;
    let owner = &owners["owners"][0];
    assert_eq!(
        owner["median_cycle_days"],
        days_of(&owner["median_cycle_time"])
    );
}
