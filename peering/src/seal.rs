//! Sealing a credential to the consumer: X25519 with a fresh ephemeral key against the consumer's
//! did:key (converted), HKDF-SHA256, ChaCha20-Poly1305. Only the consumer's key opens it; the
//! broker stores the sealed form only. Inside, the credential is signed by the broker that issued
//! it (`Domain::Envelope`): the consumer accepts only its pinned broker's, and holds evidence of
//! what that broker told it.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::envelope::Credential;
use identity::{x25519_public, x25519_secret, IdentityError};

const INFO: &[u8] = b"mercato peering credential v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedCredential {
    /// The did the credential is sealed to.
    pub recipient: String,
    pub ephemeral: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Key(#[from] IdentityError),
    #[error("the credential is sealed to {0}, not to this key")]
    NotForMe(String),
    #[error("the sealed credential is malformed or was tampered with")]
    Corrupt,
    #[error("the credential is not signed by the broker {0}")]
    Unsigned(String),
}

/// What is sealed: the credential's JSON and the issuing broker's signature over it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignedEnvelope {
    credential: String,
    issuer: String,
    signature: String,
}

fn cipher(shared: &[u8], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut key = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(INFO, &mut key);
    ChaCha20Poly1305::new(&Key::from(key))
}

/// Seals `credential` to `recipient_did`, signed by `issuer` (the broker's key).
pub fn seal(
    credential: &Credential,
    recipient_did: &str,
    issuer: &SigningKey,
) -> Result<SealedCredential, SealError> {
    let recipient = x25519_public(recipient_did)?;
    let ephemeral = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let eph_pub = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(recipient));
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let text = serde_json::to_string(credential).map_err(|_| SealError::Corrupt)?;
    let plain = serde_json::to_vec(&SignedEnvelope {
        issuer: identity::did_of(&issuer.verifying_key()).to_string(),
        signature: identity::sign_hex(issuer, identity::Domain::Envelope, text.as_bytes()),
        credential: text,
    })
    .map_err(|_| SealError::Corrupt)?;
    let ciphertext = cipher(shared.as_bytes(), &eph_pub, &recipient)
        .encrypt(&Nonce::from(nonce), plain.as_slice())
        .map_err(|_| SealError::Corrupt)?;
    let hex = identity::hex_encode;
    Ok(SealedCredential {
        recipient: recipient_did.to_string(),
        ephemeral: hex(&eph_pub),
        nonce: hex(&nonce),
        ciphertext: hex(&ciphertext),
    })
}

/// Opens a credential sealed to `key`'s did and signed by `issuer` (the pinned broker's did).
pub fn open(
    sealed: &SealedCredential,
    key: &SigningKey,
    issuer: &str,
) -> Result<Credential, SealError> {
    let me = identity::did_of(&key.verifying_key());
    if sealed.recipient != me.as_str() {
        return Err(SealError::NotForMe(sealed.recipient.clone()));
    }
    let bytes = |s: &str| identity::hex_decode(s).ok_or(SealError::Corrupt);
    let eph: [u8; 32] = bytes(&sealed.ephemeral)?
        .try_into()
        .map_err(|_| SealError::Corrupt)?;
    let nonce: [u8; 12] = bytes(&sealed.nonce)?
        .try_into()
        .map_err(|_| SealError::Corrupt)?;
    let secret = StaticSecret::from(x25519_secret(key));
    let recipient = PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(eph));
    let plain = cipher(shared.as_bytes(), &eph, &recipient)
        .decrypt(&Nonce::from(nonce), bytes(&sealed.ciphertext)?.as_slice())
        .map_err(|_| SealError::Corrupt)?;
    let signed: SignedEnvelope = serde_json::from_slice(&plain).map_err(|_| SealError::Corrupt)?;
    if signed.issuer != issuer
        || identity::verify_hex(
            issuer,
            identity::Domain::Envelope,
            signed.credential.as_bytes(),
            &signed.signature,
        )
        .is_err()
    {
        return Err(SealError::Unsigned(issuer.to_string()));
    }
    serde_json::from_str(&signed.credential).map_err(|_| SealError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{CredentialKind, ENVELOPE_VERSION};

    fn credential(consumer: &str) -> Credential {
        Credential {
            version: ENVELOPE_VERSION,
            kind: CredentialKind::Generic,
            contract_id: "0x01".into(),
            provider_node_id: "did:key:p".into(),
            endpoints: vec!["tcp://127.0.0.1:9".into()],
            consumer_key: consumer.into(),
            secret: "ab".repeat(32),
            not_before: 1,
            expires_at: 2,
            renew_before: 2,
        }
    }

    #[test]
    fn only_the_consumer_opens_its_credential_and_tampering_is_caught() {
        let consumer = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let did = identity::did_of(&consumer.verifying_key());
        let broker = SigningKey::generate(&mut rand::rngs::OsRng);
        let b = identity::did_of(&broker.verifying_key());
        let b = b.as_str();
        let c = credential(did.as_str());
        let sealed = seal(&c, did.as_str(), &broker).unwrap();
        assert!(!sealed.ciphertext.contains(&c.secret));
        assert_eq!(open(&sealed, &consumer, b).unwrap(), c);
        assert!(matches!(
            open(&sealed, &other, b),
            Err(SealError::NotForMe(_))
        ));
        // Sealed by another broker (or anyone who knows the consumer's did): not accepted.
        let impostor = seal(&c, did.as_str(), &other).unwrap();
        assert!(matches!(
            open(&impostor, &consumer, b),
            Err(SealError::Unsigned(_))
        ));
        // Another key claiming to be the recipient still cannot decrypt.
        let mut stolen = sealed.clone();
        stolen.recipient = identity::did_of(&other.verifying_key()).to_string();
        assert_eq!(open(&stolen, &other, b), Err(SealError::Corrupt));
        let mut tampered = sealed.clone();
        let last = tampered.ciphertext.pop().unwrap();
        tampered
            .ciphertext
            .push(if last == '0' { '1' } else { '0' });
        assert_eq!(open(&tampered, &consumer, b), Err(SealError::Corrupt));
        // Two seals of the same credential differ (fresh ephemeral key and nonce).
        assert_ne!(seal(&c, did.as_str(), &broker).unwrap(), sealed);
    }
}
