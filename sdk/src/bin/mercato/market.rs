//! The marketplace commands: accounts, provider onboarding, publishing, buying, contracts.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use sdk::market::{Contract, ReserveRequest};
use sdk::Session;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Link this participant's EVM account on chain (created beside the key when missing).
    Link,
    /// Show the EVM account: linked did, credits, nonces.
    Show,
}

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Register (or change) the provider configuration: content store + CID on chain.
    Register {
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Withdraw earnings (all by default) to the provider's account; the account pays the gas.
    Withdraw {
        /// Amount in credits.
        #[arg(long)]
        amount: Option<f64>,
    },
    /// Sign the documents of contracts proposed to this provider (with --watch: as they come).
    Accept {
        /// One contract; default: every proposed one.
        contract: Option<String>,
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Subcommand)]
pub enum ContractsCommand {
    /// This participant's contracts (all, for auditors and operators).
    List,
    /// One contract: document, signatures, on-chain state.
    Show { id: String },
    /// Close an active contract; the unused escrow is refunded on chain.
    Close { id: String },
    /// How long the contract's escrow lasts at its rate of use (and whether it is suspended).
    Escrow { id: String },
    /// Add credits to the contract's escrow (resumes a contract suspended for its escrow).
    Topup {
        id: String,
        /// Credits to add.
        #[arg(long)]
        amount: f64,
    },
}

pub fn evm_key(key_file: &Path, create: bool) -> Result<alloy::signers::local::PrivateKeySigner> {
    let path = sdk::keys::evm_path(key_file);
    match sdk::keys::load_evm(&path) {
        Ok(k) => Ok(k),
        Err(sdk::keys::KeyError::Missing(_)) if create => {
            eprintln!("created the EVM account key {}", path.display());
            Ok(sdk::keys::generate_evm(&path)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads YAML or JSON into `T`.
pub fn read_document<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a valid document", path.display()))
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.set_message(msg.to_string());
    bar
}

fn state_message(c: &Contract) -> String {
    match c.state.as_str() {
        "proposed" => "waiting for the provider to sign the contract".into(),
        "accepted" => "signed by both; storing the signatures".into(),
        "opening" => "opening the contract on chain (escrowing the deposit)".into(),
        "active" => format!(
            "active on chain (tx {})",
            c.tx_hash.as_deref().unwrap_or("-")
        ),
        "closing" => "closing on chain".into(),
        "closed" => format!(
            "closed; refunded {} base units",
            c.refund.as_deref().unwrap_or("?")
        ),
        "failed" => format!("failed: {}", c.failure.as_deref().unwrap_or("")),
        other => other.into(),
    }
}

pub fn print_contracts(list: &[Contract], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.set_header([
        "contract", "state", "offer", "plan", "qty", "consumer", "provider",
    ]);
    for c in list {
        let short = |d: &str| {
            d.chars()
                .rev()
                .take(8)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        };
        table.add_row([
            c.id.clone(),
            c.state.clone(),
            c.offer_id.clone(),
            c.plan_id.clone(),
            c.quantity.to_string(),
            format!("…{}", short(&c.consumer)),
            format!("…{}", short(&c.provider)),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Shows the contract's progress until `done`, then prints it.
async fn follow(
    session: &Session,
    bar: &ProgressBar,
    id: &str,
    done: impl Fn(&Contract) -> bool,
    timeout: Duration,
    json: bool,
) -> Result<Contract> {
    let c = session
        .wait_contract(id, done, |c| bar.set_message(state_message(c)), timeout)
        .await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("contract {}: {}", c.id, state_message(&c));
    }
    Ok(c)
}

/// `mercato buy OFFER/PLAN`: reserve, check and sign, purchase, follow until active.
pub async fn buy(
    session: &Session,
    evm: &alloy::signers::local::PrivateKeySigner,
    req: ReserveRequest,
    json: bool,
) -> Result<()> {
    let bar = spinner("reserving");
    let r = session.reserve(&req).await?;
    bar.set_message(format!("reserved {} until {}", r.id, r.expires_at));
    let key = format!("buy-{}", r.id);
    let c = session.purchase(&req, &r, evm, &key).await?;
    let c = follow(
        session,
        &bar,
        &c.id,
        |c| matches!(c.state.as_str(), "active" | "failed" | "closed"),
        Duration::from_secs(900),
        json,
    )
    .await?;
    if c.state != "active" {
        bail!("the purchase did not complete: {}", state_message(&c));
    }
    Ok(())
}

pub async fn close(session: &Session, id: &str, json: bool) -> Result<()> {
    let bar = spinner("asking the broker to close");
    session.close(id).await?;
    follow(
        session,
        &bar,
        id,
        |c| c.state == "closed",
        Duration::from_secs(300),
        json,
    )
    .await?;
    Ok(())
}

/// Signs proposed contracts: one, all pending, or (watching) each as it is proposed.
pub async fn accept(session: &Session, one: Option<&str>, watch: bool) -> Result<()> {
    if let Some(id) = one {
        let c = session.accept(id).await?;
        println!("accepted {} ({})", c.id, c.state);
        return Ok(());
    }
    let mut events = if watch {
        Some(session.events(None).await?)
    } else {
        None
    };
    for c in session.contracts().await? {
        if c.state == "proposed" && c.provider == session.did() {
            session.accept(&c.id).await?;
            println!("accepted {}", c.id);
        }
    }
    let Some(events) = events.as_mut() else {
        return Ok(());
    };
    while let Some(e) = events.next().await? {
        if e.topic == "contract.proposed"
            && e.payload["provider"] == serde_json::json!(session.did())
        {
            match session.accept(&e.subject).await {
                Ok(_) => println!("accepted {}", e.subject),
                Err(err) => eprintln!("could not accept {}: {err}", e.subject),
            }
        }
    }
    Ok(())
}
