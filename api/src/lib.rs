//! The vocabulary of Mercato's HTTP API, in one place: every request, response and event body,
//! the enums for roles and states, ids as types and money as `Credits`. The broker serves these
//! types, the SDK and the tests read them, and the OpenAPI document is generated from them (the
//! web client's types from that document), so the sides cannot drift apart.

pub mod audit;
pub mod auth;
pub mod certificates;
pub mod contracts;
pub mod credentials;
pub mod document;
pub mod events;
pub mod ids;
pub mod ledger;
pub mod offers;
pub mod pricing;
pub mod problem;
pub mod providers;
pub mod reservations;
pub mod usage;

pub use auth::{Principal, Role};
pub use catalog::money::{Credits, CreditsError};
pub use contracts::{ChainStatus, Contract, ContractState};
pub use events::{Event, EventBody, Topic};
pub use identity::Did;
pub use ids::{
    BatchId, ContentId, ContractId, CredentialHash, Ed25519Signature, EvmSignature, Hash32,
    IdError, Nonce, OfferId, PlanId, ReservationId, SessionId, TxHash, UsageRecordId, WireguardKey,
};
pub use problem::Problem;
