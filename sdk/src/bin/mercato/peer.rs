//! Peering commands: the provider's agent, the consumer's credentials and direct connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use peering::{Credential, CredentialKind};
use sdk::agent::{discovery, Agent, AgentConfig, Service};
use sdk::Session;

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
        contract: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Get a new credential now (the old one works for the broker's grace period).
    Renew { contract: String },
}

pub async fn agent(
    session: Session,
    key: ed25519_dalek::SigningKey,
    cmd: &AgentCommand,
) -> Result<()> {
    match cmd {
        AgentCommand::Run {
            listen,
            service,
            exec,
            state_dir,
            auto_accept,
        } => {
            let service = match (service, exec) {
                (Some(addr), _) => Service::Tcp(*addr),
                (None, Some(cmd)) => Service::Exec(cmd.clone()),
                (None, None) => anyhow::bail!("give --service ADDR or --exec COMMAND"),
            };
            eprintln!(
                "agent for {} on {listen}, serving {service:?}",
                session.did()
            );
            let config = AgentConfig {
                listen: *listen,
                service,
                state_dir: state_dir.clone(),
                auto_accept: *auto_accept,
            };
            Agent::new(session, key, config)?.run().await?;
            Ok(())
        }
        AgentCommand::Discover { state_dir } => {
            let d = discovery::discover(state_dir);
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
        AgentCommand::Publish { template } => {
            let mut offer: serde_json::Value = crate::market::read_document(template)?;
            let d = discovery::discover(Path::new("."));
            offer["resources"] = serde_json::to_value(d.resources())?;
            offer["provider"] = session.did().into();
            if offer.get("version").is_none() {
                offer["version"] = 1.into();
            }
            let offer: catalog::model::Offer = serde_json::from_value(offer)
                .context("the template (with the discovered resources) is not an offer")?;
            let out = session.publish_offer(offer).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

/// The file a credential becomes: the envelope, or the kind's own configuration.
fn render(c: &Credential) -> Result<String> {
    Ok(match &c.kind {
        CredentialKind::Wireguard {
            private_key,
            address,
            peer_public_key,
            peer_endpoint,
            allowed_ips,
            ..
        } => {
            use base64::Engine;
            let b64 = |hex: &str| {
                base64::engine::general_purpose::STANDARD
                    .encode(catalog::identity::hex_decode(hex).unwrap_or_default())
            };
            format!(
                "[Interface]\nPrivateKey = {}\nAddress = {address}\n\n[Peer]\nPublicKey = {}\nEndpoint = {peer_endpoint}\nAllowedIPs = {allowed_ips}\n",
                b64(private_key),
                b64(peer_public_key)
            )
        }
        CredentialKind::Liqo { .. } | CredentialKind::Generic => serde_json::to_string_pretty(c)?,
    })
}

pub async fn credentials(session: &Session, cmd: &CredentialsCommand) -> Result<()> {
    match cmd {
        CredentialsCommand::Get { contract, out } => {
            let c = session.credential(contract).await?;
            write_private(out, &render(&c)?)?;
            eprintln!(
                "credential v{} ({}) for {contract} written to {}; valid until {}",
                c.version,
                kind_name(&c.kind),
                out.display(),
                c.expires_at
            );
        }
        CredentialsCommand::Renew { contract } => {
            let c = session.renew_credential(contract).await?;
            eprintln!(
                "renewed; the new credential is valid until {}",
                c.expires_at
            );
        }
    }
    Ok(())
}

fn kind_name(k: &CredentialKind) -> &'static str {
    match k {
        CredentialKind::Generic => "generic",
        CredentialKind::Liqo { .. } => "liqo",
        CredentialKind::Wireguard { .. } => "wireguard",
    }
}

/// Credentials hold secrets: owner-only files.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// `mercato connect`: a local port carried to the provider over the direct channel. With
/// `--credential FILE` it needs no broker at all.
pub async fn connect(
    session: &Session,
    key: ed25519_dalek::SigningKey,
    contract: &str,
    local: SocketAddr,
    credential: Option<&Path>,
) -> Result<()> {
    let c: Credential = match credential {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?).with_context(|| {
            format!(
                "{} is not a credential written by `mercato credentials get`",
                path.display()
            )
        })?,
        None => session.credential(contract).await?,
    };
    let listener = tokio::net::TcpListener::bind(local).await?;
    eprintln!(
        "{} → provider {} for contract {contract}",
        listener.local_addr()?,
        c.agent_address().unwrap_or_default()
    );
    sdk::credentials::proxy(key, c, listener).await?;
    Ok(())
}
