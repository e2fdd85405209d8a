//! `settlement-bench`: settles 100,000 usage records across 1,000 contracts through the broker's
//! own batch settlement (database, content store, Merkle sum tree, one `UsageSettlement`
//! transaction per batch, each charge locked for the challenge window and released after it),
//! and measures in the same run the NEMO way as the baseline: one `computeCredits` transaction and
//! one `makeTransaction` (token transfer) per record; then the gas of each overcharge proof. The
//! last line of output is one JSON object with the figures.

use std::sync::Arc;
use std::time::Instant;

use alloy::primitives::U256;
use anyhow::{bail, Result};
use broker::ledger_link::LedgerLink;
use broker::market::settlement::{release_due, settle_once, BatchLimits};
use broker::market::{Market, MarketPolicy};
use broker::store::{PoolSize, Store};
use clap::Parser;
use content::{ContentStore, EmbeddedStore};
use contracts::merkle::BatchTree;
use contracts::usage::{record_hash, record_id_hash};
use contracts::{BillingModels, CreditToken, Marketplace, UsageSettlement};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::bench::bar;
use ledger::{devnet, ChainClient};
use testkit::dev;

#[derive(Parser)]
#[command(about = "Batch settlement against one transaction per record")]
struct Cli {
    #[arg(long, default_value_t = 1000)]
    contracts: usize,
    #[arg(long, default_value_t = 100)]
    records_per_contract: usize,
    /// Records priced and paid the NEMO way for the baseline (gas per record is what counts).
    #[arg(long, default_value_t = 200)]
    baseline_records: usize,
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path().join("ledger"))
    };
    let net = devnet::up(&options, |_| {}).await?;
    let d = net.deployment.clone();
    let url = net.chain.url().to_string();
    let broker = ChainClient::connect(&url, dev_signer(BROKER_INDEX)?).await?;
    let consumer = dev_signer(2)?;
    let provider = dev_signer(3)?;
    let consumer_client = ChainClient::connect(&url, consumer.clone()).await?;
    let c = &d.contracts;
    let ledger = LedgerLink {
        client: broker.clone(),
        deployment: d.clone(),
    };
    dev::register(&broker, &d, &consumer, "did:key:bench-consumer", 2).await?;
    dev::register(&broker, &d, &provider, "did:key:bench-provider", 1).await?;

    // The contracts to settle against.
    let mut ids = Vec::with_capacity(cli.contracts);
    let progress = bar(cli.contracts, "opening contracts");
    for i in 0..cli.contracts {
        let name = format!("bench{i}");
        ids.push(
            dev::open_contract(&broker, &d, &consumer, provider.address(), &name, 1_000_000)
                .await?,
        );
        progress.inc(1);
    }
    progress.finish_and_clear();

    // 100,000 records in the broker's database, as accepted usage would be.
    let store = Store::open(
        &format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("b.sqlite").display()
        ),
        PoolSize {
            max_connections: None,
        },
    )
    .await?;
    let amount_per_record = 1_000u64;
    let total_records = cli.contracts * cli.records_per_contract;
    let progress = bar(total_records, "writing usage records");
    let mut tx = store.begin().await?;
    let mut n = 0usize;
    for (ci, id) in ids.iter().enumerate() {
        for ri in 0..cli.records_per_contract {
            let rid = format!("r{ci:05}-{ri:04}");
            let body = format!(
                "{{\"id\":\"{rid}\",\"contract\":\"{id}\",\"bytesIn\":{},\"bytesOut\":{}}}",
                ri * 10,
                ri * 20
            );
            let hash = alloy::primitives::keccak256(body.as_bytes());
            sqlx::query(
                "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, amount, received_at) \
                 VALUES ($1, $2, 'p', 'c', 0, 1, $3, $4, $5, $6)",
            )
            .bind(rid)
            .bind(id.to_string())
            .bind(body)
            .bind(hash.to_string())
            .bind(amount_per_record.to_string())
            .bind(n as i64)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        progress.set_position(n as u64);
    }
    tx.commit().await?;
    progress.finish_and_clear();

    let content: Arc<dyn ContentStore> = Arc::new(EmbeddedStore::open(dir.path().join("content"))?);
    let policy = MarketPolicy {
        batches: BatchLimits {
            max_records: 20_000,
            max_contracts: 200,
            dispute_window_secs: 0,
        },
        ..MarketPolicy::default()
    };
    let market = Market::new(store.clone(), ledger.clone(), content, policy);
    let block_before = broker.block_number().await?;
    let start = Instant::now();
    let mut settled = 0usize;
    let mut batches = 0usize;
    let progress = bar(total_records, "settling");
    loop {
        let k = settle_once(&market, broker::store::now()).await?;
        if k == 0 {
            break;
        }
        settled += k;
        batches += 1;
        progress.set_position(settled as u64);
    }
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    // The charges are the provider's once their challenge window ends: releasing them is part of
    // the cost of settling.
    ledger::anvil::advance(broker.url(), 61).await?;
    let mut released = 0;
    loop {
        let k = release_due(&market, 20).await?;
        if k == 0 {
            break;
        }
        released += k;
    }
    if released != batches {
        bail!("released {released} of {batches} batches");
    }
    let block_after = broker.block_number().await?;
    let mut gas_batches = 0u64;
    {
        use alloy::providers::Provider;
        for b in block_before + 1..=block_after {
            if let Some(block) = broker.provider().get_block_by_number(b.into()).await? {
                gas_batches += block.header.gas_used;
            }
        }
    }
    if settled != total_records {
        bail!("settled {settled} of {total_records} records");
    }
    // Every contract was charged exactly its records.
    let expected = U256::from(amount_per_record * cli.records_per_contract as u64);
    for id in ids.iter().step_by(97) {
        let a = Marketplace::new(c.marketplace, broker.provider())
            .agreement(*id)
            .call()
            .await?;
        if U256::from(a.charged) != expected {
            bail!("contract {id} charged {} instead of {expected}", a.charged);
        }
    }

    // The baseline: per record, computeCredits as a transaction and a token transfer.
    let usage = BillingModels::ComputeUsage {
        cpuUsage: U256::from(500u64),
        memoryUsage: U256::from(700u64),
        clusterCpuUsage: U256::from(1000u64),
        clusterMemoryUsage: U256::from(1000u64),
        cpuBaseRate: U256::from(100_000u64),
        memoryBaseRate: U256::from(100_000u64),
        greenEnergyPercent: 20,
    };
    let mut gas_baseline = 0u64;
    let progress = bar(cli.baseline_records, "baseline (NEMO way)");
    let baseline_start = Instant::now();
    for _ in 0..cli.baseline_records {
        let r1 = consumer_client
            .send_call(
                c.billing_models,
                &BillingModels::computeCreditsCall {
                    regionName: "eu-west".into(),
                    u: usage.clone(),
                },
            )
            .await?;
        let r2 = consumer_client
            .send_call(
                c.credit_token,
                &CreditToken::transferCall {
                    to: provider.address(),
                    value: U256::from(amount_per_record),
                },
            )
            .await?;
        gas_baseline += r1.gas_used + r2.gas_used;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let baseline_per_sec = cli.baseline_records as f64 / baseline_start.elapsed().as_secs_f64();

    // The proofs: a contract charged 2,000 for leaves summing to 1,500, one of them a record
    // the signed prices (none, here) price at zero.
    let target = dev::open_contract(
        &broker,
        &d,
        &consumer,
        provider.address(),
        "challenged",
        1_000_000,
    )
    .await?;
    let record = UsageSettlement::UsageRecord {
        recordId: record_id_hash("challenged-0"),
        bodyHash: alloy::primitives::keccak256("challenged-0"),
        from: 0,
        to: 60,
        connectionMillis: 60_000,
        bytesIn: 1_000_000,
        bytesOut: 1_000_000,
        cpuMillis: 30_000,
        maxMemoryKib: 1024,
        gpuMillis: 0,
        dataAccesses: 0,
    };
    let rh = record_hash(target, &record);
    let leaves = vec![
        (rh, U256::from(1_000u64)),
        (alloy::primitives::keccak256("other"), U256::from(500u64)),
    ];
    let tree = BatchTree::new(&[(target, leaves)])?;
    let batch_id = alloy::primitives::keccak256("challenged-batch");
    broker
        .send_call(
            c.usage_settlement,
            &UsageSettlement::settleCall {
                batchId: batch_id,
                merkleRoot: tree.root(),
                recordsCid: "bafkreichallenged".into(),
                recordCount: 2,
                contractIds: vec![target],
                amounts: vec![U256::from(2_000u64)],
            },
        )
        .await?;
    let proof = tree.proof(0, 0)?;
    let steps = |v: &[contracts::merkle::Step]| -> Vec<UsageSettlement::Step> {
        v.iter().map(Into::into).collect()
    };
    let total_gas = consumer_client
        .send_call(
            c.usage_settlement,
            &UsageSettlement::challengeTotalCall {
                batchId: batch_id,
                contractId: target,
                recordHash: rh,
                amount: U256::from(1_000u64),
                recordPath: steps(&proof.record_path),
                contractPath: steps(&proof.contract_path),
            },
        )
        .await?
        .gas_used;
    let record_gas = consumer_client
        .send_call(
            c.usage_settlement,
            &UsageSettlement::challengeRecordCall {
                contractId: target,
                recordContract: target,
                r: record,
                leaf: UsageSettlement::LeafProof {
                    batchId: batch_id,
                    amount: U256::from(1_000u64),
                    recordPath: steps(&proof.record_path),
                    contractPath: steps(&proof.contract_path),
                },
                prices: (&contracts::eip712::UsagePrices::default()).into(),
            },
        )
        .await?
        .gas_used;
    // What stays charged is the other leaf's 500.
    let left = Marketplace::new(c.marketplace, broker.provider())
        .agreement(target)
        .call()
        .await?
        .charged;
    if left != 500 {
        bail!("the proven overcharges left {left} charged, not 500");
    }
    net.chain.stop().await;

    let per_record = gas_batches as f64 / total_records as f64;
    let baseline_per_record = gas_baseline as f64 / cli.baseline_records as f64;
    let ratio = baseline_per_record / per_record;
    println!(
        "batch settlement — {total_records} records across {} contracts, {batches} batches (≤ {} records, ≤ {} contracts each)",
        cli.contracts, policy.batches.max_records, policy.batches.max_contracts
    );
    println!(
        "  records settled per second   {:>12.0}",
        total_records as f64 / secs
    );
    println!(
        "  gas per record               {:>12.1}  ({gas_batches} gas in all)",
        per_record
    );
    println!("baseline — one computeCredits + one makeTransaction per record (NEMO)");
    println!(
        "  gas per record               {:>12.0}",
        baseline_per_record
    );
    println!("  records per second           {:>12.1}", baseline_per_sec);
    println!(
        "  gas ratio (baseline / batch) {:>12.0}x  (target ≥ 100x)",
        ratio
    );
    println!("overcharge proofs (a contract of one batch, two leaves)");
    println!("  challengeTotal gas           {:>12}", total_gas);
    println!("  challengeRecord gas          {:>12}", record_gas);
    println!(
        "{}",
        serde_json::json!({
            "bench": "settlement",
            "records": total_records,
            "contracts": cli.contracts,
            "batches": batches,
            "records_per_sec": (total_records as f64 / secs).round(),
            "gas_per_record": (per_record * 10.0).round() / 10.0,
            "baseline_gas_per_record": baseline_per_record.round(),
            "baseline_records_per_sec": (baseline_per_sec * 10.0).round() / 10.0,
            "ratio": ratio.round(),
            "challenge_total_gas": total_gas,
            "challenge_record_gas": record_gas,
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
