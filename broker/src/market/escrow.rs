//! Escrow that never runs silently dry. For each active contract the broker estimates how long its
//! escrow lasts (what is left after the usage not yet settled, at the rate the contract has been
//! using it, or until the next reserved period it cannot pay), warns the parties well before
//! (`contract.escrow_low`), charges reserved periods when due, suspends the contract when the
//! escrow cannot pay (on chain, credentials revoked: `contract.suspended`), resumes it after a
//! top-up (`contract.resumed`), and closes it with a refund when it stays suspended past a grace.

use api::contracts::{ChainAgreement, ChainStatus, Runway};
use api::events::{ContractResumed, ContractSuspended, EscrowLow, EventBody};
use api::{ContractId, ContractState, Credits};

use super::records::{self, Change, ContractRecord};
use super::{credentials, ledger_index};
use super::{Market, MarketError};
use crate::events::Pending;
use crate::store::{Decode, Store};

#[derive(Debug, Clone, Copy)]
pub struct EscrowPolicy {
    /// Warn when the escrow lasts less than this.
    pub warn_before_secs: u64,
    /// Close a contract suspended for longer than this.
    pub suspended_grace_secs: u64,
}

impl Default for EscrowPolicy {
    fn default() -> Self {
        Self {
            warn_before_secs: 3600,
            suspended_grace_secs: 24 * 3600,
        }
    }
}

/// How long the escrow lasts (pure).
#[allow(clippy::too_many_arguments)]
pub fn seconds_left(
    escrow: u128,
    pending: u128,
    used: u128,
    active_secs: u64,
    period_price: u128,
    period: u64,
    next_charge_at: u64,
    now: u64,
) -> Option<u64> {
    let available = escrow.saturating_sub(pending);
    if period_price > 0 && period > 0 {
        let until_next = next_charge_at.saturating_sub(now);
        let periods = (available / period_price) as u64;
        return Some(until_next.saturating_add(periods.saturating_mul(period)));
    }
    if used == 0 || active_secs == 0 {
        return if available == 0 { Some(0) } else { None };
    }
    // available / (used / active) seconds.
    Some(
        (available.saturating_mul(u128::from(active_secs)) / used).min(u128::from(u64::MAX)) as u64,
    )
}

async fn usage_totals(store: &Store, contract: ContractId) -> Result<(u128, u128), MarketError> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, amount, batch_id FROM usage_records WHERE contract_id = $1 AND disputed_at IS NULL",
    )
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    let (mut used, mut pending) = (0u128, 0u128);
    for (id, amount, batch) in rows {
        let a: Credits = Decode {
            table: "usage_records",
            key: &id,
        }
        .parse("amount", &amount)?;
        used = used.saturating_add(a.base_units());
        if batch.is_none() {
            pending = pending.saturating_add(a.base_units());
        }
    }
    Ok((used, pending))
}

#[derive(sqlx::FromRow)]
struct MarksRow {
    warned_at: Option<i64>,
    suspended_at: Option<i64>,
}

async fn marks(
    store: &Store,
    contract: ContractId,
) -> Result<(Option<u64>, Option<u64>), MarketError> {
    let row: Option<MarksRow> = sqlx::query_as(
        "SELECT warned_at, suspended_at FROM contract_escrow WHERE contract_id = $1",
    )
    .bind(contract.to_string())
    .fetch_optional(store.pool())
    .await?;
    let key = contract.to_string();
    let d = Decode {
        table: "contract_escrow",
        key: &key,
    };
    Ok(match row {
        None => (None, None),
        Some(r) => (
            d.opt_u64("warned_at", r.warned_at)?,
            d.opt_u64("suspended_at", r.suspended_at)?,
        ),
    })
}

/// Whether the broker has the contract suspended for its escrow.
pub async fn is_suspended(store: &Store, contract: ContractId) -> Result<bool, MarketError> {
    Ok(marks(store, contract).await?.1.is_some())
}

/// The broker's view of a contract's escrow: the runway, the chain's agreement, and when the
/// broker last warned and suspended it.
struct Look {
    runway: Runway,
    agreement: ChainAgreement,
    warned_at: Option<u64>,
    suspended_at: Option<u64>,
}

async fn look(market: &Market, c: &ContractRecord, now: u64) -> Result<Look, MarketError> {
    let a = market.ledger.agreement(c.id).await?;
    look_at(market, c, a, now).await
}

async fn look_at(
    market: &Market,
    c: &ContractRecord,
    a: ChainAgreement,
    now: u64,
) -> Result<Look, MarketError> {
    let (used, pending) = usage_totals(&market.store, c.id).await?;
    let escrow = a.escrow.base_units();
    let active = now.saturating_sub(c.created_at).max(1);
    let left = seconds_left(
        escrow,
        pending,
        used,
        active,
        a.period_price.base_units(),
        a.period,
        a.next_charge_at,
        now,
    );
    let (warned_at, suspended_at) = marks(&market.store, c.id).await?;
    let credits = Credits::from_base_units;
    Ok(Look {
        runway: Runway {
            escrow: a.escrow,
            pending: credits(pending),
            available: credits(escrow.saturating_sub(pending)),
            rate_per_hour: credits(used.saturating_mul(3600) / u128::from(active)),
            seconds_left: left,
            warning: left.is_some_and(|s| s < market.policy.escrow.warn_before_secs),
            suspended: suspended_at.is_some() || a.status == ChainStatus::Suspended,
        },
        agreement: a,
        warned_at,
        suspended_at,
    })
}

pub async fn runway(
    market: &Market,
    c: &ContractRecord,
    now: u64,
) -> Result<(Runway, ChainAgreement), MarketError> {
    let l = look(market, c, now).await?;
    Ok((l.runway, l.agreement))
}

/// Sets one of the watch's marks (and revokes the credentials of a suspension), with its events.
async fn mark(
    market: &Market,
    c: &ContractRecord,
    column: &'static str,
    value: Option<u64>,
    extra: Vec<Pending>,
    revoke: bool,
    now: u64,
) -> Result<(), MarketError> {
    let mut tx = market.store.begin().await?;
    sqlx::query("INSERT INTO contract_escrow (contract_id) VALUES ($1) ON CONFLICT (contract_id) DO NOTHING")
        .bind(c.id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "UPDATE contract_escrow SET {column} = $1 WHERE contract_id = $2"
    ))
    .bind(value.map(|v| v as i64))
    .bind(c.id.to_string())
    .execute(&mut *tx)
    .await?;
    let mut events = extra;
    if revoke {
        events.extend(
            credentials::revoke_in(&mut tx, c, "contract suspended: escrow exhausted", now).await?,
        );
    }
    market.commit(tx, events, now).await
}

/// The agreements the watch keeps, brought up to date from the ledger index: a pass reads from
/// the chain only the contracts whose events the index gained since the previous pass (and those
/// it has not seen yet), not every active contract.
#[derive(Debug, Default)]
pub struct ChainView {
    /// The index's next block and reorganisation count at the last refresh.
    seen: Option<(u64, u64)>,
    agreements: std::collections::HashMap<ContractId, ChainAgreement>,
    /// Chain reads of agreements so far (for tests and logs).
    pub reads: u64,
}

impl ChainView {
    /// Brings the index up to the chain, then forgets what changed since the last refresh.
    pub async fn refresh(&mut self, market: &Market) -> Result<(), MarketError> {
        let progress = ledger_index::follow(market).await?;
        let reorgs = ledger_index::reorg_count(&market.store).await?;
        match self.seen {
            Some((from, seen_reorgs)) if seen_reorgs == reorgs && from <= progress.next_block => {
                for id in ledger_index::contracts_touched_since(&market.store, from).await? {
                    self.agreements.remove(&id);
                }
            }
            // First pass, or the chain went back (a reorganisation or a reset): read afresh.
            _ => self.agreements.clear(),
        }
        self.seen = Some((progress.next_block, reorgs));
        Ok(())
    }

    /// The contract's agreement: kept, or read from the chain when events changed it.
    pub async fn get(
        &mut self,
        market: &Market,
        id: ContractId,
    ) -> Result<ChainAgreement, MarketError> {
        if let Some(a) = self.agreements.get(&id) {
            return Ok(a.clone());
        }
        let a = market.ledger.agreement(id).await?;
        self.reads += 1;
        self.agreements.insert(id, a.clone());
        Ok(a)
    }
}

/// One pass over the active contracts: charge due periods, warn, suspend, close.
pub async fn watch_once(
    market: &Market,
    view: &mut ChainView,
    now: u64,
) -> Result<(), MarketError> {
    view.refresh(market).await?;
    let chain_time = market.ledger.chain_time().await?;
    for c in records::in_states(&market.store, &[ContractState::Active]).await? {
        if let Err(e) = watch_contract(market, view, &c, chain_time, now).await {
            tracing::warn!(contract = %c.id, error = %e, "escrow watch failed");
        }
    }
    // The watch's own transactions show up as events at the next refresh.
    Ok(())
}

async fn watch_contract(
    market: &Market,
    view: &mut ChainView,
    c: &ContractRecord,
    chain_time: u64,
    now: u64,
) -> Result<(), MarketError> {
    let ledger = &market.ledger;
    let mut l = look_at(market, c, view.get(market, c.id).await?, now).await?;
    let a = &l.agreement;
    // Reserved periods are charged in advance when due; the chain suspends what cannot pay.
    if a.status == ChainStatus::Active && a.period > 0 && chain_time >= a.next_charge_at {
        ledger.charge_period(c.id).await?;
        view.agreements.remove(&c.id);
        l = look_at(market, c, view.get(market, c.id).await?, now).await?;
    }
    let Look {
        runway: r,
        agreement: a,
        warned_at,
        suspended_at,
    } = l;
    let dry = r.available.is_zero() || r.pending > r.escrow;
    if suspended_at.is_none()
        && (a.status == ChainStatus::Suspended || (dry && !r.rate_per_hour.is_zero()))
    {
        if a.status == ChainStatus::Active {
            ledger.suspend(c.id, "escrow-exhausted").await?;
        }
        let e = c.parties_event(EventBody::ContractSuspended(ContractSuspended {
            contract: c.id,
            escrow: r.escrow,
            pending: r.pending,
        }));
        return mark(market, c, "suspended_at", Some(now), vec![e], true, now).await;
    }
    if let Some(since) = suspended_at {
        if now.saturating_sub(since) >= market.policy.escrow.suspended_grace_secs {
            // Closed with a refund of whatever is left (the driver closes on chain).
            records::transition(
                market,
                c.id,
                ContractState::Active,
                ContractState::Closing,
                Change::default(),
                now,
            )
            .await?;
            market.signals.driver.notify_one();
        }
        return Ok(());
    }
    let warn_every = market.policy.escrow.warn_before_secs / 2;
    if r.warning && warned_at.is_none_or(|w| now.saturating_sub(w) >= warn_every) {
        let e = c.parties_event(EventBody::EscrowLow(EscrowLow {
            contract: c.id,
            seconds_left: r.seconds_left,
            available: r.available,
        }));
        mark(market, c, "warned_at", Some(now), vec![e], false, now).await?;
    }
    Ok(())
}

/// After a top-up: a suspended contract whose escrow can pay again is resumed (on chain, a new
/// credential).
pub async fn resume_if_paid(
    market: &Market,
    c: &ContractRecord,
    now: u64,
) -> Result<bool, MarketError> {
    let Look {
        runway: r,
        agreement: a,
        ..
    } = look(market, c, now).await?;
    let covers = !r.available.is_zero() && r.escrow >= a.period_price;
    if !r.suspended || !covers {
        return Ok(false);
    }
    if a.status == ChainStatus::Suspended {
        market.ledger.resume(c.id).await?;
    }
    let e = c.parties_event(EventBody::ContractResumed(ContractResumed {
        contract: c.id,
        escrow: a.escrow,
    }));
    mark(market, c, "suspended_at", None, vec![e], false, now).await?;
    sqlx::query("UPDATE contract_escrow SET warned_at = NULL WHERE contract_id = $1")
        .bind(c.id.to_string())
        .execute(market.store.pool())
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runway_for_pay_per_use_and_reserved_plans() {
        // 1000 left after 200 pending, used 600 over 60 s (10/s) → 100 s.
        assert_eq!(seconds_left(1200, 200, 600, 60, 0, 0, 0, 100), Some(100));
        // Nothing used yet: no estimate unless already empty.
        assert_eq!(seconds_left(1200, 0, 0, 60, 0, 0, 0, 100), None);
        assert_eq!(seconds_left(0, 0, 0, 60, 0, 0, 0, 100), Some(0));
        // Reserved: next charge in 30 s, escrow pays 2 more periods of 3600 s.
        assert_eq!(
            seconds_left(250, 0, 0, 60, 100, 3600, 130, 100),
            Some(30 + 7200)
        );
        // Cannot pay the next period: dry at the next charge.
        assert_eq!(seconds_left(50, 0, 0, 60, 100, 3600, 130, 100), Some(30));
    }
}
