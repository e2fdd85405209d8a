//! What anyone may ask: is the broker up, which ledger it settles on, its API document.

use api::ledger::{Health, LedgerStatus};
use axum::extract::State;
use axum::Json;

use super::problem::Failure;
use super::AppState;

/// The broker and its database answer.
#[utoipa::path(get, path = "/health", tag = "system", operation_id = "health",
    responses((status = 200, description = "The broker and its database answer", body = Health)))]
pub async fn health(State(app): State<AppState>) -> Result<Json<Health>, Failure> {
    app.market.store.ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// The ledger the broker settles on: chain, block, contract addresses.
#[utoipa::path(get, path = "/v1/ledger", tag = "system", operation_id = "ledger",
    responses((status = 200, description = "The chain and the deployment", body = LedgerStatus)))]
pub async fn ledger(State(app): State<AppState>) -> Result<Json<LedgerStatus>, Failure> {
    Ok(Json(app.market.ledger.status(app.market.did()).await?))
}

/// This API's OpenAPI 3.1 document (generated from the API's types and routes).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = serde_json::Value)))]
pub async fn openapi(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        app.openapi.clone(),
    )
}
