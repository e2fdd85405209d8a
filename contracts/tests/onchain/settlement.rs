use alloy::primitives::{keccak256, B256, U256};
use contracts::merkle::MerkleTree;
use contracts::Marketplace;
use contracts::UsageSettlement::{self, UsageSettlementErrors as E};

use crate::common::*;

fn records(n: usize) -> Vec<B256> {
    (0..n)
        .map(|i| keccak256(format!("usage-record-{i}")))
        .collect()
}

fn batch(id: B256, root: B256, ids: Vec<B256>, amounts: Vec<U256>) -> UsageSettlement::settleCall {
    UsageSettlement::settleCall {
        batchId: id,
        merkleRoot: root,
        recordsCid: "bafkreirecords".into(),
        recordCount: 5,
        contractIds: ids,
        amounts,
    }
}

#[tokio::test]
async fn a_batch_settles_once_and_every_record_proves_against_it() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    c.open_contract(id(2), credits(100), U256::ZERO, 0).await;
    let hashes = records(5);
    let tree = MerkleTree::from_record_hashes(&hashes).unwrap();
    let call = batch(
        id(100),
        tree.root(),
        vec![id(1), id(2)],
        vec![credits(10), credits(20)],
    );
    c.broker.call(s, call.clone()).await.unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(90));
    assert_eq!(c.agreement(id(2)).await.escrow, credits(80));
    let market = Marketplace::new(c.d().contracts.marketplace, c.admin.client.provider());
    assert_eq!(
        market.earnings(c.users[0].address()).call().await.unwrap(),
        credits(30) * U256::from(99) / U256::from(100)
    );

    // Retrying the same batch pays nothing twice.
    assert_revert::<E>(c.broker.call(s, call).await, |e| {
        matches!(e, E::BatchExists(_))
    });
    assert_eq!(c.agreement(id(1)).await.escrow, credits(90));

    let settlement = UsageSettlement::new(s, c.admin.client.provider());
    let stored = settlement.batch(id(100)).call().await.unwrap();
    assert_eq!(
        (stored.merkleRoot, stored.total, stored.recordsCid.as_str()),
        (tree.root(), credits(30), "bafkreirecords")
    );
    for (i, h) in hashes.iter().enumerate() {
        let proof = tree.proof(i).unwrap();
        assert!(settlement
            .verifyRecord(id(100), *h, proof)
            .call()
            .await
            .unwrap());
    }
    let proof = tree.proof(0).unwrap();
    assert!(!settlement
        .verifyRecord(id(100), keccak256("forged"), proof.clone())
        .call()
        .await
        .unwrap());
    assert!(settlement
        .verifyRecord(id(101), hashes[0], proof)
        .call()
        .await
        .is_err());
}

#[tokio::test]
async fn a_batch_applies_whole_or_not_at_all() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    c.open_contract(id(2), credits(5), U256::ZERO, 0).await;
    let root = MerkleTree::from_record_hashes(&records(3)).unwrap().root();
    // The second contract cannot pay: the first is not charged either.
    let result = c
        .broker
        .call(
            s,
            batch(
                id(200),
                root,
                vec![id(1), id(2)],
                vec![credits(10), credits(20)],
            ),
        )
        .await;
    let err = result.expect_err("insufficient escrow reverts");
    let decoded = err.decode_revert::<Marketplace::MarketplaceErrors>();
    assert!(
        matches!(
            decoded,
            Some(Marketplace::MarketplaceErrors::InsufficientEscrow(_))
        ),
        "{err}"
    );
    assert_eq!(c.agreement(id(1)).await.escrow, credits(100));
    assert_eq!(c.agreement(id(2)).await.escrow, credits(5));

    // Malformed batches and strangers are refused.
    assert_revert::<E>(
        c.broker
            .call(s, batch(id(201), root, vec![id(1)], vec![]))
            .await,
        |e| matches!(e, E::InvalidBatch(_)),
    );
    assert_revert::<E>(
        c.broker
            .call(s, batch(id(201), B256::ZERO, vec![id(1)], vec![credits(1)]))
            .await,
        |e| matches!(e, E::InvalidBatch(_)),
    );
    assert_revert::<E>(
        c.users[0]
            .call(s, batch(id(201), root, vec![id(1)], vec![credits(1)]))
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    // Unknown contract inside a batch.
    assert!(c
        .broker
        .call(s, batch(id(202), root, vec![id(9)], vec![credits(1)]))
        .await
        .is_err());
    assert_eq!(c.agreement(id(1)).await.escrow, credits(100));
}
