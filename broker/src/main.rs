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
}

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
