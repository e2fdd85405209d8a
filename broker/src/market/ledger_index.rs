//! The ledger index: every event of the six contracts, from the deployment block on, into
//! `ledger_events`, for statements, the escrow watch, reputation and auditors.
//!
//! - **Resumable and idempotent.** The cursor (`chain_cursor`, name `ledger`) moves in the same
//!   transaction as the rows of its range, and only from the value this pass read (compare and
//!   set): when several broker processes follow, one writes a range and the others find the
//!   cursor moved and read on from there. Rows are keyed by their place on chain.
//! - **Reorganisation-safe.** The hash of every block the index read events from (and of the
//!   last block of each range) is kept. Before reading on, the last kept hash is compared with
//!   the chain; if the chain no longer has it, the highest kept block it still has is the common
//!   ancestor (found by bisection: a chain that has block n has every block before it), and
//!   everything above it is rolled back and read again. Each reorganisation is recorded
//!   (`ledger_reorgs`); with a confirmation depth set, any the index sees went deeper than that
//!   depth, and is logged as an error.
//! - **Confirmations.** Only blocks `confirmations` deep are read (0 on the embedded chain).

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use api::ContractId;
use contracts::events::{period_ref, LedgerEvent, Source};

use super::{Market, MarketError};
use crate::ledger_link::{credits, ChainError, ChainMove, LedgerLink, MoveKind};
use crate::store::{Corrupt, Decode, Store};
use catalog::store::Backend;

const CURSOR: &str = "ledger";
/// Blocks per log query (and per write): small enough that reading the next range overlaps
/// writing this one.
pub const RANGE: u64 = 500;
const FIRST_RANGE: u64 = 32;
/// Rows per INSERT statement (17 columns: well under SQLite's and PostgreSQL's bind limits).
const ROWS_PER_INSERT: usize = 400;

/// How the index follows the chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexPolicy {
    /// Blocks left unread below the head (a reorganisation shallower than this never reaches
    /// the index).
    pub confirmations: u64,
}

/// What one catch-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events written by this process.
    pub added: usize,
    /// The reorganisation it rolled back, if any.
    pub reorg: Option<Reorg>,
    /// The next block to read.
    pub next_block: u64,
    /// Time spent reading the chain (logs and block hashes) and writing the database; the two
    /// overlap, so their sum is more than the time taken.
    pub reading: Duration,
    pub writing: Duration,
}

/// A range of blocks read from the chain, not yet written.
struct Fetched {
    from: u64,
    to: u64,
    end_hash: B256,
    events: Vec<IndexedEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorg {
    /// The last block the index had read whose hash the chain no longer has.
    pub from_block: u64,
    /// The highest block both agree on; everything above it was read again.
    pub ancestor: u64,
    pub beyond_confirmations: bool,
}

/// An indexed event: where it sits on chain and what it says.
#[derive(Debug, Clone)]
pub struct IndexedEvent {
    pub block: u64,
    pub block_hash: B256,
    pub log_index: u64,
    pub tx: B256,
    pub at: u64,
    pub source: Source,
    pub event: LedgerEvent,
    pub topics: Vec<B256>,
    pub data: Vec<u8>,
}

/// Lower-case hex of an address, as the index stores and compares them.
pub fn hex_address(a: Address) -> String {
    format!("{a:#x}")
}

/// Reads every event up to the safe head into the index.
pub async fn follow(market: &Market) -> Result<Progress, MarketError> {
    follow_with(
        &market.store,
        &market.ledger,
        market.policy.index.confirmations,
    )
    .await
}

pub async fn follow_with(
    store: &Store,
    ledger: &LedgerLink,
    confirmations: u64,
) -> Result<Progress, MarketError> {
    let mut progress = Progress::default();
    'pass: loop {
        let next = cursor(store, ledger).await?;
        if let Some(reorg) = check_reorg(store, ledger, next, confirmations).await? {
            progress.reorg = Some(reorg);
            continue;
        }
        let head = ledger.client.block_number().await?;
        let Some(safe) = head.checked_sub(confirmations) else {
            progress.next_block = next;
            return Ok(progress);
        };
        if next > safe {
            progress.next_block = next;
            return Ok(progress);
        }
        // Ranges are read on their own task, up to two ahead of the one being written, so
        // reading the node runs beside writing the database.
        let (sender, mut ranges) = tokio::sync::mpsc::channel(2);
        let reader = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut from = next;
                // The first ranges are short, so that writing starts soon.
                let mut span = FIRST_RANGE;
                while from <= safe {
                    let to = (from + span - 1).min(safe);
                    span = (span * 2).min(RANGE);
                    let started = Instant::now();
                    let read = fetch(&ledger, from, to).await;
                    let more = matches!(read, Ok(Some(_)));
                    if sender.send((read, started.elapsed())).await.is_err() || !more {
                        return;
                    }
                    from = to + 1;
                }
            })
        };
        let _stop_reader = AbortOnDrop(reader);
        let mut first = true;
        while let Some((read, reading)) = ranges.recv().await {
            progress.reading += reading;
            // The chain moved under the read: look again.
            let Some(range) = read? else { continue 'pass };
            // A range read ahead is written only if the last block kept is still the chain's.
            if !first {
                if let Some(reorg) = check_reorg(store, ledger, range.from, confirmations).await? {
                    progress.reorg = Some(reorg);
                    continue 'pass;
                }
            }
            first = false;
            let started = Instant::now();
            let written = write_range(store, &range).await?;
            progress.writing += started.elapsed();
            match written {
                Some(n) => progress.added += n,
                // Another process moved the cursor: look again.
                None => continue 'pass,
            }
        }
    }
}

/// Stops a task when dropped (the reader, when the writer stops early or fails).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn cursor(store: &Store, ledger: &LedgerLink) -> Result<u64, MarketError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT next_block FROM chain_cursor WHERE name = $1")
        .bind(CURSOR)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some((n,)) => Decode {
            table: "chain_cursor",
            key: CURSOR,
        }
        .u64("next_block", n)?,
        None => ledger.deployment.deployment_block,
    })
}

/// Compares the last kept block with the chain; rolls back to the common ancestor if the chain
/// no longer has it.
async fn check_reorg(
    store: &Store,
    ledger: &LedgerLink,
    next: u64,
    confirmations: u64,
) -> Result<Option<Reorg>, MarketError> {
    let decode = |(n, h): &(i64, String)| -> Result<(u64, B256), Corrupt> {
        let key = n.to_string();
        let d = Decode {
            table: "ledger_blocks",
            key: &key,
        };
        Ok((d.u64("number", *n)?, d.parse("hash", h)?))
    };
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT number, hash FROM ledger_blocks ORDER BY number DESC LIMIT 1")
            .fetch_optional(store.pool())
            .await?;
    let Some(last) = last else {
        return Ok(None);
    };
    let (last_n, last_hash) = decode(&last)?;
    if ledger.block_hash(last_n).await? == Some(last_hash) {
        return Ok(None);
    }
    let kept: Vec<(i64, String)> =
        sqlx::query_as("SELECT number, hash FROM ledger_blocks ORDER BY number")
            .fetch_all(store.pool())
            .await?;
    if kept.is_empty() {
        return Ok(None); // another process rolled back meanwhile
    }
    // Bisect for the highest kept block the chain still has.
    let (mut lo, mut hi) = (0usize, kept.len() - 1); // kept[hi] is gone; kept[lo - 1] is had
    let mut ancestor = ledger.deployment.deployment_block.saturating_sub(1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (n, h) = decode(&kept[mid])?;
        if ledger.block_hash(n).await? == Some(h) {
            ancestor = n;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let reorg = Reorg {
        from_block: last_n,
        ancestor,
        // The index reads only blocks `confirmations` deep: with a depth set, any block it read
        // that the chain replaced was deeper than the depth promised.
        beyond_confirmations: confirmations > 0,
    };
    let mut tx = store.begin().await?;
    let moved = sqlx::query(
        "UPDATE chain_cursor SET next_block = $1, last_hash = NULL WHERE name = $2 AND next_block = $3",
    )
    .bind((ancestor + 1) as i64)
    .bind(CURSOR)
    .bind(next as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        // Another process is handling it (or moved on); look again.
        return Ok(None);
    }
    for table in [
        "DELETE FROM ledger_events WHERE block_number > $1",
        "DELETE FROM ledger_blocks WHERE number > $1",
    ] {
        sqlx::query(table)
            .bind(ancestor as i64)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO ledger_reorgs (detected_at, from_block, ancestor, depth, beyond_confirmations) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::store::now() as i64)
    .bind(reorg.from_block as i64)
    .bind(ancestor as i64)
    .bind((reorg.from_block - ancestor) as i64)
    .bind(i64::from(reorg.beyond_confirmations))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if reorg.beyond_confirmations {
        tracing::error!(
            from = reorg.from_block,
            ancestor,
            confirmations,
            "the chain reorganised deeper than the confirmation depth; the index is read again from block {}",
            ancestor + 1
        );
    } else {
        tracing::warn!(
            from = reorg.from_block,
            ancestor,
            "the chain reorganised; the index is read again from block {}",
            ancestor + 1
        );
    }
    Ok(Some(reorg))
}

/// Reads `from..=to`; `None` when the chain changed during the read.
async fn fetch(ledger: &LedgerLink, from: u64, to: u64) -> Result<Option<Fetched>, MarketError> {
    let Some(end_hash) = ledger.block_hash(to).await? else {
        return Ok(None);
    };
    let logs = ledger.all_logs(from, to).await?;
    let events = decode_logs(ledger, logs).await?;
    // A log of the last block from another fork than the hash read before: read again.
    if events
        .iter()
        .any(|e| e.block == to && e.block_hash != end_hash)
        || ledger.block_hash(to).await? != Some(end_hash)
    {
        return Ok(None);
    }
    Ok(Some(Fetched {
        from,
        to,
        end_hash,
        events,
    }))
}

/// Writes a range read with the cursor; `None` when another process moved the cursor since.
async fn write_range(store: &Store, f: &Fetched) -> Result<Option<usize>, MarketError> {
    let mut blocks: Vec<(u64, B256)> = f.events.iter().map(|e| (e.block, e.block_hash)).collect();
    blocks.push((f.to, f.end_hash));
    blocks.dedup();

    let mut tx = store.begin().await?;
    // Compare and set: written only if no other process moved the cursor since it was read.
    let moved = sqlx::query(
        "INSERT INTO chain_cursor (name, next_block, last_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET next_block = $2, last_hash = $3 \
         WHERE chain_cursor.next_block = $4",
    )
    .bind(CURSOR)
    .bind((f.to + 1) as i64)
    .bind(f.end_hash.to_string())
    .bind(f.from as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(None);
    }
    let mut added = 0;
    for chunk in f.events.chunks(ROWS_PER_INSERT) {
        added += insert_events(&mut tx, store.backend(), chunk).await?;
    }
    for chunk in blocks.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from("INSERT INTO ledger_blocks (number, hash) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let (n, h) = (
                store.backend().param(2 * i + 1),
                store.backend().param(2 * i + 2),
            );
            sql.push_str(&format!("({n},{h})"));
        }
        sql.push_str(" ON CONFLICT (number) DO UPDATE SET hash = excluded.hash");
        let mut q = sqlx::query(&sql);
        for (n, h) in chunk {
            q = q.bind(*n as i64).bind(h.to_string());
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Some(added))
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    events: &[IndexedEvent],
) -> Result<usize, MarketError> {
    const COLUMNS: usize = 16;
    let mut sql = String::from(
        "INSERT INTO ledger_events (block_number, log_index, block_hash, tx_hash, at, source, name, \
         contract_id, batch_id, account, counterparty, amount, fee, content, topics, data) VALUES ",
    );
    for i in 0..events.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&backend.param(i * COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (block_number, log_index) DO NOTHING");
    let mut q = sqlx::query(&sql);
    for e in events {
        let (account, counterparty) = e.event.accounts();
        let (amount, fee) = e.event.amounts();
        q = q
            .bind(e.block as i64)
            .bind(e.log_index as i64)
            .bind(e.block_hash.to_vec())
            .bind(e.tx.to_vec())
            .bind(e.at as i64)
            .bind(e.source.contract_name())
            .bind(e.event.name())
            .bind(e.event.contract().map(|c| c.to_string()))
            .bind(e.event.batch().map(|b| b.to_string()))
            .bind(account.map(hex_address))
            .bind(counterparty.map(hex_address))
            .bind(amount.map(|a| a.to_string()))
            .bind(fee.map(|a| a.to_string()))
            .bind(e.event.text().map(str::to_string))
            .bind(e.topics.iter().flat_map(|t| t.0).collect::<Vec<u8>>())
            .bind(e.data.clone());
    }
    Ok(q.execute(&mut **tx).await?.rows_affected() as usize)
}

/// Decodes logs of the deployment's contracts (a log of another address is refused).
pub async fn decode_logs(
    ledger: &LedgerLink,
    logs: Vec<Log>,
) -> Result<Vec<IndexedEvent>, MarketError> {
    let sources = ledger.sources();
    let missing = |what: &'static str| ChainError::Unexpected {
        what,
        value: "none".into(),
    };
    let mut times = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        let source = sources
            .iter()
            .find(|(a, _)| *a == log.address())
            .map(|(_, s)| *s)
            .ok_or(ChainError::Unexpected {
                what: "log address",
                value: log.address().to_string(),
            })?;
        let event = LedgerEvent::decode(source, log.topics(), &log.data().data).map_err(|e| {
            ChainError::Unexpected {
                what: "contract event",
                value: e.to_string(),
            }
        })?;
        let block = log.block_number.ok_or_else(|| missing("log.blockNumber"))?;
        let at = match (log.block_timestamp, times.get(&block)) {
            (Some(t), _) => t,
            (None, Some(t)) => *t,
            (None, None) => {
                let t = ledger.block_time(block).await?;
                times.insert(block, t);
                t
            }
        };
        out.push(IndexedEvent {
            block,
            block_hash: log.block_hash.ok_or_else(|| missing("log.blockHash"))?,
            log_index: log.log_index.ok_or_else(|| missing("log.logIndex"))?,
            tx: log
                .transaction_hash
                .ok_or_else(|| missing("log.transactionHash"))?,
            at,
            source,
            topics: log.topics().to_vec(),
            data: log.data().data.to_vec(),
            event,
        });
    }
    Ok(out)
}

/// The move of escrow credits an event is, if it is one (pure).
pub fn escrow_move(event: &LedgerEvent) -> Option<(MoveKind, U256)> {
    Some(match event {
        LedgerEvent::ContractOpened { deposit, .. } => (MoveKind::Opened, *deposit),
        LedgerEvent::ToppedUp { amount, .. } => (MoveKind::ToppedUp, *amount),
        LedgerEvent::Charged {
            reference, amount, ..
        } if *reference == period_ref() => (MoveKind::Period, *amount),
        LedgerEvent::Charged {
            reference, amount, ..
        } => (MoveKind::Usage { batch: *reference }, *amount),
        LedgerEvent::PeriodRefunded { amount, .. } => (MoveKind::PeriodRefunded, *amount),
        LedgerEvent::OverchargeRefunded {
            reference, amount, ..
        } => (MoveKind::Overcharge { batch: *reference }, *amount),
        LedgerEvent::ContractClosed { refund, .. } => (MoveKind::Closed, *refund),
        _ => return None,
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub block_number: i64,
    pub log_index: i64,
    pub block_hash: Vec<u8>,
    pub tx_hash: Vec<u8>,
    pub at: i64,
    pub source: String,
    pub topics: Vec<u8>,
    pub data: Vec<u8>,
}

pub(crate) const EVENT_COLUMNS: &str =
    "block_number, log_index, block_hash, tx_hash, at, source, topics, data";

impl EventRow {
    /// The stored event, decoded again from its raw log (the typed columns are only for lookup).
    pub fn decode(self) -> Result<IndexedEvent, Corrupt> {
        let key = format!("{}/{}", self.block_number, self.log_index);
        let d = Decode {
            table: "ledger_events",
            key: &key,
        };
        let source = Source::parse(&self.source)
            .ok_or_else(|| Corrupt::new("ledger_events", "source", &key, &self.source))?;
        let hash = |column: &'static str, bytes: &[u8]| {
            B256::try_from(bytes)
                .map_err(|_| Corrupt::new("ledger_events", column, &key, "not 32 bytes"))
        };
        if !self.topics.len().is_multiple_of(32) {
            return Err(Corrupt::new(
                "ledger_events",
                "topics",
                &key,
                "not a multiple of 32 bytes",
            ));
        }
        let topics = self
            .topics
            .chunks(32)
            .map(|t| hash("topics", t))
            .collect::<Result<Vec<_>, _>>()?;
        let data = self.data;
        let event = LedgerEvent::decode(source, &topics, &data)
            .map_err(|e| Corrupt::new("ledger_events", "topics", &key, e))?;
        Ok(IndexedEvent {
            block: d.u64("block_number", self.block_number)?,
            block_hash: hash("block_hash", &self.block_hash)?,
            log_index: d.u64("log_index", self.log_index)?,
            tx: hash("tx_hash", &self.tx_hash)?,
            at: d.u64("at", self.at)?,
            source,
            event,
            topics,
            data,
        })
    }
}

/// A contract's escrow moves, in chain order.
pub async fn of_contract(
    store: &Store,
    contract: ContractId,
) -> Result<Vec<ChainMove>, MarketError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM ledger_events WHERE contract_id = $1 ORDER BY block_number, log_index"
    ))
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let e = r.decode()?;
        if let Some((kind, amount)) = escrow_move(&e.event) {
            out.push(ChainMove {
                at: e.at,
                tx: e.tx,
                kind,
                amount: credits("Marketplace event amount", amount)?,
            });
        }
    }
    Ok(out)
}

/// The contracts with events in blocks `from..` of the index.
pub async fn contracts_touched_since(
    store: &Store,
    from: u64,
) -> Result<Vec<ContractId>, MarketError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT contract_id FROM ledger_events WHERE block_number >= $1 AND contract_id IS NOT NULL",
    )
    .bind(from as i64)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|(c,)| {
            Decode {
                table: "ledger_events",
                key: &c,
            }
            .parse::<B256>("contract_id", &c)
            .map(ContractId)
            .map_err(MarketError::from)
        })
        .collect()
}

/// How many reorganisations the index has rolled back.
pub async fn reorg_count(store: &Store) -> Result<u64, MarketError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_reorgs")
        .fetch_one(store.pool())
        .await?;
    Ok(n.max(0) as u64)
}

/// The contracts the ledger opened with the account registered for `provider` (none when the
/// did is not registered): each with whether the chain closed it.
pub async fn provider_contracts(
    store: &Store,
    provider: &str,
) -> Result<Vec<(ContractId, bool)>, MarketError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT contract_id, MAX(CASE WHEN name = 'ContractClosed' THEN 1 ELSE 0 END) \
         FROM ledger_events WHERE contract_id IN ( \
           SELECT contract_id FROM ledger_events WHERE name = 'ContractOpened' AND counterparty IN ( \
             SELECT account FROM ledger_events WHERE name = 'ParticipantRegistered' AND content = $1)) \
         GROUP BY contract_id",
    )
    .bind(provider)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|(c, closed)| {
            let id = Decode {
                table: "ledger_events",
                key: &c,
            }
            .parse::<B256>("contract_id", &c)?;
            Ok((ContractId(id), closed == 1))
        })
        .collect()
}
