//! Following the Marketplace's events: the escrow watch reads from the chain only the contracts
//! whose events appeared since its previous pass; the charges table is written once per event,
//! whoever follows, and read again when the chain goes back.

use std::sync::Arc;

use alloy::primitives::U256;
use api::ContractId;
use broker::ledger_link::LedgerLink;
use broker::market::chain_moves;
use broker::market::escrow::ChainView;
use broker::market::{Market, MarketPolicy};
use broker::store::{PoolSize, Store};
use content::{ContentStore, EmbeddedStore};
use contracts::{CreditToken, Marketplace};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::{devnet, ChainClient};
use testkit::dev;

async fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["result"].clone()
}

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
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path().join("ledger"))
    };
    let net = devnet::up(&options, |_| {}).await.unwrap();
    let d = net.deployment.clone();
    let broker = ChainClient::connect(net.chain.url(), dev_signer(BROKER_INDEX).unwrap())
        .await
        .unwrap();
    let (consumer, provider) = (dev_signer(4).unwrap(), dev_signer(5).unwrap());
    dev::register(&broker, &d, &consumer, "did:key:c", 2)
        .await
        .unwrap();
    dev::register(&broker, &d, &provider, "did:key:p", 1)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = dev::open_contract(
            &broker,
            &d,
            &consumer,
            provider.address(),
            &format!("v{i}"),
            1_000,
        )
        .await
        .unwrap();
        ids.push(ContractId(id));
    }
    let store = Store::open(
        &format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("b.sqlite").display()
        ),
        PoolSize {
            max_connections: None,
        },
    )
    .await
    .unwrap();
    let content: Arc<dyn ContentStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("content")).unwrap());
    let market = Market::new(
        store,
        LedgerLink {
            client: broker.clone(),
            deployment: d.clone(),
        },
        content,
        MarketPolicy::default(),
    );
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
    let snapshot = rpc(net.chain.url(), "evm_snapshot", serde_json::json!([])).await;
    top_up(ids[1], 500).await;
    assert_eq!(
        pass(&market, &mut view, &ids).await,
        vec![1_000, 1_500, 1_000]
    );
    assert_eq!(view.reads, 4);

    // The charges table: followed twice, written once.
    assert!(chain_moves::follow(&market).await.unwrap() >= 4);
    assert_eq!(chain_moves::follow(&market).await.unwrap(), 0);
    let kinds = |id: ContractId| {
        let store = market.store.clone();
        async move {
            chain_moves::of_contract(&store, id)
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
        rpc(net.chain.url(), "evm_revert", serde_json::json!([snapshot])).await,
        serde_json::Value::Bool(true)
    );
    top_up(ids[2], 200).await;
    chain_moves::follow(&market).await.unwrap();
    assert_eq!(kinds(ids[1]).await, vec![("opened", 1_000)]);
    assert_eq!(kinds(ids[2]).await, vec![("opened", 1_000), ("topup", 200)]);
    net.chain.stop().await;
}
