//! Two brokers sharing one PostgreSQL settle 10,000 records at once, each with its own settler
//! account: every record lands in exactly one batch and every contract is charged exactly once
//! for each of its records.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::keccak256;
use alloy::signers::local::PrivateKeySigner;
use broker::ledger_link::LedgerLink;
use broker::market::settlement::{settle_once, BatchLimits};
use broker::market::{Market, MarketPolicy};
use broker::store::{PoolSize, Store};
use content::{ContentStore, EmbeddedStore};
use contracts::bindings::roles;
use contracts::{Marketplace, UsageSettlement};
use ledger::accounts::{dev_signer, BROKER_INDEX, DEPLOYER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::{devnet, ChainClient};
use testkit::dev;
use testkit::pg_server::PgServer;

const CONTRACTS: usize = 10;
const PER_CONTRACT: usize = 1_000;
const AMOUNT: u64 = 7;

/// A leaf as a batch stores it: record id, record hash, amount.
type Leaf = (String, String, String);

#[tokio::test]
async fn two_brokers_on_one_database_never_charge_a_record_twice() {
    let pg = PgServer::start().expect("PostgreSQL starts");
    let url = pg.create_database("settle").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path().join("ledger"))
    };
    let net = devnet::up(&options, |_| {}).await.unwrap();
    let d = net.deployment.clone();
    let client = |signer: PrivateKeySigner| {
        let url = net.chain.url().to_string();
        async move { ChainClient::connect(&url, signer).await.unwrap() }
    };
    let broker = client(dev_signer(BROKER_INDEX).unwrap()).await;
    // The second broker settles from an account of its own, granted the role by the admin.
    let second = dev_signer(7).unwrap();
    let admin = client(dev_signer(DEPLOYER_INDEX).unwrap()).await;
    admin
        .send_call(
            d.contracts.usage_settlement,
            &UsageSettlement::grantRoleCall {
                role: roles::settler(),
                account: second.address(),
            },
        )
        .await
        .unwrap();
    let second = client(second).await;
    let (consumer, provider) = (dev_signer(4).unwrap(), dev_signer(5).unwrap());
    dev::register(&broker, &d, &consumer, "did:key:c", 2)
        .await
        .unwrap();
    dev::register(&broker, &d, &provider, "did:key:p", 1)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..CONTRACTS {
        ids.push(
            dev::open_contract(
                &broker,
                &d,
                &consumer,
                provider.address(),
                &format!("two{i}"),
                100_000,
            )
            .await
            .unwrap(),
        );
    }

    let open = || {
        Store::open(
            &url,
            PoolSize {
                max_connections: None,
            },
        )
    };
    let store = open().await.unwrap();
    let mut n = 0i64;
    let mut rows = Vec::new();
    for cid in &ids {
        for r in 0..PER_CONTRACT {
            rows.push((format!("{cid:.8}-{r:04}"), cid.to_string(), n));
            n += 1;
        }
    }
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|(rid, cid, at)| {
                format!(
                    "('{rid}', '{cid}', 'p', 'c', 0, 1, '{{\"id\":\"{rid}\"}}', '{}', '{AMOUNT}', {at})",
                    keccak256(rid.as_bytes())
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, amount, received_at) VALUES {}",
            values.join(",")
        ))
        .execute(store.pool())
        .await
        .unwrap();
    }
    let content: Arc<dyn ContentStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("content")).unwrap());
    let policy = MarketPolicy {
        batches: BatchLimits {
            max_records: 1_000,
            max_contracts: CONTRACTS,
            dispute_window_secs: 0,
        },
        ..MarketPolicy::default()
    };
    let mut tasks = Vec::new();
    for chain in [broker.clone(), second] {
        let market = Market::new(
            open().await.unwrap(),
            LedgerLink {
                client: chain,
                deployment: d.clone(),
            },
            content.clone(),
            policy,
        );
        tasks.push(tokio::spawn(async move {
            let mut settled = 0;
            // Until nothing waits and nothing is left built (by either broker).
            for _ in 0..200 {
                settled += settle_once(&market, 1_000_000).await.unwrap();
                let (waiting,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM usage_records WHERE batch_id IS NULL")
                        .fetch_one(market.store.pool())
                        .await
                        .unwrap();
                let (built,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM settlement_batches WHERE state = 'built'")
                        .fetch_one(market.store.pool())
                        .await
                        .unwrap();
                if waiting == 0 && built == 0 {
                    break;
                }
            }
            settled
        }));
    }
    let mut settled = Vec::new();
    for t in tasks {
        settled.push(t.await.unwrap());
    }
    assert_eq!(
        settled.iter().sum::<usize>(),
        CONTRACTS * PER_CONTRACT,
        "each record settled by one broker: {settled:?}"
    );
    // Every record is a leaf of exactly one batch, and that batch is the one it names.
    let batches: Vec<(String, String)> =
        sqlx::query_as("SELECT id, leaves FROM settlement_batches WHERE state = 'settled'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (batch, leaves) in &batches {
        let leaves: Vec<(String, Vec<Leaf>)> = serde_json::from_str(leaves).unwrap();
        for (_, records) in leaves {
            for (rid, _, _) in records {
                assert!(
                    seen.insert(rid.clone(), batch.clone()).is_none(),
                    "{rid} in two batches"
                );
            }
        }
    }
    assert_eq!(seen.len(), CONTRACTS * PER_CONTRACT);
    let named: Vec<(String, String)> = sqlx::query_as("SELECT id, batch_id FROM usage_records")
        .fetch_all(store.pool())
        .await
        .unwrap();
    for (rid, batch) in named {
        assert_eq!(seen.get(&rid), Some(&batch), "{rid}");
    }
    // And the chain charged each contract once per record.
    let m = Marketplace::new(d.contracts.marketplace, broker.provider());
    for cid in &ids {
        assert_eq!(
            m.agreement(*cid).call().await.unwrap().charged,
            u128::from(AMOUNT) * PER_CONTRACT as u128,
            "{cid}"
        );
    }
    net.chain.stop().await;
}
