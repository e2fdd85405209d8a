//! Probes: the broker measures a provider's agent over the same Noise channel consumers use,
//! dialled with the broker's own did:key and pinned to the provider's, so an agent that answers
//! with another key fails the handshake. The hello names a probe, not a credential: the agent
//! admits the broker's key for probes only — echoes, a short transfer and a signed attestation,
//! never the provider's service, a process or a usage record — so probing costs the provider
//! nothing billable and cannot be turned into a consumer session.

use std::time::Instant;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel, ChannelError};

/// Requests one probe session may make.
pub const MAX_REQUESTS: usize = 64;
/// The largest transfer a probe may ask for.
pub const MAX_TRANSFER: u32 = 1 << 20;

/// The broker's hello: a probe, at the broker's clock (ms), refused outside the agent's
/// presentation window like a consumer's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeHello {
    pub probe: u64,
}

/// One request over a probe session; each gets one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProbeRequest {
    /// Answered with the same bytes: one round trip.
    Echo { seq: u32 },
    /// Answered with exactly `bytes` bytes (at most `MAX_TRANSFER`).
    Transfer { bytes: u32 },
    /// Answered with a `SignedAttestation` naming `nonce`.
    Attest { nonce: String },
}

/// What the agent says about itself: a short benchmark it ran and the GPUs it found. The
/// provider's own statement: the broker records it as provider-attested, never as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestation {
    pub provider: String,
    pub nonce: String,
    pub at: u64,
    pub workload: String,
    pub ops_per_second: u64,
    pub gpus: Vec<String>,
}

/// The attestation as the agent wrote it and its signature (`mercato-attestation/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedAttestation {
    pub report: String,
    pub signature: String,
}

impl SignedAttestation {
    pub fn sign(key: &SigningKey, a: &Attestation) -> Self {
        let report = serde_json::to_string(a).expect("an attestation serialises");
        let signature = identity::sign_hex(key, identity::Domain::Attestation, report.as_bytes());
        Self { report, signature }
    }

    /// The attestation, if `provider` signed it for `nonce`.
    pub fn open(&self, provider: &str, nonce: &str) -> Result<Attestation, String> {
        identity::verify_hex(
            provider,
            identity::Domain::Attestation,
            self.report.as_bytes(),
            &self.signature,
        )
        .map_err(|_| "the attestation is not signed by the provider's key".to_string())?;
        let a: Attestation = serde_json::from_str(&self.report)
            .map_err(|e| format!("the attestation is malformed: {e}"))?;
        if a.provider != provider || a.nonce != nonce {
            return Err("the attestation names another provider or probe".into());
        }
        Ok(a)
    }
}

/// Agent side: answers the requests of an admitted probe session until the broker closes it or
/// `MAX_REQUESTS` were answered. `attest` runs the benchmark and signs.
pub async fn serve(
    mut ch: Channel,
    attest: impl Fn(&str) -> SignedAttestation,
) -> Result<(), ChannelError> {
    for _ in 0..MAX_REQUESTS {
        let Some(m) = ch.recv().await? else {
            return Ok(());
        };
        let Ok(req) = serde_json::from_slice::<ProbeRequest>(&m) else {
            return Ok(());
        };
        match req {
            ProbeRequest::Echo { .. } => ch.send(&m).await?,
            ProbeRequest::Transfer { bytes } => {
                let block = vec![0u8; 16 * 1024];
                let mut left = bytes.min(MAX_TRANSFER) as usize;
                while left > 0 {
                    let n = left.min(block.len());
                    ch.send(&block[..n]).await?;
                    left -= n;
                }
            }
            ProbeRequest::Attest { nonce } => {
                let a = attest(&nonce);
                ch.send(&serde_json::to_vec(&a).expect("serialises")).await?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The handshake failed against the provider's pinned key: another key answered.
    #[error("the agent did not answer with the provider's key ({0})")]
    WrongKey(String),
    #[error("the agent refused the probe: {0}")]
    Refused(String),
    #[error("the agent broke the probe protocol: {0}")]
    Protocol(String),
}

/// What one probe measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Round trips in microseconds, in the order taken.
    pub round_trips: Vec<u64>,
    /// Bytes received and microseconds taken by the transfer.
    pub transfer: Option<(u64, u64)>,
    /// The agent's signed attestation, when asked for one.
    pub attestation: Option<SignedAttestation>,
}

/// Broker side: probes the agent of `provider` at `addr` with `echoes` round trips, a transfer
/// of `transfer` bytes (none when 0) and, when `nonce` is given, an attestation.
pub async fn probe(
    addr: &str,
    broker: &SigningKey,
    provider: &str,
    at_ms: u64,
    echoes: u32,
    transfer: u32,
    nonce: Option<&str>,
) -> Result<Measured, ProbeError> {
    let hello = serde_json::to_vec(&ProbeHello { probe: at_ms }).expect("serialises");
    let (mut ch, answer) = channel::initiate(addr, broker, provider, &hello)
        .await
        .map_err(|e| match e {
            ChannelError::Io(e) => ProbeError::Unreachable(e.to_string()),
            ChannelError::Closed => ProbeError::Unreachable("closed during the handshake".into()),
            other => ProbeError::WrongKey(other.to_string()),
        })?;
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        reason: String,
    }
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(a) if a.ok => {}
        Ok(a) => return Err(ProbeError::Refused(a.reason)),
        Err(e) => return Err(ProbeError::Protocol(e.to_string())),
    }
    let proto = |e: ChannelError| ProbeError::Protocol(e.to_string());
    let mut out = Measured::default();
    for seq in 0..echoes {
        let req = serde_json::to_vec(&ProbeRequest::Echo { seq }).expect("serialises");
        let t = Instant::now();
        ch.send(&req).await.map_err(proto)?;
        let back = ch.recv().await.map_err(proto)?;
        if back.as_deref() != Some(&req[..]) {
            return Err(ProbeError::Protocol(format!("echo {seq} came back changed")));
        }
        out.round_trips.push(t.elapsed().as_micros() as u64);
    }
    if transfer > 0 {
        let transfer = transfer.min(MAX_TRANSFER);
        let req =
            serde_json::to_vec(&ProbeRequest::Transfer { bytes: transfer }).expect("serialises");
        let t = Instant::now();
        ch.send(&req).await.map_err(proto)?;
        let mut got = 0u64;
        while got < u64::from(transfer) {
            match ch.recv().await.map_err(proto)? {
                Some(m) => got += m.len() as u64,
                None => return Err(ProbeError::Protocol("closed during the transfer".into())),
            }
        }
        if got != u64::from(transfer) {
            return Err(ProbeError::Protocol("sent more than asked".into()));
        }
        out.transfer = Some((got, t.elapsed().as_micros() as u64));
    }
    if let Some(nonce) = nonce {
        let req = serde_json::to_vec(&ProbeRequest::Attest {
            nonce: nonce.into(),
        })
        .expect("serialises");
        ch.send(&req).await.map_err(proto)?;
        let m = ch
            .recv()
            .await
            .map_err(proto)?
            .ok_or_else(|| ProbeError::Protocol("closed before attesting".into()))?;
        out.attestation = Some(
            serde_json::from_slice(&m).map_err(|e| ProbeError::Protocol(e.to_string()))?,
        );
    }
    Ok(out)
}
