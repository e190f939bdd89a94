//! Segment endpoints: ad-hoc queries with paging, sorting and grouping, saved
//! segments, dynamic (a query) or static (a list of ids), and watching a saved segment
//! (its members' comings and goings in the change feed).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crmdb::{
    Account, Activity, Contact, Database, Deal, EntityKind, Error, FieldType, GroupBy, Order,
    Owner, Product, Query, SavedSegment, ScopedRead, Snapshot, SortBy, Task,
};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::Caller;
use super::errors::{ApiError, ApiResult, Body, PathArgs, blocking};
use super::records::Resource;

pub(super) fn parse_kind(name: &str) -> Result<EntityKind, ApiError> {
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
pub(super) struct SegmentQueryRequest {
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

/// A page of records as JSON.
pub(super) struct PageJson {
    pub(super) total: u64,
    pub(super) items: Vec<JsonValue>,
    pub(super) next_cursor: Option<String>,
}

/// The order a page is read in: `id` (creation order, the default) or a field.
pub(super) fn sort_of(field: Option<&str>, descending: bool) -> SortBy {
    let sort = match field {
        None | Some("id") => SortBy::id(),
        Some(field) => SortBy::field(field),
    };
    if descending { sort.descending() } else { sort }
}

pub(super) fn page_of<R: Resource>(
    r: &ScopedRead,
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
    r: &ScopedRead,
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

/// A page of a query's records, `{"kind", "query", "count", "items", "next_cursor"}`,
/// the answer of `POST /segments/query` and `GET /{kind}`; `limit` 0 asks for the
/// count alone.
pub(super) fn page_json(
    r: &ScopedRead,
    kind: EntityKind,
    query: &Query,
    sort: &SortBy,
    limit: usize,
    cursor: Option<&str>,
) -> crmdb::Result<JsonValue> {
    let page = match limit {
        0 => PageJson {
            total: r.count(kind, query)?,
            items: Vec::new(),
            next_cursor: None,
        },
        limit => page_any(r, kind, query, sort, limit, cursor)?,
    };
    Ok(json!({
        "kind": kind.as_str(),
        "query": query.to_string(),
        "count": page.total,
        "items": page.items,
        "next_cursor": page.next_cursor,
    }))
}

/// Whether a field holds money, so that its sums are shown as decimals.
fn is_money_field(r: &ScopedRead, kind: EntityKind, field: &str) -> crmdb::Result<bool> {
    if let Some(custom) = field.strip_prefix("custom.") {
        let schema = r.schema(kind)?;
        return Ok(schema
            .field(custom)
            .is_some_and(|def| def.field_type == FieldType::Money));
    }
    // Built-in fields: the kind's field table says how each is typed.
    Ok(kind
        .fields()
        .iter()
        .any(|f| f.name == field && f.shape == crmdb::FieldShape::Money))
}

fn sum_json(sum: i128, money: bool) -> JsonValue {
    match i64::try_from(sum) {
        Ok(small) if money => JsonValue::String(crmdb::Money(small).to_string()),
        Ok(small) => json!(small),
        Err(_) => JsonValue::String(sum.to_string()),
    }
}

pub(super) async fn query_segment(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<SegmentQueryRequest>,
) -> ApiResult {
    let kind = parse_kind(&request.kind)?;
    if request.sum.is_some() && request.group_by.is_none() {
        return Err(ApiError::unprocessable(
            "invalid_argument",
            "\"sum\" needs \"group_by\"",
        ));
    }
    blocking(&db, move |db| {
        let query = Query::parse(&request.query)?;
        let sort = sort_of(request.sort.as_deref(), request.descending);
        // One snapshot: the page and the groups agree with each other.
        db.read_as(&caller.0, |r| {
            let mut out = page_json(
                r,
                kind,
                &query,
                &sort,
                request.limit,
                request.cursor.as_deref(),
            )?;
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
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SaveSegmentRequest {
    kind: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    ids: Option<Vec<u32>>,
}

fn segment_json(r: &ScopedRead, name: &str, segment: &SavedSegment) -> crmdb::Result<JsonValue> {
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

pub(super) async fn save_segment(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
    Body(request): Body<SaveSegmentRequest>,
) -> ApiResult {
    caller.must_see_everything()?;
    let kind = parse_kind(&request.kind)?;
    blocking(&db, move |db| {
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
        db.write_grouped(|tx| tx.save_segment(&name, segment.clone()))?;
        db.read_as(&caller.0, |r| segment_json(r, &name, &segment))
    })
    .await
    .map(Json)
}

pub(super) async fn read_segment(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult {
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
            let segment = r.segment(&name)?;
            segment_json(r, &name, &segment)
        })
    })
    .await
    .map(Json)
}

pub(super) async fn list_segments(State(db): State<Database>, caller: Caller) -> ApiResult {
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
            let watched = r.watched()?;
            let mut out = Vec::new();
            for name in r.segments()? {
                let segment = r.segment(&name)?;
                let mut item = json!({
                    "name": name,
                    "kind": segment.kind().as_str(),
                    "type": match segment {
                        SavedSegment::Dynamic { .. } => "dynamic",
                        SavedSegment::Static { .. } => "static",
                    },
                    "watched": false,
                });
                if watched.iter().any(|(w, _)| *w == name) {
                    let members = r.members(&name)?.len();
                    if let Some(object) = item.as_object_mut() {
                        object.insert("watched".into(), json!(true));
                        object.insert("members".into(), json!(members));
                    }
                }
                out.push(item);
            }
            Ok(json!({ "segments": out }))
        })
    })
    .await
    .map(Json)
}

pub(super) async fn delete_segment(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult<StatusCode> {
    caller.must_see_everything()?;
    let existed = blocking(&db, move |db| {
        db.write_grouped(|tx| tx.delete_segment(&name))
            .map(|existed| existed.then_some(()).ok_or(Error::UnknownSegment(name)))
    })
    .await?;
    existed?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /segments/{name}/watch`: from now on the change feed says who enters and who
/// leaves the segment; its current members are announced as entered.
pub(super) async fn watch_segment(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult {
    caller.must_see_everything()?;
    blocking(&db, move |db| {
        let members = db.write_grouped(|tx| tx.watch(&name))?;
        Ok(json!({ "segment": name, "watched": true, "members": members }))
    })
    .await
    .map(Json)
}

/// `DELETE /segments/{name}/watch`; a segment that is not watched is a 404.
pub(super) async fn unwatch_segment(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult {
    caller.must_see_everything()?;
    let segment = name.clone();
    let was_watched = blocking(&db, move |db| db.write_grouped(|tx| tx.unwatch(&segment))).await?;
    if !was_watched {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_watched",
            "the segment is not watched",
        ));
    }
    Ok(Json(json!({ "segment": name, "watched": false })))
}
