//! Auditors: the broker's answers from its ledger index (`mercato audit contracts|flows|…`, as
//! tables, `--json` or `--csv`), and `mercato audit verify`, which needs no broker at all: the
//! chain and the content store only.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use api::audit::*;
use api::{ContractId, Did};
use clap::{Args, Subcommand};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::output::{credits, short};
use crate::Ctx;

/// Range and paging options most queries share.
#[derive(Args, Debug, Clone, Default)]
pub struct Window {
    /// From this time (unix seconds; default 31 days before --to).
    #[arg(long)]
    from: Option<u64>,
    /// Until this time (unix seconds; default now).
    #[arg(long)]
    to: Option<u64>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Paging {
    /// Items per page (1-500, default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// The next page: the cursor the previous page printed.
    #[arg(long)]
    cursor: Option<String>,
    /// CSV instead of a table.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Contracts opened in a time range: price, deposit, blocks, charged, refunded, escrow.
    Contracts {
        /// A did:key or an account (0x…).
        #[arg(long)]
        participant: Option<String>,
        #[arg(long, value_parser = side)]
        side: Option<Side>,
        /// open, low, suspended, closing or closed.
        #[arg(long, value_parser = state)]
        state: Option<LedgerContractState>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        paging: Paging,
    },
    /// Every flow of a participant's credits, with transaction and log index.
    Flows {
        participant: String,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        paging: Paging,
    },
    /// Provider earnings and broker fees per day, week or month.
    Earnings {
        #[arg(long)]
        provider: Option<String>,
        /// day, week or month.
        #[arg(long, default_value = "day", value_parser = bucket)]
        per: Bucket,
        #[command(flatten)]
        window: Window,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Top providers (or consumers) by sales or contracts.
    Rankings {
        #[arg(long, value_parser = side)]
        side: Option<Side>,
        /// sales or contracts.
        #[arg(long, value_parser = rank_by)]
        by: Option<RankBy>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        paging: Paging,
    },
    /// Settlement batches: records CID, Merkle root, what each contract was charged.
    Settlements {
        #[arg(long)]
        contract: Option<ContractId>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        paging: Paging,
    },
    /// Usage settled against what was bought, per contract.
    Usage {
        #[arg(long)]
        contract: Option<ContractId>,
        #[arg(long)]
        participant: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Credentials anchored and revoked.
    Credentials {
        /// The issuing account (0x…).
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        provider: Option<Did>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Provider configuration history (CID and version).
    Configs {
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// How far the broker's index has read, and the reorganisations it rolled back.
    Index,
    /// The index's counts against counts read from the chain now.
    Selfcheck,
    /// Verify the whole ledger from the chain and the content store alone (no broker): exits
    /// non-zero on any difference.
    Verify {
        /// The chain's JSON-RPC URL.
        #[arg(long)]
        rpc_url: String,
        /// The deployment file (`deployment.json`, in the ledger's data directory).
        #[arg(long)]
        deployment: PathBuf,
        /// An IPFS node's RPC API (http://127.0.0.1:5001).
        #[arg(long, conflicts_with = "content_dir")]
        ipfs_api: Option<String>,
        /// An embedded content store's directory (`.data/content`).
        #[arg(long)]
        content_dir: Option<PathBuf>,
        /// Start at this block instead of the deployment's (conservation is then not checked).
        #[arg(long)]
        from_block: Option<u64>,
    },
}

fn named<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("{s:?} is not a {what}"))
}
fn side(s: &str) -> Result<Side, String> {
    named("side (consumer or provider)", s)
}
fn state(s: &str) -> Result<LedgerContractState, String> {
    named("state (open, low, suspended, closing, closed)", s)
}
fn bucket(s: &str) -> Result<Bucket, String> {
    named("period (day, week, month)", s)
}
fn rank_by(s: &str) -> Result<RankBy, String> {
    named("ranking (sales, contracts)", s)
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn time(t: u64) -> String {
    certify::timestamp(t)
}

fn page_note(next: &Option<String>) -> String {
    match next {
        Some(c) => format!("more: --cursor {c}"),
        None => String::new(),
    }
}

/// Runs a paged query: CSV, JSON or a table.
async fn query<Q: Serialize, T: Serialize + DeserializeOwned>(
    ctx: &Ctx,
    what: &str,
    q: &Q,
    csv: bool,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    let session = ctx.session()?;
    if csv {
        print!("{}", session.audit_csv(what, q).await?);
        return Ok(());
    }
    let answer: T = session.audit(what, q).await?;
    ctx.out.emit(&answer, human)
}

pub async fn audit(ctx: &Ctx, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Contracts {
            participant,
            side,
            state,
            window,
            paging,
        } => {
            let q = AuditContractsQuery {
                participant,
                side,
                state,
                from: window.from,
                to: window.to,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "contracts", &q, paging.csv, |p: &AuditContractPage| {
                let mut t = Table::new();
                t.set_header([
                    "contract", "consumer", "provider", "opened", "closed", "deposit", "charged",
                    "refunded", "escrow", "state",
                ]);
                for c in &p.items {
                    t.add_row([
                        short(&c.contract_id.to_string()),
                        short(&c.consumer.to_string()),
                        short(&c.provider.to_string()),
                        format!("{} (block {})", time(c.opened_at), c.opened_block),
                        c.closed_block
                            .map_or(String::new(), |b| format!("block {b}")),
                        credits(c.deposit),
                        credits(c.charged),
                        credits(c.refunded),
                        credits(c.escrow),
                        name(&c.state),
                    ]);
                }
                format!(
                    "{t}\n{} contract(s) {}",
                    p.items.len(),
                    page_note(&p.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Flows {
            participant,
            window,
            paging,
        } => {
            let q = FlowsQuery {
                participant,
                from: window.from,
                to: window.to,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "flows", &q, paging.csv, |p: &FlowPage| {
                let mut t = Table::new();
                t.set_header(["time", "kind", "amount", "contract", "tx", "log"]);
                for f in &p.items {
                    t.add_row([
                        time(f.at),
                        name(&f.kind),
                        credits(f.amount),
                        f.contract_id
                            .map_or(String::new(), |c| short(&c.to_string())),
                        short(&f.tx.to_string()),
                        f.log_index.to_string(),
                    ]);
                }
                format!(
                    "{t}\n{} flow(s) of {} {}",
                    p.items.len(),
                    p.account,
                    page_note(&p.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Earnings {
            provider,
            per,
            window,
            csv,
        } => {
            let q = EarningsQuery {
                provider,
                per: Some(per),
                from: window.from,
                to: window.to,
                format: None,
            };
            query(ctx, "earnings", &q, csv, |r: &EarningsReport| {
                let mut t = Table::new();
                t.set_header(["from", "provider earnings", "broker fees", "events"]);
                for row in &r.rows {
                    t.add_row([
                        time(row.start),
                        credits(row.provider_earnings),
                        credits(row.broker_fees),
                        row.events.to_string(),
                    ]);
                }
                format!(
                    "{t}\nin all: {} to providers, {} in fees",
                    credits(r.provider_earnings),
                    credits(r.broker_fees)
                )
            })
            .await
        }
        AuditCommand::Rankings {
            side,
            by,
            window,
            paging,
        } => {
            let q = RankingsQuery {
                side,
                by,
                from: window.from,
                to: window.to,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "rankings", &q, paging.csv, |r: &Ranking| {
                let mut t = Table::new();
                t.set_header(["#", "account", "did", "contracts", "sales"]);
                for row in &r.items {
                    t.add_row([
                        row.rank.to_string(),
                        row.account.to_string(),
                        row.did
                            .as_ref()
                            .map_or(String::new(), |d| short(d.as_str())),
                        row.contracts.to_string(),
                        credits(row.sales),
                    ]);
                }
                format!(
                    "{t}\nin all: {} contract(s), {} {}",
                    r.total_contracts,
                    credits(r.total_sales),
                    page_note(&r.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Settlements {
            contract,
            window,
            paging,
        } => {
            let q = SettlementsQuery {
                contract,
                from: window.from,
                to: window.to,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "settlements", &q, paging.csv, |p: &SettlementPage| {
                let mut t = Table::new();
                t.set_header([
                    "batch",
                    "time",
                    "records",
                    "total",
                    "contracts",
                    "records CID",
                ]);
                for b in &p.items {
                    t.add_row([
                        short(&b.batch_id.to_string()),
                        time(b.at),
                        b.record_count.to_string(),
                        credits(b.total),
                        b.charges.len().to_string(),
                        b.records_cid.clone(),
                    ]);
                }
                format!(
                    "{t}\n{} batch(es) {}\na record's proof: mercato usage proof RECORD",
                    p.items.len(),
                    page_note(&p.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Usage {
            contract,
            participant,
            paging,
        } => {
            let q = UsageAuditQuery {
                contract,
                participant,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "usage", &q, paging.csv, |p: &UsageAuditPage| {
                let mut t = Table::new();
                t.set_header([
                    "contract",
                    "bought",
                    "periods",
                    "usage",
                    "returned",
                    "refunded",
                    "escrow",
                    "batches",
                    "unexplained",
                ]);
                for u in &p.items {
                    t.add_row([
                        short(&u.contract_id.to_string()),
                        credits(u.bought),
                        credits(u.periods_charged),
                        credits(u.usage_charged),
                        credits(u.returned),
                        credits(u.refunded),
                        credits(u.escrow),
                        u.batches.to_string(),
                        credits(u.unexplained),
                    ]);
                }
                format!(
                    "{t}\n{} contract(s) {}",
                    p.items.len(),
                    page_note(&p.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Credentials {
            issuer,
            provider,
            paging,
        } => {
            let q = CredentialsAuditQuery {
                issuer,
                provider,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(
                ctx,
                "credentials",
                &q,
                paging.csv,
                |p: &CredentialAuditPage| {
                    let mut t = Table::new();
                    t.set_header(["hash", "provider", "anchored", "revoked", "cid"]);
                    for c in &p.items {
                        t.add_row([
                            short(&c.hash.to_string()),
                            c.provider
                                .as_ref()
                                .map_or(String::new(), |d| short(d.as_str())),
                            time(c.anchored_at),
                            c.revoked_at.map_or(String::new(), |t| {
                                format!(
                                    "{} ({})",
                                    time(t),
                                    c.revoke_reason.clone().unwrap_or_default()
                                )
                            }),
                            c.cid.clone(),
                        ]);
                    }
                    format!(
                        "{t}\n{} credential(s) {}",
                        p.items.len(),
                        page_note(&p.next_cursor)
                    )
                },
            )
            .await
        }
        AuditCommand::Configs { provider, paging } => {
            let q = ConfigsQuery {
                provider,
                limit: paging.limit,
                cursor: paging.cursor,
                format: None,
            };
            query(ctx, "configs", &q, paging.csv, |p: &ConfigPage| {
                let mut t = Table::new();
                t.set_header(["account", "did", "version", "time", "cid"]);
                for c in &p.items {
                    t.add_row([
                        c.account.to_string(),
                        c.did.as_ref().map_or(String::new(), |d| short(d.as_str())),
                        c.version.to_string(),
                        time(c.at),
                        c.cid.clone(),
                    ]);
                }
                format!(
                    "{t}\n{} version(s) {}",
                    p.items.len(),
                    page_note(&p.next_cursor)
                )
            })
            .await
        }
        AuditCommand::Index => {
            let s: IndexStatus = ctx.session()?.audit("index", &sdk::audit::NO_QUERY).await?;
            ctx.out.emit(&s, |s| {
                let mut out = format!(
                    "chain {}: indexed blocks {}..{} of head {} ({} confirmations), {} events",
                    s.chain_id, s.deployment_block, s.next_block, s.head, s.confirmations, s.events
                );
                for r in &s.reorgs {
                    out.push_str(&format!(
                        "\nreorganisation at {}: block {} back to {} ({} deep){}",
                        time(r.detected_at),
                        r.from_block,
                        r.ancestor,
                        r.depth,
                        if r.beyond_confirmations {
                            ", deeper than the confirmation depth"
                        } else {
                            ""
                        }
                    ));
                }
                out
            })
        }
        AuditCommand::Selfcheck => {
            let s: SelfCheck = ctx
                .session()?
                .audit("selfcheck", &sdk::audit::NO_QUERY)
                .await?;
            ctx.out.emit(&s, |s| {
                let mut t = Table::new();
                t.set_header(["event", "indexed", "on chain", ""]);
                for c in &s.counts {
                    t.add_row([
                        c.event.clone(),
                        c.indexed.to_string(),
                        c.on_chain.to_string(),
                        if c.agrees { "ok" } else { "DIFFERS" }.to_string(),
                    ]);
                }
                format!(
                    "{t}\nthrough block {}: {}",
                    s.through_block,
                    if s.agrees {
                        "the index agrees with the chain"
                    } else {
                        "the index DIFFERS from the chain"
                    }
                )
            })?;
            if !s.agrees {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Verify {
            rpc_url,
            deployment,
            ipfs_api,
            content_dir,
            from_block,
        } => verify(ctx, rpc_url, deployment, ipfs_api, content_dir, from_block).await,
    }
}

async fn verify(
    ctx: &Ctx,
    rpc_url: String,
    deployment: PathBuf,
    ipfs_api: Option<String>,
    content_dir: Option<PathBuf>,
    from_block: Option<u64>,
) -> Result<()> {
    let d = ledger::Deployment::load(&deployment)
        .with_context(|| format!("cannot read {}", deployment.display()))?
        .with_context(|| format!("no deployment at {}", deployment.display()))?;
    let content: Arc<dyn content::ContentStore> = match (ipfs_api, content_dir) {
        (Some(url), None) => Arc::new(content::KuboStore::new(&url)),
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!("{} is not a content store directory", dir.display());
            }
            Arc::new(content::EmbeddedStore::open(dir)?)
        }
        _ => bail!("say where the content is: --ipfs-api URL or --content-dir DIR"),
    };
    let bar = if ctx.out.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}").expect("a valid template"),
    );
    let sources = sdk::audit::Sources {
        rpc_url,
        deployment: d,
        content,
        from_block,
    };
    let progress = |stage: sdk::audit::Stage| match stage {
        sdk::audit::Stage::Logs { read, total } => {
            bar.set_message("blocks");
            bar.set_length(total);
            bar.set_position(read);
        }
        sdk::audit::Stage::Content { done, total } => {
            bar.set_message("documents");
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let report = sdk::audit::verify(&sources, &progress).await?;
    bar.finish_and_clear();
    ctx.out.emit(&report, sdk::audit::render)?;
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
