//! A write-ahead journal of the transactions a client signs: each one's raw bytes are appended
//! and synced to disk before they are broadcast, and a transaction the node refused for good is
//! marked void. After a crash that took the chain's latest blocks with it (the embedded chain
//! writes its state once a second; an external chain may reorganise below the depth the broker
//! waited for), `replay` sends again, in their original order, the transactions the chain no
//! longer has: the same bytes, so the same hashes, nonces and effects, and never one the broker
//! was told had failed.
//!
//! The journal names the chain it belongs to (chain id, marketplace, the deployment block's
//! hash): a journal of another chain, or of a chain deployed again from scratch, is set aside,
//! never replayed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use alloy::primitives::{Bytes, B256};
use alloy::providers::Provider;

const MAGIC: &str = "mercato-tx-journal/1";
/// Entries kept when the journal is compacted at start: far more than a crash or a reorganisation
/// can lose (the embedded chain loses at most a second of blocks).
pub const KEEP: usize = 4096;
/// How long a replayed transaction may take to be mined.
const REPLAY_RECEIPT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the transaction journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the chain does not answer while the journal is replayed: {0}")]
    Chain(String),
}

/// One transaction as it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub hash: B256,
    pub raw: Bytes,
}

/// What a replay found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Entries read (void ones excluded).
    pub checked: usize,
    /// Already on chain.
    pub present: usize,
    /// Sent again and mined.
    pub replayed: Vec<B256>,
    /// Could not be restored, with why (its nonce was taken by another transaction, ...).
    pub lost: Vec<(B256, String)>,
    /// Whether an older journal (of another chain or deployment) was set aside.
    pub set_aside: Option<PathBuf>,
}

pub struct TxJournal {
    path: PathBuf,
    file: Mutex<File>,
}

impl std::fmt::Debug for TxJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxJournal")
            .field("path", &self.path)
            .finish()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    alloy::hex::encode(bytes)
}

/// The journal's lines: entries in order, without those marked void. A torn last line (a crash
/// in the middle of a write, before the broadcast) is dropped.
fn parse(lines: &[String]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in lines.iter().skip(1) {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("tx"), Some(hash), Some(raw)) => {
                let (Ok(hash), Ok(raw)) = (hash.parse::<B256>(), alloy::hex::decode(raw)) else {
                    continue;
                };
                if alloy::primitives::keccak256(&raw) == hash {
                    entries.push(Entry {
                        hash,
                        raw: raw.into(),
                    });
                }
            }
            (Some("void"), Some(hash), None) => {
                if let Ok(hash) = hash.parse::<B256>() {
                    entries.retain(|e| e.hash != hash);
                }
            }
            _ => {}
        }
    }
    entries
}

impl TxJournal {
    /// Opens (or starts) the journal at `path` for the chain named by `identity`; a journal of
    /// another identity is renamed aside (`<path>.<n>.stale`) and a new one started.
    pub fn open(path: &Path, identity: &str) -> Result<(Self, Option<PathBuf>), JournalError> {
        let header = format!("{MAGIC} {identity}");
        let lines = read_lines(path)?;
        let mut set_aside = None;
        if let Some(first) = lines.first() {
            if *first != header {
                let aside = (1..)
                    .map(|n| path.with_extension(format!("{n}.stale")))
                    .find(|p| !p.exists())
                    .expect("a free name");
                std::fs::rename(path, &aside).map_err(io(path))?;
                set_aside = Some(aside);
            }
        }
        if set_aside.is_some() || lines.is_empty() {
            rewrite(path, &header, &[])?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            set_aside,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &str) -> Result<(), JournalError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes()).map_err(io(&self.path))?;
        file.sync_data().map_err(io(&self.path))
    }

    /// Records a signed transaction; it is on disk when this returns.
    pub fn record(&self, hash: B256, raw: &[u8]) -> Result<(), JournalError> {
        self.append(&format!("tx {hash} {}\n", hex(raw)))
    }

    /// Marks a transaction the node refused for good: it is never replayed.
    pub fn void(&self, hash: B256) -> Result<(), JournalError> {
        self.append(&format!("void {hash}\n"))
    }

    /// The entries to replay, in the order they were signed.
    pub fn entries(&self) -> Result<Vec<Entry>, JournalError> {
        Ok(parse(&read_lines(&self.path)?))
    }

    /// Keeps the last `keep` entries (void ones dropped); written aside and renamed over.
    pub fn compact(&self, keep: usize) -> Result<(), JournalError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let lines = read_lines(&self.path)?;
        let Some(header) = lines.first() else {
            return Ok(());
        };
        let entries = parse(&lines);
        let kept = &entries[entries.len().saturating_sub(keep)..];
        rewrite(&self.path, header, kept)?;
        *file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        Ok(())
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, JournalError> {
    match File::open(path) {
        Ok(f) => BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(path)(e)),
    }
}

fn rewrite(path: &Path, header: &str, entries: &[Entry]) -> Result<(), JournalError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    let mut text = format!("{header}\n");
    for e in entries {
        text.push_str(&format!("tx {} {}\n", e.hash, hex(&e.raw)));
    }
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Sends again, in order, every journaled transaction the chain does not have, waiting for each
/// to be mined before the next (a later one may depend on it).
pub async fn replay<P: Provider>(
    provider: &P,
    journal: &TxJournal,
) -> Result<ReplayReport, JournalError> {
    let chain = |e: &dyn std::fmt::Display| JournalError::Chain(e.to_string());
    let mut report = ReplayReport::default();
    for entry in journal.entries()? {
        report.checked += 1;
        if provider
            .get_transaction_receipt(entry.hash)
            .await
            .map_err(|e| chain(&e))?
            .is_some()
        {
            report.present += 1;
            continue;
        }
        if let Err(e) = provider.send_raw_transaction(&entry.raw).await {
            let msg = e.to_string();
            let lower = msg.to_lowercase();
            if !(lower.contains("already known") || lower.contains("known transaction")) {
                let why = if lower.contains("nonce too low") {
                    "its nonce was used by another transaction".to_string()
                } else {
                    msg
                };
                tracing::warn!(hash = %entry.hash, %why, "a journaled transaction cannot be restored");
                report.lost.push((entry.hash, why));
                continue;
            }
        }
        let started = std::time::Instant::now();
        loop {
            if provider
                .get_transaction_receipt(entry.hash)
                .await
                .map_err(|e| chain(&e))?
                .is_some()
            {
                break;
            }
            if started.elapsed() > REPLAY_RECEIPT {
                report
                    .lost
                    .push((entry.hash, "sent again but not mined".to_string()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if report.lost.last().map(|(h, _)| *h) != Some(entry.hash) {
            tracing::info!(hash = %entry.hash, "restored a journaled transaction the chain had lost");
            report.replayed.push(entry.hash);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> (B256, Vec<u8>) {
        let raw = vec![n; 40];
        (alloy::primitives::keccak256(&raw), raw)
    }

    #[test]
    fn entries_come_back_in_order_without_void_or_torn_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tx-journal");
        let (j, aside) = TxJournal::open(&path, "chain=1").unwrap();
        assert!(aside.is_none());
        for n in 1..=3 {
            let (h, raw) = entry(n);
            j.record(h, &raw).unwrap();
        }
        j.void(entry(2).0).unwrap();
        // A crash in the middle of a write leaves a torn line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"tx 0x12")
            .unwrap();
        let got: Vec<B256> = j.entries().unwrap().iter().map(|e| e.hash).collect();
        assert_eq!(got, vec![entry(1).0, entry(3).0]);
        // Reopened for the same chain: the same entries; compacted: the last one.
        drop(j);
        let (j, _) = TxJournal::open(&path, "chain=1").unwrap();
        assert_eq!(j.entries().unwrap().len(), 2);
        j.compact(1).unwrap();
        assert_eq!(j.entries().unwrap()[0].hash, entry(3).0);
        let (h, raw) = entry(4);
        j.record(h, &raw).unwrap();
        assert_eq!(j.entries().unwrap().len(), 2);
    }

    #[test]
    fn a_journal_of_another_chain_is_set_aside_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tx-journal");
        let (j, _) = TxJournal::open(&path, "chain=1").unwrap();
        let (h, raw) = entry(1);
        j.record(h, &raw).unwrap();
        drop(j);
        let (j, aside) = TxJournal::open(&path, "chain=2").unwrap();
        assert!(j.entries().unwrap().is_empty());
        let aside = aside.expect("set aside");
        assert!(std::fs::read_to_string(aside)
            .unwrap()
            .contains(&h.to_string()));
    }
}
