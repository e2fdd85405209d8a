//! `chain-bench`: the raw throughput of the embedded chain (ERC-20 transfers per second with 1 and
//! with 32 concurrent senders) and the gas of each marketplace operation. Later benchmarks use the
//! transfer rate as their ceiling. The last line of output is one JSON object with the figures.

use alloy::primitives::{keccak256, Bytes, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use anyhow::{Context, Result};
use clap::Parser;
use contracts::merkle::BatchTree;
use contracts::{
    eip712, CredentialRegistry, CreditToken, Marketplace, ParticipantRegistry, UsageSettlement,
    CREDIT,
};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::bench::{fresh_senders, transfers};
use ledger::deployment::Deployment;
use ledger::{devnet, ChainClient};

#[derive(Parser)]
#[command(about = "Throughput and gas of the embedded chain")]
struct Cli {
    /// Transfers sent by the single sender.
    #[arg(long, default_value_t = 500)]
    single: usize,
    /// Concurrent senders in the second run.
    #[arg(long, default_value_t = 32)]
    senders: usize,
    /// Transfers per concurrent sender.
    #[arg(long, default_value_t = 50)]
    per_sender: usize,
}

struct Gas(Vec<(&'static str, u64)>);

impl Gas {
    fn add(&mut self, name: &'static str, receipt: alloy::rpc::types::TransactionReceipt) {
        self.0.push((name, receipt.gas_used));
    }
}

fn sign<T: SolStruct>(
    signer: &PrivateKeySigner,
    message: &T,
    domain: &alloy::sol_types::Eip712Domain,
) -> Bytes {
    eip712::sign(signer, message, domain).expect("sign")
}

async fn now(client: &ChainClient) -> Result<u64> {
    let block = client
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?
        .context("no latest block")?;
    Ok(block.header.timestamp)
}

async fn marketplace_gas(url: &str, d: &Deployment) -> Result<Gas> {
    let c = &d.contracts;
    let broker = ChainClient::connect(url, dev_signer(BROKER_INDEX)?).await?;
    let (ps, cs) = (dev_signer(2)?, dev_signer(3)?);
    let provider = ChainClient::connect(url, ps.clone()).await?;
    let consumer = ChainClient::connect(url, cs.clone()).await?;
    let chain_id = d.chain_id;
    let mut gas = Gas(Vec::new());
    let deadline = U256::from(now(&broker).await? + 3600);

    for (signer, did, role, name) in [
        (
            &ps,
            "did:key:bench-provider",
            1u8,
            "registerParticipant (provider)",
        ),
        (
            &cs,
            "did:key:bench-consumer",
            2u8,
            "registerParticipant (consumer)",
        ),
    ] {
        let link = eip712::Link {
            did: did.into(),
            account: signer.address(),
            role,
            nonce: U256::ZERO,
            deadline,
        };
        let signature = sign(
            signer,
            &link,
            &eip712::registry_domain(chain_id, c.participant_registry),
        );
        let r = broker
            .send_call(
                c.participant_registry,
                &ParticipantRegistry::registerCall {
                    did: did.into(),
                    account: signer.address(),
                    role,
                    deadline,
                    signature,
                },
            )
            .await?;
        gas.add(name, r);
    }
    gas.add(
        "setProviderConfig",
        provider
            .send_call(
                c.participant_registry,
                &ParticipantRegistry::setConfigCall {
                    cid: "bafkreibenchconfig".repeat(3),
                },
            )
            .await?,
    );
    gas.add(
        "approve",
        consumer
            .send_call(
                c.credit_token,
                &CreditToken::approveCall {
                    spender: c.marketplace,
                    value: U256::MAX,
                },
            )
            .await?,
    );
    let domain = eip712::marketplace_domain(chain_id, c.marketplace);
    let open = |id: B256, price: U256, period: u64| {
        let m = eip712::OpenContract {
            contractId: id,
            consumer: cs.address(),
            provider: ps.address(),
            termsHash: keccak256(id),
            termsCid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
            deposit: U256::from(100 * CREDIT),
            periodPrice: price,
            period,
            prices: Default::default(),
            usageCap: if period == 0 {
                U256::from(100 * CREDIT)
            } else {
                U256::ZERO
            },
            capWindow: if period == 0 { 3600 } else { 0 },
            deadline,
        };
        let sig = sign(&cs, &m, &domain);
        Marketplace::openCall {
            req: m.into(),
            consumerSig: sig,
            signaturesCid: "bafkreisignatures".into(),
        }
    };
    let ids: Vec<B256> = (0..10u64).map(|i| keccak256(i.to_be_bytes())).collect();
    gas.add(
        "open (pay-per-use)",
        broker
            .send_call(c.marketplace, &open(ids[0], U256::ZERO, 0))
            .await?,
    );
    gas.add(
        "open (reserved, 1st period)",
        broker
            .send_call(c.marketplace, &open(ids[1], U256::from(10 * CREDIT), 3600))
            .await?,
    );
    for id in &ids[2..] {
        broker
            .send_call(c.marketplace, &open(*id, U256::ZERO, 0))
            .await?;
    }
    gas.add(
        "topUp (by consumer)",
        consumer
            .send_call(
                c.marketplace,
                &Marketplace::topUpCall {
                    contractId: ids[0],
                    amount: U256::from(CREDIT),
                    deadline,
                    consumerSig: Bytes::new(),
                },
            )
            .await?,
    );
    let topup = eip712::TopUp {
        contractId: ids[0],
        amount: U256::from(CREDIT),
        nonce: U256::ZERO,
        deadline,
    };
    gas.add(
        "topUp (relayed, signed)",
        broker
            .send_call(
                c.marketplace,
                &Marketplace::topUpCall {
                    contractId: ids[0],
                    amount: U256::from(CREDIT),
                    deadline,
                    consumerSig: sign(&cs, &topup, &domain),
                },
            )
            .await?,
    );
    ledger::anvil::advance(broker.url(), 3600).await?;
    gas.add(
        "chargePeriod",
        broker
            .send_call(
                c.marketplace,
                &Marketplace::chargePeriodCall { contractId: ids[1] },
            )
            .await?,
    );
    // Ten records of 100 base units per contract, under each contract's node.
    let tree = |n: usize| {
        let groups: Vec<(B256, Vec<(B256, U256)>)> = ids[..n]
            .iter()
            .map(|id| {
                let leaves = (0..10u64)
                    .map(|i| (keccak256(format!("{id}-record-{i}")), U256::from(100u64)))
                    .collect();
                (*id, leaves)
            })
            .collect();
        BatchTree::new(&groups)
    };
    let (root1, root10) = (tree(1)?.root(), tree(10)?.root());
    let settle = |batch: u64, n: usize| UsageSettlement::settleCall {
        batchId: keccak256(format!("batch-{batch}")),
        merkleRoot: if n == 1 { root1 } else { root10 },
        recordsCid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
        recordCount: 10 * n as u32,
        contractIds: ids[..n].to_vec(),
        amounts: vec![U256::from(1000u64); n],
    };
    gas.add(
        "settle (1 contract)",
        broker.send_call(c.usage_settlement, &settle(1, 1)).await?,
    );
    gas.add(
        "settle (10 contracts)",
        broker.send_call(c.usage_settlement, &settle(2, 10)).await?,
    );
    let reason = B256::repeat_byte(1);
    gas.add(
        "suspend",
        broker
            .send_call(
                c.marketplace,
                &Marketplace::suspendCall {
                    contractId: ids[2],
                    reason,
                },
            )
            .await?,
    );
    gas.add(
        "resume",
        broker
            .send_call(
                c.marketplace,
                &Marketplace::resumeCall { contractId: ids[2] },
            )
            .await?,
    );
    gas.add(
        "requestClose",
        consumer
            .send_call(
                c.marketplace,
                &Marketplace::requestCloseCall { contractId: ids[3] },
            )
            .await?,
    );
    gas.add(
        "close (refund)",
        broker
            .send_call(
                c.marketplace,
                &Marketplace::closeCall { contractId: ids[0] },
            )
            .await?,
    );
    gas.add(
        "withdraw",
        provider
            .send_call(
                c.marketplace,
                &Marketplace::withdrawCall {
                    to: ps.address(),
                    amount: U256::from(1000u64),
                },
            )
            .await?,
    );
    let h = keccak256("credential");
    gas.add(
        "anchorCredential",
        broker
            .send_call(
                c.credential_registry,
                &CredentialRegistry::anchorCall {
                    credentialHash: h,
                    cid: "bafkreivc".into(),
                },
            )
            .await?,
    );
    gas.add(
        "revokeCredential",
        broker
            .send_call(
                c.credential_registry,
                &CredentialRegistry::revokeCall {
                    credentialHash: h,
                    reason,
                },
            )
            .await?,
    );
    Ok(gas)
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let net = devnet::up(&options, |_| {}).await?;
    let url = net.chain.url().to_string();
    let d = net.deployment.clone();

    let single = fresh_senders(&url, d.contracts.credit_token, 1).await?;
    let many = fresh_senders(&url, d.contracts.credit_token, cli.senders).await?;
    // Warm-up, so both runs start from the same state of caches and connections.
    transfers(&single, d.contracts.credit_token, 20, "warm-up").await?;
    let tps_1 = transfers(&single, d.contracts.credit_token, cli.single, "1 sender").await?;
    let tps_n = transfers(
        &many,
        d.contracts.credit_token,
        cli.per_sender,
        &format!("{} senders", cli.senders),
    )
    .await?;
    let gas = marketplace_gas(&url, &d).await?;
    net.chain.stop().await;

    println!("embedded chain (Anvil, automine) — ERC-20 transfers, each sent and confirmed");
    println!("  {:<28}{:>12.1} tx/s", "1 sender", tps_1);
    println!(
        "  {:<28}{:>12.1} tx/s",
        format!("{} concurrent senders", cli.senders),
        tps_n
    );
    println!(
        "  {:<28}{:>12.2}x",
        "ratio (concurrent / single)",
        tps_n / tps_1
    );
    println!("gas per operation");
    for (name, g) in &gas.0 {
        println!("  {name:<28}{g:>12}");
    }
    let gas_json: serde_json::Map<String, serde_json::Value> = gas
        .0
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "bench": "chain",
            "transfers_per_sec_1_sender": (tps_1 * 10.0).round() / 10.0,
            "transfers_per_sec_concurrent": (tps_n * 10.0).round() / 10.0,
            "concurrent_senders": cli.senders,
            "concurrency_ratio": ((tps_n / tps_1) * 100.0).round() / 100.0,
            "gas": gas_json,
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
