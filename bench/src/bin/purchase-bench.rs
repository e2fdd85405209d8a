//! `purchase-bench`: end-to-end purchases on the embedded stack (HTTP API, SQLite, content store,
//! Anvil): reserve → purchase (consumer signatures) → provider accepts → opened on chain → active,
//! with 1 and with N concurrent consumers. In the same run it measures the chain's raw transfer
//! rate the same way `chain-bench` does, and reports purchases per second as a ratio to it. The
//! last line of output is one JSON object with the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Result};
use api::reservations::ReserveRequest;
use api::{ContractState, Credits, EventBody, Role};
use broker::{Broker, BrokerConfig, ChainConfig};
use catalog::model::{Offer, PlanUnit, Pricing, ReservedPrice};
use clap::Parser;
use ledger::bench::{bar, fresh_senders, transfers};
use sdk::{Client, Session};

#[derive(Parser)]
#[command(about = "End-to-end purchase throughput and latency on the embedded stack")]
struct Cli {
    /// Purchases by the single consumer.
    #[arg(long, default_value_t = 100)]
    single: usize,
    /// Concurrent consumers in the second run.
    #[arg(long, default_value_t = 32)]
    consumers: usize,
    /// Purchases per concurrent consumer.
    #[arg(long, default_value_t = 8)]
    per_consumer: usize,
}

/// Timings of one purchase, in milliseconds.
#[derive(Clone, Copy, Default)]
struct Timing {
    reserve: f64,
    purchase: f64,
    /// From the purchase answer to the contract being active (provider signs, chain opens).
    to_active: f64,
    total: f64,
}

async fn participant(url: &str, role: Role) -> Result<(Session, PrivateKeySigner)> {
    let session = Session::new(Client::new(url)?, identity::generate());
    session.register(role).await?;
    let evm = PrivateKeySigner::random();
    session.link_account(&evm).await?;
    if role == Role::Consumer {
        session.faucet().await?;
    }
    Ok((session, evm))
}

fn offer(capacity: u32) -> Offer {
    let mut o = testkit::synth::Generator::new(7, 1, false).offer("bench-offer", 1);
    o.plans.truncate(1);
    o.plans[0].capacity = capacity;
    o.plans[0].unit = PlanUnit {
        cpu_millicores: 1,
        memory_mib: 1,
        ..PlanUnit::default()
    };
    o.plans[0].pricing = Pricing {
        reserved: Some(ReservedPrice {
            price: Credits::from_base_units(1_000),
            period_seconds: 3600,
        }),
        pay_per_use: None,
    };
    o.availability = Default::default();
    o
}

async fn buy_one(
    session: &Session,
    evm: &PrivateKeySigner,
    req: &ReserveRequest,
) -> Result<Timing> {
    let t0 = Instant::now();
    let r = session.reserve(req).await?;
    let t1 = Instant::now();
    let c = session.purchase(req, &r, evm, &r.id.to_string()).await?;
    let t2 = Instant::now();
    let done = session
        .wait_contract(
            c.id,
            |c| c.state.is_settled(),
            |_| {},
            Duration::from_secs(120),
        )
        .await?;
    let t3 = Instant::now();
    if done.state != ContractState::Active {
        bail!("purchase {} ended {}: {:?}", c.id, done.state, done.failure);
    }
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    Ok(Timing {
        reserve: ms(t0, t1),
        purchase: ms(t1, t2),
        to_active: ms(t2, t3),
        total: ms(t0, t3),
    })
}

/// The provider's agent policy: sign every proposed contract as soon as it is proposed.
async fn auto_accept(provider: Arc<Session>) -> Result<()> {
    let mut events = provider.events(None).await?;
    while let Some(e) = events.next().await? {
        if let EventBody::ContractProposed(c) = e.body {
            let p = provider.clone();
            tokio::spawn(async move {
                if let Err(err) = p.accept(c.contract).await {
                    eprintln!("accept {}: {err}", c.contract);
                }
            });
        }
    }
    Ok(())
}

struct Run {
    per_sec: f64,
    timings: Vec<Timing>,
}

type Consumer = (Arc<Session>, Arc<PrivateKeySigner>);

async fn run_purchases(
    consumers: &[Consumer],
    per_consumer: usize,
    req: &ReserveRequest,
    label: &str,
) -> Result<Run> {
    let progress = bar(consumers.len() * per_consumer, label);
    let start = Instant::now();
    let tasks = consumers.iter().cloned().map(|(s, evm)| {
        let req = req.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..per_consumer {
                out.push(buy_one(&s, &evm, &req).await?);
                progress.inc(1);
            }
            Ok::<_, anyhow::Error>(out)
        })
    });
    let mut timings = Vec::new();
    for t in futures::future::join_all(tasks).await {
        timings.extend(t??);
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok(Run {
        per_sec: timings.len() as f64 / secs,
        timings,
    })
}

/// CPU seconds (user + system) a process has used, from /proc (Linux; 0 elsewhere).
fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU milliseconds per operation of the chain (Anvil) and of this process over a run.
struct Cpu {
    chain_ms: f64,
    broker_and_clients_ms: f64,
}

async fn measured<T>(
    anvil: Option<u32>,
    ops: impl Fn(&T) -> usize,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, Cpu)> {
    let (c0, s0) = (cpu_secs(anvil), cpu_secs(None));
    let out = f.await?;
    let n = ops(&out).max(1) as f64;
    let cpu = Cpu {
        chain_ms: (cpu_secs(anvil) - c0) * 1000.0 / n,
        broker_and_clients_ms: (cpu_secs(None) - s0) * 1000.0 / n,
    };
    Ok((out, cpu))
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn report(name: &str, r: &Run, chain: f64) {
    let total: Vec<f64> = r.timings.iter().map(|t| t.total).collect();
    println!(
        "  {name:<24}{:>9.1}/s  p50 {:>7.1} ms  p99 {:>7.1} ms  = {:.2}x the chain's raw rate ({chain:.1} tx/s)",
        r.per_sec,
        percentile(total.clone(), 0.5),
        percentile(total, 0.99),
        r.per_sec / chain
    );
    println!(
        "  {:<24}reserve {:.1} ms, purchase {:.1} ms, provider signs + chain opens {:.1} ms (means)",
        "",
        mean(r.timings.iter().map(|t| t.reserve)),
        mean(r.timings.iter().map(|t| t.purchase)),
        mean(r.timings.iter().map(|t| t.to_active)),
    );
}

fn json_run(r: &Run, chain: f64) -> serde_json::Value {
    let total: Vec<f64> = r.timings.iter().map(|t| t.total).collect();
    serde_json::json!({
        "purchases": r.timings.len(),
        "purchases_per_sec": round(r.per_sec, 1),
        "p50_ms": round(percentile(total.clone(), 0.5), 1),
        "p99_ms": round(percentile(total, 0.99), 1),
        "chain_tx_per_sec": round(chain, 1),
        "ratio_to_chain": round(r.per_sec / chain, 2),
        "mean_reserve_ms": round(mean(r.timings.iter().map(|t| t.reserve)), 1),
        "mean_purchase_ms": round(mean(r.timings.iter().map(|t| t.purchase)), 1),
        "mean_to_active_ms": round(mean(r.timings.iter().map(|t| t.to_active)), 1),
    })
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let config = BrokerConfig {
        chain: ChainConfig::Embedded { port: 0 },
        ..BrokerConfig::embedded(([127, 0, 0, 1], 0).into(), dir.path().to_path_buf())
    };
    let broker = Broker::start(&config).await?;
    let url = format!("http://{}", broker.addr);
    let chain_url = broker.ledger.client.url().to_string();
    let token = broker.ledger.deployment.contracts.credit_token;

    // The ceiling: raw transfers on the same chain, 1 and N senders.
    let single = fresh_senders(&chain_url, token, 1).await?;
    let many = fresh_senders(&chain_url, token, cli.consumers.max(1)).await?;
    let anvil = broker.devnet.as_ref().and_then(|n| n.chain.pid());
    transfers(&single, token, 20, "chain warm-up").await?;
    let tps_1 = transfers(&single, token, 300, "chain, 1 sender").await?;
    let (tps_n, transfer_cpu) = measured(anvil, |_| many.len() * 30, async {
        Ok(transfers(&many, token, 30, "chain, N senders").await?)
    })
    .await?;

    let (provider, _) = participant(&url, Role::Provider).await?;
    let provider = Arc::new(provider);
    let total = cli.single + cli.consumers * cli.per_consumer + 10;
    let o = offer(total as u32);
    provider.publish_offer(o.clone()).await?;
    let accept = tokio::spawn(auto_accept(provider.clone()));
    let req = ReserveRequest {
        offer_id: o.id.parse()?,
        plan_id: o.plans[0].id.parse()?,
        quantity: 1,
        periods: None,
        deposit: None,
        usage_cap: None,
        cap_window: None,
        wireguard_key: None,
    };
    let mut consumers = Vec::new();
    for _ in 0..cli.consumers.max(1) {
        let (s, evm) = participant(&url, Role::Consumer).await?;
        consumers.push((Arc::new(s), Arc::new(evm)));
    }
    run_purchases(&consumers[..1], 5, &req, "purchase warm-up").await?;
    let one = run_purchases(&consumers[..1], cli.single, &req, "purchases, 1 consumer").await?;
    let (n, purchase_cpu) = measured(
        anvil,
        |r: &Run| r.timings.len(),
        run_purchases(&consumers, cli.per_consumer, &req, "purchases, N consumers"),
    )
    .await?;
    accept.abort();
    broker.stop().await;

    println!("embedded stack — reserve → purchase → provider accepts → open on chain → active");
    println!(
        "  chain raw rate: 1 sender {tps_1:.1} tx/s, {} senders {tps_n:.1} tx/s",
        cli.consumers
    );
    report("1 consumer", &one, tps_1);
    report(&format!("{} consumers", cli.consumers), &n, tps_n);
    println!("where the CPU goes (2 cores shared by the chain, the broker and the clients)");
    println!(
        "  transfer: chain {:.2} ms CPU;  purchase: chain {:.2} ms CPU ({:.1}x a transfer), broker + clients {:.2} ms CPU",
        transfer_cpu.chain_ms,
        purchase_cpu.chain_ms,
        purchase_cpu.chain_ms / transfer_cpu.chain_ms.max(1e-9),
        purchase_cpu.broker_and_clients_ms
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "purchase",
            "single": json_run(&one, tps_1),
            "concurrent": json_run(&n, tps_n),
            "consumers": cli.consumers,
            "chain_cpu_ms_per_transfer": round(transfer_cpu.chain_ms, 2),
            "chain_cpu_ms_per_purchase": round(purchase_cpu.chain_ms, 2),
            "broker_and_clients_cpu_ms_per_purchase": round(purchase_cpu.broker_and_clients_ms, 2),
        })
    );
    Ok(())
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
