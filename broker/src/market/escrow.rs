//! Escrow that never runs silently dry. For each active contract the broker estimates how long its
//! escrow lasts (what is left after the usage not yet settled, at the rate the contract has been
//! using it, or until the next reserved period it cannot pay), warns the parties well before
//! (`contract.escrow_low`), charges reserved periods when due, suspends the contract when the
//! escrow cannot pay (on chain, credentials revoked: `contract.suspended`), resumes it after a
//! top-up (`contract.resumed`), and closes it with a refund when it stays suspended past a grace.

use alloy::primitives::B256;
use serde::Serialize;
use serde_json::json;

use super::credentials;
use super::records::{self, flush, Change, ContractRecord, Pending, State};
use super::MarketError;
use crate::events::outbox::{Audience, Topic};
use crate::ledger_link::{ChainAgreement, ChainStatus, LedgerLink};
use crate::store::Store;

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

/// Amounts go out as decimal strings (they exceed what JSON numbers carry exactly).
fn decimal<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// What the escrow looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runway {
    #[serde(serialize_with = "decimal")]
    pub escrow: u128,
    /// Usage accepted but not settled yet.
    #[serde(serialize_with = "decimal")]
    pub pending: u128,
    #[serde(serialize_with = "decimal")]
    pub available: u128,
    /// Credit base units per hour the contract has been using (pay-per-use).
    #[serde(serialize_with = "decimal")]
    pub rate_per_hour: u128,
    /// Seconds until the escrow cannot pay; none when nothing is using it.
    pub seconds_left: Option<u64>,
    pub warning: bool,
    pub suspended: bool,
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

async fn usage_totals(store: &Store, contract: &str) -> Result<(u128, u128), MarketError> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT amount, batch_id FROM usage_records WHERE contract_id = $1 AND disputed_at IS NULL",
    )
    .bind(contract.to_string())
    .fetch_all(store.pool())
    .await?;
    let (mut used, mut pending) = (0u128, 0u128);
    for (amount, batch) in rows {
        let a = amount.parse::<u128>().unwrap_or(0);
        used += a;
        if batch.is_none() {
            pending += a;
        }
    }
    Ok((used, pending))
}

async fn marks(store: &Store, contract: &str) -> Result<(Option<u64>, Option<u64>), MarketError> {
    let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT warned_at, suspended_at FROM contract_escrow WHERE contract_id = $1",
    )
    .bind(contract.to_string())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map_or((None, None), |(w, s)| {
        (w.map(|t| t as u64), s.map(|t| t as u64))
    }))
}

/// Whether the broker has the contract suspended for its escrow.
pub async fn is_suspended(store: &Store, contract: &str) -> Result<bool, MarketError> {
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

async fn look(
    store: &Store,
    ledger: &LedgerLink,
    c: &ContractRecord,
    policy: EscrowPolicy,
    now: u64,
) -> Result<Look, MarketError> {
    let a = ledger.agreement(chain_id(c)?).await?;
    let (used, pending) = usage_totals(store, &c.id).await?;
    let escrow: u128 = a.escrow.parse().unwrap_or(0);
    let period_price: u128 = a.period_price.parse().unwrap_or(0);
    let active = now.saturating_sub(c.created_at).max(1);
    let left = seconds_left(
        escrow,
        pending,
        used,
        active,
        period_price,
        a.period,
        a.next_charge_at,
        now,
    );
    let (warned_at, suspended_at) = marks(store, &c.id).await?;
    Ok(Look {
        runway: Runway {
            escrow,
            pending,
            available: escrow.saturating_sub(pending),
            rate_per_hour: used.saturating_mul(3600) / u128::from(active),
            seconds_left: left,
            warning: left.is_some_and(|s| s < policy.warn_before_secs),
            suspended: suspended_at.is_some() || a.status == ChainStatus::Suspended,
        },
        agreement: a,
        warned_at,
        suspended_at,
    })
}

fn chain_id(c: &ContractRecord) -> Result<B256, MarketError> {
    c.id.parse()
        .map_err(|_| MarketError::NoContract(c.id.clone()))
}

pub async fn runway(
    store: &Store,
    ledger: &LedgerLink,
    c: &ContractRecord,
    policy: EscrowPolicy,
    now: u64,
) -> Result<(Runway, ChainAgreement), MarketError> {
    let l = look(store, ledger, c, policy, now).await?;
    Ok((l.runway, l.agreement))
}

fn event(c: &ContractRecord, topic: Topic, payload: serde_json::Value) -> Pending {
    Pending {
        topic,
        subject: c.id.clone(),
        audience: Audience::parties(&[&c.consumer, &c.provider]),
        payload,
    }
}

async fn mark(
    store: &Store,
    c: &ContractRecord,
    column: &str,
    value: Option<u64>,
    extra: Vec<Pending>,
    revoke: bool,
    now: u64,
) -> Result<(), MarketError> {
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO contract_escrow (contract_id) VALUES ($1) ON CONFLICT (contract_id) DO NOTHING")
        .bind(c.id.clone())
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "UPDATE contract_escrow SET {column} = $1 WHERE contract_id = $2"
    ))
    .bind(value.map(|v| v as i64))
    .bind(c.id.clone())
    .execute(&mut *tx)
    .await?;
    let mut events = extra;
    if revoke {
        events.extend(
            credentials::revoke_in(&mut tx, c, "contract suspended: escrow exhausted", now).await?,
        );
    }
    flush(&mut tx, store, events, now).await?;
    tx.commit().await?;
    Ok(())
}

/// One pass over the active contracts: charge due periods, warn, suspend, close.
pub async fn watch_once(
    store: &Store,
    ledger: &LedgerLink,
    policy: EscrowPolicy,
    now: u64,
) -> Result<(), MarketError> {
    let active: Vec<(String,)> = sqlx::query_as("SELECT id FROM contracts WHERE state = 'active'")
        .fetch_all(store.pool())
        .await?;
    for (id,) in active {
        let Some(c) = records::get_contract(store, &id).await? else {
            continue;
        };
        if let Err(e) = watch_contract(store, ledger, &c, policy, now).await {
            tracing::warn!(contract = %id, error = %e, "escrow watch failed");
        }
    }
    Ok(())
}

async fn watch_contract(
    store: &Store,
    ledger: &LedgerLink,
    c: &ContractRecord,
    policy: EscrowPolicy,
    now: u64,
) -> Result<(), MarketError> {
    let mut l = look(store, ledger, c, policy, now).await?;
    let a = &l.agreement;
    // Reserved periods are charged in advance when due; the chain suspends what cannot pay.
    if a.status == ChainStatus::Active
        && a.period > 0
        && ledger.chain_time().await? >= a.next_charge_at
    {
        ledger.charge_period(chain_id(c)?).await?;
        l = look(store, ledger, c, policy, now).await?;
    }
    let Look {
        runway: r,
        agreement: a,
        warned_at,
        suspended_at,
    } = l;
    let dry = r.available == 0 || r.pending > r.escrow;
    if suspended_at.is_none()
        && (a.status == ChainStatus::Suspended || (dry && r.rate_per_hour > 0))
    {
        if a.status == ChainStatus::Active {
            ledger.suspend(chain_id(c)?, "escrow-exhausted").await?;
        }
        let e = event(
            c,
            Topic::ContractSuspended,
            json!({"contract": c.id, "escrow": r.escrow.to_string(), "pending": r.pending.to_string()}),
        );
        return mark(store, c, "suspended_at", Some(now), vec![e], true, now).await;
    }
    if let Some(since) = suspended_at {
        if now.saturating_sub(since) >= policy.suspended_grace_secs {
            // Closed with a refund of whatever is left (the driver closes on chain).
            records::transition(
                store,
                &c.id,
                State::Active,
                State::Closing,
                Change::default(),
                None,
                now,
            )
            .await?;
        }
        return Ok(());
    }
    if r.warning && warned_at.is_none_or(|w| now.saturating_sub(w) >= policy.warn_before_secs / 2) {
        let e = event(
            c,
            Topic::EscrowLow,
            json!({"contract": c.id, "secondsLeft": r.seconds_left, "available": r.available.to_string()}),
        );
        mark(store, c, "warned_at", Some(now), vec![e], false, now).await?;
    }
    Ok(())
}

/// After a top-up: a suspended contract whose escrow can pay again is resumed (on chain, a new
/// credential).
pub async fn resume_if_paid(
    store: &Store,
    ledger: &LedgerLink,
    c: &ContractRecord,
    policy: EscrowPolicy,
    now: u64,
) -> Result<bool, MarketError> {
    let Look {
        runway: r,
        agreement: a,
        ..
    } = look(store, ledger, c, policy, now).await?;
    let covers = r.available > 0 && r.escrow >= a.period_price.parse::<u128>().unwrap_or(0);
    if !r.suspended || !covers {
        return Ok(false);
    }
    let id = chain_id(c)?;
    if a.status == ChainStatus::Suspended {
        ledger.resume(id).await?;
    }
    let e = event(
        c,
        Topic::ContractResumed,
        json!({"contract": c.id, "escrow": a.escrow}),
    );
    mark(store, c, "suspended_at", None, vec![e], false, now).await?;
    sqlx::query("UPDATE contract_escrow SET warned_at = NULL WHERE contract_id = $1")
        .bind(c.id.clone())
        .execute(store.pool())
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
