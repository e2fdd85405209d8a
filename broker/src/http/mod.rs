//! The HTTP API. Handlers are thin: they check input, call the domain, map errors to problems.

pub mod accounts;
pub mod auth;
pub mod contracts;
pub mod credentials;
pub mod events;
pub mod offers;
pub mod problem;
pub mod providers;
pub mod reservations;
pub mod usage;

use std::sync::{Arc, RwLock};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::identity::{Principal, Role};
use crate::ledger_link::{LedgerLink, LedgerStatus};
use crate::market::records::{flush, Pending};
use crate::store::Store;
use problem::Problem;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ledger: LedgerLink,
    pub catalog: catalog::store::CatalogStore,
    pub index: Arc<RwLock<catalog::Index>>,
    /// Names this broker in signed login and registration messages.
    pub audience: String,
    pub content: Arc<dyn content::ContentStore>,
    /// Wakes the purchase driver.
    pub driver: Arc<tokio::sync::Notify>,
    /// Wakes the outbox relay after a commit that emitted events.
    pub relay: Arc<tokio::sync::Notify>,
    /// Committed events, as the relay publishes them (wakes the event streams).
    pub bus: crate::events::InProcessBus,
    /// How long a reservation holds capacity.
    pub reservation_ttl: std::time::Duration,
    /// How long after arriving a usage record can be disputed.
    pub dispute_window_secs: u64,
    /// Wakes the settlement batcher when a full batch of records waits.
    pub batch_full: Arc<tokio::sync::Notify>,
    pub batch_records: u32,
    /// When escrow warnings and suspensions happen.
    pub escrow: crate::market::escrow::EscrowPolicy,
    /// Mints peering credentials (the purchase driver, which also mints them on activation).
    pub issuer: crate::market::purchase::Driver,
    /// Development chains only: the account that mints faucet credits.
    pub faucet: Option<ledger::ChainClient>,
}

/// Writes `events` into `tx` (the outbox), commits, and wakes the relay: the change and its
/// events exist together or not at all.
pub async fn commit_with_events(
    state: &AppState,
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    events: Vec<Pending>,
    now: u64,
) -> Result<(), Problem> {
    flush(&mut tx, &state.store, events, now).await?;
    tx.commit().await?;
    state.relay.notify_one();
    Ok(())
}

/// Refuses callers whose role is not one of `roles`.
pub fn require(who: &Principal, roles: &[Role], what: &str) -> Result<(), Problem> {
    if roles.contains(&who.role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "{what} is for {} participants; you are {}",
            names.join(" or "),
            who.role.as_str()
        ),
    ))
}

/// Largest JSON body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `Json` whose rejections are problems: a body that is not the expected JSON, too large, or
/// without a JSON content type gets a reason, never a plain-text error.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => {
                let status = rejection.status();
                let title = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload too large"
                } else {
                    "bad request"
                };
                Err(Problem::new(status, title, rejection.body_text()))
            }
        }
    }
}

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/ledger", get(ledger_status))
        .route("/v1/offers", get(offers::search).post(offers::publish))
        .route("/v1/offers/facets", get(offers::facets))
        .route("/v1/offers/{id}", get(offers::get).delete(offers::withdraw))
        .route("/v1/offers/{id}/history", get(offers::history))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/participants", post(auth::register))
        .route("/v1/auth/challenge", post(auth::challenge))
        .route("/v1/auth/token", post(auth::token))
        .route("/v1/auth/me", get(auth::me))
        .route("/v1/participants/me/account", post(accounts::link))
        .route("/v1/accounts/{address}", get(accounts::show))
        .route("/v1/faucet", post(accounts::faucet))
        .route("/v1/providers/me/config", post(providers::set_config))
        .route("/v1/providers/{did}/config", get(providers::config))
        .route("/v1/reservations", post(reservations::create))
        .route("/v1/reservations/{id}", get(reservations::get))
        .route(
            "/v1/reservations/{id}/purchase",
            post(reservations::purchase),
        )
        .route("/v1/contracts", get(contracts::list))
        .route("/v1/contracts/{id}", get(contracts::get))
        .route("/v1/contracts/{id}/accept", post(contracts::accept))
        .route("/v1/contracts/{id}/close", post(contracts::close))
        .route("/v1/contracts/{id}/credentials", get(credentials::list))
        .route(
            "/v1/contracts/{id}/credentials/renew",
            post(credentials::renew),
        )
        .route(
            "/v1/contracts/{id}/credentials/revoke",
            post(credentials::revoke),
        )
        .route("/v1/usage", post(usage::report))
        .route("/v1/usage/{id}/proof", get(usage::proof))
        .route("/v1/usage/{id}/dispute", post(usage::dispute))
        .route("/v1/usage/{id}/resolve", post(usage::resolve))
        .route("/v1/contracts/{id}/usage", get(usage::of_contract))
        .route("/v1/contracts/{id}/statement", get(usage::statement))
        .route("/v1/contracts/{id}/escrow", get(contracts::escrow))
        .route("/v1/contracts/{id}/topup", post(contracts::top_up))
        .route("/v1/events", get(events::stream))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    #[test]
    fn openapi_documents_every_search_parameter_and_route() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let params: Vec<&str> = spec["paths"]["/v1/offers"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let accepted: Vec<&str> = catalog::params::PARAMS.iter().map(|(k, _)| *k).collect();
        assert_eq!(params, accepted);
        let source = include_str!("mod.rs");
        for line in source
            .lines()
            .filter(|l| l.trim_start().starts_with(".route(\""))
        {
            let path = line.split('"').nth(1).unwrap();
            assert!(
                spec["paths"].get(path).is_some(),
                "{path} missing from openapi.json"
            );
        }
    }
}
