//! Shared helpers: a demo database and requests sent through the router.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crmdb::Database;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Every test finishes well within this.
pub(crate) const BOUND: Duration = Duration::from_secs(20);

pub(crate) fn demo_db() -> Database {
    let db = Database::in_memory().expect("in-memory database");
    crmdb::demo::Generator::new(300)
        .load(&db, |_| {})
        .expect("demo data loads");
    db
}

/// Sends one request through the router: `(status, JSON body or Null)`.
pub(crate) async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
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

pub(crate) async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(app, None, method, uri, body).await
}

/// As [`call`], with `Authorization: Bearer {token}` when a token is given.
pub(crate) async fn call_as(
    app: &Router,
    token: Option<&str>,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    };
    send(app, request.expect("request builds")).await
}

pub(crate) async fn raw(
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
pub(crate) fn check_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "body: {}", response.1);
    assert_eq!(response.1["error"]["code"], code, "body: {}", response.1);
    assert!(
        response.1["error"]["message"].is_string(),
        "body: {}",
        response.1
    );
}

pub(crate) fn id_of(body: &Value) -> u64 {
    body["id"].as_u64().expect("response carries an id")
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from a stream.
pub(crate) fn read_response(stream: &mut std::net::TcpStream) -> (u16, Value) {
    match try_read_response(stream) {
        Ok(response) => response,
        Err(e) => panic!("reading a response: {e}"),
    }
}

/// As [`read_response`], with a closed or failed connection (a server that died) as an
/// error rather than a panic.
pub(crate) fn try_read_response(stream: &mut std::net::TcpStream) -> std::io::Result<(u16, Value)> {
    use std::io::{Error, ErrorKind, Read};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed before a full response",
            ));
        }
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
            return Ok((status, json));
        }
    }
}

/// A GET whose body is not JSON: `(status, headers, text)`.
pub(crate) async fn get_text(app: &Router, uri: &str) -> (StatusCode, header::HeaderMap, String) {
    fetch(app, Method::GET, uri).await
}

/// A request without a body, its answer read as text: `(status, headers, text)`.
pub(crate) async fn fetch(
    app: &Router,
    method: Method,
    uri: &str,
) -> (StatusCode, header::HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request builds");
    let response = tokio::time::timeout(BOUND, app.clone().oneshot(request))
        .await
        .expect("request finishes in time")
        .expect("router is infallible");
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(BOUND, body.collect())
        .await
        .expect("body finishes in time")
        .expect("body reads")
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("a UTF-8 body");
    (parts.status, parts.headers, text)
}

/// `text` with everything but unreserved characters percent-encoded, for a query
/// parameter.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
