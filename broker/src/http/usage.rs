//! Usage over HTTP: providers' agents report signed records; the parties follow a contract's usage
//! as it accrues; anyone party to it gets a record's proof of settlement.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::problem::Problem;
use super::reservations::may_see;
use super::{require, ApiJson, AppState};
use crate::identity::{now, Principal, Role};
use crate::market::records;
use crate::market::settlement;
use crate::market::statements;
use crate::market::usage::{self, Outcome, StoredUsage, MAX_RECORDS_PER_REPORT};
use peering::usage::UsageRecord;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Report {
    pub records: Vec<UsageRecord>,
}

/// A provider reports records (each answered on its own: accepted, duplicate, refused + why).
pub async fn report(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(report): ApiJson<Report>,
) -> Result<Json<Vec<Outcome>>, Problem> {
    require(&who, &[Role::Provider], "reporting usage")?;
    if report.records.len() > MAX_RECORDS_PER_REPORT {
        return Err(Problem::bad_request(format!(
            "at most {MAX_RECORDS_PER_REPORT} records per report"
        )));
    }
    let now = now();
    let mut ingest = usage::Ingest::new(&state.store, &state.ledger);
    let mut out = Vec::with_capacity(report.records.len());
    for r in &report.records {
        out.push(ingest.record(&who.did, r, now).await?);
    }
    // Batches are cut by size as well as by age.
    let waiting: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM usage_records WHERE batch_id IS NULL AND disputed_at IS NULL",
    )
    .fetch_one(state.store.pool())
    .await?;
    if waiting.0 >= i64::from(state.batch_records) {
        state.batch_full.notify_one();
    }
    Ok(Json(out))
}

/// A contract's usage as it accrues (its parties, auditors, operators).
pub async fn of_contract(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let c = records::get_contract(&state.store, &id)
        .await?
        .filter(|c| may_see(&who, &c.consumer, &c.provider))
        .ok_or_else(|| Problem::not_found(format!("no contract {id} of yours")))?;
    let list: Vec<StoredUsage> = usage::of_contract(&state.store, &c.id).await?;
    let total: u128 = list
        .iter()
        .filter_map(|u| u.amount.parse::<u128>().ok())
        .sum();
    let settled: u128 = list
        .iter()
        .filter(|u| u.batch_id.is_some())
        .filter_map(|u| u.amount.parse::<u128>().ok())
        .sum();
    Ok(Json(json!({
        "contract": c.id, "records": list, "total": total.to_string(),
        "settled": settled.to_string(),
    })))
}

/// The Merkle proof that a record is part of its settled batch, and the chain's own check.
pub async fn proof(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT contract_id, consumer, provider FROM usage_records WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(state.store.pool())
            .await?;
    let Some((contract, consumer, provider)) = row.filter(|(_, c, p)| may_see(&who, c, p)) else {
        return Err(Problem::not_found(format!("no usage record {id} of yours")));
    };
    let _ = (consumer, provider);
    let Some((batch, root, hash, path)) = settlement::proof(&state.store, &id).await? else {
        return Err(Problem::new(
            axum::http::StatusCode::CONFLICT,
            "not settled yet",
            format!("record {id} is not in a settled batch yet; try again after the next batch"),
        ));
    };
    let on_chain = state
        .ledger
        .verify_record(batch, hash, path.clone())
        .await
        .map_err(|e| Problem::unavailable("chain unavailable", e.to_string()))?;
    Ok(Json(json!({
        "record": id, "contract": contract, "batch": batch, "root": root, "recordHash": hash,
        "proof": path, "verifiedOnChain": on_chain,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub to: Option<u64>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// A contract's statement for its parties (and auditors, operators), checked against the chain.
pub async fn statement(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<StatementQuery>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let c = records::get_contract(&state.store, &id)
        .await?
        .filter(|c| may_see(&who, &c.consumer, &c.provider))
        .ok_or_else(|| Problem::not_found(format!("no contract {id} of yours")))?;
    let s = statements::statement(
        &state.store,
        &state.ledger,
        &c,
        q.from.unwrap_or(0),
        q.to.unwrap_or(u64::MAX),
    )
    .await?;
    Ok(match q.format.as_deref() {
        None | Some("json") => Json(s).into_response(),
        Some("csv") => (
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            statements::to_csv(&s),
        )
            .into_response(),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "format {other:?}: use json or csv"
            )))
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisputeRequest {
    pub reason: String,
}

/// The contract's consumer disputes a record within the window (it is held from settlement).
pub async fn dispute(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DisputeRequest>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Consumer], "disputing usage")?;
    if req.reason.trim().is_empty() || req.reason.len() > 1000 {
        return Err(Problem::bad_request("give a reason of 1-1000 characters"));
    }
    usage::dispute(
        &state.store,
        &who.did,
        &id,
        &req.reason,
        state.dispute_window_secs,
        now(),
    )
    .await?;
    Ok(Json(json!({"record": id, "disputed": true})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveRequest {
    /// true: the record stands and settles; false: it is voided.
    pub uphold: bool,
}

/// An operator decides a dispute.
pub async fn resolve(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Operator], "resolving disputes")?;
    usage::resolve(&state.store, &id, req.uphold).await?;
    Ok(Json(
        json!({"record": id, "outcome": if req.uphold { "upheld" } else { "voided" }}),
    ))
}
