//! Logged-in use of the API: the session signs a challenge with the participant's key whenever it
//! has no valid token, so callers never handle tokens themselves.

use ed25519_dalek::SigningKey;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::client::{Client, SdkError};
use crate::keys;

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub did: String,
    pub role: String,
    pub expires_at: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Challenge {
    nonce: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Token {
    token: String,
    expires_at: u64,
}

pub struct Session {
    pub(crate) client: Client,
    pub(crate) key: SigningKey,
    token: Mutex<Option<(String, u64)>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Session {
    pub fn new(client: Client, key: SigningKey) -> Self {
        Self {
            client,
            key,
            token: Mutex::new(None),
        }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn did(&self) -> String {
        keys::did(&self.key)
    }

    /// The audience the broker's signed messages name.
    pub async fn audience(&self) -> Result<String, SdkError> {
        let ledger = self.client.ledger().await?;
        Ok(catalog::identity::audience(
            ledger.chain_id,
            &ledger.contracts.marketplace,
        ))
    }

    /// Registers this key with a self-service role (provider or consumer).
    pub async fn register(&self, role: &str) -> Result<(), SdkError> {
        let did = self.did();
        let issued = now();
        let message =
            catalog::identity::registration_message(&self.audience().await?, &did, role, issued);
        let signature = catalog::identity::sign_hex(&self.key, message.as_bytes());
        let body = json!({"did": did, "role": role, "issuedAt": issued, "signature": signature});
        self.client
            .request::<serde_json::Value>(
                reqwest::Method::POST,
                "/v1/participants",
                Some(body),
                None,
            )
            .await
            .map(|_| ())
    }

    /// A valid token, logging in when there is none or it is about to expire.
    pub async fn token(&self) -> Result<String, SdkError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if *expires > now() + 30 {
                return Ok(token.clone());
            }
        }
        let did = self.did();
        let ch: Challenge = self
            .client
            .request(
                reqwest::Method::POST,
                "/v1/auth/challenge",
                Some(json!({"did": did})),
                None,
            )
            .await?;
        let signature = catalog::identity::sign_hex(&self.key, ch.message.as_bytes());
        let t: Token = self
            .client
            .request(
                reqwest::Method::POST,
                "/v1/auth/token",
                Some(json!({"did": did, "nonce": ch.nonce, "signature": signature})),
                None,
            )
            .await?;
        *cached = Some((t.token.clone(), t.expires_at));
        Ok(t.token)
    }

    pub async fn me(&self) -> Result<Me, SdkError> {
        let token = self.token().await?;
        self.client
            .request(reqwest::Method::GET, "/v1/auth/me", None, Some(&token))
            .await
    }
}
