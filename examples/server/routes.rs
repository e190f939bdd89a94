//! The router: which path and method reach which handler (written down in
//! [`route_table`] as they are added), the limits wrapped around them all, and the two
//! service endpoints (`/health`, `/stats`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use axum::{Extension, Json, Router};
use crmdb::{Account, Activity, Contact, Database, Deal, Order, Owner, Product, StagedId, Task};
use serde_json::{Value as JsonValue, json};
use tower::ServiceBuilder;

use super::analytics_handlers::{
    funnel, owner_ranking, product_sales, read_assignment, refresh_rfm, requalify, rfm_state,
    save_assignment,
};
use super::auth::{Caller, Tokens, authenticate};
use super::changes::{FeedLimits, STREAM_PATH, feed_head, poll_changes, stream_routes};
use super::console;
use super::errors::{ApiResult, blocking, method_not_allowed, middleware_error, no_route};
use super::identity;
use super::import;
use super::listing;
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

/// The whole API with the given limits, open to every local caller.
pub fn app_with(db: Database, config: &ServerConfig) -> Router {
    app_secured(db, config, None)
}

/// The whole API with the given limits; with `tokens`, every request needs one of them
/// and acts as its principal (see [`super::auth`]).
pub fn app_secured(db: Database, config: &ServerConfig, tokens: Option<Arc<Tokens>>) -> Router {
    let requests = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests));
    let feed = FeedLimits::new(config, Arc::clone(&requests));
    routes()
        .router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(feed.clone()))
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
        // Last, so that it wraps everything, the stream and the fallbacks included.
        .layer(axum::middleware::from_fn_with_state(tokens, authenticate))
        .with_state(db)
}

/// Every method and path the server answers, in the order they were added; the
/// OpenAPI document (`/openapi.json`) is checked against it by the tests.
pub fn route_table() -> Vec<(String, String)> {
    let mut table = routes().table;
    // Merged outside the layers by `app_with`.
    table.push(("GET".into(), STREAM_PATH.into()));
    table
}

/// A router that writes down each method and path it is given.
struct Routes {
    router: Router<Database>,
    table: Vec<(String, String)>,
}

impl Routes {
    fn on<H, T>(mut self, method: Method, path: &str, handler: H) -> Routes
    where
        H: Handler<T, Database>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.table
            .push((method.as_str().to_owned(), path.to_owned()));
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    fn get<H: Handler<T, Database>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::GET, path, handler)
    }

    fn post<H: Handler<T, Database>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::POST, path, handler)
    }

    fn put<H: Handler<T, Database>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::PUT, path, handler)
    }

    fn delete<H: Handler<T, Database>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::DELETE, path, handler)
    }
}

fn routes() -> Routes {
    let mut routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .get("/", console::index)
    .get("/console/{asset}", console::asset)
    .get("/openapi.json", console::openapi)
    .get("/health", health)
    .get("/stats", stats)
    .get("/segments", list_segments)
    .post("/segments/query", query_segment)
    .get("/segments/export", listing::export)
    .get("/segments/{name}", read_segment)
    .put("/segments/{name}", save_segment)
    .delete("/segments/{name}", delete_segment)
    .put("/segments/{name}/watch", watch_segment)
    .delete("/segments/{name}/watch", unwatch_segment)
    .get("/changes", poll_changes)
    .get("/changes/head", feed_head)
    .post("/analytics/funnel", funnel)
    .post("/analytics/owners", owner_ranking)
    .post("/analytics/products", product_sales)
    .get("/analytics/rfm", rfm_state)
    .post("/analytics/rfm/refresh", refresh_rfm)
    .get("/assignment", read_assignment)
    .put("/assignment", save_assignment)
    .post("/contacts/{id}/requalify", requalify)
    .post("/import/contacts", import::import_contacts)
    .get("/duplicates", identity::candidates)
    .post("/contacts/merge", identity::merge)
    .get("/merges", identity::merges)
    .get("/merges/{id}", identity::lineage)
    .post("/merges/{id}/unmerge", identity::unmerge)
    .get("/contacts/{id}/consent", identity::read_consent)
    .post("/contacts/{id}/consent", identity::append_consent)
    .post("/contacts/{id}/erase", identity::erase);
    routes = crud_routes::<Contact>(routes);
    routes = crud_routes::<Account>(routes);
    routes = crud_routes::<Deal>(routes);
    routes = crud_routes::<Activity>(routes);
    routes = crud_routes::<Order>(routes);
    routes = crud_routes::<Product>(routes);
    routes = crud_routes::<Owner>(routes);
    routes = crud_routes::<Task>(routes);
    routes = tag_routes::<Contact>(routes);
    routes = tag_routes::<Account>(routes);
    routes = tag_routes::<Deal>(routes);
    routes = stage_routes::<Contact>(routes);
    stage_routes::<Deal>(routes)
}

fn crud_routes<R: Resource>(routes: Routes) -> Routes {
    let base = format!("/{}", R::PATH);
    let one = format!("{base}/{{id}}");
    routes
        .get(&base, listing::list::<R>)
        .post(&base, create::<R>)
        .get(&one, read::<R>)
        .put(&one, replace::<R>)
        .delete(&one, soft_delete::<R>)
        .post(&format!("{one}/restore"), restore::<R>)
        .get(&format!("{one}/changes"), listing::record_changes::<R>)
}

fn tag_routes<R: Resource>(routes: Routes) -> Routes {
    let base = format!("/{}/{{id}}/tags", R::PATH);
    routes
        .post(&base, add_tag::<R>)
        .delete(&format!("{base}/{{tag}}"), remove_tag::<R>)
}

fn stage_routes<R: Resource>(routes: Routes) -> Routes
where
    R::Id: Into<StagedId>,
{
    let base = format!("/{}/{{id}}", R::PATH);
    routes
        .post(&format!("{base}/stage"), move_stage::<R>)
        .get(&format!("{base}/history"), history::<R>)
}

// ---- service ----

async fn health() -> Json<JsonValue> {
    Json(json!({ "status": "ok" }))
}

async fn stats(State(db): State<Database>, caller: Caller) -> ApiResult {
    caller.must_see_everything()?;
    let stats = blocking(&db, |db| db.stats()).await?;
    let mut records = serde_json::Map::new();
    for kind in &stats.records {
        records.insert(
            kind.kind.as_str().into(),
            json!({ "live": kind.live, "deleted": kind.deleted }),
        );
    }
    Ok(Json(json!({
        "sequence": stats.sequence,
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
