//! Identity endpoints: duplicate candidates, merge, unmerge, lineage, consent, erasure.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crmdb::identity::{
    Consent, ConsentEntry, ConsentStatus, DuplicateOptions, FieldRule, LawfulBasis, Lineage,
    MergePolicy, duplicate_candidates,
};
use crmdb::{Contact, ContactId, Database, EntityKind, Snapshot};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::Caller;
use super::errors::{ApiError, ApiResult, Body, PathArgs, QueryArgs, blocking};
use super::records::Resource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CandidateParams {
    kind: Option<String>,
    min_score: Option<u32>,
    limit: Option<usize>,
}

/// `GET /duplicates?kind=contact|account&min_score=&limit=`: the best candidates.
pub(super) async fn candidates(
    State(db): State<Database>,
    caller: Caller,
    QueryArgs(params): QueryArgs<CandidateParams>,
) -> ApiResult {
    let kind = match params.kind.as_deref().unwrap_or("contact") {
        "contact" => EntityKind::Contact,
        "account" => EntityKind::Account,
        other => return Err(bad("kind", &format!("{other} has no duplicate candidates"))),
    };
    let mut options = DuplicateOptions::default();
    if let Some(min) = params.min_score {
        options.min_score = min.min(100);
    }
    let limit = params.limit.unwrap_or(100).min(10_000);
    let report = blocking(&db, move |db| {
        db.read_as(&caller.0, |r| duplicate_candidates(r, kind, &options))
    })
    .await?;
    let candidates: Vec<JsonValue> = report
        .candidates
        .iter()
        .take(limit)
        .map(|c| {
            json!({
                "a": c.a,
                "b": c.b,
                "score": c.score,
                "name_similarity": c.name_similarity,
                "reasons": c.reasons.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
                "automatic": c.automatic,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": kind.as_str(),
        "records": report.records,
        "compared": report.compared,
        "oversized_blocks": report.oversized_blocks,
        "total": report.candidates.len(),
        "candidates": candidates,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeIn {
    survivor: u32,
    other: u32,
    /// `survivor_wins` (the default) or `newest_non_empty`.
    policy: Option<String>,
    /// Per-field rules: `survivor`, `other` or `newest_non_empty`.
    #[serde(default)]
    fields: std::collections::BTreeMap<String, String>,
}

fn rule(name: &str) -> Result<FieldRule, ApiError> {
    match name {
        "survivor" | "survivor_wins" => Ok(FieldRule::Survivor),
        "other" => Ok(FieldRule::Other),
        "newest_non_empty" => Ok(FieldRule::NewestNonEmpty),
        other => Err(bad(
            "policy",
            &format!("unknown rule {other:?}: survivor, other or newest_non_empty"),
        )),
    }
}

/// `POST /contacts/merge`.
pub(super) async fn merge(
    State(db): State<Database>,
    caller: Caller,
    Body(request): Body<MergeIn>,
) -> ApiResult {
    let mut policy = MergePolicy {
        default: rule(request.policy.as_deref().unwrap_or("survivor"))?,
        ..MergePolicy::default()
    };
    for (field, name) in &request.fields {
        policy.fields.insert(field.clone(), rule(name)?);
    }
    let (survivor, other) = (
        ContactId::new(request.survivor),
        ContactId::new(request.other),
    );
    let lineage = blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
            let merge = tx.merge(survivor, other, &policy)?;
            tx.lineage(merge)
        })
    })
    .await?;
    Ok(Json(lineage_json(&lineage)))
}

/// `GET /merges`.
pub(super) async fn merges(State(db): State<Database>, caller: Caller) -> ApiResult {
    let all = blocking(&db, move |db| db.read_as(&caller.0, |r| r.merges())).await?;
    Ok(Json(
        json!({ "merges": all.iter().map(lineage_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /merges/{id}`.
pub(super) async fn lineage(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> ApiResult {
    let lineage = blocking(&db, move |db| db.read_as(&caller.0, |r| r.lineage(id))).await?;
    Ok(Json(lineage_json(&lineage)))
}

/// `POST /merges/{id}/unmerge`.
pub(super) async fn unmerge(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> ApiResult {
    let lineage = blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
            tx.unmerge(id)?;
            tx.lineage(id)
        })
    })
    .await?;
    Ok(Json(lineage_json(&lineage)))
}

fn lineage_json(lineage: &Lineage) -> JsonValue {
    json!({
        "merge": lineage.merge,
        "survivor": lineage.survivor,
        "other": lineage.other,
        "at": lineage.at.0,
        "actor": lineage.actor,
        "survivor_before": Contact::to_json(ContactId::new(lineage.survivor), &lineage.survivor_before),
        "other_before": Contact::to_json(ContactId::new(lineage.other), &lineage.other_before),
        "fields_taken": lineage.fields_taken,
        "tags_added": lineage.tags_added,
        "stage": lineage.stage.as_ref().map(|(from, to)| json!({"from": from.as_str(), "to": to.as_str()})),
        "moved": lineage.moved.iter().map(|m| json!({"kind": m.kind.as_str(), "id": m.id})).collect::<Vec<_>>(),
        "undone": lineage.undone.as_ref().map(|u| json!({"at": u.at.0, "actor": u.actor})),
        "erased": lineage.erased,
    })
}

fn entry_json(entry: &ConsentEntry) -> JsonValue {
    json!({
        "channel": entry.consent.channel,
        "status": entry.consent.status.as_str(),
        "basis": entry.consent.basis.map(|b| format!("{b:?}")),
        "source": entry.consent.source,
        "note": entry.consent.note,
        "at": entry.at.0,
        "actor": entry.actor,
    })
}

/// `GET /contacts/{id}/consent`: the state per channel and the ledger.
pub(super) async fn read_consent(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
) -> ApiResult {
    let id = ContactId::new(id);
    let (channels, state, history) = blocking(&db, move |db| {
        db.read_as(&caller.0, |r| {
            r.get(id)?;
            Ok((
                r.consent_channels()?,
                r.consent(id)?,
                r.consent_history(id)?,
            ))
        })
    })
    .await?;
    let state: serde_json::Map<String, JsonValue> = channels
        .iter()
        .map(|c| {
            let status = state
                .get(c)
                .map_or(ConsentStatus::Unknown, |e| e.consent.status);
            (c.clone(), json!(status.as_str()))
        })
        .collect();
    Ok(Json(json!({
        "contact": id.get(),
        "state": state,
        "history": history.iter().map(entry_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentIn {
    channel: String,
    status: String,
    basis: Option<String>,
    source: Option<String>,
    note: Option<String>,
}

/// `POST /contacts/{id}/consent`: appends an entry.
pub(super) async fn append_consent(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<ConsentIn>,
) -> ApiResult {
    let status = ConsentStatus::parse(&request.status)
        .ok_or_else(|| bad("status", "expected granted, denied or unknown"))?;
    let basis = match request.basis.as_deref() {
        None => None,
        Some("consent") => Some(LawfulBasis::Consent),
        Some("contract") => Some(LawfulBasis::Contract),
        Some("legal_obligation") => Some(LawfulBasis::LegalObligation),
        Some("vital_interests") => Some(LawfulBasis::VitalInterests),
        Some("public_task") => Some(LawfulBasis::PublicTask),
        Some("legitimate_interests") => Some(LawfulBasis::LegitimateInterests),
        Some(_) => {
            return Err(bad(
                "basis",
                "expected consent, contract, legal_obligation, vital_interests, public_task or \
                 legitimate_interests",
            ));
        }
    };
    let consent = Consent {
        channel: request.channel,
        status,
        basis,
        source: request.source,
        note: request.note,
    };
    let id = ContactId::new(id);
    let entry = blocking(&db, move |db| {
        db.write_grouped(|tx| {
            let tx = &mut tx.scoped(&caller.0)?;
            tx.record_consent(id, consent)?;
            Ok(tx.consent_history(id)?.pop())
        })
    })
    .await?;
    Ok(Json(json!({ "entry": entry.as_ref().map(entry_json) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EraseIn {
    reason: String,
    /// Must be `true`: an erasure cannot be undone.
    confirm: Option<bool>,
}

/// `POST /contacts/{id}/erase`: needs `"confirm": true`.
pub(super) async fn erase(
    State(db): State<Database>,
    caller: Caller,
    PathArgs(id): PathArgs<u32>,
    Body(request): Body<EraseIn>,
) -> ApiResult {
    if request.confirm != Some(true) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_required",
            "an erasure cannot be undone: send \"confirm\": true to go ahead",
        ));
    }
    let id = ContactId::new(id);
    let erasure = blocking(&db, move |db| {
        db.write_grouped(|tx| tx.scoped(&caller.0)?.erase(id, &request.reason))
    })
    .await?;
    Ok(Json(json!({
        "erasure": erasure.erasure,
        "contacts": erasure.contacts,
        "at": erasure.at.0,
        "actor": erasure.actor,
        "reason": erasure.reason,
    })))
}

fn bad(field: &str, reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        format!("{field}: {reason}"),
    )
}
