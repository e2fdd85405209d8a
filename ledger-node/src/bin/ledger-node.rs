//! `ledger-node`: starts the development chain with Mercato's contracts, or deploys them to an
//! existing EVM node.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::accounts::signer_from_file;
use ledger::anvil::{AnvilOptions, DEFAULT_PORT, DEV_CHAIN_ID};
use ledger::deploy::DeployOptions;
use ledger::deployment::Deployment;
use ledger::{deploy, devnet, ChainClient};

#[derive(Parser)]
#[command(
    name = "ledger-node",
    version,
    about = "Mercato's ledger: the development chain and contract deployment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Anvil with its state in DIR, deploy the contracts once, and keep running.
    Up {
        #[arg(long, default_value = ".data/ledger")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
        #[arg(long, default_value_t = DEV_CHAIN_ID)]
        chain_id: u64,
    },
    /// Deploy the contracts to an existing EVM node (Quorum, Besu, another Anvil).
    Deploy {
        #[arg(long)]
        rpc_url: String,
        /// File holding the deployer's private key as hex; it becomes the contracts' admin.
        #[arg(long)]
        key_file: PathBuf,
        /// Refuse to deploy unless the node is this chain.
        #[arg(long)]
        chain_id: Option<u64>,
        /// The broker's relayer account; not the deployer (the admin holds no operational role).
        #[arg(long)]
        broker: alloy::primitives::Address,
        /// Seconds a transfer of the admin role waits before the new admin can accept it.
        #[arg(long, default_value_t = 2 * 24 * 3600)]
        admin_delay: u64,
        /// Broker fee on charges, in basis points (at most 1000).
        #[arg(long, default_value_t = 100)]
        fee_bps: u16,
        /// Seconds a usage charge can be challenged before the provider earns it (at most 30 days).
        #[arg(long, default_value_t = 24 * 3600)]
        challenge_window: u64,
        /// Where to write deployment.json.
        #[arg(long, default_value = "deployment.json")]
        out: PathBuf,
    },
    /// Generate a QBFT network configuration (genesis, node keys, Besu configs) for N validators.
    QbftConfig {
        #[arg(long, default_value = "qbft-network")]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// Accounts to fund in the genesis (the deployer, the broker's relayer).
        #[arg(long)]
        alloc: Vec<alloy::primitives::Address>,
    },
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} deploying {msg}").expect("template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn print_deployment(d: &Deployment) {
    println!("chain id             {}", d.chain_id);
    println!("deployment block     {}", d.deployment_block);
    for (name, address) in d.contracts.all() {
        println!("{name:<21}{address}");
    }
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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, never escape codes in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Up {
            data_dir,
            port,
            chain_id,
        } => {
            let options = AnvilOptions {
                port,
                chain_id,
                ..AnvilOptions::new(&data_dir)
            };
            let bar = spinner();
            let net = devnet::up(&options, |step| bar.set_message(step.to_string())).await;
            bar.finish_and_clear();
            let net = net?;
            println!(
                "{} on {}",
                if net.deployed_now {
                    "deployed"
                } else {
                    "reusing the deployment"
                },
                data_dir.display()
            );
            println!("rpc url              {}", net.chain.url());
            print_deployment(&net.deployment);
            println!(
                "deployment.json      {}",
                Deployment::path_in(&data_dir).display()
            );
            println!("ready; Ctrl-C stops the chain (its state is kept)");
            wait_for_shutdown().await;
            net.chain.stop().await;
        }
        Command::Deploy {
            rpc_url,
            key_file,
            chain_id,
            broker,
            admin_delay,
            fee_bps,
            challenge_window,
            out,
        } => {
            if out.exists() {
                Deployment::load(&out)?;
                anyhow::bail!(
                    "{} already records a deployment; pass --out with a new path to deploy again",
                    out.display()
                );
            }
            let signer = signer_from_file(&key_file)?;
            let client = ChainClient::connect(&rpc_url, signer).await?;
            let mut options = DeployOptions::production(broker);
            options.expected_chain_id = chain_id;
            options.admin_delay = admin_delay;
            options.fee_bps = fee_bps;
            options.challenge_window = challenge_window;
            let bar = spinner();
            let deployment =
                deploy(&client, &options, |step| bar.set_message(step.to_string())).await;
            bar.finish_and_clear();
            let deployment = deployment?;
            deployment
                .save(&out)
                .with_context(|| format!("deployed, but writing {} failed", out.display()))?;
            print_deployment(&deployment);
            println!("written to {}", out.display());
        }
        Command::QbftConfig {
            out,
            validators,
            chain_id,
            alloc,
        } => {
            let written = ledger::qbft::write_network(&out, validators, chain_id, &alloc)?;
            for f in written {
                println!("{}", f.display());
            }
        }
    }
    Ok(())
}

async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
