//! Provider configurations: in the content store, their CID registered on chain.

use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{ContentId, EvmSignature, TxHash};

/// Largest configuration accepted (bytes).
pub const MAX_CONFIG_BYTES: usize = catalog::provider_config::MAX_CONFIG_BYTES;

/// `POST /v1/providers/me/config`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRequest {
    /// The configuration as the provider wrote it (YAML or JSON).
    #[schema(max_length = 32768)]
    pub config: String,
    /// The CID the provider computed for it and signed.
    pub cid: ContentId,
    /// Unix seconds after which the signature is void.
    pub deadline: u64,
    /// The provider account's EIP-712 signature of SetConfig(account, cid, nonce, deadline).
    pub signature: EvmSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRegistered {
    pub provider: Did,
    /// The chain's version number of the provider's configuration (1, 2, …).
    pub version: u64,
    pub cid: ContentId,
    pub tx_hash: TxHash,
}

/// `GET /v1/providers/{did}/config`: the current configuration, read back and checked by its CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigView {
    pub provider: Did,
    pub version: u64,
    pub cid: ContentId,
    pub config: String,
}
