//! Identity and roles: participants are did:keys with one role; they log in by signing a single-use
//! challenge and get a short-lived bearer token. Pure logic here; storage in `store.rs`, HTTP in
//! `http/auth.rs`.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long a login challenge can be answered.
pub const CHALLENGE_TTL_SECS: u64 = 120;
/// How long a bearer token is valid.
pub const TOKEN_TTL_SECS: u64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Provider,
    Consumer,
    Auditor,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Consumer => "consumer",
            Self::Auditor => "auditor",
            Self::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Provider,
            Self::Consumer,
            Self::Auditor,
            Self::Operator,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Roles a participant may take for itself; the others are granted by an operator.
    pub fn self_service(self) -> bool {
        matches!(self, Self::Provider | Self::Consumer)
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub did: String,
    pub role: Role,
    pub expires_at: u64,
}

pub use catalog::identity::{audience, login_message};

/// The text a participant signs to register itself with a role (at `issued_at`, unix seconds).
pub fn registration_message(audience: &str, did: &str, role: Role, issued_at: u64) -> String {
    catalog::identity::registration_message(audience, did, role.as_str(), issued_at)
}

/// 32 random bytes as hex: nonces and tokens.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    catalog::identity::hex_encode(&b)
}

/// Tokens are stored only as their hash, so a database leak gives no usable token.
pub fn token_hash(token: &str) -> String {
    catalog::identity::hex_encode(&Sha256::digest(token.as_bytes()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_bind_every_field() {
        let a = login_message("broker-a", "did:key:z1", "00", 10);
        assert_ne!(a, login_message("broker-b", "did:key:z1", "00", 10));
        assert_ne!(a, login_message("broker-a", "did:key:z2", "00", 10));
        assert_ne!(a, login_message("broker-a", "did:key:z1", "01", 10));
        assert_ne!(a, login_message("broker-a", "did:key:z1", "00", 11));
        assert_ne!(
            registration_message("b", "d", Role::Consumer, 1),
            registration_message("b", "d", Role::Provider, 1)
        );
    }

    #[test]
    fn roles_and_tokens() {
        assert_eq!(Role::parse("auditor"), Some(Role::Auditor));
        assert_eq!(Role::parse("root"), None);
        assert!(Role::Consumer.self_service() && !Role::Operator.self_service());
        assert_ne!(random_hex(), random_hex());
        assert_eq!(token_hash("t").len(), 64);
        assert_ne!(token_hash("t"), "t");
    }
}
