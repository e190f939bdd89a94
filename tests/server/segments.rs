//! Segment queries and saved segments over HTTP.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server;
use crate::support::{call, check_error, demo_db, id_of};

#[tokio::test]
async fn segment_queries() {
    let app = server::app(demo_db());
    let request = json!({
        "kind": "contact", "query": "tag:vip AND lifetime_value >= 10", "limit": 7,
        "cursor": null, "sort": "lifetime_value", "descending": true,
        "group_by": "region", "sum": "lifetime_value",
    });
    let (status, first) = call(&app, Method::POST, "/segments/query", Some(request.clone())).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let count = first["count"].as_u64().expect("count");
    assert!(count > 7, "{first}");
    let items = first["items"].as_array().expect("items");
    assert_eq!(items.len(), 7);
    let values: Vec<f64> = items
        .iter()
        .filter_map(|c| c["lifetime_value"].as_str()?.parse().ok())
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "sorted descending: {values:?}"
    );
    let groups = first["groups"].as_array().expect("groups");
    let grouped: u64 = groups.iter().filter_map(|g| g["count"].as_u64()).sum();
    assert_eq!(grouped, count);
    assert!(
        groups[0]["sum"].is_string(),
        "money sums are decimals: {}",
        groups[0]
    );

    // Walk every page: each match exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = Value::Null;
    for _ in 0..100 {
        let mut page = request.clone();
        page["cursor"] = cursor;
        page["group_by"] = Value::Null;
        page["sum"] = Value::Null;
        let (status, body) = call(&app, Method::POST, "/segments/query", Some(page)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("groups").is_none());
        for item in body["items"].as_array().expect("items") {
            assert!(seen.insert(id_of(item)), "no record twice");
        }
        cursor = body["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen.len() as u64, count);

    // Defaults: every record, by id.
    let (status, body) = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "owner"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 50);
    assert_eq!(body["items"][0]["id"], 0);

    // A parse error names the parser's byte offset.
    let text = "tag:vip AND (region = ";
    let expected = crmdb::Query::parse(text).expect_err("incomplete query");
    let bad = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": text})),
    )
    .await;
    check_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert_eq!(bad.1["error"]["offset"], expected.offset);
    let unknown = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": "colour = \"red\""})),
    )
    .await;
    check_error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert_eq!(unknown.1["error"]["offset"], 0);
    for (body, code) in [
        (json!({"kind": "planet"}), "invalid_kind"),
        (
            json!({"kind": "contact", "cursor": "garbage"}),
            "invalid_argument",
        ),
        (
            json!({"kind": "contact", "limit": 10_001}),
            "invalid_argument",
        ),
        (
            json!({"kind": "contact", "sort": "tag"}),
            "invalid_argument",
        ),
        (
            json!({"kind": "contact", "sum": "lifetime_value"}),
            "invalid_argument",
        ),
        (
            json!({"kind": "contact", "group_by": "lifetime_value"}),
            "invalid_argument",
        ),
        (
            json!({"kind": "contact", "group_by": "nope"}),
            "unknown_field",
        ),
        (json!({"kind": "contact", "limit": -1}), "invalid_body"),
    ] {
        let response = call(&app, Method::POST, "/segments/query", Some(body.clone())).await;
        check_error(&response, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
}

#[tokio::test]
async fn saved_segments() {
    let app = server::app(demo_db());
    let (status, body) = call(
        &app,
        Method::PUT,
        "/segments/vips",
        Some(json!({"kind": "contact", "query": "tag:vip"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "dynamic");
    let vips = body["count"].as_u64().expect("count");
    assert!(vips > 0);
    let (status, body) = call(
        &app,
        Method::PUT,
        "/segments/picked",
        Some(json!({"kind": "contact", "ids": [3, 1, 2, 3]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ids"], json!([1, 2, 3]));
    assert_eq!(body["count"], 3);

    let (status, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["segments"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["picked", "vips"]);
    let (status, body) = call(&app, Method::GET, "/segments/vips", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["query"], "tag = \"vip\"");
    assert_eq!(body["count"], vips);

    let (status, body) = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(
            json!({"kind": "contact", "query": "segment:vips AND segment:picked OR segment:vips"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], vips);

    let (status, body) = call(&app, Method::DELETE, "/segments/picked", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    check_error(
        &call(&app, Method::DELETE, "/segments/picked", None).await,
        StatusCode::NOT_FOUND,
        "unknown_segment",
    );
    check_error(
        &call(&app, Method::GET, "/segments/picked", None).await,
        StatusCode::NOT_FOUND,
        "unknown_segment",
    );

    let text = "tag:vip AND";
    let expected = crmdb::Query::parse(text).expect_err("incomplete");
    let bad = call(
        &app,
        Method::PUT,
        "/segments/broken",
        Some(json!({"kind": "contact", "query": text})),
    )
    .await;
    check_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert_eq!(bad.1["error"]["offset"], expected.offset);
    for (name, body, code) in [
        (
            "both",
            json!({"kind": "contact", "query": "*", "ids": [1]}),
            "invalid_argument",
        ),
        ("neither", json!({"kind": "contact"}), "invalid_argument"),
        (
            "Bad-Name",
            json!({"kind": "contact", "query": "*"}),
            "invalid_argument",
        ),
        (
            "loop",
            json!({"kind": "contact", "query": "segment:loop"}),
            "segment_cycle",
        ),
        ("k", json!({"kind": "galaxy", "query": "*"}), "invalid_kind"),
    ] {
        let response = call(&app, Method::PUT, &format!("/segments/{name}"), Some(body)).await;
        check_error(&response, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let (_, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(body["segments"].as_array().map(Vec::len), Some(1));
}
