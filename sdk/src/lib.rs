//! Mercato's Rust client library: typed calls to the broker's HTTP API for every role, with the
//! API's own types (`api`). Everything a participant authorises is signed here with its own keys
//! (login messages it builds itself, account links, configurations, offers, contract documents it
//! checks in full first, EIP-712 purchase terms and top-ups); the broker only relays. The
//! consumer's side of peering (`credentials`) connects straight to the provider.

pub mod audit;
pub mod certs;
pub mod client;
pub mod credentials;
pub mod events;
pub mod files;
pub mod keys;
pub mod market;
pub mod pin;
pub mod session;
pub mod wireguard;

pub use client::{Client, Observed, SdkError};
pub use pin::BrokerPin;
pub use session::Session;
