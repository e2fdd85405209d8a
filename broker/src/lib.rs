//! The Mercato broker: the HTTP API over the catalog, the marketplace flow and the ledger.
//!
//! # Bird's-eye view
//!
//! A request comes in through `http` (extractors authenticate and parse, one handler per route),
//! which calls one use case of `market` (reserve, purchase, accept, close, top up, link, register
//! a configuration, report usage, …) or of `auth` (register, log in). Use cases read and write the
//! database through `store`, the chain through `ledger_link`, content through the `content`
//! crate's `ContentStore`, and announce every change with an event written in the same
//! transaction (`events::outbox`).
//!
//! Started by `app::Broker::start`, these tasks run until shutdown (`shutdown`):
//! - the catalog follower, keeping the in-memory offer index current with the change log;
//! - the event hub, the one reader of the outbox that fans events out to event streams and jobs;
//! - the relay to RabbitMQ (when configured);
//! - the purchase driver, moving contracts through the state machine when a change or a deadline
//!   gives it work; the credentials keeper; the reservation expirer (`market::purchase`);
//! - the settlement batcher and the escrow watch (`market::settlement`, `market::escrow`);
//! - housekeeping (pruning spent challenges, expired tokens and old events);
//! - the HTTP server.
//!
//! This crate is a library with a thin binary (`mercato-broker`) on top.

pub mod app;
pub mod auth;
pub mod background;
pub mod config;
pub mod events;
pub mod http;
pub mod ledger_link;
pub mod market;
pub mod shutdown;
pub mod store;

pub use app::{Broker, StartError};
pub use config::{BrokerConfig, ChainConfig};
