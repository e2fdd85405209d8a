//! What a verifier checks, in order, each failure named: the shape and contexts, the proof's
//! suite and method, the issuer against those trusted, the validity window, the proof itself (a
//! changed byte anywhere fails here), a provider's attestation signature. The status list and the
//! on-chain anchor need the network; their failures are named here too, and checked by the
//! callers that can reach them (`status_list`, the CLI, the broker).

use serde_json::Value;
use ssi::claims::data_integrity::suites::EdDsaRdfc2022;
use ssi::claims::data_integrity::DataIntegrity;
use ssi::claims::vc::v2::JsonCredential;
use ssi::claims::VerificationParameters;

use crate::context::{BASE_CONTEXT, CONTEXT_URL};
use crate::issue::{resolver, verification_method};
use crate::shape::{Claim, Credential};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("not a Mercato credential: {0}")]
    Malformed(String),
    #[error("unexpected JSON-LD contexts {0:?}: only the VC 2.0 base context and {CONTEXT_URL} are accepted")]
    Context(Vec<String>),
    #[error("the proof is not an eddsa-rdfc-2022 Data Integrity proof by the issuer's key: {0}")]
    Suite(String),
    #[error("issuer {issuer} is not trusted (trusted: {trusted})")]
    UntrustedIssuer { issuer: String, trusted: String },
    #[error("not yet valid: valid from {0}")]
    NotYetValid(String),
    #[error("expired: valid until {0}")]
    Expired(String),
    #[error("the proof does not verify (the credential was changed after signing, or signed by another key): {0}")]
    Proof(String),
    #[error("the attested figures are not the ones the provider signed")]
    Attestation,
    #[error("revoked: bit {index} of status list {list} is set")]
    Revoked { index: usize, list: String },
    #[error("the status list cannot be used: {0}")]
    StatusList(String),
    #[error("no anchor on chain for hash {0}")]
    AnchorMissing(String),
    #[error("the on-chain anchor differs: {0}")]
    AnchorDiffers(String),
    #[error("the on-chain anchor was revoked")]
    AnchorRevoked,
}

impl Failure {
    /// The check that failed, in one word (for `--json` and problem reasons).
    pub fn check(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Context(_) => "shape",
            Self::Suite(_) => "suite",
            Self::UntrustedIssuer { .. } => "issuer",
            Self::NotYetValid(_) | Self::Expired(_) => "validity",
            Self::Proof(_) => "proof",
            Self::Attestation => "attestation",
            Self::Revoked { .. } | Self::StatusList(_) => "status",
            Self::AnchorMissing(_) | Self::AnchorDiffers(_) | Self::AnchorRevoked => "anchor",
        }
    }
}

/// A credential that passed every offline check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub credential: Credential,
    /// The hash anchored on chain (SHA-256 of the canonical bytes).
    pub hash: [u8; 32],
}

/// The offline checks of `doc` at Unix time `now`; `trusted` lists the issuers accepted (any
/// when empty: the caller then decides on `credential.issuer`).
pub async fn verify(doc: &Value, trusted: &[String], now: u64) -> Result<Verified, Failure> {
    let credential: Credential =
        serde_json::from_value(doc.clone()).map_err(|e| Failure::Malformed(e.to_string()))?;
    if credential.context != [BASE_CONTEXT, CONTEXT_URL] {
        return Err(Failure::Context(credential.context.clone()));
    }
    let claim_type = credential.credential_subject.claim.credential_type();
    if credential.types != ["VerifiableCredential", claim_type] {
        return Err(Failure::Malformed(format!(
            "type {:?} does not match its claim, a {claim_type}",
            credential.types
        )));
    }
    if credential.issuer.parse::<identity::Did>().is_err() {
        return Err(Failure::Malformed(format!(
            "issuer {} is not an Ed25519 did:key",
            credential.issuer
        )));
    }
    let proof = credential
        .proof
        .as_ref()
        .ok_or_else(|| Failure::Suite("there is no proof".into()))?;
    let field = |k: &str| proof.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("type") != "DataIntegrityProof" || field("cryptosuite") != "eddsa-rdfc-2022" {
        return Err(Failure::Suite(format!(
            "{} / {}",
            field("type"),
            field("cryptosuite")
        )));
    }
    if field("verificationMethod") != verification_method(&credential.issuer) {
        return Err(Failure::Suite(format!(
            "signed by {}, not by the issuer {}",
            field("verificationMethod"),
            credential.issuer
        )));
    }
    if field("proofPurpose") != "assertionMethod" {
        return Err(Failure::Suite(format!(
            "proof purpose {}",
            field("proofPurpose")
        )));
    }
    if !trusted.is_empty() && !trusted.contains(&credential.issuer) {
        return Err(Failure::UntrustedIssuer {
            issuer: credential.issuer.clone(),
            trusted: trusted.join(", "),
        });
    }
    let from = credential
        .valid_from_secs()
        .ok_or_else(|| Failure::Malformed(format!("validFrom {}", credential.valid_from)))?;
    let until = credential
        .valid_until_secs()
        .ok_or_else(|| Failure::Malformed(format!("validUntil {}", credential.valid_until)))?;
    if now < from {
        return Err(Failure::NotYetValid(credential.valid_from.clone()));
    }
    if now > until {
        return Err(Failure::Expired(credential.valid_until.clone()));
    }
    check_proof(doc, from).await?;
    if let Claim::Attested {
        attested_by,
        benchmark_workload,
        benchmark_ops_per_second,
        gpu_count,
        gpu_models,
        attestation,
        attestation_signature,
    } = &credential.credential_subject.claim
    {
        // The figures stated must be the ones in the report the provider signed.
        let report: Value = serde_json::from_str(attestation).unwrap_or_default();
        let gpus: Vec<&str> = report["gpus"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ok = *attested_by == credential.credential_subject.id
            && report["workload"] == benchmark_workload.as_str()
            && report["opsPerSecond"] == *benchmark_ops_per_second
            && gpus.len() == *gpu_count as usize
            && gpus.join(", ") == *gpu_models
            && identity::verify_hex(
                attested_by,
                identity::Domain::Attestation,
                attestation.as_bytes(),
                attestation_signature,
            )
            .is_ok();
        if !ok {
            return Err(Failure::Attestation);
        }
    }
    let hash = credential.hash();
    Ok(Verified { credential, hash })
}

/// The Data Integrity proof of `doc`, checked by `ssi` against the issuer's did:key with the
/// bundled contexts (at `at`, a time inside the validity window already checked).
pub(crate) async fn check_proof(doc: &Value, at: u64) -> Result<(), Failure> {
    let vc: DataIntegrity<JsonCredential, EdDsaRdfc2022> =
        serde_json::from_value(doc.clone()).map_err(|e| Failure::Malformed(e.to_string()))?;
    let at = chrono::DateTime::from_timestamp(at as i64, 0).unwrap_or_default();
    let params = VerificationParameters::from_resolver(resolver())
        .with_json_ld_loader(crate::context::loader())
        .with_date_time(at);
    match vc.verify(params).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(invalid)) => Err(Failure::Proof(invalid.to_string())),
        Err(e) => Err(Failure::Proof(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{StatusEntry, Subject};
    use crate::status_list;
    use crate::Issuer;

    const NOW: u64 = 1_800_000_000;

    fn issuer() -> Issuer {
        Issuer::new(&ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))
    }

    fn unsigned(issuer: &Issuer, claim: Claim, index: u32) -> Credential {
        let provider =
            identity::did_of(&ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key());
        Credential::new(
            format!("urn:uuid:00000000-0000-4000-8000-{index:012}"),
            issuer.did().as_str(),
            Subject {
                id: provider.to_string(),
                offer: None,
                claim,
                window_start: crate::timestamp(NOW - 3_600),
                window_end: crate::timestamp(NOW),
                method: "noise-echo".into(),
                sample_count: 20,
                prober_location: "eu-west".into(),
            },
            NOW,
            NOW + 86_400,
            StatusEntry::revocation("http://127.0.0.1:8080/v1/certs/status", index),
        )
    }

    fn latency() -> Claim {
        Claim::Latency {
            latency_p50_micros: 812,
            latency_p99_micros: 1_904,
            latency_jitter_micros: 120,
        }
    }

    #[tokio::test]
    async fn an_issued_credential_verifies_and_any_change_fails_its_proof() {
        let issuer = issuer();
        let signed = issuer.sign(&unsigned(&issuer, latency(), 1)).await.unwrap();
        let doc = signed.to_value();
        let ok = verify(&doc, &[issuer.did().to_string()], NOW + 10)
            .await
            .unwrap();
        assert_eq!(ok.credential, signed);
        assert_eq!(doc["proof"]["cryptosuite"], "eddsa-rdfc-2022");

        let mut tampered = doc.clone();
        tampered["credentialSubject"]["latencyP50Micros"] = 100.into();
        let e = verify(&tampered, &[], NOW + 10).await.unwrap_err();
        assert_eq!(e.check(), "proof", "{e}");

        let e = verify(&doc, &["did:key:z6Mkother".into()], NOW + 10)
            .await
            .unwrap_err();
        assert_eq!(e.check(), "issuer", "{e}");
        let e = verify(&doc, &[], NOW - 1).await.unwrap_err();
        assert!(matches!(e, Failure::NotYetValid(_)), "{e}");
        let e = verify(&doc, &[], NOW + 86_401).await.unwrap_err();
        assert!(matches!(e, Failure::Expired(_)), "{e}");

        // A foreign key signing in the issuer's name: the proof names the issuer's method but
        // the signature is another key's.
        let other = Issuer::new(&ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]));
        let mut forged = unsigned(&other, latency(), 1);
        forged.issuer = issuer.did().to_string();
        let mut forged_doc = other
            .sign(&unsigned(&other, latency(), 1))
            .await
            .unwrap()
            .to_value();
        forged_doc["issuer"] = issuer.did().to_string().into();
        forged_doc["proof"]["verificationMethod"] =
            crate::issue::verification_method(issuer.did().as_str()).into();
        let e = verify(&forged_doc, &[], NOW + 10).await.unwrap_err();
        assert_eq!(e.check(), "proof", "{e}");
    }

    #[tokio::test]
    async fn an_attestation_must_carry_the_providers_signature() {
        let issuer = issuer();
        let provider = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let report = r#"{"workload":"sha256","opsPerSecond":1000,"gpus":["NVIDIA H200"]}"#;
        let claim = |sig: String| Claim::Attested {
            attested_by: identity::did_of(&provider.verifying_key()).to_string(),
            benchmark_workload: "sha256".into(),
            benchmark_ops_per_second: 1000,
            gpu_count: 1,
            gpu_models: "NVIDIA H200".into(),
            attestation: report.into(),
            attestation_signature: sig,
        };
        let good = identity::sign_hex(&provider, identity::Domain::Attestation, report.as_bytes());
        let signed = issuer
            .sign(&unsigned(&issuer, claim(good), 2))
            .await
            .unwrap();
        verify(&signed.to_value(), &[], NOW + 1).await.unwrap();
        let liar = identity::sign_hex(&provider, identity::Domain::Attestation, b"other report");
        let signed = issuer
            .sign(&unsigned(&issuer, claim(liar), 3))
            .await
            .unwrap();
        let e = verify(&signed.to_value(), &[], NOW + 1).await.unwrap_err();
        assert_eq!(e, Failure::Attestation);
    }

    #[tokio::test]
    async fn the_status_list_revokes_exactly_the_bits_set_and_must_be_the_issuers() {
        let issuer = issuer();
        let url = "http://127.0.0.1:8080/v1/certs/status";
        let list = status_list::list_credential(issuer.did().as_str(), url, &[5, 9], NOW);
        let list = issuer.sign_json(list).await.unwrap();
        let entry = |i| StatusEntry::revocation(url, i);
        status_list::check_not_revoked(&list, &entry(4), issuer.did().as_str())
            .await
            .unwrap();
        let e = status_list::check_not_revoked(&list, &entry(5), issuer.did().as_str())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            Failure::Revoked {
                index: 5,
                list: url.into()
            }
        );
        let e = status_list::check_not_revoked(&list, &entry(4), "did:key:z6Mkother")
            .await
            .unwrap_err();
        assert_eq!(e.check(), "status");
        let mut flipped = list.clone();
        flipped["credentialSubject"]["encodedList"] =
            status_list::list_credential(issuer.did().as_str(), url, &[], NOW)["credentialSubject"]
                ["encodedList"]
                .clone();
        let e = status_list::check_not_revoked(&flipped, &entry(5), issuer.did().as_str())
            .await
            .unwrap_err();
        assert!(matches!(e, Failure::StatusList(_)), "{e}");
    }
}
