//! The console's embedded assets and the OpenAPI document, which must name every route
//! the router has, and only those.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode, header};
use serde_json::Value;

use crate::server;
use crate::support::{call, check_error, demo_db, fetch, get_text};

#[tokio::test]
async fn the_console_is_served_from_the_binary() {
    let app = server::app(demo_db());
    let (status, headers, page) = get_text(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html"))
    );
    let policy = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("a policy");
    assert!(policy.contains("default-src 'self'"), "{policy}");
    // Every asset the page names is served; nothing is fetched from elsewhere: no
    // absolute URL in any asset.
    let assets = [
        "console.js",
        "console-records.js",
        "console-pages.js",
        "console.css",
    ];
    for asset in assets {
        assert!(
            page.contains(&format!("/console/{asset}")),
            "the page loads {asset}"
        );
        let (status, _, text) = get_text(&app, &format!("/console/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(text.len() > 1_000, "{asset} is the real asset");
        for scheme in ["http://", "https://", "//cdn"] {
            assert!(!text.contains(scheme), "{asset} names {scheme}");
        }
    }
    assert!(!page.contains("http://") && !page.contains("https://"));
    let missing = call(&app, Method::GET, "/console/other.js", None).await;
    check_error(&missing, StatusCode::NOT_FOUND, "no_route");
}

/// The document's operations as `(METHOD, path)`.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A request path for a templated one: each `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{name}", "probe")
        .replace("{tag}", "vip")
        .replace("{asset}", "console.js")
}

#[tokio::test]
async fn the_openapi_document_names_every_route() {
    let app = server::app(demo_db());
    let (status, doc) = call(&app, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    let routed: BTreeSet<(String, String)> = server::route_table().into_iter().collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // Each documented operation reaches a handler: whatever it answers to an empty
    // request, it is not the router's "no such endpoint" or "wrong method".
    for (method, path) in &documented {
        let operation = &doc["paths"][path][method.to_lowercase()];
        assert!(
            operation["summary"].is_string(),
            "{method} {path} has a summary"
        );
        assert!(
            operation["responses"].is_object(),
            "{method} {path} has responses"
        );
        if path == "/changes/stream" {
            continue; // a stream; reached in tests/server/changes.rs
        }
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let (status, headers, body) = fetch(&app, method.clone(), &concrete(path)).await;
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("application/json")));
        if is_json && !body.is_empty() {
            let body: Value = serde_json::from_str(&body).expect("JSON");
            let code = body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path}: {status} {body}"
            );
        }
    }
}
