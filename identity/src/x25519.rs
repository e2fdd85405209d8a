//! The X25519 keys that go with Ed25519 did:keys (the birational map every Ed25519/X25519
//! library implements), so a did:key is enough to encrypt to someone or pin their channel key.

use ed25519_dalek::SigningKey;

use crate::{key_of, IdentityError};

/// The X25519 public key of a did:key.
pub fn x25519_public(did: &str) -> Result<[u8; 32], IdentityError> {
    Ok(key_of(did)?.to_montgomery().to_bytes())
}

/// The X25519 secret that goes with an Ed25519 signing key.
pub fn x25519_secret(key: &SigningKey) -> [u8; 32] {
    key.to_scalar_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_converted_keys_agree() {
        let a = crate::generate();
        let b = crate::generate();
        let a_did = crate::did_of(&a.verifying_key());
        let b_did = crate::did_of(&b.verifying_key());
        let ab = x25519_dalek::StaticSecret::from(x25519_secret(&a)).diffie_hellman(
            &x25519_dalek::PublicKey::from(x25519_public(b_did.as_str()).unwrap()),
        );
        let ba = x25519_dalek::StaticSecret::from(x25519_secret(&b)).diffie_hellman(
            &x25519_dalek::PublicKey::from(x25519_public(a_did.as_str()).unwrap()),
        );
        assert_eq!(ab.as_bytes(), ba.as_bytes());
        assert!(x25519_public("did:key:nope").is_err());
    }
}
