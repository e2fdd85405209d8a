//! Peering credentials over HTTP: the contract's consumer reads its sealed credentials and renews
//! them; an operator revokes them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::problem::Problem;
use super::{require, AppState};
use crate::identity::{now, Principal, Role};
use crate::market::credentials::{self, CredentialRecord};
use crate::market::records::{self, ContractRecord, State as ContractState};
use crate::market::MarketError;

async fn consumers_contract(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<ContractRecord, Problem> {
    records::get_contract(&state.store, id)
        .await?
        .filter(|c| c.consumer == who.did)
        .ok_or_else(|| Problem::not_found(format!("no contract {id} of yours")))
}

/// The contract's working credentials, sealed to its consumer (the only caller allowed).
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<CredentialRecord>>, Problem> {
    require(&who, &[Role::Consumer], "reading peering credentials")?;
    let c = consumers_contract(&state, &who, &id).await?;
    if c.state == ContractState::Active {
        // Issued at activation; this covers a broker that stopped in between.
        state.issuer.ensure_credential(&c.id).await?;
    }
    Ok(Json(credentials::live(&state.store, &id, now()).await?))
}

/// A new credential; the older ones keep working for the grace period.
pub async fn renew(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CredentialRecord>), Problem> {
    require(&who, &[Role::Consumer], "renewing peering credentials")?;
    let c = consumers_contract(&state, &who, &id).await?;
    if c.state != ContractState::Active {
        return Err(MarketError::WrongState {
            state: c.state.as_str().into(),
            needed: "active",
        }
        .into());
    }
    let config = state.issuer.provider_config_of(&c.provider).await;
    let now = now();
    let fresh = credentials::issue(
        &state.store,
        &c,
        config.as_ref(),
        state.issuer.credentials,
        now,
    )
    .await?;
    credentials::retire_older(
        &state.store,
        &c,
        &fresh.hash,
        state.issuer.credentials.grace_secs,
        now,
    )
    .await?;
    state.relay.notify_one();
    Ok((StatusCode::CREATED, Json(fresh)))
}

/// Operators revoke a contract's credentials (the agent refuses them within seconds).
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Operator], "revoking peering credentials")?;
    let c = records::get_contract(&state.store, &id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no contract {id}")))?;
    let n = credentials::revoke(&state.store, &c, "revoked by an operator", now()).await?;
    state.relay.notify_one();
    Ok(Json(serde_json::json!({"contract": id, "revoked": n})))
}
