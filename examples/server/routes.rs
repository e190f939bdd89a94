//! The router: which path and method reach which handler, the limits wrapped around
//! them all, and the two service endpoints (`/health`, `/stats`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use crmdb::{Account, Activity, Contact, Database, Deal, Order, Owner, Product, StagedId, Task};
use serde_json::{Value as JsonValue, json};
use tower::ServiceBuilder;

use super::analytics_handlers::{
    funnel, owner_ranking, product_sales, read_assignment, refresh_rfm, requalify, rfm_state,
    save_assignment,
};
use super::changes::{FeedLimits, poll_changes, stream_routes};
use super::errors::{ApiResult, blocking, method_not_allowed, middleware_error, no_route};
use super::identity;
use super::record_handlers::{
    add_tag, create, history, move_stage, read, remove_tag, replace, restore, soft_delete,
};
use super::records::Resource;
use super::segments::{
    delete_segment, list_segments, query_segment, read_segment, save_segment, unwatch_segment,
    watch_segment,
};
use super::serving::ServerConfig;

/// The whole API with the default limits.
pub fn app(db: Database) -> Router {
    app_with(db, &ServerConfig::default())
}

/// The whole API with the given limits.
pub fn app_with(db: Database, config: &ServerConfig) -> Router {
    let requests = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests));
    let feed = FeedLimits::new(config, Arc::clone(&requests));
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/segments", get(list_segments))
        .route("/segments/query", post(query_segment))
        .route(
            "/segments/{name}",
            get(read_segment).put(save_segment).delete(delete_segment),
        )
        .route(
            "/segments/{name}/watch",
            put(watch_segment).delete(unwatch_segment),
        )
        .route("/changes", get(poll_changes).layer(Extension(feed.clone())))
        .route("/analytics/funnel", post(funnel))
        .route("/analytics/owners", post(owner_ranking))
        .route("/analytics/products", post(product_sales))
        .route("/analytics/rfm", get(rfm_state))
        .route("/analytics/rfm/refresh", post(refresh_rfm))
        .route("/assignment", get(read_assignment).put(save_assignment))
        .route("/contacts/{id}/requalify", post(requalify))
        .route("/duplicates", get(identity::candidates))
        .route("/contacts/merge", post(identity::merge))
        .route("/merges", get(identity::merges))
        .route("/merges/{id}", get(identity::lineage))
        .route("/merges/{id}/unmerge", post(identity::unmerge))
        .route(
            "/contacts/{id}/consent",
            get(identity::read_consent).post(identity::append_consent),
        )
        .route("/contacts/{id}/erase", post(identity::erase));
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
                .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                    requests,
                )),
        )
        // After the layers, so that they do not wrap it: the stream applies the same
        // limits itself, for as long as it lasts.
        .merge(stream_routes(feed))
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
