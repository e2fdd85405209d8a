//! Settlement nobody has to trust: each leaf commits to its contract, record and amount; a
//! contract is never charged beyond the consumer's signed cap; a contract that cannot be charged
//! is skipped without blocking the batch; charges stay locked for the challenge window, within
//! which anyone proves an overcharge (a total above the leaves, a record priced above the signed
//! prices or belonging to another contract, a record charged twice) and the difference goes back.

use alloy::primitives::{keccak256, B256, U256};
use contracts::usage::{price_ceiling, record_hash, record_id_hash};
use contracts::Marketplace::{self, MarketplaceErrors as ME};
use contracts::UsageSettlement::{
    self, LeafProof, Prices, UsageRecord, UsageSettlementErrors as E,
};

use crate::common::*;

/// An hour of one core and 1 GiB, 1 GB of traffic: 3 credits at `test_prices()`.
fn record(name: &str) -> UsageRecord {
    UsageRecord {
        recordId: record_id_hash(name),
        bodyHash: keccak256(name),
        from: 1_000,
        to: 4_600,
        connectionMillis: 3_600_000,
        bytesIn: 600_000_000,
        bytesOut: 400_000_000,
        cpuMillis: 3_600_000,
        maxMemoryKib: 1024 * 1024,
        gpuMillis: 0,
        dataAccesses: 0,
    }
}

fn prices() -> Prices {
    (&test_prices()).into()
}

fn leaf(b: &TestBatch, contract: usize, record: usize) -> LeafProof {
    let (record_path, contract_path) = b.paths(contract, record);
    LeafProof {
        batchId: b.id,
        amount: b.groups[contract].1[record].1,
        recordPath: record_path,
        contractPath: contract_path,
    }
}

fn settlement(
    c: &Chain,
) -> UsageSettlement::UsageSettlementInstance<&alloy::providers::DynProvider> {
    UsageSettlement::new(c.d().contracts.usage_settlement, c.admin.client.provider())
}

fn market(c: &Chain) -> Marketplace::MarketplaceInstance<&alloy::providers::DynProvider> {
    Marketplace::new(c.d().contracts.marketplace, c.admin.client.provider())
}

#[tokio::test]
async fn a_batch_settles_once_and_every_leaf_proves_under_its_contract() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    c.open_contract(id(2), credits(100), U256::ZERO, 0).await;
    let leaves = |n: u64, a: u64| -> Vec<(B256, U256)> {
        (0..n)
            .map(|i| (keccak256(format!("{a}-{i}")), credits(a)))
            .collect()
    };
    let b = TestBatch::new(id(100), vec![(id(1), leaves(3, 2)), (id(2), leaves(2, 10))]);
    c.broker.call(s, b.call()).await.unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(94));
    assert_eq!(c.agreement(id(2)).await.escrow, credits(80));
    // Locked for the challenge window: nothing earned yet.
    let m = market(&c);
    assert_eq!(
        m.earnings(c.users[0].address()).call().await.unwrap(),
        U256::ZERO
    );
    assert_eq!(m.totalLocked().call().await.unwrap(), credits(26));

    // The same batch again pays nothing twice.
    assert_revert::<E>(c.broker.call(s, b.call()).await, |e| {
        matches!(e, E::BatchExists(_))
    });
    assert_eq!(c.agreement(id(1)).await.escrow, credits(94));

    let st = settlement(&c);
    let stored = st.batch(id(100)).call().await.unwrap();
    assert_eq!(
        (stored.merkleRoot, stored.total, stored.recordCount),
        (b.tree.root(), credits(26), 5)
    );
    for (ci, (contract, ls)) in b.groups.iter().enumerate() {
        for (ri, (h, a)) in ls.iter().enumerate() {
            let (rp, cp) = b.paths(ci, ri);
            let r = st
                .verifyRecord(id(100), *contract, *h, *a, rp, cp)
                .call()
                .await
                .unwrap();
            assert!(r.ok);
            assert_eq!(r.contractSum, credits(if ci == 0 { 6 } else { 20 }));
        }
    }
    // A leaf with another amount, or claimed under another contract, does not prove.
    let (rp, cp) = b.paths(0, 0);
    let (h, a) = b.groups[0].1[0];
    let wrong_amount = st
        .verifyRecord(id(100), id(1), h, a + U256::from(1), rp.clone(), cp.clone())
        .call()
        .await
        .unwrap();
    assert!(!wrong_amount.ok);
    let wrong_contract = st
        .verifyRecord(id(100), id(2), h, a, rp.clone(), cp.clone())
        .call()
        .await
        .unwrap();
    assert!(!wrong_contract.ok);
    assert!(st
        .verifyRecord(id(101), id(1), h, a, rp, cp)
        .call()
        .await
        .is_err());
}

#[tokio::test]
async fn charges_stay_locked_for_the_challenge_window_then_anyone_releases_them() {
    let c = Chain::start().await;
    let (m, s) = (
        c.d().contracts.marketplace,
        c.d().contracts.usage_settlement,
    );
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    let b = TestBatch::simple(id(100), &[id(1)], &[credits(10)]);
    c.broker.call(s, b.call()).await.unwrap();
    let provider = &c.users[0];
    let release = Marketplace::releaseCall {
        r#ref: id(100),
        contractIds: vec![id(1)],
    };
    // Inside the window the provider has nothing to withdraw and nobody can release.
    assert_revert::<ME>(
        provider
            .call(
                m,
                Marketplace::withdrawCall {
                    to: provider.address(),
                    amount: U256::from(1),
                },
            )
            .await,
        |e| matches!(e, ME::InsufficientEarnings(_)),
    );
    assert_revert::<ME>(c.users[5].call(m, release.clone()).await, |e| {
        matches!(e, ME::ChallengeWindowOpen(_))
    });
    let window = c.agreement(id(1)).await.challengeWindow;
    assert_eq!(window, 60, "the development chain's window");
    c.advance(window).await;
    c.users[5].call(m, release.clone()).await.unwrap();
    let earned = credits(10) * U256::from(99) / U256::from(100);
    let mk = market(&c);
    assert_eq!(
        mk.earnings(provider.address()).call().await.unwrap(),
        earned
    );
    assert_eq!(mk.totalLocked().call().await.unwrap(), U256::ZERO);
    // Released once: a second release earns nothing more.
    c.users[5].call(m, release).await.unwrap();
    assert_eq!(
        mk.earnings(provider.address()).call().await.unwrap(),
        earned
    );
    provider
        .call(
            m,
            Marketplace::withdrawCall {
                to: provider.address(),
                amount: earned,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn no_charge_goes_beyond_what_the_consumer_signed() {
    let c = Chain::start().await;
    let (m, s) = (
        c.d().contracts.marketplace,
        c.d().contracts.usage_settlement,
    );
    // At most 10 credits of usage per hour, from a deposit of 100.
    c.open_bounded(
        id(1),
        credits(100),
        Bound {
            prices: test_prices(),
            cap: credits(10),
            window: 3600,
        },
    )
    .await;
    // A reserved plan takes no usage charge at all.
    c.open_contract(id(2), credits(100), credits(10), 3600)
        .await;
    let settle = |n: u64, amounts: &[(B256, U256)]| {
        let (ids, amounts): (Vec<B256>, Vec<U256>) = amounts.iter().copied().unzip();
        TestBatch::simple(id(100 + n), &ids, &amounts).call()
    };
    let skipped = contracts::usage::skipped_charges;
    let r = c
        .broker
        .client
        .send_call(s, &settle(1, &[(id(1), credits(11)), (id(2), credits(1))]))
        .await
        .unwrap();
    assert_eq!(skipped(&r), vec![id(1), id(2)]);
    assert_eq!(c.agreement(id(1)).await.escrow, credits(100));
    assert_eq!(
        c.agreement(id(2)).await.escrow,
        credits(90),
        "only its first period"
    );
    let r = c
        .broker
        .client
        .send_call(s, &settle(2, &[(id(1), credits(6))]))
        .await
        .unwrap();
    assert!(skipped(&r).is_empty());
    let r = c
        .broker
        .client
        .send_call(s, &settle(3, &[(id(1), credits(5))]))
        .await
        .unwrap();
    assert_eq!(skipped(&r), vec![id(1)], "6 + 5 is above the hour's 10");
    c.advance(3600).await;
    let r = c
        .broker
        .client
        .send_call(s, &settle(4, &[(id(1), credits(5))]))
        .await
        .unwrap();
    assert!(skipped(&r).is_empty(), "a new window");
    assert_eq!(c.agreement(id(1)).await.escrow, credits(89));
    // Nobody but the settlement contract charges: not the broker, not the admin.
    for who in [&c.broker, &c.admin] {
        assert_revert::<ME>(
            who.call(
                m,
                Marketplace::chargeCall {
                    contractId: id(1),
                    amount: credits(1),
                    r#ref: id(999),
                },
            )
            .await,
            |e| matches!(e, ME::NotSettlement(_)),
        );
    }
}

#[tokio::test]
async fn a_contract_that_cannot_pay_never_blocks_the_batch() {
    let c = Chain::start().await;
    let (m, s) = (
        c.d().contracts.marketplace,
        c.d().contracts.usage_settlement,
    );
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    c.open_contract(id(2), credits(5), U256::ZERO, 0).await;
    c.open_contract(id(3), credits(50), U256::ZERO, 0).await;
    c.open_contract(id(4), credits(50), U256::ZERO, 0).await;
    c.broker
        .call(m, Marketplace::closeCall { contractId: id(3) })
        .await
        .unwrap();
    c.broker
        .call(
            m,
            Marketplace::suspendCall {
                contractId: id(4),
                reason: bytes32("test"),
            },
        )
        .await
        .unwrap();
    let b = TestBatch::simple(
        id(100),
        &[id(1), id(2), id(3), id(4)],
        &[credits(10), credits(20), credits(1), credits(3)],
    );
    let r = c.broker.client.send_call(s, &b.call()).await.unwrap();
    let skipped = contracts::usage::skipped_charges(&r);
    assert_eq!(skipped, vec![id(2), id(3)], "short escrow and closed");
    assert_eq!(c.agreement(id(1)).await.escrow, credits(90));
    assert_eq!(c.agreement(id(2)).await.escrow, credits(5));
    // A suspended contract still pays for usage it had.
    assert_eq!(c.agreement(id(4)).await.escrow, credits(47));
    let stored = settlement(&c).batch(id(100)).call().await.unwrap();
    assert_eq!(stored.total, credits(13));
    // Malformed batches and strangers are refused.
    let root = b.tree.root();
    let call = |batch: B256, root: B256, amounts: Vec<U256>| UsageSettlement::settleCall {
        batchId: batch,
        merkleRoot: root,
        recordsCid: "bafkreibatch".into(),
        recordCount: 1,
        contractIds: vec![id(1)],
        amounts,
    };
    assert_revert::<E>(c.broker.call(s, call(id(201), root, vec![])).await, |e| {
        matches!(e, E::InvalidBatch(_))
    });
    assert_revert::<E>(
        c.broker
            .call(s, call(id(201), B256::ZERO, vec![credits(1)]))
            .await,
        |e| matches!(e, E::InvalidBatch(_)),
    );
    assert_revert::<E>(
        c.users[0]
            .call(s, call(id(201), root, vec![credits(1)]))
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
}

#[tokio::test]
async fn a_total_above_the_leaves_is_proven_and_given_back() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    let b = TestBatch::new(
        id(100),
        vec![(
            id(1),
            vec![(keccak256("a"), credits(3)), (keccak256("b"), credits(4))],
        )],
    );
    // The settler charges 20 for leaves that sum to 7.
    c.broker
        .call(s, b.call_with(vec![credits(20)]))
        .await
        .unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(80));
    let (rp, cp) = b.paths(0, 1);
    let challenge = UsageSettlement::challengeTotalCall {
        batchId: id(100),
        contractId: id(1),
        recordHash: keccak256("b"),
        amount: credits(4),
        recordPath: rp.clone(),
        contractPath: cp.clone(),
    };
    // Anyone may prove it for the consumer.
    c.users[5].call(s, challenge.clone()).await.unwrap();
    let a = c.agreement(id(1)).await;
    assert_eq!((a.escrow, U256::from(a.charged)), (credits(93), credits(7)));
    assert_revert::<E>(c.users[5].call(s, challenge).await, |e| {
        matches!(e, E::AlreadyChallenged(_))
    });
    // An altered leaf proves nothing.
    assert_revert::<E>(
        c.users[5]
            .call(
                s,
                UsageSettlement::challengeTotalCall {
                    batchId: id(100),
                    contractId: id(1),
                    recordHash: keccak256("b"),
                    amount: credits(1),
                    recordPath: rp,
                    contractPath: cp,
                },
            )
            .await,
        |e| matches!(e, E::NotInBatch(_)),
    );
    // What is left locked is earned after the window: 7, not 20.
    c.advance(60).await;
    c.users[5]
        .call(
            c.d().contracts.marketplace,
            Marketplace::releaseCall {
                r#ref: id(100),
                contractIds: vec![id(1)],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        market(&c)
            .earnings(c.users[0].address())
            .call()
            .await
            .unwrap(),
        credits(7) * U256::from(99) / U256::from(100)
    );
}

#[tokio::test]
async fn a_record_priced_above_the_signed_prices_or_another_contracts_is_refunded() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    c.open_contract(id(2), credits(100), U256::ZERO, 0).await;
    let honest = record("honest");
    let dear = record("dear");
    let foreign = record("foreign");
    let ceiling = price_ceiling(&honest, &test_prices());
    assert_eq!(ceiling, credits(3));
    let b = TestBatch::new(
        id(100),
        vec![(
            id(1),
            vec![
                (record_hash(id(1), &honest), credits(3)),
                (record_hash(id(1), &dear), credits(5)),
                // Contract 2's record, charged to contract 1.
                (record_hash(id(2), &foreign), credits(2)),
            ],
        )],
    );
    c.broker.call(s, b.call()).await.unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(90));
    let challenge =
        |r: &UsageRecord, of: B256, i: usize, p: Prices| UsageSettlement::challengeRecordCall {
            contractId: id(1),
            recordContract: of,
            r: r.clone(),
            leaf: leaf(&b, 0, i),
            prices: p,
        };
    // The honest leaf is what the prices give.
    assert_revert::<E>(
        c.users[1]
            .call(s, challenge(&honest, id(1), 0, prices()))
            .await,
        |e| matches!(e, E::NoOvercharge(_)),
    );
    // Prices other than the signed ones prove nothing.
    let mut cheap = prices();
    cheap.cpuCoreHour = U256::ZERO;
    assert_revert::<E>(
        c.users[1].call(s, challenge(&dear, id(1), 1, cheap)).await,
        |e| matches!(e, E::WrongPrices(_)),
    );
    // A record altered after settlement (more usage than signed) is not in the batch.
    let mut altered = dear.clone();
    altered.cpuMillis *= 3;
    assert_revert::<E>(
        c.users[1]
            .call(s, challenge(&altered, id(1), 1, prices()))
            .await,
        |e| matches!(e, E::NotInBatch(_)),
    );
    c.users[1]
        .call(s, challenge(&dear, id(1), 1, prices()))
        .await
        .unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(92), "5 - 3 back");
    assert_revert::<E>(
        c.users[1]
            .call(s, challenge(&dear, id(1), 1, prices()))
            .await,
        |e| matches!(e, E::AlreadyChallenged(_)),
    );
    // Another contract's record is refunded whole.
    c.users[1]
        .call(s, challenge(&foreign, id(2), 2, prices()))
        .await
        .unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(94));
    // After the window, a proof comes too late.
    let late = TestBatch::new(
        id(101),
        vec![(id(1), vec![(record_hash(id(1), &dear), credits(5))])],
    );
    c.broker.call(s, late.call()).await.unwrap();
    c.advance(60).await;
    let r = c.users[1]
        .call(
            s,
            UsageSettlement::challengeRecordCall {
                contractId: id(1),
                recordContract: id(1),
                r: dear.clone(),
                leaf: leaf(&late, 0, 0),
                prices: prices(),
            },
        )
        .await;
    assert_revert::<ME>(r, |e| matches!(e, ME::ChallengeWindowOver(_)));
}

#[tokio::test]
async fn a_record_charged_twice_is_refunded_once_and_the_original_stands() {
    let c = Chain::start().await;
    let s = c.d().contracts.usage_settlement;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    let r = record("r");
    let h = record_hash(id(1), &r);
    // The record in one batch, then replayed in a batch of its own.
    let first = TestBatch::new(
        id(100),
        vec![(id(1), vec![(h, credits(3)), (keccak256("x"), credits(1))])],
    );
    let replay = TestBatch::new(id(101), vec![(id(1), vec![(h, credits(3))])]);
    c.broker.call(s, first.call()).await.unwrap();
    c.broker.call(s, replay.call()).await.unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(93));
    let dup = |orig: &TestBatch, o: usize, twice: &TestBatch, t: usize| {
        UsageSettlement::challengeDuplicateCall {
            contractId: id(1),
            original: r.clone(),
            originalLeaf: leaf(orig, 0, o),
            duplicate: r.clone(),
            duplicateLeaf: leaf(twice, 0, t),
        }
    };
    // A leaf is not its own duplicate.
    assert_revert::<E>(c.users[1].call(s, dup(&first, 0, &first, 0)).await, |e| {
        matches!(e, E::NotADuplicate(_))
    });
    c.users[1]
        .call(s, dup(&first, 0, &replay, 0))
        .await
        .unwrap();
    assert_eq!(c.agreement(id(1)).await.escrow, credits(96));
    // Neither again, nor the other way round: the original stands.
    assert_revert::<E>(c.users[1].call(s, dup(&first, 0, &replay, 0)).await, |e| {
        matches!(e, E::AlreadyChallenged(_))
    });
    assert_revert::<E>(c.users[1].call(s, dup(&replay, 0, &first, 0)).await, |e| {
        matches!(e, E::AlreadyChallenged(_))
    });
    assert_eq!(c.agreement(id(1)).await.escrow, credits(96));
}
