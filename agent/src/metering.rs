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
            .read(true)
            .append(true)
            .open(&self.path)?;
        drop_unfinished_line(&mut f)?;
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
        let finished = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut records = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(r) => records.push(r),
                // An append cut short by a crash: never acknowledged, dropped by the next append.
                Err(_) if i + 1 == lines.len() && !finished => break,
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} line {}: {e}", self.path.display(), i + 1),
                    ))
                }
            }
        }
        Ok(records)
    }
}

/// Cuts a last line an interrupted append left without its newline, so the next record starts
/// on a line of its own.
fn drop_unfinished_line(f: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut text = Vec::new();
    f.seek(SeekFrom::Start(0))?;
    f.read_to_end(&mut text)?;
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    f.set_len(keep as u64)
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
            session: None,
            signature: None,
        };
        r.sign(&key);
        assert!(r.verify());
        log.append(&r).unwrap();
        assert_eq!(log.read().unwrap(), vec![r.clone()]);
        // A crash in the middle of an append leaves half a line: not a record, and gone once the
        // next record is appended.
        let path = dir.path().join("usage.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"id":"r2","contr"#).unwrap();
        assert_eq!(log.read().unwrap(), vec![r.clone()]);
        let mut second = r.clone();
        second.id = "r2".parse().unwrap();
        second.sign(&key);
        log.append(&second).unwrap();
        assert_eq!(log.read().unwrap(), vec![r.clone(), second]);
        // A damaged line in the middle is an error that names it, never a record skipped.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"r1\"", "\"r1", 1)).unwrap();
        let err = log.read().unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let mut forged = r;
        forged.bytes_out += 1;
        assert!(!forged.verify());
    }
}
