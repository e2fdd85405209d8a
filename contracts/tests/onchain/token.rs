use alloy::primitives::U256;
use alloy::signers::SignerSync;
use contracts::eip712;
use contracts::CreditToken::{self, CreditTokenErrors as E};

use crate::common::*;

#[tokio::test]
async fn metadata_and_admin_minting() {
    let c = Chain::start().await;
    let token = CreditToken::new(c.d().contracts.credit_token, c.admin.client.provider());
    assert_eq!(token.decimals().call().await.unwrap(), 8);
    assert_eq!(token.symbol().call().await.unwrap(), "MCR");
    let who = c.users[5].address();
    let before = c.balance(who).await;
    c.admin
        .call(
            c.d().contracts.credit_token,
            CreditToken::mintCall {
                to: who,
                amount: credits(7),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.balance(who).await, before + credits(7));
}

#[tokio::test]
async fn only_minters_mint_and_only_admins_configure_the_faucet() {
    let c = Chain::start().await;
    let t = c.d().contracts.credit_token;
    let supply_before = CreditToken::new(t, c.admin.client.provider())
        .totalSupply()
        .call()
        .await
        .unwrap();
    assert_revert::<E>(
        c.users[0]
            .call(
                t,
                CreditToken::mintCall {
                    to: c.users[0].address(),
                    amount: credits(1),
                },
            )
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    assert_revert::<E>(
        c.broker
            .call(
                t,
                CreditToken::configureFaucetCall {
                    amount: credits(1),
                    cooldown: 0,
                },
            )
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    let supply_after = CreditToken::new(t, c.admin.client.provider())
        .totalSupply()
        .call()
        .await
        .unwrap();
    assert_eq!(supply_before, supply_after);
}

#[tokio::test]
async fn faucet_drips_once_per_cooldown_and_can_be_disabled() {
    let c = Chain::start().await;
    let t = c.d().contracts.credit_token;
    let user = &c.users[3];
    let before = c.balance(user.address()).await;
    user.call(t, CreditToken::dripCall {}).await.unwrap();
    assert_eq!(c.balance(user.address()).await, before + credits(1_000));
    assert_revert::<E>(user.call(t, CreditToken::dripCall {}).await, |e| {
        matches!(e, E::FaucetCoolingDown(_))
    });
    c.advance(3601).await;
    user.call(t, CreditToken::dripCall {}).await.unwrap();
    assert_eq!(c.balance(user.address()).await, before + credits(2_000));

    c.admin
        .call(
            t,
            CreditToken::configureFaucetCall {
                amount: U256::ZERO,
                cooldown: 0,
            },
        )
        .await
        .unwrap();
    assert_revert::<E>(c.users[4].call(t, CreditToken::dripCall {}).await, |e| {
        matches!(e, E::FaucetDisabled(_))
    });
}

#[tokio::test]
async fn permit_sets_allowance_and_rejects_bad_or_expired_signatures() {
    let c = Chain::start().await;
    let t = c.d().contracts.credit_token;
    let (owner, spender) = (&c.users[0], &c.users[1]);
    let domain = eip712::token_domain(c.chain_id(), t);
    let deadline = U256::from(c.now().await + 600);
    let permit = eip712::Permit {
        owner: owner.address(),
        spender: spender.address(),
        value: credits(5),
        nonce: U256::ZERO,
        deadline,
    };
    let call = |sig: alloy::primitives::Signature, deadline| CreditToken::permitCall {
        owner: owner.address(),
        spender: spender.address(),
        value: credits(5),
        deadline,
        v: 27 + sig.v() as u8,
        r: sig.r().into(),
        s: sig.s().into(),
    };
    // Signed by someone else: refused.
    let forged = spender
        .signer
        .sign_hash_sync(&eip712::digest(&permit, &domain))
        .unwrap();
    assert_revert::<E>(c.broker.call(t, call(forged, deadline)).await, |e| {
        matches!(e, E::ERC2612InvalidSigner(_))
    });
    // Expired: refused.
    c.advance(601).await;
    let good = owner
        .signer
        .sign_hash_sync(&eip712::digest(&permit, &domain))
        .unwrap();
    assert_revert::<E>(c.broker.call(t, call(good, deadline)).await, |e| {
        matches!(e, E::ERC2612ExpiredSignature(_))
    });
    // A fresh, valid permit works once.
    let deadline = U256::from(c.now().await + 600);
    let permit = eip712::Permit { deadline, ..permit };
    let good = owner
        .signer
        .sign_hash_sync(&eip712::digest(&permit, &domain))
        .unwrap();
    c.broker.call(t, call(good, deadline)).await.unwrap();
    let token = CreditToken::new(t, c.admin.client.provider());
    assert_eq!(
        token
            .allowance(owner.address(), spender.address())
            .call()
            .await
            .unwrap(),
        credits(5)
    );
    // Replayed: the nonce moved on, so it no longer matches.
    assert_revert::<E>(c.broker.call(t, call(good, deadline)).await, |e| {
        matches!(e, E::ERC2612InvalidSigner(_))
    });
}

#[tokio::test]
async fn burning_lowers_supply() {
    let c = Chain::start().await;
    let t = c.d().contracts.credit_token;
    let token = CreditToken::new(t, c.admin.client.provider());
    let supply = token.totalSupply().call().await.unwrap();
    c.users[2]
        .call(t, CreditToken::burnCall { value: credits(10) })
        .await
        .unwrap();
    assert_eq!(
        token.totalSupply().call().await.unwrap(),
        supply - credits(10)
    );
    assert_revert::<E>(
        c.users[2]
            .call(
                t,
                CreditToken::burnCall {
                    value: credits(10_000_000),
                },
            )
            .await,
        |e| matches!(e, E::ERC20InsufficientBalance(_)),
    );
}
