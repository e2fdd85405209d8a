//! Participant identities, in one place: an Ed25519 key shown as a `did:key` (`Did`), hex
//! signatures over exact bytes, the texts a participant signs to register and to log in, and the
//! X25519 keys that go with a did:key (for sealing to it and pinning its channel key).

mod did;
mod hex;
pub mod keyfile;
mod messages;
mod x25519;

pub use did::{did_of, key_of, Did, IdentityError};
pub use hex::{hex_decode, hex_encode};
pub use messages::{audience, login_message, registration_message};
pub use x25519::{x25519_public, x25519_secret};

use ed25519_dalek::{Signature, Signer, SigningKey};

/// What a signature is for. One key signs many kinds of message; the kind's tag and version come
/// first in the signed bytes, so a signature over one kind never verifies as another (a login
/// text as an offer, a contract document as a usage record), whatever their contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Login,
    Registration,
    Offer,
    ContractDocument,
    UsageRecord,
    Receipt,
    Envelope,
    Admission,
    /// What a provider's agent reports about itself to the broker's prober (benchmark, GPUs).
    Attestation,
}

impl Domain {
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Login => "mercato-login/1",
            Self::Registration => "mercato-register/1",
            Self::Offer => "mercato-offer/1",
            Self::ContractDocument => "mercato-contract-document/1",
            Self::UsageRecord => "mercato-usage-record/1",
            Self::Receipt => "mercato-receipt/1",
            Self::Envelope => "mercato-envelope/1",
            Self::Admission => "mercato-admission/1",
            Self::Attestation => "mercato-attestation/1",
        }
    }

    /// The bytes actually signed: the tag, a newline, the message.
    pub fn signed_bytes(self, message: &[u8]) -> Vec<u8> {
        let tag = self.tag().as_bytes();
        let mut out = Vec::with_capacity(tag.len() + 1 + message.len());
        out.extend_from_slice(tag);
        out.push(b'\n');
        out.extend_from_slice(message);
        out
    }
}

/// A hex Ed25519 signature of `message`, as a `domain` message, by `key`.
pub fn sign_hex(key: &SigningKey, domain: Domain, message: &[u8]) -> String {
    hex_encode(&key.sign(&domain.signed_bytes(message)).to_bytes())
}

/// Verifies a hex signature by the key of `did` over `message` as a `domain` message.
pub fn verify_hex(
    did: &str,
    domain: Domain,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), IdentityError> {
    let key = key_of(did)?;
    let message = &domain.signed_bytes(message);
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
        let offer = Domain::Offer;
        let sig = sign_hex(&key, offer, b"{}");
        verify_hex(did.as_str(), offer, b"{}", &sig).unwrap();
        assert!(matches!(
            verify_hex(did.as_str(), offer, b"{} ", &sig),
            Err(IdentityError::BadSignature(_))
        ));
        let forged = sign_hex(&other, offer, b"{}");
        assert!(verify_hex(did.as_str(), offer, b"{}", &forged).is_err());
        assert_eq!(
            verify_hex(did.as_str(), offer, b"{}", "zz"),
            Err(IdentityError::MalformedSignature)
        );
    }

    #[test]
    fn a_signature_of_one_kind_never_verifies_as_another() {
        let key = generate();
        let did = did_of(&key.verifying_key());
        let all = [
            Domain::Login,
            Domain::Registration,
            Domain::Offer,
            Domain::ContractDocument,
            Domain::UsageRecord,
            Domain::Receipt,
            Domain::Envelope,
            Domain::Admission,
            Domain::Attestation,
        ];
        for signed in all {
            let sig = sign_hex(&key, signed, b"{\"same\":\"bytes\"}");
            for other in all {
                let ok = verify_hex(did.as_str(), other, b"{\"same\":\"bytes\"}", &sig).is_ok();
                assert_eq!(ok, signed == other, "{signed:?} as {other:?}");
            }
        }
        // Tags are distinct and none is a prefix of another's signed bytes.
        let tags: std::collections::HashSet<_> = all.iter().map(|d| d.tag()).collect();
        assert_eq!(tags.len(), all.len());
    }
}
