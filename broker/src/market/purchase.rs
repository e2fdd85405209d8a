//! The purchase state machine's driver. Every step is persisted before the next starts, and the
//! chain decides what happened to an open that may have been sent: on restart the driver reads
//! the contract's on-chain state and completes the purchase (the contract is there: active) or
//! undoes it (it is not and can no longer be: released, nothing charged). Opening is one
//! transaction that pulls the deposit and creates the contract together, and a contract id opens
//! once (`ContractExists`), so funds never move without a contract nor twice.
//!
//! The driver runs when there is work: a purchase signed or accepted, a close asked for (by this
//! or another broker process, through their events), or a deadline falling due.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::document::SignedDocument;
use api::{ChainStatus, ContentId, ContractId, ContractState, EventBody, TxHash};
use tokio::task::JoinSet;

use super::records::{self, Change, ContractRecord};
use super::{Market, MarketError};
use crate::background::{self, Triggers};
use crate::shutdown::Shutdown;
use crate::store::now;

/// How long after its deadline an unopened purchase is given up: the chain refuses the open
/// after the deadline, so past it (plus clock skew) the purchase can safely be undone.
const DEADLINE_MARGIN_SECS: u64 = 30;
/// How long stopping waits for purchase steps in flight.
const DRAIN: Duration = Duration::from_secs(20);

/// Crash tests only: where the process aborts (as by kill -9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Both signed, signatures stored, before moving to opening.
    Accepted,
    /// About to send the open.
    Opening,
    /// The open is mined, not yet recorded.
    Opened,
    /// Recorded active.
    Active,
}

impl FaultPoint {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "opening" => Self::Opening,
            "opened" => Self::Opened,
            "active" => Self::Active,
            _ => return None,
        })
    }
}

/// Drives contracts through their states; one per broker process (several brokers on one
/// database are safe: each step is a conditional transition).
#[derive(Clone)]
pub struct Driver {
    market: Market,
    abort_at: Option<FaultPoint>,
    busy: Arc<Mutex<HashSet<ContractId>>>,
}

/// The events that give the driver work (from any broker process).
fn wanted(e: &EventBody) -> bool {
    matches!(
        e,
        EventBody::ContractProposed(_)
            | EventBody::ContractAccepted(_)
            | EventBody::ContractClosing(_)
    )
}

impl Driver {
    pub fn new(market: Market, abort_at: Option<FaultPoint>) -> Self {
        Self {
            market,
            abort_at,
            busy: Arc::default(),
        }
    }

    pub async fn run(self, shutdown: Shutdown) {
        let mut triggers = Triggers::new(
            &self.market.signals.hub,
            Some(self.market.signals.driver.clone()),
            wanted,
        );
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let next = match self.start_due(&mut running).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the contracts to drive; retrying");
                    Some(now() + 1)
                }
            };
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = triggers.wait(background::until(next)) => {}
            }
        }
        // Steps in flight finish (each is a complete, persisted step) before the broker stops.
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(done) = running.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a purchase step panicked");
                }
            }
        })
        .await;
    }

    /// Starts a task for every contract with a step to take; returns when a deadline next falls
    /// due.
    async fn start_due(&self, running: &mut JoinSet<()>) -> Result<Option<u64>, MarketError> {
        use ContractState::*;
        let due =
            records::in_states(&self.market.store, &[Proposed, Accepted, Opening, Closing]).await?;
        for c in due {
            let fresh = self
                .busy
                .lock()
                .map(|mut b| b.insert(c.id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let me = self.clone();
            running.spawn(async move {
                let id = c.id;
                if let Err(e) = me.advance(c).await {
                    tracing::warn!(contract = %id, error = %e, "purchase step failed, retrying");
                    // Try again soon, not only at the next event.
                    me.market.signals.driver.notify_one();
                }
                if let Ok(mut b) = me.busy.lock() {
                    b.remove(&id);
                }
            });
        }
        Ok(records::next_deadline(&self.market.store)
            .await?
            .map(|d| d + DEADLINE_MARGIN_SECS))
    }

    fn checkpoint(&self, step: FaultPoint) {
        if self.abort_at == Some(step) {
            tracing::error!(?step, "aborting at the requested fault-injection point");
            std::process::abort();
        }
    }

    /// Runs the contract's steps until it waits for someone else or is final.
    async fn advance(&self, mut c: ContractRecord) -> Result<(), MarketError> {
        // True once this task itself moved the contract to opening: nothing can have been sent
        // for it yet, so the chain need not be asked first.
        let mut opened_here = false;
        loop {
            let moved = match c.state {
                ContractState::Proposed => self.proposed(&c).await?,
                ContractState::Accepted => {
                    opened_here = self.accepted(&c).await?;
                    opened_here
                }
                ContractState::Opening => self.opening(&c, !opened_here).await?,
                ContractState::Closing => self.closing(&c).await?,
                ContractState::Active | ContractState::Closed | ContractState::Failed => false,
            };
            if !moved {
                return Ok(());
            }
            match records::get_contract(&self.market.store, c.id).await? {
                Some(next) => c = next,
                None => return Ok(()),
            }
        }
    }

    async fn fail(
        &self,
        c: &ContractRecord,
        from: ContractState,
        why: &str,
    ) -> Result<bool, MarketError> {
        tracing::info!(contract = %c.id, reason = why, "purchase undone");
        records::transition(
            &self.market,
            c.id,
            from,
            ContractState::Failed,
            Change {
                failure: Some(why),
                ..Change::default()
            },
            now(),
        )
        .await
    }

    async fn proposed(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        if now() > c.deadline {
            return self
                .fail(
                    c,
                    ContractState::Proposed,
                    "the provider did not sign before the deadline",
                )
                .await;
        }
        Ok(false)
    }

    /// Both signed: the signatures go to the content store next to the document.
    async fn accepted(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        let provider_signature = c.provider_signature.clone().ok_or_else(|| {
            crate::store::Corrupt::new(
                "contracts",
                "provider_signature",
                c.id,
                "accepted without the provider's signature",
            )
        })?;
        let signed = SignedDocument {
            document_cid: c.document_cid.clone(),
            consumer: c.consumer.clone(),
            consumer_signature: c.consumer_signature.clone(),
            provider: c.provider.clone(),
            provider_signature,
        };
        let bytes = serde_json::to_vec(&signed).expect("signatures serialise");
        let cid = ContentId::from(self.market.content.put(&bytes).await?);
        self.checkpoint(FaultPoint::Accepted);
        records::transition(
            &self.market,
            c.id,
            ContractState::Accepted,
            ContractState::Opening,
            Change {
                signatures_cid: Some(&cid),
                ..Change::default()
            },
            now(),
        )
        .await
    }

    async fn activate(
        &self,
        c: &ContractRecord,
        tx_hash: Option<TxHash>,
    ) -> Result<bool, MarketError> {
        let moved = records::transition(
            &self.market,
            c.id,
            ContractState::Opening,
            ContractState::Active,
            Change {
                tx_hash,
                ..Change::default()
            },
            now(),
        )
        .await?;
        self.checkpoint(FaultPoint::Active);
        if moved {
            self.market.ensure_credential(c.id).await?;
        }
        Ok(moved)
    }

    /// Opens on chain, or finds out that it is open already, or that it never will be.
    async fn opening(&self, c: &ContractRecord, ask_chain: bool) -> Result<bool, MarketError> {
        self.checkpoint(FaultPoint::Opening);
        let ledger = &self.market.ledger;
        // Resumed (after a crash or an error): an open may have been sent; the chain says.
        if ask_chain && ledger.agreement(c.id).await?.status != ChainStatus::None {
            return self.activate(c, None).await;
        }
        if now() > c.deadline + DEADLINE_MARGIN_SECS {
            return self
                .fail(
                    c,
                    ContractState::Opening,
                    "not opened on chain before the deadline; nothing was charged",
                )
                .await;
        }
        let signatures = c.signatures_cid.as_ref().ok_or_else(|| {
            crate::store::Corrupt::new(
                "contracts",
                "signatures_cid",
                c.id,
                "opening without the signatures envelope",
            )
        })?;
        match ledger
            .open(&c.authorization.open_authorization(), signatures)
            .await
        {
            Ok(hash) => {
                self.checkpoint(FaultPoint::Opened);
                self.activate(c, Some(TxHash(hash))).await
            }
            Err(e) if e.is_revert() => {
                // Opened meanwhile by another driver, or refused for good (funds, signature).
                if ledger.agreement(c.id).await?.status != ChainStatus::None {
                    return self.activate(c, None).await;
                }
                let why = format!(
                    "the chain refused to open the contract: {}; nothing was charged; reserve again and sign again",
                    e.refusal()
                );
                self.fail(c, ContractState::Opening, &why).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn closing(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        let ledger = &self.market.ledger;
        let onchain = ledger.agreement(c.id).await?;
        let (hash, refund) = if onchain.status == ChainStatus::Closed {
            (None, None)
        } else {
            // The usage reported so far is paid (up to the escrow) before the rest goes back.
            super::settlement::settle_contract(&self.market, c.id, now()).await?;
            let (hash, refund) = ledger.close(c.id).await?;
            (Some(TxHash(hash)), Some(refund))
        };
        records::transition(
            &self.market,
            c.id,
            ContractState::Closing,
            ContractState::Closed,
            Change {
                tx_hash: hash,
                refund,
                ..Change::default()
            },
            now(),
        )
        .await
    }
}

/// Issues credentials to active contracts that have none that works: at activation and resumption
/// (from any broker process), after a revocation or a crash in between, and when the last one
/// expires.
pub async fn keep_credentials(market: Market, shutdown: Shutdown) {
    fn wanted(e: &EventBody) -> bool {
        matches!(
            e,
            EventBody::ContractActivated(_)
                | EventBody::ContractResumed(_)
                | EventBody::CredentialRevoked(_)
        )
    }
    let triggers = Triggers::new(&market.signals.hub, None, wanted);
    let m = market.clone();
    background::run("credentials", triggers, shutdown, move || {
        let m = m.clone();
        async move {
            for id in super::credentials::missing(&m.store, now()).await? {
                if let Err(e) = m.ensure_credential(id).await {
                    tracing::warn!(contract = %id, error = %e, "cannot issue a credential");
                }
            }
            super::credentials::next_expiry(&m.store).await
        }
    })
    .await;
}

/// Releases reservations not bought in time, when they expire.
pub async fn expire_reservations(market: Market, shutdown: Shutdown) {
    fn wanted(e: &EventBody) -> bool {
        matches!(e, EventBody::ReservationCreated(_))
    }
    let triggers = Triggers::new(&market.signals.hub, None, wanted);
    let m = market.clone();
    background::run("reservations", triggers, shutdown, move || {
        let m = m.clone();
        async move {
            records::expire_due(&m, now()).await?;
            records::next_expiry(&m.store).await
        }
    })
    .await;
}
