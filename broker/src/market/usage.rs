//! Usage records reaching the broker: checked (the provider's signature, the contract, what the
//! plan allows), priced by the plan's pay-per-use prices, stored once per record id (retries and
//! out-of-order delivery are fine), listed for the consumer as they accrue, disputed within a
//! window and decided by an operator.

use std::collections::HashMap;
use std::sync::Arc;

use api::document::ContractDocument;
use api::pricing::{charge, PricingContext};
use api::usage::{
    ContractUsage, DisputeState, Disputed, Receipt, ReceiptStored, RecordOutcome, StoredUsage,
    UsageOutcome, UsageRecord, UsageReport, MAX_RECORDS_PER_REPORT,
};
use api::{ContractId, ContractState, Credits, Principal, UsageRecordId};
use catalog::model::Plan;

use super::records::{self, ContractRecord};
use super::{Market, MarketError};
use crate::store::{now, Corrupt, Decode, Store};

/// Clock skew allowed between the agent and the broker.
const SKEW_SECS: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageRefusal {
    #[error("the provider's signature does not verify")]
    BadSignature,
    #[error("no contract {0}")]
    UnknownContract(ContractId),
    #[error("the record names a provider or consumer that is not the contract's")]
    WrongParties,
    #[error("the contract never ran (it is {0})")]
    NotRunning(ContractState),
    #[error("the contract is closed: usage reported after its close is not charged")]
    Closed,
    #[error("the record names no credential issued for its contract")]
    UnknownCredential,
    #[error("the record's interval is outside its credential's validity")]
    OutsideCredential,
    #[error("the interval is outside the contract's life or inverted")]
    OutsideTerm,
    #[error("the record claims more {0} than the plan allows for its interval")]
    TooMuch(&'static str),
    #[error("a different record with this id was already accepted")]
    Conflict,
    #[error("the record's channel session already has its record")]
    SessionTaken,
    #[error("with the contract's earlier records it claims more {0} than the plan allows since the contract opened")]
    TooMuchInAll(&'static str),
}

/// The most a contract's records may claim together over `seconds` of its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifeLimits {
    pub connection_ms: i64,
    pub cpu_ms: i64,
    pub gpu_ms: i64,
    /// Each way (unbounded when the plan sets no bandwidth).
    pub bytes: i64,
}

/// What the plan allows `quantity` units over `seconds` (pure): as `check_limits` for one
/// interval, with every unit's sessions running side by side.
pub fn life_limits(plan: &Plan, quantity: u32, seconds: u64) -> LifeLimits {
    // Bounded well below i64::MAX, so the database can add a record to a total without overflow.
    const MAX: i128 = (i64::MAX / 4) as i128;
    let q = i128::from(quantity);
    let ms = i128::from(seconds) * 1000;
    let u = &plan.unit;
    let cap = |v: i128| v.clamp(0, MAX) as i64;
    LifeLimits {
        connection_ms: cap(ms * q),
        cpu_ms: cap(ms * i128::from(u.cpu_millicores) * q / 1000),
        gpu_ms: cap(ms * i128::from(u.gpu_permille) * q / 1000),
        bytes: if u.bandwidth_mbps > 0 {
            cap(ms * i128::from(u.bandwidth_mbps) * q * 125)
        } else {
            MAX as i64
        },
    }
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

/// Accepts the records of one report; what each contract's records share (the contract, its
/// signed terms) is read once per report, not once per record.
struct Ingest<'a> {
    market: &'a Market,
    terms: HashMap<ContractId, Option<Arc<(ContractRecord, ContractDocument)>>>,
    /// Credentials by hash: (contract, not before, until: expiry or revocation).
    credentials: HashMap<String, Option<(String, u64, u64)>>,
}

impl<'a> Ingest<'a> {
    fn new(market: &'a Market) -> Self {
        Self {
            market,
            terms: HashMap::new(),
            credentials: HashMap::new(),
        }
    }

    async fn terms(
        &mut self,
        contract: ContractId,
    ) -> Result<Option<Arc<(ContractRecord, ContractDocument)>>, MarketError> {
        if let Some(t) = self.terms.get(&contract) {
            return Ok(t.clone());
        }
        let store = &self.market.store;
        let mut found = None;
        if let Some(c) = records::get_contract(store, contract).await? {
            if let Some(r) = records::get_reservation(store, c.reservation_id).await? {
                let doc = ContractDocument::parse(r.document.as_bytes())
                    .map_err(|e| Corrupt::new("reservations", "document", c.id, e))?;
                found = Some(Arc::new((c, doc)));
            }
        }
        self.terms.insert(contract, found.clone());
        Ok(found)
    }

    /// The credential a record names: its contract and the window it was valid in.
    async fn credential(&mut self, hash: &str) -> Result<Option<(String, u64, u64)>, MarketError> {
        if let Some(c) = self.credentials.get(hash) {
            return Ok(c.clone());
        }
        let row: Option<(String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT contract_id, not_before, expires_at, revoked_at FROM credentials WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.market.store.pool())
        .await?;
        let d = Decode {
            table: "credentials",
            key: hash,
        };
        let found = match row {
            None => None,
            Some((contract, nb, exp, revoked)) => {
                let until = d.u64("expires_at", exp)?;
                let until = match d.opt_u64("revoked_at", revoked)? {
                    Some(r) => until.min(r),
                    None => until,
                };
                Some((contract, d.u64("not_before", nb)?, until))
            }
        };
        self.credentials.insert(hash.to_string(), found.clone());
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
            let sum: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(traffic), 0) AS BIGINT) FROM usage_records \
                 WHERE contract_id = $1 AND (dispute_outcome IS NULL OR dispute_outcome <> 'voided')",
            )
            .bind(r.contract.to_string())
            .fetch_one(self.market.store.pool())
            .await?;
            u128::from(
                Decode {
                    table: "usage_records",
                    key: "traffic",
                }
                .u64("traffic", sum)?,
            )
        } else {
            0
        };
        Ok(PricingContext {
            green_percent: doc.green_energy_percent,
            gpu_record_fee: doc
                .usage
                .map_or(0, |u| u.prices.gpu_record_fee.base_units()),
            bytes_before,
        })
    }

    /// Checks, prices and stores one record reported by `provider`.
    async fn record(
        &mut self,
        provider: &api::Did,
        r: &UsageRecord,
        now: u64,
    ) -> Result<RecordOutcome, MarketError> {
        let refuse = |why: UsageRefusal| RecordOutcome {
            id: r.id.clone(),
            status: UsageOutcome::Refused,
            amount: None,
            reason: Some(why.to_string()),
        };
        if r.provider != *provider || !r.verify() {
            return Ok(refuse(UsageRefusal::BadSignature));
        }
        let body = serde_json::to_string(r).expect("usage records serialise");
        if let Some(known) = self.known(r, &body).await? {
            return Ok(known);
        }
        let Some(terms) = self.terms(r.contract).await? else {
            return Ok(refuse(UsageRefusal::UnknownContract(r.contract)));
        };
        let (c, doc) = &*terms;
        if c.provider != r.provider || c.consumer != r.consumer {
            return Ok(refuse(UsageRefusal::WrongParties));
        }
        if !c.state.opened() {
            return Ok(refuse(UsageRefusal::NotRunning(c.state)));
        }
        if c.state == ContractState::Closed {
            return Ok(refuse(UsageRefusal::Closed));
        }
        if r.from + SKEW_SECS < c.created_at || r.to > now + SKEW_SECS {
            return Ok(refuse(UsageRefusal::OutsideTerm));
        }
        // Usage happens through a credential issued for this contract, while it was valid.
        match self.credential(&r.credential.to_string()).await? {
            Some((contract, _, _)) if contract != r.contract.to_string() => {
                return Ok(refuse(UsageRefusal::UnknownCredential))
            }
            None => return Ok(refuse(UsageRefusal::UnknownCredential)),
            Some((_, not_before, until)) => {
                if r.from + SKEW_SECS < not_before || r.to > until + SKEW_SECS {
                    return Ok(refuse(UsageRefusal::OutsideCredential));
                }
            }
        }
        if let Err(why) = check_limits(r, &doc.plan, doc.quantity) {
            return Ok(refuse(why));
        }
        let ctx = self.pricing_context(doc, r).await?;
        let amount = Credits::from_base_units(charge(r, doc, &ctx));
        // Together with the contract's earlier records, within what the plan allows since it
        // opened (the skew at both ends): overlapping records cannot add up to more.
        let life = r.to.max(now).saturating_sub(c.created_at) + 2 * SKEW_SECS;
        let limits = life_limits(&doc.plan, doc.quantity, life);
        let n = |v: u64| v.min(i64::MAX as u64 / 4) as i64;
        let mut tx = self.market.store.begin().await?;
        sqlx::query(
            "INSERT INTO usage_totals (contract_id) VALUES ($1) ON CONFLICT (contract_id) DO NOTHING",
        )
        .bind(r.contract.to_string())
        .execute(&mut *tx)
        .await?;
        let added = sqlx::query(
            "UPDATE usage_totals SET connection_ms = connection_ms + $2, cpu_ms = cpu_ms + $3, \
             gpu_ms = gpu_ms + $4, bytes_in = bytes_in + $5, bytes_out = bytes_out + $6 \
             WHERE contract_id = $1 AND connection_ms + $2 <= $7 AND cpu_ms + $3 <= $8 \
             AND gpu_ms + $4 <= $9 AND bytes_in + $5 <= $10 AND bytes_out + $6 <= $10",
        )
        .bind(r.contract.to_string())
        .bind(n(r.connection_millis))
        .bind(n(r.cpu_millis))
        .bind(n(r.gpu_millis))
        .bind(n(r.bytes_in))
        .bind(n(r.bytes_out))
        .bind(limits.connection_ms)
        .bind(limits.cpu_ms)
        .bind(limits.gpu_ms)
        .bind(limits.bytes)
        .execute(&mut *tx)
        .await?;
        if added.rows_affected() != 1 {
            tx.rollback().await?;
            let what = self.beyond(r, &limits).await?;
            return Ok(refuse(UsageRefusal::TooMuchInAll(what)));
        }
        let inserted = sqlx::query(
            "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, traffic, amount, received_at, session) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(r.contract.to_string())
        .bind(r.provider.to_string())
        .bind(r.consumer.to_string())
        .bind(r.from as i64)
        .bind(r.to as i64)
        .bind(body.clone())
        .bind(r.leaf_hash().to_string())
        .bind(r.bytes_in.saturating_add(r.bytes_out).min(i64::MAX as u64) as i64)
        .bind(amount.to_string())
        .bind(now as i64)
        .bind(r.session.map(|s| s.to_string()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            // A concurrent report of the same id won the race: its usage is counted once, and
            // the answer is as for a repeat. Otherwise the session already has its record.
            tx.rollback().await?;
            return Ok(match self.known(r, &body).await? {
                Some(known) => known,
                None => refuse(UsageRefusal::SessionTaken),
            });
        } else {
            tx.commit().await?;
        }
        Ok(RecordOutcome {
            id: r.id.clone(),
            status: UsageOutcome::Accepted,
            amount: Some(amount),
            reason: None,
        })
    }

    /// Which total a refused record would take beyond the plan.
    async fn beyond(&self, r: &UsageRecord, l: &LifeLimits) -> Result<&'static str, MarketError> {
        let (conn, cpu, gpu, bin, bout): (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT connection_ms, cpu_ms, gpu_ms, bytes_in, bytes_out FROM usage_totals WHERE contract_id = $1",
        )
        .bind(r.contract.to_string())
        .fetch_one(self.market.store.pool())
        .await?;
        let over = |total: i64, add: u64, limit: i64| {
            i128::from(total) + i128::from(add) > i128::from(limit)
        };
        Ok(if over(conn, r.connection_millis, l.connection_ms) {
            "connection time"
        } else if over(cpu, r.cpu_millis, l.cpu_ms) {
            "CPU time"
        } else if over(gpu, r.gpu_millis, l.gpu_ms) {
            "GPU time"
        } else if over(bin, r.bytes_in, l.bytes) || over(bout, r.bytes_out, l.bytes) {
            "traffic"
        } else {
            "usage"
        })
    }

    /// The answer for a record id already stored: a duplicate, or a conflict.
    async fn known(
        &self,
        r: &UsageRecord,
        body: &str,
    ) -> Result<Option<RecordOutcome>, MarketError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM usage_records WHERE id = $1")
            .bind(r.id.to_string())
            .fetch_optional(self.market.store.pool())
            .await?;
        Ok(row.map(|(existing,)| {
            let same = existing == body;
            RecordOutcome {
                id: r.id.clone(),
                status: if same {
                    UsageOutcome::Duplicate
                } else {
                    UsageOutcome::Refused
                },
                amount: None,
                reason: (!same).then(|| UsageRefusal::Conflict.to_string()),
            }
        }))
    }
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    id: String,
    body: String,
    record_hash: String,
    amount: String,
    received_at: i64,
    batch_id: Option<String>,
    disputed_at: Option<i64>,
    dispute_outcome: Option<String>,
    dispute_evidence: Option<String>,
}

impl UsageRow {
    fn decode(self) -> Result<StoredUsage, Corrupt> {
        let d = Decode {
            table: "usage_records",
            key: &self.id,
        };
        let dispute = match (self.disputed_at, self.dispute_outcome.as_deref()) {
            (Some(_), _) => Some(DisputeState::Open),
            (None, Some("upheld")) => Some(DisputeState::Upheld),
            (None, Some("voided")) => Some(DisputeState::Voided),
            (None, None) => None,
            (None, Some(other)) => {
                return Err(Corrupt::new(
                    "usage_records",
                    "dispute_outcome",
                    &self.id,
                    other,
                ))
            }
        };
        Ok(StoredUsage {
            record: d.json("body", &self.body)?,
            record_hash: d.parse("record_hash", &self.record_hash)?,
            amount: d.parse("amount", &self.amount)?,
            received_at: d.u64("received_at", self.received_at)?,
            batch_id: d.opt_parse("batch_id", self.batch_id.as_deref())?,
            dispute,
            dispute_evidence: self.dispute_evidence,
        })
    }
}

/// A contract's usage, oldest interval first.
pub async fn of_contract(
    store: &Store,
    contract: ContractId,
) -> Result<Vec<StoredUsage>, MarketError> {
    let rows: Vec<UsageRow> = sqlx::query_as(
        // A record shows its batch once the chain settled it (not while the batch is being sent).
        "SELECT u.id, u.body, u.record_hash, u.amount, u.received_at, \
         CASE WHEN b.state = 'settled' THEN u.batch_id END AS batch_id, u.disputed_at, u.dispute_outcome, \
         u.dispute_evidence \
         FROM usage_records u LEFT JOIN settlement_batches b ON b.id = u.batch_id \
         WHERE u.contract_id = $1 ORDER BY u.from_ts, u.id",
    )
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(UsageRow::decode)
        .collect::<Result<_, _>>()?)
}

/// Who a usage record's contract belongs to: (contract, consumer, provider).
pub async fn parties_of(
    store: &Store,
    id: &UsageRecordId,
) -> Result<Option<(ContractId, api::Did, api::Did)>, MarketError> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT contract_id, consumer, provider FROM usage_records WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(store.pool())
            .await?;
    let d = Decode {
        table: "usage_records",
        key: id.as_str(),
    };
    Ok(row
        .map(|(c, consumer, provider)| {
            Ok::<_, Corrupt>((
                d.parse("contract_id", &c)?,
                d.parse("consumer", &consumer)?,
                d.parse("provider", &provider)?,
            ))
        })
        .transpose()?)
}

impl Market {
    /// A provider reports records; each is answered on its own (accepted, duplicate, refused and
    /// why).
    pub async fn report_usage(
        &self,
        who: &Principal,
        report: &UsageReport,
    ) -> Result<Vec<RecordOutcome>, MarketError> {
        if report.records.len() > MAX_RECORDS_PER_REPORT {
            return Err(MarketError::BadRequest(format!(
                "at most {MAX_RECORDS_PER_REPORT} records per report"
            )));
        }
        let now = now();
        let mut ingest = Ingest::new(self);
        let mut out = Vec::with_capacity(report.records.len());
        for r in &report.records {
            out.push(ingest.record(&who.did, r, now).await?);
        }
        // Batches are cut by size as well as by age.
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM usage_records WHERE batch_id IS NULL AND disputed_at IS NULL",
        )
        .fetch_one(self.store.pool())
        .await?;
        if waiting >= i64::from(self.policy.batches.max_records) {
            self.signals.batch_full.notify_one();
        }
        Ok(out)
    }

    /// A contract's usage as it accrues, with its total and what is settled.
    pub async fn usage(&self, c: &ContractRecord) -> Result<ContractUsage, MarketError> {
        let records = of_contract(&self.store, c.id).await?;
        let total = records.iter().map(|u| u.amount).sum();
        let settled = records
            .iter()
            .filter(|u| u.batch_id.is_some())
            .map(|u| u.amount)
            .sum();
        Ok(ContractUsage {
            contract: c.id,
            records,
            total,
            settled,
        })
    }

    /// The consumer disputes a record not yet settled, within the window: it is held out of
    /// settlement until an operator decides.
    pub async fn dispute(
        &self,
        who: &Principal,
        id: &UsageRecordId,
        reason: &str,
    ) -> Result<Disputed, MarketError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(MarketError::BadRequest(
                "give a reason of 1-1000 characters".into(),
            ));
        }
        let now = now();
        let done = sqlx::query(
            "UPDATE usage_records SET disputed_at = $1, dispute_reason = $2 \
             WHERE id = $3 AND consumer = $4 AND batch_id IS NULL AND disputed_at IS NULL \
             AND dispute_outcome IS NULL AND received_at + $5 >= $1",
        )
        .bind(now as i64)
        .bind(reason.to_string())
        .bind(id.to_string())
        .bind(who.did.to_string())
        .bind(self.policy.batches.dispute_window_secs as i64)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(MarketError::WrongState {
                state: "settled, already disputed, past the dispute window or not yours".into(),
                needed: "pending and within the dispute window",
            });
        }
        let evidence = self.receipt_evidence(id).await?;
        if let Some(e) = &evidence {
            sqlx::query("UPDATE usage_records SET dispute_evidence = $1 WHERE id = $2")
                .bind(e.clone())
                .bind(id.to_string())
                .execute(self.store.pool())
                .await?;
        }
        Ok(Disputed {
            record: id.clone(),
            dispute: DisputeState::Open,
            evidence,
        })
    }

    /// What the consumer's last receipt of a record's session says about the record.
    async fn receipt_evidence(&self, id: &UsageRecordId) -> Result<Option<String>, MarketError> {
        let key = id.to_string();
        let body: String = sqlx::query_scalar("SELECT body FROM usage_records WHERE id = $1")
            .bind(&key)
            .fetch_one(self.store.pool())
            .await?;
        let record: UsageRecord = Decode {
            table: "usage_records",
            key: &key,
        }
        .json("body", &body)?;
        let Some(session) = record.session else {
            return Ok(None);
        };
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT body FROM usage_receipts WHERE contract_id = $1 AND session = $2",
        )
        .bind(record.contract.to_string())
        .bind(session.to_string())
        .fetch_optional(self.store.pool())
        .await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let receipt: Receipt = Decode {
            table: "usage_receipts",
            key: &key,
        }
        .json("body", &stored)?;
        Ok(Some(match receipt.contradicts(&record) {
            Some(why) => why,
            None if receipt.last => "the consumer's signed receipt of the session agrees".into(),
            None => "the consumer's last receipt is of the session still running".into(),
        }))
    }

    /// Keeps a consumer's signed receipt of a session (the latest per session).
    pub async fn store_receipt(
        &self,
        contract: &ContractRecord,
        r: &Receipt,
    ) -> Result<ReceiptStored, MarketError> {
        if r.contract != contract.id || r.consumer != contract.consumer {
            return Err(MarketError::BadRequest(
                "the receipt names another contract or consumer than this contract's".into(),
            ));
        }
        if !r.verify() {
            return Err(MarketError::BadSignature(
                "the receipt is not signed by the consumer it names".into(),
            ));
        }
        if r.at > now().saturating_add(300).saturating_mul(1000) {
            return Err(MarketError::BadRequest(
                "the receipt is dated more than 5 minutes ahead; check the clock".into(),
            ));
        }
        let issued_for: Option<String> =
            sqlx::query_scalar("SELECT contract_id FROM credentials WHERE hash = $1")
                .bind(r.credential.to_string())
                .fetch_optional(self.store.pool())
                .await?;
        if issued_for.as_deref() != Some(contract.id.to_string().as_str()) {
            return Err(MarketError::BadRequest(
                "the receipt names no credential issued for this contract".into(),
            ));
        }
        let body = serde_json::to_string(r).map_err(|e| MarketError::BadRequest(e.to_string()))?;
        let done = sqlx::query(
            "INSERT INTO usage_receipts (contract_id, session, consumer, at, body) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (contract_id, session) DO UPDATE SET at = excluded.at, body = excluded.body \
             WHERE excluded.at > usage_receipts.at",
        )
        .bind(contract.id.to_string())
        .bind(r.session.to_string())
        .bind(r.consumer.to_string())
        .bind(r.at as i64)
        .bind(body)
        .execute(self.store.pool())
        .await?;
        Ok(ReceiptStored {
            session: r.session,
            replaced: done.rows_affected() == 1,
        })
    }

    /// An operator decides a dispute: the record stands (and settles) or is voided (charged
    /// nothing).
    pub async fn resolve(&self, id: &UsageRecordId, uphold: bool) -> Result<Disputed, MarketError> {
        let sql = if uphold {
            "UPDATE usage_records SET disputed_at = NULL, dispute_outcome = 'upheld' WHERE id = $1 AND disputed_at IS NOT NULL"
        } else {
            "UPDATE usage_records SET disputed_at = NULL, dispute_outcome = 'voided', amount = '0' WHERE id = $1 AND disputed_at IS NOT NULL"
        };
        let done = sqlx::query(sql)
            .bind(id.to_string())
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() != 1 {
            return Err(MarketError::WrongState {
                state: "not disputed".into(),
                needed: "disputed",
            });
        }
        Ok(Disputed {
            record: id.clone(),
            evidence: None,
            dispute: if uphold {
                DisputeState::Upheld
            } else {
                DisputeState::Voided
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use api::pricing::price;
    use catalog::model::{PlanUnit, Pricing, UnitPrices};

    fn plan(ppu: bool) -> Plan {
        Plan {
            id: "p".into(),
            name: "p".into(),
            pricing: Pricing {
                reserved: None,
                pay_per_use: ppu.then(|| UnitPrices {
                    cpu_core_hour: Credits::from_base_units(3_600_000),
                    memory_gib_hour: Credits::from_base_units(7_200_000),
                    network_gb: Credits::from_base_units(1_000_000),
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
        let did = identity::did_of(&identity::generate().verifying_key());
        UsageRecord {
            id: "r".parse().unwrap(),
            contract: ContractId(B256::repeat_byte(1)),
            provider: did.clone(),
            consumer: did,
            credential: "ab".repeat(32).parse().unwrap(),
            from: 100,
            to: 109,
            connection_millis: 10_000,
            bytes_in: 1_000_000,
            bytes_out: 1_000_000,
            cpu_millis: 20_000,
            max_memory_kib: 1024 * 1024,
            gpu_millis: 0,
            data_accesses: 0,
            session: None,
            signature: None,
        }
    }

    #[test]
    fn life_limits_grow_with_the_contract_and_the_units_bought() {
        let p = plan(true);
        let l = life_limits(&p, 1, 10);
        // 2 cores, 8 Mbit/s: 10 s allow 20 s of CPU and 10 MB each way.
        assert_eq!(
            l,
            LifeLimits {
                connection_ms: 10_000,
                cpu_ms: 20_000,
                gpu_ms: 0,
                bytes: 10_000_000
            }
        );
        assert_eq!(life_limits(&p, 3, 10).cpu_ms, 60_000);
        assert_eq!(life_limits(&p, 1, u64::MAX).cpu_ms, i64::MAX / 4);
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
        p.pricing.pay_per_use.as_mut().unwrap().gpu_hour = Credits::from_base_units(10_000_000);
        let region = PricingContext {
            gpu_record_fee: 77,
            ..PricingContext::default()
        };
        assert_eq!(price(&g, &p, &region), 42_000 + 5_000_000 + 77);
        // Dataset accesses pay the dataset's provider per access.
        let mut d = r.clone();
        d.data_accesses = 3;
        let mut p = plan(true);
        p.pricing.pay_per_use.as_mut().unwrap().data_access = Credits::from_base_units(500);
        assert_eq!(price(&d, &p, &ctx), 42_000 + 1_500);
    }

    #[test]
    fn a_charge_never_exceeds_what_the_signed_prices_give() {
        let r = record();
        let did = r.provider.clone();
        let party = api::document::Party {
            did,
            account: alloy::primitives::Address::ZERO,
        };
        let doc = |usage| ContractDocument {
            kind: api::document::DOCUMENT_KIND.into(),
            contract_id: r.contract,
            chain_id: 1,
            marketplace: alloy::primitives::Address::ZERO,
            consumer: party.clone(),
            provider: party.clone(),
            provider_config_cid: None,
            offer_id: "o".parse().unwrap(),
            offer_version: 1,
            plan: plan(true),
            quantity: 1,
            price: api::document::Price {
                model: api::document::PriceModel::PayPerUse,
                period_price: Credits::ZERO,
                period_seconds: 0,
                periods: 0,
            },
            deposit: Credits::from_base_units(1_000_000),
            usage,
            green_energy_percent: 0,
            issued_at: 0,
            sla: api::document::Sla {
                availability: Default::default(),
                declared_metrics: vec![],
                region: "eu".into(),
                country: "IT".into(),
            },
            consumer_wireguard_key: None,
        };
        let ctx = PricingContext::default();
        // No signed bound: nothing is charged.
        assert_eq!(charge(&r, &doc(None), &ctx), 0);
        let signed = |cpu: u128| api::document::UsageBound {
            prices: api::document::UsagePrices {
                cpu_core_hour: Credits::from_base_units(cpu),
                memory_gib_hour: Credits::from_base_units(7_200_000),
                network_gb: Credits::from_base_units(1_000_000),
                ..Default::default()
            },
            cap: Credits::from_base_units(1_000_000),
            window_seconds: 3600,
        };
        assert_eq!(charge(&r, &doc(Some(signed(3_600_000))), &ctx), 42_000);
        // A plan dearer than what was signed is charged at the signed prices.
        assert_eq!(charge(&r, &doc(Some(signed(1_800_000))), &ctx), 32_000);
    }
}
