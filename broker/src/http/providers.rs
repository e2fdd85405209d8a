//! Provider configurations: the content goes into the content store, its CID is registered on
//! chain with the provider account's `SetConfig` signature, and the broker records the version.

use alloy::primitives::{Address, Bytes, U256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use content::Cid;
use serde::Deserialize;
use serde_json::json;

use super::problem::Problem;
use super::{commit_with_events, require, ApiJson, AppState};
use crate::events::outbox::{Audience, Topic};
use crate::identity::{now, Principal, Role};
use crate::market::records::Pending;
use crate::market::MarketError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRequest {
    /// The configuration as the provider wrote it (YAML or JSON).
    pub config: String,
    /// The CID the provider computed for it and signed.
    pub cid: String,
    pub deadline: u64,
    /// The provider account's EIP-712 signature of SetConfig(account, cid, nonce, deadline).
    pub signature: Bytes,
}

pub async fn set_config(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<ConfigRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    require(
        &who,
        &[Role::Provider],
        "registering a provider configuration",
    )?;
    let account: Address = state
        .store
        .account_of(&who.did)
        .await?
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Problem::from(MarketError::NotLinked(who.did.clone())))?;
    catalog::provider_config::parse(req.config.as_bytes())
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let claimed = Cid::parse(&req.cid).map_err(|e| Problem::bad_request(format!("cid: {e}")))?;
    let actual = content::unixfs::cid_of(req.config.as_bytes());
    if claimed != actual {
        return Err(Problem::bad_request(format!(
            "the configuration's content has CID {actual}, not {claimed}; it was changed after signing or the CID was computed another way"
        )));
    }
    if req.deadline < now() {
        return Err(Problem::bad_request("the deadline has passed; sign again"));
    }
    let stored = state
        .content
        .put(req.config.as_bytes())
        .await
        .map_err(MarketError::from)?;
    if stored != actual {
        return Err(MarketError::Content(content::ContentError::Mismatch {
            expected: actual,
            got: stored,
        })
        .into());
    }
    let cid = actual.to_string();
    let (tx, version) = state
        .ledger
        .set_config(account, &cid, U256::from(req.deadline), req.signature)
        .await
        .map_err(|e| match e {
            ledger::ClientError::Reverted { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "configuration refused",
                format!("the registry refused it (wrong signature, nonce or account): {e}"),
            ),
            other => Problem::unavailable("chain unavailable", other.to_string()),
        })?;
    let now = now();
    let mut db = state.store.begin().await?;
    sqlx::query(
        "INSERT INTO provider_configs (did, version, cid, tx_hash, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(who.did.clone())
    .bind(version as i64)
    .bind(cid.clone())
    .bind(tx.to_string())
    .bind(now as i64)
    .execute(&mut *db)
    .await?;
    let event = Pending {
        topic: Topic::ProviderConfigChanged,
        subject: who.did.clone(),
        audience: Audience::Everyone,
        payload: json!({"provider": who.did, "version": version, "cid": cid}),
    };
    commit_with_events(&state, db, vec![event], now).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"provider": who.did, "version": version, "cid": cid, "txHash": tx.to_string()}),
        ),
    ))
}

/// A provider's current configuration, read back from the content store (verified by its CID).
pub async fn config(
    State(state): State<AppState>,
    Path(did): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let (version, cid) = state
        .store
        .provider_config(&did)
        .await?
        .ok_or_else(|| Problem::not_found(format!("{did} has registered no configuration")))?;
    let parsed =
        Cid::parse(&cid).map_err(|e| Problem::unavailable("corrupt record", e.to_string()))?;
    let bytes = state
        .content
        .get(&parsed, catalog::provider_config::MAX_CONFIG_BYTES)
        .await
        .map_err(MarketError::from)?;
    Ok(Json(json!({
        "provider": did,
        "version": version,
        "cid": cid,
        "config": String::from_utf8_lossy(&bytes),
    })))
}
