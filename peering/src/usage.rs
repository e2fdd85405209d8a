//! Usage records: what a consumer used of a contract over an interval, measured by the provider's
//! agent and signed with the provider's key. The agent stores them; the broker checks, prices and
//! settles them.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageRecord {
    /// Unique per record (random), so a record sent twice counts once.
    pub id: String,
    pub contract: String,
    pub provider: String,
    pub consumer: String,
    /// The credential the session used (its hash).
    pub credential: String,
    pub from: u64,
    pub to: u64,
    pub connection_millis: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Compute sessions (`--exec`): CPU time (user + system) of the consumer's process.
    #[serde(default)]
    pub cpu_millis: u64,
    /// Compute sessions: the process's peak resident memory.
    #[serde(default)]
    pub max_memory_kib: u64,
    /// GPU time × the fraction of a GPU in use, in milliseconds.
    #[serde(default)]
    pub gpu_millis: u64,
    /// Dataset accesses served.
    #[serde(default)]
    pub data_accesses: u64,
    /// Hex Ed25519 signature of the provider over the record without this field.
    #[serde(default)]
    pub signature: String,
}

impl UsageRecord {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = catalog::identity::sign_hex(key, &self.signing_bytes());
    }

    pub fn verify(&self) -> bool {
        catalog::identity::verify_hex(&self.provider, &self.signing_bytes(), &self.signature)
            .is_ok()
    }
}
