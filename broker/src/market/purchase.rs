//! The purchase state machine's driver. Every step is persisted before the next starts, and the
//! chain decides what happened to an open that may have been sent: on restart the driver reads
//! the contract's on-chain state and completes the purchase (the contract is there: active) or
//! undoes it (it is not and can no longer be: released, nothing charged). Opening is one
//! transaction that pulls the deposit and creates the contract together, and a contract id opens
//! once (`ContractExists`), so funds never move without a contract nor twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Bytes, Signature, B256};
use catalog::provider_config::ProviderConfig;
use content::ContentStore;
use contracts::purchase::PurchaseTerms;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::credentials::{self, CredentialPolicy};
use super::document::SignedDocument;
use super::records::{self, Change, ContractRecord, State};
use super::MarketError;
use crate::events::Topic;
use crate::identity::now;
use crate::ledger_link::{ChainStatus, LedgerLink, Marketplace, OpenAuthorization};
use crate::store::Store;

/// How long after its deadline an unopened purchase is given up: the chain refuses the open
/// after the deadline, so past it (plus clock skew) the purchase can safely be undone.
const DEADLINE_MARGIN_SECS: u64 = 30;
/// How often the driver looks for work without being woken.
const TICK: Duration = Duration::from_millis(500);

/// The consumer's authorisation as stored with the contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAuthorization {
    pub terms: PurchaseTerms,
    pub open_signature: Bytes,
    pub permit_signature: Bytes,
}

impl StoredAuthorization {
    fn open_authorization(&self) -> Result<OpenAuthorization, MarketError> {
        let permit = Signature::try_from(self.permit_signature.as_ref())
            .map_err(|e| MarketError::Corrupt(format!("stored authorisation: {e}")))?;
        let t = &self.terms;
        Ok(OpenAuthorization {
            request: Marketplace::OpenRequest {
                contractId: t.contract_id,
                consumer: t.consumer,
                provider: t.provider,
                termsHash: t.terms_hash,
                termsCid: t.terms_cid.clone(),
                deposit: t.deposit,
                periodPrice: t.period_price,
                period: t.period,
                deadline: t.deadline,
            },
            open_signature: self.open_signature.clone(),
            permit_deadline: t.deadline,
            permit_signature: permit,
        })
    }
}

/// Drives contracts through their states; one per broker process (several brokers on one
/// database are safe: each step is a conditional transition).
#[derive(Clone)]
pub struct Driver {
    pub store: Store,
    pub ledger: LedgerLink,
    pub content: Arc<dyn ContentStore>,
    /// Woken when there is new work (a purchase accepted, a close asked for).
    pub wake: Arc<Notify>,
    /// Woken when events were committed (the relay).
    pub events: Arc<Notify>,
    /// Fault injection for the crash tests: abort the process at this step.
    pub abort_at: Option<String>,
    pub credentials: CredentialPolicy,
    busy: Arc<Mutex<HashSet<String>>>,
}

impl Driver {
    pub fn new(
        store: Store,
        ledger: LedgerLink,
        content: Arc<dyn ContentStore>,
        events: Arc<Notify>,
        abort_at: Option<String>,
        credentials: CredentialPolicy,
    ) -> Self {
        Self {
            store,
            ledger,
            content,
            wake: Arc::new(Notify::new()),
            events,
            abort_at,
            credentials,
            busy: Arc::default(),
        }
    }

    /// The provider's current configuration (for the credential's endpoints and kind).
    pub async fn provider_config_of(&self, did: &str) -> Option<ProviderConfig> {
        let (_, cid) = self.store.provider_config(did).await.ok()??;
        let cid = content::Cid::parse(&cid).ok()?;
        let bytes = self
            .content
            .get(&cid, catalog::provider_config::MAX_CONFIG_BYTES)
            .await
            .ok()?;
        catalog::provider_config::parse(&bytes).ok()
    }

    /// Mints a credential for an active contract that has none that works.
    pub async fn ensure_credential(&self, id: &str) -> Result<(), MarketError> {
        let now = now();
        if !credentials::live(&self.store, id, now).await?.is_empty() {
            return Ok(());
        }
        let Some(c) = records::get_contract(&self.store, id).await? else {
            return Ok(());
        };
        if c.state != State::Active || super::escrow::is_suspended(&self.store, id).await? {
            return Ok(());
        }
        let config = self.provider_config_of(&c.provider).await;
        credentials::issue(&self.store, &c, config.as_ref(), self.credentials, now).await?;
        self.events.notify_one();
        Ok(())
    }

    fn checkpoint(&self, step: &str) {
        if self.abort_at.as_deref() == Some(step) {
            tracing::error!(step, "aborting at the requested fault-injection point");
            std::process::abort();
        }
    }

    pub async fn run(self) {
        let mut last_sweep = std::time::Instant::now() - TICK;
        loop {
            // Expiry is a write transaction: on the tick, not on every wake-up.
            if last_sweep.elapsed() >= TICK {
                last_sweep = std::time::Instant::now();
                if let Err(e) = records::expire_due(&self.store, now()).await {
                    tracing::warn!(error = %e, "cannot expire reservations");
                }
            }
            match credentials::missing(&self.store, now()).await {
                Ok(ids) => {
                    for id in ids {
                        if let Err(e) = self.ensure_credential(&id).await {
                            tracing::warn!(contract = %id, error = %e, "cannot issue a credential");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look for contracts without credentials")
                }
            }
            match records::unfinished(&self.store).await {
                Ok(list) => {
                    for c in list {
                        self.spawn(c);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read unfinished contracts"),
            }
            self.events.notify_one();
            let _ = tokio::time::timeout(TICK, self.wake.notified()).await;
        }
    }

    fn spawn(&self, c: ContractRecord) {
        let fresh = self
            .busy
            .lock()
            .map(|mut b| b.insert(c.id.clone()))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let id = c.id.clone();
            if let Err(e) = me.advance(c).await {
                tracing::warn!(contract = %id, error = %e, "purchase step failed, retrying");
            }
            me.events.notify_one();
            if let Ok(mut b) = me.busy.lock() {
                b.remove(&id);
            }
        });
    }

    /// Runs the contract's steps until it waits for someone else or is final.
    async fn advance(&self, mut c: ContractRecord) -> Result<(), MarketError> {
        // True once this task itself moved the contract to opening: nothing can have been sent
        // for it yet, so the chain need not be asked first.
        let mut opened_here = false;
        loop {
            let moved = match c.state {
                State::Proposed => self.proposed(&c).await?,
                State::Accepted => {
                    opened_here = self.accepted(&c).await?;
                    opened_here
                }
                State::Opening => self.opening(&c, !opened_here).await?,
                State::Closing => self.closing(&c).await?,
                State::Active | State::Closed | State::Failed => false,
            };
            if !moved {
                return Ok(());
            }
            match records::get_contract(&self.store, &c.id).await? {
                Some(next) => c = next,
                None => return Ok(()),
            }
        }
    }

    async fn fail(&self, c: &ContractRecord, from: State, why: &str) -> Result<bool, MarketError> {
        tracing::info!(contract = %c.id, reason = why, "purchase undone");
        records::transition(
            &self.store,
            &c.id,
            from,
            State::Failed,
            Change {
                failure: Some(why),
                ..Change::default()
            },
            Some(Topic::ContractFailed),
            now(),
        )
        .await
    }

    async fn proposed(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        if now() > c.deadline {
            return self
                .fail(
                    c,
                    State::Proposed,
                    "the provider did not sign before the deadline",
                )
                .await;
        }
        Ok(false)
    }

    /// Both signed: the signatures go to the content store next to the document.
    async fn accepted(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        let signed = SignedDocument {
            document_cid: c.document_cid.clone(),
            consumer: c.consumer.clone(),
            consumer_signature: c.consumer_signature.clone(),
            provider: c.provider.clone(),
            provider_signature: c.provider_signature.clone().unwrap_or_default(),
        };
        let bytes = serde_json::to_vec(&signed).unwrap_or_default();
        let cid = self.content.put(&bytes).await?.to_string();
        self.checkpoint("accepted");
        records::transition(
            &self.store,
            &c.id,
            State::Accepted,
            State::Opening,
            Change {
                signatures_cid: Some(&cid),
                ..Change::default()
            },
            None,
            now(),
        )
        .await
    }

    async fn activate(
        &self,
        c: &ContractRecord,
        tx_hash: Option<&str>,
    ) -> Result<bool, MarketError> {
        let moved = records::transition(
            &self.store,
            &c.id,
            State::Opening,
            State::Active,
            Change {
                tx_hash,
                ..Change::default()
            },
            Some(Topic::ContractActivated),
            now(),
        )
        .await?;
        self.checkpoint("active");
        if moved {
            self.ensure_credential(&c.id).await?;
        }
        Ok(moved)
    }

    /// Opens on chain, or finds out that it is open already, or that it never will be.
    async fn opening(&self, c: &ContractRecord, ask_chain: bool) -> Result<bool, MarketError> {
        self.checkpoint("opening");
        let auth: StoredAuthorization = serde_json::from_str(&c.authorization)
            .map_err(|e| MarketError::Corrupt(format!("stored authorisation: {e}")))?;
        let id: B256 = auth.terms.contract_id;
        // Resumed (after a crash or an error): an open may have been sent; the chain says.
        if ask_chain && self.ledger.agreement(id).await?.status != ChainStatus::None {
            return self.activate(c, None).await;
        }
        if now() > c.deadline + DEADLINE_MARGIN_SECS {
            return self
                .fail(
                    c,
                    State::Opening,
                    "not opened on chain before the deadline; nothing was charged",
                )
                .await;
        }
        match self.ledger.open(&auth.open_authorization()?).await {
            Ok(hash) => {
                self.checkpoint("opened");
                self.activate(c, Some(&hash.to_string())).await
            }
            Err(e @ ledger::ClientError::Reverted { .. }) => {
                // Opened meanwhile by another driver, or refused for good (funds, signature).
                if self.ledger.agreement(id).await?.status != ChainStatus::None {
                    return self.activate(c, None).await;
                }
                let why = format!("the chain refused to open the contract: {e}");
                self.fail(c, State::Opening, &why).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn closing(&self, c: &ContractRecord) -> Result<bool, MarketError> {
        let id: B256 =
            c.id.parse()
                .map_err(|_| MarketError::NoContract(c.id.clone()))?;
        let onchain = self.ledger.agreement(id).await?;
        let (hash, refund) = if onchain.status == ChainStatus::Closed {
            (None, None)
        } else {
            let (hash, refund) = self.ledger.close(id).await?;
            (Some(hash.to_string()), Some(refund.to_string()))
        };
        records::transition(
            &self.store,
            &c.id,
            State::Closing,
            State::Closed,
            Change {
                tx_hash: hash.as_deref(),
                refund: refund.as_deref(),
                ..Change::default()
            },
            Some(Topic::ContractClosed),
            now(),
        )
        .await
    }
}
