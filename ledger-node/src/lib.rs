//! Mercato's ledger: a chain client that speaks standard JSON-RPC only (Anvil, Quorum and Besu
//! alike), deployment of the contracts with a verified `deployment.json`, and the supervisor of
//! the development chain (Anvil from the pinned npm package, state kept in a data directory).

pub mod accounts;
pub mod anvil;
pub mod bench;
pub mod client;
pub mod deploy;
pub mod deployment;
pub mod devnet;
pub mod journal;
pub mod qbft;

pub use client::{ChainClient, ClientError};
pub use deploy::{deploy, DeployError, DeployOptions};
pub use deployment::{Deployment, DeploymentError};
