//! An HTTP/JSON server in front of crmdb.
//!
//! ```text
//! cargo run --release --example server                 # in memory, 20 000 demo contacts
//! cargo run --release --example server -- --db crm.redb --import contacts.csv
//! ```
//!
//! **Boundary**: this example is the only place that knows HTTP and JSON. The request and
//! response shapes live in `server/records.rs` (records), `server/fields.rs` (the
//! single values both share) and `server/analytics.rs` (analytics and lead assignment);
//! the engine sees typed records only.
//!
//! Every engine call runs on tokio's blocking pool, inside one transaction per request,
//! so a refused or malformed request leaves the database exactly as it was. Slow or
//! oversized requests are cut off: a header read timeout per connection, a body limit,
//! a whole-request timeout and a global concurrency limit.

#[path = "server/analytics.rs"]
pub mod analytics;
#[path = "server/fields.rs"]
pub mod fields;
#[path = "server/import.rs"]
pub mod import;
#[path = "server/records.rs"]
pub mod records;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use crmdb::{
    Account, Activity, Contact, Database, Deal, EntityKind, Error, FieldType, GroupBy, Order,
    Owner, Product, Query, ReadTransaction, RecordId, SavedSegment, Snapshot, SortBy, StagedId,
    Task,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as JsonValue, json};
use tower::ServiceBuilder;

use self::analytics::{
    AssignmentIn, FunnelIn, OwnersIn, ProductsIn, RfmRefreshIn, assignment_json, funnel_json,
    owners_json, products_json, rfm_json,
};
use self::records::{Resource, stage_change_json};

// ---- configuration ----

/// Limits of a running server.
///
/// # Defaults
/// Header read timeout 10 s, request timeout 30 s, body limit 1 MiB, 64 requests at
/// once, 5 s grace on shutdown.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long one request may take, queueing included.
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; others wait (within the request timeout).
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

// ---- errors ----

/// An error response: `{"error": {"code", "message", "offset"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    offset: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            offset: None,
        }
    }

    fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(offset), Some(object)) = (self.offset, error.as_object_mut()) {
            object.insert("offset".into(), json!(offset));
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            Error::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            Error::UnknownSegment(_) => (S::NOT_FOUND, "unknown_segment"),
            Error::Deleted { .. } => (S::CONFLICT, "deleted"),
            Error::NotDeleted { .. } => (S::CONFLICT, "not_deleted"),
            Error::Duplicate { .. } => (S::CONFLICT, "duplicate"),
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
            Error::Corrupt { .. } | Error::UnsupportedFormat { .. } => {
                (S::INTERNAL_SERVER_ERROR, "corrupt")
            }
            _ => (S::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        let offset = match &error {
            Error::Query(query) => Some(query.offset),
            _ => None,
        };
        ApiError {
            status,
            code,
            message: error.to_string(),
            offset,
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

/// A JSON body whose rejections are [`ApiError`]s.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// Path parameters whose rejections are [`ApiError`]s.
struct PathArgs<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathArgs(value))
    }
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// Errors of the timeout and concurrency layers.
async fn middleware_error(error: tower::BoxError) -> ApiError {
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

type ApiResult<T = Json<JsonValue>> = Result<T, ApiError>;

/// Runs engine work on the blocking pool. A panic there rolls its transaction back
/// (the transaction is dropped uncommitted) and becomes a 500.
async fn blocking<T: Send + 'static>(
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

// ---- the router ----

/// The whole API with the default limits.
pub fn app(db: Database) -> Router {
    app_with(db, &ServerConfig::default())
}

/// The whole API with the given limits.
pub fn app_with(db: Database, config: &ServerConfig) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/segments", get(list_segments))
        .route("/segments/query", post(query_segment))
        .route(
            "/segments/{name}",
            get(read_segment).put(save_segment).delete(delete_segment),
        )
        .route("/analytics/funnel", post(funnel))
        .route("/analytics/owners", post(owner_ranking))
        .route("/analytics/products", post(product_sales))
        .route("/analytics/rfm", get(rfm_state))
        .route("/analytics/rfm/refresh", post(refresh_rfm))
        .route("/assignment", get(read_assignment).put(save_assignment))
        .route("/contacts/{id}/requalify", post(requalify));
    router = crud_routes::<Contact>(router);
    router = crud_routes::<Account>(router);
    router = crud_routes::<Deal>(router);
    router = crud_routes::<Activity>(router);
    router = crud_routes::<Order>(router);
    router = crud_routes::<Product>(router);
    router = crud_routes::<Owner>(router);
    router = crud_routes::<Task>(router);
    router = tag_routes::<Contact>(router);
    router = tag_routes::<Account>(router);
    router = tag_routes::<Deal>(router);
    router = stage_routes::<Contact>(router);
    router = stage_routes::<Deal>(router);
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    middleware_error,
                ))
                .layer(tower::timeout::TimeoutLayer::new(config.request_timeout))
                // Global: `Router::layer` wraps each route separately, and a per-route
                // limit would not bound the server as a whole.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    config.max_concurrent_requests,
                )),
        )
        .with_state(db)
}

fn crud_routes<R: Resource>(router: Router<Database>) -> Router<Database> {
    let base = format!("/{}", R::PATH);
    router
        .route(&base, post(create::<R>))
        .route(
            &format!("{base}/{{id}}"),
            get(read::<R>).put(replace::<R>).delete(soft_delete::<R>),
        )
        .route(&format!("{base}/{{id}}/restore"), post(restore::<R>))
}

fn tag_routes<R: Resource>(router: Router<Database>) -> Router<Database> {
    let base = format!("/{}/{{id}}/tags", R::PATH);
    router
        .route(&base, post(add_tag::<R>))
        .route(&format!("{base}/{{tag}}"), delete(remove_tag::<R>))
}

fn stage_routes<R: Resource>(router: Router<Database>) -> Router<Database>
where
    R::Id: Into<StagedId>,
{
    let base = format!("/{}/{{id}}", R::PATH);
    router
        .route(&format!("{base}/stage"), post(move_stage::<R>))
        .route(&format!("{base}/history"), get(history::<R>))
}

// ---- records ----

fn record_json<R: Resource>(snapshot: &impl Snapshot, id: R::Id) -> crmdb::Result<JsonValue> {
    let record: R = snapshot.get(id)?;
    Ok(R::to_json(id, &record))
}

async fn create<R: Resource>(
    State(db): State<Database>,
    Body(input): Body<R::Input>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let record = R::from_input(input, &tx.schema(R::KIND)?)?;
            let id = tx.insert(record)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json)))
}

async fn read<R: Resource>(State(db): State<Database>, PathArgs(id): PathArgs<u32>) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.read(|r| record_json::<R>(r, R::Id::from_row(id)))
    })
    .await?;
    Ok(Json(json))
}

/// Replaces the caller's fields of a live record (engine-maintained ones are kept).
async fn replace<R: Resource>(
    State(db): State<Database>,
    PathArgs(id): PathArgs<u32>,
    Body(input): Body<R::Input>,
) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            let stored: R = tx.get(id)?;
            let mut record = R::from_input(input, &tx.schema(R::KIND)?)?;
            record.keep_on_replace(&stored);
            tx.update(id, record)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

async fn soft_delete<R: Resource>(
    State(db): State<Database>,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            tx.soft_delete(id)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

async fn restore<R: Resource>(
    State(db): State<Database>,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            tx.restore(id)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    tag: String,
}

async fn add_tag<R: Resource>(
    State(db): State<Database>,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<TagRequest>,
) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            tx.add_tag(id, &request.tag)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

async fn remove_tag<R: Resource>(
    State(db): State<Database>,
    PathArgs((id, tag)): PathArgs<(u32, String)>,
) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            tx.remove_tag(id, &tag)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

/// How a stage move goes through the lifecycle machine.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MoveMode {
    /// A plain move.
    #[default]
    Move,
    /// Backward with a reason.
    Regress,
    /// Out of a terminal stage with a reason.
    Reopen,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageRequest {
    to: String,
    #[serde(default)]
    mode: MoveMode,
    #[serde(default)]
    reason: Option<String>,
    /// Recorded in the stage history; `system` when absent.
    #[serde(default)]
    actor: Option<String>,
}

async fn move_stage<R: Resource>(
    State(db): State<Database>,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<StageRequest>,
) -> ApiResult
where
    R::Id: Into<StagedId>,
{
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = R::Id::from_row(id);
            if let Some(actor) = request.actor {
                tx.set_actor(actor);
            }
            let to = request.to.as_str();
            let reason = request.reason.as_deref().unwrap_or("");
            match request.mode {
                MoveMode::Move => tx.move_stage(id, to)?,
                MoveMode::Regress => tx.regress(id, to, reason)?,
                MoveMode::Reopen => tx.reopen(id, to, reason)?,
            }
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok(Json(json))
}

async fn history<R: Resource>(State(db): State<Database>, PathArgs(id): PathArgs<u32>) -> ApiResult
where
    R::Id: Into<StagedId>,
{
    let json = blocking(&db, move |db| {
        db.read(|r| {
            let id = R::Id::from_row(id);
            // Unknown records are a 404, not an empty history.
            let _: R = r.get(id)?;
            let changes = r.history(id)?;
            Ok(json!({
                "id": id.row(),
                "history": changes.iter().map(stage_change_json).collect::<Vec<_>>(),
            }))
        })
    })
    .await?;
    Ok(Json(json))
}

// ---- segments ----

fn parse_kind(name: &str) -> Result<EntityKind, ApiError> {
    EntityKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = EntityKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::unprocessable(
            "invalid_kind",
            format!(
                "unknown kind {name:?}; expected one of {}",
                names.join(", ")
            ),
        )
    })
}

fn default_limit() -> usize {
    20
}

fn default_query() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentQueryRequest {
    kind: String,
    #[serde(default = "default_query")]
    query: String,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    cursor: Option<String>,
    /// A field name, or `id` (the default) for creation order.
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    descending: bool,
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    sum: Option<String>,
}

struct PageJson {
    total: u64,
    items: Vec<JsonValue>,
    next_cursor: Option<String>,
}

fn page_of<R: Resource>(
    r: &ReadTransaction,
    query: &Query,
    sort: &SortBy,
    limit: usize,
    cursor: Option<&str>,
) -> crmdb::Result<PageJson> {
    let page = r.page::<R>(query, sort, limit, cursor)?;
    Ok(PageJson {
        total: page.total,
        items: page
            .items
            .iter()
            .map(|(id, record)| R::to_json(*id, record))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

fn page_any(
    r: &ReadTransaction,
    kind: EntityKind,
    query: &Query,
    sort: &SortBy,
    limit: usize,
    cursor: Option<&str>,
) -> crmdb::Result<PageJson> {
    match kind {
        EntityKind::Contact => page_of::<Contact>(r, query, sort, limit, cursor),
        EntityKind::Account => page_of::<Account>(r, query, sort, limit, cursor),
        EntityKind::Deal => page_of::<Deal>(r, query, sort, limit, cursor),
        EntityKind::Activity => page_of::<Activity>(r, query, sort, limit, cursor),
        EntityKind::Order => page_of::<Order>(r, query, sort, limit, cursor),
        EntityKind::Product => page_of::<Product>(r, query, sort, limit, cursor),
        EntityKind::Owner => page_of::<Owner>(r, query, sort, limit, cursor),
        EntityKind::Task => page_of::<Task>(r, query, sort, limit, cursor),
    }
}

/// Whether a field holds money, so that its sums are shown as decimals.
fn is_money_field(r: &ReadTransaction, kind: EntityKind, field: &str) -> crmdb::Result<bool> {
    if let Some(custom) = field.strip_prefix("custom.") {
        let schema = r.schema(kind)?;
        return Ok(schema
            .field(custom)
            .is_some_and(|def| def.field_type == FieldType::Money));
    }
    Ok(matches!(
        (kind, field),
        (EntityKind::Contact, "lifetime_value" | "total_spent")
            | (EntityKind::Deal, "amount")
            | (EntityKind::Order, "total")
            | (EntityKind::Product, "list_price")
    ))
}

fn sum_json(sum: i128, money: bool) -> JsonValue {
    match i64::try_from(sum) {
        Ok(small) if money => JsonValue::String(crmdb::Money(small).to_string()),
        Ok(small) => json!(small),
        Err(_) => JsonValue::String(sum.to_string()),
    }
}

async fn query_segment(
    State(db): State<Database>,
    Body(request): Body<SegmentQueryRequest>,
) -> ApiResult {
    let kind = parse_kind(&request.kind)?;
    if request.sum.is_some() && request.group_by.is_none() {
        return Err(ApiError::unprocessable(
            "invalid_argument",
            "\"sum\" needs \"group_by\"",
        ));
    }
    let json = blocking(&db, move |db| {
        let query = Query::parse(&request.query)?;
        let sort = match request.sort.as_deref() {
            None | Some("id") => SortBy::id(),
            Some(field) => SortBy::field(field),
        };
        let sort = if request.descending {
            sort.descending()
        } else {
            sort
        };
        // One snapshot: the page and the groups agree with each other.
        db.read(|r| {
            let page = page_any(
                r,
                kind,
                &query,
                &sort,
                request.limit,
                request.cursor.as_deref(),
            )?;
            let mut out = json!({
                "kind": kind.as_str(),
                "query": query.to_string(),
                "count": page.total,
                "items": page.items,
                "next_cursor": page.next_cursor,
            });
            if let Some(field) = &request.group_by {
                let mut group = GroupBy::new(field.as_str());
                let mut money = false;
                if let Some(sum) = &request.sum {
                    group = group.sum(sum.as_str());
                    money = is_money_field(r, kind, sum)?;
                }
                let groups: Vec<JsonValue> = r
                    .group_by(kind, &query, &group)?
                    .into_iter()
                    .map(|g| {
                        let mut item = json!({ "value": g.value, "count": g.count });
                        if let (Some(sum), Some(object)) = (g.sum, item.as_object_mut()) {
                            object.insert("sum".into(), sum_json(sum, money));
                        }
                        item
                    })
                    .collect();
                if let Some(object) = out.as_object_mut() {
                    object.insert("groups".into(), JsonValue::Array(groups));
                }
            }
            Ok(out)
        })
    })
    .await?;
    Ok(Json(json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveSegmentRequest {
    kind: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    ids: Option<Vec<u32>>,
}

fn segment_json(
    r: &ReadTransaction,
    name: &str,
    segment: &SavedSegment,
) -> crmdb::Result<JsonValue> {
    let count = r.count(segment.kind(), &Query::segment(name))?;
    Ok(match segment {
        SavedSegment::Dynamic { kind, query } => json!({
            "name": name,
            "kind": kind.as_str(),
            "type": "dynamic",
            "query": query.to_string(),
            "count": count,
        }),
        SavedSegment::Static { kind, rows } => json!({
            "name": name,
            "kind": kind.as_str(),
            "type": "static",
            "ids": rows,
            "count": count,
        }),
    })
}

async fn save_segment(
    State(db): State<Database>,
    PathArgs(name): PathArgs<String>,
    Body(request): Body<SaveSegmentRequest>,
) -> ApiResult {
    let kind = parse_kind(&request.kind)?;
    let json = blocking(&db, move |db| {
        let segment = match (request.query, request.ids) {
            (Some(text), None) => SavedSegment::Dynamic {
                kind,
                query: Query::parse(&text)?,
            },
            (None, Some(mut rows)) => {
                rows.sort_unstable();
                rows.dedup();
                SavedSegment::Static { kind, rows }
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "a segment has either \"query\" (dynamic) or \"ids\" (static)".into(),
                ));
            }
        };
        db.write(|tx| tx.save_segment(&name, segment.clone()))?;
        db.read(|r| segment_json(r, &name, &segment))
    })
    .await?;
    Ok(Json(json))
}

async fn read_segment(State(db): State<Database>, PathArgs(name): PathArgs<String>) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.read(|r| {
            let segment = r.segment(&name)?;
            segment_json(r, &name, &segment)
        })
    })
    .await?;
    Ok(Json(json))
}

async fn list_segments(State(db): State<Database>) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.read(|r| {
            let mut out = Vec::new();
            for name in r.segments()? {
                let segment = r.segment(&name)?;
                out.push(json!({
                    "name": name,
                    "kind": segment.kind().as_str(),
                    "type": match segment {
                        SavedSegment::Dynamic { .. } => "dynamic",
                        SavedSegment::Static { .. } => "static",
                    },
                }));
            }
            Ok(json!({ "segments": out }))
        })
    })
    .await?;
    Ok(Json(json))
}

async fn delete_segment(
    State(db): State<Database>,
    PathArgs(name): PathArgs<String>,
) -> ApiResult<StatusCode> {
    let existed = blocking(&db, move |db| {
        db.write(|tx| tx.delete_segment(&name))
            .map(|existed| existed.then_some(()).ok_or(Error::UnknownSegment(name)))
    })
    .await?;
    existed?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- analytics ----

async fn funnel(State(db): State<Database>, Body(request): Body<FunnelIn>) -> ApiResult {
    let request = request.window()?;
    let json = blocking(&db, move |db| {
        let request = request.into_request()?;
        let funnel = db.read(|r| crmdb::analytics::funnel(r, &request))?;
        Ok(funnel_json(&request, &funnel))
    })
    .await?;
    Ok(Json(json))
}

async fn owner_ranking(State(db): State<Database>, Body(request): Body<OwnersIn>) -> ApiResult {
    let request = request.check()?;
    let json = blocking(&db, move |db| {
        let owners = db.read(|r| {
            crmdb::analytics::owner_ranking(r, request.from, request.to, request.sort())
        })?;
        Ok(owners_json(&request, &owners))
    })
    .await?;
    Ok(Json(json))
}

async fn product_sales(State(db): State<Database>, Body(request): Body<ProductsIn>) -> ApiResult {
    let window = request.window()?;
    let json = blocking(&db, move |db| {
        let (products, categories) =
            db.read(|r| crmdb::analytics::product_sales(r, window.0, window.1))?;
        Ok(products_json(window, &products, &categories))
    })
    .await?;
    Ok(Json(json))
}

/// Recomputes RFM scores and value tiers as of `now` (the database clock by default).
async fn refresh_rfm(State(db): State<Database>, Body(request): Body<RfmRefreshIn>) -> ApiResult {
    let now = request.now()?;
    let state = blocking(&db, move |db| {
        db.write(|tx| {
            let now = now.unwrap_or_else(|| tx.now());
            tx.refresh_rfm(now)
        })
    })
    .await?;
    Ok(Json(rfm_json(&state)))
}

/// The last RFM refresh; 404 `rfm_not_refreshed` before the first.
async fn rfm_state(State(db): State<Database>) -> ApiResult {
    let state = blocking(&db, |db| db.read(crmdb::analytics::rfm_state)).await?;
    match state {
        Some(state) => Ok(Json(rfm_json(&state))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "rfm_not_refreshed",
            "RFM scores have not been computed yet; POST /analytics/rfm/refresh first",
        )),
    }
}

// ---- lead assignment ----

async fn read_assignment(State(db): State<Database>) -> ApiResult {
    let assignment = blocking(&db, |db| db.read(crmdb::assignment)).await?;
    Ok(Json(assignment_json(&assignment)))
}

/// Replaces the whole assignment configuration. An excluded owner that does not exist
/// is a broken reference (422), as it is in a record's body.
async fn save_assignment(
    State(db): State<Database>,
    Body(request): Body<AssignmentIn>,
) -> ApiResult {
    let saved = blocking(&db, move |db| {
        let written = db.write(|tx| {
            let assignment = request.into_assignment(&tx.machines()?.contact)?;
            tx.set_assignment(assignment)?;
            crmdb::assignment(tx)
        });
        match written {
            Err(Error::NotFound {
                kind: EntityKind::Owner,
                id,
            }) => Ok(Err(id)),
            other => other.map(Ok),
        }
    })
    .await?;
    match saved {
        Ok(assignment) => Ok(Json(assignment_json(&assignment))),
        Err(owner) => Err(ApiError::unprocessable(
            "broken_relation",
            format!("the assignment excludes owner {owner}, which does not exist"),
        )),
    }
}

/// Runs the assignment rules again for a contact. `owner` is the owner they picked, or
/// `null` when none did (the contact keeps its owner); `rule` names the rule.
async fn requalify(State(db): State<Database>, PathArgs(id): PathArgs<u32>) -> ApiResult {
    let json = blocking(&db, move |db| {
        db.write(|tx| {
            let id = crmdb::ContactId::new(id);
            let owner = tx.requalify(id)?;
            let contact: Contact = tx.get(id)?;
            Ok(json!({
                "owner": owner.map(|o| o.get()),
                "rule": owner.and(contact.assigned_by.clone()),
                "contact": Contact::to_json(id, &contact),
            }))
        })
    })
    .await?;
    Ok(Json(json))
}

// ---- service ----

async fn health() -> Json<JsonValue> {
    Json(json!({ "status": "ok" }))
}

async fn stats(State(db): State<Database>) -> ApiResult {
    let stats = blocking(&db, |db| db.stats()).await?;
    let mut records = serde_json::Map::new();
    for kind in &stats.records {
        records.insert(
            kind.kind.as_str().into(),
            json!({ "live": kind.live, "deleted": kind.deleted }),
        );
    }
    Ok(Json(json!({
        "records": records,
        "stored_bytes": stats.stored_bytes,
        "allocated_bytes": stats.allocated_bytes,
        "bitmap_cache": {
            "entries": stats.bitmap_cache_entries,
            "bytes": stats.bitmap_cache_bytes,
            "hits": stats.bitmap_cache_hits,
            "misses": stats.bitmap_cache_misses,
        },
    })))
}

// ---- serving ----

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish their current request (up to [`ServerConfig::shutdown_grace`]).
///
/// Each connection is HTTP/1.1 with a header read timeout, so a client that trickles
/// its headers is disconnected; plain `axum::serve` has no such timeout.
///
/// # Errors
/// None today; accept failures are logged and retried.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        eprintln!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let mut stopped = stopped.clone();
                let header_read_timeout = config.header_read_timeout;
                connections.spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        // A connection error is the client's business (reset, timeout).
                        _ = connection.as_mut() => {}
                        _ = stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

// ---- the command line ----

/// An HTTP/JSON server in front of crmdb: in memory with generated demo data by
/// default; a durable file (`--db`) or an import (`--import`) gets only what the user
/// puts there, unless `--demo N` asks for demo data too.
#[derive(Debug, clap::Parser)]
#[command(name = "server")]
pub struct Args {
    /// Address to listen on; only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Demo contacts to generate into an empty database (0 for none). Defaults to
    /// 20 000 in memory without an import, and to none with `--db` or `--import`.
    #[arg(long, alias = "size")]
    demo: Option<u32>,
    /// A database file to use instead of memory; created if missing.
    #[arg(long)]
    db: Option<PathBuf>,
    /// A CSV or JSON Lines file of contacts to import before serving.
    #[arg(long)]
    import: Option<PathBuf>,
}

fn progress_bar(length: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{elapsed}})");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// The in-memory default's demo data set.
const DEFAULT_DEMO_CONTACTS: u32 = 20_000;

impl Args {
    /// How many demo contacts to generate: only what `--demo` says, or the default data
    /// set when the database is in memory and nothing is imported.
    pub fn demo_contacts(&self) -> u32 {
        match self.demo {
            Some(n) => n,
            None if self.db.is_none() && self.import.is_none() => DEFAULT_DEMO_CONTACTS,
            None => 0,
        }
    }
}

/// Opens the database the arguments name and loads what they ask for: demo data into an
/// empty database, then the import.
pub fn prepare(args: &Args) -> Result<Database, Box<dyn std::error::Error>> {
    let db = match &args.db {
        Some(path) => Database::create(path)?,
        None => Database::in_memory()?,
    };
    let contacts = db.read(|r| Ok(r.live(EntityKind::Contact)?.len()))?;
    let demo = args.demo_contacts();
    if contacts == 0 && demo > 0 {
        load_demo(&db, demo)?;
    } else if contacts > 0 && demo > 0 {
        println!("the database holds {contacts} contacts; no demo data generated");
    }
    if let Some(file) = &args.import {
        let report = import::import_file(&db, file)?;
        report.print();
    }
    Ok(db)
}

fn load_demo(db: &Database, contacts: u32) -> crmdb::Result<()> {
    println!("generating {contacts} demo contacts (seed 42) …");
    let bar = progress_bar(u64::from(contacts), "contacts");
    let summary = crmdb::demo::Generator::new(contacts).load(db, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    println!(
        "loaded {} contacts, {} orders, {} activities, {} accounts, {} products, {} owners",
        summary.contacts,
        summary.orders,
        summary.activities,
        summary.accounts,
        summary.products,
        summary.owners
    );
    Ok(())
}

/// A live contact still in `prospect`, for the printed stage-move example.
fn example_prospect(db: &Database) -> Option<u32> {
    let query = Query::parse("stage:prospect").ok()?;
    db.read(|r| Ok(r.ids(EntityKind::Contact, &query)?.min()))
        .ok()
        .flatten()
}

fn print_banner(address: SocketAddr, prospect: Option<u32>) {
    let base = format!("http://{address}");
    println!("crmdb server listening on {base}");
    println!("try:");
    println!(
        "  curl -s -X POST {base}/contacts -H 'content-type: application/json' \\\n    \
         -d '{{\"name\":\"Li Lei\",\"email\":\"li.lei@example.com\",\"region\":\"shanghai\",\"tags\":[\"vip\"]}}'"
    );
    println!(
        "  curl -s -X POST {base}/segments/query -H 'content-type: application/json' \\\n    \
         -d '{{\"kind\":\"contact\",\"query\":\"tag:vip AND lifetime_value >= 1000\",\"limit\":3,\
         \"sort\":\"lifetime_value\",\"descending\":true,\"group_by\":\"stage\",\"sum\":\"lifetime_value\"}}'"
    );
    match prospect {
        Some(id) => println!(
            "  curl -s -X POST {base}/contacts/{id}/stage -H 'content-type: application/json' \\\n    \
             -d '{{\"to\":\"active\"}}'"
        ),
        None => println!("  curl -s {base}/stats"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use clap::Parser as _;
    let args = Args::parse();
    if !args.host.is_loopback() {
        return Err(format!(
            "--host {} is not a loopback address; this example serves only locally",
            args.host
        )
        .into());
    }

    let db = prepare(&args)?;

    let config = ServerConfig::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
        print_banner(listener.local_addr()?, example_prospect(&db));
        let router = app_with(db, &config);
        // Stopped with Ctrl-C: every response was sent after its commit, and redb
        // needs no shutdown step to stay consistent.
        serve(listener, router, config, std::future::pending()).await
    })?;
    Ok(())
}
