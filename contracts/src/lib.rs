//! Mercato's contracts on the Rust side: typed alloy bindings generated from the committed
//! artifacts (ABI + bytecode), the EIP-712 messages the contracts verify, and pure Rust twins of
//! the on-chain logic that the broker needs without a transaction (billing, Merkle batches).

pub mod billing;
pub mod bindings;
pub mod eip712;
pub mod events;
pub mod merkle;
pub mod purchase;
pub mod usage;

pub use bindings::{
    BillingModels, CredentialRegistry, CreditToken, Marketplace, ParticipantRegistry,
    UsageSettlement,
};

/// One credit in base units: the token has 8 decimals, the NEMO MOCA fixed-point scale.
pub const CREDIT: u64 = 100_000_000;
