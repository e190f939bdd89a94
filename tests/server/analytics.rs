//! Analytics endpoints agree with the engine; RFM refresh; bad analytics input.

use axum::http::{Method, StatusCode};
use crmdb::{Database, Snapshot as _};
use serde_json::{Value, json};

use crate::server;
use crate::support::{call, check_error, demo_db, raw};

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
