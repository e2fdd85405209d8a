//! The credential's JSON shape: what the broker issues and what verifiers and the catalog read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{BASE_CONTEXT, CONTEXT_URL};

/// The one revocation purpose the broker's status list serves.
pub const STATUS_PURPOSE: &str = "revocation";

/// What is certified. Latency, uptime and throughput the broker measured itself; a verified
/// provider is one whose agent answered at its configured endpoint with its own key; an attested
/// metric is what the provider's agent reported (benchmark, GPUs), signed by the agent: the
/// broker vouches only that the provider said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "metric", rename_all = "kebab-case")]
pub enum Claim {
    #[serde(rename_all = "camelCase")]
    Latency {
        latency_p50_micros: u64,
        latency_p99_micros: u64,
        latency_jitter_micros: u64,
    },
    #[serde(rename_all = "camelCase")]
    Uptime {
        #[serde(rename = "uptime1hBasisPoints")]
        uptime_1h: u32,
        #[serde(rename = "uptime24hBasisPoints")]
        uptime_24h: u32,
        #[serde(rename = "uptime30dBasisPoints")]
        uptime_30d: u32,
    },
    #[serde(rename_all = "camelCase")]
    Throughput { throughput_bytes_per_second: u64 },
    #[serde(rename_all = "camelCase")]
    VerifiedProvider {
        endpoint: String,
        configuration_cid: String,
    },
    /// Provider-attested: `attestation` is the agent's report as it signed it, and
    /// `attestationSignature` its signature (`mercato-attestation/1`) by the subject's key.
    #[serde(rename_all = "camelCase")]
    Attested {
        attested_by: String,
        benchmark_workload: String,
        benchmark_ops_per_second: u64,
        gpu_count: u32,
        gpu_models: String,
        attestation: String,
        attestation_signature: String,
    },
}

impl Claim {
    /// The metric's name, as in the credential.
    pub fn metric(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::Uptime { .. } => "uptime",
            Self::Throughput { .. } => "throughput",
            Self::VerifiedProvider { .. } => "verified-provider",
            Self::Attested { .. } => "attested",
        }
    }

    /// The credential type that says how much the issuer vouches for.
    pub fn credential_type(&self) -> &'static str {
        match self {
            Self::Latency { .. } | Self::Uptime { .. } | Self::Throughput { .. } => {
                "MetricCredential"
            }
            Self::VerifiedProvider { .. } => "VerifiedProviderCredential",
            Self::Attested { .. } => "AttestedMetricCredential",
        }
    }

    /// Whether the issuer measured it (false: the provider said it and signed it).
    pub fn measured_by_issuer(&self) -> bool {
        !matches!(self, Self::Attested { .. })
    }
}

/// Who and what: the provider's did, optionally one of its offers, the claim and how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// The provider's did.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    #[serde(flatten)]
    pub claim: Claim,
    pub window_start: String,
    pub window_end: String,
    pub method: String,
    pub sample_count: u64,
    pub prober_location: String,
}

/// Where the credential's revocation bit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status_purpose: String,
    pub status_list_index: String,
    pub status_list_credential: String,
}

impl StatusEntry {
    pub fn revocation(list_url: &str, index: u32) -> Self {
        Self {
            id: format!("{list_url}#{index}"),
            kind: "BitstringStatusListEntry".into(),
            status_purpose: STATUS_PURPOSE.into(),
            status_list_index: index.to_string(),
            status_list_credential: list_url.into(),
        }
    }

    pub fn index(&self) -> Option<usize> {
        self.status_list_index.parse().ok()
    }
}

/// A Mercato credential, signed (`proof` present) or not yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    #[serde(rename = "@context")]
    pub context: Vec<String>,
    pub id: String,
    #[serde(rename = "type")]
    pub types: Vec<String>,
    pub issuer: String,
    pub valid_from: String,
    pub valid_until: String,
    pub credential_subject: Subject,
    pub credential_status: StatusEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Value>,
}

impl Credential {
    /// An unsigned credential of `issuer` about `subject`, valid from `from` to `until`.
    pub fn new(
        id: String,
        issuer: &str,
        subject: Subject,
        from: u64,
        until: u64,
        status: StatusEntry,
    ) -> Self {
        Self {
            context: vec![BASE_CONTEXT.into(), CONTEXT_URL.into()],
            id,
            types: vec![
                "VerifiableCredential".into(),
                subject.claim.credential_type().into(),
            ],
            issuer: issuer.into(),
            valid_from: crate::timestamp(from),
            valid_until: crate::timestamp(until),
            credential_subject: subject,
            credential_status: status,
            proof: None,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a credential serialises")
    }

    /// The bytes stored in the content store and hashed for the on-chain anchor: the JSON with
    /// every object's keys sorted and no whitespace, whatever copy a verifier holds.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical_json(&self.to_value())
    }

    /// SHA-256 of the canonical bytes: the hash anchored in `CredentialRegistry`.
    pub fn hash(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(self.canonical_bytes()).into()
    }

    pub fn valid_from_secs(&self) -> Option<u64> {
        crate::parse_timestamp(&self.valid_from)
    }

    pub fn valid_until_secs(&self) -> Option<u64> {
        crate::parse_timestamp(&self.valid_until)
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).expect("a string serialises"));
                    out.push(b':');
                    write(&m[k], out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(x, out);
                }
                out.push(b']');
            }
            other => out.extend(serde_json::to_vec(other).expect("a scalar serialises")),
        }
    }
    let mut out = Vec::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn subject(claim: Claim) -> Subject {
        Subject {
            id: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".into(),
            offer: None,
            claim,
            window_start: crate::timestamp(1_700_000_000),
            window_end: crate::timestamp(1_700_003_600),
            method: "noise-echo".into(),
            sample_count: 20,
            prober_location: "eu-west".into(),
        }
    }

    #[test]
    fn the_claim_is_flattened_into_the_subject_with_its_metric() {
        let s = subject(Claim::Uptime {
            uptime_1h: 10_000,
            uptime_24h: 9_990,
            uptime_30d: 9_900,
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["metric"], "uptime");
        assert_eq!(v["uptime24hBasisPoints"], 9_990);
        assert_eq!(serde_json::from_value::<Subject>(v).unwrap(), s);
    }

    #[test]
    fn canonical_bytes_do_not_depend_on_key_order_or_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "s"}}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&a),
            br#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#.to_vec()
        );
    }
}
