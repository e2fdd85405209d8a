//! Participant identities: Ed25519 keys shown as `did:key` (multicodec 0xed01, base58btc), and
//! signatures over canonical bytes.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

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
}

/// The `did:key` of an Ed25519 public key.
pub fn did_of(key: &VerifyingKey) -> String {
    let mut bytes = ED25519_MULTICODEC.to_vec();
    bytes.extend_from_slice(key.as_bytes());
    format!("{PREFIX}{}", bs58::encode(bytes).into_string())
}

/// The public key a `did:key` names.
pub fn key_of(did: &str) -> Result<VerifyingKey, IdentityError> {
    let err = || IdentityError::NotDidKey(did.to_string());
    let encoded = did.strip_prefix(PREFIX).ok_or_else(err)?;
    let bytes = bs58::decode(encoded).into_vec().map_err(|_| err())?;
    if bytes.len() != 34 || bytes[..2] != ED25519_MULTICODEC {
        return Err(err());
    }
    let key: [u8; 32] = bytes[2..].try_into().map_err(|_| err())?;
    VerifyingKey::from_bytes(&key).map_err(|_| err())
}

/// Names a broker deployment in signed messages (chain id and marketplace address, lower case),
/// so a signature for one deployment is worthless at another.
pub fn audience(chain_id: u64, marketplace: &str) -> String {
    format!("mercato:{chain_id}:{}", marketplace.to_lowercase())
}

/// The exact text a participant signs to log in with a broker's challenge.
pub fn login_message(audience: &str, did: &str, nonce: &str, expires_at: u64) -> String {
    format!(
        "mercato-login\naudience: {audience}\ndid: {did}\nnonce: {nonce}\nexpires: {expires_at}"
    )
}

/// The exact text a participant signs to register itself with `role` at `issued_at` (unix seconds).
pub fn registration_message(audience: &str, did: &str, role: &str, issued_at: u64) -> String {
    format!("mercato-register\naudience: {audience}\ndid: {did}\nrole: {role}\nissued: {issued_at}")
}

pub fn sign_hex(key: &SigningKey, message: &[u8]) -> String {
    hex_encode(&key.sign(message).to_bytes())
}

/// Verifies a hex signature by the key of `did` over `message`.
pub fn verify_hex(did: &str, message: &[u8], signature_hex: &str) -> Result<(), IdentityError> {
    let key = key_of(did)?;
    let bytes = hex_decode(signature_hex).ok_or(IdentityError::MalformedSignature)?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| IdentityError::MalformedSignature)?;
    key.verify(message, &Signature::from_bytes(&bytes))
        .map_err(|_| IdentityError::BadSignature(did.to_string()))
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_round_trips_and_has_the_ed25519_prefix() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let did = did_of(&key.verifying_key());
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(key_of(&did).unwrap(), key.verifying_key());
    }

    #[test]
    fn known_vector_from_the_did_key_spec() {
        // did:key spec test vector (Ed25519).
        let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        let key = key_of(did).unwrap();
        assert_eq!(did_of(&key), did);
    }

    #[test]
    fn signatures_verify_only_for_the_signer_and_the_message() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let did = did_of(&key.verifying_key());
        let sig = sign_hex(&key, b"offer");
        verify_hex(&did, b"offer", &sig).unwrap();
        assert!(matches!(
            verify_hex(&did, b"offer!", &sig),
            Err(IdentityError::BadSignature(_))
        ));
        let forged = sign_hex(&other, b"offer");
        assert!(verify_hex(&did, b"offer", &forged).is_err());
        assert_eq!(
            verify_hex(&did, b"offer", "zz"),
            Err(IdentityError::MalformedSignature)
        );
        assert!(matches!(
            key_of("did:web:example.com"),
            Err(IdentityError::NotDidKey(_))
        ));
        assert!(key_of("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW").is_err());
    }
}
