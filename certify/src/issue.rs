//! Signing credentials with `ssi`: a Data Integrity proof of the `eddsa-rdfc-2022` suite (named
//! explicitly: `ssi`'s picker would take the 2018 suite for an Ed25519 key) by the issuer's
//! did:key, whose verification method is the key's Multikey.

use ed25519_dalek::SigningKey;
use serde_json::Value;
use ssi::claims::data_integrity::suites::EdDsaRdfc2022;
use ssi::claims::data_integrity::{CryptographicSuite, DataIntegrity, ProofOptions};
use ssi::claims::vc::v2::JsonCredential;
use ssi::claims::SignatureEnvironment;
use ssi::dids::{DIDKey, VerificationMethodDIDResolver};
use ssi::verification_methods::{Multikey, ReferenceOrOwned, SingleSecretSigner};

use crate::shape::Credential;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the credential is not a valid VC 2.0 document: {0}")]
    Shape(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The resolver every Mercato issuer and verifier uses: did:key only, resolved offline.
pub(crate) fn resolver() -> VerificationMethodDIDResolver<DIDKey, Multikey> {
    VerificationMethodDIDResolver::new(DIDKey)
}

/// The verification method of a did:key: the did with its own key as the fragment.
pub fn verification_method(did: &str) -> String {
    let key = did.strip_prefix("did:key:").unwrap_or(did);
    format!("{did}#{key}")
}

/// An issuer: the key and its did.
pub struct Issuer {
    did: identity::Did,
    key: SigningKey,
}

impl Issuer {
    pub fn new(key: &SigningKey) -> Self {
        Self {
            did: identity::did_of(&key.verifying_key()),
            key: key.clone(),
        }
    }

    pub fn did(&self) -> &identity::Did {
        &self.did
    }

    /// Signs `credential` (its `issuer` must be this issuer) and returns it with its proof.
    pub async fn sign(&self, credential: &Credential) -> Result<Credential, IssueError> {
        let mut unsigned = credential.clone();
        unsigned.proof = None;
        let value = self.sign_json(unsigned.to_value()).await?;
        serde_json::from_value(value).map_err(|e| IssueError::Shape(e.to_string()))
    }

    /// Signs any VC 2.0 document of this issuer (the status list credential too).
    pub async fn sign_json(&self, unsigned: Value) -> Result<Value, IssueError> {
        if unsigned.get("issuer").and_then(Value::as_str) != Some(self.did.as_str()) {
            return Err(IssueError::Shape(format!(
                "the credential names issuer {}, not {}",
                unsigned.get("issuer").unwrap_or(&Value::Null),
                self.did
            )));
        }
        let vc: JsonCredential =
            serde_json::from_value(unsigned).map_err(|e| IssueError::Shape(e.to_string()))?;
        let method = verification_method(self.did.as_str());
        let method = iref::IriBuf::new(method)
            .map_err(|e| IssueError::Shape(format!("verification method: {e}")))?;
        let env = SignatureEnvironment {
            json_ld_loader: crate::context::loader(),
            eip712_loader: (),
        };
        let signed: DataIntegrity<JsonCredential, EdDsaRdfc2022> = EdDsaRdfc2022
            .sign_with(
                env,
                vc,
                resolver(),
                SingleSecretSigner::new(self.key.clone()),
                ProofOptions::from_method(ReferenceOrOwned::Reference(method)),
                (),
            )
            .await
            .map_err(|e| IssueError::Sign(e.to_string()))?;
        serde_json::to_value(&signed).map_err(|e| IssueError::Sign(e.to_string()))
    }
}
