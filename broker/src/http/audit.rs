//! Auditors' questions over HTTP (auditors and operators only): each answers from the ledger
//! index, as JSON or, with `format=csv`, as CSV.

use api::audit::*;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::extract::{ApiQuery, As, Auditors};
use super::problem::Failure;
use super::AppState;
use crate::market::audit::{to_csv, CsvRow};
use crate::store::now;

/// The answer as JSON, or its rows as CSV.
fn answer<T: Serialize, R: CsvRow>(format: Option<AuditFormat>, body: T, rows: &[R]) -> Response {
    match format.unwrap_or_default() {
        AuditFormat::Json => Json(body).into_response(),
        AuditFormat::Csv => ([(header::CONTENT_TYPE, "text/csv")], to_csv(rows)).into_response(),
    }
}

/// Contracts (of a participant, a side, a state) opened in a time range, with price, deposit,
/// opening and closing blocks, what was charged and refunded, and the escrow now.
#[utoipa::path(get, path = "/v1/audit/contracts", tag = "audit", operation_id = "audit_contracts",
    params(AuditContractsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Contracts", content(
        (AuditContractPage = "application/json"), (String = "text/csv")))))]
pub async fn contracts(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<AuditContractsQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_contracts(&q, now()).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// Every flow of a participant's credits (deposits, top-ups, charges, earnings, fees, returns,
/// refunds, withdrawals, transfers), each with its transaction and log index.
#[utoipa::path(get, path = "/v1/audit/flows", tag = "audit", operation_id = "audit_flows",
    params(FlowsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Flows, oldest first", content(
        (FlowPage = "application/json"), (String = "text/csv")))))]
pub async fn flows(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<FlowsQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_flows(&q, now()).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// Provider earnings and broker fees per day, week or month.
#[utoipa::path(get, path = "/v1/audit/earnings", tag = "audit", operation_id = "audit_earnings",
    params(EarningsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Earnings per period", content(
        (EarningsReport = "application/json"), (String = "text/csv")))))]
pub async fn earnings(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<EarningsQuery>,
) -> Result<Response, Failure> {
    let report = app.market.audit_earnings(&q, now()).await?;
    Ok(answer(q.format, &report, &report.rows))
}

/// Contracts and sales per provider or consumer, best first, with the totals.
#[utoipa::path(get, path = "/v1/audit/rankings", tag = "audit", operation_id = "audit_rankings",
    params(RankingsQuery), security(("bearer" = [])),
    responses((status = 200, description = "The ranking", content(
        (Ranking = "application/json"), (String = "text/csv")))))]
pub async fn rankings(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<RankingsQuery>,
) -> Result<Response, Failure> {
    let ranking = app.market.audit_rankings(&q, now()).await?;
    Ok(answer(q.format, &ranking, &ranking.items))
}

/// Settlement batches with their records' CID, Merkle root and what each contract was charged
/// (a record's proof: `GET /v1/usage/{record}/proof`).
#[utoipa::path(get, path = "/v1/audit/settlements", tag = "audit", operation_id = "audit_settlements",
    params(SettlementsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Batches, oldest first", content(
        (SettlementPage = "application/json"), (String = "text/csv")))))]
pub async fn settlements(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<SettlementsQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_settlements(&q, now()).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// Usage settled against what was bought, per contract, with what the ledger cannot explain.
#[utoipa::path(get, path = "/v1/audit/usage", tag = "audit", operation_id = "audit_usage",
    params(UsageAuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "Per contract", content(
        (UsageAuditPage = "application/json"), (String = "text/csv")))))]
pub async fn usage(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<UsageAuditQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_usage(&q).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// Credentials anchored and revoked, by issuer or by the provider they are about.
#[utoipa::path(get, path = "/v1/audit/credentials", tag = "audit", operation_id = "audit_credentials",
    params(CredentialsAuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "Anchored credentials, oldest first", content(
        (CredentialAuditPage = "application/json"), (String = "text/csv")))))]
pub async fn credentials(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<CredentialsAuditQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_credentials(&q).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// Every configuration a provider registered (CID and version).
#[utoipa::path(get, path = "/v1/audit/configs", tag = "audit", operation_id = "audit_configs",
    params(ConfigsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Configuration versions, oldest first", content(
        (ConfigPage = "application/json"), (String = "text/csv")))))]
pub async fn configs(
    State(app): State<AppState>,
    _who: As<Auditors>,
    ApiQuery(q): ApiQuery<ConfigsQuery>,
) -> Result<Response, Failure> {
    let page = app.market.audit_configs(&q).await?;
    Ok(answer(q.format, &page, &page.items))
}

/// How far the index has read, and every reorganisation it rolled back.
#[utoipa::path(get, path = "/v1/audit/index", tag = "audit", operation_id = "audit_index",
    security(("bearer" = [])),
    responses((status = 200, description = "The index", body = IndexStatus)))]
pub async fn index(
    State(app): State<AppState>,
    _who: As<Auditors>,
) -> Result<Json<IndexStatus>, Failure> {
    Ok(Json(app.market.index_status().await?))
}

/// The index's count of each event against a count read from the chain now.
#[utoipa::path(get, path = "/v1/audit/selfcheck", tag = "audit", operation_id = "audit_selfcheck",
    security(("bearer" = [])),
    responses((status = 200, description = "The counts", body = SelfCheck)))]
pub async fn selfcheck(
    State(app): State<AppState>,
    _who: As<Auditors>,
) -> Result<Json<SelfCheck>, Failure> {
    Ok(Json(app.market.index_selfcheck().await?))
}
