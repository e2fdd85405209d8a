//! Mercato's Rust client library: typed calls to the broker's HTTP API for every role.
//! The `mercato` command-line tool is a thin layer over it.

pub mod agent;
pub mod client;
pub mod credentials;
pub mod events;
pub mod keys;
pub mod market;
pub mod session;

pub use client::{Client, LedgerStatus, OfferDocument, SdkError, SearchItem, SearchPage};
pub use session::{Me, Session};
