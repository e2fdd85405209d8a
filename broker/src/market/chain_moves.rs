//! The charges table: every movement of credits the Marketplace logged, fed from the chain's
//! events by a follower that any broker process may run (rows are keyed by their place on chain,
//! so two followers never write one twice). A follower that finds the last block it read
//! replaced (the chain went back) drops the rows of the last `REWIND` blocks and reads them
//! again. Statements read the table after a catch-up, so they are never older than the chain.

use alloy::primitives::B256;
use api::{ContractId, Credits};

use super::{Market, MarketError};
use crate::ledger_link::{ChainMove, MoveKind};
use crate::store::{Corrupt, Decode, Store};

const CURSOR: &str = "marketplace";
/// Blocks read again after the chain went back.
const REWIND: u64 = 64;
/// Blocks per log query.
const RANGE: u64 = 2_000;

/// Reads the Marketplace's events up to the chain's head into `chain_moves`; returns how many
/// rows it added.
pub async fn follow(market: &Market) -> Result<usize, MarketError> {
    let (store, ledger) = (&market.store, &market.ledger);
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT next_block, last_hash FROM chain_cursor WHERE name = $1")
            .bind(CURSOR)
            .fetch_optional(store.pool())
            .await?;
    let d = Decode {
        table: "chain_cursor",
        key: CURSOR,
    };
    let first = ledger.deployment.deployment_block;
    let mut next = match &row {
        Some((n, _)) => d.u64("next_block", *n)?,
        None => first,
    };
    if let Some((_, Some(hash))) = &row {
        let last: B256 = d.parse("last_hash", hash)?;
        if next > first && ledger.block_hash(next - 1).await? != Some(last) {
            next = next.saturating_sub(REWIND).max(first);
            tracing::warn!(from = next, "the chain went back; its moves are read again");
            sqlx::query("DELETE FROM chain_moves WHERE block_number >= $1")
                .bind(next as i64)
                .execute(store.pool())
                .await?;
        }
    }
    let head = ledger.client.block_number().await?;
    let mut added = 0;
    while next <= head {
        let to = (next + RANGE - 1).min(head);
        let moves = ledger.moves_between(next, to).await?;
        let mut tx = store.begin().await?;
        for m in &moves {
            added += sqlx::query(
                "INSERT INTO chain_moves (block_number, log_index, block_hash, tx_hash, contract_id, kind, batch_id, amount, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (block_number, log_index) DO NOTHING",
            )
            .bind(m.block as i64)
            .bind(m.log_index as i64)
            .bind(m.block_hash.to_string())
            .bind(m.mv.tx.to_string())
            .bind(m.contract.to_string())
            .bind(m.mv.kind.as_str())
            .bind(m.mv.kind.batch().map(|b| b.to_string()))
            .bind(m.mv.amount.to_string())
            .bind(m.mv.at as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        let last = ledger.block_hash(to).await?;
        sqlx::query(
            "INSERT INTO chain_cursor (name, next_block, last_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET next_block = $2, last_hash = $3",
        )
        .bind(CURSOR)
        .bind((to + 1) as i64)
        .bind(last.map(|h| h.to_string()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        next = to + 1;
    }
    Ok(added)
}

#[derive(sqlx::FromRow)]
struct MoveRow {
    block_number: i64,
    log_index: i64,
    tx_hash: String,
    kind: String,
    batch_id: Option<String>,
    amount: String,
    at: i64,
}

/// A contract's moves, in chain order.
pub async fn of_contract(
    store: &Store,
    contract: ContractId,
) -> Result<Vec<ChainMove>, MarketError> {
    let rows: Vec<MoveRow> = sqlx::query_as(
        "SELECT block_number, log_index, tx_hash, kind, batch_id, amount, at FROM chain_moves \
         WHERE contract_id = $1 ORDER BY block_number, log_index",
    )
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            let key = format!("{}/{}", r.block_number, r.log_index);
            let d = Decode {
                table: "chain_moves",
                key: &key,
            };
            let batch: Option<B256> = d.opt_parse("batch_id", r.batch_id.as_deref())?;
            let kind = MoveKind::parse(&r.kind, batch)
                .ok_or_else(|| Corrupt::new("chain_moves", "kind", &key, &r.kind))?;
            Ok(ChainMove {
                at: d.u64("at", r.at)?,
                tx: d.parse("tx_hash", &r.tx_hash)?,
                kind,
                amount: d.parse::<Credits>("amount", &r.amount)?,
            })
        })
        .collect()
}
