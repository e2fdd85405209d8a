//! Contracts: list, show (with the document, its signatures and the on-chain state), accept (the
//! provider signs the document) and close (either party; the unused escrow is refunded).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::reservations::may_see;
use super::{require, ApiJson, AppState};
use crate::events::Topic;
use crate::identity::{now, Principal, Role};
use crate::ledger_link::ChainAgreement;
use crate::market::escrow;
use crate::market::records::{self, Change, ContractRecord, State as ContractState};
use crate::market::MarketError;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractView {
    #[serde(flatten)]
    pub record: ContractRecord,
    /// The signed document's bytes (as both parties signed them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// The contract as the chain has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainAgreement>,
}

pub async fn contract_view(
    state: &AppState,
    record: ContractRecord,
    full: bool,
) -> Result<ContractView, Problem> {
    let (document, chain) = if full {
        let document = records::get_reservation(&state.store, &record.reservation_id)
            .await?
            .map(|r| r.document);
        let chain = match record.id.parse() {
            Ok(id)
                if !matches!(
                    record.state,
                    ContractState::Proposed | ContractState::Accepted
                ) =>
            {
                Some(
                    state
                        .ledger
                        .agreement(id)
                        .await
                        .map_err(MarketError::from)?,
                )
            }
            _ => None,
        };
        (document, chain)
    } else {
        (None, None)
    };
    Ok(ContractView {
        record,
        document,
        chain,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The caller's contracts (all of them for auditors and operators), newest first.
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ContractView>>, Problem> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let party = match who.role {
        Role::Auditor | Role::Operator => None,
        _ => Some(who.did.as_str()),
    };
    let list = records::list_contracts(&state.store, party, limit).await?;
    Ok(Json(
        list.into_iter()
            .map(|record| ContractView {
                record,
                document: None,
                chain: None,
            })
            .collect(),
    ))
}

async fn visible(state: &AppState, who: &Principal, id: &str) -> Result<ContractRecord, Problem> {
    records::get_contract(&state.store, id)
        .await?
        .filter(|c| may_see(who, &c.consumer, &c.provider))
        .ok_or_else(|| Problem::not_found(format!("no contract {id} of yours")))
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<ContractView>, Problem> {
    let c = visible(&state, &who, &id).await?;
    Ok(Json(contract_view(&state, c, true).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptRequest {
    /// Ed25519 signature (hex) of the document's bytes by the provider's did key.
    pub signature: String,
}

/// The provider signs the document; the broker then opens the contract on chain.
pub async fn accept(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> Result<(StatusCode, Json<ContractView>), Problem> {
    require(&who, &[Role::Provider], "accepting contracts")?;
    let c = visible(&state, &who, &id).await?;
    if c.provider != who.did {
        return Err(Problem::not_found(format!("no contract {id} of yours")));
    }
    if c.state != ContractState::Proposed {
        return Err(MarketError::WrongState {
            state: c.state.as_str().into(),
            needed: "proposed",
        }
        .into());
    }
    let document = records::get_reservation(&state.store, &c.reservation_id)
        .await?
        .ok_or_else(|| Problem::from(MarketError::NoContract(id.clone())))?
        .document;
    catalog::identity::verify_hex(&who.did, document.as_bytes(), &req.signature)
        .map_err(|e| MarketError::BadSignature(format!("document signature: {e}")))?;
    let moved = records::transition(
        &state.store,
        &id,
        ContractState::Proposed,
        ContractState::Accepted,
        Change {
            provider_signature: Some(&req.signature),
            ..Change::default()
        },
        Some(Topic::ContractAccepted),
        now(),
    )
    .await?;
    if !moved {
        return Err(MarketError::WrongState {
            state: "no longer proposed".into(),
            needed: "proposed",
        }
        .into());
    }
    state.relay.notify_one();
    state.driver.notify_one();
    let c = visible(&state, &who, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(contract_view(&state, c, false).await?),
    ))
}

/// Either party closes an active contract; the broker closes it on chain and the unused escrow
/// goes back to the consumer.
pub async fn close(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ContractView>), Problem> {
    require(&who, &[Role::Consumer, Role::Provider], "closing contracts")?;
    let c = visible(&state, &who, &id).await?;
    if c.consumer != who.did && c.provider != who.did {
        return Err(Problem::not_found(format!("no contract {id} of yours")));
    }
    let moved = records::transition(
        &state.store,
        &id,
        ContractState::Active,
        ContractState::Closing,
        Change::default(),
        None,
        now(),
    )
    .await?;
    if !moved {
        return Err(MarketError::WrongState {
            state: c.state.as_str().into(),
            needed: "active",
        }
        .into());
    }
    state.driver.notify_one();
    let c = visible(&state, &who, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(contract_view(&state, c, false).await?),
    ))
}

/// How long the contract's escrow lasts, with what a top-up must sign (the consumer's nonces).
pub async fn escrow(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let c = visible(&state, &who, &id).await?;
    let (runway, a) = escrow::runway(&state.store, &state.ledger, &c, state.escrow, now()).await?;
    let consumer = a.consumer;
    let chain = |e: ledger::ClientError| Problem::from(MarketError::Chain(e));
    Ok(Json(serde_json::json!({
        "contract": c.id,
        "runway": runway,
        "topUpNonce": state.ledger.topup_nonce(consumer).await.map_err(chain)?.to_string(),
        "permitNonce": state.ledger.permit_nonce(consumer).await.map_err(chain)?.to_string(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopUpRequest {
    /// Credit base units to add.
    pub amount: u64,
    pub deadline: u64,
    /// The consumer account's EIP-712 TopUp(contractId, amount, nonce, deadline) signature.
    pub top_up_signature: alloy::primitives::Bytes,
    /// The consumer account's EIP-2612 permit for `amount` to the marketplace.
    pub permit_signature: alloy::primitives::Bytes,
}

/// The consumer adds to the escrow (relayed: it needs no gas); a contract suspended for its
/// escrow resumes when it can pay again.
pub async fn top_up(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TopUpRequest>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Consumer], "topping up")?;
    let c = visible(&state, &who, &id).await?;
    if c.consumer != who.did {
        return Err(Problem::not_found(format!("no contract {id} of yours")));
    }
    if c.state != ContractState::Active {
        return Err(MarketError::WrongState {
            state: c.state.as_str().into(),
            needed: "active",
        }
        .into());
    }
    if req.amount == 0 || req.deadline < now() {
        return Err(Problem::bad_request(
            "amount must be positive and the deadline in the future",
        ));
    }
    let permit = alloy::primitives::Signature::try_from(req.permit_signature.as_ref())
        .map_err(|_| Problem::bad_request("permitSignature is not a 65-byte signature"))?;
    let contract_id: alloy::primitives::B256 =
        c.id.parse()
            .map_err(|_| Problem::not_found(format!("no contract {id}")))?;
    let consumer = state
        .ledger
        .agreement(contract_id)
        .await
        .map_err(MarketError::from)?
        .consumer;
    let tx = state
        .ledger
        .top_up(
            contract_id,
            consumer,
            alloy::primitives::U256::from(req.amount),
            alloy::primitives::U256::from(req.deadline),
            permit,
            req.top_up_signature,
        )
        .await
        .map_err(|e| match e {
            ledger::ClientError::Reverted { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "top-up refused",
                format!("the chain refused the top-up (signature, nonce, deadline or funds): {e}"),
            ),
            other => MarketError::Chain(other).into(),
        })?;
    let resumed =
        escrow::resume_if_paid(&state.store, &state.ledger, &c, state.escrow, now()).await?;
    if resumed {
        state.issuer.ensure_credential(&c.id).await?;
    }
    state.relay.notify_one();
    Ok(Json(
        serde_json::json!({"contract": c.id, "txHash": tx, "resumed": resumed}),
    ))
}
