//! Logged-in use of the API: the session logs in whenever it has no valid token, so callers never
//! handle tokens. The login message is built here from its parts (the broker's nonce and expiry,
//! this participant's did, and the deployment the session itself read), never signed as text the
//! broker chose: the same key signs contract documents, offers and usage records.

use api::auth::{Challenge, ChallengeRequest, RegisterRequest, Registered, Token, TokenRequest};
use api::{Did, Ed25519Signature, Principal, Role};
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell};

use crate::client::{Body, Client, SdkError};
use crate::pin::BrokerPin;

/// Longest a login challenge may claim to last (the broker's are 2 minutes).
const MAX_CHALLENGE_SECS: u64 = 600;

/// What the SDK takes from a broker's challenge: a fresh 32-byte nonce and a near expiry, never
/// text to sign (the message signed is built here, in the login domain).
fn check_challenge(ch: &Challenge, now: u64) -> Result<(), SdkError> {
    let fresh = ch.nonce.len() == 64
        && ch
            .nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !fresh || ch.expires_at <= now || ch.expires_at > now + MAX_CHALLENGE_SECS {
        return Err(SdkError::Mismatch(
            "the broker's login challenge is not a fresh 32-byte nonce with a near expiry".into(),
        ));
    }
    Ok(())
}

pub struct Session {
    pub(crate) client: Client,
    pub(crate) key: SigningKey,
    did: Did,
    pin: BrokerPin,
    /// The deployment's audience and the broker's did, read once and checked against the pin.
    broker: OnceCell<(String, Did)>,
    token: Mutex<Option<(String, u64)>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Session {
    pub fn new(client: Client, key: SigningKey) -> Self {
        let did = identity::did_of(&key.verifying_key());
        Self {
            client,
            key,
            did,
            pin: BrokerPin::FirstUse,
            broker: OnceCell::new(),
            token: Mutex::new(None),
        }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn did(&self) -> &Did {
        &self.did
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How this session knows its broker's did (default: pinned on first use, in memory).
    pub fn with_pin(mut self, pin: BrokerPin) -> Self {
        self.pin = pin;
        self
    }

    /// The deployment this session's signed messages name and the broker's did (read once from
    /// the broker's ledger, checked against the pin).
    async fn broker_identity(&self) -> Result<&(String, Did), SdkError> {
        self.broker
            .get_or_try_init(|| async {
                let ledger = self.client.ledger().await?;
                self.pin.check(&self.origin(), &ledger.broker_did)?;
                Ok((ledger.audience(), ledger.broker_did))
            })
            .await
    }

    /// The deployment this session's signed messages name.
    pub async fn audience(&self) -> Result<String, SdkError> {
        Ok(self.broker_identity().await?.0.clone())
    }

    /// The broker's did:key, as pinned: it signs the credential envelopes this session accepts.
    pub async fn broker_did(&self) -> Result<Did, SdkError> {
        Ok(self.broker_identity().await?.1.clone())
    }

    fn origin(&self) -> String {
        self.client.base().origin().ascii_serialization()
    }

    /// Registers this key with `role`: providers and consumers register themselves.
    pub async fn register(&self, role: Role) -> Result<Registered, SdkError> {
        let req = self.registration(self.did.clone(), role, &self.key).await?;
        self.client
            .call(
                Method::POST,
                "/v1/participants",
                Body::json(&req)?,
                None,
                &[],
            )
            .await
    }

    /// An operator grants `role` (auditor, operator) to the participant whose key is `key`, who
    /// signed for it.
    pub async fn grant(&self, key: &SigningKey, role: Role) -> Result<Registered, SdkError> {
        let did = identity::did_of(&key.verifying_key());
        let req = self.registration(did, role, key).await?;
        let token = self.token().await?;
        self.client
            .call(
                Method::POST,
                "/v1/participants",
                Body::json(&req)?,
                Some(&token),
                &[],
            )
            .await
    }

    async fn registration(
        &self,
        did: Did,
        role: Role,
        key: &SigningKey,
    ) -> Result<RegisterRequest, SdkError> {
        let issued_at = now();
        let (audience, broker_did) = self.broker_identity().await?;
        let message = identity::registration_message(
            audience,
            &self.origin(),
            broker_did,
            &did,
            role.as_str(),
            issued_at,
        );
        Ok(RegisterRequest {
            did,
            role,
            issued_at,
            signature: Ed25519Signature::sign(
                key,
                identity::Domain::Registration,
                message.as_bytes(),
            ),
        })
    }

    /// A valid token, logging in when there is none or it is about to expire.
    pub async fn token(&self) -> Result<String, SdkError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if *expires > now() + 30 {
                return Ok(token.clone());
            }
        }
        let ch: Challenge = self
            .client
            .call(
                Method::POST,
                "/v1/auth/challenge",
                Body::json(&ChallengeRequest {
                    did: self.did.clone(),
                })?,
                None,
                &[],
            )
            .await?;
        check_challenge(&ch, now())?;
        let (audience, broker_did) = self.broker_identity().await?;
        let message = identity::login_message(
            audience,
            &self.origin(),
            broker_did,
            &self.did,
            &ch.nonce,
            ch.expires_at,
        );
        let t: Token = self
            .client
            .call(
                Method::POST,
                "/v1/auth/token",
                Body::json(&TokenRequest {
                    did: self.did.clone(),
                    nonce: ch.nonce,
                    signature: Ed25519Signature::sign(
                        &self.key,
                        identity::Domain::Login,
                        message.as_bytes(),
                    ),
                })?,
                None,
                &[],
            )
            .await?;
        *cached = Some((t.token.clone(), t.expires_at));
        Ok(t.token)
    }

    /// An authenticated call whose answer is `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<T, SdkError> {
        let token = self.token().await?;
        self.client
            .call(method, path, body, Some(&token), &[])
            .await
    }

    pub async fn me(&self) -> Result<Principal, SdkError> {
        self.call(Method::GET, "/v1/auth/me", Body::None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_carries_a_nonce_never_text_of_the_brokers_choosing() {
        let ch = |nonce: &str, expires_at| Challenge {
            nonce: nonce.into(),
            expires_at,
        };
        let now = 1_000_000;
        check_challenge(&ch(&"ab".repeat(32), now + 120), now).unwrap();
        // A document, an offer or a usage record in place of the nonce: refused, not signed.
        let document = r#"{"contract":"0x..","consumer":"did:key:z6Mk..","price":"1000"}"#;
        for nonce in [document, &"AB".repeat(32), &"ab".repeat(33), ""] {
            assert!(
                check_challenge(&ch(nonce, now + 120), now).is_err(),
                "{nonce}"
            );
        }
        // Expired, or valid for longer than a login needs.
        assert!(check_challenge(&ch(&"ab".repeat(32), now), now).is_err());
        let far = now + MAX_CHALLENGE_SECS + 1;
        assert!(check_challenge(&ch(&"ab".repeat(32), far), now).is_err());
    }
}
