//! Broker configuration: where it listens, where its data lives, which chain it uses.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The chain the broker settles on.
#[derive(Debug, Clone)]
pub enum ChainConfig {
    /// Anvil started and supervised by the broker, state in `<data_dir>/ledger`.
    Embedded { port: u16 },
    /// An existing node (Quorum, Besu) with a deployment written by `ledger-node deploy`.
    External {
        rpc_url: String,
        deployment: PathBuf,
        key_file: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://...` (the embedded default) or, later, `postgres://...`.
    pub database_url: Option<String>,
    pub chain: ChainConfig,
    /// An IPFS node's RPC API (`http://127.0.0.1:5001`); none: the embedded block store in
    /// `<data_dir>/content`.
    pub ipfs_api: Option<String>,
    /// RabbitMQ (`amqp://…`) for events; none: the in-process bus only.
    pub amqp_url: Option<String>,
    /// How long a reservation holds capacity.
    pub reservation_ttl: std::time::Duration,
    /// dids made operators at start (the first operator has to come from somewhere).
    pub operators: Vec<String>,
    /// Fault injection for crash tests: abort the process at this purchase step.
    pub abort_at: Option<String>,
    /// Lifetime of peering credentials and the grace of replaced ones.
    pub credentials: crate::market::credentials::CredentialPolicy,
    pub settlement: SettlementPolicy,
}

/// When usage is settled: every `interval`, in batches within `limits`.
#[derive(Debug, Clone, Copy)]
pub struct SettlementPolicy {
    pub interval: std::time::Duration,
    pub limits: crate::market::settlement::BatchLimits,
    pub escrow: crate::market::escrow::EscrowPolicy,
}

impl Default for SettlementPolicy {
    fn default() -> Self {
        Self {
            interval: std::time::Duration::from_secs(30),
            limits: Default::default(),
            escrow: Default::default(),
        }
    }
}

/// Reservations hold capacity this long by default.
pub const DEFAULT_RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl BrokerConfig {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("broker.sqlite").display()
            )
        })
    }
}
