//! The change feed over HTTP: a long poll (`GET /changes`) and a stream of server-sent
//! events (`GET /changes/stream`), both sending batches in the JSON of [`batch_json`].
//!
//! A client reads from a sequence on (`after`, 0 for the whole log), keeps the `last`
//! sequence it got, and reads after that next time: nothing missed, nothing doubled.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use crmdb::feed::{Batch, Cause, Change, Event};
use crmdb::{
    Account, Activity, AnyRecord, Contact, Database, Deal, Error, Order, Owner, Principal, Product,
    RecordId, Snapshot, Task,
};
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{ServiceBuilder, ServiceExt};

use super::analytics::assignment_json;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult, QueryArgs, blocking, method_not_allowed};
use super::fields::time_json;
use super::records::{Resource, stage_change_json};
use super::serving::ServerConfig;

/// Batches a long poll returns when the client names no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The most batches a long poll returns; a larger `limit` is cut to this.
const MAX_LIMIT: usize = 1000;
/// The longest `wait` a long poll accepts, in seconds.
const MAX_WAIT_SECONDS: u64 = 30;
/// What a long poll leaves of the request timeout for queueing and for reading and
/// sending its batches: its wait is cut to the timeout less this, so that it answers
/// before the timeout layer cuts it off.
const POLL_MARGIN: Duration = Duration::from_secs(2);
/// The most batches one stream sends; the client then reconnects with `Last-Event-ID`.
const STREAM_BATCHES: u32 = 10_000;
/// The longest one stream stays open.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// How long one step of a stream waits for a commit, so that a quiet stream still
/// notices the end of its lifetime.
const STREAM_STEP: Duration = Duration::from_secs(1);
/// Batches a stream reads at once.
const STREAM_READ: usize = 100;
/// How often a quiet stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The server limits the feed endpoints apply themselves.
#[derive(Debug, Clone)]
pub(super) struct FeedLimits {
    /// The longest a long poll waits.
    longest_wait: Duration,
    /// The server's concurrency limit, shared with its concurrency layer.
    requests: Arc<Semaphore>,
    /// Streams open at once.
    streams: Arc<Semaphore>,
    /// How long a new stream waits for a place in `requests`.
    queue_timeout: Duration,
}

impl FeedLimits {
    pub(super) fn new(config: &ServerConfig, requests: Arc<Semaphore>) -> FeedLimits {
        FeedLimits {
            longest_wait: Duration::from_secs(MAX_WAIT_SECONDS)
                .min(config.request_timeout.saturating_sub(POLL_MARGIN)),
            requests,
            streams: Arc::new(Semaphore::new(config.max_streams)),
            queue_timeout: config.request_timeout,
        }
    }

    /// A stream's places: one of the streams, then one of the requests (waiting for it
    /// as long as a request may queue), both held until the stream ends.
    async fn admit(&self) -> Result<[OwnedSemaphorePermit; 2], ApiError> {
        let unavailable = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "too many change streams are open; retry later",
            )
        };
        let stream = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| unavailable())?;
        let request = tokio::time::timeout(
            self.queue_timeout,
            Arc::clone(&self.requests).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took too long",
            )
        })?
        .map_err(|_| unavailable())?;
        Ok([stream, request])
    }
}

/// The stream's path.
pub(super) const STREAM_PATH: &str = "/changes/stream";

/// The stream's route. It is merged outside the router's timeout and concurrency
/// layers: those bound the time to the response head and hold their place only until
/// then, while a stream's body lasts minutes. The stream bounds its own life and takes
/// a place of the same concurrency limit for all of it ([`FeedLimits::admit`]).
pub(super) fn stream_routes(limits: FeedLimits) -> Router<Database> {
    Router::new()
        .route(STREAM_PATH, get(stream_changes).layer(Extension(limits)))
        .method_not_allowed_fallback(method_not_allowed)
}

fn bad_parameter(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}

/// A feed read's error. The sequence is the client's own parameter, so one beyond the
/// last commit is a bad request rather than a refused operation.
fn feed_error(error: Error) -> ApiError {
    match error {
        Error::InvalidArgument(message) => bad_parameter(message),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PollParams {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
    /// Seconds to wait for a commit when there is nothing after `after` yet.
    #[serde(default)]
    wait: u64,
}

/// Up to `limit` change batches after `after` as `principal` sees them.
fn changes_as(
    db: &Database,
    principal: &Principal,
    after: u64,
    limit: usize,
) -> crmdb::Result<Vec<Batch>> {
    db.read_as(principal, |r| r.changes(after, limit))
}

/// Waits up to `wait` for batches after `after`, then reads them as `principal` sees
/// them (the wait itself reads the whole log).
fn wait_changes_as(
    db: &Database,
    principal: &Principal,
    after: u64,
    limit: usize,
    wait: Duration,
) -> crmdb::Result<Vec<Batch>> {
    let batches = db.wait_changes(after, limit, wait)?;
    if batches.is_empty() {
        return Ok(batches);
    }
    changes_as(db, principal, after, limit)
}

/// `GET /changes?after=SEQ&limit=N&wait=SECONDS`: `{"batches": [...], "last": SEQ}`,
/// `last` being the last batch's sequence, or `after` when there is none.
pub(super) async fn poll_changes(
    State(db): State<Database>,
    caller: Caller,
    Extension(limits): Extension<FeedLimits>,
    QueryArgs(params): QueryArgs<PollParams>,
) -> ApiResult {
    let limit = match params.limit {
        Some(0) => return Err(bad_parameter("\"limit\" must be at least 1")),
        Some(limit) => limit.min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    if params.wait > MAX_WAIT_SECONDS {
        return Err(bad_parameter(format!(
            "\"wait\" is at most {MAX_WAIT_SECONDS} seconds, not {}",
            params.wait
        )));
    }
    let wait = Duration::from_secs(params.wait).min(limits.longest_wait);
    let after = params.after;
    let read = blocking(&db, move |db| {
        // Reading first refuses a bad `after` at once, not after the wait.
        let batches = changes_as(db, &caller.0, after, limit).and_then(|batches| {
            if batches.is_empty() && !wait.is_zero() {
                wait_changes_as(db, &caller.0, after, limit, wait)
            } else {
                Ok(batches)
            }
        });
        Ok(batches.map(|batches| {
            let last = batches.last().map_or(after, |batch| batch.sequence);
            json!({
                "batches": batches.iter().map(batch_json).collect::<Vec<_>>(),
                "last": last,
            })
        }))
    })
    .await?;
    read.map(Json).map_err(feed_error)
}

/// `GET /changes/head`: `{"sequence", "oldest"}`, the last commit's sequence and the
/// oldest the log still holds. A reader that wants only what comes next reads after
/// `sequence`.
pub(super) async fn feed_head(State(db): State<Database>, caller: Caller) -> ApiResult {
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
            Ok(json!({ "sequence": r.sequence()?, "oldest": r.oldest_change()? }))
        })
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamParams {
    #[serde(default)]
    after: u64,
    /// The bearer token, for a browser's `EventSource` that cannot send the header;
    /// read by `auth::authenticate`, not here.
    #[serde(default, rename = "access_token")]
    _access_token: Option<String>,
}

/// `GET /changes/stream?after=SEQ`: one event per batch, `id:` its sequence and
/// `data:` its JSON. A `Last-Event-ID` header (a reconnecting client) wins over `after`.
/// The stream ends after [`STREAM_BATCHES`] batches or [`STREAM_LIFETIME`]; an error
/// while it runs (retention trimmed what it had still to send) is one `error` event,
/// then the end.
pub(super) async fn stream_changes(
    State(db): State<Database>,
    caller: Caller,
    Extension(limits): Extension<FeedLimits>,
    headers: HeaderMap,
    QueryArgs(params): QueryArgs<StreamParams>,
) -> ApiResult<Response> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| bad_parameter("Last-Event-ID is not a sequence number"))?,
        None => params.after,
    };
    let permits = limits.admit().await?;
    let principal = caller.0.clone();
    let (after, pending) = blocking(&db, move |db| {
        Ok(read_events(
            after,
            changes_as(db, &principal, after, STREAM_READ),
        ))
    })
    .await?
    .map_err(feed_error)?;
    let done = Arc::new(AtomicBool::new(false));
    let follower = Arc::new(tokio::sync::Mutex::new(Follower {
        db,
        principal: caller.0,
        after,
        pending: pending.into(),
        deadline: Instant::now() + STREAM_LIFETIME,
        done: Arc::clone(&done),
        _permits: permits,
    }));
    // The stream is a bounded sequence of steps, each a call that yields the next
    // event; one call at a time, so a step starts only when the previous one ended.
    let steps = axum::body::Body::new(Steps {
        left: STREAM_BATCHES,
        done,
    })
    .into_data_stream();
    let events = ServiceBuilder::new()
        .concurrency_limit(1)
        .service_fn(move |_step| {
            let follower = Arc::clone(&follower);
            async move { Ok::<_, Infallible>(follower.lock().await.next_event().await) }
        })
        .call_all(steps);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// A pull-driven source of at most `left` steps, none once `done`; its bytes are
/// never sent.
struct Steps {
    left: u32,
    done: Arc<AtomicBool>,
}

impl hyper::body::Body for Steps {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 || self.done.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::new()))))
    }
}

/// One stream's position in the feed.
struct Follower {
    db: Database,
    /// Whom the stream reads for.
    principal: Principal,
    /// The last sequence read.
    after: u64,
    /// Events read and not yet sent.
    pending: VecDeque<SseEvent>,
    deadline: Instant,
    /// Set when the stream is over; the steps end with it.
    done: Arc<AtomicBool>,
    /// A place among the streams and one of the concurrency limit, for the stream's life.
    _permits: [OwnedSemaphorePermit; 2],
}

impl Follower {
    /// The next batch's event, waiting for it in steps of [`STREAM_STEP`]; once the
    /// stream is over, a closing comment (a step already under way gets one too).
    async fn next_event(&mut self) -> SseEvent {
        loop {
            if self.done.load(Ordering::Acquire) {
                return SseEvent::default().comment("end of stream; reconnect to resume");
            }
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            if Instant::now() >= self.deadline {
                self.done.store(true, Ordering::Release);
                continue;
            }
            let after = self.after;
            let principal = self.principal.clone();
            let read = blocking(&self.db, move |db| {
                Ok(read_events(
                    after,
                    wait_changes_as(db, &principal, after, STREAM_READ, STREAM_STEP),
                ))
            })
            .await
            .and_then(|read| read.map_err(feed_error));
            match read {
                Ok((last, events)) => {
                    self.after = last;
                    self.pending.extend(events);
                }
                Err(error) => {
                    self.done.store(true, Ordering::Release);
                    return SseEvent::default()
                        .event("error")
                        .data(error.to_json().to_string());
                }
            }
        }
    }
}

/// The events of a read after `after`, and the last sequence read.
fn read_events(after: u64, read: crmdb::Result<Vec<Batch>>) -> crmdb::Result<(u64, Vec<SseEvent>)> {
    let batches = read?;
    let last = batches.last().map_or(after, |batch| batch.sequence);
    let events = batches
        .iter()
        .map(|batch| {
            SseEvent::default()
                .id(batch.sequence.to_string())
                .data(batch_json(batch).to_string())
        })
        .collect();
    Ok((last, events))
}

/// A batch: `{"sequence", "time", "actor", "events": [...]}`.
pub(super) fn batch_json(batch: &Batch) -> JsonValue {
    json!({
        "sequence": batch.sequence,
        "time": time_json(Some(batch.time)),
        "actor": batch.actor,
        "events": batch.events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// An event: `{"type", "time", "cause"}`, the `kind` and `id` of the record it is
/// about (if any), and the change's own fields.
pub(super) fn event_json(event: &Event) -> JsonValue {
    let mut out = Map::new();
    out.insert("type".into(), json!(event.change.name()));
    out.insert("time".into(), time_json(Some(event.time)));
    out.insert("cause".into(), cause_json(&event.cause));
    if let Some((kind, id)) = event.change.target() {
        out.insert("kind".into(), json!(kind.as_str()));
        out.insert("id".into(), json!(id));
    }
    let fields: Vec<(&str, JsonValue)> = match &event.change {
        Change::Inserted { id, record }
        | Change::Deleted { id, record }
        | Change::Restored { id, record } => vec![("record", record_json(*id, record))],
        Change::Updated { id, before, after } => vec![
            ("before", record_json(*id, before)),
            ("after", record_json(*id, after)),
            ("fields", json!(event.change.changed_fields())),
        ],
        Change::Purged { .. } => Vec::new(),
        Change::TagAdded { tag, .. } | Change::TagRemoved { tag, .. } => {
            vec![("tag", json!(tag))]
        }
        Change::StageChanged { change, .. } => vec![("stage", stage_change_json(change))],
        Change::SchemaChanged { kind, schema } => vec![
            ("kind", json!(kind.as_str())),
            (
                "schema",
                serde_json::to_value(schema).unwrap_or(JsonValue::Null),
            ),
        ],
        Change::MachinesReplaced { machines } => vec![(
            "machines",
            serde_json::to_value(machines).unwrap_or(JsonValue::Null),
        )],
        Change::SegmentSaved { name } | Change::SegmentDeleted { name } => {
            vec![("segment", json!(name))]
        }
        Change::AssignmentChanged { assignment } => {
            vec![("assignment", assignment_json(assignment))]
        }
        Change::RfmRefreshed { kind } => vec![("kind", json!(kind.as_str()))],
        Change::Watched { segment } | Change::Unwatched { segment } => {
            vec![("segment", json!(segment))]
        }
        Change::Entered { segment, kind, ids } | Change::Left { segment, kind, ids } => vec![
            ("segment", json!(segment)),
            ("kind", json!(kind.as_str())),
            ("ids", json!(ids.iter().collect::<Vec<u32>>())),
        ],
        Change::Merged { other, merge, .. } | Change::Unmerged { other, merge, .. } => {
            vec![("other", json!(other)), ("merge", json!(merge))]
        }
        Change::Erased { .. } => Vec::new(),
        Change::ConsentRecorded {
            channel, status, ..
        } => vec![
            ("channel", json!(channel)),
            ("status", json!(status.as_str())),
        ],
    };
    for (name, value) in fields {
        out.insert(name.into(), value);
    }
    JsonValue::Object(out)
}

fn cause_json(cause: &Cause) -> JsonValue {
    match cause {
        Cause::Write => json!({ "type": "write" }),
        Cause::Effect { kind, id } => json!({ "type": "effect", "kind": kind.as_str(), "id": id }),
        Cause::Sweep => json!({ "type": "sweep" }),
        Cause::Remap => json!({ "type": "remap" }),
        Cause::Assignment { rule } => json!({ "type": "assignment", "rule": rule }),
        Cause::Refresh => json!({ "type": "refresh" }),
        Cause::Merge { merge } => json!({ "type": "merge", "merge": merge }),
    }
}

/// A record image as the record endpoints show the record.
fn record_json(id: u32, record: &AnyRecord) -> JsonValue {
    fn shown<R: Resource>(id: u32, record: &R) -> JsonValue {
        R::to_json(R::Id::from_row(id), record)
    }
    match record {
        AnyRecord::Contact(record) => shown::<Contact>(id, record),
        AnyRecord::Account(record) => shown::<Account>(id, record),
        AnyRecord::Deal(record) => shown::<Deal>(id, record),
        AnyRecord::Activity(record) => shown::<Activity>(id, record),
        AnyRecord::Order(record) => shown::<Order>(id, record),
        AnyRecord::Product(record) => shown::<Product>(id, record),
        AnyRecord::Owner(record) => shown::<Owner>(id, record),
        AnyRecord::Task(record) => shown::<Task>(id, record),
    }
}
