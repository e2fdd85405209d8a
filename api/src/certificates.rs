//! Certified metrics: the W3C Verifiable Credentials the broker issues about providers from
//! what its prober measured, and provider reputation from the record.

use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{ContentId, TxHash};

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateState {
    /// Anchored, unrevoked, within its validity, the newest of its metric.
    Valid,
    /// Issued; its anchor transaction has not been confirmed yet.
    Anchoring,
    /// A newer measurement of the same metric replaced it (it stays a true statement of its
    /// window, and is not revoked).
    Superseded,
    Revoked,
    Expired,
}

/// One certificate, with the credential itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub id: String,
    pub provider: Did,
    /// latency, uptime, throughput, verified-provider, attested.
    pub metric: String,
    pub issuer: Did,
    /// False for provider-attested figures (the broker vouches only that the provider said them).
    pub measured_by_issuer: bool,
    pub state: CertificateState,
    /// The figures in words (`p50 0.81 ms, p99 1.90 ms, jitter 0.12 ms`).
    pub summary: String,
    pub issued_at: u64,
    pub valid_until: u64,
    /// SHA-256 of the credential's canonical bytes, as anchored in `CredentialRegistry` (0x-hex).
    pub hash: String,
    pub cid: ContentId,
    pub status_index: u64,
    pub anchor_tx: Option<TxHash>,
    pub revoked_at: Option<u64>,
    pub revoke_reason: Option<String>,
    /// The W3C Verifiable Credential (VC 2.0, `eddsa-rdfc-2022` Data Integrity proof).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `GET /v1/certs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateList {
    pub items: Vec<Certificate>,
}

/// `GET /v1/certs` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateQuery {
    /// Only this provider's.
    pub provider: Option<Did>,
    /// Also superseded, revoked and expired ones (default: valid and anchoring only).
    #[serde(default)]
    pub all: bool,
}

/// Longest revocation reason accepted.
pub const MAX_REASON: usize = 200;

/// `POST /v1/certs/{id}/revoke` (operators).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeCertificate {
    #[schema(max_length = 200)]
    pub reason: String,
}

/// `GET /v1/providers/{did}/reputation`: the score and every component it is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reputation {
    pub provider: Did,
    /// 0-1; 0.5 for a provider with no record.
    pub score: f64,
    pub components: ReputationComponents,
    /// How the score follows from the components.
    pub formula: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReputationComponents {
    /// Contracts that ran and closed (as the chain has them).
    pub contracts_completed: u64,
    /// Proposals the provider let lapse (failed without its signature); a purchase the chain
    /// refused for the consumer's funds is not counted against the provider.
    pub contracts_failed: u64,
    /// Contracts that ended early: closed by the escrow watch (funds ran out) or while the
    /// provider's credential was held by an operator.
    pub contracts_ended_early: u64,
    /// Contracts open on chain.
    pub contracts_active: u64,
    /// Usage records disputed and voided by an operator (decided against the provider).
    pub disputes_lost: u64,
    /// Usage records disputed and upheld (decided for the provider).
    pub disputes_won: u64,
    pub records_settled: u64,
    pub records_reported: u64,
    /// Certified uptime over 30 days, basis points, from the newest valid uptime credential.
    pub certified_uptime_30d: Option<u32>,
    pub verified_provider: bool,
}
