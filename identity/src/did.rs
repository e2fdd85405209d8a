//! `did:key` for Ed25519 keys (multicodec 0xed01, base58btc), and `Did`: a string that is one.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];
const PREFIX: &str = "did:key:z";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0:?} is not an Ed25519 did:key (expected did:key:z6Mk…)")]
    NotDidKey(String),
    #[error("the signature is not 64 bytes of hex")]
    MalformedSignature,
    #[error("the signature does not verify against {0}")]
    BadSignature(String),
    #[error("{0:?} names a weak (small-order) key, which anyone could sign for")]
    WeakKey(String),
}

/// A participant's identity: the `did:key` of an Ed25519 public key. Only valid did:keys can be
/// made (parsed, deserialised), so a `Did` always names a key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(
    value_type = String,
    pattern = "^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$",
    example = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
)]
pub struct Did(String);

impl Did {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The public key the did names.
    pub fn key(&self) -> VerifyingKey {
        // Checked when the Did was made.
        key_of(&self.0).expect("a Did holds a valid did:key")
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for Did {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, IdentityError> {
        key_of(s)?;
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for Did {
    type Error = IdentityError;

    fn try_from(s: String) -> Result<Self, IdentityError> {
        key_of(&s)?;
        Ok(Self(s))
    }
}

impl From<Did> for String {
    fn from(d: Did) -> Self {
        d.0
    }
}

impl AsRef<str> for Did {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Did {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Did {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The `did:key` of an Ed25519 public key.
pub fn did_of(key: &VerifyingKey) -> Did {
    let mut bytes = ED25519_MULTICODEC.to_vec();
    bytes.extend_from_slice(key.as_bytes());
    Did(format!("{PREFIX}{}", bs58::encode(bytes).into_string()))
}

/// The public key a `did:key` names.
pub fn key_of(did: &str) -> Result<VerifyingKey, IdentityError> {
    let err = || IdentityError::NotDidKey(did.chars().take(120).collect());
    let encoded = did.strip_prefix(PREFIX).ok_or_else(err)?;
    let bytes = bs58::decode(encoded).into_vec().map_err(|_| err())?;
    if bytes.len() != 34 || bytes[..2] != ED25519_MULTICODEC {
        return Err(err());
    }
    let key: [u8; 32] = bytes[2..].try_into().map_err(|_| err())?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| err())?;
    // A small-order key verifies signatures anyone can make: never an identity.
    if key.is_weak() {
        return Err(IdentityError::WeakKey(did.chars().take(120).collect()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_round_trips_and_has_the_ed25519_prefix() {
        let key = crate::generate();
        let did = did_of(&key.verifying_key());
        assert!(did.as_str().starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(key_of(did.as_str()).unwrap(), key.verifying_key());
        assert_eq!(did.key(), key.verifying_key());
    }

    #[test]
    fn known_vector_from_the_did_key_spec() {
        let text = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        let did: Did = text.parse().unwrap();
        assert_eq!(did_of(&did.key()), did);
    }

    #[test]
    fn weak_keys_make_no_did() {
        // The identity point: small order, so "signatures" by it need no secret.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut bytes = ED25519_MULTICODEC.to_vec();
        bytes.extend_from_slice(&weak);
        let did = format!("{PREFIX}{}", bs58::encode(bytes).into_string());
        assert!(matches!(key_of(&did), Err(IdentityError::WeakKey(_))));
        assert!(did.parse::<Did>().is_err());
    }

    #[test]
    fn only_did_keys_make_a_did() {
        for bad in [
            "did:web:example.com",
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",
            "",
            "did:key:z",
        ] {
            assert!(bad.parse::<Did>().is_err(), "{bad}");
            assert!(serde_json::from_str::<Did>(&format!("{bad:?}")).is_err());
        }
        let did = did_of(&crate::generate().verifying_key());
        let json = serde_json::to_string(&did).unwrap();
        assert_eq!(serde_json::from_str::<Did>(&json).unwrap(), did);
    }
}
