//! The consumer's side of peering: read and open its credentials, renew them, and connect
//! straight to the provider's agent — proxying a local port through the channel.

use std::sync::Arc;

use api::credentials::{CredentialInfo, Revoked};
use api::usage::{Receipt, ReceiptStored};
use api::ContractId;
use peering::channel::{self, Counters};
use peering::Credential;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{Body, SdkError};
use crate::session::{now, Session};

/// What the consumer presents to the agent in the channel's first message (its `Debug` leaves
/// the secret out).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Presentation {
    pub contract: String,
    pub secret: String,
    /// When it was made (unix milliseconds), later than any earlier presentation of this
    /// process: the agent takes each only once (`peering::ReplayGuard`).
    pub at: u64,
}

/// Unix milliseconds, strictly increasing within this process (two dials in one millisecond
/// still get distinct, ordered times).
pub fn presentation_time() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut prev = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(
            prev,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

impl std::fmt::Debug for Presentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presentation")
            .field("contract", &self.contract)
            .field("secret", &"[redacted]")
            .field("at", &self.at)
            .finish()
    }
}

/// The agent's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub ok: bool,
    #[serde(default)]
    pub reason: String,
}

fn peer_error(e: impl std::fmt::Display) -> SdkError {
    SdkError::Peering(e.to_string())
}

impl Session {
    pub async fn credentials(&self, contract: ContractId) -> Result<Vec<CredentialInfo>, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/credentials"),
            Body::None,
        )
        .await
    }

    /// The newest working credential of the contract, opened with this participant's key;
    /// renewed first when it is due.
    pub async fn credential(&self, contract: ContractId) -> Result<Credential, SdkError> {
        let list = self.credentials(contract).await?;
        let newest = list
            .first()
            .ok_or_else(|| SdkError::Peering(format!("contract {contract} has no credential")))?;
        let c = self.open(&newest.sealed).await?;
        if c.needs_renewal(now()) {
            return self.renew_credential(contract).await;
        }
        self.check_credential(contract, &c).await?;
        Ok(c)
    }

    /// Opens a credential sealed to this participant and signed by the pinned broker.
    async fn open(&self, sealed: &peering::SealedCredential) -> Result<Credential, SdkError> {
        let broker = self.broker_did().await?;
        peering::open(sealed, &self.key, broker.as_str()).map_err(peer_error)
    }

    /// Checks a credential against the contract document both parties signed (the consumer's
    /// own signature proves the document is the one it signed): same contract, this consumer,
    /// the provider's node.
    async fn check_credential(&self, contract: ContractId, c: &Credential) -> Result<(), SdkError> {
        let shown = self.contract(contract).await?;
        let text = shown
            .document
            .ok_or_else(|| SdkError::Mismatch("the broker sent no contract document".into()))?;
        shown
            .consumer_signature
            .verify(
                self.did(),
                identity::Domain::ContractDocument,
                text.as_bytes(),
            )
            .map_err(|_| {
                SdkError::Mismatch("the contract document is not the one signed".into())
            })?;
        let doc = api::document::ContractDocument::parse(text.as_bytes())
            .map_err(|e| SdkError::Mismatch(format!("not a contract document: {e}")))?;
        c.matches(&peering::SignedParties {
            contract_id: &contract.to_string(),
            consumer: self.did().as_str(),
            provider: doc.provider.did.as_str(),
        })
        .map_err(SdkError::Mismatch)
    }

    pub async fn renew_credential(&self, contract: ContractId) -> Result<Credential, SdkError> {
        let fresh: CredentialInfo = self
            .call(
                Method::POST,
                &format!("/v1/contracts/{contract}/credentials/renew"),
                Body::None,
            )
            .await?;
        let c = self.open(&fresh.sealed).await?;
        self.check_credential(contract, &c).await?;
        Ok(c)
    }

    /// Operators revoke a contract's credentials; none is issued again until released.
    pub async fn revoke_credentials(&self, contract: ContractId) -> Result<Revoked, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/contracts/{contract}/credentials/revoke"),
            Body::None,
        )
        .await
    }

    /// Hands the broker a receipt of one of this consumer's sessions (evidence for disputes).
    pub async fn submit_receipt(&self, r: &Receipt) -> Result<ReceiptStored, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/contracts/{}/receipts", r.contract),
            Body::json(r)?,
        )
        .await
    }

    /// Operators lift the hold of a revocation.
    pub async fn release_credentials(&self, contract: ContractId) -> Result<(), SdkError> {
        self.client
            .send(
                Method::POST,
                &format!("/v1/contracts/{contract}/credentials/release"),
                Body::None,
                Some(&self.token().await?),
                &[],
            )
            .await
            .map(|_| ())
    }
}

/// Opens a channel to the credential's agent and presents the credential.
pub async fn dial(
    key: &ed25519_dalek::SigningKey,
    credential: &Credential,
) -> Result<channel::Channel, SdkError> {
    dial_at(key, credential, presentation_time()).await
}

/// `dial` with a presentation made at `at` (unix milliseconds); the agent takes each time from a
/// consumer once, within its clock-skew window.
pub async fn dial_at(
    key: &ed25519_dalek::SigningKey,
    credential: &Credential,
    at: u64,
) -> Result<channel::Channel, SdkError> {
    let addr = credential
        .agent_address()
        .ok_or_else(|| SdkError::Peering("the credential names no tcp:// endpoint".into()))?;
    let hello = serde_json::to_vec(&Presentation {
        contract: credential.contract_id.clone(),
        secret: credential.secret.clone(),
        at,
    })
    .map_err(peer_error)?;
    let (ch, answer) = channel::initiate(&addr, key, &credential.provider_node_id, &hello)
        .await
        .map_err(peer_error)?;
    let answer: Answer = serde_json::from_slice(&answer).map_err(peer_error)?;
    if !answer.ok {
        return Err(SdkError::Api {
            status: 403,
            title: "refused by the provider".into(),
            detail: answer.reason,
        });
    }
    Ok(ch)
}

/// How often a running session's receipt is signed again.
pub const RECEIPT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The consumer's signed receipt of a session: what its end of the channel sent and received.
pub fn receipt(
    key: &ed25519_dalek::SigningKey,
    credential: &Credential,
    session: [u8; 32],
    counters: &Counters,
    connected: std::time::Duration,
    last: bool,
) -> Result<Receipt, SdkError> {
    use std::sync::atomic::Ordering;
    let mismatch = |what: &str| SdkError::Mismatch(format!("the credential's {what} is not valid"));
    let mut r = Receipt {
        contract: credential
            .contract_id
            .parse()
            .map_err(|_| mismatch("contract"))?,
        consumer: identity::did_of(&key.verifying_key()),
        credential: credential.hash().parse().map_err(|_| mismatch("hash"))?,
        session: session.into(),
        at: presentation_time(),
        last,
        connection_millis: connected.as_millis() as u64,
        bytes_sent: counters.sent.load(Ordering::Relaxed),
        bytes_received: counters.received.load(Ordering::Relaxed),
        signature: None,
    };
    r.sign(key);
    Ok(r)
}

/// One spliced session that signs its receipts as it runs and at its end, handing each to
/// `receipts`.
async fn carry(
    key: &ed25519_dalek::SigningKey,
    credential: &Credential,
    ch: channel::Channel,
    stream: TcpStream,
    receipts: &tokio::sync::mpsc::UnboundedSender<Receipt>,
) {
    let session = ch.session();
    let counters = Arc::new(Counters::default());
    let started = std::time::Instant::now();
    let ticker = {
        let (key, credential, counters, receipts) = (
            key.clone(),
            credential.clone(),
            counters.clone(),
            receipts.clone(),
        );
        async move {
            loop {
                tokio::time::sleep(RECEIPT_EVERY).await;
                if let Ok(r) = receipt(
                    &key,
                    &credential,
                    session,
                    &counters,
                    started.elapsed(),
                    false,
                ) {
                    let _ = receipts.send(r);
                }
            }
        }
    };
    let _ = channel::splice(ch, stream, counters.clone(), ticker).await;
    if let Ok(r) = receipt(key, credential, session, &counters, started.elapsed(), true) {
        let _ = receipts.send(r);
    }
}

/// Serves `local`: every connection to it is carried over its own channel to the agent, which
/// connects it to the purchased service; each session's signed receipts go to `receipts`. Runs
/// until the listener fails.
pub async fn proxy(
    key: ed25519_dalek::SigningKey,
    credential: Credential,
    local: TcpListener,
    receipts: tokio::sync::mpsc::UnboundedSender<Receipt>,
) -> Result<(), SdkError> {
    let credential = Arc::new(credential);
    loop {
        let (stream, _) = local.accept().await.map_err(peer_error)?;
        let (key, credential, receipts) = (key.clone(), credential.clone(), receipts.clone());
        tokio::spawn(async move {
            match dial(&key, &credential).await {
                Ok(ch) => carry(&key, &credential, ch, stream, &receipts).await,
                Err(e) => {
                    tracing::warn!(error = %e, "connection refused by the provider");
                    drop::<TcpStream>(stream);
                }
            }
        });
    }
}
