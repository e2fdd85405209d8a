//! Peering credentials over HTTP: the contract's consumer reads and renews them; an operator
//! revokes them.

use api::credentials::{CredentialInfo, Revoked};
use api::ContractId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{Consumers, ContractOf, Operators};
use super::problem::Failure;
use super::AppState;

/// The contract's working credentials, sealed to its consumer (the only caller allowed).
#[utoipa::path(get, path = "/v1/contracts/{id}/credentials", tag = "credentials", operation_id = "credentials",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Newest first", body = Vec<CredentialInfo>)))]
pub async fn list(
    State(app): State<AppState>,
    c: ContractOf<Consumers>,
) -> Result<Json<Vec<CredentialInfo>>, Failure> {
    Ok(Json(app.market.credentials(&c.contract).await?))
}

/// A new credential; the older ones keep working for the grace period.
#[utoipa::path(post, path = "/v1/contracts/{id}/credentials/renew", tag = "credentials", operation_id = "renew_credential",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 201, description = "The new credential", body = CredentialInfo)))]
pub async fn renew(
    State(app): State<AppState>,
    c: ContractOf<Consumers>,
) -> Result<(StatusCode, Json<CredentialInfo>), Failure> {
    Ok((
        StatusCode::CREATED,
        Json(app.market.renew_credential(&c.contract).await?),
    ))
}

/// Operators revoke a contract's credentials (the provider's agent refuses them within seconds);
/// none is issued again until an operator releases them.
#[utoipa::path(post, path = "/v1/contracts/{id}/credentials/revoke", tag = "credentials", operation_id = "revoke_credentials",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Revoked", body = Revoked)))]
pub async fn revoke(
    State(app): State<AppState>,
    c: ContractOf<Operators>,
) -> Result<Json<Revoked>, Failure> {
    Ok(Json(
        app.market
            .revoke_credentials(&c.contract, "revoked by an operator")
            .await?,
    ))
}

/// Operators lift the hold a revocation put on a contract's credentials; an active contract gets
/// a new one.
#[utoipa::path(post, path = "/v1/contracts/{id}/credentials/release", tag = "credentials", operation_id = "release_credentials",
    params(("id" = ContractId, Path, description = "The contract's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Released")))]
pub async fn release(
    State(app): State<AppState>,
    c: ContractOf<Operators>,
) -> Result<StatusCode, Failure> {
    app.market.release_credentials(&c.contract).await?;
    Ok(StatusCode::NO_CONTENT)
}
