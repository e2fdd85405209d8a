//! `mercato-broker`: runs the broker. With no chain options it runs the embedded default:
//! Anvil with the contracts deployed, state and the SQLite database under `--data-dir`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use broker::{Broker, BrokerConfig, ChainConfig};
use clap::Parser;

#[derive(Parser)]
#[command(name = "mercato-broker", version, about = "The Mercato broker")]
struct Cli {
    /// Address the HTTP API listens on.
    #[arg(long, env = "MERCATO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded chain state and the SQLite database live.
    #[arg(long, env = "MERCATO_DATA_DIR", default_value = ".data")]
    data_dir: PathBuf,
    /// Database URL; defaults to SQLite in the data directory.
    #[arg(long, env = "MERCATO_DATABASE_URL")]
    database_url: Option<String>,
    /// Port of the embedded chain's JSON-RPC.
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
    #[arg(long, env = "MERCATO_CREDENTIAL_TTL", default_value_t = 3600)]
    credential_ttl: u64,
    /// How long a replaced credential keeps working after a renewal, in seconds.
    #[arg(long, env = "MERCATO_CREDENTIAL_GRACE", default_value_t = 60)]
    credential_grace: u64,
    /// Settle pending usage at least this often, in seconds.
    #[arg(long, env = "MERCATO_SETTLE_INTERVAL", default_value_t = 30)]
    settle_interval: u64,
    /// Most usage records in one settlement batch.
    #[arg(long, env = "MERCATO_BATCH_RECORDS", default_value_t = 20_000)]
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
    /// A did:key to make operator (repeatable): how the first operator comes to exist.
    #[arg(long = "operator", env = "MERCATO_OPERATORS", value_delimiter = ',')]
    operators: Vec<String>,
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
        .init();
    let cli = Cli::parse();
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
    let config = BrokerConfig {
        listen: cli.listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        chain,
        ipfs_api: cli.ipfs_api,
        amqp_url: cli.amqp_url,
        reservation_ttl: std::time::Duration::from_secs(cli.reservation_ttl),
        operators: cli.operators,
        abort_at: std::env::var(ABORT_AT_ENV).ok(),
        credentials: broker::market::credentials::CredentialPolicy {
            ttl_secs: cli.credential_ttl.max(1),
            grace_secs: cli.credential_grace,
        },
        settlement: broker::config::SettlementPolicy {
            interval: std::time::Duration::from_secs(cli.settle_interval.max(1)),
            limits: broker::market::settlement::BatchLimits {
                max_records: cli.batch_records.max(1),
                dispute_window_secs: cli.dispute_window,
                ..Default::default()
            },
            escrow: broker::market::escrow::EscrowPolicy {
                warn_before_secs: cli.escrow_warn,
                suspended_grace_secs: cli.suspended_grace,
            },
        },
    };
    let broker = Broker::start(&config).await?;
    let d = &broker.ledger.deployment;
    println!("Mercato broker listening on http://{}", broker.addr);
    println!("chain {} at {}", d.chain_id, broker.ledger.client.url());
    println!("marketplace {}", d.contracts.marketplace);
    println!("data in {}", config.data_dir.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    broker.stop().await;
    Ok(())
}
