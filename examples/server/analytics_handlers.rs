//! Analytics and lead-assignment endpoints. Their request and response shapes live in
//! `analytics.rs`; these handlers only run them against the engine.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crmdb::{Contact, Database, EntityKind, Error, Snapshot};
use serde_json::json;

use super::analytics::{
    AssignmentIn, FunnelIn, OwnersIn, ProductsIn, RfmRefreshIn, assignment_json, funnel_json,
    owners_json, products_json, rfm_json,
};
use super::auth::Caller;
use super::errors::{ApiError, ApiResult, Body, PathArgs, blocking};
use super::records::Resource;

pub(super) async fn funnel(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<FunnelIn>,
) -> ApiResult {
    let request = request.window()?;
    blocking(&db, move |db| {
        let request = request.into_request()?;
        let funnel = db.read_as(&caller.0, |r| crmdb::analytics::funnel(r, &request))?;
        Ok(funnel_json(&request, &funnel))
    })
    .await
    .map(Json)
}

pub(super) async fn owner_ranking(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<OwnersIn>,
) -> ApiResult {
    let request = request.check()?;
    blocking(&db, move |db| {
        let owners = db.read_as(&caller.0, |r| {
            crmdb::analytics::owner_ranking(r, request.from, request.to, request.sort())
        })?;
        Ok(owners_json(&request, &owners))
    })
    .await
    .map(Json)
}

pub(super) async fn product_sales(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<ProductsIn>,
) -> ApiResult {
    let window = request.window()?;
    blocking(&db, move |db| {
        let (products, categories) = db.read_as(&caller.0, |r| {
            crmdb::analytics::product_sales(r, window.0, window.1)
        })?;
        Ok(products_json(window, &products, &categories))
    })
    .await
    .map(Json)
}

/// Recomputes RFM scores and value tiers as of `now` (the database clock by default).
pub(super) async fn refresh_rfm(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<RfmRefreshIn>,
) -> ApiResult {
    caller.must_see_everything()?;
    let now = request.now()?;
    let state = blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let now = now.unwrap_or_else(|| tx.now());
            tx.refresh_rfm(now)
        })
    })
    .await?;
    Ok(Json(rfm_json(&state)))
}

/// The last RFM refresh; 404 `rfm_not_refreshed` before the first.
pub(super) async fn rfm_state(State(db): State<Database>, caller: Caller) -> ApiResult {
    let state = blocking(&db, move |db| {
        db.read_as(&caller.0, crmdb::analytics::rfm_state)
    })
    .await?;
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

pub(super) async fn read_assignment(State(db): State<Database>, caller: Caller) -> ApiResult {
    let assignment = blocking(&db, move |db| db.read_as(&caller.0, crmdb::assignment)).await?;
    Ok(Json(assignment_json(&assignment)))
}

/// Replaces the whole assignment configuration. An excluded owner that does not exist
/// is a broken reference (422), as it is in a record's body.
pub(super) async fn save_assignment(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<AssignmentIn>,
) -> ApiResult {
    caller.must_see_everything()?;
    let saved = blocking(&db, move |db| {
        let written = db.write_grouped(|tx| {
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
pub(super) async fn requalify(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
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
    .await
    .map(Json)
}
