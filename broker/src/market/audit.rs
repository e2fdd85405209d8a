//! Auditors' questions, answered from the ledger index (`ledger_index`) after bringing it up to
//! the chain: contracts and their escrow, every flow of a participant's credits, earnings and
//! fees per period, rankings, settlement batches, usage against what was bought, anchored
//! credentials, configuration history, and the index's own counts against the chain's.
//!
//! What the answers are made of is pure (`fold_contracts`, `flows_of`, `bucket_start`, …) and
//! tested without I/O; this module's I/O is reading `ledger_events`.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::primitives::{Address, B256, U256};
use api::audit::*;
use api::{BatchId, ContractId, Credits, Did, Hash32, TxHash};
use contracts::events::{period_ref, LedgerEvent};
use sha2::{Digest, Sha256};

use super::ledger_index::{self, hex_address, EventRow, IndexedEvent, EVENT_COLUMNS};
use super::{Market, MarketError};
use crate::ledger_link::{credits, ChainError};
use crate::store::{Decode, Store};

// ---------------------------------------------------------------------------------------------
// Pure parts

/// A contract as its events fold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractFold {
    pub id: B256,
    pub consumer: Address,
    pub provider: Address,
    pub terms_hash: B256,
    pub terms_cid: String,
    pub signatures_cid: Option<String>,
    pub deposit: u128,
    pub period_price: u128,
    pub period: u64,
    pub opened: (u64, u64, B256),
    pub closed: Option<(u64, u64)>,
    pub topped_up: u128,
    pub period_charged: u128,
    pub usage_charged: u128,
    pub fees: u128,
    pub returned: u128,
    pub refunded: u128,
    pub suspended: bool,
    pub closing: bool,
    pub batches: HashSet<B256>,
}

impl ContractFold {
    pub fn charged(&self) -> u128 {
        self.period_charged.saturating_add(self.usage_charged)
    }

    /// What the escrow holds: deposit and top-ups, less charges, plus what came back, less the
    /// refund.
    pub fn escrow(&self) -> u128 {
        (self.deposit + self.topped_up + self.returned)
            .saturating_sub(self.charged())
            .saturating_sub(self.refunded)
    }

    /// What the ledger cannot explain (zero when it adds up): deposit and top-ups against
    /// charges, returns, refund and what the escrow holds.
    pub fn unexplained(&self) -> u128 {
        let inflow = self.deposit + self.topped_up + self.returned;
        let outflow = self.charged() + self.refunded + self.escrow();
        inflow.abs_diff(outflow)
    }

    pub fn state(&self) -> LedgerContractState {
        if self.closed.is_some() {
            LedgerContractState::Closed
        } else if self.closing {
            LedgerContractState::Closing
        } else if self.suspended {
            LedgerContractState::Suspended
        } else if self.period_price > 0 && self.escrow() < self.period_price {
            LedgerContractState::Low
        } else {
            LedgerContractState::Open
        }
    }
}

fn units(what: &'static str, v: U256) -> Result<u128, ChainError> {
    credits(what, v).map(|c| c.base_units())
}

/// Folds every event of some contracts (in chain order) into one record each, in opening order.
/// Events of a contract whose opening is not among them are ignored.
pub fn fold_contracts(events: &[IndexedEvent]) -> Result<Vec<ContractFold>, ChainError> {
    let mut folds: Vec<ContractFold> = Vec::new();
    let mut at: HashMap<B256, usize> = HashMap::new();
    for e in events {
        if let LedgerEvent::ContractOpened {
            contract,
            consumer,
            provider,
            terms_hash,
            terms_cid,
            deposit,
            period_price,
            period,
        } = &e.event
        {
            at.insert(*contract, folds.len());
            folds.push(ContractFold {
                id: *contract,
                consumer: *consumer,
                provider: *provider,
                terms_hash: *terms_hash,
                terms_cid: terms_cid.clone(),
                signatures_cid: None,
                deposit: units("deposit", *deposit)?,
                period_price: units("period price", *period_price)?,
                period: *period,
                opened: (e.block, e.at, e.tx),
                closed: None,
                topped_up: 0,
                period_charged: 0,
                usage_charged: 0,
                fees: 0,
                returned: 0,
                refunded: 0,
                suspended: false,
                closing: false,
                batches: HashSet::new(),
            });
            continue;
        }
        let Some(i) = e.event.contract().and_then(|c| at.get(&c).copied()) else {
            continue;
        };
        let f = &mut folds[i];
        match &e.event {
            LedgerEvent::TermsSigned { signatures_cid, .. } => {
                f.signatures_cid = Some(signatures_cid.clone())
            }
            LedgerEvent::ToppedUp { amount, .. } => f.topped_up += units("top-up", *amount)?,
            LedgerEvent::Charged {
                reference, amount, ..
            } => {
                let a = units("charge", *amount)?;
                if *reference == period_ref() {
                    f.period_charged += a;
                } else {
                    f.usage_charged += a;
                    f.batches.insert(*reference);
                }
            }
            LedgerEvent::PeriodEarned { fee, .. } | LedgerEvent::UsageEarned { fee, .. } => {
                f.fees += units("fee", *fee)?
            }
            LedgerEvent::PeriodRefunded { amount, .. } => f.returned += units("unused", *amount)?,
            LedgerEvent::OverchargeRefunded { amount, .. } => {
                let a = units("overcharge", *amount)?;
                f.returned += a;
                // After the close it goes to the consumer directly.
                if f.closed.is_some() {
                    f.refunded += a;
                }
            }
            LedgerEvent::Suspended { .. } => f.suspended = true,
            LedgerEvent::Resumed { .. } => f.suspended = false,
            LedgerEvent::CloseRequested { .. } => f.closing = true,
            LedgerEvent::ContractClosed { refund, .. } => {
                f.refunded += units("refund", *refund)?;
                f.closed = Some((e.block, e.at));
            }
            _ => {}
        }
    }
    Ok(folds)
}

/// Every flow of credits that touches `account`, in chain order, given every event that names
/// it and every event of its contracts. `marketplace` is the Marketplace's address: token
/// transfers to and from it show as the Marketplace's own events (deposit, refund, …).
pub fn flows_of(
    account: Address,
    marketplace: Address,
    events: &[IndexedEvent],
) -> Result<Vec<Flow>, ChainError> {
    let mut sides: HashMap<B256, (bool, bool)> = HashMap::new(); // (consumer, provider)
    for e in events {
        if let LedgerEvent::ContractOpened {
            contract,
            consumer,
            provider,
            ..
        } = &e.event
        {
            sides.insert(*contract, (*consumer == account, *provider == account));
        }
    }
    let mut out = Vec::new();
    for e in events {
        let mut push = |kind, amount: U256, contract: Option<B256>, other: Option<Address>| {
            units("flow", amount).map(|a| {
                out.push(Flow {
                    block: e.block,
                    log_index: e.log_index,
                    tx: TxHash(e.tx),
                    at: e.at,
                    kind,
                    amount: Credits::from_base_units(a),
                    contract_id: contract.map(ContractId),
                    counterparty: other,
                })
            })
        };
        let (consumer, provider) = e
            .event
            .contract()
            .and_then(|c| sides.get(&c).copied())
            .unwrap_or((false, false));
        let c = e.event.contract();
        match &e.event {
            LedgerEvent::Transfer { from, to, value } => {
                if *from == marketplace || *to == marketplace {
                    continue;
                }
                if *to == account && from.is_zero() {
                    push(FlowKind::Minted, *value, None, None)?;
                } else if *to == account {
                    push(FlowKind::TransferIn, *value, None, Some(*from))?;
                } else if *from == account {
                    push(FlowKind::TransferOut, *value, None, Some(*to))?;
                }
            }
            LedgerEvent::ContractOpened { deposit, .. } if consumer => {
                push(FlowKind::Deposit, *deposit, c, None)?
            }
            LedgerEvent::ToppedUp { amount, .. } if consumer => {
                push(FlowKind::TopUp, *amount, c, None)?
            }
            LedgerEvent::Charged { amount, .. } if consumer => {
                push(FlowKind::Charge, *amount, c, None)?
            }
            LedgerEvent::PeriodRefunded { amount, .. }
            | LedgerEvent::OverchargeRefunded { amount, .. }
                if consumer =>
            {
                push(FlowKind::Returned, *amount, c, None)?
            }
            LedgerEvent::ContractClosed { refund, .. } if consumer => {
                push(FlowKind::Refund, *refund, c, None)?
            }
            LedgerEvent::PeriodEarned { amount, fee, .. }
            | LedgerEvent::UsageEarned { amount, fee, .. }
                if provider =>
            {
                push(FlowKind::Earned, amount.saturating_sub(*fee), c, None)?;
                push(FlowKind::Fee, *fee, c, None)?;
            }
            LedgerEvent::Withdrawn {
                provider: p,
                to,
                amount,
            } if *p == account || *to == account => {
                push(FlowKind::Withdrawal, *amount, None, Some(*to))?
            }
            LedgerEvent::FeesWithdrawn { to, amount } if *to == account => {
                push(FlowKind::Withdrawal, *amount, None, None)?
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil (year, month) of a day since 1970-01-01.
fn civil_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// The first second (UTC) of the bucket `t` falls in.
pub fn bucket_start(per: Bucket, t: u64) -> u64 {
    let days = (t / 86_400) as i64;
    let start_day = match per {
        Bucket::Day => days,
        // 1970-01-01 was a Thursday: Monday is three days later in the week's cycle.
        Bucket::Week => days - (days + 3).rem_euclid(7),
        Bucket::Month => {
            let (y, m) = civil_month(days);
            days_from_civil(y, m, 1)
        }
    };
    (start_day.max(0) as u64) * 86_400
}

/// Checks and completes a time range: `to` defaults to now, `from` to 31 days before `to`.
pub fn time_range(from: Option<u64>, to: Option<u64>, now: u64) -> Result<(u64, u64), String> {
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to.saturating_sub(DEFAULT_SPAN_SECS));
    if from > to {
        return Err(format!(
            "the time range is reversed (from {from} is after to {to}); swap them"
        ));
    }
    if to - from > MAX_SPAN_SECS {
        return Err(format!(
            "the time range spans {} days; ask for at most {} days at a time",
            (to - from) / 86_400,
            MAX_SPAN_SECS / 86_400
        ));
    }
    Ok((from, to))
}

/// A page's position, bound to the query it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    fingerprint: String,
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// `query` names the endpoint and every parameter but the cursor, the limit and the format.
    pub fn new(query: &str, limit: Option<u32>, cursor: Option<&str>) -> Result<Self, String> {
        let fingerprint = hex::encode(&Sha256::digest(query.as_bytes())[..8]);
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(format!("limit must be 1 to {MAX_PAGE}"));
        }
        let offset = match cursor {
            None => 0,
            Some(c) => {
                let (fp, offset) = c
                    .split_once('.')
                    .ok_or_else(|| format!("{c:?} is not a cursor this API gave"))?;
                if fp != fingerprint {
                    return Err(
                        "this cursor belongs to another query; repeat the query it came from, or start again without a cursor"
                            .into(),
                    );
                }
                offset
                    .parse()
                    .map_err(|_| format!("{c:?} is not a cursor this API gave"))?
            }
        };
        Ok(Self {
            fingerprint,
            offset,
            limit: limit as usize,
        })
    }

    /// This page of `items`, and the cursor of the next.
    pub fn cut<T>(&self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let page: Vec<T> = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        let end = self.offset + page.len();
        let next = (end < total).then(|| format!("{}.{end}", self.fingerprint));
        (page, next)
    }
}

mod hex {
    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Reads a revocation reason (32 bytes, zero-padded text) as text.
fn reason_text(r: B256) -> String {
    let bytes: Vec<u8> = r.iter().copied().take_while(|b| *b != 0).collect();
    match std::str::from_utf8(&bytes) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => r.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// A row of a CSV export.
pub trait CsvRow {
    const HEADER: &'static str;
    fn row(&self) -> Vec<String>;
}

/// Quotes a field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn to_csv<T: CsvRow>(items: &[T]) -> String {
    let mut out = String::from(T::HEADER);
    out.push('\n');
    for i in items {
        let row: Vec<String> = i.row().iter().map(|f| field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn state_name(s: LedgerContractState) -> &'static str {
    match s {
        LedgerContractState::Open => "open",
        LedgerContractState::Low => "low",
        LedgerContractState::Suspended => "suspended",
        LedgerContractState::Closing => "closing",
        LedgerContractState::Closed => "closed",
    }
}

impl CsvRow for AuditContract {
    const HEADER: &'static str = "contract,consumer,provider,consumer_did,provider_did,terms_hash,terms_cid,signatures_cid,deposit,period_price,period,opened_block,opened_at,opened_tx,closed_block,closed_at,topped_up,charged,fees,returned,refunded,escrow,state";
    fn row(&self) -> Vec<String> {
        vec![
            self.contract_id.to_string(),
            hex_address(self.consumer),
            hex_address(self.provider),
            opt(&self.consumer_did),
            opt(&self.provider_did),
            self.terms_hash.to_string(),
            self.terms_cid.clone(),
            opt(&self.signatures_cid),
            self.deposit.to_string(),
            self.period_price.to_string(),
            self.period.to_string(),
            self.opened_block.to_string(),
            self.opened_at.to_string(),
            self.opened_tx.to_string(),
            opt(&self.closed_block),
            opt(&self.closed_at),
            self.topped_up.to_string(),
            self.charged.to_string(),
            self.fees.to_string(),
            self.returned.to_string(),
            self.refunded.to_string(),
            self.escrow.to_string(),
            state_name(self.state).into(),
        ]
    }
}

fn flow_name(k: FlowKind) -> &'static str {
    match k {
        FlowKind::Minted => "minted",
        FlowKind::TransferIn => "transfer-in",
        FlowKind::TransferOut => "transfer-out",
        FlowKind::Deposit => "deposit",
        FlowKind::TopUp => "top-up",
        FlowKind::Charge => "charge",
        FlowKind::Earned => "earned",
        FlowKind::Fee => "fee",
        FlowKind::Returned => "returned",
        FlowKind::Refund => "refund",
        FlowKind::Withdrawal => "withdrawal",
    }
}

impl CsvRow for Flow {
    const HEADER: &'static str = "block,log_index,tx,at,kind,amount,contract,counterparty";
    fn row(&self) -> Vec<String> {
        vec![
            self.block.to_string(),
            self.log_index.to_string(),
            self.tx.to_string(),
            self.at.to_string(),
            flow_name(self.kind).into(),
            self.amount.to_string(),
            opt(&self.contract_id),
            self.counterparty.map(hex_address).unwrap_or_default(),
        ]
    }
}

impl CsvRow for EarningsRow {
    const HEADER: &'static str = "start,provider_earnings,broker_fees,events";
    fn row(&self) -> Vec<String> {
        vec![
            self.start.to_string(),
            self.provider_earnings.to_string(),
            self.broker_fees.to_string(),
            self.events.to_string(),
        ]
    }
}

impl CsvRow for RankingRow {
    const HEADER: &'static str = "rank,account,did,contracts,sales";
    fn row(&self) -> Vec<String> {
        vec![
            self.rank.to_string(),
            hex_address(self.account),
            opt(&self.did),
            self.contracts.to_string(),
            self.sales.to_string(),
        ]
    }
}

impl CsvRow for AuditBatch {
    const HEADER: &'static str =
        "batch,merkle_root,records_cid,record_count,total,block,at,tx,contract,amount,fee,skipped";
    fn row(&self) -> Vec<String> {
        // One line per batch; its charges as `contract:amount` pairs.
        let charges: Vec<String> = self
            .charges
            .iter()
            .map(|c| format!("{}:{}", c.contract_id, c.amount))
            .collect();
        vec![
            self.batch_id.to_string(),
            self.merkle_root.to_string(),
            self.records_cid.clone(),
            self.record_count.to_string(),
            self.total.to_string(),
            self.block.to_string(),
            self.at.to_string(),
            self.tx.to_string(),
            charges.join(" "),
            self.charges
                .iter()
                .map(|c| c.amount)
                .sum::<Credits>()
                .to_string(),
            self.charges
                .iter()
                .map(|c| c.fee)
                .sum::<Credits>()
                .to_string(),
            self.charges
                .iter()
                .filter(|c| c.skipped.is_some())
                .count()
                .to_string(),
        ]
    }
}

impl CsvRow for UsageAudit {
    const HEADER: &'static str = "contract,bought,periods_charged,usage_charged,returned,refunded,escrow,batches,records_settled,unexplained";
    fn row(&self) -> Vec<String> {
        vec![
            self.contract_id.to_string(),
            self.bought.to_string(),
            self.periods_charged.to_string(),
            self.usage_charged.to_string(),
            self.returned.to_string(),
            self.refunded.to_string(),
            self.escrow.to_string(),
            self.batches.to_string(),
            opt(&self.records_settled),
            self.unexplained.to_string(),
        ]
    }
}

impl CsvRow for AnchoredCredential {
    const HEADER: &'static str = "hash,issuer,cid,anchored_block,anchored_at,anchored_tx,revoked_block,revoked_at,revoke_reason,provider";
    fn row(&self) -> Vec<String> {
        vec![
            self.hash.to_string(),
            hex_address(self.issuer),
            self.cid.clone(),
            self.anchored_block.to_string(),
            self.anchored_at.to_string(),
            self.anchored_tx.to_string(),
            opt(&self.revoked_block),
            opt(&self.revoked_at),
            opt(&self.revoke_reason),
            opt(&self.provider),
        ]
    }
}

impl CsvRow for ConfigVersion {
    const HEADER: &'static str = "account,did,version,cid,block,at,tx";
    fn row(&self) -> Vec<String> {
        vec![
            hex_address(self.account),
            opt(&self.did),
            self.version.to_string(),
            self.cid.clone(),
            self.block.to_string(),
            self.at.to_string(),
            self.tx.to_string(),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the index

async fn load(
    store: &Store,
    filter: &str,
    binds: &[String],
) -> Result<Vec<IndexedEvent>, MarketError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM ledger_events WHERE {filter} ORDER BY block_number, log_index"
    );
    let mut q = sqlx::query_as::<_, EventRow>(&sql);
    for b in binds {
        q = q.bind(b.clone());
    }
    let rows = q.fetch_all(store.pool()).await?;
    rows.into_iter()
        .map(|r| r.decode().map_err(MarketError::from))
        .collect()
}

/// The ledger's participants: each account's registered did, and back.
#[derive(Debug, Default)]
pub struct Directory {
    by_account: HashMap<Address, Did>,
    by_did: HashMap<String, Address>,
}

impl Directory {
    async fn read(store: &Store) -> Result<Self, MarketError> {
        let mut d = Self::default();
        for e in load(store, "name = 'ParticipantRegistered'", &[]).await? {
            if let LedgerEvent::ParticipantRegistered { account, did, .. } = e.event {
                if let Ok(parsed) = did.parse::<Did>() {
                    d.by_account.insert(account, parsed);
                }
                d.by_did.insert(did, account);
            }
        }
        Ok(d)
    }

    fn did(&self, a: Address) -> Option<Did> {
        self.by_account.get(&a).cloned()
    }

    /// A did:key or an account, as a registered account.
    fn account(&self, who: &str) -> Result<Address, MarketError> {
        let who = who.trim();
        if who.starts_with("0x") {
            let a: Address = who.parse().map_err(|_| {
                MarketError::BadRequest(format!(
                    "{who:?} is not an EVM account (0x and 40 hex digits)"
                ))
            })?;
            if self.by_account.contains_key(&a) {
                return Ok(a);
            }
            return Err(MarketError::NotFound(format!(
                "no participant {who} on the ledger"
            )));
        }
        if !who.starts_with("did:") {
            return Err(MarketError::BadRequest(format!(
                "{who:?} is neither a did:key nor an EVM account (0x…)"
            )));
        }
        self.by_did
            .get(who)
            .copied()
            .ok_or_else(|| MarketError::NotFound(format!("no participant {who} on the ledger")))
    }
}

fn bad(e: String) -> MarketError {
    MarketError::BadRequest(e)
}

fn c(units: u128) -> Credits {
    Credits::from_base_units(units)
}

impl Market {
    /// The end of a range given without `to`: now, or the chain's latest block time when that is
    /// later (a development chain mining many blocks a second runs ahead of the clock), inclusive.
    async fn audit_now(&self, now: u64) -> Result<u64, MarketError> {
        Ok(now.max(self.ledger.chain_time().await?) + 1)
    }

    /// The index brought up to the chain, and the ledger's participants.
    async fn audit_view(&self) -> Result<Directory, MarketError> {
        ledger_index::follow(self).await?;
        Directory::read(&self.store).await
    }

    /// Every event of the contracts opened by (or with) `account`, or of every contract.
    async fn contract_events(
        &self,
        account: Option<Address>,
    ) -> Result<Vec<IndexedEvent>, MarketError> {
        match account {
            None => load(&self.store, "contract_id IS NOT NULL", &[]).await,
            Some(a) => load(
                &self.store,
                "contract_id IN (SELECT contract_id FROM ledger_events WHERE name = 'ContractOpened' \
                 AND (account = $1 OR counterparty = $1))",
                &[hex_address(a)],
            )
            .await,
        }
    }

    fn audit_contract(&self, dir: &Directory, f: &ContractFold) -> AuditContract {
        AuditContract {
            contract_id: ContractId(f.id),
            consumer: f.consumer,
            provider: f.provider,
            consumer_did: dir.did(f.consumer),
            provider_did: dir.did(f.provider),
            terms_hash: Hash32(f.terms_hash),
            terms_cid: f.terms_cid.clone(),
            signatures_cid: f.signatures_cid.clone(),
            deposit: c(f.deposit),
            period_price: c(f.period_price),
            period: f.period,
            opened_block: f.opened.0,
            opened_at: f.opened.1,
            opened_tx: TxHash(f.opened.2),
            closed_block: f.closed.map(|c| c.0),
            closed_at: f.closed.map(|c| c.1),
            topped_up: c(f.topped_up),
            charged: c(f.charged()),
            fees: c(f.fees),
            returned: c(f.returned),
            refunded: c(f.refunded),
            escrow: c(f.escrow()),
            state: f.state(),
        }
    }

    /// Contracts of a participant (or all) opened in a time range, in a state.
    pub async fn audit_contracts(
        &self,
        q: &AuditContractsQuery,
        now: u64,
    ) -> Result<AuditContractPage, MarketError> {
        let (from, to) = time_range(q.from, q.to, self.audit_now(now).await?).map_err(bad)?;
        let page = Page::new(
            &format!(
                "contracts|{:?}|{:?}|{:?}|{from}|{to}",
                q.participant, q.side, q.state
            ),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let dir = self.audit_view().await?;
        let account = q
            .participant
            .as_deref()
            .map(|p| dir.account(p))
            .transpose()?;
        let folds = fold_contracts(&self.contract_events(account).await?)?;
        let items: Vec<AuditContract> = folds
            .iter()
            .filter(|f| f.opened.1 >= from && f.opened.1 < to)
            .filter(|f| match (account, q.side) {
                (None, _) => true,
                (Some(a), None) => f.consumer == a || f.provider == a,
                (Some(a), Some(Side::Consumer)) => f.consumer == a,
                (Some(a), Some(Side::Provider)) => f.provider == a,
            })
            .filter(|f| q.state.is_none_or(|s| f.state() == s))
            .map(|f| self.audit_contract(&dir, f))
            .collect();
        let (items, next_cursor) = page.cut(items);
        Ok(AuditContractPage { items, next_cursor })
    }

    /// Every flow of a participant's credits in a time range.
    pub async fn audit_flows(&self, q: &FlowsQuery, now: u64) -> Result<FlowPage, MarketError> {
        let (from, to) = time_range(q.from, q.to, self.audit_now(now).await?).map_err(bad)?;
        let page = Page::new(
            &format!("flows|{}|{from}|{to}", q.participant),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let dir = self.audit_view().await?;
        let account = dir.account(&q.participant)?;
        let a = hex_address(account);
        let mut events = load(
            &self.store,
            "account = $1 OR counterparty = $1",
            std::slice::from_ref(&a),
        )
        .await?;
        events.extend(self.contract_events(Some(account)).await?);
        events.sort_by_key(|e| (e.block, e.log_index));
        events.dedup_by_key(|e| (e.block, e.log_index));
        let flows: Vec<Flow> = flows_of(
            account,
            self.ledger.deployment.contracts.marketplace,
            &events,
        )?
        .into_iter()
        .filter(|f| f.at >= from && f.at < to)
        .collect();
        let (items, next_cursor) = page.cut(flows);
        Ok(FlowPage {
            account,
            items,
            next_cursor,
        })
    }

    /// Provider earnings and broker fees per day, week or month.
    pub async fn audit_earnings(
        &self,
        q: &EarningsQuery,
        now: u64,
    ) -> Result<EarningsReport, MarketError> {
        let (from, to) = time_range(q.from, q.to, self.audit_now(now).await?).map_err(bad)?;
        let per = q.per.unwrap_or(Bucket::Day);
        let dir = self.audit_view().await?;
        let account = q.provider.as_deref().map(|p| dir.account(p)).transpose()?;
        let events = self.contract_events(account).await?;
        let providers: HashMap<B256, Address> = events
            .iter()
            .filter_map(|e| match &e.event {
                LedgerEvent::ContractOpened {
                    contract, provider, ..
                } => Some((*contract, *provider)),
                _ => None,
            })
            .collect();
        let mut rows: BTreeMap<u64, (u128, u128, u64)> = BTreeMap::new();
        for e in events.iter().filter(|e| e.at >= from && e.at < to) {
            let (LedgerEvent::PeriodEarned {
                contract,
                amount,
                fee,
            }
            | LedgerEvent::UsageEarned {
                contract,
                amount,
                fee,
                ..
            }) = &e.event
            else {
                continue;
            };
            if account.is_some_and(|a| providers.get(contract) != Some(&a)) {
                continue;
            }
            let (amount, fee) = (units("earned", *amount)?, units("fee", *fee)?);
            let r = rows.entry(bucket_start(per, e.at)).or_default();
            r.0 += amount.saturating_sub(fee);
            r.1 += fee;
            r.2 += 1;
        }
        let rows: Vec<EarningsRow> = rows
            .into_iter()
            .map(|(start, (earned, fees, events))| EarningsRow {
                start,
                provider_earnings: c(earned),
                broker_fees: c(fees),
                events,
            })
            .collect();
        Ok(EarningsReport {
            per,
            provider_earnings: rows.iter().map(|r| r.provider_earnings).sum(),
            broker_fees: rows.iter().map(|r| r.broker_fees).sum(),
            rows,
        })
    }

    /// Contracts and sales per provider (or consumer) in a time range, best first.
    pub async fn audit_rankings(
        &self,
        q: &RankingsQuery,
        now: u64,
    ) -> Result<Ranking, MarketError> {
        let (from, to) = time_range(q.from, q.to, self.audit_now(now).await?).map_err(bad)?;
        let (side, by) = (
            q.side.unwrap_or(Side::Provider),
            q.by.unwrap_or(RankBy::Sales),
        );
        let page = Page::new(
            &format!("rankings|{side:?}|{by:?}|{from}|{to}"),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let dir = self.audit_view().await?;
        let events = self.contract_events(None).await?;
        let mut party: HashMap<B256, Address> = HashMap::new();
        let mut per: HashMap<Address, (u64, u128)> = HashMap::new();
        for e in &events {
            match &e.event {
                LedgerEvent::ContractOpened {
                    contract,
                    consumer,
                    provider,
                    ..
                } => {
                    let who = match side {
                        Side::Consumer => *consumer,
                        Side::Provider => *provider,
                    };
                    party.insert(*contract, who);
                    if e.at >= from && e.at < to {
                        per.entry(who).or_default().0 += 1;
                    }
                }
                LedgerEvent::Charged {
                    contract, amount, ..
                } if e.at >= from && e.at < to => {
                    if let Some(who) = party.get(contract) {
                        per.entry(*who).or_default().1 += units("charge", *amount)?;
                    }
                }
                _ => {}
            }
        }
        let mut rows: Vec<(Address, u64, u128)> =
            per.into_iter().map(|(a, (n, s))| (a, n, s)).collect();
        rows.sort_by(|x, y| {
            let key = |r: &(Address, u64, u128)| match by {
                RankBy::Sales => (r.2, u128::from(r.1)),
                RankBy::Contracts => (u128::from(r.1), r.2),
            };
            key(y).cmp(&key(x)).then(x.0.cmp(&y.0))
        });
        let (total_contracts, total_sales) = rows
            .iter()
            .fold((0u64, 0u128), |(n, s), r| (n + r.1, s + r.2));
        let ranked: Vec<RankingRow> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (account, contracts, sales))| RankingRow {
                rank: i as u32 + 1,
                account,
                did: dir.did(account),
                contracts,
                sales: c(sales),
            })
            .collect();
        let (items, next_cursor) = page.cut(ranked);
        Ok(Ranking {
            side,
            by,
            items,
            next_cursor,
            total_contracts,
            total_sales: c(total_sales),
        })
    }

    /// Settlement batches in a time range with what each charged each contract.
    pub async fn audit_settlements(
        &self,
        q: &SettlementsQuery,
        now: u64,
    ) -> Result<SettlementPage, MarketError> {
        let (from, to) = time_range(q.from, q.to, self.audit_now(now).await?).map_err(bad)?;
        let page = Page::new(
            &format!("settlements|{:?}|{from}|{to}", q.contract),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        ledger_index::follow(self).await?;
        let events = load(&self.store, "batch_id IS NOT NULL", &[]).await?;
        let mut batches: Vec<AuditBatch> = Vec::new();
        let mut at: HashMap<B256, usize> = HashMap::new();
        let mut pending: Vec<&IndexedEvent> = Vec::new();
        for e in &events {
            if let LedgerEvent::BatchSettled {
                batch,
                root,
                records_cid,
                record_count,
                total,
                ..
            } = &e.event
            {
                at.insert(*batch, batches.len());
                batches.push(AuditBatch {
                    batch_id: BatchId(*batch),
                    merkle_root: Hash32(*root),
                    records_cid: records_cid.clone(),
                    record_count: *record_count,
                    total: c(units("batch total", *total)?),
                    block: e.block,
                    at: e.at,
                    tx: TxHash(e.tx),
                    charges: Vec::new(),
                });
            } else {
                pending.push(e);
            }
        }
        // Charges are logged before their batch's BatchSettled (same transaction).
        for e in pending {
            let Some(b) = e.event.batch().and_then(|b| at.get(&b)) else {
                continue;
            };
            let batch = &mut batches[*b];
            match &e.event {
                LedgerEvent::Charged {
                    contract,
                    amount,
                    fee,
                    ..
                } => batch.charges.push(BatchCharge {
                    contract_id: ContractId(*contract),
                    amount: c(units("charge", *amount)?),
                    fee: c(units("fee", *fee)?),
                    skipped: None,
                }),
                LedgerEvent::ChargeSkipped {
                    contract,
                    amount,
                    reason,
                    ..
                } => batch.charges.push(BatchCharge {
                    contract_id: ContractId(*contract),
                    amount: c(units("skipped", *amount)?),
                    fee: Credits::ZERO,
                    skipped: Some(reason.to_string()),
                }),
                _ => {}
            }
        }
        let items: Vec<AuditBatch> = batches
            .into_iter()
            .filter(|b| b.at >= from && b.at < to)
            .filter(|b| {
                q.contract
                    .is_none_or(|c| b.charges.iter().any(|x| x.contract_id == c))
            })
            .collect();
        let (items, next_cursor) = page.cut(items);
        Ok(SettlementPage {
            items,
            next_cursor,
            proof_path: "/v1/usage/{record}/proof".into(),
        })
    }

    /// Usage settled against what was bought, per contract.
    pub async fn audit_usage(&self, q: &UsageAuditQuery) -> Result<UsageAuditPage, MarketError> {
        let page = Page::new(
            &format!("usage|{:?}|{:?}", q.contract, q.participant),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let dir = self.audit_view().await?;
        let events = match (&q.contract, &q.participant) {
            (Some(id), _) => load(&self.store, "contract_id = $1", &[id.to_string()]).await?,
            (None, Some(p)) => self.contract_events(Some(dir.account(p)?)).await?,
            (None, None) => self.contract_events(None).await?,
        };
        let folds = fold_contracts(&events)?;
        if let (Some(id), true) = (&q.contract, folds.is_empty()) {
            return Err(MarketError::NotFound(format!(
                "no contract {id} on the ledger"
            )));
        }
        let mut items = Vec::with_capacity(folds.len());
        // Settled records per contract, in one query rather than one per contract.
        let settled: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT contract_id, COUNT(*) FROM usage_records WHERE batch_id IS NOT NULL GROUP BY contract_id",
        )
        .fetch_all(self.store.pool())
        .await?
        .into_iter()
        .collect();
        for f in &folds {
            let settled = settled
                .get(&ContractId(f.id).to_string())
                .copied()
                .unwrap_or(0);
            items.push(UsageAudit {
                contract_id: ContractId(f.id),
                bought: c(f.deposit + f.topped_up),
                periods_charged: c(f.period_charged),
                usage_charged: c(f.usage_charged),
                returned: c(f.returned),
                refunded: c(f.refunded),
                escrow: c(f.escrow()),
                batches: f.batches.len() as u64,
                records_settled: (settled > 0).then_some(settled as u64),
                unexplained: c(f.unexplained()),
            });
        }
        let (items, next_cursor) = page.cut(items);
        Ok(UsageAuditPage { items, next_cursor })
    }

    /// Credentials anchored and revoked, by issuer or by the provider they are about.
    pub async fn audit_credentials(
        &self,
        q: &CredentialsAuditQuery,
    ) -> Result<CredentialAuditPage, MarketError> {
        let page = Page::new(
            &format!("credentials|{:?}|{:?}", q.issuer, q.provider),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let issuer: Option<Address> = q
            .issuer
            .as_deref()
            .map(|i| {
                i.parse().map_err(|_| {
                    bad(format!(
                        "{i:?} is not an EVM account (0x and 40 hex digits)"
                    ))
                })
            })
            .transpose()?;
        ledger_index::follow(self).await?;
        let events = load(
            &self.store,
            "name IN ('CredentialAnchored', 'CredentialRevoked')",
            &[],
        )
        .await?;
        let about: HashMap<String, String> =
            sqlx::query_as::<_, (String, String)>("SELECT hash, provider FROM certificates")
                .fetch_all(self.store.pool())
                .await?
                .into_iter()
                .collect();
        let mut items: Vec<AnchoredCredential> = Vec::new();
        let mut at: HashMap<B256, usize> = HashMap::new();
        for e in &events {
            match &e.event {
                LedgerEvent::CredentialAnchored { hash, issuer, cid } => {
                    at.insert(*hash, items.len());
                    let provider = about
                        .get(&hash.to_string())
                        .and_then(|p| p.parse::<Did>().ok());
                    items.push(AnchoredCredential {
                        hash: Hash32(*hash),
                        issuer: *issuer,
                        cid: cid.clone(),
                        anchored_block: e.block,
                        anchored_at: e.at,
                        anchored_tx: TxHash(e.tx),
                        revoked_block: None,
                        revoked_at: None,
                        revoke_reason: None,
                        provider,
                    });
                }
                LedgerEvent::CredentialRevoked { hash, reason, .. } => {
                    if let Some(i) = at.get(hash) {
                        let item = &mut items[*i];
                        item.revoked_block = Some(e.block);
                        item.revoked_at = Some(e.at);
                        item.revoke_reason = Some(reason_text(*reason));
                    }
                }
                _ => {}
            }
        }
        let items: Vec<AnchoredCredential> = items
            .into_iter()
            .filter(|i| issuer.is_none_or(|a| i.issuer == a))
            .filter(|i| {
                q.provider
                    .as_ref()
                    .is_none_or(|p| i.provider.as_ref() == Some(p))
            })
            .collect();
        let (items, next_cursor) = page.cut(items);
        Ok(CredentialAuditPage { items, next_cursor })
    }

    /// Every configuration version a provider (or every provider) registered.
    pub async fn audit_configs(&self, q: &ConfigsQuery) -> Result<ConfigPage, MarketError> {
        let page = Page::new(
            &format!("configs|{:?}", q.provider),
            q.limit,
            q.cursor.as_deref(),
        )
        .map_err(bad)?;
        let dir = self.audit_view().await?;
        let events = match q.provider.as_deref() {
            Some(p) => {
                load(
                    &self.store,
                    "name = 'ConfigUpdated' AND account = $1",
                    &[hex_address(dir.account(p)?)],
                )
                .await?
            }
            None => load(&self.store, "name = 'ConfigUpdated'", &[]).await?,
        };
        let items: Vec<ConfigVersion> = events
            .iter()
            .filter_map(|e| match &e.event {
                LedgerEvent::ConfigUpdated {
                    account,
                    version,
                    cid,
                } => Some(ConfigVersion {
                    account: *account,
                    did: dir.did(*account),
                    version: *version,
                    cid: cid.clone(),
                    block: e.block,
                    at: e.at,
                    tx: TxHash(e.tx),
                }),
                _ => None,
            })
            .collect();
        let (items, next_cursor) = page.cut(items);
        Ok(ConfigPage { items, next_cursor })
    }

    /// How far the index has read, and what reorganisations it rolled back.
    pub async fn index_status(&self) -> Result<IndexStatus, MarketError> {
        let progress = ledger_index::follow(self).await?;
        let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_events")
            .fetch_one(self.store.pool())
            .await?;
        let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT detected_at, from_block, ancestor, depth, beyond_confirmations FROM ledger_reorgs ORDER BY detected_at, from_block",
        )
        .fetch_all(self.store.pool())
        .await?;
        let d = Decode {
            table: "ledger_reorgs",
            key: "-",
        };
        let reorgs = rows
            .into_iter()
            .map(|(t, f, a, depth, b)| {
                Ok(ReorgSeen {
                    detected_at: d.u64("detected_at", t)?,
                    from_block: d.u64("from_block", f)?,
                    ancestor: d.u64("ancestor", a)?,
                    depth: d.u64("depth", depth)?,
                    beyond_confirmations: b == 1,
                })
            })
            .collect::<Result<Vec<_>, crate::store::Corrupt>>()?;
        Ok(IndexStatus {
            chain_id: self.ledger.deployment.chain_id,
            deployment_block: self.ledger.deployment.deployment_block,
            next_block: progress.next_block,
            head: self.ledger.client.block_number().await?,
            confirmations: self.policy.index.confirmations,
            events: events.max(0) as u64,
            reorgs,
        })
    }

    /// The index's counts of each contract's events against counts read from the chain now,
    /// over the blocks the index has read.
    pub async fn index_selfcheck(&self) -> Result<SelfCheck, MarketError> {
        let progress = ledger_index::follow(self).await?;
        let first = self.ledger.deployment.deployment_block;
        let through = progress.next_block.saturating_sub(1);
        let mut on_chain: BTreeMap<String, u64> = BTreeMap::new();
        let mut from = first;
        while from <= through {
            let to = (from + 2_000 - 1).min(through);
            for e in ledger_index::decode_logs(&self.ledger, self.ledger.all_logs(from, to).await?)
                .await?
            {
                *on_chain
                    .entry(format!("{}.{}", e.source.contract_name(), e.event.name()))
                    .or_default() += 1;
            }
            from = to + 1;
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT source, name, COUNT(*) FROM ledger_events WHERE block_number <= $1 GROUP BY source, name",
        )
        .bind(through as i64)
        .fetch_all(self.store.pool())
        .await?;
        let indexed: BTreeMap<String, u64> = rows
            .into_iter()
            .map(|(s, n, c)| (format!("{s}.{n}"), c.max(0) as u64))
            .collect();
        let names: std::collections::BTreeSet<&String> =
            on_chain.keys().chain(indexed.keys()).collect();
        let counts: Vec<CountCheck> = names
            .into_iter()
            .map(|n| {
                let (i, o) = (
                    indexed.get(n).copied().unwrap_or(0),
                    on_chain.get(n).copied().unwrap_or(0),
                );
                CountCheck {
                    event: n.clone(),
                    indexed: i,
                    on_chain: o,
                    agrees: i == o,
                }
            })
            .collect();
        Ok(SelfCheck {
            through_block: through,
            agrees: counts.iter().all(|c| c.agrees),
            counts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(block: u64, at: u64, event: LedgerEvent) -> IndexedEvent {
        IndexedEvent {
            block,
            block_hash: B256::ZERO,
            log_index: 0,
            tx: B256::repeat_byte(block as u8),
            at,
            source: contracts::events::Source::Marketplace,
            event,
            topics: Vec::new(),
            data: Vec::new(),
        }
    }

    fn u(n: u64) -> U256 {
        U256::from(n)
    }

    #[test]
    fn a_contract_folds_to_what_its_escrow_holds() {
        let id = B256::repeat_byte(1);
        let (consumer, provider) = (Address::repeat_byte(2), Address::repeat_byte(3));
        let events = vec![
            ev(
                1,
                100,
                LedgerEvent::ContractOpened {
                    contract: id,
                    consumer,
                    provider,
                    terms_hash: B256::ZERO,
                    terms_cid: "cid".into(),
                    deposit: u(1_000),
                    period_price: u(300),
                    period: 3600,
                },
            ),
            ev(
                2,
                110,
                LedgerEvent::Charged {
                    contract: id,
                    reference: period_ref(),
                    amount: u(300),
                    fee: u(3),
                    escrow: u(700),
                },
            ),
            ev(
                3,
                120,
                LedgerEvent::Charged {
                    contract: id,
                    reference: B256::repeat_byte(9),
                    amount: u(500),
                    fee: u(5),
                    escrow: u(200),
                },
            ),
        ];
        let f = &fold_contracts(&events).unwrap()[0];
        assert_eq!(f.escrow(), 200);
        // 200 left cannot pay a 300 period.
        assert_eq!(f.state(), LedgerContractState::Low);
        let mut more = events.clone();
        more.push(ev(
            4,
            130,
            LedgerEvent::ToppedUp {
                contract: id,
                by: consumer,
                amount: u(400),
                escrow: u(600),
            },
        ));
        more.push(ev(
            5,
            140,
            LedgerEvent::OverchargeRefunded {
                contract: id,
                reference: B256::repeat_byte(9),
                amount: u(50),
            },
        ));
        more.push(ev(
            6,
            150,
            LedgerEvent::ContractClosed {
                contract: id,
                by: consumer,
                refund: u(650),
            },
        ));
        let f = &fold_contracts(&more).unwrap()[0];
        assert_eq!(f.state(), LedgerContractState::Closed);
        assert_eq!((f.escrow(), f.unexplained()), (0, 0));
        assert_eq!(f.batches.len(), 1);

        let flows = flows_of(consumer, Address::repeat_byte(0xee), &more).unwrap();
        let kinds: Vec<FlowKind> = flows.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FlowKind::Deposit,
                FlowKind::Charge,
                FlowKind::Charge,
                FlowKind::TopUp,
                FlowKind::Returned,
                FlowKind::Refund
            ]
        );
        // The provider sees none of the consumer's side.
        assert!(flows_of(provider, Address::repeat_byte(0xee), &more)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn buckets_start_on_utc_days_mondays_and_first_days() {
        // 2026-12-03T14:00:00Z, a Thursday.
        let t = days_from_civil(2026, 12, 3) as u64 * 86_400 + 14 * 3600;
        let day = bucket_start(Bucket::Day, t);
        assert_eq!(day % 86_400, 0);
        assert_eq!(day, days_from_civil(2026, 12, 3) as u64 * 86_400);
        assert_eq!(
            bucket_start(Bucket::Week, t),
            days_from_civil(2026, 11, 30) as u64 * 86_400
        );
        assert_eq!(
            bucket_start(Bucket::Month, t),
            days_from_civil(2026, 12, 1) as u64 * 86_400
        );
        assert_eq!(civil_month(days_from_civil(2024, 2, 29)), (2024, 2));
    }

    #[test]
    fn ranges_and_cursors_refuse_what_they_cannot_answer() {
        assert!(time_range(Some(10), Some(5), 100)
            .unwrap_err()
            .contains("reversed"));
        assert!(time_range(Some(0), Some(400 * 86_400), 0)
            .unwrap_err()
            .contains("at most 366 days"));
        assert_eq!(
            time_range(None, Some(DEFAULT_SPAN_SECS + 5), 0).unwrap(),
            (5, DEFAULT_SPAN_SECS + 5)
        );
        let p = Page::new("contracts|a", Some(2), None).unwrap();
        let (items, next) = p.cut(vec![1, 2, 3]);
        assert_eq!(items, vec![1, 2]);
        let next = next.unwrap();
        let p2 = Page::new("contracts|a", Some(2), Some(&next)).unwrap();
        assert_eq!(p2.cut(vec![1, 2, 3]), (vec![3], None));
        let other = Page::new("flows|b", Some(2), Some(&next)).unwrap_err();
        assert!(other.contains("another query"), "{other}");
        assert!(Page::new("x", Some(0), None).is_err());
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("plain"), "plain");
    }
}
