//! Peering credentials as the broker lists them: metadata and the envelope sealed to the
//! consumer (the broker never holds the secret in the clear).

use catalog::provider_config::ConnectionKind;
use identity::Did;
use peering::SealedCredential;
use serde::{Deserialize, Serialize};

use crate::ids::{ContractId, CredentialHash};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    /// SHA-256 of the secret: what the provider's agent admits.
    pub hash: CredentialHash,
    pub contract_id: ContractId,
    /// 1 for the first credential of the contract, +1 per renewal.
    pub version: u64,
    pub consumer: Did,
    pub kind: ConnectionKind,
    pub not_before: u64,
    pub expires_at: u64,
    /// Renew from this time on.
    pub renew_before: u64,
    pub revoked_at: Option<u64>,
    /// The envelope, sealed so only the consumer's key opens it.
    pub sealed: SealedCredential,
}

/// `POST /v1/contracts/{id}/credentials/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    pub contract: ContractId,
    /// How many live credentials were revoked.
    pub revoked: u64,
}
