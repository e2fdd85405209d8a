//! What no role can do to a running contract: the admin holds no operational role and hands over
//! in two steps; the settlement contract is named once; a contract keeps the fee and close grace
//! it opened with; reserved periods are not charged for suspended time; an early close by the
//! provider gives back the unused share of the prepaid period.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolConstructor;
use contracts::bindings::roles;
use contracts::Marketplace::{self, MarketplaceErrors as E};
use contracts::UsageSettlement::{self, UsageSettlementErrors as SE};

use crate::common::*;

const CLOSED: u8 = 4;

fn settle(batch: u64, ids: Vec<B256>, amounts: Vec<U256>) -> UsageSettlement::settleCall {
    TestBatch::simple(id(1_000_000 + batch), &ids, &amounts).call()
}

/// Deploys a second Marketplace from `c.admin`; `Err` when its constructor refuses.
async fn fresh_marketplace(
    c: &Chain,
    broker: Address,
    close_grace: u64,
) -> Result<Address, ledger::client::ClientError> {
    let mut code = Marketplace::BYTECODE.to_vec();
    code.extend(
        Marketplace::constructorCall {
            admin: c.admin.address(),
            adminDelay: alloy::primitives::aliases::U48::from(0u64),
            broker,
            token_: c.d().contracts.credit_token,
            registry_: c.d().contracts.participant_registry,
            feeBps_: 100,
            closeGrace_: close_grace,
            challengeWindow_: 60,
        }
        .abi_encode(),
    );
    c.admin.client.deploy(code.into()).await.map(|(a, _)| a)
}

#[tokio::test]
async fn the_admin_acts_on_nothing_and_names_the_settlement_contract_once() {
    let c = Chain::start().await;
    let (m, s) = (
        c.d().contracts.marketplace,
        c.d().contracts.usage_settlement,
    );
    let admin = c.admin.address();
    // It cannot give itself an operational role, on either contract.
    assert_revert::<E>(
        c.admin
            .call(
                m,
                Marketplace::grantRoleCall {
                    role: roles::broker(),
                    account: admin,
                },
            )
            .await,
        |e| matches!(e, E::AdminHoldsNoRole(_)),
    );
    assert_revert::<SE>(
        c.admin
            .call(
                s,
                UsageSettlement::grantRoleCall {
                    role: roles::settler(),
                    account: admin,
                },
            )
            .await,
        |e| matches!(e, SE::AdminHoldsNoRole(_)),
    );
    // So it cannot settle (and charge) anything.
    c.open_contract(id(1), credits(50), U256::ZERO, 0).await;
    assert_revert::<SE>(
        c.admin
            .call(s, settle(1, vec![id(1)], vec![credits(50)]))
            .await,
        |e| matches!(e, SE::AccessControlUnauthorizedAccount(_)),
    );
    // The settlement contract is named once, for good.
    assert_revert::<E>(
        c.admin
            .call(
                m,
                Marketplace::setSettlementCall {
                    settlement_: c.users[5].address(),
                },
            )
            .await,
        |e| matches!(e, E::SettlementAlreadySet(_)),
    );
    let market = Marketplace::new(m, c.admin.client.provider());
    assert_eq!(market.settlement().call().await.unwrap(), s);
    assert_eq!(c.agreement(id(1)).await.escrow, credits(50));

    // A new marketplace refuses a plain account, or a settlement contract of another marketplace.
    let fresh = fresh_marketplace(&c, c.broker.address(), 60).await.unwrap();
    for candidate in [c.users[5].address(), s] {
        assert_revert::<E>(
            c.admin
                .call(
                    fresh,
                    Marketplace::setSettlementCall {
                        settlement_: candidate,
                    },
                )
                .await,
            |e| matches!(e, E::NotASettlementContract(_)),
        );
    }
    // Its admin cannot be its broker, and its grace is bounded.
    assert!(fresh_marketplace(&c, admin, 60).await.is_err());
    assert!(fresh_marketplace(&c, c.broker.address(), 31 * 24 * 3600)
        .await
        .is_err());
}

#[tokio::test]
async fn the_admin_role_moves_in_two_steps_and_never_by_a_plain_grant() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let market = Marketplace::new(m, c.admin.client.provider());
    let next = &c.users[5];
    assert_revert::<E>(
        c.admin
            .call(
                m,
                Marketplace::grantRoleCall {
                    role: B256::ZERO,
                    account: next.address(),
                },
            )
            .await,
        |e| matches!(e, E::AccessControlEnforcedDefaultAdminRules(_)),
    );
    c.admin
        .call(
            m,
            Marketplace::beginDefaultAdminTransferCall {
                newAdmin: next.address(),
            },
        )
        .await
        .unwrap();
    // Until the new admin accepts, the old one is still the admin.
    assert_eq!(
        market.defaultAdmin().call().await.unwrap(),
        c.admin.address()
    );
    c.advance(1).await;
    next.call(m, Marketplace::acceptDefaultAdminTransferCall {})
        .await
        .unwrap();
    assert_eq!(market.defaultAdmin().call().await.unwrap(), next.address());
    assert_revert::<E>(
        c.admin
            .call(m, Marketplace::setFeeCall { feeBps_: 500 })
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    next.call(m, Marketplace::setFeeCall { feeBps_: 500 })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_running_contract_keeps_the_fee_and_grace_it_opened_with() {
    let c = Chain::start().await;
    let (m, s) = (
        c.d().contracts.marketplace,
        c.d().contracts.usage_settlement,
    );
    let market = Marketplace::new(m, c.admin.client.provider());
    let provider = c.users[0].address();
    c.open_contract(id(1), credits(100), U256::ZERO, 0).await;
    let opened = c.agreement(id(1)).await;
    assert_eq!(opened.feeBps, 100);
    assert_eq!(opened.closeGrace, market.closeGrace().call().await.unwrap());
    // The admin raises the fee to the cap and the grace to its bound: the running contract does
    // not see it.
    c.admin
        .call(m, Marketplace::setFeeCall { feeBps_: 1000 })
        .await
        .unwrap();
    let max = market.MAX_CLOSE_GRACE().call().await.unwrap();
    assert_revert::<E>(
        c.admin
            .call(
                m,
                Marketplace::setCloseGraceCall {
                    closeGrace_: max + 1,
                },
            )
            .await,
        |e| matches!(e, E::GraceTooLong(_)),
    );
    c.admin
        .call(m, Marketplace::setCloseGraceCall { closeGrace_: max })
        .await
        .unwrap();
    // The challenge window too is the one the contract opened with.
    c.admin
        .call(
            m,
            Marketplace::setChallengeWindowCall {
                challengeWindow_: 7 * 24 * 3600,
            },
        )
        .await
        .unwrap();
    c.broker
        .call(s, settle(1, vec![id(1)], vec![credits(10)]))
        .await
        .unwrap();
    c.advance(opened.challengeWindow).await;
    c.users[5]
        .call(
            m,
            Marketplace::releaseCall {
                r#ref: id(1_000_001),
                contractIds: vec![id(1)],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        market.earnings(provider).call().await.unwrap(),
        credits(10) * U256::from(99) / U256::from(100),
        "1%, the fee at opening"
    );
    c.users[1]
        .call(m, Marketplace::requestCloseCall { contractId: id(1) })
        .await
        .unwrap();
    let a = c.agreement(id(1)).await;
    assert_eq!(a.closableAt, c.now().await + opened.closeGrace);
    // A contract opened now gets the new fee.
    c.open_contract(id(2), credits(100), U256::ZERO, 0).await;
    assert_eq!(c.agreement(id(2)).await.feeBps, 1000);
}

#[tokio::test]
async fn reserved_periods_are_not_charged_for_suspended_time() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    c.open_contract(id(1), credits(40), credits(10), 3600).await;
    let paid_until = c.agreement(id(1)).await.nextChargeAt;
    c.advance(1000).await;
    c.broker
        .call(
            m,
            Marketplace::suspendCall {
                contractId: id(1),
                reason: bytes32("test"),
            },
        )
        .await
        .unwrap();
    let stopped = c.agreement(id(1)).await.stoppedAt;
    c.advance(5000).await;
    c.broker
        .call(m, Marketplace::resumeCall { contractId: id(1) })
        .await
        .unwrap();
    let resumed = c.now().await;
    let a = c.agreement(id(1)).await;
    // The prepaid period's end moved by exactly the suspended time.
    assert_eq!(a.nextChargeAt, paid_until + (resumed - stopped));
    assert_revert::<E>(
        c.users[4]
            .call(m, Marketplace::chargePeriodCall { contractId: id(1) })
            .await,
        |e| matches!(e, E::NotDue(_)),
    );
    assert_eq!(U256::from(a.charged), credits(10));

    // A period that fell due while suspended starts at the resume, not before.
    c.advance(a.nextChargeAt - resumed).await;
    c.users[4]
        .call(m, Marketplace::chargePeriodCall { contractId: id(1) })
        .await
        .unwrap();
    c.broker
        .call(
            m,
            Marketplace::suspendCall {
                contractId: id(1),
                reason: bytes32("test"),
            },
        )
        .await
        .unwrap();
    c.advance(10 * 3600).await;
    c.broker
        .call(m, Marketplace::resumeCall { contractId: id(1) })
        .await
        .unwrap();
    let a = c.agreement(id(1)).await;
    assert_eq!(
        U256::from(a.charged),
        credits(20),
        "nothing charged for the ten hours"
    );
}

#[tokio::test]
async fn an_early_close_asked_by_the_provider_gives_back_the_unused_period() {
    let c = Chain::start().await;
    let m = c.d().contracts.marketplace;
    let market = Marketplace::new(m, c.admin.client.provider());
    let (provider, consumer) = (&c.users[0], &c.users[1]);
    let unused = |a: &Marketplace::Agreement, stopped: u64| {
        a.held * U256::from(a.nextChargeAt - stopped) / U256::from(a.period)
    };

    // The provider ends it a quarter into the period: three quarters go back.
    c.open_contract(id(1), credits(36), credits(36), 3600).await;
    c.advance(900).await;
    provider
        .call(m, Marketplace::requestCloseCall { contractId: id(1) })
        .await
        .unwrap();
    let a = c.agreement(id(1)).await;
    let back = unused(&a, a.stoppedAt);
    assert!(back >= credits(26) && back <= credits(27), "{back}");
    let before = c.balance(consumer.address()).await;
    c.advance(a.closeGrace + 1).await;
    c.users[5]
        .call(m, Marketplace::closeCall { contractId: id(1) })
        .await
        .unwrap();
    let a = c.agreement(id(1)).await;
    assert_eq!(a.status, CLOSED);
    assert_eq!(c.balance(consumer.address()).await, before + back);
    assert_eq!(U256::from(a.charged), credits(36) - back);
    let earned = market.earnings(provider.address()).call().await.unwrap();
    let used = credits(36) - back;
    assert_eq!(earned, used - used / U256::from(100));

    // The broker's close is the consumer's close relayed: the period is the provider's.
    c.open_contract(id(2), credits(36), credits(36), 3600).await;
    c.advance(1800).await;
    let before = c.balance(consumer.address()).await;
    c.broker
        .call(m, Marketplace::closeCall { contractId: id(2) })
        .await
        .unwrap();
    assert_eq!(c.balance(consumer.address()).await, before);
    assert_eq!(U256::from(c.agreement(id(2)).await.charged), credits(36));

    // The consumer ends one: the period it paid for is the provider's.
    c.open_contract(id(3), credits(36), credits(36), 3600).await;
    c.advance(900).await;
    consumer
        .call(m, Marketplace::requestCloseCall { contractId: id(3) })
        .await
        .unwrap();
    let a = c.agreement(id(3)).await;
    c.advance(a.closeGrace + 1).await;
    let before = c.balance(consumer.address()).await;
    c.users[5]
        .call(m, Marketplace::closeCall { contractId: id(3) })
        .await
        .unwrap();
    assert_eq!(c.balance(consumer.address()).await, before);
    assert_eq!(U256::from(c.agreement(id(3)).await.charged), credits(36));
    assert_eq!(market.totalHeld().call().await.unwrap(), U256::ZERO);
}
