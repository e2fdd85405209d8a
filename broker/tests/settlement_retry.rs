//! A batch is paid once whatever happens between the database and the chain: a broker that
//! settled a batch on chain but did not record it (it stopped) finds it `built` again, asks the
//! chain, and does not pay twice; a contract whose escrow is short pays what it can and the rest
//! waits; closed and suspended contracts never stall the rest.

mod common;

use alloy::primitives::{keccak256, B256, U256};
use broker::market::settlement::{plan, settle_once, BatchLimits, Unsettled};
use broker::market::MarketPolicy;
use common::{insert_records, Fixture};
use contracts::Marketplace;

#[tokio::test]
async fn a_batch_settled_but_not_recorded_is_never_paid_twice() {
    let f = Fixture::start().await;
    let (broker, c) = (&f.broker, f.d().contracts);
    // 0: pays; 1: short; 2: closed on chain; 3: suspended; 4: closed between building a batch
    // and sending it.
    let mut ids = Vec::new();
    for (i, deposit) in [10_000u64, 50, 10_000, 10_000, 10_000]
        .into_iter()
        .enumerate()
    {
        ids.push(f.open(&format!("retry{i}"), deposit).await);
    }
    let store = f.sqlite().await;
    // 30 records of 100 for the first contract; 2 of 40 and 1 of 100 for the second, whose
    // escrow is 50: it pays its first record, the rest waits.
    let mut records: Vec<(String, B256, u64)> = Vec::new();
    for i in 0..30 {
        records.push((format!("a{i:02}"), ids[0], 100));
    }
    records.push(("b00".to_string(), ids[1], 40));
    records.push(("b01".to_string(), ids[1], 40));
    records.push(("b02".to_string(), ids[1], 100));
    records.push(("c00".to_string(), ids[2], 100));
    records.push(("d00".to_string(), ids[3], 100));
    let m = Marketplace::new(c.marketplace, broker.provider());
    broker
        .send_call(
            c.marketplace,
            &Marketplace::closeCall { contractId: ids[2] },
        )
        .await
        .unwrap();
    broker
        .send_call(
            c.marketplace,
            &Marketplace::suspendCall {
                contractId: ids[3],
                reason: alloy::primitives::B256::repeat_byte(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(m.agreement(ids[2]).call().await.unwrap().status, 4);
    insert_records(&store, &records).await;
    let policy = MarketPolicy {
        batches: BatchLimits {
            max_records: 1000,
            max_contracts: 10,
            dispute_window_secs: 0,
        },
        ..MarketPolicy::default()
    };
    let market = f.market(store.clone(), broker.clone(), policy);
    let charged = |id| {
        let m = m.clone();
        async move { U256::from(m.agreement(id).call().await.unwrap().charged) }
    };

    // The contract whose escrow is short pays what it can; the suspended one pays for the usage
    // it had; the closed one is left out; the first is settled whole, once. None stalls the rest.
    assert_eq!(settle_once(&market, 1_000).await.unwrap(), 32);
    assert_eq!(charged(ids[0]).await, U256::from(3_000u64));
    assert_eq!(charged(ids[1]).await, U256::from(40u64));
    assert_eq!(charged(ids[2]).await, U256::ZERO);
    assert_eq!(charged(ids[3]).await, U256::from(100u64));

    // As if the broker stopped after the chain settled the batch but before recording it.
    sqlx::query("UPDATE settlement_batches SET state = 'built', tx_hash = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(settle_once(&market, 1_001).await.unwrap(), 32);
    assert_eq!(
        charged(ids[0]).await,
        U256::from(3_000u64),
        "not paid twice"
    );
    let (state,): (String,) = sqlx::query_as("SELECT state FROM settlement_batches")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state, "settled");
    // Nothing else to settle while the second contract's escrow is short.
    assert_eq!(settle_once(&market, 1_002).await.unwrap(), 0);
    let (waiting,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM usage_records WHERE batch_id IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(waiting, 3);

    // A contract closed after its batch was built is skipped by the chain: the batch settles,
    // its records go back to the queue, nothing is charged.
    sqlx::query(
        "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, amount, received_at) \
         VALUES ('e00', $1, 'p', 'c', 0, 1, '{\"id\":\"e00\"}', $2, '100', 0)",
    )
    .bind(ids[4].to_string())
    .bind(keccak256(b"e00").to_string())
    .execute(store.pool())
    .await
    .unwrap();
    let p = plan(
        vec![Unsettled {
            id: "e00".into(),
            contract: api::ContractId(ids[4]),
            hash: keccak256(b"e00"),
            amount: 100,
        }],
        alloy::primitives::B256::repeat_byte(7),
    )
    .unwrap();
    sqlx::query(
        "INSERT INTO settlement_batches (id, root, records_cid, record_count, total, charges, leaves, state, created_at) \
         VALUES ($1, $2, 'bafkreibuilt', 1, '100', $3, $4, 'built', 0)",
    )
    .bind(p.id.to_string())
    .bind(p.root.to_string())
    .bind(format!("[[\"{}\",\"100\"]]", api::ContractId(ids[4])))
    .bind(serde_json::to_string(&p.leaves).unwrap())
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE usage_records SET batch_id = $1 WHERE id = 'e00'")
        .bind(p.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    broker
        .send_call(
            c.marketplace,
            &Marketplace::closeCall { contractId: ids[4] },
        )
        .await
        .unwrap();
    settle_once(&market, 1_002).await.unwrap();
    let (state, charges): (String, String) =
        sqlx::query_as("SELECT state, charges FROM settlement_batches WHERE id = $1")
            .bind(p.id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((state.as_str(), charges.as_str()), ("settled", "[]"));
    let (requeued,): (Option<String>,) =
        sqlx::query_as("SELECT batch_id FROM usage_records WHERE id = 'e00'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(requeued, None);
    assert_eq!(charged(ids[4]).await, U256::ZERO);

    // A batch whose stored charges cannot be read is an error naming them, never a batch that
    // looks settled with nothing to pay.
    sqlx::query("UPDATE settlement_batches SET state = 'built', charges = 'garbage' WHERE records_cid <> 'bafkreibuilt'")
        .execute(store.pool())
        .await
        .unwrap();
    let err = settle_once(&market, 1_003).await.unwrap_err();
    assert!(
        err.to_string().contains("settlement_batches.charges"),
        "{err}"
    );
    let (state,): (String,) =
        sqlx::query_as("SELECT state FROM settlement_batches WHERE records_cid <> 'bafkreibuilt'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(state, "built");
    f.net.chain.stop().await;
}
