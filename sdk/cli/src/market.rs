//! The marketplace commands: accounts, provider onboarding, buying, contracts, usage and
//! statements.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use api::contracts::ContractListQuery;
use api::reservations::ReserveRequest;
use api::{Contract, ContractId, ContractState, Credits, OfferId, PlanId, UsageRecordId};
use clap::Subcommand;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use sdk::Session;

use crate::output::{self, credits, short};
use crate::{parse_credits, Ctx};

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
        config: PathBuf,
    },
    /// Withdraw earnings (all by default) to the provider's account; the account pays the gas.
    Withdraw {
        /// Credits to withdraw (12.5).
        #[arg(long, value_parser = parse_credits)]
        amount: Option<Credits>,
    },
    /// Sign the documents of contracts proposed to this provider (with --watch: as they come).
    Accept {
        /// One contract; default: every proposed one.
        contract: Option<ContractId>,
        #[arg(long)]
        watch: bool,
    },
}

/// `mercato buy OFFER/PLAN`.
#[derive(clap::Args)]
pub struct BuyArgs {
    /// OFFER/PLAN, as `mercato offers search` lists them.
    plan: String,
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Reserved plans: periods to pay for in advance.
    #[arg(long)]
    periods: Option<u32>,
    /// Escrow deposit in credits, e.g. 12.5 (required for pay-per-use plans).
    #[arg(long, value_parser = parse_credits)]
    deposit: Option<Credits>,
    /// Pay-per-use plans: the most usage the chain lets be charged per charging window, in
    /// credits (default: the deposit).
    #[arg(long, value_parser = parse_credits)]
    usage_cap: Option<Credits>,
    /// Pay-per-use plans: the charging window in seconds (default 3600).
    #[arg(long)]
    cap_window: Option<u64>,
}

#[derive(Subcommand)]
pub enum ContractsCommand {
    /// This participant's contracts (all, for auditors and operators), newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One contract: document, signatures, on-chain state.
    Show { id: ContractId },
    /// Close an active contract; the unused escrow is refunded on chain.
    Close { id: ContractId },
    /// How long the contract's escrow lasts at its rate of use (and whether it is suspended).
    Escrow { id: ContractId },
    /// Add credits to the contract's escrow (resumes a contract suspended for its escrow).
    Topup {
        id: ContractId,
        /// Credits to add (12.5).
        #[arg(long, value_parser = parse_credits)]
        amount: Credits,
    },
}

#[derive(Subcommand)]
pub enum UsageCommand {
    /// A contract's usage records as they accrue, priced, and what is settled.
    Show { contract: ContractId },
    /// Prove a record is part of its settled batch: checked here and by the chain.
    Prove { record: UsageRecordId },
    /// Dispute a record before it settles (consumers, within the broker's window).
    Dispute {
        record: UsageRecordId,
        #[arg(long)]
        reason: String,
    },
    /// Decide a dispute (operators): uphold the record, or void it with --void.
    Resolve {
        record: UsageRecordId,
        #[arg(long)]
        void: bool,
    },
}

pub async fn account(ctx: &Ctx, cmd: AccountCommand) -> Result<()> {
    let session = ctx.session()?;
    match cmd {
        AccountCommand::Link => {
            let evm = ctx.evm(true)?;
            let linked = session.link_account(&evm).await?;
            ctx.out.emit(&linked, |l| match l.tx_hash {
                Some(tx) => format!("linked {} to {} (tx {tx})", l.account, l.did),
                None => format!("{} was linked to {} already", l.account, l.did),
            })
        }
        AccountCommand::Show => {
            let info = session.account(ctx.evm(false)?.address()).await?;
            ctx.out.emit(&info, |i| {
                output::fields([
                    ("account", i.account.to_string()),
                    ("did", i.did.as_ref().map_or("-".into(), |d| d.to_string())),
                    ("role", i.role.map_or("-".into(), |r| r.to_string())),
                    ("credits", credits(i.credits)),
                    ("registry nonce", i.registry_nonce.to_string()),
                    ("permit nonce", i.permit_nonce.to_string()),
                ])
            })
        }
    }
}

pub async fn faucet(ctx: &Ctx) -> Result<()> {
    let grant = ctx.session()?.faucet().await?;
    ctx.out.emit(&grant, |g| {
        format!("minted {} to {}", credits(g.minted), g.account)
    })
}

pub async fn provider(ctx: &Ctx, cmd: ProviderCommand) -> Result<()> {
    match cmd {
        ProviderCommand::Register { config } => register_config(ctx, &config).await,
        ProviderCommand::Withdraw { amount } => withdraw(ctx, amount).await,
        ProviderCommand::Accept { contract, watch } => accept(ctx, contract, watch).await,
    }
}

async fn register_config(ctx: &Ctx, config: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config.display()))?;
    let evm = ctx.evm(false)?;
    let done = ctx.session()?.register_config(&evm, &text).await?;
    ctx.out.emit(&done, |d| {
        format!(
            "configuration version {} registered: {} (tx {})",
            d.version, d.cid, d.tx_hash
        )
    })
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Withdrawal {
    tx_hash: api::TxHash,
    amount: Credits,
    account: alloy::primitives::Address,
}

async fn withdraw(ctx: &Ctx, amount: Option<Credits>) -> Result<()> {
    let evm = ctx.evm(false)?;
    let (tx_hash, amount) = ctx.session()?.withdraw_earnings(&evm, amount).await?;
    let w = Withdrawal {
        tx_hash,
        amount,
        account: evm.address(),
    };
    ctx.out.emit(&w, |w| {
        format!(
            "withdrew {} to {} (tx {})",
            credits(w.amount),
            w.account,
            w.tx_hash
        )
    })
}

/// Signs proposed contracts: one, all pending, or (watching) each as it is proposed.
async fn accept(ctx: &Ctx, one: Option<ContractId>, watch: bool) -> Result<()> {
    let session = ctx.session()?;
    let report = |c: &Contract| {
        ctx.out
            .emit(c, |c| format!("accepted {} ({})", c.id, c.state))
    };
    if let Some(id) = one {
        return report(&session.accept(id).await?);
    }
    let mut events = if watch {
        Some(session.events(None).await?)
    } else {
        None
    };
    for c in session.contracts().await? {
        if c.state == ContractState::Proposed && c.provider == *session.did() {
            report(&session.accept(c.id).await?)?;
        }
    }
    let Some(events) = events.as_mut() else {
        return Ok(());
    };
    while let Some(e) = events.next().await? {
        if let api::EventBody::ContractProposed(c) = &e.body {
            if c.provider == *session.did() {
                match session.accept(c.contract).await {
                    Ok(done) => report(&done)?,
                    Err(err) => ctx
                        .out
                        .note(format!("could not accept {}: {err}", c.contract)),
                }
            }
        }
    }
    Ok(())
}

fn spinner(json: bool, msg: &str) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
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
    match c.state {
        ContractState::Proposed => "waiting for the provider to sign the contract".into(),
        ContractState::Accepted => "signed by both; storing the signatures".into(),
        ContractState::Opening => "opening the contract on chain (escrowing the deposit)".into(),
        ContractState::Active => format!(
            "active on chain (tx {})",
            c.tx_hash.map_or("-".into(), |t| t.to_string())
        ),
        ContractState::Closing => "closing on chain".into(),
        ContractState::Closed => {
            format!("closed; refunded {}", c.refund.map_or("?".into(), credits))
        }
        ContractState::Failed => format!("failed: {}", c.failure.as_deref().unwrap_or("")),
    }
}

/// Shows the contract's progress until `done`, then prints it.
async fn follow(
    ctx: &Ctx,
    session: &Session,
    bar: &ProgressBar,
    id: ContractId,
    done: impl Fn(&Contract) -> bool,
    timeout: Duration,
) -> Result<Contract> {
    let c = session
        .wait_contract(id, done, |c| bar.set_message(state_message(c)), timeout)
        .await?;
    bar.finish_and_clear();
    ctx.out
        .emit(&c, |c| format!("contract {}: {}", c.id, state_message(c)))?;
    Ok(c)
}

/// `mercato buy OFFER/PLAN`: reserve, check and sign, purchase, follow until active.
pub async fn buy(ctx: &Ctx, args: BuyArgs) -> Result<()> {
    let (offer_id, plan_id) = args.plan.split_once('/').ok_or_else(|| {
        anyhow::anyhow!("name the plan as OFFER/PLAN (see `mercato offers search`)")
    })?;
    let mut req = ReserveRequest {
        offer_id: offer_id.parse::<OfferId>()?,
        plan_id: plan_id.parse::<PlanId>()?,
        quantity: args.quantity,
        periods: args.periods,
        deposit: args.deposit,
        usage_cap: args.usage_cap,
        cap_window: args.cap_window,
        wireguard_key: None,
    };
    let evm = ctx.evm(false)?;
    let session = ctx.session()?;
    // A provider that connects over WireGuard peers with a key this consumer makes and keeps.
    let wireguard = session.wireguard_pair_for(&req.offer_id).await?;
    req.wireguard_key = wireguard.as_ref().map(|p| p.public.clone());
    let bar = spinner(ctx.out.json, "reserving");
    let r = session.reserve(&req).await?;
    if let Some(pair) = &wireguard {
        let path = pair.save(&ctx.key_path, r.id.contract())?;
        ctx.out.note(format!(
            "the contract's WireGuard private key is in {}",
            path.display()
        ));
    }
    bar.set_message(format!("reserved {} until {}", r.id, r.expires_at));
    let key = format!("buy-{}", r.id);
    let c = session.purchase(&req, &r, &evm, &key).await?;
    let c = follow(
        ctx,
        &session,
        &bar,
        c.id,
        |c| c.state.is_settled(),
        Duration::from_secs(900),
    )
    .await?;
    if c.state != ContractState::Active {
        bail!("the purchase did not complete: {}", state_message(&c));
    }
    Ok(())
}

pub async fn contracts(ctx: &Ctx, cmd: ContractsCommand) -> Result<()> {
    let session = ctx.session()?;
    match cmd {
        ContractsCommand::List { limit } => {
            let list = session
                .contracts_limited(ContractListQuery { limit: Some(limit) })
                .await?;
            ctx.out.emit(&list, |list| contract_table(list))
        }
        ContractsCommand::Show { id } => {
            let c = session.contract(id).await?;
            ctx.out.emit(&c, |c| {
                let mut rows = vec![
                    ("contract", c.id.to_string()),
                    ("state", state_message(c)),
                    ("offer/plan", format!("{}/{}", c.offer_id, c.plan_id)),
                    ("quantity", c.quantity.to_string()),
                    ("consumer", c.consumer.to_string()),
                    ("provider", c.provider.to_string()),
                    ("document", c.document_cid.to_string()),
                ];
                if let Some(chain) = &c.chain {
                    rows.push(("escrow", credits(chain.escrow)));
                    rows.push(("charged", credits(chain.charged)));
                }
                output::fields(rows)
            })
        }
        ContractsCommand::Close { id } => {
            let bar = spinner(ctx.out.json, "asking the broker to close");
            session.close(id).await?;
            follow(
                ctx,
                &session,
                &bar,
                id,
                |c| c.state == ContractState::Closed,
                Duration::from_secs(300),
            )
            .await?;
            Ok(())
        }
        ContractsCommand::Escrow { id } => {
            let e = session.escrow(id).await?;
            if e.runway.warning {
                ctx.out.note(format!(
                    "warning: the escrow runs out soon; top it up with `mercato contracts topup {id} --amount CREDITS`"
                ));
            }
            ctx.out.emit(&e, |e| {
                let r = &e.runway;
                output::fields([
                    ("escrow", credits(r.escrow)),
                    ("pending usage", credits(r.pending)),
                    ("available", credits(r.available)),
                    ("use per hour", credits(r.rate_per_hour)),
                    (
                        "lasts",
                        r.seconds_left
                            .map_or("while unused".into(), |s| format!("{s} s")),
                    ),
                    ("suspended", r.suspended.to_string()),
                ])
            })
        }
        ContractsCommand::Topup { id, amount } => {
            let evm = ctx.evm(false)?;
            let done = session.top_up(id, &evm, amount).await?;
            ctx.out.emit(&done, |d| {
                format!(
                    "added {} to {} (tx {}){}",
                    credits(amount),
                    d.contract,
                    d.tx_hash,
                    if d.resumed { "; resumed" } else { "" }
                )
            })
        }
    }
}

fn contract_table(list: &[Contract]) -> String {
    let mut table = Table::new();
    table.set_header([
        "contract", "state", "offer", "plan", "qty", "consumer", "provider",
    ]);
    for c in list {
        table.add_row([
            c.id.to_string(),
            c.state.to_string(),
            c.offer_id.to_string(),
            c.plan_id.to_string(),
            c.quantity.to_string(),
            short(c.consumer.as_str()),
            short(c.provider.as_str()),
        ]);
    }
    table.to_string()
}

pub async fn statement(ctx: &Ctx, contract: ContractId, csv: bool) -> Result<()> {
    let session = ctx.session()?;
    if csv {
        print!("{}", session.statement_csv(contract).await?);
        return Ok(());
    }
    let s = session.statement(contract).await?;
    ctx.out.emit(&s, |s| {
        let mut table = Table::new();
        table.set_header(["at", "kind", "amount", "reference"]);
        for l in &s.lines {
            table.add_row([
                l.at.to_string(),
                l.kind.as_str().to_string(),
                credits(l.amount),
                l.reference.clone(),
            ]);
        }
        format!(
            "{table}\ncharged {} · provider net {} (fee {} bps) · chain charged {} · {}",
            credits(s.charged),
            credits(s.provider_net),
            s.fee_bps,
            credits(s.chain_charged),
            if s.matches_chain {
                "matches the chain"
            } else {
                "DOES NOT match the chain"
            }
        )
    })
}

pub async fn usage(ctx: &Ctx, cmd: UsageCommand) -> Result<()> {
    let session = ctx.session()?;
    match cmd {
        UsageCommand::Show { contract } => {
            let u = session.usage(contract).await?;
            ctx.out.emit(&u, |u| {
                let mut table = Table::new();
                table.set_header(["record", "from", "to", "bytes in/out", "amount", "batch"]);
                for s in &u.records {
                    let r = &s.record;
                    table.add_row([
                        r.id.to_string(),
                        r.from.to_string(),
                        r.to.to_string(),
                        format!("{}/{}", r.bytes_in, r.bytes_out),
                        credits(s.amount),
                        s.batch_id
                            .map_or("pending".into(), |b| short(&b.to_string())),
                    ]);
                }
                format!(
                    "{table}\ntotal {} · settled {}",
                    credits(u.total),
                    credits(u.settled)
                )
            })
        }
        UsageCommand::Prove { record } => {
            let p = session.usage_proof(&record).await?;
            let local = p.verifies();
            ctx.out.emit(&p, |p| {
                format!(
                    "record {record}: proof {} here, {} on chain (batch {})",
                    if local { "verifies" } else { "does NOT verify" },
                    if p.verified_on_chain {
                        "verified"
                    } else {
                        "NOT verified"
                    },
                    p.batch
                )
            })?;
            if !local || !p.verified_on_chain {
                bail!("the record is not proven part of its batch");
            }
            Ok(())
        }
        UsageCommand::Dispute { record, reason } => {
            let d = session.dispute_usage(&record, &reason).await?;
            ctx.out.emit(&d, |d| match &d.evidence {
                Some(e) => format!("disputed {}; your receipts: {e}", d.record),
                None => format!("disputed {} (no receipt of its session)", d.record),
            })
        }
        UsageCommand::Resolve { record, void } => {
            let d = session.resolve_dispute(&record, !void).await?;
            ctx.out.emit(&d, |d| {
                format!("record {}: {:?}", d.record, d.dispute).to_lowercase()
            })
        }
    }
}
