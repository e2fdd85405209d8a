//! Start-up and shutdown: the ledger (embedded or external), the database, the background tasks,
//! the HTTP server; one shutdown signal stops them all, and `stop` waits for each.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alloy::providers::Provider;
use catalog::follow::IndexFollower;
use catalog::Index;
use content::{ContentError, ContentStore, EmbeddedStore, KuboStore};
use ledger::accounts::{dev_signer, signer_from_file, KeyError, BROKER_INDEX};
use ledger::anvil::{AnvilError, AnvilOptions};
use ledger::devnet::{self, Devnet, DevnetError};
use ledger::journal::TxJournal;
use ledger::{ChainClient, ClientError, Deployment, DeploymentError};
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::{BrokerConfig, ChainConfig};
use crate::events::rabbit::RabbitBus;
use crate::events::{relay, Bus};
use crate::ledger_link::LedgerLink;
use crate::market::purchase::{self, Driver};
use crate::market::{escrow, settlement, Market, Signals};
use crate::shutdown::{self, Shutdown, Trigger};
use crate::store::{now, Store, StoreError};

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
    Catalog(#[from] catalog::store::StoreError),
    #[error("cannot listen on {addr}: {source}; is another broker running there?")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("content store: {0}")]
    Content(ContentError),
    #[error("--web-dir {0}: no index.html there; build the front end (scripts/run does) or leave the option out")]
    NoWebBuild(std::path::PathBuf),
    #[error("the broker's identity key: {0}")]
    Identity(identity::keyfile::KeyError),
    #[error(transparent)]
    Journal(#[from] ledger::journal::JournalError),
    #[error("reconciling the broker's contracts with the chain: {0}")]
    Reconcile(#[from] crate::market::MarketError),
    #[error("cannot create the data directory: {0}")]
    DataDir(std::io::Error),
}

/// How often the index reads the catalog's change log.
const CATALOG_POLL: Duration = Duration::from_millis(250);
/// How often the event hub looks for events committed by other broker processes.
const HUB_IDLE: Duration = Duration::from_millis(250);
/// How often the relay looks for events not yet on the external bus.
const RELAY_IDLE: Duration = Duration::from_millis(500);
/// How often spent challenges, expired tokens and old events are pruned.
const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// How long stopping waits for the server's requests in flight.
const DRAIN: Duration = Duration::from_secs(20);

/// A started broker: where it listens and what it runs.
pub struct Broker {
    pub addr: SocketAddr,
    pub ledger: LedgerLink,
    /// The embedded chain, when the broker runs one.
    pub devnet: Option<Devnet>,
    pub index: Arc<RwLock<Index>>,
    /// The broker's own did:key.
    pub did: api::Did,
    trigger: Trigger,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Opens the broker's journal of signed transactions for this chain and deployment, and sends
/// again, in order, those the chain has lost (a crash that took the embedded chain's last second
/// with it, a reorganisation of an external chain) before anything else is sent.
async fn restore_journal(
    data_dir: &std::path::Path,
    client: &ChainClient,
    deployment: &Deployment,
) -> Result<Arc<TxJournal>, StartError> {
    let deployed = client
        .provider()
        .get_block_by_number(deployment.deployment_block.into())
        .await
        .ok()
        .flatten()
        .map(|b| b.header.hash)
        .unwrap_or_default();
    let identity = format!(
        "chain={} marketplace={} deployed={deployed}",
        deployment.chain_id, deployment.contracts.marketplace
    );
    let (journal, aside) = TxJournal::open(&data_dir.join("tx-journal"), &identity)?;
    if let Some(aside) = aside {
        tracing::warn!(aside = %aside.display(), "the transaction journal belonged to another chain or deployment; set aside, not replayed");
    }
    let report = ledger::journal::replay(client.provider(), &journal).await?;
    if !report.replayed.is_empty() || !report.lost.is_empty() {
        tracing::warn!(
            replayed = report.replayed.len(),
            lost = report.lost.len(),
            checked = report.checked,
            "the chain had lost transactions the broker sent; the journal restored them"
        );
    }
    for (hash, why) in &report.lost {
        tracing::error!(%hash, %why, "a transaction the broker sent cannot be restored on chain");
    }
    journal.compact(ledger::journal::KEEP)?;
    Ok(Arc::new(journal))
}

type Connected = (LedgerLink, Option<Devnet>, Arc<TxJournal>);

async fn connect_ledger(config: &BrokerConfig) -> Result<Connected, StartError> {
    let (link, devnet) = connect_chain(config).await?;
    let journal = restore_journal(&config.data_dir, &link.client, &link.deployment).await?;
    Ok((
        LedgerLink {
            client: link.client.journaled(journal.clone()),
            deployment: link.deployment,
        },
        devnet,
        journal,
    ))
}

async fn connect_chain(config: &BrokerConfig) -> Result<(LedgerLink, Option<Devnet>), StartError> {
    match &config.chain {
        ChainConfig::Embedded { port } => {
            let options = AnvilOptions {
                port: *port,
                ..AnvilOptions::new(config.data_dir.join("ledger"))
            };
            let net = devnet::up(&options, |step| tracing::info!(step, "deploying")).await?;
            let client = ChainClient::connect(net.chain.url(), dev_signer(BROKER_INDEX)?).await?;
            let link = LedgerLink {
                client,
                deployment: net.deployment.clone(),
            };
            Ok((link, Some(net)))
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
            Ok((
                LedgerLink {
                    client,
                    deployment: d,
                },
                None,
            ))
        }
    }
}

impl Broker {
    pub async fn start(config: &BrokerConfig) -> Result<Self, StartError> {
        let web = match &config.web_dir {
            Some(dir) => Some(
                crate::http::web::WebAssets::open(dir)
                    .ok_or_else(|| StartError::NoWebBuild(dir.clone()))?,
            ),
            None => None,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(StartError::DataDir)?;
        let identity = identity::keyfile::load_or_generate(&config.identity_key())
            .map_err(StartError::Identity)?;
        let did = identity::did_of(&identity.verifying_key());
        let (ledger, devnet, journal) = connect_ledger(config).await?;
        let store = Store::open(&config.database_url(), config.pool).await?;
        store.bind_ledger(&ledger.deployment).await?;
        for did in &config.operators {
            store
                .register_participant(did, api::Role::Operator, now())
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
            Some(net) => Some(
                ChainClient::connect(net.chain.url(), dev_signer(0)?)
                    .await?
                    .journaled(journal),
            ),
            None => None,
        };
        let follower = IndexFollower::start(store.catalog().clone()).await?;
        let index = follower.index();
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
        let (trigger, shutdown) = shutdown::channel();
        let signals = Signals::default();
        let origins = crate::config::login_origins(&config.public_urls, addr);
        let base_url = config
            .public_urls
            .first()
            .cloned()
            .or_else(|| origins.first().cloned())
            .unwrap_or_else(|| format!("http://{addr}"));
        let certifier = crate::market::certification::Certifier::new(
            &identity,
            &base_url,
            &config.prober_location,
        );
        let market = Market {
            certifier: Arc::new(certifier),
            store: store.clone(),
            ledger: ledger.clone(),
            content,
            index: index.clone(),
            policy: config.market,
            signals: signals.clone(),
            faucet,
            identity: Arc::new(identity),
        };
        let auth = Auth::new(
            store.clone(),
            ledger.audience(),
            did.clone(),
            origins,
            config.auth_rate_per_minute,
        );

        // Before anything is driven or served: the broker's records against the chain, now that
        // the journal has restored what it could.
        let r = crate::market::reconcile::all(&market).await?;
        tracing::info!(
            checked = r.checked,
            marked_failed = r.marked_failed,
            links_unmarked = r.links_unmarked,
            configs_dropped = r.configs_dropped,
            batches_resent = r.batches_resent,
            releases_resent = r.releases_resent,
            disagreements = r.disagreements,
            "records reconciled with the chain"
        );
        let mut tasks: Vec<(&'static str, JoinHandle<()>)> = vec![
            (
                "catalog follower",
                tokio::spawn(follow_catalog(follower, shutdown.clone())),
            ),
            (
                "event hub",
                tokio::spawn(
                    signals
                        .hub
                        .clone()
                        .run(store.clone(), HUB_IDLE, shutdown.clone()),
                ),
            ),
            (
                "purchase driver",
                tokio::spawn(Driver::new(market.clone(), config.abort_at).run(shutdown.clone())),
            ),
            (
                "credentials keeper",
                tokio::spawn(purchase::keep_credentials(market.clone(), shutdown.clone())),
            ),
            (
                "reservation expirer",
                tokio::spawn(purchase::expire_reservations(
                    market.clone(),
                    shutdown.clone(),
                )),
            ),
            (
                "settlement",
                tokio::spawn(settle_loop(
                    market.clone(),
                    config.settle_interval,
                    shutdown.clone(),
                )),
            ),
            (
                "escrow watch",
                tokio::spawn(escrow_loop(
                    market.clone(),
                    config.settle_interval,
                    shutdown.clone(),
                )),
            ),
            (
                "certification",
                tokio::spawn(crate::market::certification::certify_loop(
                    market.clone(),
                    shutdown.clone(),
                )),
            ),
            (
                "housekeeping",
                tokio::spawn(housekeeping(
                    store.clone(),
                    config.retention,
                    config.amqp_url.is_some(),
                    shutdown.clone(),
                )),
            ),
        ];
        if let Some(url) = &config.amqp_url {
            let bus: Arc<dyn Bus> = Arc::new(RabbitBus::new(url));
            tasks.push((
                "relay",
                tokio::spawn(relay::relay(
                    store.clone(),
                    bus,
                    signals.relay.clone(),
                    RELAY_IDLE,
                    shutdown.clone(),
                )),
            ));
        }
        let app = crate::http::router(market, auth, shutdown.clone(), web)
            .into_make_service_with_connect_info::<SocketAddr>();
        // No Nagle delay: event streams and small answers go out at once.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await
        });
        Ok(Self {
            addr,
            ledger,
            devnet,
            index,
            did,
            trigger,
            server,
            tasks,
        })
    }

    /// Stops the server (requests in flight finish; open event streams end) and every background
    /// task, then the embedded chain (its state is kept).
    pub async fn stop(self) {
        self.trigger.fire();
        match tokio::time::timeout(DRAIN, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server panicked"),
            Err(_) => tracing::warn!("requests still running after {DRAIN:?}; stopping anyway"),
        }
        for (name, task) in self.tasks {
            match tokio::time::timeout(DRAIN, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "background task failed"),
                Err(_) => tracing::warn!(task = name, "still running after {DRAIN:?}; left"),
            }
        }
        if let Some(net) = self.devnet {
            net.chain.stop().await;
        }
        tracing::info!("broker stopped");
    }
}

/// Follows the catalog's change log: writes by this or any other broker process on the same
/// database reach this index within a poll.
async fn follow_catalog(mut follower: IndexFollower, shutdown: Shutdown) {
    loop {
        if let Err(e) = follower.catch_up().await {
            tracing::warn!(error = %e, "catalog change log unreadable, retrying");
        }
        if shutdown.sleep(CATALOG_POLL).await {
            return;
        }
    }
}

/// Settles pending usage in batches (a batch as soon as there are enough records, otherwise every
/// interval) and releases charges whose challenge window ended.
async fn settle_loop(market: Market, interval: Duration, shutdown: Shutdown) {
    loop {
        match settlement::settle_once(&market, now()).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "settlement failed; retrying"),
        }
        if let Err(e) = settlement::release_due(&market, 20).await {
            tracing::warn!(error = %e, "releasing settled charges failed; retrying");
        }
        // The interval is the oldest a batch waits; a full batch's worth of records wakes it.
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = market.signals.batch_full.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Watches every active contract's escrow, on its own so a busy settlement never delays it,
/// following the ledger index (which it brings up to the chain) rather than reading every
/// contract each pass.
async fn escrow_loop(market: Market, interval: Duration, shutdown: Shutdown) {
    let mut view = escrow::ChainView::default();
    loop {
        if let Err(e) = escrow::watch_once(&market, &mut view, now()).await {
            tracing::warn!(error = %e, "escrow watch failed; retrying");
        }
        if shutdown.sleep(interval).await {
            return;
        }
    }
}

async fn housekeeping(
    store: Store,
    retention: crate::store::Retention,
    external_bus: bool,
    shutdown: Shutdown,
) {
    loop {
        match store.prune(retention, external_bus, now()).await {
            Ok(p) => tracing::debug!(?p, "pruned"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; retrying"),
        }
        if shutdown.sleep(HOUSEKEEPING).await {
            return;
        }
    }
}
