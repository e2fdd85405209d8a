//! EVM accounts over HTTP: link one to the caller's did, read what the chain says of one, the
//! development faucet, and the caller's own transactions relayed (terms, then the signed bytes).

use alloy::primitives::Address;
use api::ledger::{
    AccountInfo, FaucetGrant, LinkRequest, Linked, RelayRequest, Relayed, TxTerms, TxTermsRequest,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{Anyone, ApiJson, ApiPath, As, Parties};
use super::problem::Failure;
use super::AppState;

/// Links an EVM account to the caller's did on chain (the account's EIP-712 `Link` signature,
/// relayed by the broker: the participant needs no gas).
#[utoipa::path(post, path = "/v1/participants/me/account", tag = "accounts", operation_id = "link_account",
    request_body = LinkRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Linked", body = Linked)))]
pub async fn link(
    State(app): State<AppState>,
    As { who, .. }: As<Anyone>,
    ApiJson(req): ApiJson<LinkRequest>,
) -> Result<(StatusCode, Json<Linked>), Failure> {
    Ok((
        StatusCode::CREATED,
        Json(app.market.link(&who, &req).await?),
    ))
}

/// What the chain says of an account: its did, credits, and the nonces its next signatures carry.
#[utoipa::path(get, path = "/v1/accounts/{address}", tag = "accounts", operation_id = "account",
    params(("address" = String, Path, description = "An EVM address", pattern = "^(0x)?[0-9a-fA-F]{40}$")),
    security(("bearer" = [])),
    responses((status = 200, description = "The account", body = AccountInfo)))]
pub async fn show(
    State(app): State<AppState>,
    _: As<Anyone>,
    ApiPath(address): ApiPath<String>,
) -> Result<Json<AccountInfo>, Failure> {
    let account: Address = address
        .parse()
        .map_err(|_| Failure::bad_request("not an EVM address (0x and 40 hex digits)"))?;
    Ok(Json(app.market.account_info(account).await?))
}

/// Development chains only: 1,000 credits (and gas money) to the caller's linked account.
#[utoipa::path(post, path = "/v1/faucet", tag = "accounts", operation_id = "faucet",
    security(("bearer" = [])),
    responses((status = 200, description = "Minted", body = FaucetGrant)))]
pub async fn faucet(
    State(app): State<AppState>,
    As { who, .. }: As<Parties>,
) -> Result<Json<FaucetGrant>, Failure> {
    Ok(Json(app.market.faucet(&who).await?))
}

/// The nonce, gas and fees of a call the caller's linked account is about to sign (refused when
/// the chain would revert it).
#[utoipa::path(post, path = "/v1/chain/transactions/terms", tag = "accounts", operation_id = "transaction_terms",
    request_body = TxTermsRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The terms", body = TxTerms)))]
pub async fn terms(
    State(app): State<AppState>,
    As { who, .. }: As<Parties>,
    ApiJson(req): ApiJson<TxTermsRequest>,
) -> Result<Json<TxTerms>, Failure> {
    Ok(Json(app.market.tx_terms(&who, &req).await?))
}

/// Relays a transaction the caller's linked account signed, byte for byte, to one of the
/// deployment's contracts; answers once it is mined.
#[utoipa::path(post, path = "/v1/chain/transactions", tag = "accounts", operation_id = "relay_transaction",
    request_body = RelayRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Mined and successful", body = Relayed)))]
pub async fn relay(
    State(app): State<AppState>,
    As { who, .. }: As<Parties>,
    ApiJson(req): ApiJson<RelayRequest>,
) -> Result<Json<Relayed>, Failure> {
    Ok(Json(app.market.relay(&who, &req).await?))
}
