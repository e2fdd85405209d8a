//! `index-bench`: builds a chain with at least 100,000 Mercato events (contracts opened with real
//! signed documents, then settlement batches of real provider-signed records, each batch's
//! records in the content store), then measures in the same run:
//! - the raw `eth_getLogs` rate of the chain (every log of the six contracts, in the index's
//!   ranges) as the baseline, against the broker's ledger index reading the same events into a
//!   fresh SQLite database (`ratio` = indexed per second ÷ raw per second);
//! - `audit verify` of the whole ledger from the chain and the content store (every document,
//!   every record's signature and price, every root, conservation).
//!
//! The last line of output is one JSON object with the figures.

use std::sync::Arc;
use std::time::Instant;

use alloy::primitives::{keccak256, B256, U256};
use alloy::providers::Provider;
use anyhow::{bail, Result};
use api::document::{build, ContractDocument, Parties, Party, SignedDocument};
use api::pricing::{charge, PricingContext};
use api::reservations::ReserveRequest;
use api::usage::{BatchDocument, BatchEntry, UsageRecord};
use api::{ContractId, Credits, Ed25519Signature};
use broker::ledger_link::LedgerLink;
use broker::market::ledger_index;
use broker::store::{PoolSize, Store};
use clap::Parser;
use content::{ContentStore, EmbeddedStore};
use contracts::UsageSettlement;
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::bench::bar;
use ledger::{devnet, ChainClient, Deployment};
use testkit::dev;

#[derive(Parser)]
#[command(about = "The ledger index against raw eth_getLogs, and audit verify, on 100,000 events")]
struct Cli {
    #[arg(long, default_value_t = 500)]
    contracts: usize,
    /// Settlement batches; each charges `per_batch` contracts one record each.
    #[arg(long, default_value_t = 1000)]
    batches: usize,
    #[arg(long, default_value_t = 100)]
    per_batch: usize,
    /// Keep the chain and the content store in DIR: a later run with the same DIR measures that
    /// chain again without building it (the index is always written afresh).
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
}

/// Rounds of the raw read and of the index; the median of each is reported.
const ROUNDS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes each way per record (at 1 credit per GB, 200 base units a record).
const BYTES: u64 = 1_000;

async fn run() -> Result<()> {
    let cli = Cli::parse();
    if cli.per_batch > cli.contracts {
        bail!("--per-batch must not exceed --contracts");
    }
    let temp = tempfile::tempdir()?;
    let dir = cli
        .keep
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    // The state is dumped when the chain stops only: a periodic dump of this chain (over 200 MB)
    // stalls the node for a moment, and would fall at random on either side of the comparison.
    let options = AnvilOptions {
        port: 0,
        state_interval: None,
        ..AnvilOptions::new(dir.join("ledger"))
    };
    let net = devnet::up(&options, |_| {}).await?;
    let d = net.deployment.clone();
    let url = net.chain.url().to_string();
    let relayer = ChainClient::connect(&url, dev_signer(BROKER_INDEX)?).await?;
    let content: Arc<dyn ContentStore> = Arc::new(EmbeddedStore::open(dir.join("content"))?);
    let built = dir.join("built-records");
    let records = match std::fs::read_to_string(&built) {
        Ok(n) if cli.keep.is_some() => n.trim().parse()?,
        _ => {
            let records = build_chain(&cli, &relayer, &d, &content).await?;
            std::fs::write(&built, records.to_string())?;
            records
        }
    };
    // The index is always written afresh, into a directory removed after the run.
    measure(&relayer, &url, &d, temp.path(), content, records).await?;
    net.chain.stop().await;
    Ok(())
}

/// Contracts and settled batches on the chain, their documents and records in the store; the
/// number of records settled.
async fn build_chain(
    cli: &Cli,
    relayer: &ChainClient,
    d: &Deployment,
    content: &Arc<dyn ContentStore>,
) -> Result<usize> {
    let (consumer_evm, provider_evm) = (dev_signer(2)?, dev_signer(3)?);
    let (consumer_key, provider_key) = (identity::generate(), identity::generate());
    let consumer_did = identity::did_of(&consumer_key.verifying_key());
    let provider_did = identity::did_of(&provider_key.verifying_key());
    dev::register(relayer, d, &consumer_evm, consumer_did.as_str(), 2).await?;
    dev::register(relayer, d, &provider_evm, provider_did.as_str(), 1).await?;

    // A pay-per-use offer at 1 credit per GB of traffic.
    let mut offer = testkit::synth::Generator::new(7, 1, false).offer("index-bench", 1);
    offer.plans.truncate(1);
    offer.plans[0].capacity = 1;
    offer.plans[0].pricing = catalog::model::Pricing {
        reserved: None,
        pay_per_use: Some(catalog::model::UnitPrices {
            network_gb: Credits::whole(1),
            ..Default::default()
        }),
    };
    offer.availability = Default::default();
    offer.green_energy_percent = 0;
    let deposit = Credits::whole(10);
    let req = ReserveRequest {
        offer_id: offer.id.parse()?,
        plan_id: offer.plans[0].id.parse()?,
        quantity: 1,
        periods: None,
        deposit: Some(deposit),
        usage_cap: Some(deposit),
        cap_window: Some(3600),
        wireguard_key: None,
    };

    // The contracts, each with its signed document in the content store.
    let mut ids = Vec::with_capacity(cli.contracts);
    let mut terms = None;
    let progress = bar(cli.contracts, "opening contracts");
    for i in 0..cli.contracts {
        let id = keccak256(format!("index-bench-{i}"));
        let doc: ContractDocument = build(
            &offer,
            &req,
            Parties {
                contract_id: ContractId(id),
                chain_id: d.chain_id,
                marketplace: d.contracts.marketplace,
                consumer: Party {
                    did: consumer_did.clone(),
                    account: consumer_evm.address(),
                },
                provider: Party {
                    did: provider_did.clone(),
                    account: provider_evm.address(),
                },
                provider_config_cid: None,
                gpu_record_fee: Credits::ZERO,
                now: broker::store::now(),
            },
        )?;
        let bytes = doc.to_bytes();
        let cid = content.put(&bytes).await?;
        let sign = |key| Ed25519Signature::sign(key, identity::Domain::ContractDocument, &bytes);
        let envelope = SignedDocument {
            document_cid: cid.into(),
            consumer: consumer_did.clone(),
            consumer_signature: sign(&consumer_key),
            provider: provider_did.clone(),
            provider_signature: sign(&provider_key),
        };
        let envelope_cid = content.put(&serde_json::to_vec(&envelope)?).await?;
        terms.get_or_insert(doc);
        dev::open_contract_with(
            relayer,
            d,
            &consumer_evm,
            provider_evm.address(),
            id,
            (keccak256(&bytes), cid.to_string(), envelope_cid.to_string()),
            deposit.base_units() as u64,
        )
        .await?;
        ids.push(id);
        progress.inc(1);
    }
    progress.finish_and_clear();

    // Settlement batches of provider-signed records, each charged what the contract's terms
    // price it at (every contract has the same terms), stored, then settled on chain.
    let terms = terms.ok_or_else(|| anyhow::anyhow!("no contracts"))?;
    let records = cli.batches * cli.per_batch;
    let progress = bar(records, "settling records");
    let credential = "ab".repeat(32).parse()?;
    for b in 0..cli.batches {
        let mut parsed = Vec::with_capacity(cli.per_batch);
        let mut chosen: Vec<B256> = (0..cli.per_batch)
            .map(|k| ids[(b * cli.per_batch + k) % ids.len()])
            .collect();
        chosen.sort();
        for id in &chosen {
            let mut r = UsageRecord {
                id: format!("r{b}-{}", &id.to_string()[2..18]).parse()?,
                contract: ContractId(*id),
                provider: provider_did.clone(),
                consumer: consumer_did.clone(),
                credential: Clone::clone(&credential),
                from: 0,
                to: 60,
                connection_millis: 60_000,
                bytes_in: BYTES,
                bytes_out: BYTES,
                cpu_millis: 0,
                max_memory_kib: 0,
                gpu_millis: 0,
                data_accesses: 0,
                session: None,
                signature: None,
            };
            r.sign(&provider_key);
            let price = charge(&r, &terms, &PricingContext::default());
            parsed.push((r, Credits::from_base_units(price)));
        }
        let batch = keccak256(format!("index-bench-batch-{b}"));
        let doc = BatchDocument::new(
            api::BatchId(batch),
            parsed.iter().map(|(r, a)| BatchEntry::new(*a, r)).collect(),
        );
        let cid = content.put(&doc.to_bytes()).await?;
        let root = BatchDocument::tree_of(&parsed)?.root();
        relayer
            .send_call(
                d.contracts.usage_settlement,
                &UsageSettlement::settleCall {
                    batchId: batch,
                    merkleRoot: root,
                    recordsCid: cid.to_string(),
                    recordCount: parsed.len() as u32,
                    contractIds: chosen.clone(),
                    amounts: parsed
                        .iter()
                        .map(|(_, a)| U256::from(a.base_units()))
                        .collect(),
                },
            )
            .await?;
        progress.inc(cli.per_batch as u64);
    }
    progress.finish_and_clear();
    Ok(records)
}

/// The raw log rate, the index, and the verification, on the chain built.
async fn measure(
    relayer: &ChainClient,
    url: &str,
    d: &Deployment,
    index: &std::path::Path,
    content: Arc<dyn ContentStore>,
    records: usize,
) -> Result<()> {
    let ledger = LedgerLink {
        client: relayer.clone(),
        deployment: d.clone(),
    };
    let head = relayer.block_number().await?;

    // Rounds of the baseline and the index, one after the other; the median of each is
    // reported (a node on a 2-core machine answers at a rate that varies by tens of percent).
    let (mut raws, mut indexes, mut reading, mut writing) = (vec![], vec![], vec![], vec![]);
    let mut raw = 0usize;
    for round in 0..ROUNDS {
        // The baseline: every log of the six contracts, in ranges of the index's largest size,
        // straight from the node.
        let start = Instant::now();
        raw = 0;
        let mut from = d.deployment_block;
        while from <= head {
            let to = (from + ledger_index::RANGE - 1).min(head);
            raw += ledger.all_logs(from, to).await?.len();
            from = to + 1;
        }
        raws.push(start.elapsed().as_secs_f64());
        if raw < 100_000 {
            bail!("only {raw} events on chain; raise --batches");
        }

        // The index, into a fresh SQLite database.
        let path = index.join(format!("index-{round}.sqlite"));
        let store = Store::open(
            &format!("sqlite://{}?mode=rwc", path.display()),
            PoolSize {
                max_connections: None,
            },
        )
        .await?;
        store.bind_ledger(d).await?;
        let start = Instant::now();
        let progress = ledger_index::follow_with(&store, &ledger, 0).await?;
        indexes.push(start.elapsed().as_secs_f64());
        reading.push(progress.reading.as_secs_f64());
        writing.push(progress.writing.as_secs_f64());
        if progress.added != raw {
            bail!("indexed {} events of {raw}", progress.added);
        }
        store.pool().close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let (raw_secs, index_secs) = (median(&mut raws), median(&mut indexes));
    let (reading, writing) = (median(&mut reading), median(&mut writing));

    let raw_per_s = raw as f64 / raw_secs;
    let index_per_s = raw as f64 / index_secs;
    let ratio = index_per_s / raw_per_s;
    println!("raw eth_getLogs:           {raw_per_s:>10.0} events/s ({raw_secs:.2} s)");
    println!("ledger index (SQLite):     {index_per_s:>10.0} events/s ({index_secs:.2} s)");
    println!(
        "  of which reading the chain {reading:.2} s, writing SQLite {writing:.2} s (overlapping)"
    );
    println!("  (median of {ROUNDS} rounds each; raw {raws:.2?} s, index {indexes:.2?} s)");
    println!("ratio:                     {ratio:.2} (target ≥ 0.5)");

    // The independent verification of the whole ledger.
    let sources = sdk::audit::Sources {
        rpc_url: url.to_string(),
        deployment: d.clone(),
        content,
        from_block: None,
    };
    let start = Instant::now();
    let report = sdk::audit::verify(&sources, &|_| {}).await?;
    let verify_secs = start.elapsed().as_secs_f64();
    if !report.passed() || report.records != records as u64 {
        bail!(
            "verify found {} difference(s) over {} records: {:?}",
            report.differences.len(),
            report.records,
            report.differences.first()
        );
    }
    let blocks = relayer.provider().get_block_number().await?;

    println!("events on chain:           {raw} in {blocks} blocks");
    println!(
        "audit verify:              {records} records, {} contracts, {} batches in {verify_secs:.2} s (target < 60 s)",
        report.contracts, report.batches
    );
    println!(
        "{}",
        serde_json::json!({
            "events": raw,
            "raw_per_s": raw_per_s.round(),
            "index_per_s": index_per_s.round(),
            "ratio": (ratio * 100.0).round() / 100.0,
            "index_reading_secs": (reading * 100.0).round() / 100.0,
            "index_writing_secs": (writing * 100.0).round() / 100.0,
            "verify_records": records,
            "verify_secs": (verify_secs * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("index-bench: {e:#}");
        std::process::exit(1);
    }
}
