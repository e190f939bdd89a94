//! The endpoints every record kind shares (create, read, replace, delete, restore),
//! and those of the kinds with tags or a lifecycle stage. Generic over [`Resource`];
//! the router instantiates them once per kind.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crmdb::{Database, RecordId, ScopedWrite, Snapshot, StagedId};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::Caller;
use super::errors::{ApiResult, Body, PathArgs, blocking};
use super::records::{Resource, stage_change_json};

fn record_json<R: Resource>(snapshot: &impl Snapshot, id: R::Id) -> crmdb::Result<JsonValue> {
    let record: R = snapshot.get(id)?;
    Ok(R::to_json(id, &record))
}

/// Applies `change` to record `row` in one write transaction and answers with the
/// record as read back in that transaction, so the response shows what was committed.
async fn change_record<R: Resource>(
    db: &Database,
    caller: Caller,
    row: u32,
    change: impl FnOnce(&mut ScopedWrite<'_>, R::Id) -> crmdb::Result<()> + Send + 'static,
) -> ApiResult {
    blocking(db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
            let id = R::Id::from_row(row);
            change(tx, id)?;
            record_json::<R>(tx, id)
        })
    })
    .await
    .map(Json)
}

pub(super) async fn create<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    Body(input): Body<R::Input>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let json = blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
            let record = R::from_input(input, &tx.schema(R::KIND)?)?;
            let id = tx.insert(record)?;
            record_json::<R>(tx, id)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json)))
}

pub(super) async fn read<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| record_json::<R>(r, R::Id::from_row(id)))
    })
    .await
    .map(Json)
}

/// Replaces the caller's fields of a live record (engine-maintained ones are kept).
pub(super) async fn replace<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    Body(input): Body<R::Input>,
) -> ApiResult {
    change_record::<R>(&db, caller, id, move |tx, id| {
        let stored: R = tx.get(id)?;
        let mut record = R::from_input(input, &tx.schema(R::KIND)?)?;
        record.keep_on_replace(&stored);
        tx.update(id, record)
    })
    .await
}

pub(super) async fn soft_delete<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    change_record::<R>(&db, caller, id, move |tx, id| tx.soft_delete(id)).await
}

pub(super) async fn restore<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    change_record::<R>(&db, caller, id, move |tx, id| tx.restore(id)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagRequest {
    tag: String,
}

pub(super) async fn add_tag<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<TagRequest>,
) -> ApiResult {
    change_record::<R>(&db, caller, id, move |tx, id| tx.add_tag(id, &request.tag)).await
}

pub(super) async fn remove_tag<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs((id, tag)): PathArgs<(u32, String)>,
) -> ApiResult {
    change_record::<R>(&db, caller, id, move |tx, id| tx.remove_tag(id, &tag)).await
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
pub(super) struct StageRequest {
    to: String,
    #[serde(default)]
    mode: MoveMode,
    #[serde(default)]
    reason: Option<String>,
    /// Recorded in the stage history; `system` when absent.
    #[serde(default)]
    actor: Option<String>,
}

pub(super) async fn move_stage<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<StageRequest>,
) -> ApiResult
where
    R::Id: Into<StagedId>,
{
    change_record::<R>(&db, caller, id, move |tx, id| {
        if let Some(actor) = request.actor {
            tx.set_actor(actor);
        }
        let to = request.to.as_str();
        let reason = request.reason.as_deref().unwrap_or("");
        match request.mode {
            MoveMode::Move => tx.move_stage(id, to),
            MoveMode::Regress => tx.regress(id, to, reason),
            MoveMode::Reopen => tx.reopen(id, to, reason),
        }
    })
    .await
}

pub(super) async fn history<R: Resource>(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult
where
    R::Id: Into<StagedId>,
{
    blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
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
    .await
    .map(Json)
}
