//! Stage moves and stage history over HTTP.

use axum::http::{Method, StatusCode};
use crmdb::Database;
use serde_json::json;

use crate::server;
use crate::support::{call, check_error, id_of};

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
