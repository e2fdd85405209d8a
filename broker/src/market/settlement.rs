//! Batch settlement. Pending usage records are gathered per contract (each contract up to what
//! the chain would charge it: its escrow and what the consumer's signed cap leaves in the running
//! window), into a Merkle sum tree whose leaves commit to the contract, the record and the amount
//! (`contracts::merkle::BatchTree`). The batch, its leaves and its records' assignment are saved
//! before the transaction is sent (with a checked row count, so two brokers on one database
//! never put a record in two batches); a broker that stops in between finds the batch `built`,
//! asks the chain, and sends it only if the chain has not settled it. A contract the chain
//! cannot charge is skipped on chain (`ChargeSkipped`) and its records go back to the queue;
//! it never blocks the others. Each charge stays locked for the contract's challenge window and
//! is then released to the provider (`release_due`).

use alloy::primitives::{keccak256, B256, U256};
use api::events::{EventBody, UsageSettled};
use api::usage::{BatchDocument, BatchEntry, ProofStep, UsageProof};
use api::{BatchId, ChainStatus, ContractId, Credits, Hash32, Principal, TxHash, UsageRecordId};
use contracts::merkle::{BatchTree, Step};

use super::records;
use super::{Market, MarketError};
use crate::store::{Corrupt, Decode, Store};
use catalog::store::Backend;

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

/// A contract's leaves in a batch, in leaf order: (record id, record hash, amount).
type Leaves = Vec<(ContractId, Vec<(String, Hash32, Credits)>)>;

/// A batch ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    pub id: B256,
    pub root: B256,
    /// Contracts in order, each with its records in leaf order.
    pub leaves: Leaves,
}

impl BatchPlan {
    pub fn record_ids(&self) -> impl Iterator<Item = &str> {
        self.leaves
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|(id, _, _)| id.as_str()))
    }

    pub fn record_count(&self) -> usize {
        self.leaves.iter().map(|(_, rs)| rs.len()).sum()
    }

    /// Contracts with a non-zero charge, in order, with their amounts (the sums of their leaves).
    pub fn charges(&self) -> Vec<(ContractId, Credits)> {
        self.leaves
            .iter()
            .map(|(c, rs)| (*c, rs.iter().map(|(_, _, a)| *a).sum::<Credits>()))
            .filter(|(_, a)| !a.is_zero())
            .collect()
    }
}

fn tree_of(leaves: &Leaves) -> Result<BatchTree, contracts::merkle::MerkleError> {
    let groups: Vec<(B256, Vec<(B256, U256)>)> = leaves
        .iter()
        .map(|(c, rs)| {
            let rs = rs
                .iter()
                .map(|(_, h, a)| (h.0, U256::from(a.base_units())))
                .collect();
            (c.0, rs)
        })
        .collect();
    BatchTree::new(&groups)
}

/// Record ids as an SQL list literal (ids are 1-64 of `[A-Za-z0-9._-]`, checked on the way in;
/// quotes are doubled all the same).
fn sql_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.map(|id| format!("'{}'", id.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Plans a batch from records (pure): contracts in id order, each contract's records in id
/// order under it, one charge per contract. `salt` makes each batch's id new, so records a
/// skipped contract gave back settle again under another id.
pub fn plan(mut records: Vec<Unsettled>, salt: B256) -> Option<BatchPlan> {
    if records.is_empty() {
        return None;
    }
    records.sort_by(|a, b| (a.contract, &a.id).cmp(&(b.contract, &b.id)));
    let mut seed = salt.to_vec();
    let mut leaves: Leaves = Vec::new();
    for r in records {
        seed.extend_from_slice(r.id.as_bytes());
        seed.push(b'\n');
        let leaf = (r.id, Hash32(r.hash), Credits::from_base_units(r.amount));
        match leaves.last_mut() {
            Some((c, rs)) if *c == r.contract => rs.push(leaf),
            _ => leaves.push((r.contract, vec![leaf])),
        }
    }
    let tree = tree_of(&leaves).ok()?;
    Some(BatchPlan {
        id: keccak256(&seed),
        root: tree.root(),
        leaves,
    })
}

/// A record's leaf and paths in its batch.
pub struct RecordProof {
    pub batch: BatchId,
    pub root: B256,
    pub contract: ContractId,
    pub record_hash: B256,
    pub amount: Credits,
    pub record_path: Vec<Step>,
    pub contract_path: Vec<Step>,
    pub contract_sum: U256,
}

/// The Merkle proof of a record in the batch that charged it.
pub async fn proof(
    store: &Store,
    record_id: &UsageRecordId,
) -> Result<Option<RecordProof>, MarketError> {
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
    let (leaves,): (Option<String>,) =
        sqlx::query_as("SELECT leaves FROM settlement_batches WHERE id = $1")
            .bind(batch.to_string())
            .fetch_one(store.pool())
            .await?;
    let corrupt = |e: String| Corrupt::new("settlement_batches", "leaves", batch, e);
    let leaves: Leaves = Decode {
        table: "settlement_batches",
        key: &batch.to_string(),
    }
    .json(
        "leaves",
        leaves
            .as_deref()
            .ok_or_else(|| corrupt("a batch of an earlier settlement version".into()))?,
    )?;
    let (ci, ri) = leaves
        .iter()
        .enumerate()
        .find_map(|(ci, (_, rs))| {
            rs.iter()
                .position(|(id, _, _)| id == record_id.as_str())
                .map(|ri| (ci, ri))
        })
        .ok_or_else(|| corrupt(format!("record {record_id} is not among its leaves")))?;
    let tree = tree_of(&leaves).map_err(|e| corrupt(e.to_string()))?;
    let p = tree.proof(ci, ri).map_err(|e| corrupt(e.to_string()))?;
    let (contract, rs) = &leaves[ci];
    Ok(Some(RecordProof {
        batch,
        root: tree.root(),
        contract: *contract,
        record_hash: rs[ri].1 .0,
        amount: rs[ri].2,
        record_path: p.record_path,
        contract_path: p.contract_path,
        contract_sum: p.contract_sum,
    }))
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: String,
    record_hash: String,
    amount: String,
}

/// Contracts with records waiting (oldest waiting first), and not closed.
async fn waiting_contracts(
    store: &Store,
    cutoff: u64,
    limit: usize,
) -> Result<Vec<ContractId>, MarketError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT u.contract_id FROM usage_records u \
         WHERE u.batch_id IS NULL AND u.disputed_at IS NULL AND u.received_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM contracts c WHERE c.id = u.contract_id AND c.state = 'closed') \
         GROUP BY u.contract_id ORDER BY MIN(u.received_at), u.contract_id LIMIT $2",
    )
    .bind(cutoff as i64)
    .bind(limit as i64)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|(c,)| {
            Decode {
                table: "usage_records",
                key: &c,
            }
            .parse("contract_id", &c)
            .map_err(Into::into)
        })
        .collect()
}

/// Up to `limit` of a contract's waiting records, oldest first, as many as `allowance` pays.
async fn payable_records(
    store: &Store,
    contract: ContractId,
    cutoff: u64,
    limit: usize,
    allowance: Credits,
) -> Result<Vec<Unsettled>, MarketError> {
    let rows: Vec<PendingRow> = sqlx::query_as(
        "SELECT id, record_hash, amount FROM usage_records \
         WHERE contract_id = $1 AND batch_id IS NULL AND disputed_at IS NULL AND received_at <= $2 \
         ORDER BY received_at, id LIMIT $3",
    )
    .bind(contract.to_string())
    .bind(cutoff as i64)
    .bind(limit as i64)
    .fetch_all(store.pool())
    .await?;
    let mut left = allowance.base_units();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let d = Decode {
            table: "usage_records",
            key: &row.id,
        };
        let decoded = d
            .parse::<B256>("record_hash", &row.record_hash)
            .and_then(|h| Ok((h, d.parse::<Credits>("amount", &row.amount)?)));
        let (hash, amount) = match decoded {
            Ok(v) => v,
            // A record that cannot be read is never charged; it is named and waits.
            Err(e) => {
                tracing::error!(error = %e, "usage record left out of settlement");
                continue;
            }
        };
        let amount = amount.base_units();
        if amount > left {
            tracing::warn!(%contract, owed = amount, left, "escrow or signed cap reached; the contract's later usage waits");
            break;
        }
        left -= amount;
        out.push(Unsettled {
            id: row.id.clone(),
            contract,
            hash,
            amount,
        });
    }
    Ok(out)
}

/// Builds and sends at most one batch (a `built` one left from before first). Returns how many
/// records it settled.
pub async fn settle_once(market: &Market, now: u64) -> Result<usize, MarketError> {
    if let Some(n) = resume_built(market, now).await? {
        return Ok(n);
    }
    let limits = market.policy.batches;
    let cutoff = now.saturating_sub(limits.dispute_window_secs);
    let contracts = waiting_contracts(&market.store, cutoff, limits.max_contracts).await?;
    build_and_send(market, &contracts, cutoff, now).await
}

/// Settles what a contract owes now (every undisputed record, the dispute window's too), up to
/// its escrow: a contract about to close pays its usage first.
pub async fn settle_contract(
    market: &Market,
    contract: ContractId,
    now: u64,
) -> Result<usize, MarketError> {
    let mut total = 0;
    // A batch left `built` by a crash goes first; then this contract's records.
    while let Some(n) = resume_built(market, now).await? {
        total += n;
    }
    Ok(total + build_and_send(market, &[contract], now, now).await?)
}

async fn build_and_send(
    market: &Market,
    contracts: &[ContractId],
    cutoff: u64,
    now: u64,
) -> Result<usize, MarketError> {
    let (store, ledger, limits) = (&market.store, &market.ledger, market.policy.batches);
    if contracts.is_empty() {
        return Ok(0);
    }
    let chain_time = ledger.chain_time().await?;
    // What the chain would charge each contract now, read concurrently.
    let agreements =
        futures::future::try_join_all(contracts.iter().map(|c| ledger.agreement(*c))).await?;
    let mut pending = Vec::new();
    for (contract, a) in contracts.iter().zip(agreements) {
        let room = (limits.max_records as usize).saturating_sub(pending.len());
        if room == 0 {
            break;
        }
        if matches!(a.status, ChainStatus::None | ChainStatus::Closed) {
            // Closed on chain (the driver catches up) or never opened: nothing can be charged.
            tracing::debug!(%contract, status = ?a.status, "usage of a contract the chain cannot charge waits");
            continue;
        }
        let allowance = a.chargeable(chain_time);
        pending.extend(payable_records(store, *contract, cutoff, room, allowance).await?);
    }
    let Some(plan) = plan(pending, B256::from(rand::random::<[u8; 32]>())) else {
        return Ok(0);
    };
    // The records themselves, in leaf order, go to the content store.
    let mut bodies: std::collections::HashMap<String, String> =
        std::collections::HashMap::with_capacity(plan.record_count());
    let ids: Vec<&str> = plan.record_ids().collect();
    for chunk in ids.chunks(500) {
        let list = sql_list(chunk.iter().copied());
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT id, body FROM usage_records WHERE id IN ({list})"
        ))
        .fetch_all(store.pool())
        .await?;
        bodies.extend(rows);
    }
    // The document keeps each record as its provider signed it, with its leaf's amount, so
    // anyone can rebuild the root and re-price every record.
    let mut entries = Vec::with_capacity(plan.record_count());
    for (_, rs) in &plan.leaves {
        for (id, _, amount) in rs {
            let body = bodies
                .get(id.as_str())
                .ok_or_else(|| Corrupt::new("usage_records", "body", id, "missing"))?;
            let record = serde_json::value::RawValue::from_string(body.clone())
                .map_err(|e| Corrupt::new("usage_records", "body", id, e))?;
            entries.push(BatchEntry {
                amount: *amount,
                record,
            });
        }
    }
    let document = BatchDocument::new(BatchId(plan.id), entries);
    let cid = market.content.put(&document.to_bytes()).await?.to_string();
    let charges = plan.charges();
    let total: Credits = charges.iter().map(|(_, a)| *a).sum();
    let mut tx = store.begin().await?;
    if store.backend() == Backend::Postgres {
        // Brokers sharing the database build one batch at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(727274)")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO settlement_batches (id, root, records_cid, record_count, total, charges, leaves, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'built', $8)",
    )
    .bind(plan.id.to_string())
    .bind(plan.root.to_string())
    .bind(cid.clone())
    .bind(plan.record_count() as i64)
    .bind(total.to_string())
    .bind(serde_json::to_string(&charges).expect("charges serialise"))
    .bind(serde_json::to_string(&plan.leaves).expect("leaves serialise"))
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    for chunk in ids.chunks(500) {
        let list = sql_list(chunk.iter().copied());
        let assigned = sqlx::query(&format!(
            "UPDATE usage_records SET batch_id = $1 WHERE batch_id IS NULL AND disputed_at IS NULL AND id IN ({list})"
        ))
        .bind(plan.id.to_string())
        .execute(&mut *tx)
        .await?;
        if assigned.rows_affected() != chunk.len() as u64 {
            // Another broker batched (or a consumer disputed) some of them meanwhile: build
            // again from what is left.
            tracing::info!("records taken meanwhile; the batch is built again");
            tx.rollback().await?;
            return Ok(0);
        }
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
    let planned: Vec<(ContractId, Credits)> = d.json("charges", &row.charges)?;
    let mut tx_hash = None;
    // The contracts the chain skipped: from the receipt when this broker sent the batch, else
    // read back from the chain.
    let mut skipped_in_receipt = None;
    if !planned.is_empty() && !ledger.batch_settled(batch.0).await? {
        let on_chain: Vec<(B256, U256)> = planned
            .iter()
            .map(|(c, a)| (c.0, U256::from(a.base_units())))
            .collect();
        match ledger
            .settle(batch.0, root, &row.records_cid, count, &on_chain)
            .await
        {
            Ok(receipt) => {
                tx_hash = Some(TxHash(receipt.transaction_hash));
                skipped_in_receipt = Some(crate::ledger_link::skipped_charges(&receipt));
            }
            // Settled meanwhile by another broker sending the same built batch.
            Err(e) if e.is_revert() && ledger.batch_settled(batch.0).await? => {}
            Err(e) => return Err(e.into()),
        }
    }
    let skipped_set: std::collections::HashSet<B256> = match skipped_in_receipt {
        Some(s) => s.into_iter().collect(),
        None => {
            let charges = futures::future::try_join_all(
                planned
                    .iter()
                    .map(|(c, _)| ledger.usage_charge(batch.0, *c)),
            )
            .await?;
            planned
                .iter()
                .zip(charges)
                .filter(|(_, (charged, _, _))| charged.is_zero())
                .map(|((c, _), _)| c.0)
                .collect()
        }
    };
    let mut charged = Vec::new();
    let mut skipped = Vec::new();
    for (contract, amount) in &planned {
        if skipped_set.contains(&contract.0) {
            tracing::warn!(%contract, %batch, "the chain skipped the contract's charge; its records wait for a later batch");
            skipped.push(*contract);
        } else {
            charged.push((*contract, *amount));
        }
    }
    // Every charge of a batch is released at once, after the longest window among them.
    let releasable_at = match charged.first() {
        Some((c, _)) if charged.len() == 1 => ledger.usage_charge(batch.0, *c).await?.2,
        Some(_) => {
            let windows = futures::future::try_join_all(
                charged
                    .iter()
                    .map(|(c, _)| ledger.usage_charge(batch.0, *c)),
            )
            .await?;
            windows.iter().map(|(_, _, at)| *at).max().unwrap_or(0)
        }
        None => 0,
    };
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE settlement_batches SET state = 'settled', tx_hash = $1, settled_at = $2, charges = $3, \
         total = $4, releasable_at = $5 WHERE id = $6 AND state = 'built'",
    )
    .bind(tx_hash.map(|h| h.to_string()))
    .bind(now as i64)
    .bind(serde_json::to_string(&charged).expect("charges serialise"))
    .bind(
        charged
            .iter()
            .map(|(_, a)| a.base_units())
            .sum::<u128>()
            .to_string(),
    )
    .bind(releasable_at as i64)
    .bind(row.id.clone())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        // Another broker confirmed it first.
        tx.rollback().await?;
        return Ok(Some(0));
    }
    let mut back = 0;
    for contract in &skipped {
        back += sqlx::query(
            "UPDATE usage_records SET batch_id = NULL WHERE batch_id = $1 AND contract_id = $2",
        )
        .bind(row.id.clone())
        .bind(contract.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
    }
    let mut events = Vec::new();
    for (contract, amount) in &charged {
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
    Ok(Some((count as usize).saturating_sub(back)))
}

/// Releases to the providers the charges of settled batches whose challenge window ended (at
/// most `limit` batches). Returns how many it released.
pub async fn release_due(market: &Market, limit: u32) -> Result<usize, MarketError> {
    let (store, ledger) = (&market.store, &market.ledger);
    let chain_time = ledger.chain_time().await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, charges FROM settlement_batches WHERE state = 'settled' AND released_at IS NULL \
         AND releasable_at IS NOT NULL AND releasable_at <= $1 ORDER BY releasable_at, id LIMIT $2",
    )
    .bind(chain_time as i64)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    let mut released = 0;
    for (id, charges) in rows {
        let d = Decode {
            table: "settlement_batches",
            key: &id,
        };
        let batch: BatchId = d.parse("id", &id)?;
        let charges: Vec<(ContractId, Credits)> = d.json("charges", &charges)?;
        let contracts: Vec<ContractId> = charges.iter().map(|(c, _)| *c).collect();
        if !contracts.is_empty() {
            ledger.release(batch.0, &contracts).await?;
        }
        sqlx::query("UPDATE settlement_batches SET released_at = $1 WHERE id = $2")
            .bind(chain_time as i64)
            .bind(id)
            .execute(store.pool())
            .await?;
        released += 1;
    }
    Ok(released)
}

impl Market {
    /// The Merkle proof that a record is part of the batch that charged it, and the chain's own
    /// check (for the record's contract's parties, auditors and operators).
    pub async fn usage_proof(
        &self,
        who: &Principal,
        id: &UsageRecordId,
    ) -> Result<UsageProof, MarketError> {
        let parties = super::usage::parties_of(&self.store, id).await?;
        if !parties.is_some_and(|(_, c, p)| who.role.oversees() || who.did == c || who.did == p) {
            return Err(MarketError::NotFound(format!(
                "no usage record {id} of yours"
            )));
        }
        let Some(p) = proof(&self.store, id).await? else {
            return Err(MarketError::Conflict(format!(
                "record {id} is not in a settled batch yet; try again after the next batch"
            )));
        };
        let (verified_on_chain, _) = self
            .ledger
            .verify_record(
                p.batch.0,
                p.contract.0,
                p.record_hash,
                U256::from(p.amount.base_units()),
                &p.record_path,
                &p.contract_path,
            )
            .await?;
        let step = |s: &Step| ProofStep {
            hash: Hash32(s.hash),
            sum: Credits::from_base_units(s.sum.saturating_to::<u128>()),
            left: s.left,
        };
        Ok(UsageProof {
            record: id.clone(),
            contract: p.contract,
            batch: p.batch,
            root: Hash32(p.root),
            record_hash: Hash32(p.record_hash),
            amount: p.amount,
            record_path: p.record_path.iter().map(step).collect(),
            contract_path: p.contract_path.iter().map(step).collect(),
            contract_sum: Credits::from_base_units(p.contract_sum.saturating_to::<u128>()),
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
    fn a_batch_groups_records_per_contract_whatever_order_they_come_in() {
        let salt = B256::repeat_byte(9);
        let a = plan(vec![r("1", 1, 5), r("2", 2, 0), r("3", 1, 7)], salt).unwrap();
        let b = plan(vec![r("3", 1, 7), r("1", 1, 5), r("2", 2, 0)], salt).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.charges(),
            vec![(
                ContractId(B256::repeat_byte(1)),
                Credits::from_base_units(12)
            )]
        );
        assert_eq!(a.record_ids().collect::<Vec<_>>(), vec!["1", "3", "2"]);
        // Another salt, another id: records given back by a skipped contract settle anew.
        let c = plan(vec![r("1", 1, 5), r("2", 2, 0), r("3", 1, 7)], B256::ZERO).unwrap();
        assert_ne!(a.id, c.id);
        assert_eq!(a.root, c.root);
        assert!(plan(vec![], salt).is_none());
        // Every leaf is provably under its contract, with the contract's sum.
        let tree = tree_of(&a.leaves).unwrap();
        for (ci, (contract, rs)) in a.leaves.iter().enumerate() {
            let sum: u128 = rs.iter().map(|(_, _, a)| a.base_units()).sum();
            for (ri, (_, h, amount)) in rs.iter().enumerate() {
                let p = tree.proof(ci, ri).unwrap();
                assert_eq!(
                    contracts::merkle::verify(
                        a.root,
                        contract.0,
                        h.0,
                        U256::from(amount.base_units()),
                        &p.record_path,
                        &p.contract_path
                    ),
                    Some(U256::from(sum))
                );
            }
        }
    }
}
