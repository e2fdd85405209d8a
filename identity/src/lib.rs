//! Participant identities, in one place: an Ed25519 key shown as a `did:key` (`Did`), hex
//! signatures over exact bytes, the texts a participant signs to register and to log in, and the
//! X25519 keys that go with a did:key (for sealing to it and pinning its channel key).

mod did;
mod hex;
mod messages;
mod x25519;

pub use did::{did_of, key_of, Did, IdentityError};
pub use hex::{hex_decode, hex_encode};
pub use messages::{audience, login_message, registration_message, LOGIN_PREFIX, REGISTER_PREFIX};
pub use x25519::{x25519_public, x25519_secret};

use ed25519_dalek::{Signature, Signer, SigningKey};

/// A hex Ed25519 signature of `message` by `key`.
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
    // Strict: no small-order components, no non-canonical encodings (one message, one signature).
    key.verify_strict(message, &Signature::from_bytes(&bytes))
        .map_err(|_| IdentityError::BadSignature(did.to_string()))
}

/// A fresh Ed25519 key.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_signer_and_the_message() {
        let key = generate();
        let other = generate();
        let did = did_of(&key.verifying_key());
        let sig = sign_hex(&key, b"offer");
        verify_hex(did.as_str(), b"offer", &sig).unwrap();
        assert!(matches!(
            verify_hex(did.as_str(), b"offer!", &sig),
            Err(IdentityError::BadSignature(_))
        ));
        let forged = sign_hex(&other, b"offer");
        assert!(verify_hex(did.as_str(), b"offer", &forged).is_err());
        assert_eq!(
            verify_hex(did.as_str(), b"offer", "zz"),
            Err(IdentityError::MalformedSignature)
        );
    }
}
