//! Following the Marketplace's events: the escrow watch reads from the chain only the contracts
//! whose events appeared since its previous pass; the charges table is written once per event,
//! whoever follows, and read again when the chain goes back.

mod common;

use alloy::primitives::U256;
use api::ContractId;
use broker::market::chain_moves;
use broker::market::escrow::ChainView;
use broker::market::{Market, MarketPolicy};
use common::Fixture;
use contracts::{CreditToken, Marketplace};
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
        dev_rpc(net.chain.url(), "evm_revert", serde_json::json!([snapshot]))
            .await
            .unwrap(),
        serde_json::Value::Bool(true)
    );
    top_up(ids[2], 200).await;
    chain_moves::follow(&market).await.unwrap();
    assert_eq!(kinds(ids[1]).await, vec![("opened", 1_000)]);
    assert_eq!(kinds(ids[2]).await, vec![("opened", 1_000), ("topup", 200)]);
    f.net.chain.stop().await;
}
