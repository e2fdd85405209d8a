//! Contracts: the purchase state machine's states and allowed moves, the contract as the broker
//! and the chain have it, acceptance, escrow and top-ups.

use std::fmt;

use alloy::primitives::Address;
use catalog::Credits;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{
    ContentId, ContractId, Ed25519Signature, EvmSignature, Hash32, Nonce, OfferId, PlanId,
    ReservationId, TxHash,
};

/// The purchase state machine's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContractState {
    /// Signed by the consumer; waiting for the provider's signature.
    Proposed,
    /// Signed by both; to be opened on chain.
    Accepted,
    /// The open transaction may have been sent; the chain decides.
    Opening,
    Active,
    /// Being closed on chain.
    Closing,
    Closed,
    /// Never opened: the reservation's units are released, no funds moved.
    Failed,
}

/// Every move the state machine allows; anything else is refused.
pub const TRANSITIONS: [(ContractState, ContractState); 8] = {
    use ContractState::*;
    [
        (Proposed, Accepted),
        (Proposed, Failed),
        (Accepted, Opening),
        (Opening, Active),
        (Opening, Failed),
        (Active, Closing),
        (Closing, Closed),
        // Only at start, when the chain lost the contract for good (market::reconcile).
        (Active, Failed),
    ]
};

impl ContractState {
    pub const ALL: [ContractState; 7] = [
        Self::Proposed,
        Self::Accepted,
        Self::Opening,
        Self::Active,
        Self::Closing,
        Self::Closed,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Accepted => "accepted",
            Self::Opening => "opening",
            Self::Active => "active",
            Self::Closing => "closing",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// No move leads out of it.
    pub fn is_final(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _)| *from == self)
    }

    /// The purchase is settled one way or the other: active, or never to be.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Active | Self::Closed | Self::Failed)
    }

    pub fn can_move_to(self, to: ContractState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// The chain holds (or held) the contract's escrow in this state.
    pub fn opened(self) -> bool {
        matches!(self, Self::Active | Self::Closing | Self::Closed)
    }
}

impl fmt::Display for ContractState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The on-chain state of a contract (`Marketplace.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    None,
    Active,
    Suspended,
    Closing,
    Closed,
}

impl ChainStatus {
    /// The contract's number for the status; `None` for a number it does not have.
    pub fn from_number(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::None,
            1 => Self::Active,
            2 => Self::Suspended,
            3 => Self::Closing,
            4 => Self::Closed,
            _ => return None,
        })
    }
}

/// A contract as the chain has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainAgreement {
    pub status: ChainStatus,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub consumer: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub provider: Address,
    pub escrow: Credits,
    pub charged: Credits,
    pub terms_hash: Hash32,
    pub terms_cid: String,
    pub period: u64,
    pub period_price: Credits,
    pub next_charge_at: u64,
    /// The broker's fee on this contract's charges, fixed when it opened.
    pub fee_bps: u16,
    /// The running reserved period's payment, earned by the provider when the period ends.
    pub held: Credits,
    /// The consumer's signed bound: at most `usage_cap` of usage per `cap_window` seconds.
    pub usage_cap: Credits,
    pub cap_window: u64,
    /// The running charging window's start and what it charged so far.
    pub window_start: u64,
    pub window_charged: Credits,
    /// Seconds a usage charge can be challenged before the provider earns it.
    pub challenge_window: u64,
}

impl ChainAgreement {
    /// The most usage the chain would charge at `chain_time`: the escrow, and what the signed
    /// cap leaves in the running window.
    pub fn chargeable(&self, chain_time: u64) -> Credits {
        if self.cap_window == 0 {
            return Credits::ZERO;
        }
        let left = if chain_time >= self.window_start.saturating_add(self.cap_window) {
            self.usage_cap
        } else {
            Credits::from_base_units(
                self.usage_cap
                    .base_units()
                    .saturating_sub(self.window_charged.base_units()),
            )
        };
        left.min(self.escrow)
    }
}

/// A contract as the broker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub id: ContractId,
    pub reservation_id: ReservationId,
    pub consumer: Did,
    pub provider: Did,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub state: ContractState,
    pub document_cid: ContentId,
    /// Both signatures, stored next to the document once the provider signed.
    pub signatures_cid: Option<ContentId>,
    pub consumer_signature: Ed25519Signature,
    pub provider_signature: Option<Ed25519Signature>,
    /// Unix seconds after which the purchase can no longer be opened.
    pub deadline: u64,
    /// The last transaction that moved it (open or close).
    pub tx_hash: Option<TxHash>,
    /// The escrow returned at close.
    pub refund: Option<Credits>,
    /// Why the purchase failed.
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The signed document's bytes (one contract's view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// The contract as the chain has it (one contract's view of an opened contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainAgreement>,
}

/// `GET /v1/contracts` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContractListQuery {
    /// Most contracts to list, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `POST /v1/contracts/{id}/accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptRequest {
    /// The provider's did signature of the document's bytes.
    pub signature: Ed25519Signature,
}

/// How long a contract's escrow lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Runway {
    pub escrow: Credits,
    /// Usage accepted but not settled yet.
    pub pending: Credits,
    pub available: Credits,
    /// What the contract has been using per hour (pay-per-use).
    pub rate_per_hour: Credits,
    /// Seconds until the escrow cannot pay; none when nothing is using it.
    pub seconds_left: Option<u64>,
    pub warning: bool,
    pub suspended: bool,
}

/// `GET /v1/contracts/{id}/escrow`: the runway and what a top-up must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscrowView {
    pub contract: ContractId,
    pub runway: Runway,
    /// The nonce the consumer's next TopUp signature carries.
    pub top_up_nonce: Nonce,
    /// The nonce the consumer's next permit carries.
    pub permit_nonce: Nonce,
}

/// `POST /v1/contracts/{id}/topup`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopUpRequest {
    /// Added to the escrow (more than zero).
    pub amount: Credits,
    /// Unix seconds after which the signatures are void (in the future).
    pub deadline: u64,
    /// The consumer account's EIP-712 TopUp(contractId, amount, nonce, deadline) signature.
    pub top_up_signature: EvmSignature,
    /// The consumer account's EIP-2612 permit for `amount` to the marketplace.
    pub permit_signature: EvmSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToppedUp {
    pub contract: ContractId,
    pub tx_hash: TxHash,
    /// The contract was suspended for its escrow and runs again.
    pub resumed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine_moves_only_along_its_table() {
        use ContractState::*;
        assert!(Proposed.can_move_to(Accepted) && Opening.can_move_to(Failed));
        assert!(!Proposed.can_move_to(Active) && !Closed.can_move_to(Active));
        // An opened contract fails only when the chain lost it for good (the broker's
        // reconciliation at start); otherwise it is closed.
        let out_of_active: Vec<_> = TRANSITIONS.iter().filter(|(f, _)| *f == Active).collect();
        assert_eq!(out_of_active, vec![&(Active, Closing), &(Active, Failed)]);
        let finals: Vec<_> = ContractState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, vec![Closed, Failed]);
        assert!(!Active.is_final() && Active.is_settled());
        for s in ContractState::ALL {
            assert_eq!(ContractState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ContractState::parse("paused"), None);
    }
}
