//! The marketplace's use cases, one function each, called by the HTTP handlers: reserve and buy
//! (`reservations`), accept, close, top up and show contracts (`contracts`), link accounts
//! (`accounts`), register provider configurations (`providers`), publish and search offers
//! (`offers`), peering credentials (`credentials`), usage, disputes and proofs (`usage`),
//! statements (`statements`), auditors' questions (`audit`), all reading the ledger index
//! (`ledger_index`: every event of the six contracts, reorganisation-safe). Their SQL lives with
//! them (`records` for reservations and contracts); the pure parts (the contract document in
//! `api::document`, pricing, batch planning, runway) need no I/O. In the
//! background the purchase driver (`purchase`), the settlement batcher (`settlement`) and the
//! escrow watch (`escrow`) move contracts on.

pub mod accounts;
pub mod audit;
pub mod certification;
pub mod contracts;
pub mod credentials;
pub mod escrow;
pub mod ledger_index;
pub mod offers;
pub mod providers;
pub mod purchase;
pub mod reconcile;
pub mod records;
pub mod relay;
pub mod reservations;
pub mod settlement;
pub mod statements;
pub mod usage;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::{ContractId, Did, OfferId, ReservationId};
use content::ContentStore;
use tokio::sync::Notify;

use crate::events::{outbox, EventHub, Pending};
use crate::ledger_link::{ChainError, LedgerLink};
use crate::store::{Corrupt, Store, StoreError};

/// Why a marketplace request was refused or could not complete.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("only {available} unit(s) of this plan are free now; ask for fewer or try later")]
    SoldOut { available: u64 },
    #[error("reservation {0} does not exist, is not yours, has expired or was already used; reserve again")]
    ReservationGone(ReservationId),
    #[error("no contract {0} of yours")]
    NoContract(ContractId),
    #[error("{0}")]
    NotFound(String),
    #[error("the contract is {state}; this needs it {needed}")]
    WrongState { state: String, needed: &'static str },
    #[error(
        "this Idempotency-Key was used for a different request; use a new key for a new purchase"
    )]
    IdempotencyConflict,
    #[error("offer {0} is not on offer")]
    NoOffer(OfferId),
    #[error("{0} has no EVM account linked yet; link one with `mercato account link`")]
    NotLinked(Did),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Terms(#[from] api::document::TermsError),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// The chain refused what the participant signed (signature, nonce, deadline, funds).
    #[error("{detail}")]
    Refused { title: &'static str, detail: String },
    /// A move the purchase state machine does not allow: a bug, refused before it is written.
    #[error("contract {id} cannot move from {from} to {to}")]
    IllegalMove {
        id: ContractId,
        from: api::ContractState,
        to: api::ContractState,
    },
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    #[error("content store: {0}")]
    Content(#[from] content::ContentError),
    #[error("catalog: {0}")]
    Catalog(#[from] catalog::store::StoreError),
}

impl From<sqlx::Error> for MarketError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(e))
    }
}

impl From<ledger::ClientError> for MarketError {
    fn from(e: ledger::ClientError) -> Self {
        Self::Chain(ChainError::Client(e))
    }
}

/// How the marketplace behaves: the operator's settings.
#[derive(Debug, Clone, Copy)]
pub struct MarketPolicy {
    /// How long a reservation holds capacity.
    pub reservation_ttl: Duration,
    pub credentials: credentials::CredentialPolicy,
    pub escrow: escrow::EscrowPolicy,
    pub batches: settlement::BatchLimits,
    pub certification: certification::CertificationPolicy,
    pub index: ledger_index::IndexPolicy,
}

impl Default for MarketPolicy {
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(300),
            credentials: Default::default(),
            escrow: Default::default(),
            batches: Default::default(),
            certification: Default::default(),
            index: Default::default(),
        }
    }
}

/// Who to wake after a change: the event hub and relay (events were committed), the purchase
/// driver (a contract has a step to take), the batcher (a full batch of usage waits).
#[derive(Clone, Default)]
pub struct Signals {
    pub hub: EventHub,
    pub relay: Arc<Notify>,
    pub driver: Arc<Notify>,
    pub batch_full: Arc<Notify>,
}

impl Signals {
    pub fn committed(&self) {
        self.hub.committed();
        self.relay.notify_one();
    }
}

/// The marketplace: what its use cases need, cheap to clone.
#[derive(Clone)]
pub struct Market {
    pub store: Store,
    pub ledger: LedgerLink,
    pub content: Arc<dyn ContentStore>,
    /// The catalog's in-memory index, kept current by the catalog follower.
    pub index: Arc<RwLock<catalog::Index>>,
    pub policy: MarketPolicy,
    pub signals: Signals,
    /// Development chains only: the account that mints faucet credits.
    pub faucet: Option<ledger::ChainClient>,
    /// The broker's own key: its did:key signs the credential envelopes it issues.
    pub identity: Arc<ed25519_dalek::SigningKey>,
    /// The broker as an issuer of certified-metric credentials (the same key).
    pub certifier: Arc<certification::Certifier>,
}

impl Market {
    /// A marketplace on its own parts, with an empty catalog index, its own signals and no
    /// faucet (tools, benchmarks, tests; the broker wires the rest).
    pub fn new(
        store: Store,
        ledger: LedgerLink,
        content: Arc<dyn ContentStore>,
        policy: MarketPolicy,
    ) -> Self {
        let identity = identity::generate();
        let certifier = certification::Certifier::new(&identity, "http://127.0.0.1", "broker");
        Self {
            store,
            ledger,
            content,
            index: Arc::new(RwLock::new(catalog::Index::from_offers(Vec::new()))),
            policy,
            signals: Signals::default(),
            faucet: None,
            identity: Arc::new(identity),
            certifier: Arc::new(certifier),
        }
    }

    /// The broker's did:key.
    pub fn did(&self) -> Did {
        identity::did_of(&self.identity.verifying_key())
    }

    /// Commits `tx` with `events` in its outbox and wakes whoever follows events.
    pub async fn commit(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        events: Vec<Pending>,
        now: u64,
    ) -> Result<(), MarketError> {
        let any = !events.is_empty();
        outbox::commit(&self.store, tx, events, now).await?;
        if any {
            self.signals.committed();
        }
        Ok(())
    }

    /// The EVM account linked to `did`, or why there is none.
    pub async fn linked_account(
        &self,
        did: &Did,
    ) -> Result<alloy::primitives::Address, MarketError> {
        self.store
            .account_of(did)
            .await?
            .ok_or_else(|| MarketError::NotLinked(did.clone()))
    }
}
