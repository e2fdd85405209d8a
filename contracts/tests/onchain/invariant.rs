//! Token conservation over random sequences of every state-changing operation, honest and
//! malicious (charges above the signed cap, totals above the leaves, replayed batches,
//! challenges true and false, releases early and late): Σ balances (escrow held by the
//! marketplace included) = minted − burned; the marketplace holds exactly escrow + held periods +
//! locked usage + provider earnings + fees; and no contract is ever charged usage beyond what
//! its consumer signed (its window's charges within its cap, none on a reserved plan).

use alloy::primitives::{Address, Bytes, B256, U256};
use contracts::{CreditToken, Marketplace, UsageSettlement};
use ledger::accounts::dev_signer;
use rand::{Rng, SeedableRng};

use crate::common::*;

struct Ledger {
    minted: U256,
    burned: U256,
    contracts: Vec<B256>,
    /// Settled batches with the amounts sent for each contract.
    batches: Vec<TestBatch>,
}

async fn check(c: &Chain, l: &Ledger, step: usize, seed: u64) {
    let p = c.admin.client.provider();
    let d = c.d();
    let token = CreditToken::new(d.contracts.credit_token, p);
    let market = Marketplace::new(d.contracts.marketplace, p);
    let supply = token.totalSupply().call().await.unwrap();
    let mut holders: Vec<Address> = (0..20).map(|i| dev_signer(i).unwrap().address()).collect();
    holders.push(d.contracts.marketplace);
    let mut sum = U256::ZERO;
    for h in holders {
        sum += token.balanceOf(h).call().await.unwrap();
    }
    let ctx = format!("seed {seed} step {step}");
    assert_eq!(sum, supply, "{ctx}: balances vs supply");
    assert_eq!(
        supply,
        l.minted - l.burned,
        "{ctx}: supply vs minted - burned"
    );
    let escrow = market.totalEscrow().call().await.unwrap();
    let earnings = market.totalEarnings().call().await.unwrap();
    let fees = market.feesAccrued().call().await.unwrap();
    let held = market.totalHeld().call().await.unwrap();
    let locked = market.totalLocked().call().await.unwrap();
    assert_eq!(
        token
            .balanceOf(d.contracts.marketplace)
            .call()
            .await
            .unwrap(),
        escrow + held + locked + earnings + fees,
        "{ctx}: marketplace solvency"
    );
    let (mut per_contract, mut held_per_contract) = (U256::ZERO, U256::ZERO);
    for id in &l.contracts {
        let a = c.agreement(*id).await;
        per_contract += a.escrow;
        held_per_contract += a.held;
        assert!(
            a.windowCharged <= a.usageCap,
            "{ctx}: {id} charged {} in a window capped at {}",
            a.windowCharged,
            a.usageCap
        );
    }
    // No usage charge on a contract that signed no usage bound.
    if let Some(b) = l.batches.last() {
        for (cid, _) in &b.groups {
            if c.agreement(*cid).await.capWindow == 0 {
                let u = market.usageCharge(b.id, *cid).call().await.unwrap();
                assert_eq!(u.charged, 0, "{ctx}: usage charged to reserved {cid}");
            }
        }
    }
    assert_eq!(per_contract, escrow, "{ctx}: escrow per contract");
    assert_eq!(held_per_contract, held, "{ctx}: held per contract");
}

#[tokio::test]
async fn tokens_are_conserved_over_random_operation_sequences() {
    let c = Chain::start().await;
    let d = c.d().clone();
    let (t, m, s) = (
        d.contracts.credit_token,
        d.contracts.marketplace,
        d.contracts.usage_settlement,
    );
    let seed: u64 = std::env::var("MERCATO_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let providers = [0usize, 4];
    let consumers = [1usize, 2, 3];
    for &p in &providers {
        c.register(&c.users[p], &format!("did:key:p{p}"), 1).await;
    }
    for &k in &consumers {
        c.register(&c.users[k], &format!("did:key:c{k}"), 2).await;
        c.approve(&c.users[k], U256::MAX).await;
    }
    let token = CreditToken::new(t, c.admin.client.provider());
    let mut l = Ledger {
        minted: token.totalSupply().call().await.unwrap(),
        burned: U256::ZERO,
        contracts: vec![],
        batches: vec![],
    };
    let mut next_id = 0u64;
    let mut kinds = [0usize; 12];

    for step in 0..120 {
        let mut live = Vec::new();
        for cid in &l.contracts {
            if c.agreement(*cid).await.status != 4 {
                live.push(*cid);
            }
        }
        let kind = if live.len() < 3 {
            0
        } else {
            rng.gen_range(0..12)
        };
        let pick = |rng: &mut rand::rngs::StdRng, l: &Ledger| {
            l.contracts[rng.gen_range(0..l.contracts.len())]
        };
        let ok = match kind {
            0 => {
                next_id += 1;
                let cid = id(next_id);
                let (pi, ki) = (
                    providers[rng.gen_range(0..2)],
                    consumers[rng.gen_range(0..3)],
                );
                let deposit = credits(rng.gen_range(1..60));
                let (price, period) = if rng.gen_bool(0.4) {
                    (credits(rng.gen_range(1..20)), 3600)
                } else {
                    (U256::ZERO, 0)
                };
                // Pay-per-use: a cap of a fraction of the deposit per 10 minutes.
                let bound = if period == 0 {
                    Bound {
                        prices: test_prices(),
                        cap: deposit / U256::from(rng.gen_range(1u64..4)),
                        window: 600,
                    }
                } else {
                    Bound::none()
                };
                let (req, sig) = c
                    .open_request_bounded(
                        cid,
                        &c.users[ki],
                        &c.users[pi],
                        deposit,
                        price,
                        period,
                        bound,
                    )
                    .await;
                let r = c
                    .broker
                    .call(
                        m,
                        Marketplace::openCall {
                            req,
                            consumerSig: sig,
                            signaturesCid: "bafkreisignatures".into(),
                        },
                    )
                    .await;
                if r.is_ok() {
                    l.contracts.push(cid);
                }
                r.is_ok()
            }
            1 => {
                let cid = pick(&mut rng, &l);
                let a = c.agreement(cid).await;
                let who = c.users.iter().find(|u| u.address() == a.consumer).unwrap();
                let call = Marketplace::topUpCall {
                    contractId: cid,
                    amount: credits(rng.gen_range(1..20)),
                    deadline: U256::ZERO,
                    consumerSig: Bytes::new(),
                };
                who.call(m, call).await.is_ok()
            }
            2 => {
                let n = rng.gen_range(1..=live.len().min(4));
                let mut ids = Vec::new();
                let mut amounts = Vec::new();
                for _ in 0..n {
                    // Mostly contracts that can still be charged, sometimes any.
                    let cid = if rng.gen_bool(0.9) {
                        live[rng.gen_range(0..live.len())]
                    } else {
                        pick(&mut rng, &l)
                    };
                    if ids.contains(&cid) {
                        continue;
                    }
                    let escrow = c.agreement(cid).await.escrow;
                    // Sometimes more than the escrow or the cap: that contract is skipped.
                    let cap = escrow.saturating_add(U256::from(2));
                    let amount = U256::from(
                        rng.gen_range(1..=cap.to::<u128>().clamp(1, u64::MAX as u128) as u64),
                    );
                    ids.push(cid);
                    amounts.push(amount);
                }
                if ids.is_empty() {
                    continue;
                }
                // Leaves that sum to the amounts, or (a dishonest settler) to less.
                let groups = ids
                    .iter()
                    .zip(&amounts)
                    .map(|(cid, a)| {
                        let leaf = if rng.gen_bool(0.8) {
                            *a
                        } else {
                            *a / U256::from(2)
                        };
                        (*cid, vec![(alloy::primitives::keccak256(cid), leaf)])
                    })
                    .collect();
                // Sometimes a replay of an earlier batch: it must revert.
                let replay = !l.batches.is_empty() && rng.gen_bool(0.1);
                let batch_id = if replay {
                    l.batches[rng.gen_range(0..l.batches.len())].id
                } else {
                    next_id += 1;
                    id(1_000_000 + next_id)
                };
                let b = TestBatch::new(batch_id, groups);
                let r = c.broker.call(s, b.call_with(amounts)).await;
                assert!(
                    !(replay && r.is_ok()),
                    "seed {seed}: a replayed batch settled"
                );
                if r.is_ok() {
                    l.batches.push(b);
                }
                r.is_ok()
            }
            3 => {
                if rng.gen_bool(0.5) {
                    c.advance(3600).await;
                }
                c.users[5]
                    .call(
                        m,
                        Marketplace::chargePeriodCall {
                            contractId: pick(&mut rng, &l),
                        },
                    )
                    .await
                    .is_ok()
            }
            4 => {
                let cid = pick(&mut rng, &l);
                if rng.gen_bool(0.5) {
                    c.broker
                        .call(
                            m,
                            Marketplace::suspendCall {
                                contractId: cid,
                                reason: bytes32("random"),
                            },
                        )
                        .await
                        .is_ok()
                } else {
                    c.broker
                        .call(m, Marketplace::resumeCall { contractId: cid })
                        .await
                        .is_ok()
                }
            }
            5 => {
                let cid = pick(&mut rng, &l);
                if rng.gen_bool(0.5) {
                    let a = c.agreement(cid).await;
                    let who = c.users.iter().find(|u| u.address() == a.provider).unwrap();
                    who.call(m, Marketplace::requestCloseCall { contractId: cid })
                        .await
                        .is_ok()
                } else {
                    c.broker
                        .call(m, Marketplace::closeCall { contractId: cid })
                        .await
                        .is_ok()
                }
            }
            6 => {
                let p = &c.users[providers[rng.gen_range(0..2)]];
                let earned = Marketplace::new(m, c.admin.client.provider())
                    .earnings(p.address())
                    .call()
                    .await
                    .unwrap();
                let amount = if earned.is_zero() {
                    U256::from(1)
                } else {
                    earned / U256::from(rng.gen_range(1u64..4))
                };
                p.call(
                    m,
                    Marketplace::withdrawCall {
                        to: p.address(),
                        amount,
                    },
                )
                .await
                .is_ok()
            }
            7 => {
                let fees = Marketplace::new(m, c.admin.client.provider())
                    .feesAccrued()
                    .call()
                    .await
                    .unwrap();
                let amount = fees.max(U256::from(1));
                c.admin
                    .call(
                        m,
                        Marketplace::withdrawFeesCall {
                            to: c.users[5].address(),
                            amount,
                        },
                    )
                    .await
                    .is_ok()
            }
            8 => {
                let amount = credits(rng.gen_range(1..100));
                if rng.gen_bool(0.5) {
                    let r = c
                        .admin
                        .call(
                            t,
                            CreditToken::mintCall {
                                to: c.users[rng.gen_range(0..6)].address(),
                                amount,
                            },
                        )
                        .await;
                    if r.is_ok() {
                        l.minted += amount;
                    }
                    r.is_ok()
                } else {
                    let r = c.users[rng.gen_range(0..6)]
                        .call(t, CreditToken::burnCall { value: amount })
                        .await;
                    if r.is_ok() {
                        l.burned += amount;
                    }
                    r.is_ok()
                }
            }
            10 if !l.batches.is_empty() => {
                // Release a batch's charges, early or late.
                if rng.gen_bool(0.5) {
                    c.advance(60).await;
                }
                let b = &l.batches[rng.gen_range(0..l.batches.len())];
                let market = Marketplace::new(m, c.admin.client.provider());
                let mut contracts = Vec::new();
                for (cid, _) in &b.groups {
                    if market.usageCharge(b.id, *cid).call().await.unwrap().charged != 0 {
                        contracts.push(*cid);
                    }
                }
                c.users[5]
                    .call(
                        m,
                        Marketplace::releaseCall {
                            r#ref: b.id,
                            contractIds: contracts,
                        },
                    )
                    .await
                    .is_ok()
            }
            11 if !l.batches.is_empty() => {
                // A challenge of a total: true when the settler charged above the leaves.
                let b = &l.batches[rng.gen_range(0..l.batches.len())];
                // Mostly a contract charged above its leaves, sometimes any (a false claim).
                let market = Marketplace::new(m, c.admin.client.provider());
                let mut ci = rng.gen_range(0..b.groups.len());
                if rng.gen_bool(0.8) {
                    for (i, (cid, leaves)) in b.groups.iter().enumerate() {
                        let u = market.usageCharge(b.id, *cid).call().await.unwrap();
                        if U256::from(u.charged) > leaves[0].1 {
                            ci = i;
                        }
                    }
                }
                let (cid, leaves) = &b.groups[ci];
                let (rp, cp) = b.paths(ci, 0);
                c.users[rng.gen_range(0..6)]
                    .call(
                        s,
                        UsageSettlement::challengeTotalCall {
                            batchId: b.id,
                            contractId: *cid,
                            recordHash: leaves[0].0,
                            amount: leaves[0].1,
                            recordPath: rp,
                            contractPath: cp,
                        },
                    )
                    .await
                    .is_ok()
            }
            _ => {
                let (from, to) = (rng.gen_range(0..6), rng.gen_range(0..6));
                c.users[from]
                    .call(
                        t,
                        CreditToken::transferCall {
                            to: c.users[to].address(),
                            value: credits(rng.gen_range(1..50)),
                        },
                    )
                    .await
                    .is_ok()
            }
        };
        if ok {
            kinds[kind] += 1;
        }
        check(&c, &l, step, seed).await;
    }
    // The sequence really exercised escrow in and out.
    assert!(
        kinds[0] > 0 && kinds[2] + kinds[3] > 0 && kinds[10] + kinds[11] > 0,
        "seed {seed}: {kinds:?}"
    );
}
