//! Registration and login bodies, roles, and who a token belongs to.

use std::fmt;
use std::str::FromStr;

use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::Ed25519Signature;

/// A participant's role: one per did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Provider,
    Consumer,
    Auditor,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Self::Provider,
        Self::Consumer,
        Self::Auditor,
        Self::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Consumer => "consumer",
            Self::Auditor => "auditor",
            Self::Operator => "operator",
        }
    }

    /// Roles a participant may take for itself; the others are granted by an operator.
    pub fn self_service(self) -> bool {
        matches!(self, Self::Provider | Self::Consumer)
    }

    /// Auditors and operators see every contract and event.
    pub fn oversees(self) -> bool {
        matches!(self, Self::Auditor | Self::Operator)
    }

    /// The ParticipantRegistry's number for the role.
    pub fn chain_number(self) -> u8 {
        match self {
            Self::Provider => 1,
            Self::Consumer => 2,
            Self::Auditor => 3,
            Self::Operator => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role (provider, consumer, auditor, operator)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// `POST /v1/participants`: a did registers itself (or an operator grants it a role).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    pub did: Did,
    pub role: Role,
    /// Unix seconds when the participant signed; within 5 minutes of the broker's clock.
    #[schema(minimum = 0)]
    pub issued_at: u64,
    /// The did's signature of the registration message (see `identity::registration_message`).
    pub signature: Ed25519Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub did: Did,
    pub role: Role,
}

/// `POST /v1/auth/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChallengeRequest {
    pub did: Did,
}

/// A single-use login challenge. The participant signs the login message it builds itself from
/// these parts and its own idea of the broker's audience (`identity::login_message`), never a
/// text the broker chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// 32 random bytes, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub nonce: String,
    /// Unix seconds until which the challenge can be answered.
    pub expires_at: u64,
}

/// `POST /v1/auth/token`: the signed challenge.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub did: Did,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub nonce: String,
    pub signature: Ed25519Signature,
}

/// A bearer token for `Authorization: Bearer …`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub token: String,
    pub role: Role,
    pub expires_at: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("Token")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who a token belongs to (`GET /v1/auth/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub did: Did,
    pub role: Role,
    /// When the token expires (unix seconds).
    pub expires_at: u64,
}
