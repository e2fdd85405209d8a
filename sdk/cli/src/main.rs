//! `mercato`: the command-line tool for providers, consumers, auditors and operators. Every
//! command prints a table or a line, or JSON with `--json`; amounts are typed and shown in
//! credits (`12.5`).

use std::path::PathBuf;

use anyhow::Result;
use api::{ContractId, Credits, Role};
use clap::{Parser, Subcommand, ValueEnum};
use sdk::Client;

mod audit_cmd;
mod catalog_cmd;
mod certs_cmd;
mod market;
mod output;
mod peer;

use output::Out;

#[derive(Parser)]
#[command(
    name = "mercato",
    version,
    about = "Mercato: the compute-continuum marketplace"
)]
pub struct Cli {
    /// The broker's URL.
    #[arg(
        long,
        global = true,
        env = "MERCATO_BROKER",
        default_value = "http://127.0.0.1:8080"
    )]
    broker: String,
    /// The participant's key file (hex Ed25519 secret); its EVM account key is `evm-<name>`
    /// beside it.
    #[arg(long, global = true, env = "MERCATO_KEY")]
    key_file: Option<PathBuf>,
    /// The broker's did:key, when known (`mercato status` shows it); otherwise it is pinned on
    /// first use in `known-brokers.json` beside the key file, and a broker that later shows
    /// another is refused.
    #[arg(long, global = true, env = "MERCATO_BROKER_DID")]
    broker_did: Option<api::Did>,
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
    /// Browse the catalog; publish and withdraw offers (providers).
    #[command(subcommand)]
    Offers(catalog_cmd::OffersCommand),
    /// Create or show this participant's key (its did:key is its identity).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register this key with the broker as a provider or a consumer.
    Register {
        #[arg(long, value_enum)]
        role: SelfRole,
    },
    /// Log in (by itself) and show who the broker says this key is.
    Whoami,
    /// This participant's EVM account (linked on chain).
    #[command(subcommand)]
    Account(market::AccountCommand),
    /// Development chains only: mint credits to the linked account.
    Faucet,
    /// Provider onboarding, acceptance of contracts, withdrawal of earnings.
    #[command(subcommand)]
    Provider(market::ProviderCommand),
    /// Buy a plan: reserve, check and sign, purchase, wait until the contract is active on chain.
    Buy(market::BuyArgs),
    /// Contracts this participant is party to.
    #[command(subcommand)]
    Contracts(market::ContractsCommand),
    /// The provider agent: data plane, contract follower, resource discovery.
    #[command(subcommand)]
    Agent(peer::AgentCommand),
    /// Peering credentials of a contract (its consumer only).
    #[command(subcommand)]
    Credentials(peer::CredentialsCommand),
    /// Open a local port carried straight to the provider (the broker stays off the data path).
    Connect(peer::ConnectArgs),
    /// A contract's statement: deposit, charges, settled usage, refund, provider net; checked
    /// against the chain.
    Statements {
        contract: ContractId,
        /// CSV instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Usage of contracts and proofs of its settlement.
    #[command(subcommand)]
    Usage(market::UsageCommand),
    /// Certified metrics: the broker's W3C credentials about providers; verify one offline.
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// A provider's reputation from its record, with every component.
    Reputation { provider: api::Did },
    /// Auditors: the ledger's contracts, flows, earnings, rankings, settlements, usage,
    /// credentials and configurations from the broker's index; `verify` from the chain and the
    /// content store alone.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Follow the broker's events (what this participant may see), one JSON object a line.
    Events {
        /// Start after this event (0: from the beginning).
        #[arg(long)]
        after: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new key and its EVM account key (never overwrites one).
    New,
    /// Show the did:key of the key.
    Show,
}

/// The roles a participant takes for itself.
#[derive(Clone, Copy, ValueEnum)]
enum SelfRole {
    Provider,
    Consumer,
}

impl From<SelfRole> for Role {
    fn from(r: SelfRole) -> Self {
        match r {
            SelfRole::Provider => Role::Provider,
            SelfRole::Consumer => Role::Consumer,
        }
    }
}

/// An amount of credits typed by a person (`12.5`).
pub fn parse_credits(s: &str) -> Result<Credits, String> {
    match Credits::parse_human(s) {
        Ok(c) if !c.is_zero() => Ok(c),
        Ok(_) => Err("the amount must be more than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// What every command reaches: the broker, the key file, the output mode.
pub struct Ctx {
    pub client: Client,
    pub key_path: PathBuf,
    /// How the broker's identity is known (given, or pinned in the known-brokers file).
    pub pin: sdk::BrokerPin,
    pub out: Out,
}

impl Ctx {
    pub fn key(&self) -> Result<ed25519_dalek::SigningKey> {
        Ok(sdk::keys::load(&self.key_path)?)
    }

    pub fn session(&self) -> Result<sdk::Session> {
        Ok(sdk::Session::new(self.client.clone(), self.key()?).with_pin(self.pin.clone()))
    }

    /// The EVM account key beside the did key (created when `create` and missing).
    pub fn evm(&self, create: bool) -> Result<alloy::signers::local::PrivateKeySigner> {
        let path = sdk::keys::evm_path(&self.key_path);
        match sdk::keys::load_evm(&path) {
            Ok(k) => Ok(k),
            Err(sdk::keys::KeyError::Missing(_)) if create => {
                self.out
                    .note(format!("created the EVM account key {}", path.display()));
                Ok(sdk::keys::generate_evm(&path)?)
            }
            Err(e) => Err(e.into()),
        }
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
            tracing_subscriber::EnvFilter::try_from_env("MERCATO_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, never escape codes in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let key_path = cli.key_file.clone().unwrap_or_else(sdk::keys::default_path);
    let pin = match &cli.broker_did {
        Some(did) => sdk::BrokerPin::Given(did.clone()),
        None => sdk::BrokerPin::File(sdk::pin::known_brokers_path(&key_path)),
    };
    let ctx = Ctx {
        client: Client::new(&cli.broker)?,
        key_path,
        pin,
        out: Out { json: cli.json },
    };
    match cli.command {
        Command::Status => status(&ctx).await,
        Command::Offers(cmd) => catalog_cmd::offers(&ctx, cmd).await,
        Command::Keys(KeysCommand::New) => keys(&ctx, true),
        Command::Keys(KeysCommand::Show) => keys(&ctx, false),
        Command::Register { role } => register(&ctx, role.into()).await,
        Command::Whoami => whoami(&ctx).await,
        Command::Account(cmd) => market::account(&ctx, cmd).await,
        Command::Faucet => market::faucet(&ctx).await,
        Command::Provider(cmd) => market::provider(&ctx, cmd).await,
        Command::Buy(args) => market::buy(&ctx, args).await,
        Command::Contracts(cmd) => market::contracts(&ctx, cmd).await,
        Command::Agent(cmd) => peer::agent(&ctx, cmd).await,
        Command::Credentials(cmd) => peer::credentials(&ctx, cmd).await,
        Command::Connect(args) => peer::connect(&ctx, args).await,
        Command::Statements { contract, csv } => market::statement(&ctx, contract, csv).await,
        Command::Usage(cmd) => market::usage(&ctx, cmd).await,
        Command::Certs(cmd) => certs_cmd::certs(&ctx, cmd).await,
        Command::Reputation { provider } => certs_cmd::reputation(&ctx, &provider).await,
        Command::Audit(cmd) => audit_cmd::audit(&ctx, cmd).await,
        Command::Events { after } => events(&ctx, after).await,
    }
}

async fn status(ctx: &Ctx) -> Result<()> {
    let status = ctx.client.ledger().await?;
    ctx.out.emit(&status, |s| {
        let c = &s.contracts;
        output::fields([
            ("chain id", s.chain_id.to_string()),
            ("rpc url", s.rpc_url.clone()),
            ("block", s.block_number.to_string()),
            ("deployment block", s.deployment_block.to_string()),
            ("broker account", s.broker_account.to_string()),
            ("CreditToken", c.credit_token.to_string()),
            ("ParticipantRegistry", c.participant_registry.to_string()),
            ("Marketplace", c.marketplace.to_string()),
            ("BillingModels", c.billing_models.to_string()),
            ("UsageSettlement", c.usage_settlement.to_string()),
            ("CredentialRegistry", c.credential_registry.to_string()),
        ])
    })
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    did: api::Did,
    key_file: PathBuf,
    account: Option<alloy::primitives::Address>,
}

fn keys(ctx: &Ctx, create: bool) -> Result<()> {
    let key = if create {
        sdk::keys::generate(&ctx.key_path)?
    } else {
        sdk::keys::load(&ctx.key_path)?
    };
    // The EVM account key comes with the did key (created with it).
    let account = ctx.evm(create).ok().map(|k| k.address());
    let info = KeyInfo {
        did: sdk::keys::did(&key),
        key_file: ctx.key_path.clone(),
        account,
    };
    ctx.out.emit(&info, |i| {
        ctx.out.note(format!("key file: {}", i.key_file.display()));
        if let Some(a) = i.account {
            ctx.out.note(format!("EVM account: {a}"));
        }
        i.did.to_string()
    })
}

async fn register(ctx: &Ctx, role: Role) -> Result<()> {
    let done = ctx.session()?.register(role).await?;
    ctx.out
        .emit(&done, |d| format!("registered {} as {}", d.did, d.role))
}

async fn whoami(ctx: &Ctx) -> Result<()> {
    let me = ctx.session()?.me().await?;
    ctx.out.emit(&me, |m| format!("{} ({})", m.did, m.role))
}

async fn events(ctx: &Ctx, after: Option<u64>) -> Result<()> {
    let mut events = ctx.session()?.events(after).await?;
    while let Some(e) = events.next().await? {
        // One event a line either way: a stream of JSON objects is what people and tools read.
        println!("{}", serde_json::to_string(&e)?);
    }
    Ok(())
}
