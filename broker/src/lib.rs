//! The Mercato broker: the HTTP API over the catalog, the marketplace flow and the ledger.
//! This crate is a library with a thin binary (`mercato-broker`) on top.

pub mod app;
pub mod config;
pub mod dev;
pub mod events;
pub mod http;
pub mod identity;
pub mod ledger_link;
pub mod market;
pub mod store;

pub use app::{Broker, StartError};
pub use config::{BrokerConfig, ChainConfig};
