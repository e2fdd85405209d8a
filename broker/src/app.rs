//! Start-up: the ledger (embedded or external), the database, the HTTP server.

use std::net::SocketAddr;

use ledger::accounts::{dev_signer, signer_from_file, KeyError, BROKER_INDEX};
use ledger::anvil::{AnvilError, AnvilOptions};
use ledger::devnet::{self, Devnet, DevnetError};
use ledger::{ChainClient, ClientError, Deployment, DeploymentError};

use std::sync::{Arc, RwLock};
use std::time::Duration;

use catalog::follow::IndexFollower;
use catalog::store::StoreError as CatalogError;
use catalog::Index;
use content::{ContentError, ContentStore, EmbeddedStore, KuboStore};
use tokio::sync::Notify;

use crate::events::rabbit::{RabbitBus, Tee};
use crate::events::{self, Bus, InProcessBus};
use crate::market::purchase::Driver;
use crate::market::settlement;

use crate::config::{BrokerConfig, ChainConfig};
use crate::http::{self, AppState};
use crate::ledger_link::LedgerLink;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Devnet(#[from] DevnetError),
    #[error(transparent)]
    Anvil(#[from] AnvilError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error("no deployment at {0}; run `ledger-node deploy` first")]
    NoDeployment(std::path::PathBuf),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Chain(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot listen on {addr}: {source}; is another broker running there?")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--operator: {0}")]
    Operator(String),
    #[error("content store: {0}")]
    Content(ContentError),
    #[error("cannot create the data directory: {0}")]
    DataDir(std::io::Error),
}

/// How often the index reads the catalog's change log.
const CATALOG_POLL: Duration = Duration::from_millis(250);
/// How often the outbox relay looks for events written by other broker processes.
const RELAY_IDLE: Duration = Duration::from_millis(500);

/// A started broker: where it listens and what it runs.
pub struct Broker {
    pub addr: SocketAddr,
    pub ledger: LedgerLink,
    /// The embedded chain, when the broker runs one.
    pub devnet: Option<Devnet>,
    pub index: Arc<RwLock<Index>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The index follower, the outbox relay, the purchase driver, the settlement batcher.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Broker {
    pub async fn start(config: &BrokerConfig) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(StartError::DataDir)?;
        let (ledger, devnet) = match &config.chain {
            ChainConfig::Embedded { port } => {
                let options = AnvilOptions {
                    port: *port,
                    ..AnvilOptions::new(config.data_dir.join("ledger"))
                };
                let net = devnet::up(&options, |step| tracing::info!(step, "deploying")).await?;
                let client =
                    ChainClient::connect(net.chain.url(), dev_signer(BROKER_INDEX)?).await?;
                let link = LedgerLink {
                    client,
                    deployment: net.deployment.clone(),
                };
                (link, Some(net))
            }
            ChainConfig::External {
                rpc_url,
                deployment,
                key_file,
            } => {
                let d = Deployment::load(deployment)?
                    .ok_or_else(|| StartError::NoDeployment(deployment.clone()))?;
                let client = ChainClient::connect(rpc_url, signer_from_file(key_file)?).await?;
                d.verify_on(client.provider()).await?;
                (
                    LedgerLink {
                        client,
                        deployment: d,
                    },
                    None,
                )
            }
        };
        let store = Store::open(&config.database_url()).await?;
        store.bind_ledger(&ledger.deployment).await?;
        for did in &config.operators {
            catalog::identity::key_of(did).map_err(|e| StartError::Operator(e.to_string()))?;
            store
                .register_participant(did, crate::identity::Role::Operator, crate::identity::now())
                .await?;
        }
        let content: Arc<dyn ContentStore> = match &config.ipfs_api {
            Some(url) => Arc::new(KuboStore::new(url)),
            None => Arc::new(
                EmbeddedStore::open(config.data_dir.join("content"))
                    .map_err(StartError::Content)?,
            ),
        };
        // The development faucet mints with the deployer's key, which only a dev chain has.
        let faucet = match &devnet {
            Some(net) => Some(ChainClient::connect(net.chain.url(), dev_signer(0)?).await?),
            None => None,
        };
        let catalog = store.catalog().clone();
        let mut follower = IndexFollower::start(catalog.clone()).await?;
        let index = follower.index();
        // Follow the catalog's change log: writes by this or any other broker process on the
        // same database reach this index within a poll.
        let follow = tokio::spawn(async move {
            loop {
                if let Err(e) = follower.catch_up().await {
                    tracing::warn!(error = %e, "catalog change log unreadable, retrying");
                }
                tokio::time::sleep(CATALOG_POLL).await;
            }
        });
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let audience = crate::identity::audience(
            ledger.deployment.chain_id,
            &ledger.deployment.contracts.marketplace.to_string(),
        );
        let relay_wake = Arc::new(Notify::new());
        let bus = InProcessBus::default();
        let local: Arc<dyn Bus> = Arc::new(bus.clone());
        let relay_to: Arc<dyn Bus> = match &config.amqp_url {
            Some(url) => Arc::new(Tee(vec![Arc::new(RabbitBus::new(url)), local])),
            None => local,
        };
        let relay = tokio::spawn(events::bus::relay(
            store.clone(),
            relay_to,
            relay_wake.clone(),
            RELAY_IDLE,
        ));
        let driver = Driver::new(
            store.clone(),
            ledger.clone(),
            content.clone(),
            relay_wake.clone(),
            config.abort_at.clone(),
            config.credentials,
        );
        let driver_wake = driver.wake.clone();
        let issuer = driver.clone();
        let drive = tokio::spawn(driver.run());
        let batch_full = Arc::new(Notify::new());
        let settle = tokio::spawn(settle_loop(
            store.clone(),
            ledger.clone(),
            content.clone(),
            config.settlement,
            relay_wake.clone(),
            batch_full.clone(),
        ));
        let app = http::router(AppState {
            store,
            ledger: ledger.clone(),
            catalog,
            index: index.clone(),
            audience,
            content,
            driver: driver_wake,
            relay: relay_wake,
            bus,
            reservation_ttl: config.reservation_ttl,
            issuer,
            escrow: config.settlement.escrow,
            dispute_window_secs: config.settlement.limits.dispute_window_secs,
            batch_full,
            batch_records: config.settlement.limits.max_records,
            faucet,
        });
        // No Nagle delay: event streams and small answers go out at once.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let tasks = vec![follow, relay, drive, settle];
        Ok(Self {
            addr,
            ledger,
            devnet,
            index,
            server,
            tasks,
        })
    }

    /// Stops the server and the embedded chain (its state is kept).
    pub async fn stop(self) {
        self.server.abort();
        for t in &self.tasks {
            t.abort();
        }
        if let Some(net) = self.devnet {
            net.chain.stop().await;
        }
    }
}

/// Settles pending usage in batches (a batch as soon as there are enough records, otherwise every
/// interval), then watches every active contract's escrow.
async fn settle_loop(
    store: Store,
    ledger: LedgerLink,
    content: Arc<dyn ContentStore>,
    policy: crate::config::SettlementPolicy,
    events: Arc<Notify>,
    full: Arc<Notify>,
) {
    loop {
        match settlement::settle_once(
            &store,
            &ledger,
            content.as_ref(),
            policy.limits,
            crate::identity::now(),
        )
        .await
        {
            Ok(n) if n > 0 => {
                events.notify_one();
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "settlement failed; retrying"),
        }
        let now = crate::identity::now();
        if let Err(e) = crate::market::escrow::watch_once(&store, &ledger, policy.escrow, now).await
        {
            tracing::warn!(error = %e, "escrow watch failed; retrying");
        }
        events.notify_one();
        // The interval is the oldest a batch waits; a full batch's worth of records wakes it.
        let _ = tokio::time::timeout(policy.interval, full.notified()).await;
    }
}
