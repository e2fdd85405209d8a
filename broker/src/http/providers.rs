//! Provider configurations over HTTP.

use api::providers::{ConfigRegistered, ConfigRequest, ProviderConfigView};
use api::Did;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, ApiPath, As, Providers};
use super::problem::Failure;
use super::AppState;

/// Registers (or changes) the caller's configuration: stored in the content store, its CID
/// registered on chain with the provider account's `SetConfig` signature.
#[utoipa::path(post, path = "/v1/providers/me/config", tag = "providers", operation_id = "set_provider_config",
    request_body = ConfigRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Registered", body = ConfigRegistered)))]
pub async fn set_config(
    State(app): State<AppState>,
    As { who, .. }: As<Providers>,
    ApiJson(req): ApiJson<ConfigRequest>,
) -> Result<(StatusCode, Json<ConfigRegistered>), Failure> {
    Ok((
        StatusCode::CREATED,
        Json(app.market.set_config(&who, &req).await?),
    ))
}

/// A provider's current configuration, read back and checked by its CID.
#[utoipa::path(get, path = "/v1/providers/{did}/config", tag = "providers", operation_id = "provider_config",
    params(("did" = Did, Path, description = "The provider's did:key")),
    responses((status = 200, description = "The configuration", body = ProviderConfigView)))]
pub async fn config(
    State(app): State<AppState>,
    ApiPath(did): ApiPath<Did>,
) -> Result<Json<ProviderConfigView>, Failure> {
    Ok(Json(app.market.config(&did).await?))
}
