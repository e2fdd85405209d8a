use alloy::primitives::{Bytes, U256};
use alloy::signers::SignerSync;
use contracts::eip712;
use contracts::Marketplace::{self, MarketplaceErrors as E};

use crate::common::*;

const ACTIVE: u8 = 1;
const SUSPENDED: u8 = 2;
const CLOSING: u8 = 3;
const CLOSED: u8 = 4;

#[tokio::test]
async fn opening_moves_the_signed_deposit_into_escrow() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let consumer = c.users[1].address();
    let before = c.balance(consumer).await;
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    let a = c.agreement(id(1)).await;
    assert_eq!(a.status, ACTIVE);
    assert_eq!(a.escrow, credits(100));
    assert_eq!(a.consumer, consumer);
    assert_eq!(a.termsCid, "bafkreiterms");
    assert_eq!(c.balance(consumer).await, before - credits(100));
    assert_eq!(c.balance(m).await, credits(100));
    let market = Marketplace::new(m, c.admin.client.provider());
    assert_eq!(market.totalEscrow().call().await.unwrap(), credits(100));
}

#[tokio::test]
async fn opening_with_a_permit_needs_no_prior_approval() {
    let c = Chain::start().await;
    c.ensure_registered().await;
    let (provider, consumer) = (&c.users[0], &c.users[1]);
    let t = c.d().contracts.credit_token;
    let m = c.d().contracts.marketplace;
    let (req, sig) = c
        .open_request(id(2), consumer, provider, credits(50), U256::ZERO, 0)
        .await;
    let permit_deadline = U256::from(c.now().await + 600);
    let permit = eip712::Permit {
        owner: consumer.address(),
        spender: m,
        value: credits(50),
        nonce: U256::ZERO,
        deadline: permit_deadline,
    };
    let ps = consumer
        .signer
        .sign_hash_sync(&eip712::digest(
            &permit,
            &eip712::token_domain(c.chain_id(), t),
        ))
        .unwrap();
    c.broker
        .call(
            m,
            Marketplace::openWithPermitCall {
                req,
                consumerSig: sig,
                signaturesCid: "bafkreisignatures".into(),
                permitDeadline: permit_deadline,
                v: 27 + ps.v() as u8,
                r: ps.r().into(),
                s: ps.s().into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.agreement(id(2)).await.escrow, credits(50));
}

#[tokio::test]
async fn opening_refuses_anything_the_consumer_did_not_sign() {
    let c = Chain::start().await;
    c.ensure_registered().await;
    let m = c.d().contracts.marketplace;
    let (provider, consumer, stranger) = (&c.users[0], &c.users[1], &c.users[2]);
    c.approve(consumer, credits(1_000)).await;
    let open = |req, sig| Marketplace::openCall {
        req,
        consumerSig: sig,
        signaturesCid: "bafkreisignatures".into(),
    };

    // Not the broker.
    let (req, sig) = c
        .open_request(id(3), consumer, provider, credits(10), U256::ZERO, 0)
        .await;
    assert_revert::<E>(
        stranger.call(m, open(req.clone(), sig.clone())).await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    // The relayer raises the deposit or swaps the provider: the signature no longer matches.
    let mut bigger = req.clone();
    bigger.deposit = credits(900);
    assert_revert::<E>(c.broker.call(m, open(bigger, sig.clone())).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    let mut swapped = req.clone();
    swapped.termsCid = "bafkreiother".into();
    assert_revert::<E>(c.broker.call(m, open(swapped, sig.clone())).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    // Garbage signature.
    assert_revert::<E>(
        c.broker
            .call(m, open(req.clone(), Bytes::from(vec![1u8; 65])))
            .await,
        |e| matches!(e, E::BadSignature(_)),
    );
    // The counterparties must be registered in their roles.
    let (r2, s2) = c
        .open_request(id(4), stranger, provider, credits(10), U256::ZERO, 0)
        .await;
    assert_revert::<E>(c.broker.call(m, open(r2, s2)).await, |e| {
        matches!(e, E::NotConsumer(_))
    });
    let (r3, s3) = c
        .open_request(id(5), consumer, stranger, credits(10), U256::ZERO, 0)
        .await;
    assert_revert::<E>(c.broker.call(m, open(r3, s3)).await, |e| {
        matches!(e, E::NotProvider(_))
    });
    // Terms that cannot be right.
    let (r4, s4) = c
        .open_request(id(6), consumer, provider, U256::ZERO, U256::ZERO, 0)
        .await;
    assert_revert::<E>(c.broker.call(m, open(r4, s4)).await, |e| {
        matches!(e, E::InvalidTerms(_))
    });
    let (r5, s5) = c
        .open_request(id(7), consumer, provider, credits(10), credits(1), 0)
        .await;
    assert_revert::<E>(c.broker.call(m, open(r5, s5)).await, |e| {
        matches!(e, E::InvalidTerms(_))
    });
    let (r6, s6) = c
        .open_request(id(8), consumer, provider, credits(1), credits(2), 60)
        .await;
    assert_revert::<E>(c.broker.call(m, open(r6, s6)).await, |e| {
        matches!(e, E::InvalidTerms(_))
    });
    // No signatures envelope named: an auditor could not check the provider's acceptance.
    let unsigned = Marketplace::openCall {
        req: req.clone(),
        consumerSig: sig.clone(),
        signaturesCid: String::new(),
    };
    assert_revert::<E>(c.broker.call(m, unsigned).await, |e| {
        matches!(e, E::InvalidTerms(_))
    });
    // Expired authorisation.
    c.advance(3601).await;
    assert_revert::<E>(c.broker.call(m, open(req, sig)).await, |e| {
        matches!(e, E::Expired(_))
    });
    // Nothing left the consumer.
    assert_eq!(c.balance(m).await, U256::ZERO);

    // Without allowance the transfer fails and nothing is opened.
    let (r7, s7) = c
        .open_request(id(9), consumer, provider, credits(5_000), U256::ZERO, 0)
        .await;
    assert!(c.broker.call(m, open(r7, s7)).await.is_err());
    assert_eq!(c.agreement(id(9)).await.status, 0);

    // The same id opens once.
    let (r8, s8) = c
        .open_request(id(10), consumer, provider, credits(10), U256::ZERO, 0)
        .await;
    c.broker
        .call(m, open(r8.clone(), s8.clone()))
        .await
        .unwrap();
    assert_revert::<E>(c.broker.call(m, open(r8, s8)).await, |e| {
        matches!(e, E::ContractExists(_))
    });
}

#[tokio::test]
async fn reserved_plans_pay_each_period_in_advance_and_suspend_when_dry() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let provider = c.users[0].address();
    // Three periods' worth; the first is paid at opening.
    c.open_contract(id(11), credits(30), credits(10), 3600)
        .await;
    let market = Marketplace::new(m, c.admin.client.provider());
    let a = c.agreement(id(11)).await;
    assert_eq!(a.escrow, credits(20));
    assert_eq!(U256::from(a.charged), credits(10));
    // The running period is held, not yet earned.
    assert_eq!(a.held, credits(10));
    assert_eq!(market.totalHeld().call().await.unwrap(), credits(10));
    assert_eq!(market.earnings(provider).call().await.unwrap(), U256::ZERO);

    let charge = || Marketplace::chargePeriodCall { contractId: id(11) };
    assert_revert::<E>(c.users[4].call(m, charge()).await, |e| {
        matches!(e, E::NotDue(_))
    });
    for (n, left) in [(1u64, 10u64), (2, 0)] {
        c.advance(3600).await;
        c.users[4].call(m, charge()).await.unwrap();
        assert_eq!(c.agreement(id(11)).await.escrow, credits(left));
        // Each period ended is earned, less the 1% fee (the default).
        assert_eq!(
            market.earnings(provider).call().await.unwrap(),
            credits(10 * n) * U256::from(99) / U256::from(100)
        );
        assert_eq!(
            market.feesAccrued().call().await.unwrap(),
            credits(10 * n) / U256::from(100)
        );
    }
    c.advance(3600).await;
    c.users[4].call(m, charge()).await.unwrap();
    let a = c.agreement(id(11)).await;
    assert_eq!(a.status, SUSPENDED);
    assert_eq!(U256::from(a.charged), credits(30));
    assert_eq!(a.held, U256::ZERO);
    assert_eq!(
        market.earnings(provider).call().await.unwrap(),
        credits(30) * U256::from(99) / U256::from(100)
    );
    // Suspended contracts are not charged periods; top-up and resume bring them back.
    assert_revert::<E>(c.users[4].call(m, charge()).await, |e| {
        matches!(e, E::WrongStatus(_))
    });
    c.approve(&c.users[1], credits(10)).await;
    c.users[1]
        .call(
            m,
            Marketplace::topUpCall {
                contractId: id(11),
                amount: credits(10),
                deadline: U256::ZERO,
                consumerSig: Bytes::new(),
            },
        )
        .await
        .unwrap();
    c.broker
        .call(m, Marketplace::resumeCall { contractId: id(11) })
        .await
        .unwrap();
    c.users[4].call(m, charge()).await.unwrap();
    assert_eq!(c.agreement(id(11)).await.escrow, U256::ZERO);
    // Pay-per-use contracts have no periods.
    c.open_contract(id(12), credits(5), U256::ZERO, 0).await;
    assert_revert::<E>(
        c.users[4]
            .call(m, Marketplace::chargePeriodCall { contractId: id(12) })
            .await,
        |e| matches!(e, E::InvalidTerms(_)),
    );
    assert_revert::<E>(
        c.users[4]
            .call(m, Marketplace::chargePeriodCall { contractId: id(99) })
            .await,
        |e| matches!(e, E::UnknownContract(_)),
    );
}

#[tokio::test]
async fn top_up_by_the_consumer_or_with_its_signature_only() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    c.open_contract(id(13), credits(10), U256::ZERO, 0).await;
    let consumer = &c.users[1];
    c.approve(consumer, credits(100)).await;
    let deadline = U256::from(c.now().await + 600);
    let domain = eip712::marketplace_domain(c.chain_id(), m);
    let message = eip712::TopUp {
        contractId: id(13),
        amount: credits(5),
        nonce: U256::ZERO,
        deadline,
    };
    let sig = consumer.sign(&message, &domain);
    let relayed = Marketplace::topUpCall {
        contractId: id(13),
        amount: credits(5),
        deadline,
        consumerSig: sig.clone(),
    };
    c.broker.call(m, relayed.clone()).await.unwrap();
    assert_eq!(c.agreement(id(13)).await.escrow, credits(15));
    // Replay: nonce spent.
    assert_revert::<E>(c.broker.call(m, relayed).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    // A relayer cannot raise the amount.
    let more = Marketplace::topUpCall {
        contractId: id(13),
        amount: credits(50),
        deadline,
        consumerSig: sig,
    };
    assert_revert::<E>(c.broker.call(m, more).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    // Zero and unknown.
    assert_revert::<E>(
        consumer
            .call(
                m,
                Marketplace::topUpCall {
                    contractId: id(13),
                    amount: U256::ZERO,
                    deadline,
                    consumerSig: Bytes::new(),
                },
            )
            .await,
        |e| matches!(e, E::ZeroAmount(_)),
    );
    assert_revert::<E>(
        consumer
            .call(
                m,
                Marketplace::topUpCall {
                    contractId: id(77),
                    amount: credits(1),
                    deadline,
                    consumerSig: Bytes::new(),
                },
            )
            .await,
        |e| matches!(e, E::UnknownContract(_)),
    );
    assert_eq!(c.agreement(id(13)).await.escrow, credits(15));
}

#[tokio::test]
async fn suspension_and_charges_are_role_checked() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    c.open_contract(id(14), credits(10), U256::ZERO, 0).await;
    let reason = bytes32("test");
    assert_revert::<E>(
        c.users[1]
            .call(
                m,
                Marketplace::suspendCall {
                    contractId: id(14),
                    reason,
                },
            )
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    // Only the settlement contract charges usage, not even the broker.
    assert_revert::<E>(
        c.broker
            .call(
                m,
                Marketplace::chargeCall {
                    contractId: id(14),
                    amount: credits(1),
                    r#ref: reason,
                },
            )
            .await,
        |e| matches!(e, E::NotSettlement(_)),
    );
    c.broker
        .call(
            m,
            Marketplace::suspendCall {
                contractId: id(14),
                reason,
            },
        )
        .await
        .unwrap();
    assert_eq!(c.agreement(id(14)).await.status, SUSPENDED);
    assert_revert::<E>(
        c.broker
            .call(
                m,
                Marketplace::suspendCall {
                    contractId: id(14),
                    reason,
                },
            )
            .await,
        |e| matches!(e, E::WrongStatus(_)),
    );
    c.broker
        .call(m, Marketplace::resumeCall { contractId: id(14) })
        .await
        .unwrap();
    assert_revert::<E>(
        c.broker
            .call(m, Marketplace::resumeCall { contractId: id(14) })
            .await,
        |e| matches!(e, E::WrongStatus(_)),
    );
    assert_eq!(c.agreement(id(14)).await.status, ACTIVE);
}

#[tokio::test]
async fn closing_refunds_what_is_left_after_a_grace_for_settlement() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let (provider, consumer, stranger) = (&c.users[0], &c.users[1], &c.users[2]);
    c.open_contract(id(15), credits(40), U256::ZERO, 0).await;
    assert_revert::<E>(
        stranger
            .call(m, Marketplace::requestCloseCall { contractId: id(15) })
            .await,
        |e| matches!(e, E::NotParty(_)),
    );
    consumer
        .call(m, Marketplace::requestCloseCall { contractId: id(15) })
        .await
        .unwrap();
    assert_eq!(c.agreement(id(15)).await.status, CLOSING);
    assert_revert::<E>(
        stranger
            .call(m, Marketplace::closeCall { contractId: id(15) })
            .await,
        |e| matches!(e, E::NotClosable(_)),
    );
    c.advance(24 * 3600).await;
    let before = c.balance(consumer.address()).await;
    stranger
        .call(m, Marketplace::closeCall { contractId: id(15) })
        .await
        .unwrap();
    assert_eq!(c.agreement(id(15)).await.status, CLOSED);
    assert_eq!(c.balance(consumer.address()).await, before + credits(40));
    assert_revert::<E>(
        c.broker
            .call(m, Marketplace::closeCall { contractId: id(15) })
            .await,
        |e| matches!(e, E::WrongStatus(_)),
    );

    // The broker closes at once; a party cannot skip the grace period.
    c.open_contract(id(16), credits(20), U256::ZERO, 0).await;
    assert_revert::<E>(
        provider
            .call(m, Marketplace::closeCall { contractId: id(16) })
            .await,
        |e| matches!(e, E::WrongStatus(_)),
    );
    let before = c.balance(consumer.address()).await;
    c.broker
        .call(m, Marketplace::closeCall { contractId: id(16) })
        .await
        .unwrap();
    assert_eq!(c.balance(consumer.address()).await, before + credits(20));
    assert_eq!(c.balance(m).await, U256::ZERO);
}

#[tokio::test]
async fn providers_withdraw_earnings_and_admins_withdraw_fees() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let provider = &c.users[0];
    c.open_contract(id(17), credits(100), credits(100), 3600)
        .await;
    // The period is earned when it ends.
    c.advance(3600).await;
    c.users[4]
        .call(m, Marketplace::chargePeriodCall { contractId: id(17) })
        .await
        .unwrap();
    let market = Marketplace::new(m, c.admin.client.provider());
    let earned = market.earnings(provider.address()).call().await.unwrap();
    assert_eq!(earned, credits(99));
    assert_revert::<E>(
        provider
            .call(
                m,
                Marketplace::withdrawCall {
                    to: provider.address(),
                    amount: earned + U256::from(1),
                },
            )
            .await,
        |e| matches!(e, E::InsufficientEarnings(_)),
    );
    assert_revert::<E>(
        provider
            .call(
                m,
                Marketplace::withdrawCall {
                    to: provider.address(),
                    amount: U256::ZERO,
                },
            )
            .await,
        |e| matches!(e, E::ZeroAmount(_)),
    );
    let before = c.balance(provider.address()).await;
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
    assert_eq!(c.balance(provider.address()).await, before + earned);
    assert_eq!(
        market.earnings(provider.address()).call().await.unwrap(),
        U256::ZERO
    );

    let fees = market.feesAccrued().call().await.unwrap();
    assert_eq!(fees, credits(1));
    assert_revert::<E>(
        c.broker
            .call(
                m,
                Marketplace::withdrawFeesCall {
                    to: c.broker.address(),
                    amount: fees,
                },
            )
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    let treasury = c.users[5].address();
    let before = c.balance(treasury).await;
    c.admin
        .call(
            m,
            Marketplace::withdrawFeesCall {
                to: treasury,
                amount: fees,
            },
        )
        .await
        .unwrap();
    assert_eq!(c.balance(treasury).await, before + fees);
    assert_eq!(c.balance(m).await, U256::ZERO);
}

#[tokio::test]
async fn fee_and_grace_are_admin_settings_with_a_cap() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let market = Marketplace::new(m, c.admin.client.provider());
    assert_revert::<E>(
        c.admin
            .call(m, Marketplace::setFeeCall { feeBps_: 1001 })
            .await,
        |e| matches!(e, E::FeeTooHigh(_)),
    );
    assert_revert::<E>(
        c.broker
            .call(m, Marketplace::setFeeCall { feeBps_: 10 })
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    c.admin
        .call(m, Marketplace::setFeeCall { feeBps_: 250 })
        .await
        .unwrap();
    assert_eq!(market.feeBps().call().await.unwrap(), 250);
    assert_revert::<E>(
        c.users[0]
            .call(m, Marketplace::setCloseGraceCall { closeGrace_: 1 })
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    c.admin
        .call(m, Marketplace::setCloseGraceCall { closeGrace_: 60 })
        .await
        .unwrap();
    assert_eq!(market.closeGrace().call().await.unwrap(), 60);
}

#[tokio::test]
async fn closed_contracts_and_expired_or_unfunded_authorisations_change_nothing() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let s = c.d().contracts.usage_settlement;
    let consumer = &c.users[1];
    c.open_contract(id(20), credits(10), U256::ZERO, 0).await;
    c.approve(consumer, credits(100)).await;

    // A relayed top-up past its deadline.
    let past = U256::from(c.now().await - 1);
    let domain = eip712::marketplace_domain(c.chain_id(), m);
    let late = eip712::TopUp {
        contractId: id(20),
        amount: credits(1),
        nonce: U256::ZERO,
        deadline: past,
    };
    let call = Marketplace::topUpCall {
        contractId: id(20),
        amount: credits(1),
        deadline: past,
        consumerSig: consumer.sign(&late, &domain),
    };
    assert_revert::<E>(c.broker.call(m, call).await, |e| matches!(e, E::Expired(_)));

    // A usage charge of zero is refused (skipped: the batch settles, nothing moves).
    let before = c.agreement(id(20)).await.escrow;
    let zero = contracts::UsageSettlement::settleCall {
        batchId: id(300),
        merkleRoot: id(301),
        recordsCid: "bafkrei".into(),
        recordCount: 1,
        contractIds: vec![id(20)],
        amounts: vec![U256::ZERO],
    };
    let receipt = c.broker.client.send_call(s, &zero).await.unwrap();
    assert!(matches!(skip_reason(&receipt), E::ZeroAmount(_)));
    assert_eq!(c.agreement(id(20)).await.escrow, before);

    c.broker
        .call(m, Marketplace::closeCall { contractId: id(20) })
        .await
        .unwrap();
    let after_close = c.balance(m).await;
    let wrong_status = |e: &E| matches!(e, E::WrongStatus(_));
    assert_revert::<E>(
        consumer
            .call(
                m,
                Marketplace::topUpCall {
                    contractId: id(20),
                    amount: credits(1),
                    deadline: U256::ZERO,
                    consumerSig: Bytes::new(),
                },
            )
            .await,
        wrong_status,
    );
    assert_revert::<E>(
        consumer
            .call(m, Marketplace::requestCloseCall { contractId: id(20) })
            .await,
        wrong_status,
    );
    assert_revert::<E>(
        c.broker
            .call(
                m,
                Marketplace::suspendCall {
                    contractId: id(20),
                    reason: bytes32("x"),
                },
            )
            .await,
        wrong_status,
    );
    assert_revert::<E>(
        c.users[3]
            .call(m, Marketplace::chargePeriodCall { contractId: id(20) })
            .await,
        wrong_status,
    );
    // Usage cannot be charged to a closed contract either.
    let late_batch = contracts::UsageSettlement::settleCall {
        batchId: id(302),
        merkleRoot: id(303),
        recordsCid: "bafkrei".into(),
        recordCount: 1,
        contractIds: vec![id(20)],
        amounts: vec![U256::from(1)],
    };
    let receipt = c.broker.client.send_call(s, &late_batch).await.unwrap();
    assert!(matches!(skip_reason(&receipt), E::WrongStatus(_)));
    assert_eq!(c.balance(m).await, after_close);

    // Fees cannot be over-withdrawn.
    assert_revert::<E>(
        c.admin
            .call(
                m,
                Marketplace::withdrawFeesCall {
                    to: c.admin.address(),
                    amount: credits(1),
                },
            )
            .await,
        |e| matches!(e, E::InsufficientEarnings(_)),
    );

    // openWithPermit with a bad permit and no allowance: nothing opens, nothing moves.
    let fresh = &c.users[2];
    c.register(fresh, "did:key:fresh", 2).await;
    let (req, sig) = c
        .open_request(id(21), fresh, &c.users[0], credits(10), U256::ZERO, 0)
        .await;
    let before = c.balance(fresh.address()).await;
    let r = c
        .broker
        .call(
            m,
            Marketplace::openWithPermitCall {
                req,
                consumerSig: sig,
                signaturesCid: "bafkreisignatures".into(),
                permitDeadline: U256::from(c.now().await + 60),
                v: 27,
                r: bytes32("bad"),
                s: bytes32("permit"),
            },
        )
        .await;
    assert!(r.is_err());
    assert_eq!(c.agreement(id(21)).await.status, 0);
    assert_eq!(c.balance(fresh.address()).await, before);
}

/// Why the first charge a settlement skipped was refused.
fn skip_reason(receipt: &alloy::rpc::types::TransactionReceipt) -> E {
    let skipped = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| {
            l.log_decode::<contracts::UsageSettlement::ChargeSkipped>()
                .ok()
        })
        .expect("a charge skipped");
    <E as alloy::sol_types::SolInterface>::abi_decode(&skipped.inner.data.reason).unwrap()
}
