//! The credential envelope, version 1: what a consumer needs to use a contract directly. See
//! docs/peering.md for the fields and how versions evolve.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ENVELOPE_VERSION: u32 = 1;

/// How the consumer connects, with what that kind needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CredentialKind {
    /// The Mercato channel to the provider's agent (`mercato connect`).
    Generic,
    /// A Liqo peering: the consumer cluster peers with the provider's.
    Liqo {
        #[serde(rename = "clusterID")]
        cluster_id: String,
        #[serde(rename = "clusterName")]
        cluster_name: String,
        token: String,
        endpoint: String,
    },
    /// A WireGuard tunnel: the consumer's interface keys and the provider's peer.
    Wireguard {
        private_key: String,
        public_key: String,
        address: String,
        peer_public_key: String,
        peer_endpoint: String,
        allowed_ips: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    pub version: u32,
    pub kind: CredentialKind,
    pub contract_id: String,
    /// The provider's node: its did:key (it also pins the channel's responder key).
    pub provider_node_id: String,
    /// Where the provider's agent listens (`tcp://host:port`) and any service endpoints.
    pub endpoints: Vec<String>,
    /// The consumer's did:key: only it can open the sealed envelope and the channel.
    pub consumer_key: String,
    /// 32 random bytes, hex; the agent knows only its hash.
    pub secret: String,
    pub not_before: u64,
    pub expires_at: u64,
    /// Renew from this time on (the SDK does).
    pub renew_before: u64,
}

/// What identifies a credential without revealing it: SHA-256 of the secret, hex.
pub fn secret_hash(secret: &str) -> String {
    identity::hex_encode(&Sha256::digest(secret.as_bytes()))
}

impl Credential {
    pub fn hash(&self) -> String {
        secret_hash(&self.secret)
    }

    /// The agent's data-plane address (`host:port` of the first `tcp://` endpoint).
    pub fn agent_address(&self) -> Option<String> {
        self.endpoints
            .iter()
            .find_map(|e| e.strip_prefix("tcp://"))
            .map(|a| a.trim_end_matches('/').to_string())
    }

    pub fn needs_renewal(&self, now: u64) -> bool {
        now >= self.renew_before
    }
}
