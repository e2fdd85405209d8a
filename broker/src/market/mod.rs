//! The marketplace flow: reservations that hold plan capacity, the contract document both
//! parties sign, and the purchase state machine that opens the contract on chain.

pub mod credentials;
pub mod document;
pub mod escrow;
pub mod purchase;
pub mod records;
pub mod settlement;
pub mod statements;
pub mod usage;

use crate::store::StoreError;

/// Why a marketplace request was refused or could not complete.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("only {available} unit(s) of this plan are free now; ask for fewer or try later")]
    SoldOut { available: u64 },
    #[error("reservation {0} does not exist, is not yours, has expired or was already used; reserve again")]
    ReservationGone(String),
    #[error("no contract {0}")]
    NoContract(String),
    #[error("the contract is {state}; this needs it {needed}")]
    WrongState { state: String, needed: &'static str },
    #[error(
        "this Idempotency-Key was used for a different request; use a new key for a new purchase"
    )]
    IdempotencyConflict,
    #[error("offer {0} is not on offer")]
    NoOffer(String),
    #[error("{0} has no EVM account linked yet; link one with `mercato account link`")]
    NotLinked(String),
    #[error(transparent)]
    Terms(#[from] document::TermsError),
    #[error("{0}")]
    BadSignature(String),
    /// What the broker stored cannot be read back (a bug or a damaged database, not the caller's
    /// doing).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain: {0}")]
    Chain(#[from] ledger::ClientError),
    #[error("content store: {0}")]
    Content(#[from] content::ContentError),
}

impl From<sqlx::Error> for MarketError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(e))
    }
}
