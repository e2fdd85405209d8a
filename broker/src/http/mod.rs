//! The HTTP API. Handlers are thin: they check input, call the domain, map errors to problems.

pub mod problem;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::ledger_link::{LedgerLink, LedgerStatus};
use crate::store::Store;
use problem::Problem;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ledger: LedgerLink,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/ledger", get(ledger_status))
        .fallback(not_found)
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    sqlx::query("SELECT 1")
        .execute(state.store.pool())
        .await
        .map_err(|e| Problem::unavailable("database unavailable", e.to_string()))?;
    Ok(Json(json!({ "status": "ok" })))
}

async fn ledger_status(State(state): State<AppState>) -> Result<Json<LedgerStatus>, Problem> {
    state
        .ledger
        .status()
        .await
        .map(Json)
        .map_err(|e| Problem::unavailable("chain unavailable", e.to_string()))
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}
