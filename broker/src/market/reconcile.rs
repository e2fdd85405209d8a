//! At start, after the transaction journal has restored what it could, the broker's records are
//! compared with the chain, and what the chain no longer has is never shown as done:
//! - a contract held active that the chain does not know (its opening was lost in a crash or a
//!   reorganisation and could not be sent again) is marked failed, with why: no deposit was taken;
//! - an account link the chain lost is unmarked, so the participant links again (only the
//!   account's own signature can restore it);
//! - configurations newer than the chain's are dropped, so the provider registers again;
//! - a settlement batch the chain did not settle goes back to `built` and is sent again (the
//!   broker's own transaction), and a release the chain did not apply is made again.
//!
//! Any other difference is reported as an error for an operator; nothing is guessed.

use api::contracts::ChainStatus;
use api::ContractState;

use alloy::primitives::Address;
use api::{BatchId, ContractId, Credits, Did};
use futures::{StreamExt, TryStreamExt};

use super::records::{self, Change};
use super::{Market, MarketError};
use crate::store::{now, Decode};

/// Why a contract is marked failed when the chain lost it.
pub const LOST: &str = "the chain no longer has this contract (its opening was lost in a crash \
                        or a reorganisation and could not be restored); no deposit was taken";

/// Settlement batches compared at each start, newest first: a crash or a reorganisation loses
/// only a chain's latest blocks.
const RECENT_BATCHES: i64 = 1024;

/// Chain reads in flight at once: a start with many records waits on the node's latency
/// `READS_AT_ONCE` times less.
const READS_AT_ONCE: usize = 16;

/// `read` for each of `items`, `READS_AT_ONCE` at a time, in their order.
async fn read_each<I, T, F, Fut>(items: Vec<I>, read: F) -> Result<Vec<T>, MarketError>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, MarketError>>,
{
    futures::stream::iter(items)
        .map(read)
        .buffered(READS_AT_ONCE)
        .try_collect()
        .await
}

/// What the comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Records compared with the chain.
    pub checked: usize,
    /// Active in the broker, unknown to the chain: marked failed.
    pub marked_failed: usize,
    /// Account links the chain lost: unmarked (the participant links again).
    pub links_unmarked: usize,
    /// Configurations newer than the chain's: dropped (the provider registers again).
    pub configs_dropped: usize,
    /// Batches the chain did not settle: back to `built`, sent again.
    pub batches_resent: usize,
    /// Releases the chain did not apply: made again.
    pub releases_resent: usize,
    /// Differences left for an operator (logged as errors).
    pub disagreements: usize,
}

impl Reconciled {
    fn add(&mut self, o: Reconciled) {
        self.checked += o.checked;
        self.marked_failed += o.marked_failed;
        self.links_unmarked += o.links_unmarked;
        self.configs_dropped += o.configs_dropped;
        self.batches_resent += o.batches_resent;
        self.releases_resent += o.releases_resent;
        self.disagreements += o.disagreements;
    }
}

/// Every comparison, in dependency order (links before the configurations they carry).
pub async fn all(market: &Market) -> Result<Reconciled, MarketError> {
    let mut out = links(market).await?;
    out.add(configs(market).await?);
    out.add(contracts(market).await?);
    out.add(batches(market).await?);
    Ok(out)
}

/// The chain's status a broker state requires.
fn agrees(state: ContractState, chain: ChainStatus) -> bool {
    match state {
        ContractState::Active => matches!(chain, ChainStatus::Active | ChainStatus::Suspended),
        ContractState::Closed => chain == ChainStatus::Closed,
        _ => true,
    }
}

pub async fn contracts(market: &Market) -> Result<Reconciled, MarketError> {
    let mut out = Reconciled::default();
    let held = records::in_states(
        &market.store,
        &[ContractState::Active, ContractState::Closed],
    )
    .await?;
    let read = read_each(held, |c| async move {
        let chain = market.ledger.agreement(c.id).await?.status;
        Ok::<_, MarketError>((c, chain))
    })
    .await?;
    for (c, chain) in read {
        out.checked += 1;
        if agrees(c.state, chain) {
            continue;
        }
        if c.state == ContractState::Active && chain == ChainStatus::None {
            tracing::error!(contract = %c.id, "active in the broker, unknown to the chain: marked failed");
            let change = Change {
                failure: Some(LOST),
                ..Change::default()
            };
            if records::transition(market, c.id, c.state, ContractState::Failed, change, now())
                .await?
            {
                out.marked_failed += 1;
            }
        } else {
            tracing::error!(contract = %c.id, broker = %c.state, chain = ?chain, "the broker's record and the chain disagree");
            out.disagreements += 1;
        }
    }
    Ok(out)
}

/// (did, account, the account parsed) of the participants `sql` selects.
async fn linked_rows(
    market: &Market,
    sql: &str,
) -> Result<Vec<(String, String, Address)>, MarketError> {
    let rows: Vec<(String, String)> = sqlx::query_as(sql).fetch_all(market.store.pool()).await?;
    rows.into_iter()
        .map(|(did, account)| {
            let address = Decode {
                table: "participants",
                key: &did,
            }
            .parse("account", &account)?;
            Ok((did, account, address))
        })
        .collect()
}

/// Participants the broker holds as linked: the chain must link the same account to the same did.
pub async fn links(market: &Market) -> Result<Reconciled, MarketError> {
    let mut out = Reconciled::default();
    let rows = linked_rows(
        market,
        "SELECT did, account FROM participants WHERE account IS NOT NULL",
    )
    .await?;
    let read = read_each(rows, |(did, account, address)| async move {
        let (on_chain, _) = market.ledger.linked(address).await?;
        Ok::<_, MarketError>((did, account, on_chain))
    })
    .await?;
    for (did, account, on_chain) in read {
        out.checked += 1;
        if on_chain == did {
            continue;
        }
        if on_chain.is_empty() {
            tracing::error!(%did, %account, "the chain lost the account's link: unmarked, the participant links again");
            let undone = sqlx::query(
                "UPDATE participants SET account = NULL WHERE did = $1 AND account = $2",
            )
            .bind(&did)
            .bind(&account)
            .execute(market.store.pool())
            .await?;
            out.links_unmarked += undone.rows_affected() as usize;
        } else {
            tracing::error!(%did, %account, chain = %on_chain, "the account is linked to another did on chain");
            out.disagreements += 1;
        }
    }
    Ok(out)
}

/// Providers' newest configurations: the chain's version and CID are the broker's.
pub async fn configs(market: &Market) -> Result<Reconciled, MarketError> {
    let mut out = Reconciled::default();
    let rows = linked_rows(
        market,
        "SELECT DISTINCT c.did, p.account FROM provider_configs c \
         JOIN participants p ON p.did = c.did WHERE p.account IS NOT NULL",
    )
    .await?;
    let read = read_each(rows, |(did, _, address)| async move {
        let provider: Did = Decode {
            table: "participants",
            key: &did,
        }
        .parse("did", &did)?;
        let (chain_version, chain_cid) = market.ledger.config_of(address).await?;
        let current = super::providers::current_config(&market.store, &provider).await?;
        Ok::<_, MarketError>((did, provider, chain_version, chain_cid, current))
    })
    .await?;
    for (did, provider, chain_version, chain_cid, current) in read {
        out.checked += 1;
        let Some((mut version, mut cid)) = current else {
            continue;
        };
        if version > chain_version {
            tracing::error!(%did, broker = version, chain = chain_version, "configurations the chain lost: dropped, the provider registers again");
            let dropped =
                sqlx::query("DELETE FROM provider_configs WHERE did = $1 AND version > $2")
                    .bind(&did)
                    .bind(chain_version as i64)
                    .execute(market.store.pool())
                    .await?;
            out.configs_dropped += dropped.rows_affected() as usize;
            match super::providers::current_config(&market.store, &provider).await? {
                Some(kept) => (version, cid) = kept,
                None => continue,
            }
        }
        // A newer version on chain was set by the provider itself (the registry allows it).
        if version == chain_version && cid.to_string() != chain_cid {
            tracing::error!(%did, version, broker = %cid, chain = %chain_cid, "the configuration's CID differs on chain");
            out.disagreements += 1;
        }
    }
    Ok(out)
}

/// What the chain holds of a batch the broker holds as settled.
enum BatchOnChain {
    /// Nothing was to go on chain.
    Nothing,
    Agrees,
    NotSettled,
    /// Released in the broker, its charges still locked on chain.
    NotReleased,
}

/// Recent settled batches: the chain settled each, and released what the broker released.
pub async fn batches(market: &Market) -> Result<Reconciled, MarketError> {
    let mut out = Reconciled::default();
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, charges, released_at FROM settlement_batches WHERE state = 'settled' \
         ORDER BY settled_at DESC, id LIMIT $1",
    )
    .bind(RECENT_BATCHES)
    .fetch_all(market.store.pool())
    .await?;
    // What the chain says of each: settled at all, and (when the broker released it) whether
    // its charges are still locked. One release covers every contract of its batch, so the
    // first contract tells.
    let read = read_each(rows, |(id, charges, released_at)| async move {
        let d = Decode {
            table: "settlement_batches",
            key: &id,
        };
        let batch: BatchId = d.parse("id", &id)?;
        let charges: Vec<(ContractId, Credits)> = d.json("charges", &charges)?;
        // No charges: every contract was skipped, nothing went on chain.
        let Some((first, _)) = charges.first() else {
            return Ok((id, batch, BatchOnChain::Nothing));
        };
        let found = if !market.ledger.batch_settled(batch.0).await? {
            BatchOnChain::NotSettled
        } else if released_at.is_some()
            && !market
                .ledger
                .usage_charge(batch.0, *first)
                .await?
                .1
                .is_zero()
        {
            BatchOnChain::NotReleased
        } else {
            BatchOnChain::Agrees
        };
        Ok::<_, MarketError>((id, batch, found))
    })
    .await?;
    for (id, batch, found) in read {
        out.checked += 1;
        match found {
            BatchOnChain::Nothing | BatchOnChain::Agrees => {}
            BatchOnChain::NotSettled => {
                tracing::error!(%batch, "a batch the chain did not settle: sent again");
                let back = sqlx::query(
                    "UPDATE settlement_batches SET state = 'built', tx_hash = NULL, settled_at = NULL, \
                     releasable_at = NULL, released_at = NULL WHERE id = $1 AND state = 'settled'",
                )
                .bind(&id)
                .execute(market.store.pool())
                .await?;
                out.batches_resent += back.rows_affected() as usize;
            }
            BatchOnChain::NotReleased => {
                tracing::error!(%batch, "a release the chain did not apply: made again");
                sqlx::query("UPDATE settlement_batches SET released_at = NULL WHERE id = $1")
                    .bind(&id)
                    .execute(market.store.pool())
                    .await?;
                out.releases_resent += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chain_states_a_broker_state_requires_agree() {
        assert!(agrees(ContractState::Active, ChainStatus::Suspended));
        assert!(!agrees(ContractState::Active, ChainStatus::None));
        assert!(!agrees(ContractState::Active, ChainStatus::Closed));
        assert!(agrees(ContractState::Closed, ChainStatus::Closed));
        assert!(!agrees(ContractState::Closed, ChainStatus::Active));
    }
}
