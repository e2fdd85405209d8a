//! At start, after the transaction journal has restored what it could: the contracts the broker
//! holds as active or closed are compared with the chain. One the chain no longer has (its opening
//! was lost in a crash or a reorganisation and could not be sent again) is marked failed, with
//! why, so it is never shown as running: the chain took no deposit for it. Any other difference is
//! reported as an error for an operator; nothing is guessed.

use api::contracts::ChainStatus;
use api::ContractState;

use super::records::{self, Change};
use super::{Market, MarketError};
use crate::store::now;

/// Why a contract is marked failed when the chain lost it.
pub const LOST: &str = "the chain no longer has this contract (its opening was lost in a crash \
                        or a reorganisation and could not be restored); no deposit was taken";

/// What the comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub checked: usize,
    /// Active in the broker, unknown to the chain: marked failed.
    pub marked_failed: usize,
    /// Differences left for an operator (logged as errors).
    pub disagreements: usize,
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
    for c in held {
        out.checked += 1;
        let chain = market.ledger.agreement(c.id).await?.status;
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
