//! Reserve and purchase. A reservation holds units of a plan for a while and comes with the
//! contract document and the terms the consumer signs; the purchase brings the signatures and
//! starts the purchase state machine (answered 202: the chain confirms later).

use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256, U256};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use contracts::purchase::PurchaseTerms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::contracts::{contract_view, ContractView};
use super::problem::Problem;
use super::{require, ApiJson, AppState};
use crate::identity::{now, Principal, Role};
use crate::market::document::{self, Parties, Party, ReservationRequest};
use crate::market::purchase::StoredAuthorization;
use crate::market::records::{self, ContractRecord, Reservation, State as ContractState};
use crate::market::MarketError;

/// How long after its reservation expires a purchase can still be opened (the provider signs
/// in that time).
const OPEN_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub id: String,
    pub status: String,
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    pub expires_at: u64,
    /// The exact bytes to sign (Ed25519, the consumer's did key).
    pub document: String,
    pub document_cid: String,
    /// What the consumer's account signs (EIP-712 OpenContract and permit).
    pub terms: serde_json::Value,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        Self {
            id: r.id,
            status: r.status,
            offer_id: r.offer_id,
            plan_id: r.plan_id,
            quantity: r.quantity,
            expires_at: r.expires_at,
            document: r.document,
            document_cid: r.document_cid,
            terms: r.terms,
        }
    }
}

async fn linked_account(state: &AppState, did: &str) -> Result<Address, Problem> {
    state
        .store
        .account_of(did)
        .await?
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| MarketError::NotLinked(did.to_string()).into())
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<ReservationRequest>,
) -> Result<(StatusCode, Json<ReservationView>), Problem> {
    require(&who, &[Role::Consumer], "reserving")?;
    let consumer = linked_account(&state, &who.did).await?;
    let offer = state
        .catalog
        .get(&req.offer_id)
        .await
        .map_err(|e| Problem::unavailable("database unavailable", e.to_string()))?
        .filter(|o| o.withdrawn_at.is_none())
        .ok_or_else(|| Problem::from(MarketError::NoOffer(req.offer_id.clone())))?
        .offer;
    let provider = linked_account(&state, &offer.provider).await?;
    let config = state.store.provider_config(&offer.provider).await?;
    let now = now();
    let contract_id = B256::from(rand::random::<[u8; 32]>());
    let d = state.ledger.deployment.clone();
    let doc = document::build(
        &offer,
        &req,
        Parties {
            contract_id,
            chain_id: d.chain_id,
            marketplace: &d.contracts.marketplace.to_string(),
            consumer: Party {
                did: who.did.clone(),
                account: consumer.to_string(),
            },
            provider: Party {
                did: offer.provider.clone(),
                account: provider.to_string(),
            },
            provider_config_cid: config.map(|(_, cid)| cid),
            now,
        },
    )
    .map_err(MarketError::from)?;
    let capacity = offer.plan(&req.plan_id).map_or(0, |p| p.capacity);
    let bytes = doc.to_bytes();
    let cid = state.content.put(&bytes).await.map_err(MarketError::from)?;
    let expires_at = now + state.reservation_ttl.as_secs();
    let permit_nonce = state
        .ledger
        .permit_nonce(consumer)
        .await
        .map_err(MarketError::from)?;
    let terms = PurchaseTerms {
        chain_id: d.chain_id,
        marketplace: d.contracts.marketplace,
        token: d.contracts.credit_token,
        contract_id,
        consumer,
        provider,
        terms_hash: document::terms_hash(&bytes),
        terms_cid: cid.to_string(),
        deposit: U256::from(doc.deposit),
        period_price: U256::from(doc.price.period_price),
        period: doc.price.period_seconds,
        deadline: U256::from(expires_at + OPEN_WINDOW.as_secs()),
        permit_nonce,
    };
    let r = Reservation {
        id: contract_id.to_string(),
        consumer: who.did.clone(),
        provider: offer.provider.clone(),
        offer_id: offer.id.clone(),
        plan_id: req.plan_id.clone(),
        quantity: req.quantity,
        status: "held".into(),
        expires_at,
        created_at: now,
        document: String::from_utf8_lossy(&bytes).into_owned(),
        document_cid: cid.to_string(),
        terms: serde_json::to_value(&terms).unwrap_or_default(),
    };
    let outcome = records::reserve(&state.store, &r, capacity, now).await;
    state.relay.notify_one();
    outcome?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// The reservation, for its consumer and its provider (and auditors, operators).
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, Problem> {
    let r = records::get_reservation(&state.store, &id)
        .await?
        .filter(|r| may_see(&who, &r.consumer, &r.provider))
        .ok_or_else(|| Problem::not_found(format!("no reservation {id} of yours")))?;
    Ok(Json(r.into()))
}

pub fn may_see(who: &Principal, consumer: &str, provider: &str) -> bool {
    matches!(who.role, Role::Auditor | Role::Operator) || who.did == consumer || who.did == provider
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    /// Ed25519 signature (hex) of the document's bytes by the consumer's did key.
    pub document_signature: String,
    /// The consumer account's EIP-712 OpenContract signature of the reservation's terms.
    pub open_signature: Bytes,
    /// The consumer account's EIP-2612 permit signature for the deposit.
    pub permit_signature: Bytes,
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| Problem::bad_request("send an Idempotency-Key header (a fresh random value per purchase) so a retry cannot buy twice"))?
        .to_str()
        .map_err(|_| Problem::bad_request("Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() || key.len() > 128 {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1-128 characters",
        ));
    }
    Ok(key.to_string())
}

pub async fn purchase(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PurchaseRequest>,
) -> Result<(StatusCode, Json<ContractView>), Problem> {
    require(&who, &[Role::Consumer], "purchasing")?;
    let key = idempotency_key(&headers)?;
    let request_hash = catalog::identity::hex_encode(&Sha256::digest(
        format!("{id}\n{}", serde_json::to_string(&req).unwrap_or_default()).as_bytes(),
    ));
    if let Some(done) = records::find_by_key(&state.store, &who.did, &key).await? {
        if done.request_hash != request_hash {
            return Err(MarketError::IdempotencyConflict.into());
        }
        return Ok((
            StatusCode::OK,
            Json(contract_view(&state, done, false).await?),
        ));
    }
    let r = records::get_reservation(&state.store, &id)
        .await?
        .filter(|r| r.consumer == who.did)
        .ok_or_else(|| Problem::from(MarketError::ReservationGone(id.clone())))?;
    if r.status != "held" || r.expires_at < now() {
        return Err(MarketError::ReservationGone(id).into());
    }
    catalog::identity::verify_hex(&who.did, r.document.as_bytes(), &req.document_signature)
        .map_err(|e| MarketError::BadSignature(format!("document signature: {e}")))?;
    let terms: PurchaseTerms = serde_json::from_value(r.terms.clone())
        .map_err(|e| Problem::unavailable("corrupt reservation", e.to_string()))?;
    terms
        .verify(&req.open_signature, &req.permit_signature)
        .map_err(|e| MarketError::BadSignature(e.to_string()))?;
    let auth = StoredAuthorization {
        terms: terms.clone(),
        open_signature: req.open_signature.clone(),
        permit_signature: req.permit_signature.clone(),
    };
    let c = ContractRecord {
        id: r.id.clone(),
        reservation_id: r.id.clone(),
        consumer: r.consumer.clone(),
        provider: r.provider.clone(),
        offer_id: r.offer_id.clone(),
        plan_id: r.plan_id.clone(),
        quantity: r.quantity,
        idempotency_key: key.clone(),
        request_hash,
        state: ContractState::Proposed,
        document_cid: r.document_cid.clone(),
        signatures_cid: None,
        consumer_signature: req.document_signature.clone(),
        provider_signature: None,
        authorization: serde_json::to_string(&auth).unwrap_or_default(),
        deadline: terms.deadline.saturating_to::<u64>(),
        tx_hash: None,
        refund: None,
        failure: None,
        created_at: now(),
        updated_at: now(),
    };
    match records::propose(&state.store, &c, now()).await {
        Ok(()) => {}
        // A concurrent retry with the same key got there first.
        Err(e) => {
            if let Some(done) = records::find_by_key(&state.store, &who.did, &key).await? {
                if done.request_hash == c.request_hash {
                    return Ok((
                        StatusCode::OK,
                        Json(contract_view(&state, done, false).await?),
                    ));
                }
            }
            return Err(e.into());
        }
    }
    state.relay.notify_one();
    state.driver.notify_one();
    let stored = records::get_contract(&state.store, &c.id)
        .await?
        .ok_or_else(|| Problem::from(MarketError::NoContract(c.id.clone())))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(contract_view(&state, stored, false).await?),
    ))
}
