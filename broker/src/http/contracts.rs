//! Contracts over HTTP: list, show, accept, close, escrow, top-up.

use api::contracts::{AcceptRequest, ContractListQuery, EscrowView, TopUpRequest, ToppedUp};
use api::{Contract, ContractId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{Anyone, ApiJson, ApiQuery, As, Consumers, ContractOf, Parties, Providers};
use super::problem::Failure;
use super::AppState;
use crate::market::contracts::{DEFAULT_LIST, MAX_LIST};

/// The caller's contracts (all of them for auditors and operators), newest first.
#[utoipa::path(get, path = "/v1/contracts", tag = "contracts", operation_id = "contracts",
    params(ContractListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The contracts", body = Vec<Contract>)))]
pub async fn list(
    State(app): State<AppState>,
    As { who, .. }: As<Anyone>,
    ApiQuery(q): ApiQuery<ContractListQuery>,
) -> Result<Json<Vec<Contract>>, Failure> {
    let limit = q.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(Failure::bad_request(format!("limit must be 1-{MAX_LIST}")));
    }
    Ok(Json(app.market.contracts(&who, limit).await?))
}

/// One contract: its signed document, both signatures, and its state on chain.
#[utoipa::path(get, path = "/v1/contracts/{id}", tag = "contracts", operation_id = "contract",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The contract", body = Contract)))]
pub async fn get(
    State(app): State<AppState>,
    c: ContractOf<Anyone>,
) -> Result<Json<Contract>, Failure> {
    Ok(Json(app.market.contract_view(&c.contract).await?))
}

/// The provider signs the proposed contract's document; the broker then opens it on chain.
#[utoipa::path(post, path = "/v1/contracts/{id}/accept", tag = "contracts", operation_id = "accept",
    params(("id" = ContractId, Path, description = "The contract's id")),
    request_body = AcceptRequest,
    security(("bearer" = [])),
    responses((status = 202, description = "Signed by both; being opened", body = Contract)))]
pub async fn accept(
    State(app): State<AppState>,
    c: ContractOf<Providers>,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> Result<(StatusCode, Json<Contract>), Failure> {
    Ok((
        StatusCode::ACCEPTED,
        Json(app.market.accept(&c.contract, &req).await?),
    ))
}

/// Either party closes an active contract; the unused escrow goes back to the consumer.
#[utoipa::path(post, path = "/v1/contracts/{id}/close", tag = "contracts", operation_id = "close",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 202, description = "Being closed on chain", body = Contract)))]
pub async fn close(
    State(app): State<AppState>,
    c: ContractOf<Parties>,
) -> Result<(StatusCode, Json<Contract>), Failure> {
    Ok((
        StatusCode::ACCEPTED,
        Json(app.market.close(&c.contract).await?),
    ))
}

/// How long the contract's escrow lasts, with the nonces a top-up signs.
#[utoipa::path(get, path = "/v1/contracts/{id}/escrow", tag = "contracts", operation_id = "escrow",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The escrow", body = EscrowView)))]
pub async fn escrow(
    State(app): State<AppState>,
    c: ContractOf<Anyone>,
) -> Result<Json<EscrowView>, Failure> {
    Ok(Json(app.market.escrow(&c.contract).await?))
}

/// The consumer adds to the escrow (its TopUp and permit signatures, relayed); a contract
/// suspended for its escrow resumes.
#[utoipa::path(post, path = "/v1/contracts/{id}/topup", tag = "contracts", operation_id = "top_up",
    params(("id" = ContractId, Path, description = "The contract's id")),
    request_body = TopUpRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Added", body = ToppedUp)))]
pub async fn top_up(
    State(app): State<AppState>,
    c: ContractOf<Consumers>,
    ApiJson(req): ApiJson<TopUpRequest>,
) -> Result<Json<ToppedUp>, Failure> {
    Ok(Json(app.market.top_up(&c.contract, &req).await?))
}
