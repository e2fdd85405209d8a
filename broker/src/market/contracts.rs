//! Contracts: list and show (with the document both parties signed and the chain's state), accept
//! (the provider signs the document), close (either party; the unused escrow is refunded), the
//! escrow's runway and top-ups.

use api::contracts::{AcceptRequest, EscrowView, TopUpRequest, ToppedUp};
use api::{Contract, ContractState, Nonce, Principal, TxHash};

use super::records::{self, Change, ContractRecord};
use super::{escrow, Market, MarketError};
use crate::store::now;

/// Most contracts in one listing, and how many when the caller does not say.
pub const MAX_LIST: u32 = 1000;
pub const DEFAULT_LIST: u32 = 100;

impl Market {
    /// The caller's contracts (all of them for auditors and operators), newest first.
    pub async fn contracts(
        &self,
        who: &Principal,
        limit: u32,
    ) -> Result<Vec<Contract>, MarketError> {
        let party = (!who.role.oversees()).then_some(&who.did);
        let list = records::list_contracts(&self.store, party, limit).await?;
        Ok(list.iter().map(ContractRecord::view).collect())
    }

    /// One contract with its signed document and, once opened, the chain's view of it.
    pub async fn contract_view(&self, c: &ContractRecord) -> Result<Contract, MarketError> {
        let document = records::get_reservation(&self.store, c.reservation_id)
            .await?
            .map(|r| r.document);
        let chain = if matches!(c.state, ContractState::Proposed | ContractState::Accepted) {
            None
        } else {
            Some(self.ledger.agreement(c.id).await?)
        };
        Ok(Contract {
            document,
            chain,
            ..c.view()
        })
    }

    /// The provider signs the proposed contract's document; the driver then opens it on chain.
    pub async fn accept(
        &self,
        c: &ContractRecord,
        req: &AcceptRequest,
    ) -> Result<Contract, MarketError> {
        if c.state != ContractState::Proposed {
            return Err(MarketError::WrongState {
                state: c.state.to_string(),
                needed: "proposed",
            });
        }
        let document = records::get_reservation(&self.store, c.reservation_id)
            .await?
            .ok_or(MarketError::NoContract(c.id))?
            .document;
        req.signature
            .verify(
                &c.provider,
                identity::Domain::ContractDocument,
                document.as_bytes(),
            )
            .map_err(|e| MarketError::BadSignature(format!("document signature: {e}")))?;
        let moved = records::transition(
            self,
            c.id,
            ContractState::Proposed,
            ContractState::Accepted,
            Change {
                provider_signature: Some(&req.signature),
                ..Change::default()
            },
            now(),
        )
        .await?;
        if !moved {
            return Err(MarketError::WrongState {
                state: "no longer proposed".into(),
                needed: "proposed",
            });
        }
        self.signals.driver.notify_one();
        self.reload(c).await
    }

    /// Either party closes an active contract; the driver closes it on chain and the unused
    /// escrow goes back to the consumer.
    pub async fn close(&self, c: &ContractRecord) -> Result<Contract, MarketError> {
        let moved = records::transition(
            self,
            c.id,
            ContractState::Active,
            ContractState::Closing,
            Change::default(),
            now(),
        )
        .await?;
        if !moved {
            return Err(MarketError::WrongState {
                state: c.state.to_string(),
                needed: "active",
            });
        }
        self.signals.driver.notify_one();
        self.reload(c).await
    }

    async fn reload(&self, c: &ContractRecord) -> Result<Contract, MarketError> {
        Ok(records::get_contract(&self.store, c.id)
            .await?
            .ok_or(MarketError::NoContract(c.id))?
            .view())
    }

    /// How long the contract's escrow lasts, with the nonces a top-up signs.
    pub async fn escrow(&self, c: &ContractRecord) -> Result<EscrowView, MarketError> {
        let (runway, a) = escrow::runway(self, c, now()).await?;
        Ok(EscrowView {
            contract: c.id,
            runway,
            top_up_nonce: Nonce(self.ledger.topup_nonce(a.consumer).await?),
            permit_nonce: Nonce(self.ledger.permit_nonce(a.consumer).await?),
        })
    }

    /// The consumer adds to the escrow (relayed: it needs no gas); a contract suspended for its
    /// escrow resumes when it can pay again.
    pub async fn top_up(
        &self,
        c: &ContractRecord,
        req: &TopUpRequest,
    ) -> Result<ToppedUp, MarketError> {
        if c.state != ContractState::Active {
            return Err(MarketError::WrongState {
                state: c.state.to_string(),
                needed: "active",
            });
        }
        if req.amount.is_zero() || req.deadline < now() {
            return Err(MarketError::BadRequest(
                "amount must be more than zero and the deadline in the future".into(),
            ));
        }
        let consumer = self.ledger.agreement(c.id).await?.consumer;
        let tx = self
            .ledger
            .top_up(
                c.id,
                consumer,
                req.amount,
                req.deadline,
                req.permit_signature.signature(),
                req.top_up_signature.bytes().clone(),
            )
            .await
            .map_err(|e| {
                if e.is_revert() {
                    MarketError::Refused {
                        title: "top-up refused",
                        detail: format!(
                            "the chain refused the top-up: {}; nothing moved; sign again",
                            e.refusal()
                        ),
                    }
                } else {
                    e.into()
                }
            })?;
        let resumed = escrow::resume_if_paid(self, c, now()).await?;
        if resumed {
            self.ensure_credential(c.id).await?;
        }
        Ok(ToppedUp {
            contract: c.id,
            tx_hash: TxHash(tx),
            resumed,
        })
    }
}
