//! Lead assignment rules and requalification over HTTP.

use axum::http::{Method, StatusCode};
use crmdb::Snapshot as _;
use serde_json::json;

use crate::server;
use crate::support::{call, check_error, demo_db, id_of};

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
