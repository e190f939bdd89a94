//! Bearer tokens and scopes on the server: 401 without or with a bad token, 429 over a
//! token's budget, and the leak probe: for every route that takes a record id, a rep
//! asking about another rep's record gets exactly the answer of an id that does not
//! exist.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crmdb::{Contact, ContactId, EntityKind, OwnerId, Principal, Query, Snapshot};
use serde_json::{Value, json};

use super::server::auth::{Tokens, hash_token};
use super::server::{ServerConfig, app_secured, route_table};
use super::support::{call_as, demo_db};

const REP: &str = "rep-secret";
const ADMIN: &str = "admin-secret";
const TINY: &str = "tiny-secret";
const ANALYST: &str = "analyst-secret";
/// An id no record of any kind has.
const NOWHERE: u32 = 987_654;

fn tokens() -> Arc<Tokens> {
    let file = json!([
        {"name": "rep", "sha256": hash_token(REP), "principal": {"owner": 0}},
        {"name": "admin", "sha256": hash_token(ADMIN), "principal": "everyone"},
        {"name": "tiny", "sha256": hash_token(TINY), "principal": {"team": "east"},
         "requests_per_minute": 2},
        {"name": "analyst", "sha256": hash_token(ANALYST), "principal": "everyone",
         "personal": false},
    ]);
    Arc::new(Tokens::parse(&file.to_string()).expect("token file parses"))
}

#[test]
fn token_files_are_checked() {
    for (text, wanted) in [
        ("[]", "no token"),
        ("{", "token file"),
        (
            r#"[{"name":"a","sha256":"abc","principal":"everyone"}]"#,
            "64 hex",
        ),
        (
            &format!(
                r#"[{{"name":"a","sha256":"{}","principal":"everyone","requests_per_minute":0}}]"#,
                hash_token("x")
            ),
            "is 0",
        ),
        (
            &format!(
                r#"[{{"name":"a","sha256":"{h}","principal":"everyone"}},{{"name":"b","sha256":"{h}","principal":"everyone"}}]"#,
                h = hash_token("x")
            ),
            "twice",
        ),
        (
            &format!(
                r#"[{{"name":"a","sha256":"{}","principal":{{"boss":1}}}}]"#,
                hash_token("x")
            ),
            "token file",
        ),
    ] {
        let error = Tokens::parse(text).expect_err(text);
        assert!(error.contains(wanted), "{text}: {error}");
    }
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn requests_need_a_known_token_within_its_budget() {
    let app = app_secured(demo_db(), &ServerConfig::default(), Some(tokens()));
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = call_as(&app, token, Method::GET, "/health", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let request = Request::builder()
        .uri("/contacts/0")
        .body(Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .expect("infallible");
    assert_eq!(
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().ok()),
        Some(Some("Bearer"))
    );
    let (status, _) = call_as(&app, Some(ADMIN), Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    // The rep's token works, but configuration and totals are not the rep's.
    let (status, _) = call_as(&app, Some(REP), Method::GET, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_as(&app, Some(REP), Method::GET, "/stats", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    // Two requests a minute: the third is refused with a time to wait.
    for _ in 0..2 {
        let (status, _) = call_as(&app, Some(TINY), Method::GET, "/health", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let request = Request::builder()
        .uri("/health")
        .header(header::AUTHORIZATION, format!("Bearer {TINY}"))
        .body(Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&wait), "{wait}");
    // Another token's budget is its own.
    let (status, _) = call_as(&app, Some(REP), Method::GET, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// The console's files load without a token (they hold no data); the change stream
/// takes the token as `access_token`, which no other route does.
#[tokio::test]
async fn the_console_loads_without_a_token_and_the_stream_takes_one_as_a_parameter() {
    let app = app_secured(demo_db(), &ServerConfig::default(), Some(tokens()));
    for path in [
        "/",
        "/console/console.js",
        "/console/console.css",
        "/openapi.json",
    ] {
        let (status, _, _) = super::support::fetch(&app, Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let status_of = |uri: String| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("request");
            tower::ServiceExt::oneshot(app, request)
                .await
                .expect("infallible")
                .status()
        }
    };
    assert_eq!(
        status_of(format!("/changes/stream?access_token={REP}")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of("/changes/stream?access_token=wrong".into()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(format!("/contacts?access_token={REP}")).await,
        StatusCode::UNAUTHORIZED,
        "only the stream takes a token as a parameter"
    );
}

/// A plausible body for a route, so that a request gets as far as the record.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    let tail = path.rsplit('/').next().unwrap_or_default();
    Some(match tail {
        "tags" => json!({"tag": "probe"}),
        "stage" => json!({"to": "active"}),
        "consent" => json!({"channel": "sms", "status": "granted"}),
        "erase" => json!({"reason": "asked", "confirm": true}),
        _ if path.starts_with("/contacts/") && *method == Method::PUT => {
            json!({"name": "probe"})
        }
        _ => json!({}),
    })
}

/// The answer with the asked-for id taken out, so that two answers compare.
fn without(id: u32, answer: &(StatusCode, Value)) -> String {
    let text = format!("{} {}", answer.0, answer.1);
    let id = id.to_string();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&id) {
        let before = rest[..at].chars().last();
        let after = rest[at + id.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(&id);
        } else {
            out.push_str("ID");
        }
        rest = &rest[at + id.len()..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn out_of_scope_ids_answer_as_nonexistent_ones_on_every_route() {
    let db = demo_db();
    let rep = Principal::owner(OwnerId::new(0));
    // A task of another rep's, and a merge of two of another rep's contacts.
    let merge = db
        .write(|tx| -> crmdb::Result<u64> {
            tx.insert(crmdb::Task {
                title: "call back".into(),
                assignee: Some(OwnerId::new(1)),
                ..crmdb::Task::default()
            })?;
            let theirs = tx.ids(EntityKind::Contact, &Query::parse("owner = 1")?)?;
            let mut two = theirs.iter();
            let (a, b) = (two.next().expect("one"), two.next().expect("two"));
            tx.merge(
                ContactId::new(a),
                ContactId::new(b),
                &crmdb::identity::MergePolicy::survivor_wins(),
            )
        })
        .expect("task and merge");
    // Someone else's contact, deal, activity, account and task, and an order.
    let hidden = |kind: EntityKind, field: &str| {
        db.read(|r| {
            let all = r.ids(kind, &Query::parse("*")?)?;
            let theirs = match field {
                "" => all,
                field => &all - &r.ids(kind, &Query::parse(&format!("{field} = 0"))?)?,
            };
            Ok(theirs.iter().find(|row| *row >= 10).or(theirs.min()))
        })
        .expect("read")
    };
    let app = app_secured(db.clone(), &ServerConfig::default(), Some(tokens()));
    let mut probed = 0;
    for (method, path) in route_table() {
        if !path.contains("{id}") {
            continue;
        }
        let method: Method = method.parse().expect("a method");
        let kind = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let id = match kind {
            "contacts" => hidden(EntityKind::Contact, "owner"),
            "accounts" => hidden(EntityKind::Account, "owner"),
            "deals" => hidden(EntityKind::Deal, "owner"),
            "activities" => hidden(EntityKind::Activity, "owner"),
            "tasks" => hidden(EntityKind::Task, "assignee"),
            "orders" => hidden(EntityKind::Order, ""),
            // Merges name two contacts; the rep sees none of them.
            "merges" => Some(merge as u32),
            // Products and owners are seen by all.
            _ => continue,
        };
        let Some(id) = id else {
            // The demo data has no such record; an empty kind is probed by nothing.
            println!("{method} {path}: no {kind} out of the rep's sight to probe");
            continue;
        };
        let seen = db
            .read_as(&rep, |r| r.visible(EntityKind::Contact))
            .expect("scoped");
        assert!(kind != "contacts" || !seen.contains(id));
        let body = body_for(&method, &path);
        let out_of_sight = call_as(
            &app,
            Some(REP),
            method.clone(),
            &path.replace("{id}", &id.to_string()),
            body.clone(),
        )
        .await;
        let nowhere = call_as(
            &app,
            Some(REP),
            method.clone(),
            &path.replace("{id}", &NOWHERE.to_string()),
            body,
        )
        .await;
        assert_eq!(
            without(id, &out_of_sight),
            without(NOWHERE, &nowhere),
            "{method} {path}"
        );
        assert!(
            !out_of_sight.0.is_success(),
            "{method} {path} reached a record out of sight: {:?}",
            out_of_sight
        );
        probed += 1;
    }
    assert!(probed >= 40, "only {probed} routes probed");
    // Nothing of the hidden contact changed.
    let id = hidden(EntityKind::Contact, "owner").expect("a hidden contact");
    let before: Contact = demo_db()
        .read(|r| r.get(ContactId::new(id)))
        .expect("fresh");
    let after: Contact = db.read(|r| r.get(ContactId::new(id))).expect("probed");
    assert_eq!((before.name, before.tags), (after.name, after.tags));
}

#[tokio::test]
async fn lists_and_queries_show_only_what_the_token_sees() {
    let db = demo_db();
    let rep = Principal::owner(OwnerId::new(0));
    let mine = db
        .read_as(&rep, |r| r.ids(EntityKind::Contact, &Query::parse("*")?))
        .expect("scoped ids");
    let app = app_secured(db, &ServerConfig::default(), Some(tokens()));
    let (status, body) = call_as(&app, Some(REP), Method::GET, "/contacts?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: crmdb::RoaringBitmap = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_u64().expect("id") as u32)
        .collect();
    assert_eq!(ids, mine);
    let (_, body) = call_as(
        &app,
        Some(REP),
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": "*", "limit": 0})),
    )
    .await;
    assert_eq!(body["count"], json!(mine.len()), "{body}");
    let (_, all) = call_as(
        &app,
        Some(ADMIN),
        Method::POST,
        "/segments/query",
        Some(json!({"kind": "contact", "query": "*", "limit": 0})),
    )
    .await;
    assert!(all["count"].as_u64() > Some(mine.len()), "{all}");
    // The analyst sees every contact, each without its personal fields.
    let (_, page) = call_as(&app, Some(ANALYST), Method::GET, "/contacts?limit=5", None).await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 5, "{page}");
    for item in items {
        assert_eq!(item["name"], json!(crmdb::REDACTED), "{item}");
        assert_eq!(item["email"], Value::Null, "{item}");
    }
}
