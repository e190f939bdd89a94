//! The console (`GET /`) and the OpenAPI document (`GET /openapi.json`), both embedded in
//! the binary: the console is plain HTML, CSS and JavaScript with no framework and no
//! fetch from anywhere but this server, so it works on a machine without a network.
//! Its Content-Security-Policy says so to the browser too.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::{ApiError, PathArgs};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const RECORD_PAGES: &str = include_str!("console/console-records.js");
const OTHER_PAGES: &str = include_str!("console/console-pages.js");
const STYLE: &str = include_str!("console/console.css");
const OPENAPI: &str = include_str!("openapi.json");

/// Only this server, for every kind of resource the page loads.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                      script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the console's page.
pub(super) async fn index() -> Response {
    asset_response("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{asset}`: its scripts and style sheet.
pub(super) async fn asset(PathArgs(name): PathArgs<String>) -> Result<Response, ApiError> {
    match name.as_str() {
        "console.js" => Ok(asset_response("text/javascript; charset=utf-8", SCRIPT)),
        "console-records.js" => Ok(asset_response(
            "text/javascript; charset=utf-8",
            RECORD_PAGES,
        )),
        "console-pages.js" => Ok(asset_response(
            "text/javascript; charset=utf-8",
            OTHER_PAGES,
        )),
        "console.css" => Ok(asset_response("text/css; charset=utf-8", STYLE)),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("the console has no asset {name:?}"),
        )),
    }
}

/// `GET /openapi.json`: the server's endpoints as an OpenAPI 3.1 document.
pub(super) async fn openapi() -> Response {
    asset_response("application/json", OPENAPI)
}
