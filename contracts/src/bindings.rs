//! Typed bindings, generated at compile time from `contracts/artifacts/*.json`.
//! The artifacts carry the bytecode, so each binding can also deploy its contract.

#![allow(clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    CreditToken,
    "artifacts/CreditToken.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    ParticipantRegistry,
    "artifacts/ParticipantRegistry.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Marketplace,
    "artifacts/Marketplace.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    BillingModels,
    "artifacts/BillingModels.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    UsageSettlement,
    "artifacts/UsageSettlement.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    CredentialRegistry,
    "artifacts/CredentialRegistry.json"
);

/// Role identifiers as the contracts compute them (`keccak256("NAME")`).
pub mod roles {
    use alloy::primitives::{keccak256, B256};

    pub fn role(name: &str) -> B256 {
        keccak256(name.as_bytes())
    }
    pub fn minter() -> B256 {
        role("MINTER_ROLE")
    }
    pub fn registrar() -> B256 {
        role("REGISTRAR_ROLE")
    }
    pub fn broker() -> B256 {
        role("BROKER_ROLE")
    }
    pub fn settler() -> B256 {
        role("SETTLER_ROLE")
    }
    pub fn issuer() -> B256 {
        role("ISSUER_ROLE")
    }
    pub fn pricing() -> B256 {
        role("PRICING_ROLE")
    }
}
