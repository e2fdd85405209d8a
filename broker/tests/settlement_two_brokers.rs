//! Two brokers sharing one PostgreSQL settle 10,000 records at once, each with its own settler
//! account: every record lands in exactly one batch and every contract is charged exactly once
//! for each of its records.

mod common;

use std::collections::HashMap;

use broker::market::settlement::{settle_once, BatchLimits};
use broker::market::MarketPolicy;
use common::{insert_records, open_store, Fixture};
use contracts::bindings::roles;
use contracts::{Marketplace, UsageSettlement};
use ledger::accounts::{dev_signer, DEPLOYER_INDEX};
use ledger::ChainClient;
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
    let f = Fixture::start().await;
    let d = f.d().clone();
    let broker = f.broker.clone();
    // The second broker settles from an account of its own, granted the role by the admin.
    let second = dev_signer(7).unwrap();
    let admin = ChainClient::connect(f.net.chain.url(), dev_signer(DEPLOYER_INDEX).unwrap())
        .await
        .unwrap();
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
    let second = ChainClient::connect(f.net.chain.url(), second)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..CONTRACTS {
        ids.push(f.open(&format!("two{i}"), 100_000).await);
    }
    let store = open_store(&url).await;
    let mut records = Vec::new();
    for cid in &ids {
        for r in 0..PER_CONTRACT {
            records.push((format!("{cid:.8}-{r:04}"), *cid, AMOUNT));
        }
    }
    insert_records(&store, &records).await;
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
        let market = f.market(open_store(&url).await, chain, policy);
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
    f.net.chain.stop().await;
}
