//! Usage over HTTP: providers' agents report signed records; the parties follow a contract's usage
//! as it accrues and read its statement; anyone party to it gets a record's proof of settlement;
//! consumers dispute, operators decide.

use api::usage::{
    ContractUsage, DisputeRequest, Disputed, Receipt, ReceiptStored, RecordOutcome, ResolveRequest,
    Statement, StatementFormat, StatementQuery, UsageProof, UsageReport,
};
use api::{ContractId, UsageRecordId};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::extract::{
    Anyone, ApiJson, ApiPath, ApiQuery, As, Consumers, ContractOf, Operators, Providers,
};
use super::problem::Failure;
use super::AppState;
use crate::market::statements;

/// A provider reports records; each is answered on its own (accepted, duplicate, refused + why).
#[utoipa::path(post, path = "/v1/usage", tag = "usage", operation_id = "report_usage",
    request_body = UsageReport,
    security(("bearer" = [])),
    responses((status = 200, description = "One outcome per record, in order", body = Vec<RecordOutcome>)))]
pub async fn report(
    State(app): State<AppState>,
    As { who, .. }: As<Providers>,
    ApiJson(report): ApiJson<UsageReport>,
) -> Result<Json<Vec<RecordOutcome>>, Failure> {
    Ok(Json(app.market.report_usage(&who, &report).await?))
}

/// A contract's usage as it accrues (its parties, auditors, operators).
#[utoipa::path(get, path = "/v1/contracts/{id}/usage", tag = "usage", operation_id = "contract_usage",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Its records, priced", body = ContractUsage)))]
pub async fn of_contract(
    State(app): State<AppState>,
    c: ContractOf<Anyone>,
) -> Result<Json<ContractUsage>, Failure> {
    Ok(Json(app.market.usage(&c.contract).await?))
}

/// The Merkle proof that a record is part of its settled batch, and the chain's own check.
#[utoipa::path(get, path = "/v1/usage/{id}/proof", tag = "usage", operation_id = "usage_proof",
    params(("id" = UsageRecordId, Path, description = "The record's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The proof", body = UsageProof)))]
pub async fn proof(
    State(app): State<AppState>,
    As { who, .. }: As<Anyone>,
    ApiPath(id): ApiPath<UsageRecordId>,
) -> Result<Json<UsageProof>, Failure> {
    Ok(Json(app.market.usage_proof(&who, &id).await?))
}

/// A contract's statement for its parties (and auditors, operators), checked against the chain:
/// JSON, or CSV with `format=csv`.
#[utoipa::path(get, path = "/v1/contracts/{id}/statement", tag = "usage", operation_id = "statement",
    params(("id" = ContractId, Path, description = "The contract's id"), StatementQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The statement", content(
        (Statement = "application/json"),
        (String = "text/csv")))))]
pub async fn statement(
    State(app): State<AppState>,
    c: ContractOf<Anyone>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> Result<Response, Failure> {
    let s = app
        .market
        .statement(&c.contract, q.from.unwrap_or(0), q.to.unwrap_or(u64::MAX))
        .await?;
    Ok(match q.format.unwrap_or_default() {
        StatementFormat::Json => Json(s).into_response(),
        StatementFormat::Csv => (
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            statements::to_csv(&s),
        )
            .into_response(),
    })
}

/// The contract's consumer hands in its signed receipt of a session (evidence for disputes); a
/// later receipt of a session replaces an earlier one.
#[utoipa::path(post, path = "/v1/contracts/{id}/receipts", tag = "usage", operation_id = "submit_receipt",
    params(("id" = ContractId, Path, description = "The contract's id")),
    request_body = Receipt,
    security(("bearer" = [])),
    responses((status = 200, description = "Kept (or an as late one already was)", body = ReceiptStored)))]
pub async fn receipt(
    State(app): State<AppState>,
    c: ContractOf<Consumers>,
    ApiJson(r): ApiJson<Receipt>,
) -> Result<Json<ReceiptStored>, Failure> {
    Ok(Json(app.market.store_receipt(&c.contract, &r).await?))
}

/// The contract's consumer disputes a record within the window (it is held from settlement).
#[utoipa::path(post, path = "/v1/usage/{id}/dispute", tag = "usage", operation_id = "dispute_usage",
    params(("id" = UsageRecordId, Path, description = "The record's id")),
    request_body = DisputeRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Disputed", body = Disputed)))]
pub async fn dispute(
    State(app): State<AppState>,
    As { who, .. }: As<Consumers>,
    ApiPath(id): ApiPath<UsageRecordId>,
    ApiJson(req): ApiJson<DisputeRequest>,
) -> Result<Json<Disputed>, Failure> {
    Ok(Json(app.market.dispute(&who, &id, &req.reason).await?))
}

/// An operator decides a dispute: the record stands, or is voided.
#[utoipa::path(post, path = "/v1/usage/{id}/resolve", tag = "usage", operation_id = "resolve_dispute",
    params(("id" = UsageRecordId, Path, description = "The record's id")),
    request_body = ResolveRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Decided", body = Disputed)))]
pub async fn resolve(
    State(app): State<AppState>,
    _: As<Operators>,
    ApiPath(id): ApiPath<UsageRecordId>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<Disputed>, Failure> {
    Ok(Json(app.market.resolve(&id, req.uphold).await?))
}
