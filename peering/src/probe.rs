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
    /// Answered with the same bytes: one round trip. The nonce is fresh, so no answer can be
    /// sent before the request arrives.
    Echo { seq: u32, nonce: String },
    /// Answered with exactly `bytes` bytes (at most `MAX_TRANSFER`) of the stream keyed by
    /// `seed` (`transfer_stream`): nothing can be sent before the seed arrives, and the prober
    /// checks every byte.
    Transfer { bytes: u32, seed: String },
    /// Answered with a `SignedAttestation` naming `nonce` (once a session).
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

/// The transfer's bytes: SHA-256(seed ‖ block number) blocks, `len` bytes of them.
pub fn transfer_stream(seed: &str, len: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            &Sha256::new()
                .chain_update(seed.as_bytes())
                .chain_update(i.to_be_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn fresh_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    identity::hex_encode(&b)
}

/// Agent side: answers the requests of an admitted probe session until the broker closes it or
/// `MAX_REQUESTS` were answered. `attest` runs the benchmark and signs.
pub async fn serve(
    mut ch: Channel,
    attest: impl Fn(&str) -> SignedAttestation,
) -> Result<(), ChannelError> {
    let mut attested = false;
    for _ in 0..MAX_REQUESTS {
        let Some(m) = ch.recv().await? else {
            return Ok(());
        };
        let Ok(req) = serde_json::from_slice::<ProbeRequest>(&m) else {
            return Ok(());
        };
        match req {
            ProbeRequest::Echo { .. } => ch.send(&m).await?,
            ProbeRequest::Transfer { bytes, seed } => {
                let data = transfer_stream(&seed, bytes.min(MAX_TRANSFER) as usize);
                ch.send(&data).await?;
            }
            // The benchmark takes the agent's CPU: once a session.
            ProbeRequest::Attest { nonce } if !attested => {
                attested = true;
                let a = attest(&nonce);
                ch.send(&serde_json::to_vec(&a).expect("serialises"))
                    .await?;
            }
            ProbeRequest::Attest { .. } => return Ok(()),
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
            // An agent holding another key cannot read the IK first message and hangs up; so
            // does a busy one: the two look alike from here.
            ChannelError::Closed => ProbeError::Unreachable(
                "the agent closed the handshake (another key, overloaded, or not a Mercato agent)"
                    .into(),
            ),
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
        let req = serde_json::to_vec(&ProbeRequest::Echo {
            seq,
            nonce: fresh_hex(),
        })
        .expect("serialises");
        let t = Instant::now();
        ch.send(&req).await.map_err(proto)?;
        let back = ch.recv().await.map_err(proto)?;
        if back.as_deref() != Some(&req[..]) {
            return Err(ProbeError::Protocol(format!(
                "echo {seq} came back changed"
            )));
        }
        out.round_trips.push(t.elapsed().as_micros() as u64);
    }
    if transfer > 0 {
        let transfer = transfer.min(MAX_TRANSFER);
        let seed = fresh_hex();
        let expected = transfer_stream(&seed, transfer as usize);
        let req = serde_json::to_vec(&ProbeRequest::Transfer {
            bytes: transfer,
            seed,
        })
        .expect("serialises");
        let t = Instant::now();
        ch.send(&req).await.map_err(proto)?;
        let mut got = Vec::with_capacity(expected.len());
        while got.len() < expected.len() {
            match ch.recv().await.map_err(proto)? {
                Some(m) => got.extend_from_slice(&m),
                None => return Err(ProbeError::Protocol("closed during the transfer".into())),
            }
        }
        let micros = t.elapsed().as_micros() as u64;
        if got != expected {
            return Err(ProbeError::Protocol(
                "the transfer's bytes are not the stream asked for".into(),
            ));
        }
        out.transfer = Some((got.len() as u64, micros));
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
        out.attestation =
            Some(serde_json::from_slice(&m).map_err(|e| ProbeError::Protocol(e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{respond, Decision};

    /// An agent on a free port answering probes with `key`; returns its address.
    async fn agent(key: SigningKey) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let key = key.clone();
                tokio::spawn(async move {
                    let admitted = respond(stream, &key, |_, hello| {
                        match serde_json::from_slice::<ProbeHello>(hello) {
                            Ok(_) => Decision::Admit((), br#"{"ok":true}"#.to_vec()),
                            Err(_) => Decision::Refuse(br#"{"ok":false,"reason":"no"}"#.to_vec()),
                        }
                    })
                    .await;
                    if let Ok(Some((ch, ()))) = admitted {
                        let signer = key.clone();
                        let _ = serve(ch, move |nonce| {
                            SignedAttestation::sign(
                                &signer,
                                &Attestation {
                                    provider: identity::did_of(&signer.verifying_key()).to_string(),
                                    nonce: nonce.into(),
                                    at: 1,
                                    workload: "sha256-1k".into(),
                                    ops_per_second: 1000,
                                    gpus: vec!["NVIDIA H200".into()],
                                },
                            )
                        })
                        .await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_probe_measures_round_trips_a_transfer_and_gets_a_signed_attestation() {
        let provider = identity::generate();
        let did = identity::did_of(&provider.verifying_key()).to_string();
        let addr = agent(provider).await;
        let broker = identity::generate();
        let m = probe(&addr, &broker, &did, 0, 5, 100_000, Some("n1"))
            .await
            .unwrap();
        assert_eq!(m.round_trips.len(), 5);
        assert_eq!(m.transfer.unwrap().0, 100_000);
        let a = m.attestation.unwrap();
        assert_eq!(a.open(&did, "n1").unwrap().gpus, ["NVIDIA H200"]);
        // Another nonce or provider is not this attestation.
        assert!(a.open(&did, "n2").is_err());
        let other = identity::did_of(&identity::generate().verifying_key()).to_string();
        assert!(a.open(&other, "n1").is_err());
        // A transfer is capped at MAX_TRANSFER.
        let m = probe(&addr, &broker, &did, 0, 0, u32::MAX, None)
            .await
            .unwrap();
        assert_eq!(m.transfer.unwrap().0, u64::from(MAX_TRANSFER));
    }

    #[tokio::test]
    async fn an_agent_with_another_key_fails_the_probe() {
        let provider = identity::generate();
        let did = identity::did_of(&provider.verifying_key()).to_string();
        let addr = agent(identity::generate()).await;
        let e = probe(&addr, &identity::generate(), &did, 0, 1, 0, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let e = probe(&closed, &identity::generate(), &did, 0, 1, 0, None)
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeError::Unreachable(_)), "{e}");
    }
}
