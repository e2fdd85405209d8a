//! A batch is paid once whatever happens between the database and the chain: a broker that
//! settled a batch on chain but did not record it (it stopped) finds it `built` again, asks the
//! chain, and does not pay twice; a batch the chain refuses (an escrow too small) changes nothing.

use std::sync::Arc;

use alloy::primitives::{keccak256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use broker::ledger_link::LedgerLink;
use broker::market::settlement::{settle_once, BatchLimits};
use broker::store::Store;
use content::{ContentStore, EmbeddedStore};
use contracts::{eip712, CreditToken, Marketplace, ParticipantRegistry};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::{free_port, AnvilOptions};
use ledger::{devnet, ChainClient};

fn sign<T: alloy::sol_types::SolStruct>(
    s: &PrivateKeySigner,
    m: &T,
    d: &alloy::sol_types::Eip712Domain,
) -> Bytes {
    eip712::sign(s, m, d).unwrap()
}

#[tokio::test]
async fn a_batch_settled_but_not_recorded_is_never_paid_twice() {
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: free_port().unwrap(),
        ..AnvilOptions::new(dir.path().join("ledger"))
    };
    let net = devnet::up(&options, |_| {}).await.unwrap();
    let d = net.deployment.clone();
    let c = d.contracts;
    let broker = ChainClient::connect(net.chain.url(), dev_signer(BROKER_INDEX).unwrap())
        .await
        .unwrap();
    let (consumer, provider) = (dev_signer(4).unwrap(), dev_signer(5).unwrap());
    let consumer_client = ChainClient::connect(net.chain.url(), consumer.clone())
        .await
        .unwrap();
    let registry = ParticipantRegistry::new(c.participant_registry, broker.provider());
    for (who, did, role) in [(&consumer, "did:key:c", 2u8), (&provider, "did:key:p", 1u8)] {
        let nonce = registry.nonces(who.address()).call().await.unwrap();
        let deadline = U256::from(u64::MAX / 2);
        let link = eip712::Link {
            did: did.into(),
            account: who.address(),
            role,
            nonce,
            deadline,
        };
        let signature = sign(
            who,
            &link,
            &eip712::registry_domain(d.chain_id, c.participant_registry),
        );
        broker
            .send_call(
                c.participant_registry,
                &ParticipantRegistry::registerCall {
                    did: did.into(),
                    account: who.address(),
                    role,
                    deadline,
                    signature,
                },
            )
            .await
            .unwrap();
    }
    consumer_client
        .send_call(
            c.credit_token,
            &CreditToken::approveCall {
                spender: c.marketplace,
                value: U256::MAX,
            },
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (i, deposit) in [10_000u64, 50].into_iter().enumerate() {
        let id = keccak256(format!("retry-{i}"));
        let m = eip712::OpenContract {
            contractId: id,
            consumer: consumer.address(),
            provider: provider.address(),
            termsHash: keccak256(id),
            termsCid: "bafkreiretry".into(),
            deposit: U256::from(deposit),
            periodPrice: U256::ZERO,
            period: 0,
            deadline: U256::from(u64::MAX / 2),
        };
        let sig = sign(
            &consumer,
            &m,
            &eip712::marketplace_domain(d.chain_id, c.marketplace),
        );
        let req = Marketplace::OpenRequest {
            contractId: id,
            consumer: m.consumer,
            provider: m.provider,
            termsHash: m.termsHash,
            termsCid: m.termsCid,
            deposit: m.deposit,
            periodPrice: U256::ZERO,
            period: 0,
            deadline: m.deadline,
        };
        broker
            .send_call(
                c.marketplace,
                &Marketplace::openCall {
                    req,
                    consumerSig: sig,
                },
            )
            .await
            .unwrap();
        ids.push(id);
    }

    let store = Store::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("b.sqlite").display()
    ))
    .await
    .unwrap();
    // 30 records of 100 for the first contract; 1 of 100 for the second, whose escrow is 50.
    let mut records = Vec::new();
    for i in 0..30 {
        records.push((format!("a{i:02}"), ids[0]));
    }
    records.push(("b00".to_string(), ids[1]));
    for (n, (rid, cid)) in records.iter().enumerate() {
        sqlx::query(
            "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, amount, received_at) \
             VALUES ($1, $2, 'p', 'c', 0, 1, $3, $4, '100', $5)",
        )
        .bind(rid.clone())
        .bind(cid.to_string())
        .bind(format!("{{\"id\":\"{rid}\"}}"))
        .bind(keccak256(rid.as_bytes()).to_string())
        .bind(n as i64)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let ledger = LedgerLink {
        client: broker.clone(),
        deployment: d.clone(),
    };
    let content: Arc<dyn ContentStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("content")).unwrap());
    let limits = BatchLimits {
        max_records: 1000,
        max_contracts: 10,
        dispute_window_secs: 0,
    };
    let charged = |id| {
        let m = Marketplace::new(c.marketplace, broker.provider());
        async move { m.agreement(id).call().await.unwrap().charged }
    };

    // The contract whose escrow cannot pay is left out; the other is settled once.
    assert_eq!(
        settle_once(&store, &ledger, content.as_ref(), limits, 1_000)
            .await
            .unwrap(),
        30
    );
    assert_eq!(charged(ids[0]).await, U256::from(3_000u64));
    assert_eq!(charged(ids[1]).await, U256::ZERO);

    // As if the broker stopped after the chain settled the batch but before recording it.
    sqlx::query("UPDATE settlement_batches SET state = 'built', tx_hash = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        settle_once(&store, &ledger, content.as_ref(), limits, 1_001)
            .await
            .unwrap(),
        30
    );
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
    assert_eq!(
        settle_once(&store, &ledger, content.as_ref(), limits, 1_002)
            .await
            .unwrap(),
        0
    );
    let (waiting,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM usage_records WHERE batch_id IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(waiting, 1);
    net.chain.stop().await;
}
