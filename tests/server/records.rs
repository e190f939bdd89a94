//! Health, stats, create-read-replace-delete for every kind, contact fields and tags.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server;
use crate::support::{call, check_error, demo_db, id_of};

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
