//! Certified metrics: list and show the broker's certificates, verify a credential anywhere
//! (offline: no broker needed), and, for operators, revoke one or probe a provider now.

use std::path::PathBuf;

use alloy::primitives::Address;
use anyhow::{bail, Context, Result};
use api::certificates::Certificate;
use api::Did;
use clap::Subcommand;
use comfy_table::Table;
use sdk::certs::{AnchorSource, Outcome};

use crate::output::{self, short};
use crate::Ctx;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// The broker's certificates: valid ones, or all with `--all`.
    List {
        #[arg(long)]
        provider: Option<Did>,
        /// Also superseded, revoked and expired ones.
        #[arg(long)]
        all: bool,
    },
    /// One certificate; `--out FILE` saves its credential (to verify or hand to others).
    Show {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a credential file without the broker: proof, issuer, validity, provider
    /// attestation, the status list when reachable, the on-chain anchor with `--rpc-url`.
    Verify {
        file: PathBuf,
        /// An issuer to trust (repeatable); default: the broker did given with `--broker-did`
        /// or pinned beside the key file.
        #[arg(long = "trust")]
        trust: Vec<Did>,
        /// Check the anchor on this chain (JSON-RPC URL); needs `--registry`.
        #[arg(long, requires = "registry")]
        rpc_url: Option<String>,
        /// The `CredentialRegistry` address (`mercato status` shows it).
        #[arg(long)]
        registry: Option<Address>,
        /// Do not fetch the status list.
        #[arg(long)]
        offline: bool,
    },
    /// Operators: revoke a certificate (status list and on-chain anchor).
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Operators: probe a provider now.
    Probe { provider: Did },
}

fn table(items: &[Certificate]) -> String {
    let mut t = Table::new();
    t.set_header([
        "id",
        "provider",
        "metric",
        "state",
        "figures",
        "valid until",
        "anchored",
    ]);
    for c in items {
        t.add_row([
            c.id.clone(),
            short(c.provider.as_str()),
            c.metric.clone(),
            serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.summary.clone(),
            certify::timestamp(c.valid_until),
            c.anchor_tx
                .as_ref()
                .map_or("pending".into(), |t| short(&t.to_string())),
        ]);
    }
    format!("{t}\n{} certificate(s)", items.len())
}

pub async fn certs(ctx: &Ctx, cmd: CertsCommand) -> Result<()> {
    match cmd {
        CertsCommand::List { provider, all } => {
            let list = ctx.client.certificates(provider.as_ref(), all).await?;
            ctx.out.emit(&list, |l| table(&l.items))
        }
        CertsCommand::Show { id, out } => {
            let c = ctx.client.certificate(&id).await?;
            if let Some(path) = &out {
                std::fs::write(path, serde_json::to_vec_pretty(&c.credential)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                ctx.out
                    .note(format!("credential saved to {}", path.display()));
            }
            ctx.out.emit(&c, |c| {
                output::fields([
                    ("id", c.id.clone()),
                    ("provider", c.provider.to_string()),
                    ("metric", c.metric.clone()),
                    (
                        "vouched",
                        if c.measured_by_issuer {
                            "measured by the broker".to_string()
                        } else {
                            "provider-attested (the broker vouches only that the provider said it)"
                                .to_string()
                        },
                    ),
                    ("figures", c.summary.clone()),
                    ("issuer", c.issuer.to_string()),
                    ("issued", certify::timestamp(c.issued_at)),
                    ("valid until", certify::timestamp(c.valid_until)),
                    ("hash", c.hash.clone()),
                    ("cid", c.cid.to_string()),
                    ("status index", c.status_index.to_string()),
                    (
                        "anchor tx",
                        c.anchor_tx
                            .as_ref()
                            .map_or("pending".into(), |t| t.to_string()),
                    ),
                    (
                        "revoked",
                        c.revoke_reason.clone().unwrap_or_else(|| "no".into()),
                    ),
                ])
            })
        }
        CertsCommand::Verify {
            file,
            trust,
            rpc_url,
            registry,
            offline,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let mut trusted: Vec<String> = trust.iter().map(|d| d.to_string()).collect();
            if trusted.is_empty() {
                trusted = ctx.pin.trusted().iter().map(|d| d.to_string()).collect();
            }
            if trusted.is_empty() {
                bail!("no issuer to trust: pass --trust DID (the broker's did, as `mercato status` or the broker's start-up shows it), or --broker-did");
            }
            let anchor = match (rpc_url, registry) {
                (Some(rpc_url), Some(registry)) => Some(AnchorSource { rpc_url, registry }),
                _ => None,
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let report = sdk::certs::verify(&doc, &trusted, now, !offline, anchor.as_ref()).await;
            ctx.out.emit(&report, |r| {
                let mut t = Table::new();
                t.set_header(["check", "outcome", "detail"]);
                for c in &r.checks {
                    let (o, d) = match &c.outcome {
                        Outcome::Passed => ("passed", String::new()),
                        Outcome::Failed(d) => ("FAILED", d.clone()),
                        Outcome::Skipped(d) => ("skipped", d.clone()),
                    };
                    t.add_row([c.check.to_string(), o.to_string(), d]);
                }
                format!(
                    "{t}\n{}: {} of {} ({})",
                    if r.valid { "valid" } else { "NOT valid" },
                    r.metric.as_deref().unwrap_or("?"),
                    r.subject.as_deref().unwrap_or("?"),
                    r.id.as_deref().unwrap_or("?")
                )
            })?;
            if !report.valid {
                std::process::exit(1);
            }
            Ok(())
        }
        CertsCommand::Revoke { id, reason } => {
            let c = ctx.session()?.revoke_certificate(&id, &reason).await?;
            ctx.out
                .emit(&c, |c| format!("revoked {} ({}): {reason}", c.id, c.metric))
        }
        CertsCommand::Probe { provider } => {
            let list = ctx.session()?.probe_provider(&provider).await?;
            ctx.out.emit(&list, |l| table(&l.items))
        }
    }
}

/// `mercato reputation DID`: the score and every component.
pub async fn reputation(ctx: &Ctx, provider: &Did) -> Result<()> {
    let r = ctx.client.reputation(provider).await?;
    ctx.out.emit(&r, |r| {
        let c = &r.components;
        output::fields([
            ("provider", r.provider.to_string()),
            ("score", format!("{:.3}", r.score)),
            ("contracts completed", c.contracts_completed.to_string()),
            ("contracts failed", c.contracts_failed.to_string()),
            ("contracts ended early", c.contracts_ended_early.to_string()),
            ("contracts active", c.contracts_active.to_string()),
            ("disputes lost", c.disputes_lost.to_string()),
            ("disputes won", c.disputes_won.to_string()),
            (
                "records settled",
                format!("{} of {}", c.records_settled, c.records_reported),
            ),
            (
                "certified uptime 30 d",
                c.certified_uptime_30d
                    .map_or("none".into(), |bp| format!("{:.2}%", f64::from(bp) / 100.0)),
            ),
            ("verified provider", c.verified_provider.to_string()),
            ("formula", r.formula.clone()),
        ])
    })
}
