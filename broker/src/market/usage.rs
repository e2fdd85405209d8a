//! Usage records reaching the broker: checked (the provider's signature, the contract, what the
//! plan allows), priced by the plan's pay-per-use prices, stored once per record id (retries and
//! out-of-order delivery are fine), listed for the consumer as they accrue.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::{keccak256, B256, U256};
use catalog::model::Plan;
use peering::usage::UsageRecord;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::document::ContractDocument;
use super::records::{self, ContractRecord, State};
use super::MarketError;
use crate::ledger_link::LedgerLink;
use crate::store::Store;

/// Most records in one report.
pub const MAX_RECORDS_PER_REPORT: usize = 1000;
/// Clock skew allowed between the agent and the broker.
const SKEW_SECS: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageRefusal {
    #[error("a record id is 1-64 of A-Z a-z 0-9 . _ -")]
    BadId,
    #[error("the provider's signature does not verify")]
    BadSignature,
    #[error("no contract {0}")]
    UnknownContract(String),
    #[error("the record names a provider or consumer that is not the contract's")]
    WrongParties,
    #[error("the contract never ran (it is {0})")]
    NotRunning(&'static str),
    #[error("the interval is outside the contract's life or inverted")]
    OutsideTerm,
    #[error("the record claims more {0} than the plan allows for its interval")]
    TooMuch(&'static str),
    #[error("a different record with this id was already accepted")]
    Conflict,
}

/// What the plan allows over `seconds` for `quantity` units, checked against the record.
pub fn check_limits(r: &UsageRecord, plan: &Plan, quantity: u32) -> Result<(), UsageRefusal> {
    if r.to < r.from {
        return Err(UsageRefusal::OutsideTerm);
    }
    let q = u128::from(quantity);
    // Whole seconds of the interval, plus one for rounding at both ends.
    let millis = u128::from(r.to - r.from + 1) * 1000;
    if u128::from(r.connection_millis) > millis {
        return Err(UsageRefusal::TooMuch("connection time"));
    }
    let u = &plan.unit;
    // CPU time ≤ interval × cores bought.
    if u128::from(r.cpu_millis) * 1000 > millis * u128::from(u.cpu_millicores) * q {
        return Err(UsageRefusal::TooMuch("CPU time"));
    }
    if u128::from(r.max_memory_kib) > u128::from(u.memory_mib) * 1024 * q {
        return Err(UsageRefusal::TooMuch("memory"));
    }
    if u128::from(r.gpu_millis) * 1000 > millis * u128::from(u.gpu_permille) * q {
        return Err(UsageRefusal::TooMuch("GPU time"));
    }
    // Bandwidth (Mbit/s) each way, when the plan sets one.
    if u.bandwidth_mbps > 0 {
        let cap = millis * u128::from(u.bandwidth_mbps) * q * 125; // bytes: Mbit/s × ms / 8 × 1000
        if u128::from(r.bytes_in) > cap || u128::from(r.bytes_out) > cap {
            return Err(UsageRefusal::TooMuch("traffic"));
        }
    }
    if u.data_accesses > 0 && u128::from(r.data_accesses) > u128::from(u.data_accesses) * q {
        return Err(UsageRefusal::TooMuch("data accesses"));
    }
    Ok(())
}

/// What a record's price depends on besides the record itself.
#[derive(Debug, Clone, Default)]
pub struct PricingContext {
    /// The offer's green-energy share: its reward lowers each charge.
    pub green_percent: u8,
    /// The region's GPU cost (BillingModels), added to each record with GPU use.
    pub region: contracts::billing::Region,
    /// Traffic of the contract's earlier records, for the free allowance.
    pub bytes_before: u128,
}

/// The charge for a record, in credit base units, with the NEMO billing models where they apply:
/// CPU and memory at the plan's prices, GPU time × fraction at the GPU-hour price plus the
/// region's GPU cost (`machine_learning_credits`), traffic beyond the plan's free allowance,
/// dataset accesses (the provider's reward), less the green-energy reward. Reserved plans are
/// paid per period instead, so their usage is recorded at zero.
pub fn price(r: &UsageRecord, plan: &Plan, ctx: &PricingContext) -> u128 {
    use contracts::billing;
    let Some(p) = &plan.pricing.pay_per_use else {
        return 0;
    };
    const HOUR_MS: u128 = 3_600_000;
    let cpu = u128::from(p.cpu_core_hour) * u128::from(r.cpu_millis) / HOUR_MS;
    // GiB-hours: peak memory over the connection time.
    let mem = u128::from(p.memory_gib_hour)
        * u128::from(r.max_memory_kib)
        * u128::from(r.connection_millis)
        / (1024 * 1024 * HOUR_MS);
    let gpu = if r.gpu_millis > 0 {
        // GPU-milliseconds × 10^5 is GPU-seconds × the 10^8 fraction scale the model uses.
        billing::machine_learning_credits(
            &ctx.region,
            U256::from(r.gpu_millis),
            U256::from(billing::FULL_GPU / 1000),
            U256::from(p.gpu_hour),
        )
        .map_or(u128::MAX, |v| v.saturating_to::<u128>())
    } else {
        0
    };
    let bytes = u128::from(r.bytes_in) + u128::from(r.bytes_out);
    let free = u128::from(p.free_network_gb) * 1_000_000_000;
    let billable = (ctx.bytes_before + bytes)
        .saturating_sub(free.max(ctx.bytes_before))
        .min(bytes);
    let net = u128::from(p.network_gb) * billable / 1_000_000_000;
    let data = u128::from(p.data_access) * u128::from(r.data_accesses);
    let gross = cpu
        .saturating_add(mem)
        .saturating_add(gpu)
        .saturating_add(net)
        .saturating_add(data);
    // NEMO subtracts the reward before its final /1000 scaling; the same here.
    let reward = billing::green_energy_reward(ctx.green_percent.min(100))
        .map_or(0, |v| v.saturating_to::<u128>())
        / 1000;
    gross.saturating_sub(reward)
}

/// The record's hash (the Merkle leaf's content): keccak-256 of the signed record's JSON.
pub fn record_hash(body: &[u8]) -> B256 {
    keccak256(body)
}

/// The outcome of one record of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub id: String,
    /// `accepted`, `duplicate` (already had it, same content) or `refused`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Accepts the records of one report; what each contract's records share (the contract, its
/// signed terms) is read once per report, not once per record.
pub struct Ingest<'a> {
    store: &'a Store,
    ledger: &'a LedgerLink,
    terms: HashMap<String, Option<Arc<(ContractRecord, ContractDocument)>>>,
}

impl<'a> Ingest<'a> {
    pub fn new(store: &'a Store, ledger: &'a LedgerLink) -> Self {
        Self {
            store,
            ledger,
            terms: HashMap::new(),
        }
    }

    async fn terms(
        &mut self,
        contract: &str,
    ) -> Result<Option<Arc<(ContractRecord, ContractDocument)>>, MarketError> {
        if let Some(t) = self.terms.get(contract) {
            return Ok(t.clone());
        }
        let mut found = None;
        if let Some(c) = records::get_contract(self.store, contract).await? {
            if let Some(r) = records::get_reservation(self.store, &c.reservation_id).await? {
                let doc = ContractDocument::parse(r.document.as_bytes()).map_err(|e| {
                    MarketError::Corrupt(format!("stored document unreadable: {e}"))
                })?;
                found = Some(Arc::new((c, doc)));
            }
        }
        self.terms.insert(contract.to_string(), found.clone());
        Ok(found)
    }

    async fn pricing_context(
        &self,
        doc: &ContractDocument,
        r: &UsageRecord,
    ) -> Result<PricingContext, MarketError> {
        let allowance = doc
            .plan
            .pricing
            .pay_per_use
            .as_ref()
            .is_some_and(|p| p.free_network_gb > 0);
        let bytes_before = if allowance {
            let (sum,): (i64,) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(traffic), 0) AS BIGINT) FROM usage_records \
                 WHERE contract_id = $1 AND (dispute_outcome IS NULL OR dispute_outcome <> 'voided')",
            )
            .bind(r.contract.clone())
            .fetch_one(self.store.pool())
            .await?;
            sum as u128
        } else {
            0
        };
        let region = if r.gpu_millis > 0 {
            self.ledger.region(&doc.sla.region).await?
        } else {
            contracts::billing::Region::default()
        };
        Ok(PricingContext {
            green_percent: doc.green_energy_percent,
            region,
            bytes_before,
        })
    }

    /// Checks, prices and stores one record reported by `provider`.
    pub async fn record(
        &mut self,
        provider: &str,
        r: &UsageRecord,
        now: u64,
    ) -> Result<Outcome, MarketError> {
        let refuse = |why: UsageRefusal| Outcome {
            id: r.id.clone(),
            status: "refused",
            amount: None,
            reason: Some(why.to_string()),
        };
        let id_ok = !r.id.is_empty()
            && r.id.len() <= 64
            && r.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Ok(refuse(UsageRefusal::BadId));
        }
        if r.provider != provider || !r.verify() {
            return Ok(refuse(UsageRefusal::BadSignature));
        }
        let body = serde_json::to_string(r).unwrap_or_default();
        if let Some(known) = self.known(r, &body).await? {
            return Ok(known);
        }
        let Some(terms) = self.terms(&r.contract).await? else {
            return Ok(refuse(UsageRefusal::UnknownContract(r.contract.clone())));
        };
        let (c, doc) = &*terms;
        if c.provider != r.provider || c.consumer != r.consumer {
            return Ok(refuse(UsageRefusal::WrongParties));
        }
        if !matches!(c.state, State::Active | State::Closing | State::Closed) {
            return Ok(refuse(UsageRefusal::NotRunning(c.state.as_str())));
        }
        if r.from + SKEW_SECS < c.created_at || r.to > now + SKEW_SECS {
            return Ok(refuse(UsageRefusal::OutsideTerm));
        }
        if let Err(why) = check_limits(r, &doc.plan, doc.quantity) {
            return Ok(refuse(why));
        }
        let ctx = self.pricing_context(doc, r).await?;
        let amount = price(r, &doc.plan, &ctx);
        let inserted = sqlx::query(
            "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, traffic, amount, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
        )
        .bind(r.id.clone())
        .bind(r.contract.clone())
        .bind(r.provider.clone())
        .bind(r.consumer.clone())
        .bind(r.from as i64)
        .bind(r.to as i64)
        .bind(body.clone())
        .bind(record_hash(body.as_bytes()).to_string())
        .bind(r.bytes_in.saturating_add(r.bytes_out).min(i64::MAX as u64) as i64)
        .bind(amount.to_string())
        .bind(now as i64)
        .execute(self.store.pool())
        .await?;
        if inserted.rows_affected() != 1 {
            // A concurrent report of the same id won the race: answer as for a repeat.
            if let Some(known) = self.known(r, &body).await? {
                return Ok(known);
            }
        }
        Ok(Outcome {
            id: r.id.clone(),
            status: "accepted",
            amount: Some(amount.to_string()),
            reason: None,
        })
    }

    /// The answer for a record id already stored: a duplicate, or a conflict.
    async fn known(&self, r: &UsageRecord, body: &str) -> Result<Option<Outcome>, MarketError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM usage_records WHERE id = $1")
            .bind(r.id.clone())
            .fetch_optional(self.store.pool())
            .await?;
        Ok(row.map(|(existing,)| Outcome {
            id: r.id.clone(),
            status: if existing == body {
                "duplicate"
            } else {
                "refused"
            },
            amount: None,
            reason: (existing != body).then(|| UsageRefusal::Conflict.to_string()),
        }))
    }
}

/// A stored record with what the broker made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUsage {
    pub record: serde_json::Value,
    pub record_hash: String,
    pub amount: String,
    pub received_at: u64,
    pub batch_id: Option<String>,
}

fn stored(r: &AnyRow) -> StoredUsage {
    StoredUsage {
        record: serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default(),
        record_hash: r.get(1),
        amount: r.get(2),
        received_at: r.get::<i64, _>(3) as u64,
        batch_id: r.get(4),
    }
}

/// A contract's usage, oldest interval first.
pub async fn of_contract(store: &Store, contract: &str) -> Result<Vec<StoredUsage>, MarketError> {
    let rows = sqlx::query(
        "SELECT body, record_hash, amount, received_at, batch_id FROM usage_records WHERE contract_id = $1 ORDER BY from_ts, id",
    )
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(stored).collect())
}

/// The consumer disputes a record not yet settled, within the window: it is held out of
/// settlement until an operator decides.
pub async fn dispute(
    store: &Store,
    consumer: &str,
    id: &str,
    reason: &str,
    window_secs: u64,
    now: u64,
) -> Result<(), MarketError> {
    let done = sqlx::query(
        "UPDATE usage_records SET disputed_at = $1, dispute_reason = $2 \
         WHERE id = $3 AND consumer = $4 AND batch_id IS NULL AND disputed_at IS NULL \
         AND dispute_outcome IS NULL AND received_at + $5 >= $1",
    )
    .bind(now as i64)
    .bind(reason.to_string())
    .bind(id.to_string())
    .bind(consumer.to_string())
    .bind(window_secs as i64)
    .execute(store.pool())
    .await?;
    if done.rows_affected() != 1 {
        return Err(MarketError::WrongState {
            state: "settled, already disputed, past the dispute window or not yours".into(),
            needed: "pending and within the dispute window",
        });
    }
    Ok(())
}

/// An operator decides a dispute: the record stands (and settles) or is voided (charged nothing).
pub async fn resolve(store: &Store, id: &str, uphold: bool) -> Result<(), MarketError> {
    let sql = if uphold {
        "UPDATE usage_records SET disputed_at = NULL, dispute_outcome = 'upheld' WHERE id = $1 AND disputed_at IS NOT NULL"
    } else {
        "UPDATE usage_records SET disputed_at = NULL, dispute_outcome = 'voided', amount = '0' WHERE id = $1 AND disputed_at IS NOT NULL"
    };
    let done = sqlx::query(sql)
        .bind(id.to_string())
        .execute(store.pool())
        .await?;
    if done.rows_affected() != 1 {
        return Err(MarketError::WrongState {
            state: "not disputed".into(),
            needed: "disputed",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::model::{PlanUnit, Pricing, UnitPrices};

    fn plan(ppu: bool) -> Plan {
        Plan {
            id: "p".into(),
            name: "p".into(),
            pricing: Pricing {
                reserved: None,
                pay_per_use: ppu.then(|| UnitPrices {
                    cpu_core_hour: 3_600_000,
                    memory_gib_hour: 7_200_000,
                    network_gb: 1_000_000,
                    ..UnitPrices::default()
                }),
            },
            capacity: 10,
            unit: PlanUnit {
                cpu_millicores: 2000,
                memory_mib: 1024,
                bandwidth_mbps: 8,
                ..PlanUnit::default()
            },
        }
    }

    fn record() -> UsageRecord {
        UsageRecord {
            id: "r".into(),
            contract: "c".into(),
            provider: "p".into(),
            consumer: "c".into(),
            credential: "h".into(),
            from: 100,
            to: 109,
            connection_millis: 10_000,
            bytes_in: 1_000_000,
            bytes_out: 1_000_000,
            cpu_millis: 20_000,
            max_memory_kib: 1024 * 1024,
            gpu_millis: 0,
            data_accesses: 0,
            signature: String::new(),
        }
    }

    #[test]
    fn records_beyond_the_plan_are_refused() {
        let p = plan(true);
        assert_eq!(check_limits(&record(), &p, 1), Ok(()));
        let mut r = record();
        r.cpu_millis = 20_001 + 2000; // 2 cores × 11 s is the most
        assert_eq!(
            check_limits(&r, &p, 1),
            Err(UsageRefusal::TooMuch("CPU time"))
        );
        assert_eq!(check_limits(&r, &p, 2), Ok(()));
        let mut r = record();
        r.max_memory_kib = 1024 * 1024 + 1;
        assert_eq!(
            check_limits(&r, &p, 1),
            Err(UsageRefusal::TooMuch("memory"))
        );
        let mut r = record();
        r.bytes_in = 11_000_001; // 8 Mbit/s × 11 s = 11 MB each way
        assert_eq!(
            check_limits(&r, &p, 1),
            Err(UsageRefusal::TooMuch("traffic"))
        );
        let mut r = record();
        r.to = 99;
        assert_eq!(check_limits(&r, &p, 1), Err(UsageRefusal::OutsideTerm));
        let mut r = record();
        r.connection_millis = 11_001;
        assert_eq!(
            check_limits(&r, &p, 1),
            Err(UsageRefusal::TooMuch("connection time"))
        );
    }

    #[test]
    fn pay_per_use_is_priced_and_reserved_usage_is_free() {
        let r = record();
        // 20 s of CPU at 3,600,000/core-hour = 20,000; 1 GiB for 10 s at 7,200,000/GiB-hour =
        // 20,000; 2 MB at 1,000,000/GB = 2,000.
        let ctx = PricingContext::default();
        assert_eq!(price(&r, &plan(true), &ctx), 20_000 + 20_000 + 2_000);
        assert_eq!(price(&r, &plan(false), &ctx), 0);
        // The green reward lowers the charge: 40% → 40 × 10^6 / 1000.
        let green = PricingContext {
            green_percent: 40,
            ..PricingContext::default()
        };
        assert_eq!(price(&r, &plan(true), &green), 42_000 - 40_000);
        // Traffic within the free allowance is free; beyond it, charged.
        let mut p = plan(true);
        p.pricing.pay_per_use.as_mut().unwrap().free_network_gb = 1;
        let within = PricingContext {
            bytes_before: 999_000_000,
            ..PricingContext::default()
        };
        assert_eq!(price(&r, &p, &within), 40_000 + 1_000); // 1 MB of the 2 MB is beyond 1 GB
        let beyond = PricingContext {
            bytes_before: 5_000_000_000,
            ..PricingContext::default()
        };
        assert_eq!(price(&r, &p, &beyond), 42_000);
        // GPU: time × fraction at the GPU-hour price, plus the region's GPU cost.
        let mut g = r.clone();
        g.gpu_millis = 1_800_000; // half an hour of a whole GPU
        let mut p = plan(true);
        p.pricing.pay_per_use.as_mut().unwrap().gpu_hour = 10_000_000;
        let region = PricingContext {
            region: contracts::billing::Region {
                gpu_cost: U256::from(77u64),
                ..Default::default()
            },
            ..PricingContext::default()
        };
        assert_eq!(price(&g, &p, &region), 42_000 + 5_000_000 + 77);
        // Dataset accesses pay the dataset's provider per access.
        let mut d = r.clone();
        d.data_accesses = 3;
        let mut p = plan(true);
        p.pricing.pay_per_use.as_mut().unwrap().data_access = 500;
        assert_eq!(price(&d, &p, &ctx), 42_000 + 1_500);
        assert_ne!(record_hash(b"a"), record_hash(b"b"));
    }
}
