//! Reserve and buy. A reservation holds units of a plan for a while and comes with the contract
//! document and the terms the consumer signs; the purchase brings the signatures and starts the
//! purchase state machine (the chain confirms later).

use catalog::provider_config::ConnectionKind;
use std::time::Duration;

use alloy::primitives::B256;
use api::document::{self, ContractDocument, Parties, Party};
use api::reservations::{PurchaseRequest, PurchaseTerms, ReservationState, ReserveRequest};
use api::{ContentId, Contract, ContractState, Hash32, Nonce, Principal, ReservationId};
use sha2::{Digest, Sha256};

use super::records::{self, ContractRecord, ReservationRecord, StoredAuthorization};
use super::{providers, Market, MarketError};
use crate::store::now;

/// How long after its reservation expires a purchase can still be opened (the provider signs
/// in that time).
const OPEN_WINDOW: Duration = Duration::from_secs(600);

/// Whether a purchase call made the contract or found it made by an earlier call with the same
/// key.
pub enum Purchased {
    Created(Contract),
    Existing(Contract),
}

impl Market {
    /// Holds units of a plan for `who` (a consumer) and offers the contract document and terms.
    pub async fn reserve(
        &self,
        who: &Principal,
        req: &ReserveRequest,
    ) -> Result<ReservationRecord, MarketError> {
        let consumer = self.linked_account(&who.did).await?;
        let offer = self
            .store
            .catalog()
            .get(req.offer_id.as_str())
            .await?
            .filter(|o| o.withdrawn_at.is_none())
            .ok_or_else(|| MarketError::NoOffer(req.offer_id.clone()))?
            .offer;
        let provider_did: api::Did = offer
            .provider
            .parse()
            .map_err(|e| crate::store::Corrupt::new("offers", "provider", &offer.id, e))?;
        let provider = self.linked_account(&provider_did).await?;
        let config = providers::current_config(&self.store, &provider_did).await?;
        // Over WireGuard the consumer peers with a key it made: the document names its public
        // half, and the broker never holds the private one.
        if let (None, Some((_, cid))) = (&req.wireguard_key, &config) {
            if self.config_at(cid).await?.connection.kind == ConnectionKind::Wireguard {
                return Err(MarketError::BadRequest(
                    "this provider connects over WireGuard: give wireguardKey, the public half of a key pair you keep (`mercato buy` makes one)".into(),
                ));
            }
        }
        let now = now();
        let contract_id = api::ContractId(B256::from(rand::random::<[u8; 32]>()));
        let d = &self.ledger.deployment;
        // A plan that prices GPU time adds the region's GPU cost to each record with GPU use.
        let gpu_record_fee = match offer.plan(req.plan_id.as_str()) {
            Some(p)
                if p.pricing
                    .pay_per_use
                    .as_ref()
                    .is_some_and(|u| !u.gpu_hour.is_zero()) =>
            {
                let fee = match self.ledger.region(&offer.location.region).await {
                    Ok(r) => r.gpu_cost,
                    Err(e) if e.is_revert() => {
                        return Err(MarketError::Conflict(format!(
                            "the offer's region {} has no GPU cost on chain; the provider must list it in a known region",
                            offer.location.region
                        )))
                    }
                    Err(e) => return Err(e.into()),
                };
                api::Credits::from_base_units(fee.saturating_to::<u128>())
            }
            _ => api::Credits::ZERO,
        };
        let doc = document::build(
            &offer,
            req,
            Parties {
                contract_id,
                chain_id: d.chain_id,
                marketplace: d.contracts.marketplace,
                consumer: Party {
                    did: who.did.clone(),
                    account: consumer,
                },
                provider: Party {
                    did: provider_did.clone(),
                    account: provider,
                },
                provider_config_cid: config.map(|(_, cid)| cid),
                gpu_record_fee,
                now,
            },
        )?;
        let capacity = offer.plan(req.plan_id.as_str()).map_or(0, |p| p.capacity);
        let bytes = doc.to_bytes();
        let cid = ContentId::from(self.content.put(&bytes).await?);
        let expires_at = now + self.policy.reservation_ttl.as_secs();
        let permit_nonce = self.ledger.permit_nonce(consumer).await?;
        let terms = PurchaseTerms {
            chain_id: d.chain_id,
            marketplace: d.contracts.marketplace,
            token: d.contracts.credit_token,
            contract_id,
            consumer,
            provider,
            terms_hash: Hash32(ContractDocument::terms_hash(&bytes)),
            terms_cid: cid.clone(),
            deposit: doc.deposit,
            period_price: doc.price.period_price,
            period: doc.price.period_seconds,
            prices: doc.usage.map(|u| u.prices).unwrap_or_default(),
            usage_cap: doc.usage.map_or(api::Credits::ZERO, |u| u.cap),
            cap_window: doc.usage.map_or(0, |u| u.window_seconds),
            deadline: expires_at + OPEN_WINDOW.as_secs(),
            permit_nonce: Nonce(permit_nonce),
        };
        let r = ReservationRecord {
            id: contract_id.reservation(),
            consumer: who.did.clone(),
            provider: provider_did,
            offer_id: req.offer_id.clone(),
            plan_id: req.plan_id.clone(),
            quantity: req.quantity,
            status: ReservationState::Held,
            expires_at,
            created_at: now,
            document: String::from_utf8(bytes).expect("documents are JSON"),
            document_cid: cid,
            terms,
        };
        records::reserve(self, &r, capacity, now).await?;
        Ok(r)
    }

    /// A reservation, for its consumer and its provider (and auditors, operators).
    pub async fn reservation(
        &self,
        who: &Principal,
        id: ReservationId,
    ) -> Result<ReservationRecord, MarketError> {
        records::get_reservation(&self.store, id)
            .await?
            .filter(|r| r.may_see(who))
            .ok_or_else(|| MarketError::NotFound(format!("no reservation {id} of yours")))
    }

    /// Buys a held reservation with the consumer's signatures; a retry with the same
    /// idempotency key and request is the same purchase, never a second one.
    pub async fn purchase(
        &self,
        who: &Principal,
        id: ReservationId,
        key: &str,
        req: &PurchaseRequest,
    ) -> Result<Purchased, MarketError> {
        let request_hash = identity::hex_encode(&Sha256::digest(
            format!(
                "{id}\n{}",
                serde_json::to_string(req).expect("requests serialise")
            )
            .as_bytes(),
        ));
        if let Some(done) = self.same_purchase(who, key, &request_hash).await? {
            return Ok(Purchased::Existing(done));
        }
        let r = records::get_reservation(&self.store, id)
            .await?
            .filter(|r| r.consumer == who.did)
            .ok_or(MarketError::ReservationGone(id))?;
        if r.status != ReservationState::Held || r.expires_at < now() {
            return Err(MarketError::ReservationGone(id));
        }
        req.document_signature
            .verify(
                &who.did,
                identity::Domain::ContractDocument,
                r.document.as_bytes(),
            )
            .map_err(|e| MarketError::BadSignature(format!("document signature: {e}")))?;
        r.terms
            .chain()
            .verify(req.open_signature.bytes(), req.permit_signature.bytes())
            .map_err(|e| MarketError::BadSignature(e.to_string()))?;
        let now = now();
        let c = ContractRecord {
            id: r.id.contract(),
            reservation_id: r.id,
            consumer: r.consumer.clone(),
            provider: r.provider.clone(),
            offer_id: r.offer_id.clone(),
            plan_id: r.plan_id.clone(),
            quantity: r.quantity,
            idempotency_key: key.to_string(),
            request_hash: request_hash.clone(),
            state: ContractState::Proposed,
            document_cid: r.document_cid.clone(),
            signatures_cid: None,
            consumer_signature: req.document_signature.clone(),
            provider_signature: None,
            authorization: StoredAuthorization {
                terms: r.terms.clone(),
                open_signature: req.open_signature.clone(),
                permit_signature: req.permit_signature.clone(),
            },
            deadline: r.terms.deadline,
            tx_hash: None,
            refund: None,
            failure: None,
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = records::propose(self, &c, now).await {
            // A concurrent retry with the same key got there first.
            if let Some(done) = self.same_purchase(who, key, &request_hash).await? {
                return Ok(Purchased::Existing(done));
            }
            return Err(e);
        }
        let stored = records::get_contract(&self.store, c.id)
            .await?
            .ok_or(MarketError::NoContract(c.id))?;
        Ok(Purchased::Created(stored.view()))
    }

    /// The purchase made earlier with this key, if its request was the same.
    async fn same_purchase(
        &self,
        who: &Principal,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Contract>, MarketError> {
        match records::find_by_key(&self.store, &who.did, key).await? {
            Some(done) if done.request_hash == request_hash => Ok(Some(done.view())),
            Some(_) => Err(MarketError::IdempotencyConflict),
            None => Ok(None),
        }
    }
}
