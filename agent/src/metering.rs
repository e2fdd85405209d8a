//! Usage records: what a consumer used through the agent (connection time, bytes each way),
//! signed with the provider's key and appended durably (fsync) to a JSON-lines file. The
//! settlement issue prices and settles them.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use api::usage::UsageRecord;

/// The agent's usage log.
pub struct UsageLog {
    path: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl UsageLog {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("usage.jsonl"),
            lock: std::sync::Mutex::new(()),
        }
    }

    /// Appends the record and syncs it to disk before returning.
    pub fn append(&self, record: &UsageRecord) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    }

    pub fn read(&self) -> std::io::Result<Vec<UsageRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn records_are_signed_and_kept() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let dir = tempfile::tempdir().unwrap();
        let log = UsageLog::new(dir.path());
        let did = identity::did_of(&key.verifying_key());
        let mut r = UsageRecord {
            id: "r1".parse().unwrap(),
            contract: format!("0x{}", "01".repeat(32)).parse().unwrap(),
            provider: did.clone(),
            consumer: did,
            credential: "ab".repeat(32).parse().unwrap(),
            from: 1,
            to: 2,
            connection_millis: 1000,
            bytes_in: 10,
            bytes_out: 20,
            cpu_millis: 0,
            max_memory_kib: 0,
            gpu_millis: 0,
            data_accesses: 0,
            signature: None,
        };
        r.sign(&key);
        assert!(r.verify());
        log.append(&r).unwrap();
        assert_eq!(log.read().unwrap(), vec![r.clone()]);
        let mut forged = r;
        forged.bytes_out += 1;
        assert!(!forged.verify());
    }
}
