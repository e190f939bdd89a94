//! Error responses, and what every handler shares to produce them: the JSON body,
//! path and query-string extractors whose rejections are [`ApiError`]s, the fallbacks
//! for unknown routes and methods, and [`blocking`], which runs engine work off the
//! async threads.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use crmdb::{Database, Error};
use serde::de::DeserializeOwned;
use serde_json::{Value as JsonValue, json};

/// An error response: `{"error": {"code", "message"}}`, plus one typed detail for
/// some errors (`"offset"` of a query error, `"oldest"` of a trimmed feed read).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<(&'static str, u64)>,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub(super) fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The response body.
    pub(super) fn to_json(&self) -> JsonValue {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some((name, value)), Some(object)) = (self.detail, error.as_object_mut()) {
            object.insert(name.into(), json!(value));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.to_json())).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            Error::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            Error::UnknownSegment(_) => (S::NOT_FOUND, "unknown_segment"),
            Error::UnknownConsumer(_) => (S::NOT_FOUND, "unknown_consumer"),
            Error::Trimmed { .. } => (S::GONE, "trimmed"),
            Error::Watched(_) => (S::CONFLICT, "watched"),
            Error::Deleted { .. } => (S::CONFLICT, "deleted"),
            Error::Merged { .. } => (S::CONFLICT, "merged"),
            Error::UnmergeConflict { .. } => (S::CONFLICT, "unmerge_conflict"),
            Error::UnknownMerge(_) => (S::NOT_FOUND, "unknown_merge"),
            Error::NotDeleted { .. } => (S::CONFLICT, "not_deleted"),
            Error::Duplicate { .. } => (S::CONFLICT, "duplicate"),
            Error::Taken { .. } => (S::CONFLICT, "taken"),
            Error::StillReferenced { .. } => (S::CONFLICT, "still_referenced"),
            Error::IllegalTransition { .. } => (S::CONFLICT, "illegal_transition"),
            Error::BrokenRelation { .. } => (S::UNPROCESSABLE_ENTITY, "broken_relation"),
            Error::UnknownField { .. } => (S::UNPROCESSABLE_ENTITY, "unknown_field"),
            Error::InvalidField { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_field"),
            Error::Schema { .. } => (S::UNPROCESSABLE_ENTITY, "schema_refused"),
            Error::InvalidMachine { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_machine"),
            Error::Query(_) => (S::UNPROCESSABLE_ENTITY, "invalid_query"),
            Error::SegmentCycle(_) => (S::UNPROCESSABLE_ENTITY, "segment_cycle"),
            Error::InvalidArgument(_) => (S::UNPROCESSABLE_ENTITY, "invalid_argument"),
            Error::LimitExceeded(_) => (S::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            Error::Storage(_) | Error::Poisoned | Error::Io(_) => {
                (S::INTERNAL_SERVER_ERROR, "storage_error")
            }
            // The database moved: the client retries at the machine the message names.
            Error::Moved { .. } => (S::MISDIRECTED_REQUEST, "moved"),
            Error::Corrupt { .. } | Error::UnsupportedFormat { .. } => {
                (S::INTERNAL_SERVER_ERROR, "corrupt")
            }
            _ => (S::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        let detail = match &error {
            Error::Query(query) => Some(("offset", query.offset as u64)),
            // Where a reader that fell behind retention can resume from.
            Error::Trimmed { oldest, .. } => Some(("oldest", *oldest)),
            _ => None,
        };
        ApiError {
            status,
            code,
            message: error.to_string(),
            detail,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "unreadable_body",
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            rejection.body_text(),
        )
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
pub(super) struct Body<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// Path parameters whose rejections are [`ApiError`]s.
pub(super) struct PathArgs<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathArgs(value))
    }
}

/// Query-string parameters whose rejections are [`ApiError`]s.
pub(super) struct QueryArgs<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryArgs(value))
    }
}

pub(super) async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// Errors of the timeout and concurrency layers.
pub(super) async fn middleware_error(error: tower::BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long",
        )
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        )
    }
}

pub(super) type ApiResult<T = Json<JsonValue>> = Result<T, ApiError>;

/// Runs engine work on the blocking pool. A panic there rolls its transaction back
/// (the transaction is dropped uncommitted) and becomes a 500.
pub(super) async fn blocking<T: Send + 'static>(
    db: &Database,
    work: impl FnOnce(&Database) -> crmdb::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || work(&db)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the engine task failed; nothing of it was committed",
        )),
    }
}
