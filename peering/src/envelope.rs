//! The credential envelope, version 1: what a consumer needs to use a contract directly. See
//! docs/peering.md for the fields and how versions evolve.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ENVELOPE_VERSION: u32 = 1;

/// How the consumer connects, with what that kind needs. Its `Debug` leaves the secrets out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A WireGuard tunnel: the consumer's interface (its own public key, from the contract
    /// document; the consumer generated the pair and alone holds the private key) and the
    /// provider's peer.
    Wireguard {
        public_key: String,
        address: String,
        peer_public_key: String,
        peer_endpoint: String,
        allowed_ips: String,
    },
}

const REDACTED: &str = "[redacted]";

impl std::fmt::Debug for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Generic => f.write_str("Generic"),
            Self::Liqo {
                cluster_id,
                cluster_name,
                endpoint,
                ..
            } => f
                .debug_struct("Liqo")
                .field("cluster_id", cluster_id)
                .field("cluster_name", cluster_name)
                .field("token", &REDACTED)
                .field("endpoint", endpoint)
                .finish(),
            Self::Wireguard {
                public_key,
                address,
                peer_public_key,
                peer_endpoint,
                allowed_ips,
                ..
            } => f
                .debug_struct("Wireguard")
                .field("public_key", public_key)
                .field("address", address)
                .field("peer_public_key", peer_public_key)
                .field("peer_endpoint", peer_endpoint)
                .field("allowed_ips", allowed_ips)
                .finish(),
        }
    }
}

/// A credential; its `Debug` shows the secret's hash, never the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("contract_id", &self.contract_id)
            .field("provider_node_id", &self.provider_node_id)
            .field("endpoints", &self.endpoints)
            .field("consumer_key", &self.consumer_key)
            .field("secret_hash", &self.hash())
            .field("not_before", &self.not_before)
            .field("expires_at", &self.expires_at)
            .field("renew_before", &self.renew_before)
            .finish()
    }
}

/// What the contract document both parties signed says a credential must name.
pub struct SignedParties<'a> {
    pub contract_id: &'a str,
    pub consumer: &'a str,
    pub provider: &'a str,
}

impl Credential {
    /// Checks the envelope names exactly the signed contract, its consumer's key and its
    /// provider's node: a broker cannot point a consumer at another node (itself, say) or a
    /// credential at another consumer.
    pub fn matches(&self, signed: &SignedParties<'_>) -> Result<(), String> {
        let check = |what: &str, named: &str, signed: &str| {
            if named == signed {
                Ok(())
            } else {
                Err(format!(
                    "the credential names {what} {named}, the signed contract {signed}"
                ))
            }
        };
        check("contract", &self.contract_id, signed.contract_id)?;
        check("consumer", &self.consumer_key, signed.consumer)?;
        check("provider node", &self.provider_node_id, signed.provider)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_must_name_the_signed_parties() {
        let c = Credential {
            version: ENVELOPE_VERSION,
            kind: CredentialKind::Generic,
            contract_id: "c1".into(),
            provider_node_id: "did:key:p".into(),
            endpoints: vec![],
            consumer_key: "did:key:c".into(),
            secret: "s".into(),
            not_before: 0,
            expires_at: 1,
            renew_before: 1,
        };
        let signed = |contract_id, consumer, provider| SignedParties {
            contract_id,
            consumer,
            provider,
        };
        assert!(c.matches(&signed("c1", "did:key:c", "did:key:p")).is_ok());
        let e = c
            .matches(&signed("c1", "did:key:c", "did:key:broker"))
            .unwrap_err();
        assert!(e.contains("provider node"), "{e}");
        assert!(c.matches(&signed("c1", "did:key:x", "did:key:p")).is_err());
        assert!(c.matches(&signed("c2", "did:key:c", "did:key:p")).is_err());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let c = |kind| Credential {
            version: ENVELOPE_VERSION,
            kind,
            contract_id: "c".into(),
            provider_node_id: "did:key:p".into(),
            endpoints: vec![],
            consumer_key: "did:key:c".into(),
            secret: "s3cr3t-credential".into(),
            not_before: 0,
            expires_at: 1,
            renew_before: 1,
        };
        for kind in [
            CredentialKind::Generic,
            CredentialKind::Liqo {
                cluster_id: "id".into(),
                cluster_name: "n".into(),
                token: "s3cr3t-liqo".into(),
                endpoint: "https://e".into(),
            },
            CredentialKind::Wireguard {
                public_key: "pub".into(),
                address: "10.0.0.2/32".into(),
                peer_public_key: "peer".into(),
                peer_endpoint: "h:51820".into(),
                allowed_ips: "10.0.0.1/32".into(),
            },
        ] {
            let shown = format!("{:?}", c(kind));
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains(&secret_hash("s3cr3t-credential")), "{shown}");
        }
    }
}
