//! Reading many records at once: `GET /{kind}` (a filtered, sorted page of any kind),
//! `GET /{kind}/{id}/changes` (one record's events in the kept change log) and
//! `GET /segments/export` (a segment as CSV, streamed from one snapshot).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crmdb::feed::{Batch, Change};
use crmdb::{
    Account, Activity, Contact, Database, Deal, EntityKind, Error, Order, Owner, Product, Query,
    RecordId, ScopedRead, Snapshot, SortBy, Task,
};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::Caller;
use super::changes::event_json;
use super::errors::{ApiError, ApiResult, PathArgs, QueryArgs, blocking};
use super::records::Resource;
use super::segments::{page_json, page_of, parse_kind, sort_of};

/// Records a page holds when the client names no `limit`.
const DEFAULT_LIMIT: usize = 20;
/// Events `GET /{kind}/{id}/changes` reads back from the newest, at most: a bulk load's
/// batches hold thousands each, and the scan stops rather than read them all.
const SCAN_EVENTS: usize = 100_000;
/// Batches read from the log at once while scanning back.
const SCAN_STEP: u64 = 8;
/// Events `GET /{kind}/{id}/changes` returns when the client names no `limit`.
const DEFAULT_EVENTS: usize = 50;
/// Records read per page while exporting; each page is one chunk of the response.
const EXPORT_PAGE: usize = 1_000;
/// Chunks an export keeps ready ahead of a slow client.
const EXPORT_AHEAD: usize = 4;

fn default_query() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default = "default_query")]
    query: String,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    descending: bool,
    /// `0` asks for the count only.
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /{kind}?query=…&sort=…&descending=…&limit=…&cursor=…`: the same page as
/// `POST /segments/query`, `{"kind", "query", "count", "items", "next_cursor"}`.
pub(super) async fn list<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    QueryArgs(params): QueryArgs<ListParams>,
) -> ApiResult {
    blocking(&db, move |db| {
        let query = Query::parse(&params.query)?;
        let sort = sort_of(params.sort.as_deref(), params.descending);
        db.read_as(&caller.0, |r| {
            page_json(
                r,
                R::KIND,
                &query,
                &sort,
                params.limit.unwrap_or(DEFAULT_LIMIT),
                params.cursor.as_deref(),
            )
        })
    })
    .await
    .map(axum::Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesParams {
    #[serde(default)]
    limit: Option<usize>,
}

/// Whether an event is about record `id` of `kind`: its target, or the record merged
/// into the target.
fn concerns(change: &Change, kind: EntityKind, id: u32) -> bool {
    if change.target() == Some((kind, id)) {
        return true;
    }
    match change {
        Change::Merged {
            kind: merged,
            other,
            ..
        }
        | Change::Unmerged {
            kind: merged,
            other,
            ..
        } => *merged == kind && *other == id,
        _ => false,
    }
}

/// `GET /{kind}/{id}/changes?limit=N`: the record's events, newest first, read back
/// from the newest batch of the kept log until `limit` are found, the log's start is
/// reached, or [`SCAN_EVENTS`] events have been read. `scanned_from` says where the
/// scan stopped (events after it were all looked at) and `complete` whether that was
/// the log's start. An unknown record is a 404; a deleted one still has its events.
pub(super) async fn record_changes<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    QueryArgs(params): QueryArgs<ChangesParams>,
) -> ApiResult {
    let limit = params.limit.unwrap_or(DEFAULT_EVENTS).clamp(1, 1_000);
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
            let _: R = r.get(R::Id::from_row(id))?;
            let last = r.sequence()?;
            let floor = r.oldest_change()?.saturating_sub(1);
            let (mut upper, mut read) = (last, 0usize);
            let mut events = Vec::new();
            while upper > floor && events.len() < limit && read < SCAN_EVENTS {
                let after = upper.saturating_sub(SCAN_STEP).max(floor);
                let batches: Vec<Batch> = r.changes(after, (upper - after) as usize)?;
                for batch in batches.iter().rev() {
                    read += batch.events.len();
                    for event in batch.events.iter().rev() {
                        if concerns(&event.change, R::KIND, id) {
                            let mut shown = event_json(event);
                            if let Some(object) = shown.as_object_mut() {
                                object.insert("sequence".into(), json!(batch.sequence));
                                object.insert("actor".into(), json!(batch.actor));
                            }
                            events.push(shown);
                        }
                    }
                }
                upper = after;
            }
            events.truncate(limit);
            Ok(json!({
                "kind": R::KIND.as_str(),
                "id": id,
                "events": events,
                "scanned_from": upper,
                "complete": upper <= floor,
                "last": last,
            }))
        })
    })
    .await
    .map(axum::Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportParams {
    kind: String,
    #[serde(default = "default_query")]
    query: String,
    /// Comma-separated field names of the record's JSON (`custom.<name>` for a custom
    /// field); all of them, `id` first, when absent.
    #[serde(default)]
    fields: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    descending: bool,
}

/// `GET /segments/export?kind=…&query=…&fields=a,b,c`: `text/csv` with a header row,
/// RFC 4180 quoting and CRLF line ends, streamed page by page from one snapshot. A list
/// value (tags) is one cell joined by `;`; an object is its JSON.
pub(super) async fn export(
    State(db): State<Database>,
    caller: Caller,
    QueryArgs(params): QueryArgs<ExportParams>,
) -> ApiResult<Response> {
    let kind = parse_kind(&params.kind)?;
    let query = Query::parse(&params.query).map_err(|e| ApiError::from(Error::from(e)))?;
    let sort = sort_of(params.sort.as_deref(), params.descending);
    let fields = params.fields.clone();
    // The snapshot is taken and the fields checked before the response starts, so
    // that a bad field is a 422 and not a cut-off body.
    let (snapshot, fields) = blocking(&db, move |db| {
        let snapshot = ScopedRead::new(db.begin_read()?, caller.0)?;
        let fields = export_fields(&snapshot, kind, fields.as_deref())?;
        Ok((snapshot, fields))
    })
    .await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_AHEAD);
    tokio::task::spawn_blocking(move || {
        let job = Export {
            snapshot: &snapshot,
            query: &query,
            sort: &sort,
            fields: &fields,
            sender: &sender,
        };
        if let Err(error) = job.run(kind) {
            // The status is sent already: the body ends in an error, so that the client
            // sees a broken transfer, never a short file that looks whole.
            let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let file = format!("{}.csv", kind.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        axum::body::Body::new(Chunks(receiver)),
    )
        .into_response())
}

/// The columns of an export, checked against the kind's JSON shape and schema.
fn export_fields(
    r: &ScopedRead,
    kind: EntityKind,
    asked: Option<&str>,
) -> crmdb::Result<Vec<String>> {
    let shape = empty_json(kind);
    let schema = r.schema(kind)?;
    let Some(asked) = asked else {
        let mut all = vec!["id".to_owned()];
        all.extend(
            shape
                .as_object()
                .into_iter()
                .flat_map(|object| object.keys())
                .filter(|key| *key != "id" && *key != "custom")
                .cloned(),
        );
        all.extend(schema.fields().map(|def| format!("custom.{}", def.name)));
        return Ok(all);
    };
    let mut out = Vec::new();
    for field in asked.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let known = match field.strip_prefix("custom.") {
            Some(name) => schema.field(name).is_some(),
            None => field != "custom" && shape.get(field).is_some(),
        };
        if !known {
            return Err(Error::UnknownField {
                kind,
                field: field.to_owned(),
            });
        }
        out.push(field.to_owned());
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument("\"fields\" names no field".into()));
    }
    Ok(out)
}

/// The JSON of an empty record of `kind`: every field the kind shows.
fn empty_json(kind: EntityKind) -> JsonValue {
    fn of<R: Resource>() -> JsonValue {
        R::to_json(R::Id::from_row(0), &R::blank())
    }
    match kind {
        EntityKind::Contact => of::<Contact>(),
        EntityKind::Account => of::<Account>(),
        EntityKind::Deal => of::<Deal>(),
        EntityKind::Activity => of::<Activity>(),
        EntityKind::Order => of::<Order>(),
        EntityKind::Product => of::<Product>(),
        EntityKind::Owner => of::<Owner>(),
        EntityKind::Task => of::<Task>(),
    }
}

/// One export in progress.
struct Export<'a> {
    snapshot: &'a ScopedRead,
    query: &'a Query,
    sort: &'a SortBy,
    fields: &'a [String],
    sender: &'a tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl Export<'_> {
    fn run(&self, kind: EntityKind) -> crmdb::Result<()> {
        match kind {
            EntityKind::Contact => self.pages::<Contact>(),
            EntityKind::Account => self.pages::<Account>(),
            EntityKind::Deal => self.pages::<Deal>(),
            EntityKind::Activity => self.pages::<Activity>(),
            EntityKind::Order => self.pages::<Order>(),
            EntityKind::Product => self.pages::<Product>(),
            EntityKind::Owner => self.pages::<Owner>(),
            EntityKind::Task => self.pages::<Task>(),
        }
    }

    /// Sends the header, then one chunk per page; stops early, without error, when the
    /// client has gone.
    fn pages<R: Resource>(&self) -> crmdb::Result<()> {
        let mut chunk = String::new();
        let header: Vec<JsonValue> = self.fields.iter().map(|f| json!(f)).collect();
        csv_line(&mut chunk, &header);
        if !self.send(chunk) {
            return Ok(());
        }
        let mut cursor: Option<String> = None;
        loop {
            let page = page_of::<R>(
                self.snapshot,
                self.query,
                self.sort,
                EXPORT_PAGE,
                cursor.as_deref(),
            )?;
            let mut chunk = String::new();
            for item in &page.items {
                let cells: Vec<JsonValue> = self
                    .fields
                    .iter()
                    .map(|field| cell_value(item, field))
                    .collect();
                csv_line(&mut chunk, &cells);
            }
            if !chunk.is_empty() && !self.send(chunk) {
                return Ok(());
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn send(&self, chunk: String) -> bool {
        self.sender.blocking_send(Ok(Bytes::from(chunk))).is_ok()
    }
}

/// A field of a record's JSON; `custom.<name>` reads inside `custom`.
fn cell_value(item: &JsonValue, field: &str) -> JsonValue {
    let value = match field.strip_prefix("custom.") {
        Some(name) => item.get("custom").and_then(|custom| custom.get(name)),
        None => item.get(field),
    };
    value.cloned().unwrap_or(JsonValue::Null)
}

/// Appends one CSV line (RFC 4180: a cell with a comma, quote or line break is quoted,
/// its quotes doubled; lines end in CRLF).
pub(super) fn csv_line(out: &mut String, cells: &[JsonValue]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = match cell {
            JsonValue::Null => String::new(),
            JsonValue::String(text) => text.clone(),
            JsonValue::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
                items
                    .iter()
                    .map(|v| match v {
                        JsonValue::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            }
            other => other.to_string(),
        };
        if text.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out.push_str("\r\n");
}

/// A response body fed by the export's thread.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(hyper::body::Frame::data)))
    }
}
