//! Identity over HTTP: candidates, merge, lineage, unmerge, consent, erasure.

use axum::http::{Method, StatusCode};
use crmdb::Database;
use serde_json::json;

use crate::server;
use crate::support::{call, check_error, id_of};

#[tokio::test]
async fn candidates_merge_unmerge_consent_and_erasure() {
    let app = server::app(Database::in_memory().expect("database"));
    let (_, a) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "Li Lei", "email": "li.lei@mail.example", "phone": "+86 138 0013 8000", "region": "shanghai"})),
    )
    .await;
    let (_, b) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "LI  LEI", "phone": "138-0013-8000", "region": "shanghai"})),
    )
    .await;
    let (a, b) = (id_of(&a), id_of(&b));

    let (status, found) = call(&app, Method::GET, "/duplicates?kind=contact", None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["candidates"][0]["a"], a);
    assert_eq!(found["candidates"][0]["b"], b);
    check_error(
        &call(&app, Method::GET, "/duplicates?kind=order", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
    );

    let (status, merged) = call(
        &app,
        Method::POST,
        "/contacts/merge",
        Some(json!({"survivor": a, "other": b, "policy": "newest_non_empty"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let merge = merged["merge"].as_u64().expect("merge number");
    check_error(
        &call(
            &app,
            Method::POST,
            &format!("/contacts/{b}/tags"),
            Some(json!({"tag": "x"})),
        )
        .await,
        StatusCode::CONFLICT,
        "merged",
    );
    let (status, lineage) = call(&app, Method::GET, &format!("/merges/{merge}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lineage["other"], b);
    check_error(
        &call(&app, Method::GET, "/merges/99", None).await,
        StatusCode::NOT_FOUND,
        "unknown_merge",
    );
    let (status, undone) = call(
        &app,
        Method::POST,
        &format!("/merges/{merge}/unmerge"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    assert!(undone["undone"].is_object());
    check_error(
        &call(
            &app,
            Method::POST,
            &format!("/merges/{merge}/unmerge"),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "unmerge_conflict",
    );

    let consent = format!("/contacts/{a}/consent");
    let (status, entry) = call(
        &app,
        Method::POST,
        &consent,
        Some(json!({"channel": "sms", "status": "granted", "basis": "consent", "source": "till"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    let (_, state) = call(&app, Method::GET, &consent, None).await;
    assert_eq!(state["state"]["sms"], "granted");
    assert_eq!(state["state"]["email"], "unknown");
    check_error(
        &call(
            &app,
            Method::POST,
            &consent,
            Some(json!({"channel": "sms", "status": "maybe"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
    );
    let (_, count) = call(
        &app,
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": "consent.sms = \"granted\""})),
    )
    .await;
    assert_eq!(count["count"], 1, "{count}");

    let erase = format!("/contacts/{a}/erase");
    check_error(
        &call(
            &app,
            Method::POST,
            &erase,
            Some(json!({"reason": "request"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmation_required",
    );
    let (status, erasure) = call(
        &app,
        Method::POST,
        &erase,
        Some(json!({"reason": "request", "confirm": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{erasure}");
    assert_eq!(erasure["contacts"], json!([a]));
    let (_, record) = call(&app, Method::GET, &format!("/contacts/{a}"), None).await;
    assert_eq!(record["name"], "[erased]");
    assert!(record["email"].is_null(), "{record}");
}
