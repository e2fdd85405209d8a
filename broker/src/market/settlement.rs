//! Batch settlement. Pending usage records are gathered into a batch (bounded in records and in
//! contracts, so the transaction stays well under a block's gas), whose id is the hash of its
//! record ids: building the same batch again gives the same id, and the chain settles an id once.
//! The batch and its records' assignment are saved before the transaction is sent; a broker that
//! stops in between finds the batch `built`, asks the chain, and sends it again only if the chain
//! has not settled it. The contract applies a batch whole or not at all.

use std::collections::BTreeMap;

use alloy::primitives::{keccak256, B256, U256};
use content::ContentStore;
use contracts::merkle::MerkleTree;
use serde_json::json;

use super::records::{flush, Pending};
use super::MarketError;
use crate::events::outbox::{Audience, Topic};
use crate::ledger_link::LedgerLink;
use crate::store::Store;

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_records: u32,
    pub max_contracts: usize,
    /// Records wait this long after they arrive, so the consumer can dispute them first.
    pub dispute_window_secs: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_records: 20_000,
            max_contracts: 200,
            dispute_window_secs: 300,
        }
    }
}

/// A pending record as the batcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    pub id: String,
    pub contract: String,
    pub hash: B256,
    pub amount: u128,
}

/// A batch ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    pub id: B256,
    pub root: B256,
    /// Record ids in leaf order.
    pub record_ids: Vec<String>,
    /// Contracts with a non-zero charge, in order, with their amounts.
    pub charges: Vec<(String, u128)>,
}

/// Record ids as an SQL list literal (ids are 1-64 of `[A-Za-z0-9._-]`, checked on the way in;
/// quotes are doubled all the same).
fn sql_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{}'", id.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Plans a batch from records (pure): leaves in record-id order, one charge per contract.
pub fn plan(mut records: Vec<Unsettled>) -> Option<BatchPlan> {
    if records.is_empty() {
        return None;
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ids = Vec::new();
    for r in &records {
        ids.extend_from_slice(r.id.as_bytes());
        ids.push(b'\n');
    }
    let hashes: Vec<B256> = records.iter().map(|r| r.hash).collect();
    let tree = MerkleTree::from_record_hashes(&hashes).ok()?;
    let mut charges: BTreeMap<String, u128> = BTreeMap::new();
    for r in &records {
        *charges.entry(r.contract.clone()).or_default() += r.amount;
    }
    Some(BatchPlan {
        id: keccak256(&ids),
        root: tree.root(),
        record_ids: records.into_iter().map(|r| r.id).collect(),
        charges: charges.into_iter().filter(|(_, a)| *a > 0).collect(),
    })
}

/// The Merkle proof of a record in its batch: the batch's record hashes in leaf order.
pub async fn proof(
    store: &Store,
    record_id: &str,
) -> Result<Option<(B256, B256, B256, Vec<B256>)>, MarketError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT batch_id FROM usage_records WHERE id = $1")
            .bind(record_id.to_string())
            .fetch_optional(store.pool())
            .await?;
    let Some((Some(batch),)) = row else {
        return Ok(None);
    };
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, record_hash FROM usage_records WHERE batch_id = $1 ORDER BY id")
            .bind(batch.clone())
            .fetch_all(store.pool())
            .await?;
    let hashes: Vec<B256> = rows.iter().filter_map(|(_, h)| h.parse().ok()).collect();
    let Some(index) = rows.iter().position(|(id, _)| id == record_id) else {
        return Ok(None);
    };
    let Ok(tree) = MerkleTree::from_record_hashes(&hashes) else {
        return Ok(None);
    };
    let Ok(path) = tree.proof(index) else {
        return Ok(None);
    };
    let batch: B256 = batch
        .parse()
        .map_err(|_| MarketError::NoContract(batch.clone()))?;
    Ok(Some((batch, tree.root(), hashes[index], path)))
}

/// Builds and sends at most one batch (a `built` one left from before first). Returns how many
/// records it settled.
pub async fn settle_once(
    store: &Store,
    ledger: &LedgerLink,
    content: &dyn ContentStore,
    limits: BatchLimits,
    now: u64,
) -> Result<usize, MarketError> {
    if let Some(n) = resume_built(store, ledger, now).await? {
        return Ok(n);
    }
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, contract_id, record_hash, amount FROM usage_records \
         WHERE batch_id IS NULL AND disputed_at IS NULL AND received_at <= $2 ORDER BY received_at, id LIMIT $1",
    )
    .bind(i64::from(limits.max_records))
    .bind(now.saturating_sub(limits.dispute_window_secs) as i64)
    .fetch_all(store.pool())
    .await?;
    // Bounded in contracts; a contract whose escrow cannot pay waits (and is reported).
    let mut totals: BTreeMap<String, u128> = BTreeMap::new();
    for (_, contract, _, amount) in &rows {
        *totals.entry(contract.clone()).or_default() += amount.parse::<u128>().unwrap_or(0);
    }
    let mut allowed = std::collections::BTreeSet::new();
    for (contract, total) in totals {
        if allowed.len() >= limits.max_contracts {
            break;
        }
        if total > 0 {
            let id: B256 = contract
                .parse()
                .map_err(|_| MarketError::NoContract(contract.clone()))?;
            let escrow: u128 = ledger.agreement(id).await?.escrow.parse().unwrap_or(0);
            if escrow < total {
                tracing::warn!(%contract, escrow, owed = total, "escrow short; its usage waits for a top-up");
                continue;
            }
        }
        allowed.insert(contract);
    }
    let pending: Vec<Unsettled> = rows
        .into_iter()
        .filter(|(_, c, _, _)| allowed.contains(c))
        .filter_map(|(id, contract, hash, amount)| {
            Some(Unsettled {
                id,
                contract,
                hash: hash.parse().ok()?,
                amount: amount.parse().ok()?,
            })
        })
        .collect();
    let Some(plan) = plan(pending) else {
        return Ok(0);
    };
    // The records themselves, in leaf order, go to the content store.
    let bodies: Vec<(String, String)> = {
        let mut out = Vec::with_capacity(plan.record_ids.len());
        for chunk in plan.record_ids.chunks(500) {
            let list = sql_list(chunk);
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT id, body FROM usage_records WHERE id IN ({list}) ORDER BY id"
            ))
            .fetch_all(store.pool())
            .await?;
            out.extend(rows);
        }
        out
    };
    let records_json = format!(
        "[{}]",
        bodies
            .iter()
            .map(|(_, b)| b.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let cid = content.put(records_json.as_bytes()).await?.to_string();
    let total: u128 = plan.charges.iter().map(|(_, a)| a).sum();
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO settlement_batches (id, root, records_cid, record_count, total, charges, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'built', $7)",
    )
    .bind(plan.id.to_string())
    .bind(plan.root.to_string())
    .bind(cid.clone())
    .bind(plan.record_ids.len() as i64)
    .bind(total.to_string())
    .bind(json!(plan.charges.iter().map(|(c, a)| (c, a.to_string())).collect::<Vec<_>>()).to_string())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    for chunk in plan.record_ids.chunks(500) {
        let list = sql_list(chunk);
        sqlx::query(&format!(
            "UPDATE usage_records SET batch_id = $1 WHERE batch_id IS NULL AND id IN ({list})"
        ))
        .bind(plan.id.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(resume_built(store, ledger, now).await?.unwrap_or(0))
}

/// Sends (or confirms) the oldest `built` batch; `None` when there is none.
async fn resume_built(
    store: &Store,
    ledger: &LedgerLink,
    now: u64,
) -> Result<Option<usize>, MarketError> {
    let row: Option<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT id, root, records_cid, record_count, charges FROM settlement_batches WHERE state = 'built' ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    let Some((id, root, cid, count, charges)) = row else {
        return Ok(None);
    };
    let batch: B256 = id
        .parse()
        .map_err(|_| MarketError::NoContract(id.clone()))?;
    let charges: Vec<(String, String)> = serde_json::from_str(&charges).unwrap_or_default();
    let mut tx_hash = None;
    if !ledger.batch_settled(batch).await? {
        let on_chain: Vec<(B256, U256)> = charges
            .iter()
            .filter_map(|(c, a)| Some((c.parse().ok()?, a.parse().ok()?)))
            .collect();
        let receipt = if on_chain.is_empty() {
            None
        } else {
            let root: B256 = root
                .parse()
                .map_err(|_| MarketError::NoContract(root.clone()))?;
            Some(
                ledger
                    .settle(batch, root, &cid, count as u32, &on_chain)
                    .await?,
            )
        };
        tx_hash = receipt.map(|r| r.transaction_hash.to_string());
    }
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE settlement_batches SET state = 'settled', tx_hash = $1, settled_at = $2 WHERE id = $3 AND state = 'built'")
        .bind(tx_hash.clone())
        .bind(now as i64)
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
    let mut events = Vec::new();
    for (contract, amount) in &charges {
        let parties: Option<(String, String)> =
            sqlx::query_as("SELECT consumer, provider FROM contracts WHERE id = $1")
                .bind(contract.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((consumer, provider)) = parties {
            events.push(Pending {
                topic: Topic::UsageSettled,
                subject: contract.clone(),
                audience: Audience::parties(&[&consumer, &provider]),
                payload: json!({"contract": contract, "batch": id, "amount": amount, "txHash": tx_hash}),
            });
        }
    }
    flush(&mut tx, store, events, now).await?;
    tx.commit().await?;
    Ok(Some(count as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, contract: &str, amount: u128) -> Unsettled {
        Unsettled {
            id: id.into(),
            contract: contract.into(),
            hash: keccak256(id.as_bytes()),
            amount,
        }
    }

    #[test]
    fn a_batch_is_the_same_whatever_order_its_records_come_in() {
        let a = plan(vec![r("1", "c1", 5), r("2", "c2", 0), r("3", "c1", 7)]).unwrap();
        let b = plan(vec![r("3", "c1", 7), r("1", "c1", 5), r("2", "c2", 0)]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.charges, vec![("c1".to_string(), 12)]);
        assert_eq!(a.record_ids, vec!["1", "2", "3"]);
        let c = plan(vec![r("1", "c1", 5), r("3", "c1", 7)]).unwrap();
        assert_ne!(a.id, c.id);
        assert!(plan(vec![]).is_none());
        // Every record is provably in the batch.
        let hashes: Vec<B256> = ["1", "2", "3"]
            .iter()
            .map(|i| keccak256(i.as_bytes()))
            .collect();
        let tree = MerkleTree::from_record_hashes(&hashes).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert!(contracts::merkle::verify(
                a.root,
                *h,
                &tree.proof(i).unwrap()
            ));
        }
    }
}
