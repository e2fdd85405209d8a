//! `mercato`: the command-line tool for providers, consumers, auditors and operators.

use anyhow::Result;
use clap::{Parser, Subcommand};
use comfy_table::Table;
use sdk::Client;

#[derive(Parser)]
#[command(
    name = "mercato",
    version,
    about = "Mercato: the compute-continuum marketplace"
)]
struct Cli {
    /// The broker's URL.
    #[arg(
        long,
        global = true,
        env = "MERCATO_BROKER",
        default_value = "http://127.0.0.1:8080"
    )]
    broker: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the ledger the broker settles on: chain, block, contract addresses.
    Status,
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
    let cli = Cli::parse();
    let client = Client::new(&cli.broker)?;
    match cli.command {
        Command::Status => {
            let status = client.ledger().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let mut table = Table::new();
                table.set_header(["ledger", "value"]);
                let c = &status.contracts;
                for (k, v) in [
                    ("chain id", status.chain_id.to_string()),
                    ("rpc url", status.rpc_url.clone()),
                    ("block", status.block_number.to_string()),
                    ("deployment block", status.deployment_block.to_string()),
                    ("broker account", status.broker_account.clone()),
                    ("CreditToken", c.credit_token.clone()),
                    ("ParticipantRegistry", c.participant_registry.clone()),
                    ("Marketplace", c.marketplace.clone()),
                    ("BillingModels", c.billing_models.clone()),
                    ("UsageSettlement", c.usage_settlement.clone()),
                    ("CredentialRegistry", c.credential_registry.clone()),
                ] {
                    table.add_row([k.to_string(), v]);
                }
                println!("{table}");
            }
        }
    }
    Ok(())
}
