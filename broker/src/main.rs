//! `mercato-broker`: runs the broker. With no chain options it runs the embedded default:
//! Anvil with the contracts deployed, state and the SQLite database under `--data-dir`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use api::Did;
use broker::market::certification::CertificationPolicy;
use broker::market::credentials::CredentialPolicy;
use broker::market::escrow::EscrowPolicy;
use broker::market::ledger_index::IndexPolicy;
use broker::market::purchase::FaultPoint;
use broker::market::settlement::BatchLimits;
use broker::market::MarketPolicy;
use broker::store::{PoolSize, Retention};
use broker::{Broker, BrokerConfig, ChainConfig};
use clap::Parser;

#[derive(Parser)]
#[command(name = "mercato-broker", version, about = "The Mercato broker")]
struct Cli {
    /// Address the HTTP API listens on (port 0: any free port; the broker prints the one it got).
    #[arg(long, env = "MERCATO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded chain state and the SQLite database live.
    #[arg(long, env = "MERCATO_DATA_DIR", default_value = ".data")]
    data_dir: PathBuf,
    /// Database URL; defaults to SQLite in the data directory.
    #[arg(long, env = "MERCATO_DATABASE_URL")]
    database_url: Option<String>,
    /// Most database connections (default: 4 on SQLite, 16 on PostgreSQL).
    #[arg(long, env = "MERCATO_DB_MAX_CONNECTIONS")]
    db_max_connections: Option<u32>,
    /// Port of the embedded chain's JSON-RPC (0: any free port).
    #[arg(long, default_value_t = 8545)]
    chain_port: u16,
    /// Use an existing chain instead of the embedded one (needs --deployment and --key-file).
    #[arg(long, env = "MERCATO_RPC_URL", requires_all = ["deployment", "key_file"])]
    rpc_url: Option<String>,
    /// deployment.json written by `ledger-node deploy`.
    #[arg(long, env = "MERCATO_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    /// The broker relayer's private key file (hex).
    #[arg(long, env = "MERCATO_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// An IPFS node's RPC API (Kubo or compatible) for configurations and contract documents;
    /// default: the embedded block store in the data directory.
    #[arg(long, env = "MERCATO_IPFS_API")]
    ipfs_api: Option<String>,
    /// RabbitMQ URL (amqp://user:password@host:port/vhost): events also go to its topic exchange
    /// `mercato.events`, with publisher confirms.
    #[arg(long, env = "MERCATO_AMQP_URL")]
    amqp_url: Option<String>,
    /// How long a reservation holds capacity, in seconds.
    #[arg(long, env = "MERCATO_RESERVATION_TTL", default_value_t = 300)]
    reservation_ttl: u64,
    /// Lifetime of peering credentials, in seconds.
    #[arg(long, env = "MERCATO_CREDENTIAL_TTL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    credential_ttl: u64,
    /// How long a replaced credential keeps working after a renewal, in seconds.
    #[arg(long, env = "MERCATO_CREDENTIAL_GRACE", default_value_t = 60)]
    credential_grace: u64,
    /// Settle pending usage at least this often, in seconds.
    #[arg(long, env = "MERCATO_SETTLE_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    settle_interval: u64,
    /// Most usage records in one settlement batch.
    #[arg(long, env = "MERCATO_BATCH_RECORDS", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    batch_records: u32,
    /// How long a consumer may dispute a usage record before it is settled, in seconds.
    #[arg(long, env = "MERCATO_DISPUTE_WINDOW", default_value_t = 300)]
    dispute_window: u64,
    /// Warn a contract's parties when its escrow lasts less than this, in seconds.
    #[arg(long, env = "MERCATO_ESCROW_WARN", default_value_t = 3600)]
    escrow_warn: u64,
    /// Close (with refund) a contract suspended for its escrow for this long, in seconds.
    #[arg(long, env = "MERCATO_SUSPENDED_GRACE", default_value_t = 86_400)]
    suspended_grace: u64,
    /// Probe each provider's agent this often, in seconds (certified latency, uptime, throughput).
    #[arg(long, env = "MERCATO_PROBE_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    probe_interval: u64,
    /// How long a certified-metric credential is valid, in seconds.
    #[arg(long, env = "MERCATO_CERT_VALIDITY", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..))]
    cert_validity: u64,
    /// Blocks the ledger index leaves unread below the chain's head (0 on the embedded chain; set
    /// it to the depth below which the external chain does not reorganise).
    #[arg(long, env = "MERCATO_CONFIRMATIONS", default_value_t = 0)]
    confirmations: u64,
    /// Where the prober runs, as its credentials state it (a region such as eu-west).
    #[arg(long, env = "MERCATO_PROBER_LOCATION", default_value = "broker")]
    prober_location: String,
    /// Requests a minute per client address to registration and login challenges.
    #[arg(long, env = "MERCATO_AUTH_RATE", default_value_t = broker::config::DEFAULT_AUTH_RATE, value_parser = clap::value_parser!(u32).range(1..))]
    auth_rate: u32,
    /// How long published events stay readable for event streams that resume, in hours.
    #[arg(long, env = "MERCATO_EVENT_RETENTION_HOURS", default_value_t = 168)]
    event_retention_hours: u64,
    /// A did:key to make operator (repeatable): how the first operator comes to exist.
    #[arg(long = "operator", env = "MERCATO_OPERATORS", value_delimiter = ',')]
    operators: Vec<Did>,
    /// A URL clients reach the broker by, when not its listening address (behind a proxy, a
    /// public name; repeatable): logins are signed for it.
    #[arg(
        long = "public-url",
        env = "MERCATO_PUBLIC_URLS",
        value_delimiter = ','
    )]
    public_urls: Vec<String>,
    /// The broker's own did key (it signs credential envelopes), created there on first start;
    /// replicas of one marketplace are given the same file [default: <data-dir>/identity.hex]
    #[arg(long, env = "MERCATO_IDENTITY_KEY")]
    identity_key: Option<PathBuf>,
    /// The web front end's build to serve at / (a directory with index.html; scripts/run builds
    /// web/ into web/dist)
    #[arg(long, env = "MERCATO_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Print the HTTP API's OpenAPI document and exit (the web client's types are generated
    /// from it)
    #[arg(long)]
    print_openapi: bool,
}

/// Crash tests only: abort at a purchase step (accepted, opening, opened, active).
const ABORT_AT_ENV: &str = "MERCATO_FAULT_ABORT_AT";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, never escape codes in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if cli.print_openapi {
        println!(
            "{}",
            serde_json::to_string_pretty(&broker::http::document())?
        );
        return Ok(());
    }
    let chain = match (cli.rpc_url, cli.deployment, cli.key_file) {
        (Some(rpc_url), Some(deployment), Some(key_file)) => ChainConfig::External {
            rpc_url,
            deployment,
            key_file,
        },
        _ => ChainConfig::Embedded {
            port: cli.chain_port,
        },
    };
    let abort_at = match std::env::var(ABORT_AT_ENV) {
        Ok(step) => Some(FaultPoint::parse(&step).ok_or_else(|| {
            anyhow::anyhow!("{ABORT_AT_ENV}={step}: use accepted, opening, opened or active")
        })?),
        Err(_) => None,
    };
    let config = BrokerConfig {
        database_url: cli.database_url,
        pool: PoolSize {
            max_connections: cli.db_max_connections,
        },
        chain,
        ipfs_api: cli.ipfs_api,
        amqp_url: cli.amqp_url,
        market: MarketPolicy {
            reservation_ttl: Duration::from_secs(cli.reservation_ttl),
            credentials: CredentialPolicy {
                ttl_secs: cli.credential_ttl,
                grace_secs: cli.credential_grace,
            },
            escrow: EscrowPolicy {
                warn_before_secs: cli.escrow_warn,
                suspended_grace_secs: cli.suspended_grace,
            },
            batches: BatchLimits {
                max_records: cli.batch_records,
                dispute_window_secs: cli.dispute_window,
                ..Default::default()
            },
            certification: CertificationPolicy {
                probe_interval: Duration::from_secs(cli.probe_interval),
                validity: Duration::from_secs(cli.cert_validity),
                ..Default::default()
            },
            index: IndexPolicy {
                confirmations: cli.confirmations,
            },
        },
        prober_location: cli.prober_location,
        settle_interval: Duration::from_secs(cli.settle_interval),
        operators: cli.operators,
        auth_rate_per_minute: cli.auth_rate,
        retention: Retention {
            events: Duration::from_secs(cli.event_retention_hours * 3600),
        },
        abort_at,
        public_urls: cli.public_urls,
        identity_key: cli.identity_key,
        web_dir: cli.web_dir,
        ..BrokerConfig::embedded(cli.listen, cli.data_dir)
    };
    let broker = Broker::start(&config).await?;
    let d = &broker.ledger.deployment;
    println!("Mercato broker listening on http://{}", broker.addr);
    println!("chain {} at {}", d.chain_id, broker.ledger.client.url());
    println!("marketplace {}", d.contracts.marketplace);
    println!("broker identity {}", broker.did);
    println!("data in {}", config.data_dir.display());
    match &config.web_dir {
        Some(dir) => println!(
            "web front end at http://{}/ (from {})",
            broker.addr,
            dir.display()
        ),
        None => println!("no web front end (--web-dir not given); the API is at /v1"),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    broker.stop().await;
    Ok(())
}
