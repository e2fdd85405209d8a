//! Certified metrics: the broker's certificates, and the verification of a credential by anyone,
//! without the broker: the offline checks (`certify::verify`: shape, suite, issuer, validity,
//! proof, attestation), then the status list when it can be fetched, then the on-chain anchor
//! when an RPC URL is given. Each check says whether it passed, failed (and why) or was skipped.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::ProviderBuilder;
use api::certificates::{Certificate, CertificateList, Reputation, RevokeCertificate};
use api::Did;
use certify::Failure;
use contracts::bindings::CredentialRegistry;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Body, Client, SdkError};
use crate::session::Session;

/// Largest status list fetched (a 16 KiB bitstring compresses to far less).
const MAX_STATUS_LIST: usize = 1 << 20;

impl Client {
    pub async fn certificates(
        &self,
        provider: Option<&Did>,
        all: bool,
    ) -> Result<CertificateList, SdkError> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(p) = provider {
            q.append_pair("provider", p.as_str());
        }
        if all {
            q.append_pair("all", "true");
        }
        self.get(&format!("/v1/certs?{}", q.finish())).await
    }

    pub async fn certificate(&self, id: &str) -> Result<Certificate, SdkError> {
        self.get(&format!("/v1/certs/{id}")).await
    }

    pub async fn reputation(&self, provider: &Did) -> Result<Reputation, SdkError> {
        self.get(&format!("/v1/providers/{provider}/reputation"))
            .await
    }
}

impl Session {
    /// An operator revokes a certificate (status bit and on-chain anchor).
    pub async fn revoke_certificate(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Certificate, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/certs/{id}/revoke"),
            Body::json(&RevokeCertificate {
                reason: reason.to_string(),
            })?,
        )
        .await
    }

    /// An operator probes a provider now; its valid certificates after the probe.
    pub async fn probe_provider(&self, provider: &Did) -> Result<CertificateList, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/providers/{provider}/probe"),
            Body::None,
        )
        .await
    }
}

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome", content = "detail")]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub check: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What `verify` found, check by check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub valid: bool,
    pub id: Option<String>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub metric: Option<String>,
    /// The figures in words, when the credential could be read.
    pub checks: Vec<Check>,
}

/// Where the anchor is checked: a chain's JSON-RPC URL and the `CredentialRegistry` address.
#[derive(Debug, Clone)]
pub struct AnchorSource {
    pub rpc_url: String,
    pub registry: Address,
}

/// Verifies `doc` at `now`: the offline checks, then the status list (skipped when it cannot be
/// fetched or `fetch_status` is false), then the anchor (skipped without `anchor`).
pub async fn verify(
    doc: &Value,
    trusted: &[String],
    now: u64,
    fetch_status: bool,
    anchor: Option<&AnchorSource>,
) -> Report {
    let mut report = Report {
        valid: false,
        id: doc.get("id").and_then(Value::as_str).map(str::to_string),
        issuer: doc
            .get("issuer")
            .and_then(Value::as_str)
            .map(str::to_string),
        subject: doc
            .pointer("/credentialSubject/id")
            .and_then(Value::as_str)
            .map(str::to_string),
        metric: doc
            .pointer("/credentialSubject/metric")
            .and_then(Value::as_str)
            .map(str::to_string),
        checks: Vec::new(),
    };
    let fail = |report: &mut Report, e: Failure| {
        report.checks.push(Check {
            check: e.check(),
            outcome: Outcome::Failed(e.to_string()),
        });
    };
    if trusted.is_empty() {
        let issuer = report.issuer.clone().unwrap_or_default();
        fail(
            &mut report,
            Failure::UntrustedIssuer {
                issuer,
                trusted: "nobody (no issuer to trust was given)".into(),
            },
        );
        return report;
    }
    let verified = match certify::verify::verify(doc, trusted, now).await {
        Ok(v) => v,
        Err(e) => {
            fail(&mut report, e);
            return report;
        }
    };
    let c = &verified.credential;
    let attested = !c.credential_subject.claim.measured_by_issuer();
    for check in [
        "shape",
        "suite",
        "issuer",
        "validity",
        "proof",
        "attestation",
    ] {
        report.checks.push(Check {
            check,
            outcome: if check == "attestation" && !attested {
                Outcome::Skipped("measured by the issuer, not attested".into())
            } else {
                Outcome::Passed
            },
        });
    }
    let status = if fetch_status {
        match fetch_status_list(&c.credential_status.status_list_credential).await {
            Ok(list) => {
                match certify::status_list::check_not_revoked(
                    &list,
                    &c.credential_status,
                    &c.issuer,
                )
                .await
                {
                    Ok(()) => Outcome::Passed,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Err(why) => Outcome::Skipped(format!("the status list is not reachable: {why}")),
        }
    } else {
        Outcome::Skipped("not asked to fetch the status list".into())
    };
    report.checks.push(Check {
        check: "status",
        outcome: status,
    });
    let anchor = match anchor {
        None => Outcome::Skipped("no --rpc-url given".into()),
        Some(a) => match check_anchor(a, &verified).await {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(e),
        },
    };
    report.checks.push(Check {
        check: "anchor",
        outcome: anchor,
    });
    report.valid = report
        .checks
        .iter()
        .all(|c| !matches!(c.outcome, Outcome::Failed(_)));
    report
}

async fn fetch_status_list(url: &str) -> Result<Value, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url} is not an http(s) URL"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_STATUS_LIST {
            return Err(format!("{url} sent more than {MAX_STATUS_LIST} bytes"));
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{url} sent no JSON: {e}"))
}

/// The anchor on chain: present, unrevoked, and naming the CID of this credential's bytes.
async fn check_anchor(a: &AnchorSource, v: &certify::Verified) -> Result<(), String> {
    let url: url::Url = a
        .rpc_url
        .parse()
        .map_err(|e| format!("the RPC URL {}: {e}", a.rpc_url))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let registry = CredentialRegistry::new(a.registry, provider);
    let hash = B256::from(v.hash);
    let anchor = match registry.lookup(hash).call().await {
        Ok(anchor) => anchor,
        Err(e) if e.as_revert_data().is_some() => {
            return Err(Failure::AnchorMissing(format!("{hash}")).to_string())
        }
        Err(e) => return Err(format!("the chain did not answer: {e}")),
    };
    if anchor.revokedAt != 0 {
        return Err(Failure::AnchorRevoked.to_string());
    }
    let cid = content::unixfs::cid_of(&v.credential.canonical_bytes()).to_string();
    if anchor.cid != cid {
        return Err(Failure::AnchorDiffers(format!(
            "the chain names CID {}, this credential's bytes have CID {cid}",
            anchor.cid
        ))
        .to_string());
    }
    Ok(())
}
