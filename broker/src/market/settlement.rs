//! Batch settlement. Pending usage records are gathered into a batch (bounded in records and in
//! contracts, so the transaction stays well under a block's gas), whose id is the hash of its
//! record ids: building the same batch again gives the same id, and the chain settles an id once.
//! The batch and its records' assignment are saved before the transaction is sent; a broker that
//! stops in between finds the batch `built`, asks the chain, and sends it again only if the chain
//! has not settled it. The contract applies a batch whole or not at all.

use std::collections::BTreeMap;

use alloy::primitives::{keccak256, B256, U256};
use api::events::{EventBody, UsageSettled};
use api::usage::UsageProof;
use api::{BatchId, ContractId, Credits, Hash32, Principal, TxHash, UsageRecordId};
use contracts::merkle::MerkleTree;

use super::records;
use super::{Market, MarketError};
use crate::store::{Corrupt, Decode, Store};

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
    pub contract: ContractId,
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
    pub charges: Vec<(ContractId, u128)>,
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
    let mut charges: BTreeMap<ContractId, u128> = BTreeMap::new();
    for r in &records {
        *charges.entry(r.contract).or_default() += r.amount;
    }
    Some(BatchPlan {
        id: keccak256(&ids),
        root: tree.root(),
        record_ids: records.into_iter().map(|r| r.id).collect(),
        charges: charges.into_iter().filter(|(_, a)| *a > 0).collect(),
    })
}

/// The Merkle proof of a record in its batch: (batch, root, the record's hash, the path).
pub async fn proof(
    store: &Store,
    record_id: &UsageRecordId,
) -> Result<Option<(BatchId, Hash32, Hash32, Vec<Hash32>)>, MarketError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT batch_id FROM usage_records WHERE id = $1")
            .bind(record_id.to_string())
            .fetch_optional(store.pool())
            .await?;
    let Some((Some(batch),)) = row else {
        return Ok(None);
    };
    let d = Decode {
        table: "usage_records",
        key: record_id.as_str(),
    };
    let batch: BatchId = d.parse("batch_id", &batch)?;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, record_hash FROM usage_records WHERE batch_id = $1 ORDER BY id")
            .bind(batch.to_string())
            .fetch_all(store.pool())
            .await?;
    let hashes = rows
        .iter()
        .map(|(id, h)| {
            Decode {
                table: "usage_records",
                key: id,
            }
            .parse::<B256>("record_hash", h)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let index = rows
        .iter()
        .position(|(id, _)| id == record_id.as_str())
        .ok_or_else(|| Corrupt::new("usage_records", "batch_id", record_id, "not in its batch"))?;
    let tree = MerkleTree::from_record_hashes(&hashes)
        .map_err(|e| Corrupt::new("settlement_batches", "records", batch, e))?;
    let path = tree
        .proof(index)
        .map_err(|e| Corrupt::new("settlement_batches", "records", batch, e))?;
    Ok(Some((
        batch,
        Hash32(tree.root()),
        Hash32(hashes[index]),
        path.into_iter().map(Hash32).collect(),
    )))
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: String,
    contract_id: String,
    record_hash: String,
    amount: String,
}

impl PendingRow {
    fn decode(&self) -> Result<(ContractId, B256, Credits), Corrupt> {
        let d = Decode {
            table: "usage_records",
            key: &self.id,
        };
        Ok((
            d.parse("contract_id", &self.contract_id)?,
            d.parse("record_hash", &self.record_hash)?,
            d.parse("amount", &self.amount)?,
        ))
    }
}

/// Builds and sends at most one batch (a `built` one left from before first). Returns how many
/// records it settled.
pub async fn settle_once(market: &Market, now: u64) -> Result<usize, MarketError> {
    let (store, ledger, limits) = (&market.store, &market.ledger, market.policy.batches);
    if let Some(n) = resume_built(market, now).await? {
        return Ok(n);
    }
    let rows: Vec<PendingRow> = sqlx::query_as(
        "SELECT id, contract_id, record_hash, amount FROM usage_records \
         WHERE batch_id IS NULL AND disputed_at IS NULL AND received_at <= $2 ORDER BY received_at, id LIMIT $1",
    )
    .bind(i64::from(limits.max_records))
    .bind(now.saturating_sub(limits.dispute_window_secs) as i64)
    .fetch_all(store.pool())
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        match row.decode() {
            Ok((contract, hash, amount)) => pending.push(Unsettled {
                id: row.id.clone(),
                contract,
                hash,
                amount: amount.base_units(),
            }),
            // A record that cannot be read is never charged; it is named and waits.
            Err(e) => tracing::error!(error = %e, "usage record left out of settlement"),
        }
    }
    // Bounded in contracts; a contract whose escrow cannot pay waits (and is reported).
    let mut totals: BTreeMap<ContractId, u128> = BTreeMap::new();
    for u in &pending {
        *totals.entry(u.contract).or_default() += u.amount;
    }
    let mut allowed = std::collections::BTreeSet::new();
    for (contract, total) in totals {
        if allowed.len() >= limits.max_contracts {
            break;
        }
        if total > 0 {
            let escrow = ledger.agreement(contract).await?.escrow.base_units();
            if escrow < total {
                tracing::warn!(%contract, escrow, owed = total, "escrow short; its usage waits for a top-up");
                continue;
            }
        }
        allowed.insert(contract);
    }
    pending.retain(|u| allowed.contains(&u.contract));
    let Some(plan) = plan(pending) else {
        return Ok(0);
    };
    // The records themselves, in leaf order, go to the content store.
    let mut bodies: Vec<(String, String)> = Vec::with_capacity(plan.record_ids.len());
    for chunk in plan.record_ids.chunks(500) {
        let list = sql_list(chunk);
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT id, body FROM usage_records WHERE id IN ({list}) ORDER BY id"
        ))
        .fetch_all(store.pool())
        .await?;
        bodies.extend(rows);
    }
    let records_json = format!(
        "[{}]",
        bodies
            .iter()
            .map(|(_, b)| b.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let cid = market
        .content
        .put(records_json.as_bytes())
        .await?
        .to_string();
    let total: u128 = plan.charges.iter().map(|(_, a)| a).sum();
    let charges: Vec<(ContractId, Credits)> = plan
        .charges
        .iter()
        .map(|(c, a)| (*c, Credits::from_base_units(*a)))
        .collect();
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
    .bind(serde_json::to_string(&charges).expect("charges serialise"))
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
    Ok(resume_built(market, now).await?.unwrap_or(0))
}

#[derive(sqlx::FromRow)]
struct BuiltRow {
    id: String,
    root: String,
    records_cid: String,
    record_count: i64,
    charges: String,
}

/// Sends (or confirms) the oldest `built` batch; `None` when there is none.
async fn resume_built(market: &Market, now: u64) -> Result<Option<usize>, MarketError> {
    let (store, ledger) = (&market.store, &market.ledger);
    let row: Option<BuiltRow> = sqlx::query_as(
        "SELECT id, root, records_cid, record_count, charges FROM settlement_batches WHERE state = 'built' ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let d = Decode {
        table: "settlement_batches",
        key: &row.id,
    };
    let batch: BatchId = d.parse("id", &row.id)?;
    let root: B256 = d.parse("root", &row.root)?;
    let count = d.u32("record_count", row.record_count)?;
    // A corrupt charges column must never look like a batch with nothing to pay.
    let charges: Vec<(ContractId, Credits)> = d.json("charges", &row.charges)?;
    let mut tx_hash = None;
    if !ledger.batch_settled(batch.0).await? {
        let on_chain: Vec<(B256, U256)> = charges
            .iter()
            .map(|(c, a)| (c.0, U256::from(a.base_units())))
            .collect();
        if !on_chain.is_empty() {
            let receipt = ledger
                .settle(batch.0, root, &row.records_cid, count, &on_chain)
                .await?;
            tx_hash = Some(TxHash(receipt.transaction_hash));
        }
    }
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE settlement_batches SET state = 'settled', tx_hash = $1, settled_at = $2 WHERE id = $3 AND state = 'built'")
        .bind(tx_hash.map(|h| h.to_string()))
        .bind(now as i64)
        .bind(row.id.clone())
        .execute(&mut *tx)
        .await?;
    let mut events = Vec::new();
    for (contract, amount) in &charges {
        if let Some(c) = records::get_contract(store, *contract).await? {
            events.push(c.parties_event(EventBody::UsageSettled(UsageSettled {
                contract: *contract,
                batch,
                amount: *amount,
                tx_hash,
            })));
        }
    }
    market.commit(tx, events, now).await?;
    Ok(Some(count as usize))
}

impl Market {
    /// The Merkle proof that a record is part of its settled batch, and the chain's own check
    /// (for the record's contract's parties, auditors and operators).
    pub async fn usage_proof(
        &self,
        who: &Principal,
        id: &UsageRecordId,
    ) -> Result<UsageProof, MarketError> {
        let parties = super::usage::parties_of(&self.store, id).await?;
        let Some((contract, consumer, provider)) =
            parties.filter(|(_, c, p)| who.role.oversees() || who.did == *c || who.did == *p)
        else {
            return Err(MarketError::NotFound(format!(
                "no usage record {id} of yours"
            )));
        };
        let _ = (consumer, provider);
        let Some((batch, root, hash, path)) = proof(&self.store, id).await? else {
            return Err(MarketError::Conflict(format!(
                "record {id} is not in a settled batch yet; try again after the next batch"
            )));
        };
        let verified_on_chain = self
            .ledger
            .verify_record(batch.0, hash.0, path.iter().map(|h| h.0).collect())
            .await?;
        Ok(UsageProof {
            record: id.clone(),
            contract,
            batch,
            root,
            record_hash: hash,
            proof: path,
            verified_on_chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, contract: u8, amount: u128) -> Unsettled {
        Unsettled {
            id: id.into(),
            contract: ContractId(B256::repeat_byte(contract)),
            hash: keccak256(id.as_bytes()),
            amount,
        }
    }

    #[test]
    fn a_batch_is_the_same_whatever_order_its_records_come_in() {
        let a = plan(vec![r("1", 1, 5), r("2", 2, 0), r("3", 1, 7)]).unwrap();
        let b = plan(vec![r("3", 1, 7), r("1", 1, 5), r("2", 2, 0)]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.charges, vec![(ContractId(B256::repeat_byte(1)), 12)]);
        assert_eq!(a.record_ids, vec!["1", "2", "3"]);
        let c = plan(vec![r("1", 1, 5), r("3", 1, 7)]).unwrap();
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
