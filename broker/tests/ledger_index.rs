//! The ledger index on a real chain: the escrow watch reads from the chain only the contracts
//! whose events the index gained since its previous pass; every event is written once, whoever
//! follows; a reorganisation rolls the index back to the common ancestor, so that it equals a
//! fresh index of the same chain; one deeper than the confirmation depth is recorded as such.

mod common;

use alloy::primitives::U256;
use api::ContractId;
use broker::market::escrow::ChainView;
use broker::market::ledger_index::{self, IndexPolicy};
use broker::market::{Market, MarketPolicy};
use common::Fixture;
use contracts::{CreditToken, Marketplace};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::dev_rpc;
use ledger::ChainClient;

/// A watch pass: refresh, then each contract's escrow.
async fn pass(market: &Market, view: &mut ChainView, ids: &[ContractId]) -> Vec<u128> {
    view.refresh(market).await.unwrap();
    let mut escrows = Vec::new();
    for id in ids {
        escrows.push(view.get(market, *id).await.unwrap().escrow.base_units());
    }
    escrows
}

#[tokio::test]
async fn followers_read_only_what_changed_write_each_event_once_and_follow_the_chain_back() {
    let f = Fixture::start().await;
    let (d, net, consumer) = (f.d().clone(), &f.net, f.consumer.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(ContractId(f.open(&format!("v{i}"), 1_000).await));
    }
    let market = f.market(f.sqlite().await, f.broker.clone(), MarketPolicy::default());
    let mut view = ChainView::default();
    assert_eq!(
        pass(&market, &mut view, &ids).await,
        vec![1_000, 1_000, 1_000]
    );
    assert_eq!(view.reads, 3);
    // Nothing happened: nothing is read again.
    pass(&market, &mut view, &ids).await;
    assert_eq!(view.reads, 3);
    // A top-up of the second contract: only it is read again, and the view shows it.
    // A client per top-up: one that sent before the chain went back would keep its nonces.
    let top_up = |id: ContractId, amount: u64| {
        let (consumer, d, url) = (consumer.clone(), &d, net.chain.url().to_string());
        async move {
            let consumer = ChainClient::connect(&url, consumer).await.unwrap();
            consumer
                .send_call(
                    d.contracts.credit_token,
                    &CreditToken::approveCall {
                        spender: d.contracts.marketplace,
                        value: U256::from(amount),
                    },
                )
                .await
                .unwrap();
            consumer
                .send_call(
                    d.contracts.marketplace,
                    &Marketplace::topUpCall {
                        contractId: id.0,
                        amount: U256::from(amount),
                        deadline: U256::ZERO,
                        consumerSig: Default::default(),
                    },
                )
                .await
                .unwrap();
        }
    };
    let snapshot = dev_rpc(net.chain.url(), "evm_snapshot", serde_json::json!([]))
        .await
        .unwrap();
    top_up(ids[1], 500).await;
    assert_eq!(
        pass(&market, &mut view, &ids).await,
        vec![1_000, 1_500, 1_000]
    );
    assert_eq!(view.reads, 4);

    // Followed again (the watch already did): nothing new is written.
    assert_eq!(ledger_index::follow(&market).await.unwrap().added, 0);
    let kinds = |id: ContractId| {
        let store = market.store.clone();
        async move {
            ledger_index::of_contract(&store, id)
                .await
                .unwrap()
                .iter()
                .map(|m| (m.kind.as_str(), m.amount.base_units()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(kinds(ids[1]).await, vec![("opened", 1_000), ("topup", 500)]);
    // The chain goes back (the top-up's blocks replaced by others): the table follows it.
    assert_eq!(
        dev_rpc(net.chain.url(), "evm_revert", serde_json::json!([snapshot]))
            .await
            .unwrap(),
        serde_json::Value::Bool(true)
    );
    top_up(ids[2], 200).await;
    let progress = ledger_index::follow(&market).await.unwrap();
    let reorg = progress.reorg.expect("the reorganisation is seen");
    assert!(!reorg.beyond_confirmations, "{reorg:?}");
    assert_eq!(kinds(ids[1]).await, vec![("opened", 1_000)]);
    assert_eq!(kinds(ids[2]).await, vec![("opened", 1_000), ("topup", 200)]);
    // The watch reads the contracts of the replaced blocks afresh.
    assert_eq!(
        pass(&market, &mut view, &ids).await,
        vec![1_000, 1_000, 1_200]
    );
    // The index equals a fresh index of the same chain.
    let fresh = f.market(
        f.sqlite_named("fresh").await,
        f.broker.clone(),
        MarketPolicy::default(),
    );
    ledger_index::follow(&fresh).await.unwrap();
    assert_eq!(rows(&market).await, rows(&fresh).await);
    f.net.chain.stop().await;
}

/// Every indexed event's place, block hash and name.
async fn rows(market: &Market) -> Vec<(i64, i64, Vec<u8>, String)> {
    sqlx::query_as(
        "SELECT block_number, log_index, block_hash, name FROM ledger_events ORDER BY block_number, log_index",
    )
    .fetch_all(market.store.pool())
    .await
    .unwrap()
}

/// Every log of the six contracts, straight from the node.
async fn chain_logs(market: &Market) -> usize {
    let head = market.ledger.client.block_number().await.unwrap();
    market
        .ledger
        .all_logs(market.ledger.deployment.deployment_block, head)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn two_followers_write_each_event_once_and_a_deep_reorganisation_is_named() {
    let f = Fixture::start().await;
    let url = f.net.chain.url().to_string();
    for i in 0..4 {
        f.open(&format!("r{i}"), 700).await;
    }
    let store = f.sqlite().await;
    let one = f.market(store.clone(), f.broker.clone(), MarketPolicy::default());
    let two = f.market(
        f.sqlite_named("b").await,
        f.broker.clone(),
        MarketPolicy::default(),
    );
    let (a, b) = tokio::join!(ledger_index::follow(&one), ledger_index::follow(&two));
    let (a, b) = (a.unwrap(), b.unwrap());
    let total = chain_logs(&one).await;
    assert!(total >= 4 * 3, "{total} logs");
    assert_eq!(a.added + b.added, total, "each event written once");
    assert_eq!(rows(&one).await.len(), total);
    // Every event of every contract kind is there: the deployment's roles and parameters too.
    let names: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT name FROM ledger_events")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let names: Vec<&str> = names.iter().map(|(n,)| n.as_str()).collect();
    for want in ["ContractOpened", "Transfer", "RoleGranted", "Approval"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    // With two confirmations, the newest two blocks wait.
    let confirmed = f.market(
        f.sqlite_named("confirmed").await,
        f.broker.clone(),
        MarketPolicy {
            index: IndexPolicy { confirmations: 2 },
            ..MarketPolicy::default()
        },
    );
    let head = one.ledger.client.block_number().await.unwrap();
    assert_eq!(
        ledger_index::follow(&confirmed).await.unwrap().next_block,
        head - 1
    );
    // A reorganisation four blocks deep replaces blocks the confirmed index had read.
    let snapshot_at = head - 4;
    let reorg = dev_rpc(&url, "anvil_rollback", serde_json::json!([4])).await;
    assert!(reorg.is_ok(), "{reorg:?}");
    assert_eq!(one.ledger.client.block_number().await.unwrap(), snapshot_at);
    // A relayer that sent before the rollback would keep its nonces: a fresh one.
    let relayer = ChainClient::connect(&url, dev_signer(BROKER_INDEX).unwrap())
        .await
        .unwrap();
    testkit::dev::open_contract(
        &relayer,
        f.d(),
        &f.consumer,
        f.provider.address(),
        "after",
        300,
    )
    .await
    .unwrap();
    let p = ledger_index::follow(&confirmed).await.unwrap();
    let r = p.reorg.expect("seen");
    assert!(r.beyond_confirmations, "{r:?}");
    assert!(r.ancestor <= snapshot_at, "{r:?}");
    let recorded: (i64,) = sqlx::query_as("SELECT beyond_confirmations FROM ledger_reorgs")
        .fetch_one(confirmed.store.pool())
        .await
        .unwrap();
    assert_eq!(recorded.0, 1);
    // The rolled-back index equals a fresh one of the same chain (up to the same block).
    let p1 = ledger_index::follow(&one).await.unwrap();
    assert!(p1.reorg.is_some());
    let fresh = f.market(
        f.sqlite_named("fresh").await,
        f.broker.clone(),
        MarketPolicy::default(),
    );
    ledger_index::follow(&fresh).await.unwrap();
    assert_eq!(rows(&one).await, rows(&fresh).await);
    f.net.chain.stop().await;
}
