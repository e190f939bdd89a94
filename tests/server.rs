//! The example HTTP server: every endpoint and every kind of bad input, in process
//! through the router, plus one test over a real loopback socket (slow client cut off,
//! shutdown).

// Only the router, the serving loop and the import are exercised here, not `main`.
#[allow(dead_code)]
#[path = "../examples/server.rs"]
mod server;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crmdb::{Database, Snapshot as _};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every test finishes well within this.
const BOUND: Duration = Duration::from_secs(20);

fn demo_db() -> Database {
    let db = Database::in_memory().expect("in-memory database");
    crmdb::demo::Generator::new(300)
        .load(&db, |_| {})
        .expect("demo data loads");
    db
}

/// Sends one request through the router: `(status, JSON body or Null)`.
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = tokio::time::timeout(BOUND, app.clone().oneshot(request))
        .await
        .expect("request finishes in time")
        .expect("router is infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("every response body is JSON")
    };
    (status, json)
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let builder = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    };
    send(app, request.expect("request builds")).await
}

async fn raw(
    app: &Router,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(Method::POST).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    send(app, builder.body(Body::from(body)).expect("request builds")).await
}

/// Asserts an error response: status, stable code, a message.
fn check_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "body: {}", response.1);
    assert_eq!(response.1["error"]["code"], code, "body: {}", response.1);
    assert!(
        response.1["error"]["message"].is_string(),
        "body: {}",
        response.1
    );
}

fn id_of(body: &Value) -> u64 {
    body["id"].as_u64().expect("response carries an id")
}

#[tokio::test]
async fn health_and_stats() {
    let app = server::app(demo_db());
    let (status, body) = call(&app, Method::GET, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = call(&app, Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["records"]["contact"]["live"], 300);
    assert_eq!(body["records"]["owner"]["live"], 50);
    assert!(body["stored_bytes"].as_u64().is_some_and(|b| b > 0));
}

/// Create, read, replace, soft-delete and restore, for every kind.
#[tokio::test]
async fn crud_for_every_kind() {
    let app = server::app(demo_db());
    let cases: [(&str, Value, Value, &str); 8] = [
        (
            "contacts",
            json!({"name": "Li Lei", "email": "li.lei@example.com", "region": "shanghai",
                   "tags": ["vip"], "lifetime_value": 99.5, "roles": ["fan"], "owner": 0}),
            json!({"name": "Li Lei", "email": "li.lei@example.com", "region": "beijing"}),
            "region",
        ),
        (
            "accounts",
            json!({"name": "Acme", "industry": "saas", "owner": 1, "size": 40}),
            json!({"name": "Acme", "industry": "retail"}),
            "industry",
        ),
        (
            "deals",
            json!({"name": "Big deal", "contact": 0, "amount": "1000.00", "close_date": "2026-12-01"}),
            json!({"name": "Bigger deal", "contact": 0, "amount": 2000}),
            "name",
        ),
        (
            "activities",
            json!({"kind": "call", "direction": "outbound", "subject": {"contact": 1},
                   "at": "2026-10-01T09:30:00Z"}),
            json!({"kind": "meeting", "subject": {"contact": 1}, "at": "2026-10-01"}),
            "kind",
        ),
        (
            "orders",
            json!({"contact": 2, "at": "2026-10-02", "currency": "CNY",
                   "line_items": [{"product": 0, "quantity": 2, "unit_price": "10.00"}]}),
            json!({"contact": 2, "at": "2026-10-02", "status": "refunded", "total": 5}),
            "status",
        ),
        (
            "products",
            json!({"sku": "SKU-NEW", "name": "Gadget", "list_price": "12.50"}),
            json!({"sku": "SKU-NEW", "name": "Gadget 2"}),
            "name",
        ),
        (
            "owners",
            json!({"name": "Ann", "team": "team_9", "capacity": 10}),
            json!({"name": "Ann", "team": "team_8"}),
            "team",
        ),
        (
            "tasks",
            json!({"title": "Call back", "assignee": 0, "related": {"contact": 3}, "due": "2026-11-05"}),
            json!({"title": "Call back", "status": "done"}),
            "status",
        ),
    ];
    for (path, create, replace, changed) in cases {
        let (status, created) = call(&app, Method::POST, &format!("/{path}"), Some(create)).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
        let id = id_of(&created);
        let url = format!("/{path}/{id}");

        let (status, read) = call(&app, Method::GET, &url, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {read}");
        assert_eq!(read, created, "{path}");

        let expected = replace[changed].clone();
        let (status, replaced) = call(&app, Method::PUT, &url, Some(replace)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {replaced}");
        assert_eq!(replaced[changed], expected, "{path}: {replaced}");

        let (status, deleted) = call(&app, Method::DELETE, &url, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {deleted}");
        assert!(deleted["deleted_at"].is_string(), "{path}: {deleted}");
        check_error(
            &call(&app, Method::DELETE, &url, None).await,
            StatusCode::CONFLICT,
            "deleted",
        );
        let (status, _) = call(&app, Method::GET, &url, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: deleted records stay readable"
        );

        let restore = format!("{url}/restore");
        let (status, restored) = call(&app, Method::POST, &restore, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {restored}");
        assert!(restored["deleted_at"].is_null(), "{path}: {restored}");
        check_error(
            &call(&app, Method::POST, &restore, None).await,
            StatusCode::CONFLICT,
            "not_deleted",
        );

        let missing = format!("/{path}/4000000000");
        check_error(
            &call(&app, Method::GET, &missing, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        check_error(
            &call(&app, Method::DELETE, &missing, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

#[tokio::test]
async fn contact_fields_round_trip() {
    let app = server::app(demo_db());
    let (status, created) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(
            json!({"name": "Han Meimei", "email": "han@example.com", "lifetime_value": "1234.5",
                    "created_at": 1_700_000_000, "stage": "responder"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["lifetime_value"], "1234.50");
    assert_eq!(created["created_at"], "2023-11-14T22:13:20Z");
    assert_eq!(created["stage"], "responder");
    // A response echoed back as a replacement is accepted; the stage is kept.
    let id = id_of(&created);
    let mut echoed = created.clone();
    echoed["name"] = json!("Han M.");
    if let Some(object) = echoed.as_object_mut() {
        object.remove("stage");
    }
    let (status, replaced) =
        call(&app, Method::PUT, &format!("/contacts/{id}"), Some(echoed)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "Han M.");
    assert_eq!(replaced["stage"], "responder");
}

#[tokio::test]
async fn tags() {
    let app = server::app(demo_db());
    let (status, body) = call(
        &app,
        Method::POST,
        "/contacts/5/tags",
        Some(json!({"tag": "spring_sale"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("spring_sale")))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": "tag:spring_sale"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    let (status, body) = call(&app, Method::DELETE, "/contacts/5/tags/spring_sale", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("spring_sale")))
    );
    // Accounts and deals carry tags too.
    let (status, body) = call(
        &app,
        Method::POST,
        "/accounts/0/tags",
        Some(json!({"tag": "key"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, deal) = call(&app, Method::POST, "/deals", Some(json!({"name": "D"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{deal}");
    let url = format!("/deals/{}/tags", id_of(&deal));
    let (status, body) = call(&app, Method::POST, &url, Some(json!({"tag": "q4"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags"], json!(["q4"]));
    // A tag with surrounding spaces is refused, and nothing changes.
    let bad = call(
        &app,
        Method::POST,
        "/contacts/5/tags",
        Some(json!({"tag": " padded "})),
    )
    .await;
    check_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    check_error(
        &call(
            &app,
            Method::POST,
            "/contacts/999999/tags",
            Some(json!({"tag": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn stage_moves_and_history() {
    let app = server::app(Database::in_memory().expect("database"));
    let (_, contact) = call(&app, Method::POST, "/contacts", Some(json!({"name": "A"}))).await;
    let url = format!("/contacts/{}", id_of(&contact));
    assert_eq!(contact["stage"], "prospect");

    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "active", "actor": "ann"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stage"], "active");
    // Backward needs a regress with a reason.
    let refused = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "prospect"})),
    )
    .await;
    check_error(&refused, StatusCode::CONFLICT, "illegal_transition");
    let no_reason = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "prospect", "mode": "regress"})),
    )
    .await;
    check_error(&no_reason, StatusCode::CONFLICT, "illegal_transition");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "responder", "mode": "regress", "reason": "mis-qualified"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stage"], "responder");
    let unknown = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "nowhere"})),
    )
    .await;
    check_error(&unknown, StatusCode::CONFLICT, "illegal_transition");
    let bad_mode = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "active", "mode": "teleport"})),
    )
    .await;
    check_error(&bad_mode, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");

    let (status, body) = call(&app, Method::GET, &format!("{url}/history"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let history = body["history"].as_array().expect("history array");
    let kinds: Vec<&str> = history.iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["create", "move", "regress"]);
    assert_eq!(history[1]["actor"], "ann");
    assert_eq!(history[2]["reason"], "mis-qualified");

    // Deals: guards, terminal stages, reopen.
    let (_, deal) = call(&app, Method::POST, "/deals", Some(json!({"name": "D"}))).await;
    let url = format!("/deals/{}", id_of(&deal));
    let guarded = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "proposal"})),
    )
    .await;
    check_error(&guarded, StatusCode::CONFLICT, "illegal_transition");
    assert!(
        guarded.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("amount"))
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        &url,
        Some(json!({"name": "D", "amount": 500, "close_date": "2026-12-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "won"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stuck = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "lead"})),
    )
    .await;
    check_error(&stuck, StatusCode::CONFLICT, "illegal_transition");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{url}/stage"),
        Some(json!({"to": "negotiation", "mode": "reopen", "reason": "customer came back"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stage"], "negotiation");
    let (status, body) = call(&app, Method::GET, &format!("{url}/history"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["history"].as_array().map(Vec::len), Some(3));

    check_error(
        &call(&app, Method::GET, "/deals/77/history", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    check_error(
        &call(
            &app,
            Method::POST,
            "/contacts/77/stage",
            Some(json!({"to": "active"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

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
        (json!({"kind": "contact", "limit": 0}), "invalid_argument"),
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

/// Every kind of bad request gets its status and a JSON error, and leaves the database
/// as it was.
#[tokio::test]
async fn bad_input_is_refused_and_harmless() {
    let app = server::app(demo_db());
    let before = call(&app, Method::GET, "/stats", None).await.1["records"].clone();
    let (_, contact0) = call(&app, Method::GET, "/contacts/0", None).await;

    let malformed = raw(
        &app,
        "/contacts",
        Some("application/json"),
        b"{\"name\": ".to_vec(),
    )
    .await;
    check_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");
    let malformed = raw(
        &app,
        "/segments/query",
        Some("application/json"),
        b"not json".to_vec(),
    )
    .await;
    check_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");
    let text = raw(
        &app,
        "/contacts",
        Some("text/plain"),
        b"{\"name\":\"x\"}".to_vec(),
    )
    .await;
    check_error(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let none = raw(&app, "/contacts", None, b"{\"name\":\"x\"}".to_vec()).await;
    check_error(
        &none,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let mut huge = b"{\"name\":\"".to_vec();
    huge.resize(huge.len() + (1 << 20), b'a');
    huge.extend_from_slice(b"\"}");
    check_error(
        &raw(&app, "/contacts", Some("application/json"), huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );

    for (method, uri, body, status, code) in [
        (
            Method::POST,
            "/contacts",
            json!({"email": "x@example.com"}),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "colour": "red"}),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": 5}),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "email": "not-an-address"}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "lifetime_value": "12.345"}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "lifetime_value": 0.001}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "created_at": "yesterday"}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "roles": ["king"]}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "custom": {"industry": "saas"}}),
            422,
            "unknown_field",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "email": "c1@mail.example"}),
            409,
            "duplicate",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "owner": 123456}),
            422,
            "broken_relation",
        ),
        (
            Method::POST,
            "/contacts",
            json!({"name": "x", "stage": "nowhere"}),
            409,
            "illegal_transition",
        ),
        (
            Method::POST,
            "/orders",
            json!({"contact": 1, "at": "2026-01-01", "total": 1,
            "line_items": [{"product": 0, "quantity": 1, "unit_price": 2}]}),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/activities",
            json!({"kind": "call", "subject": {"planet": 1}, "at": 0}),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/products",
            json!({"sku": "SKU-00001", "name": "dup"}),
            409,
            "duplicate",
        ),
        (
            Method::PUT,
            "/contacts/0",
            json!({"name": "x", "email": "c2@mail.example"}),
            409,
            "duplicate",
        ),
        (
            Method::PUT,
            "/contacts/0",
            json!({"name": "x", "stage": "nowhere"}),
            409,
            "illegal_transition",
        ),
        (
            Method::PUT,
            "/contacts/999999",
            json!({"name": "x"}),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/contacts/abc",
            Value::Null,
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            "/contacts/-1",
            Value::Null,
            400,
            "invalid_path",
        ),
        (Method::GET, "/nowhere", Value::Null, 404, "no_route"),
        (
            Method::PATCH,
            "/contacts/0",
            Value::Null,
            405,
            "method_not_allowed",
        ),
        (
            Method::DELETE,
            "/segments/query",
            Value::Null,
            405,
            "method_not_allowed",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let response = call(&app, method.clone(), uri, body).await;
        let status = StatusCode::from_u16(status).expect("status");
        check_error(&response, status, code);
    }

    // Intact: same counts, contact 0 unchanged, still serving.
    let after = call(&app, Method::GET, "/stats", None).await.1["records"].clone();
    assert_eq!(before, after);
    assert_eq!(
        call(&app, Method::GET, "/contacts/0", None).await.1,
        contact0
    );
    assert_eq!(
        call(&app, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
}

fn window() -> (crmdb::Timestamp, crmdb::Timestamp) {
    let from = crmdb::Timestamp::from_ymd(2025, 11, 1).expect("valid date");
    let to = crmdb::Timestamp::from_ymd(2026, 11, 1).expect("valid date");
    (from, to)
}

fn u64s(items: &Value, field: &str) -> Vec<u64> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|item| item[field].as_u64())
        .collect()
}

/// Funnel, owner ranking and product sales agree with the engine's functions called
/// directly on the same database.
#[tokio::test]
async fn analytics_agree_with_the_engine() {
    use crmdb::analytics::{self, FunnelRequest, OwnerSort};
    let db = demo_db();
    let app = server::app(db.clone());
    let (from, to) = window();

    let (status, body) = call(
        &app,
        Method::POST,
        "/analytics/funnel",
        Some(json!({"pipeline": "default", "from": "2025-11-01", "to": "2026-11-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = FunnelRequest {
        pipeline: "default".into(),
        from,
        to,
        segment: None,
    };
    let direct = db.read(|r| analytics::funnel(r, &request)).expect("funnel");
    assert!(direct.deals > 0 && direct.won > 0, "{direct:?}");
    assert_eq!(body["deals"], direct.deals);
    assert_eq!(body["won"], direct.won);
    assert_eq!(body["lost"], direct.lost);
    assert_eq!(body["win_rate"], json!(direct.win_rate));
    assert_eq!(body["median_cycle_time"], json!(direct.median_cycle_time));
    assert_eq!(body["from"], "2025-11-01T00:00:00Z");
    assert_eq!(body["to"], "2026-11-01T00:00:00Z");
    assert!(body["segment"].is_null());
    let names: Vec<&str> = body["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    let expected: Vec<&str> = direct.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, expected);
    let entered: Vec<u64> = direct.stages.iter().map(|s| s.entered).collect();
    assert_eq!(u64s(&body["stages"], "entered"), entered);
    let converted: Vec<u64> = direct.stages.iter().map(|s| s.converted).collect();
    assert_eq!(u64s(&body["stages"], "converted"), converted);
    assert_eq!(
        body["stages"][0]["median_time_in_stage"],
        json!(direct.stages[0].median_time_in_stage)
    );

    // The pipeline defaults to `default`; epoch seconds are times too; a segment narrows.
    let (status, same) = call(
        &app,
        Method::POST,
        "/analytics/funnel",
        Some(json!({"from": from.0, "to": "2026-11-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same, body);
    let owner = db
        .read(|r| {
            let deals = r.records::<crmdb::Deal>()?;
            Ok(deals.into_iter().find_map(|(_, d)| d.owner))
        })
        .expect("deals")
        .expect("a deal with an owner");
    let segment = format!("owner = {}", owner.get());
    let (status, narrowed) = call(
        &app,
        Method::POST,
        "/analytics/funnel",
        Some(json!({"from": "2025-11-01", "to": "2026-11-01", "segment": segment})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let request = FunnelRequest {
        segment: Some(crmdb::Query::parse(&segment).expect("query")),
        ..request
    };
    let direct = db.read(|r| analytics::funnel(r, &request)).expect("funnel");
    assert!(direct.deals > 0);
    assert_eq!(narrowed["deals"], direct.deals);
    assert!(narrowed["deals"].as_u64() < body["deals"].as_u64());
    assert!(narrowed["segment"].is_string());

    // Owners: the same order and figures, money as decimals.
    for (sort, engine) in [
        ("won_amount", OwnerSort::WonAmount),
        ("activity_count", OwnerSort::ActivityCount),
        ("cycle_time", OwnerSort::CycleTime),
    ] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/analytics/owners",
            Some(json!({"from": "2025-11-01", "to": "2026-11-01", "sort": sort})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sort"], sort);
        let direct = db
            .read(|r| analytics::owner_ranking(r, from, to, engine))
            .expect("ranking");
        let ids: Vec<u64> = direct.iter().map(|o| u64::from(o.owner.get())).collect();
        assert_eq!(u64s(&body["owners"], "owner"), ids, "{sort}");
        let counts: Vec<u64> = direct.iter().map(|o| o.activity_count).collect();
        assert_eq!(u64s(&body["owners"], "activity_count"), counts, "{sort}");
        assert_eq!(
            body["owners"][0]["won_amount"],
            direct[0].won_amount.to_string()
        );
        assert_eq!(
            body["owners"][0]["weighted_pipeline"],
            direct[0].weighted_pipeline.to_string()
        );
    }
    let (status, body) = call(
        &app,
        Method::POST,
        "/analytics/owners",
        Some(json!({"from": "2025-11-01", "to": "2026-11-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sort"], "won_amount");
    assert_eq!(body["owners"].as_array().map(Vec::len), Some(50));

    // Products and categories.
    let (status, body) = call(
        &app,
        Method::POST,
        "/analytics/products",
        Some(json!({"from": "2025-11-01", "to": "2026-11-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (products, categories) = db
        .read(|r| analytics::product_sales(r, from, to))
        .expect("sales");
    assert!(!products.is_empty());
    let ids: Vec<u64> = products
        .iter()
        .map(|p| u64::from(p.product.get()))
        .collect();
    assert_eq!(u64s(&body["products"], "product"), ids);
    assert_eq!(
        body["products"][0]["revenue"],
        products[0].revenue.to_string()
    );
    assert_eq!(body["products"][0]["units"], products[0].units);
    let names: Vec<&str> = body["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .filter_map(|c| c["category"].as_str())
        .collect();
    let expected: Vec<&str> = categories.iter().map(|c| c.category.as_str()).collect();
    assert_eq!(names, expected);
    assert_eq!(
        body["categories"][0]["revenue"],
        categories[0].revenue.to_string()
    );
}

#[tokio::test]
async fn rfm_refresh_and_state() {
    let db = demo_db();
    let app = server::app(db.clone());
    check_error(
        &call(&app, Method::GET, "/analytics/rfm", None).await,
        StatusCode::NOT_FOUND,
        "rfm_not_refreshed",
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/analytics/rfm/refresh",
        Some(json!({"now": "2026-11-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refreshed_at"], "2026-11-01T00:00:00Z");
    let state = db
        .read(crmdb::analytics::rfm_state)
        .expect("state")
        .expect("refreshed");
    assert_eq!(body["customers"], state.customers);
    assert_eq!(
        body["top20_revenue_share"],
        json!(state.top20_revenue_share)
    );
    let top20 = db
        .read(|r| {
            r.count(
                crmdb::EntityKind::Contact,
                &crmdb::Query::parse("tier:top20")?,
            )
        })
        .expect("count");
    assert!(top20 > 0);
    assert_eq!(body["top20"], top20);
    let (status, read) = call(&app, Method::GET, "/analytics/rfm", None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, body);

    // Without `now`, the database clock.
    let before = db.now();
    let (status, body) = call(
        &app,
        Method::POST,
        "/analytics/rfm/refresh",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = db.now();
    let state = db
        .read(crmdb::analytics::rfm_state)
        .expect("state")
        .expect("refreshed");
    assert!(before <= state.refreshed_at && state.refreshed_at <= after);
    assert_eq!(body["refreshed_at"], state.refreshed_at.to_string());

    for (body, code) in [
        (json!({"now": "soon"}), "invalid_argument"),
        (json!({"now": "2026-02-30"}), "invalid_argument"),
        (json!({"now": true}), "invalid_body"),
        (json!({"when": "2026-11-01"}), "invalid_body"),
    ] {
        let response = call(&app, Method::POST, "/analytics/rfm/refresh", Some(body)).await;
        check_error(&response, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    assert_eq!(
        call(&app, Method::GET, "/analytics/rfm", None).await.1["refreshed_at"],
        state.refreshed_at.to_string()
    );
}

#[tokio::test]
async fn analytics_bad_input() {
    let app = server::app(Database::in_memory().expect("database"));
    let window = |extra: Value| {
        let mut body = json!({"from": "2025-11-01", "to": "2026-11-01"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    for (uri, body, status, code) in [
        (
            "/analytics/funnel",
            window(json!({"pipeline": "nope"})),
            422,
            "invalid_argument",
        ),
        (
            "/analytics/funnel",
            window(json!({"from": "2025-13-01"})),
            422,
            "invalid_argument",
        ),
        (
            "/analytics/funnel",
            window(json!({"to": "last week"})),
            422,
            "invalid_argument",
        ),
        (
            "/analytics/funnel",
            window(json!({"from": "2026-11-01", "to": "2025-11-01"})),
            422,
            "invalid_argument",
        ),
        (
            "/analytics/funnel",
            window(json!({"segment": "owner = "})),
            422,
            "invalid_query",
        ),
        (
            "/analytics/funnel",
            window(json!({"segment": "colour = \"red\""})),
            422,
            "invalid_query",
        ),
        (
            "/analytics/funnel",
            json!({"from": "2025-11-01"}),
            422,
            "invalid_body",
        ),
        (
            "/analytics/funnel",
            window(json!({"from": true})),
            422,
            "invalid_body",
        ),
        (
            "/analytics/owners",
            window(json!({"sort": "height"})),
            422,
            "invalid_body",
        ),
        (
            "/analytics/owners",
            window(json!({"to": "2026-11-01T25:00:00Z"})),
            422,
            "invalid_argument",
        ),
        (
            "/analytics/products",
            json!({"to": "2026-11-01"}),
            422,
            "invalid_body",
        ),
        (
            "/analytics/products",
            window(json!({"category": "x"})),
            422,
            "invalid_body",
        ),
        (
            "/analytics/products",
            window(json!({"from": "2026-11-01"})),
            422,
            "invalid_argument",
        ),
    ] {
        let response = call(&app, Method::POST, uri, Some(body.clone())).await;
        let status = StatusCode::from_u16(status).expect("status");
        check_error(&response, status, code);
    }
    let expected = crmdb::Query::parse("owner = ").expect_err("incomplete");
    let bad = call(
        &app,
        Method::POST,
        "/analytics/funnel",
        Some(window(json!({"segment": "owner = "}))),
    )
    .await;
    assert_eq!(bad.1["error"]["offset"], expected.offset);
    let malformed = raw(
        &app,
        "/analytics/owners",
        Some("application/json"),
        b"{\"from\": ".to_vec(),
    )
    .await;
    check_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");
    check_error(
        &call(&app, Method::GET, "/analytics/funnel", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    check_error(
        &call(&app, Method::DELETE, "/assignment", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn lead_assignment_and_requalify() {
    use crmdb::{Assignment, AssignmentRule, EntityKind, OwnerId, Query, Stage};
    let db = demo_db();
    let app = server::app(db.clone());
    let (status, body) = call(&app, Method::GET, "/assignment", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"rules": [], "excluded": [], "lead_stages": ["prospect", "responder"]})
    );

    let team: Vec<u32> = db
        .read(|r| r.ids(EntityKind::Owner, &Query::parse("team = \"team_0\"")?))
        .expect("team")
        .iter()
        .collect();
    assert!(team.len() >= 3, "{team:?}");
    let excluded = team[0];
    let config = json!({
        "rules": [
            {"round_robin": {"name": "team_0_rr", "team": "team_0"}},
            {"by_region": {"name": "regional"}},
            {"capacity_limited": {"name": "capacity", "team": null, "period_days": 30}},
        ],
        "excluded": [excluded],
        "lead_stages": ["prospect"],
    });
    let (status, saved) = call(&app, Method::PUT, "/assignment", Some(config.clone())).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved, config);
    let (_, read) = call(&app, Method::GET, "/assignment", None).await;
    assert_eq!(read, config);
    let stored = db.read(crmdb::assignment).expect("assignment");
    assert_eq!(
        stored,
        Assignment {
            rules: vec![
                AssignmentRule::RoundRobin {
                    name: "team_0_rr".into(),
                    team: "team_0".into(),
                },
                AssignmentRule::ByRegion {
                    name: "regional".into(),
                },
                AssignmentRule::CapacityLimited {
                    name: "capacity".into(),
                    team: None,
                    period_days: 30,
                },
            ],
            excluded: [OwnerId::new(excluded)].into(),
            lead_stages: vec![Stage::new("prospect")],
        }
    );

    // A lead created without an owner is assigned; requalifying moves it round the team.
    let (status, lead) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "Lead"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let first = lead["owner"].as_u64().expect("assigned on insert");
    let url = format!("/contacts/{}/requalify", id_of(&lead));
    let (status, body) = call(&app, Method::POST, &url, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let owner = body["owner"].as_u64().expect("a rule picked an owner");
    assert_eq!(body["rule"], "team_0_rr");
    assert_eq!(body["contact"]["owner"], owner);
    assert_ne!(owner, first, "round robin moves on");
    for picked in [first, owner] {
        let picked = u32::try_from(picked).expect("row id");
        assert!(team.contains(&picked) && picked != excluded, "{picked}");
    }
    let (_, contact) = call(
        &app,
        Method::GET,
        &format!("/contacts/{}", id_of(&lead)),
        None,
    )
    .await;
    assert_eq!(contact["owner"], owner);

    // Bad input is refused and leaves the configuration as it was.
    for (body, status, code) in [
        (
            json!({"rules": [], "excluded": [123456]}),
            422,
            "broken_relation",
        ),
        (
            json!({"rules": [{"by_region": {"name": " "}}]}),
            422,
            "invalid_argument",
        ),
        (
            json!({"rules": [], "lead_stages": ["nowhere"]}),
            422,
            "invalid_argument",
        ),
        (
            json!({"rules": [{"teleport": {"name": "x"}}]}),
            422,
            "invalid_body",
        ),
        (
            json!({"rules": [{"round_robin": {"name": "x"}}]}),
            422,
            "invalid_body",
        ),
        (
            json!({"rules": [{"capacity_limited": {"name": "x", "period_days": -1}}]}),
            422,
            "invalid_body",
        ),
        (
            json!({"rules": [{"by_region": {"name": "x", "region": "north"}}]}),
            422,
            "invalid_body",
        ),
        (json!({"excluded": [1]}), 422, "invalid_body"),
        (json!({"rules": [], "excluded": [-1]}), 422, "invalid_body"),
    ] {
        let response = call(&app, Method::PUT, "/assignment", Some(body.clone())).await;
        let status = StatusCode::from_u16(status).expect("status");
        check_error(&response, status, code);
    }
    assert_eq!(call(&app, Method::GET, "/assignment", None).await.1, config);

    check_error(
        &call(&app, Method::POST, "/contacts/999999/requalify", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    check_error(
        &call(&app, Method::POST, "/contacts/abc/requalify", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    );
    let (_, deleted) = call(
        &app,
        Method::DELETE,
        &format!("/contacts/{}", id_of(&lead)),
        None,
    )
    .await;
    assert!(deleted["deleted_at"].is_string());
    check_error(
        &call(&app, Method::POST, &url, None).await,
        StatusCode::CONFLICT,
        "deleted",
    );

    // With no rules, requalifying keeps the owner and says so.
    let (status, _) = call(&app, Method::PUT, "/assignment", Some(json!({"rules": []}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, Method::POST, "/contacts/0/requalify", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["owner"].is_null() && body["rule"].is_null(), "{body}");
}

/// A request body that never arrives.
struct StalledBody;

impl hyper::body::Body for StalledBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn slow_requests_time_out() {
    let config = server::ServerConfig {
        request_timeout: Duration::from_millis(200),
        ..server::ServerConfig::default()
    };
    let db = demo_db();
    let app = server::app_with(db.clone(), &config);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/contacts")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(StalledBody))
        .expect("request builds");
    let started = std::time::Instant::now();
    check_error(
        &send(&app, request).await,
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        call(&app, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
    let contacts = db
        .stats()
        .expect("stats")
        .records
        .iter()
        .find(|k| k.kind == crmdb::EntityKind::Contact)
        .map(|k| k.live);
    assert_eq!(contacts, Some(300));
}

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

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from a stream.
fn read_response(stream: &mut std::net::TcpStream) -> (u16, Value) {
    use std::io::Read;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .expect("read within the socket timeout");
        assert!(n > 0, "connection closed before a full response");
        buffer.extend_from_slice(&chunk[..n]);
        let Some(split) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..split]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if buffer.len() >= split + 4 + length {
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            let body = &buffer[split + 4..split + 4 + length];
            let json = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body).expect("JSON body")
            };
            return (status, json);
        }
    }
}

/// The client side of the loopback test, on plain blocking sockets.
fn loopback_client(address: std::net::SocketAddr) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let connect = || {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("socket timeout");
        stream
    };

    // A slow client sends half a header and then nothing.
    let mut slow = connect();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .expect("write");
    let started = std::time::Instant::now();

    // Meanwhile others are served, several requests on one connection.
    let mut client = connect();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let contact = br#"{"name":"Over TCP","email":"tcp@example.com"}"#;
    let request = format!(
        "POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        contact.len()
    );
    client.write_all(request.as_bytes()).expect("write");
    client.write_all(contact).expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!(status, 201, "{body}");
    client
        .write_all(b"POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("malformed_json"))
    );

    // The slow client is disconnected once the header timeout passes (a read error
    // such as a reset counts as disconnected; the 5 s socket timeout does not).
    let mut rest = Vec::new();
    let result = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    if let Err(error) = &result {
        assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "slow client still connected after {waited:?}"
        );
    }
    assert!(
        waited >= Duration::from_millis(250),
        "cut off too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "cut off too late: {waited:?}"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "unexpected reply: {}",
        String::from_utf8_lossy(&rest)
    );

    // Still serving after all that.
    client
        .write_all(b"GET /contacts/300 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!((status, &body["email"]), (200, &json!("tcp@example.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_server_cuts_off_slow_clients() {
    tokio::time::timeout(BOUND, async {
        let config = server::ServerConfig {
            header_read_timeout: Duration::from_millis(300),
            shutdown_grace: Duration::from_secs(1),
            ..server::ServerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = server::app_with(demo_db(), &config);
        let running = tokio::spawn(server::serve(listener, router, config, async {
            let _ = stopped.await;
        }));
        let client = tokio::task::spawn_blocking(move || loopback_client(address)).await;
        let _ = stop.send(());
        let stopped = running.await;
        if let Err(panic) = client {
            std::panic::resume_unwind(panic.into_panic());
        }
        stopped.expect("server task").expect("server stops cleanly");
    })
    .await
    .expect("loopback test finishes in time");
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
