//! Broker configuration: where it listens, where its data lives, which chain it uses, and the
//! marketplace's policies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::Did;

use crate::market::purchase::FaultPoint;
use crate::market::MarketPolicy;
use crate::store::{PoolSize, Retention};

/// The chain the broker settles on.
#[derive(Debug, Clone)]
pub enum ChainConfig {
    /// Anvil started and supervised by the broker, state in `<data_dir>/ledger`; port 0 takes
    /// any free port (the broker reports the one Anvil bound).
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
    /// Port 0 takes any free port; `Broker::addr` says which.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; none: SQLite in the data directory.
    pub database_url: Option<String>,
    pub pool: PoolSize,
    pub chain: ChainConfig,
    /// An IPFS node's RPC API (`http://127.0.0.1:5001`); none: the embedded block store in
    /// `<data_dir>/content`.
    pub ipfs_api: Option<String>,
    /// RabbitMQ (`amqp://…`) for events; none: in-process subscribers only.
    pub amqp_url: Option<String>,
    pub market: MarketPolicy,
    /// Settle pending usage at least this often.
    pub settle_interval: Duration,
    /// dids made operators at start (the first operator has to come from somewhere).
    pub operators: Vec<Did>,
    /// Requests a minute per client address to the endpoints that need no login.
    pub auth_rate_per_minute: u32,
    pub retention: Retention,
    /// Fault injection for crash tests: abort the process at this purchase step.
    pub abort_at: Option<FaultPoint>,
    /// The URLs clients reach this broker by (logins are signed for one of them); none: the
    /// address it listens on (and its loopback names).
    pub public_urls: Vec<String>,
    /// The broker's own Ed25519 key (its did:key signs credential envelopes; logins name it),
    /// created on first start; replicas of one marketplace share it. None: `<data_dir>/identity.hex`.
    pub identity_key: Option<PathBuf>,
    /// Where the prober runs, as its credentials state it.
    pub prober_location: String,
    /// The web front end's build (a directory with `index.html`), served at `/`; none: the API
    /// only.
    pub web_dir: Option<PathBuf>,
}

/// The origins (`scheme://host:port`) logins may be signed for: the public URLs given, or the
/// listening address with its loopback names.
pub fn login_origins(public_urls: &[String], bound: SocketAddr) -> Vec<String> {
    let mut out: Vec<String> = public_urls
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    if out.is_empty() {
        let port = bound.port();
        out.push(format!("http://{bound}"));
        if bound.ip().is_unspecified() || bound.ip().is_loopback() {
            out.extend([
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
                format!("http://[::1]:{port}"),
            ]);
        }
    }
    out.sort();
    out.dedup();
    out
}

impl BrokerConfig {
    /// The embedded default on `data_dir`, listening on `listen`.
    pub fn embedded(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            database_url: None,
            pool: PoolSize {
                max_connections: None,
            },
            chain: ChainConfig::Embedded { port: 8545 },
            ipfs_api: None,
            amqp_url: None,
            market: MarketPolicy::default(),
            settle_interval: Duration::from_secs(30),
            operators: Vec::new(),
            auth_rate_per_minute: DEFAULT_AUTH_RATE,
            retention: Retention::default(),
            abort_at: None,
            public_urls: Vec::new(),
            identity_key: None,
            prober_location: "broker".into(),
            web_dir: None,
        }
    }

    pub fn identity_key(&self) -> PathBuf {
        self.identity_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("identity.hex"))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("broker.sqlite").display()
            )
        })
    }
}

/// Requests a minute per address to registration and login challenges, by default.
pub const DEFAULT_AUTH_RATE: u32 = 600;
