//! Reservations and purchases: what a consumer asks to hold, what it is offered to sign, and the
//! signatures that buy it.

use alloy::primitives::{Address, U256};
use catalog::Credits;
use serde::{Deserialize, Serialize};

use crate::document::UsagePrices;
use crate::ids::{
    ContentId, ContractId, Ed25519Signature, EvmSignature, Hash32, Nonce, OfferId, PlanId,
    ReservationId,
};

/// Most periods a reserved plan can be bought for at once.
pub const MAX_PERIODS: u32 = 1000;

/// `POST /v1/reservations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    #[schema(minimum = 1)]
    pub quantity: u32,
    /// Reserved plans: periods to escrow for (default 1, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub periods: Option<u32>,
    /// Pay-per-use plans: the escrow deposit (required); reserved plans: optional, at least the
    /// price of the periods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit: Option<Credits>,
    /// Plans with pay-per-use prices: the most usage that may be charged per charging window
    /// (default: the deposit), enforced on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_cap: Option<Credits>,
    /// Seconds of a charging window (default 3600, 60 to 2592000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 2592000)]
    pub cap_window: Option<u64>,
    /// The consumer's own WireGuard public key (required when the provider connects over
    /// WireGuard): the consumer keeps the private key; the contract document names this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_key: Option<crate::WireguardKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationState {
    /// Holding its units until it expires.
    Held,
    /// Signed by the consumer: a contract is being made of it.
    Purchasing,
    /// The contract is active.
    Purchased,
    /// Not bought in time: its units were released.
    Expired,
    /// The purchase failed: its units were released.
    Released,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Purchasing => "purchasing",
            Self::Purchased => "purchased",
            Self::Expired => "expired",
            Self::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Held,
            Self::Purchasing,
            Self::Purchased,
            Self::Expired,
            Self::Released,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The terms the consumer's account signs to open the contract: an EIP-712 `OpenContract` and
/// an EIP-2612 permit for the deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseTerms {
    pub chain_id: u64,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub marketplace: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    pub contract_id: ContractId,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub consumer: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub provider: Address,
    /// keccak-256 of the contract document's bytes.
    pub terms_hash: Hash32,
    pub terms_cid: ContentId,
    pub deposit: Credits,
    pub period_price: Credits,
    pub period: u64,
    /// The pay-per-use unit prices (all zero when usage is not charged).
    pub prices: UsagePrices,
    /// At most this much usage is charged per `cap_window` seconds (zero and zero: none).
    pub usage_cap: Credits,
    pub cap_window: u64,
    /// Unix seconds after which neither authorisation can be used.
    pub deadline: u64,
    /// The nonce the consumer's permit carries.
    pub permit_nonce: Nonce,
}

impl PurchaseTerms {
    /// The terms as the contracts take them (EIP-712 messages, digests, signature checks).
    pub fn chain(&self) -> contracts::purchase::PurchaseTerms {
        contracts::purchase::PurchaseTerms {
            chain_id: self.chain_id,
            marketplace: self.marketplace,
            token: self.token,
            contract_id: self.contract_id.0,
            consumer: self.consumer,
            provider: self.provider,
            terms_hash: self.terms_hash.0,
            terms_cid: self.terms_cid.to_string(),
            deposit: U256::from(self.deposit.base_units()),
            period_price: U256::from(self.period_price.base_units()),
            period: self.period,
            prices: self.prices.chain(),
            usage_cap: U256::from(self.usage_cap.base_units()),
            cap_window: self.cap_window,
            deadline: U256::from(self.deadline),
            permit_nonce: self.permit_nonce.0,
        }
    }
}

/// A reservation with the contract document and terms offered for signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: ReservationId,
    pub status: ReservationState,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub expires_at: u64,
    /// The exact bytes to sign (Ed25519, the consumer's did key): a `ContractDocument`.
    pub document: String,
    pub document_cid: ContentId,
    pub terms: PurchaseTerms,
}

impl Reservation {
    pub fn contract_id(&self) -> ContractId {
        self.id.contract()
    }
}

/// `POST /v1/reservations/{id}/purchase` (with an `Idempotency-Key` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    /// The consumer's did signature of the document's bytes.
    pub document_signature: Ed25519Signature,
    /// The consumer account's EIP-712 OpenContract signature of the reservation's terms.
    pub open_signature: EvmSignature,
    /// The consumer account's EIP-2612 permit signature for the deposit.
    pub permit_signature: EvmSignature,
}
