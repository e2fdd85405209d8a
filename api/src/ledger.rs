//! The ledger the broker settles on, and participants' EVM accounts.

use alloy::primitives::{Address, Bytes};
use catalog::Credits;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::ids::{EvmSignature, Nonce, TxHash};

/// The six contracts of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractAddresses {
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub credit_token: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub participant_registry: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub marketplace: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub billing_models: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub usage_settlement: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub credential_registry: Address,
}

/// `GET /v1/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    pub chain_id: u64,
    pub rpc_url: String,
    pub block_number: u64,
    pub deployment_block: u64,
    /// The account that relays participants' signed authorisations.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub broker_account: Address,
    pub contracts: ContractAddresses,
    /// The broker's own did:key: it signs the credential envelopes it issues, and logins and
    /// registrations name it (clients pin it on first use).
    pub broker_did: Did,
}

impl LedgerStatus {
    /// Names this deployment in signed login and registration messages.
    pub fn audience(&self) -> String {
        identity::audience(self.chain_id, &self.contracts.marketplace.to_string())
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
}

/// `GET /v1/accounts/{address}`: what the chain says of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub account: Address,
    /// The did linked to the account on chain, if any.
    pub did: Option<Did>,
    pub role: Option<Role>,
    /// The nonce the account's next `Link` or `SetConfig` signature carries.
    pub registry_nonce: Nonce,
    /// The nonce the account's next permit carries.
    pub permit_nonce: Nonce,
    pub credits: Credits,
    /// What the marketplace owes the account (a provider's released earnings): withdrawable.
    pub earnings: Credits,
}

/// `POST /v1/participants/me/account`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRequest {
    #[schema(value_type = String, pattern = "^(0x)?[0-9a-fA-F]{40}$")]
    pub account: Address,
    /// Unix seconds after which the signature is void.
    pub deadline: u64,
    /// The account's EIP-712 signature of Link(did, account, role, nonce, deadline).
    pub signature: EvmSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Linked {
    pub did: Did,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub account: Address,
    /// The registry transaction; none when the chain had the link already (a retry).
    pub tx_hash: Option<TxHash>,
}

/// `POST /v1/faucet` (development chains only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaucetGrant {
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub account: Address,
    pub minted: Credits,
    /// Native currency sent for gas, in wei (decimal).
    #[schema(pattern = "^[0-9]+$")]
    pub gas_wei: String,
}

/// Largest signed transaction the broker relays, in bytes.
pub const MAX_RELAYED_TX_BYTES: usize = 16 * 1024;

/// `POST /v1/chain/transactions/terms`: a call the caller's own account is about to sign.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TxTermsRequest {
    /// One of the deployment's contracts.
    #[schema(value_type = String, pattern = "^(0x)?[0-9a-fA-F]{40}$")]
    pub to: Address,
    /// The call's ABI-encoded input.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub data: Bytes,
}

/// What the transaction carries besides the call: the account signs these too, so the broker
/// cannot change them afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TxTerms {
    pub chain_id: u64,
    /// The caller's linked account, which signs and pays the gas.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub from: Address,
    pub nonce: u64,
    /// Gas limit: the chain's estimate with a margin.
    pub gas: u64,
    pub fees: TxFees,
}

/// A transaction's fees, in wei (decimal strings: they exceed 2^53).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TxFees {
    /// EIP-1559 (a chain with a base fee).
    Eip1559 {
        #[serde(rename = "maxFeePerGas")]
        #[schema(pattern = "^[0-9]+$")]
        max_fee_per_gas: String,
        #[serde(rename = "maxPriorityFeePerGas")]
        #[schema(pattern = "^[0-9]+$")]
        max_priority_fee_per_gas: String,
    },
    /// A legacy gas price (a chain without a base fee).
    Legacy {
        #[serde(rename = "gasPrice")]
        #[schema(pattern = "^[0-9]+$")]
        gas_price: String,
    },
}

/// `POST /v1/chain/transactions`: a transaction the caller's linked account signed, relayed byte
/// for byte (for pages that cannot reach the chain's node themselves).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelayRequest {
    /// The signed transaction's EIP-2718 encoding.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})+$")]
    pub raw: Bytes,
}

/// The relayed transaction, mined and successful.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Relayed {
    pub tx_hash: TxHash,
    pub block_number: u64,
}
