//! EVM accounts: a participant links one to its did on chain (ParticipantRegistry), proven by
//! that account's EIP-712 `Link` signature, which the broker relays.

use alloy::primitives::{Address, Bytes, U256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use contracts::bindings::CreditToken;
use serde::Deserialize;
use serde_json::json;

use super::problem::Problem;
use super::{commit_with_events, require, ApiJson, AppState};
use crate::events::outbox::{Audience, Topic};
use crate::identity::{now, Principal, Role};
use crate::market::records::Pending;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRequest {
    pub account: Address,
    pub deadline: u64,
    /// The account's EIP-712 signature of Link(did, account, role, nonce, deadline).
    pub signature: Bytes,
}

/// The registry's role number for a broker role.
pub fn chain_role(role: Role) -> u8 {
    match role {
        Role::Provider => 1,
        Role::Consumer => 2,
        Role::Auditor => 3,
        Role::Operator => 4,
    }
}

pub async fn link(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<LinkRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    if let Some(existing) = state.store.account_of(&who.did).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{} is linked to {existing} already", who.did),
        ));
    }
    if req.deadline < now() {
        return Err(Problem::bad_request("the deadline has passed; sign again"));
    }
    if req.signature.len() != 65 {
        return Err(Problem::bad_request("signature must be 65 bytes (r, s, v)"));
    }
    let chain = |e: ledger::ClientError| Problem::unavailable("chain unavailable", e.to_string());
    // Linked on chain already (a retry after the broker lost the answer): record it only.
    let (linked_did, _) = state.ledger.linked(req.account).await.map_err(chain)?;
    let tx = if linked_did == who.did {
        alloy::primitives::B256::ZERO
    } else {
        state
        .ledger
        .link(&who.did, req.account, chain_role(who.role), U256::from(req.deadline), req.signature)
        .await
        .map_err(|e| match e {
            ledger::ClientError::Reverted { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "link refused",
                format!("the registry refused the link (wrong signature or nonce, account or did taken): {e}"),
            ),
            other => Problem::unavailable("chain unavailable", other.to_string()),
        })?
    };
    let account = req.account.to_string();
    let mut db = state.store.begin().await?;
    state.store.set_account(&mut db, &who.did, &account).await?;
    let event = Pending {
        topic: Topic::AccountLinked,
        subject: who.did.clone(),
        audience: Audience::parties(&[&who.did]),
        payload: json!({"did": who.did, "account": account, "tx": tx.to_string()}),
    };
    commit_with_events(&state, db, vec![event], now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"did": who.did, "account": account, "txHash": tx.to_string()})),
    ))
}

/// What the chain says of an account: the nonces its next signatures need, its credits and the
/// did it is linked to.
pub async fn show(
    State(state): State<AppState>,
    _who: Principal,
    Path(address): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let account: Address = address
        .parse()
        .map_err(|_| Problem::bad_request("not an EVM address (0x and 40 hex digits)"))?;
    let chain = |e: ledger::ClientError| Problem::unavailable("chain unavailable", e.to_string());
    let (did, role) = state.ledger.linked(account).await.map_err(chain)?;
    Ok(Json(json!({
        "account": account,
        "did": did,
        "role": role,
        "registryNonce": state.ledger.registry_nonce(account).await.map_err(chain)?.to_string(),
        "permitNonce": state.ledger.permit_nonce(account).await.map_err(chain)?.to_string(),
        "credits": state.ledger.credit_balance(account).await.map_err(chain)?.to_string(),
    })))
}

/// Credits minted per faucet call on a development chain (1,000 credits).
pub const FAUCET_CREDITS: u64 = 1_000 * 100_000_000;
/// Native currency sent with them for gas (1 ether on the dev chain).
pub const FAUCET_GAS_WEI: u128 = 1_000_000_000_000_000_000;

/// Development chains only: mints credits to the caller's linked account.
pub async fn faucet(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Consumer, Role::Provider], "the faucet")?;
    let Some(minter) = &state.faucet else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this broker settles on a production chain; it has no faucet",
        ));
    };
    let account: Address = state
        .store
        .account_of(&who.did)
        .await?
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Problem::from(crate::market::MarketError::NotLinked(who.did.clone())))?;
    let call = CreditToken::mintCall {
        to: account,
        amount: U256::from(FAUCET_CREDITS),
    };
    let chain = |e: ledger::ClientError| Problem::unavailable("chain unavailable", e.to_string());
    minter
        .send_call(state.ledger.deployment.contracts.credit_token, &call)
        .await
        .map_err(chain)?;
    // And gas money, for what the account sends itself (a provider's withdrawal).
    minter
        .send(
            alloy::rpc::types::TransactionRequest::default()
                .to(account)
                .value(U256::from(FAUCET_GAS_WEI)),
        )
        .await
        .map_err(chain)?;
    Ok(Json(json!({
        "account": account,
        "minted": FAUCET_CREDITS.to_string(),
        "gasWei": FAUCET_GAS_WEI.to_string(),
    })))
}
