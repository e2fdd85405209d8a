//! Peering commands: the provider's agent, the consumer's credentials and direct connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agent::{discovery, Agent, AgentConfig, Service};
use anyhow::{Context, Result};
use api::ContractId;
use clap::Subcommand;
use peering::{Credential, CredentialKind};

use crate::Ctx;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Serve the data plane and follow the broker for this provider's contracts.
    Run {
        /// Where consumers connect (put it in the provider configuration as tcp://HOST:PORT).
        #[arg(long)]
        listen: SocketAddr,
        /// The purchased TCP service consumers are connected to.
        #[arg(long, required_unless_present = "exec", conflicts_with = "exec")]
        service: Option<SocketAddr>,
        /// Compute sessions instead: run `sh -c COMMAND` per session on the channel (metered:
        /// CPU time and peak memory).
        #[arg(long)]
        exec: Option<String>,
        /// Where the agent keeps its admission table, event cursor and usage records.
        #[arg(long, default_value = ".mercato-agent")]
        state_dir: PathBuf,
        /// Sign contracts proposed for this provider's offers by itself.
        #[arg(long)]
        auto_accept: bool,
        /// Seconds without the broker after which no new session is admitted and running ones
        /// end (the longest a revocation goes unheard while the broker is away).
        #[arg(long, default_value_t = 3600)]
        offline_limit: u64,
    },
    /// Show this machine's resources (cores, memory, disk, interfaces, NVIDIA GPUs).
    Discover {
        #[arg(long, default_value = ".")]
        state_dir: PathBuf,
    },
    /// Publish (or refresh) an offer of this machine's resources with a plan template
    /// (YAML/JSON: id, name, location, plans; resources are discovered).
    Publish { template: PathBuf },
}

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Write the contract's credential (or its Liqo/WireGuard config) to a file.
    Get {
        contract: ContractId,
        #[arg(long)]
        out: PathBuf,
    },
    /// Get a new credential now (the old one works for the broker's grace period).
    Renew { contract: ContractId },
}

/// `mercato connect`.
#[derive(clap::Args)]
pub struct ConnectArgs {
    contract: ContractId,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    local: SocketAddr,
    /// Use this credential file (from `mercato credentials get`) instead of asking the broker.
    #[arg(long)]
    credential: Option<PathBuf>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialWritten {
    contract: ContractId,
    version: u32,
    kind: &'static str,
    file: PathBuf,
    expires_at: u64,
}

pub async fn agent(ctx: &Ctx, cmd: AgentCommand) -> Result<()> {
    match cmd {
        AgentCommand::Run {
            listen,
            service,
            exec,
            state_dir,
            auto_accept,
            offline_limit,
        } => {
            let service = match (service, exec) {
                (Some(addr), _) => Service::Tcp(addr),
                (None, Some(cmd)) => Service::Exec(cmd),
                (None, None) => anyhow::bail!("give --service ADDR or --exec COMMAND"),
            };
            let session = ctx.session()?;
            ctx.out.note(format!(
                "agent for {} on {listen}, serving {service:?}",
                session.did()
            ));
            let config = AgentConfig {
                listen,
                service,
                state_dir,
                auto_accept,
                offline_limit: std::time::Duration::from_secs(offline_limit),
            };
            Agent::new(session, ctx.key()?, config)?.run().await?;
            Ok(())
        }
        AgentCommand::Discover { state_dir } => {
            let d = discovery::discover(&state_dir);
            ctx.out.emit(&d, |d| {
                crate::output::fields([
                    ("architecture", d.architecture.clone()),
                    ("cores", d.cores.to_string()),
                    ("memory MiB", d.memory_mib.to_string()),
                    ("disk GiB", d.disk_gib.to_string()),
                    ("interfaces", d.interfaces.len().to_string()),
                    (
                        "GPUs",
                        if d.gpus.is_empty() {
                            format!("none ({})", d.gpu_note)
                        } else {
                            d.gpus
                                .iter()
                                .map(|g| format!("{} {} MiB", g.model, g.memory_mib))
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                    ),
                ])
            })
        }
        AgentCommand::Publish { template } => {
            let mut offer: serde_json::Value = crate::catalog_cmd::read_document(&template)?;
            let d = discovery::discover(Path::new("."));
            let session = ctx.session()?;
            offer["resources"] = serde_json::to_value(d.resources())?;
            offer["provider"] = session.did().to_string().into();
            if offer.get("version").is_none() {
                offer["version"] = 1.into();
            }
            let offer: catalog::Offer = serde_json::from_value(offer)
                .context("the template (with the discovered resources) is not an offer")?;
            let done = session.publish_offer(offer).await?;
            ctx.out.emit(&done, |p| {
                format!("published {} version {}", p.id, p.version)
            })
        }
    }
}

/// The file a credential becomes: the envelope, or the kind's own configuration (WireGuard's with
/// the private key this consumer made when it bought the contract).
fn render(ctx: &Ctx, contract: ContractId, c: &Credential) -> Result<String> {
    Ok(match &c.kind {
        CredentialKind::Wireguard {
            public_key,
            address,
            peer_public_key,
            peer_endpoint,
            allowed_ips,
            ..
        } => {
            use base64::Engine;
            let b64 = |hex: &str| {
                base64::engine::general_purpose::STANDARD
                    .encode(identity::hex_decode(hex).unwrap_or_default())
            };
            let private_key =
                sdk::wireguard::load_private_key(&ctx.key_path, contract, public_key)?;
            format!(
                "[Interface]\nPrivateKey = {}\nAddress = {address}\n\n[Peer]\nPublicKey = {}\nEndpoint = {peer_endpoint}\nAllowedIPs = {allowed_ips}\n",
                b64(&private_key),
                b64(peer_public_key)
            )
        }
        CredentialKind::Liqo { .. } | CredentialKind::Generic => serde_json::to_string_pretty(c)?,
    })
}

pub async fn credentials(ctx: &Ctx, cmd: CredentialsCommand) -> Result<()> {
    let session = ctx.session()?;
    match cmd {
        CredentialsCommand::Get { contract, out } => {
            let c = session.credential(contract).await?;
            write_private(&out, &render(ctx, contract, &c)?)?;
            let written = CredentialWritten {
                contract,
                version: c.version,
                kind: kind_name(&c.kind),
                file: out,
                expires_at: c.expires_at,
            };
            ctx.out.emit(&written, |w| {
                format!(
                    "credential v{} ({}) for {} written to {}; valid until {}",
                    w.version,
                    w.kind,
                    w.contract,
                    w.file.display(),
                    w.expires_at
                )
            })
        }
        CredentialsCommand::Renew { contract } => {
            let c = session.renew_credential(contract).await?;
            let fresh = serde_json::json!({"contract": contract, "expiresAt": c.expires_at});
            ctx.out.emit(&fresh, |_| {
                format!(
                    "renewed; the new credential is valid until {}",
                    c.expires_at
                )
            })
        }
    }
}

fn kind_name(k: &CredentialKind) -> &'static str {
    match k {
        CredentialKind::Generic => "generic",
        CredentialKind::Liqo { .. } => "liqo",
        CredentialKind::Wireguard { .. } => "wireguard",
    }
}

/// Credentials hold secrets: owner-only files, written whole.
fn write_private(path: &Path, text: &str) -> Result<()> {
    sdk::files::write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `mercato connect`: a local port carried to the provider over the direct channel. With
/// `--credential FILE` it needs no broker at all.
pub async fn connect(ctx: &Ctx, args: ConnectArgs) -> Result<()> {
    let c: Credential = match &args.credential {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?).with_context(|| {
            format!(
                "{} is not a credential written by `mercato credentials get`",
                path.display()
            )
        })?,
        None => ctx.session()?.credential(args.contract).await?,
    };
    let listener = tokio::net::TcpListener::bind(args.local).await?;
    let listening = serde_json::json!({
        "local": listener.local_addr()?.to_string(),
        "provider": c.agent_address(),
        "contract": args.contract,
    });
    ctx.out.emit(&listening, |_| {
        format!(
            "{} → provider {} for contract {}",
            args.local,
            c.agent_address().unwrap_or_default(),
            args.contract
        )
    })?;
    // Each session's signed receipts go to the broker as evidence against inflated usage; with
    // the broker away they are only logged (the sessions go on).
    let (receipts, mut signed) = tokio::sync::mpsc::unbounded_channel();
    let session = ctx.session()?;
    tokio::spawn(async move {
        while let Some(r) = signed.recv().await {
            if let Err(e) = session.submit_receipt(&r).await {
                eprintln!(
                    "warning: the receipt of session {} was not delivered: {e}",
                    r.session
                );
            }
        }
    });
    sdk::credentials::proxy(ctx.key()?, c, listener, receipts).await?;
    Ok(())
}
