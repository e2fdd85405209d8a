//! `mercato`: the command-line tool for providers, consumers, auditors and operators.

use anyhow::Result;
use clap::{Parser, Subcommand};
use comfy_table::Table;
use sdk::Client;

#[path = "mercato/market.rs"]
mod market;
#[path = "mercato/peer.rs"]
mod peer;

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
    /// The key file (hex Ed25519 secret); default $MERCATO_KEY or ~/.config/mercato/key.hex.
    #[arg(long, global = true)]
    key_file: Option<std::path::PathBuf>,
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
    /// Browse the catalog.
    #[command(subcommand)]
    Offers(OffersCommand),
    /// Create or show this participant's key (its did:key is its identity).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register this key with the broker as a provider or a consumer.
    Register {
        #[arg(long, value_parser = ["provider", "consumer"])]
        role: String,
    },
    /// Log in (by itself) and show who the broker says this key is.
    Whoami,
    /// This participant's EVM account (linked on chain).
    #[command(subcommand)]
    Account(market::AccountCommand),
    /// Development chains only: mint credits to the linked account.
    Faucet,
    /// Provider onboarding and contract acceptance.
    #[command(subcommand)]
    Provider(market::ProviderCommand),
    /// Buy a plan: reserve, sign, purchase, wait until the contract is active on chain.
    Buy {
        /// OFFER/PLAN, as `mercato offers search` lists them.
        plan: String,
        #[arg(long, default_value_t = 1)]
        quantity: u32,
        /// Reserved plans: periods to pay for in advance.
        #[arg(long)]
        periods: Option<u32>,
        /// Escrow deposit in credits (required for pay-per-use plans).
        #[arg(long)]
        deposit: Option<f64>,
    },
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
    Connect {
        contract: String,
        /// The local address to listen on.
        #[arg(long, default_value = "127.0.0.1:7000")]
        local: std::net::SocketAddr,
        /// Use this credential file (from `mercato credentials get`) instead of asking the broker.
        #[arg(long)]
        credential: Option<std::path::PathBuf>,
    },
    /// A contract's statement: deposit, charges, settled usage, refund, provider net; checked
    /// against the chain.
    Statements {
        contract: String,
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// Usage of contracts and proofs of its settlement.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Follow the broker's events (what this participant may see).
    Events {
        /// Start after this event (0: from the beginning).
        #[arg(long)]
        after: Option<u64>,
    },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// A contract's usage records as they accrue, priced, and what is settled.
    Show { contract: String },
    /// Prove a record is part of its settled batch: checked here and by the chain.
    Prove { record: String },
    /// Dispute a record before it settles (consumers, within the broker's window).
    Dispute {
        record: String,
        #[arg(long)]
        reason: String,
    },
    /// Decide a dispute (operators): uphold the record, or void it with --void.
    Resolve {
        record: String,
        #[arg(long)]
        void: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new key (never overwrites one).
    New,
    /// Show the did:key of the key.
    Show,
}

#[derive(Subcommand)]
enum OffersCommand {
    /// Search plans: filters, ranking, pages (see `--help` for every filter).
    Search(Box<SearchArgs>),
    /// Show one offer (also withdrawn ones).
    Show { id: String },
    /// Publish an offer (YAML or JSON) as this provider's, signed; an existing id gets a new
    /// version.
    Publish { file: std::path::PathBuf },
    /// Withdraw one of this provider's offers.
    Withdraw { id: String },
    /// Counts per class, region, GPU model and price bucket for the filters.
    Facets(Box<SearchArgs>),
}

#[derive(clap::Args)]
struct SearchArgs {
    /// Resource class the offer must have (repeatable): compute, gpu, network, data.
    #[arg(long = "class")]
    classes: Vec<String>,
    #[arg(long = "region")]
    regions: Vec<String>,
    #[arg(long = "country")]
    countries: Vec<String>,
    #[arg(long = "gpu-model")]
    gpu_models: Vec<String>,
    #[arg(long = "provider")]
    providers: Vec<String>,
    #[arg(long = "arch")]
    architectures: Vec<String>,
    /// Words that must all appear in name, description, tags or dataset.
    #[arg(long = "text")]
    text: Vec<String>,
    /// Minimum CPU cores per plan unit.
    #[arg(long)]
    min_cpu: Option<f64>,
    /// Minimum memory per plan unit, GiB.
    #[arg(long)]
    min_memory_gib: Option<u64>,
    /// Minimum memory per GPU, GiB.
    #[arg(long)]
    min_gpu_memory_gib: Option<u64>,
    #[arg(long)]
    min_bandwidth_mbps: Option<u64>,
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Maximum normalised price per unit-hour, in credits.
    #[arg(long)]
    max_price: Option<f64>,
    #[arg(long)]
    min_green: Option<u8>,
    #[arg(long)]
    max_certified_latency_ms: Option<f64>,
    #[arg(long)]
    min_certified_uptime: Option<f64>,
    /// latitude,longitude,radiusKm
    #[arg(long)]
    near: Option<String>,
    /// price, latency, uptime, green, reputation
    #[arg(long, default_value = "price")]
    sort: String,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// The cursor printed after the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl SearchArgs {
    /// Goes through the same parameter parser as the broker, so errors read the same.
    fn query(&self) -> Result<catalog::Query> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        pairs.extend(self.classes.iter().map(|v| ("class", v.clone())));
        pairs.extend(self.regions.iter().map(|v| ("region", v.clone())));
        pairs.extend(self.countries.iter().map(|v| ("country", v.clone())));
        pairs.extend(self.gpu_models.iter().map(|v| ("gpuModel", v.clone())));
        pairs.extend(self.providers.iter().map(|v| ("provider", v.clone())));
        pairs.extend(self.architectures.iter().map(|v| ("arch", v.clone())));
        pairs.extend(self.text.iter().map(|v| ("q", v.clone())));
        let mut opt = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        };
        opt(
            "minCpuMillicores",
            self.min_cpu
                .map(|c| ((c * 1000.0).round() as u64).to_string()),
        );
        opt(
            "minMemoryMib",
            self.min_memory_gib.map(|g| (g * 1024).to_string()),
        );
        opt(
            "minGpuMemoryMib",
            self.min_gpu_memory_gib.map(|g| (g * 1024).to_string()),
        );
        opt(
            "minBandwidthMbps",
            self.min_bandwidth_mbps.map(|v| v.to_string()),
        );
        opt("maxLatencyMs", self.max_latency_ms.map(|v| v.to_string()));
        opt("maxPrice", self.max_price.map(|v| (v * CREDIT).to_string()));
        opt("minGreen", self.min_green.map(|v| v.to_string()));
        opt(
            "maxCertifiedLatencyMs",
            self.max_certified_latency_ms.map(|v| v.to_string()),
        );
        opt(
            "minCertifiedUptime",
            self.min_certified_uptime.map(|v| v.to_string()),
        );
        opt("near", self.near.clone());
        opt("sort", Some(self.sort.clone()));
        opt("limit", Some(self.limit.to_string()));
        opt("cursor", self.cursor.clone());
        catalog::params::parse(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .map_err(|e| anyhow::anyhow!("{e}; see `mercato offers search --help`"))
    }
}

const CREDIT: f64 = 1e8;

fn key_path(cli: &Cli) -> std::path::PathBuf {
    cli.key_file.clone().unwrap_or_else(sdk::keys::default_path)
}

fn session(cli: &Cli, client: Client) -> Result<sdk::Session> {
    Ok(sdk::Session::new(client, sdk::keys::load(&key_path(cli))?))
}

fn credits(base: f64) -> String {
    if base.is_finite() {
        format!("{:.4}", base / CREDIT)
    } else {
        "-".into()
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
        .init();
    let cli = Cli::parse();
    let client = Client::new(&cli.broker)?;
    match &cli.command {
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
        Command::Offers(OffersCommand::Search(args)) => {
            let q = args.query()?;
            let page = client.search_offers(&q).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                let mut table = Table::new();
                table.set_header([
                    "offer",
                    "plan",
                    "classes",
                    "region",
                    "cpu",
                    "mem GiB",
                    "gpu",
                    "price/h (MCR)",
                    "green %",
                ]);
                for item in &page.items {
                    let u = &item.plan.unit;
                    let classes: Vec<&str> = item.classes.iter().map(|c| c.as_str()).collect();
                    let gpu = item.resources.gpu.as_ref().map_or("-".to_string(), |g| {
                        format!("{} x{}", g.model, u.gpu_permille as f64 / 1000.0)
                    });
                    let main = q
                        .classes
                        .first()
                        .copied()
                        .or(item.classes.first().copied())
                        .unwrap_or(catalog::ResourceClass::Compute);
                    table.add_row([
                        item.offer_id.clone(),
                        item.plan.id.clone(),
                        classes.join(","),
                        item.location.region.clone(),
                        format!("{}", u.cpu_millicores as f64 / 1000.0),
                        format!("{:.1}", u.memory_mib as f64 / 1024.0),
                        gpu,
                        credits(item.plan.normalized_price(main)),
                        item.green_energy_percent.to_string(),
                    ]);
                }
                println!("{table}");
                println!("{} of {} plans", page.items.len(), page.total);
                if let Some(c) = &page.next_cursor {
                    println!("next page: --cursor {c}");
                }
            }
        }
        Command::Offers(OffersCommand::Facets(args)) => {
            let facets = client.offer_facets(&args.query()?).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&facets)?);
            } else {
                let mut table = Table::new();
                table.set_header(["facet", "value", "plans"]);
                for (facet, rows) in [
                    ("class", &facets.classes),
                    ("region", &facets.regions),
                    ("gpu model", &facets.gpu_models),
                    ("price ≤ (base units/h)", &facets.price_buckets),
                ] {
                    for (value, n) in rows {
                        table.add_row([facet.to_string(), value.clone(), n.to_string()]);
                    }
                }
                println!("{table}");
                println!("{} plans match", facets.total);
            }
        }
        Command::Keys(cmd) => {
            let path = cli.key_file.clone().unwrap_or_else(sdk::keys::default_path);
            let key = match cmd {
                KeysCommand::New => sdk::keys::generate(&path)?,
                KeysCommand::Show => sdk::keys::load(&path)?,
            };
            // The EVM account key comes with the did key (created when missing).
            let evm = market::evm_key(&path, matches!(cmd, KeysCommand::New)).ok();
            let account = evm.map(|k| k.address().to_string());
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"did": sdk::keys::did(&key), "keyFile": path, "account": account})
                );
            } else {
                println!("{}", sdk::keys::did(&key));
                eprintln!("key file: {}", path.display());
                if let Some(a) = account {
                    eprintln!("EVM account: {a}");
                }
            }
        }
        Command::Register { role } => {
            let session = session(&cli, client)?;
            session.register(role).await?;
            println!("registered {} as {role}", session.did());
        }
        Command::Whoami => {
            let me = session(&cli, client)?.me().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&me)?);
            } else {
                println!("{} ({})", me.did, me.role);
            }
        }
        Command::Account(cmd) => {
            let path = key_path(&cli);
            let session = session(&cli, client)?;
            let evm = market::evm_key(&path, matches!(cmd, market::AccountCommand::Link))?;
            let out = match cmd {
                market::AccountCommand::Link => session.link_account(&evm).await?,
                market::AccountCommand::Show => {
                    serde_json::to_value(session.account(evm.address()).await?)?
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Faucet => {
            let out = session(&cli, client)?.faucet().await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Provider(market::ProviderCommand::Register { config }) => {
            let text = std::fs::read_to_string(config)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config.display()))?;
            let evm = market::evm_key(&key_path(&cli), false)?;
            let out = session(&cli, client)?.register_config(&evm, &text).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Provider(market::ProviderCommand::Withdraw { amount }) => {
            let amount = match amount {
                Some(a) if !(a.is_finite() && *a > 0.0) => {
                    anyhow::bail!("--amount must be a positive number of credits")
                }
                Some(a) => Some(alloy::primitives::U256::from((a * CREDIT).round() as u128)),
                None => None,
            };
            let evm = market::evm_key(&key_path(&cli), false)?;
            let (tx, amount) = session(&cli, client)?
                .withdraw_earnings(&evm, amount)
                .await?;
            println!(
                "withdrew {amount} base units to {} (tx {tx})",
                evm.address()
            );
        }
        Command::Provider(market::ProviderCommand::Accept { contract, watch }) => {
            market::accept(&session(&cli, client)?, contract.as_deref(), *watch).await?;
        }
        Command::Offers(OffersCommand::Publish { file }) => {
            let offer: catalog::model::Offer = market::read_document(file)?;
            let out = session(&cli, client)?.publish_offer(offer).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Offers(OffersCommand::Withdraw { id }) => {
            let out = session(&cli, client)?.withdraw_offer(id).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Buy {
            plan,
            quantity,
            periods,
            deposit,
        } => {
            let (offer_id, plan_id) = plan.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("name the plan as OFFER/PLAN (see `mercato offers search`)")
            })?;
            let deposit = match deposit {
                Some(d) if !(d.is_finite() && *d > 0.0) => {
                    anyhow::bail!("--deposit must be a positive number of credits")
                }
                Some(d) => Some((d * CREDIT).round() as u64),
                None => None,
            };
            let req = sdk::market::ReserveRequest {
                offer_id: offer_id.into(),
                plan_id: plan_id.into(),
                quantity: *quantity,
                periods: *periods,
                deposit,
            };
            let evm = market::evm_key(&key_path(&cli), false)?;
            market::buy(&session(&cli, client)?, &evm, req, cli.json).await?;
        }
        Command::Contracts(market::ContractsCommand::List) => {
            let list = session(&cli, client)?.contracts().await?;
            market::print_contracts(&list, cli.json)?;
        }
        Command::Contracts(market::ContractsCommand::Show { id }) => {
            let c = session(&cli, client)?.contract(id).await?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        Command::Contracts(market::ContractsCommand::Escrow { id }) => {
            let e = session(&cli, client)?.escrow(id).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
            if e["runway"]["warning"] == true {
                eprintln!("warning: the escrow runs out soon; top it up with `mercato contracts topup {id} --amount CREDITS`");
            }
        }
        Command::Contracts(market::ContractsCommand::Topup { id, amount }) => {
            if !(amount.is_finite() && *amount > 0.0) {
                anyhow::bail!("--amount must be a positive number of credits");
            }
            let evm = market::evm_key(&key_path(&cli), false)?;
            let out = session(&cli, client)?
                .top_up(id, &evm, (amount * CREDIT).round() as u64)
                .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Contracts(market::ContractsCommand::Close { id }) => {
            market::close(&session(&cli, client)?, id, cli.json).await?;
        }
        Command::Agent(cmd) => {
            let key = sdk::keys::load(&key_path(&cli))?;
            peer::agent(session(&cli, client)?, key, cmd).await?;
        }
        Command::Credentials(cmd) => {
            peer::credentials(&session(&cli, client)?, cmd).await?;
        }
        Command::Connect {
            contract,
            local,
            credential,
        } => {
            let key = sdk::keys::load(&key_path(&cli))?;
            peer::connect(
                &session(&cli, client)?,
                key,
                contract,
                *local,
                credential.as_deref(),
            )
            .await?;
        }
        Command::Statements { contract, csv } => {
            print!(
                "{}",
                session(&cli, client)?.statement(contract, *csv).await?
            );
        }
        Command::Usage(UsageCommand::Dispute { record, reason }) => {
            let out = session(&cli, client)?.dispute_usage(record, reason).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Usage(UsageCommand::Resolve { record, void }) => {
            let out = session(&cli, client)?
                .resolve_dispute(record, !void)
                .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Usage(UsageCommand::Show { contract }) => {
            let u = session(&cli, client)?.usage(contract).await?;
            println!("{}", serde_json::to_string_pretty(&u)?);
        }
        Command::Usage(UsageCommand::Prove { record }) => {
            let p = session(&cli, client)?.usage_proof(record).await?;
            let parse = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok());
            let proof: Vec<alloy::primitives::B256> = p["proof"]
                .as_array()
                .map(|a| a.iter().filter_map(parse).collect())
                .unwrap_or_default();
            let local = match (parse(&p["root"]), parse(&p["recordHash"])) {
                (Some(root), Some(hash)) => contracts::merkle::verify(root, hash, &proof),
                _ => false,
            };
            println!("{}", serde_json::to_string_pretty(&p)?);
            println!(
                "record {record}: proof {} here, {} on chain",
                if local { "verifies" } else { "does NOT verify" },
                if p["verifiedOnChain"] == true {
                    "verified"
                } else {
                    "NOT verified"
                }
            );
            if !local || p["verifiedOnChain"] != true {
                anyhow::bail!("the record is not proven part of its batch");
            }
        }
        Command::Events { after } => {
            let mut events = session(&cli, client)?.events(*after).await?;
            while let Some(e) = events.next().await? {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
        Command::Offers(OffersCommand::Show { id }) => {
            let doc = client.offer(id).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(())
}
