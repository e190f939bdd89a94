//! Every kind of bad request is refused with a JSON error and changes nothing.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server;
use crate::support::{call, check_error, demo_db, raw};

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
