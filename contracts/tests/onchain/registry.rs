use alloy::primitives::U256;
use contracts::eip712;
use contracts::ParticipantRegistry::{self, ParticipantRegistryErrors as E};

use crate::common::*;

fn link(
    c: &Chain,
    who: &Actor,
    did: &str,
    role: u8,
    nonce: u64,
    deadline: U256,
) -> (eip712::Link, alloy::primitives::Bytes) {
    let message = eip712::Link {
        did: did.into(),
        account: who.address(),
        role,
        nonce: U256::from(nonce),
        deadline,
    };
    let sig = who.sign(
        &message,
        &eip712::registry_domain(c.chain_id(), c.d().contracts.participant_registry),
    );
    (message, sig)
}

fn register_call(
    m: &eip712::Link,
    sig: alloy::primitives::Bytes,
) -> ParticipantRegistry::registerCall {
    ParticipantRegistry::registerCall {
        did: m.did.clone(),
        account: m.account,
        role: m.role,
        deadline: m.deadline,
        signature: sig,
    }
}

#[tokio::test]
async fn links_a_did_to_an_account_that_signed_for_it() {
    let c = Chain::start().await;
    let r = c.d().contracts.participant_registry;
    let who = &c.users[0];
    c.register(who, "did:key:z6MkProvider", 1).await;
    let registry = ParticipantRegistry::new(r, c.admin.client.provider());
    let p = registry.participant(who.address()).call().await.unwrap();
    assert_eq!(p.did, "did:key:z6MkProvider");
    assert_eq!(p.role, 1);
    assert!(p.active);
    assert_eq!(registry.roleOf(who.address()).call().await.unwrap(), 1);
    let did_hash = alloy::primitives::keccak256("did:key:z6MkProvider");
    assert_eq!(
        registry.accountOfDid(did_hash).call().await.unwrap(),
        who.address()
    );

    c.broker
        .call(
            r,
            ParticipantRegistry::setActiveCall {
                account: who.address(),
                active: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(registry.roleOf(who.address()).call().await.unwrap(), 0);
}

#[tokio::test]
async fn registration_refuses_bad_input_and_strangers() {
    let c = Chain::start().await;
    let r = c.d().contracts.participant_registry;
    let (who, other) = (&c.users[0], &c.users[1]);
    let deadline = U256::from(c.now().await + 600);

    // Only the registrar registers.
    let (m, sig) = link(&c, who, "did:key:a", 2, 0, deadline);
    assert_revert::<E>(who.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::AccessControlUnauthorizedAccount(_))
    });
    // Signed by another account: the account did not consent.
    let (m, _) = link(&c, who, "did:key:a", 2, 0, deadline);
    let (_, foreign) = link(&c, other, "did:key:a", 2, 0, deadline);
    let mut forged = m.clone();
    forged.account = who.address();
    assert_revert::<E>(
        c.broker.call(r, register_call(&forged, foreign)).await,
        |e| matches!(e, E::BadSignature(_)),
    );
    // The relayer cannot change the role the account signed.
    let (m, sig) = link(&c, who, "did:key:a", 2, 0, deadline);
    let mut operator = m.clone();
    operator.role = 4;
    assert_revert::<E>(c.broker.call(r, register_call(&operator, sig)).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    // No role, empty DID, expired.
    let (m, sig) = link(&c, who, "did:key:a", 0, 0, deadline);
    assert_revert::<E>(c.broker.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::InvalidRole(_))
    });
    let (m, sig) = link(&c, who, "", 2, 0, deadline);
    assert_revert::<E>(c.broker.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::EmptyDid(_))
    });
    let past = U256::from(c.now().await - 1);
    let (m, sig) = link(&c, who, "did:key:a", 2, 0, past);
    assert_revert::<E>(c.broker.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::Expired(_))
    });

    // Nothing was registered by any of these.
    let registry = ParticipantRegistry::new(r, c.admin.client.provider());
    assert_eq!(registry.roleOf(who.address()).call().await.unwrap(), 0);

    // A DID links once, an account links once.
    let (m, sig) = link(&c, who, "did:key:a", 2, 0, deadline);
    c.broker.call(r, register_call(&m, sig)).await.unwrap();
    let (m, sig) = link(&c, other, "did:key:a", 2, 0, deadline);
    assert_revert::<E>(c.broker.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::DidTaken(_))
    });
    let (m, sig) = link(&c, who, "did:key:b", 2, 1, deadline);
    assert_revert::<E>(c.broker.call(r, register_call(&m, sig)).await, |e| {
        matches!(e, E::AccountTaken(_))
    });
    // Only the registrar deactivates; an expired relayed config change is refused.
    assert_revert::<E>(
        other
            .call(
                r,
                ParticipantRegistry::setActiveCall {
                    account: who.address(),
                    active: false,
                },
            )
            .await,
        |e| matches!(e, E::AccessControlUnauthorizedAccount(_)),
    );
    let past = U256::from(c.now().await - 1);
    assert_revert::<E>(
        c.broker
            .call(
                r,
                ParticipantRegistry::setConfigForCall {
                    account: who.address(),
                    cid: "bafkrei".into(),
                    deadline: past,
                    signature: alloy::primitives::Bytes::new(),
                },
            )
            .await,
        |e| matches!(e, E::Expired(_)),
    );
    // setActive on an unknown account.
    assert_revert::<E>(
        c.broker
            .call(
                r,
                ParticipantRegistry::setActiveCall {
                    account: c.users[5].address(),
                    active: false,
                },
            )
            .await,
        |e| matches!(e, E::NotRegistered(_)),
    );
}

#[tokio::test]
async fn provider_config_history_is_kept_as_events_and_versions() {
    let c = Chain::start().await;
    let r = c.d().contracts.participant_registry;
    let (provider, consumer) = (&c.users[0], &c.users[1]);
    c.register(provider, "did:key:p", 1).await;
    c.register(consumer, "did:key:c", 2).await;
    let from = c.admin.client.block_number().await.unwrap();

    provider
        .call(
            r,
            ParticipantRegistry::setConfigCall {
                cid: "bafkreione".into(),
            },
        )
        .await
        .unwrap();
    // Relayed with the provider's signature.
    let deadline = U256::from(c.now().await + 600);
    let message = eip712::SetConfig {
        account: provider.address(),
        cid: "bafkreitwo".into(),
        nonce: U256::from(1),
        deadline,
    };
    let domain = eip712::registry_domain(c.chain_id(), r);
    let sig = provider.sign(&message, &domain);
    let relayed = ParticipantRegistry::setConfigForCall {
        account: provider.address(),
        cid: "bafkreitwo".into(),
        deadline,
        signature: sig,
    };
    c.broker.call(r, relayed.clone()).await.unwrap();
    // Replaying the same signature fails: its nonce is spent.
    assert_revert::<E>(c.broker.call(r, relayed).await, |e| {
        matches!(e, E::BadSignature(_))
    });
    // A relayer cannot swap in another CID.
    let sig = provider.sign(
        &eip712::SetConfig {
            nonce: U256::from(2),
            ..message.clone()
        },
        &domain,
    );
    assert_revert::<E>(
        c.broker
            .call(
                r,
                ParticipantRegistry::setConfigForCall {
                    account: provider.address(),
                    cid: "bafkreievil".into(),
                    deadline,
                    signature: sig,
                },
            )
            .await,
        |e| matches!(e, E::BadSignature(_)),
    );

    let registry = ParticipantRegistry::new(r, c.admin.client.provider());
    let p = registry
        .participant(provider.address())
        .call()
        .await
        .unwrap();
    assert_eq!((p.configCid.as_str(), p.configVersion), ("bafkreitwo", 2));

    let to = c.admin.client.block_number().await.unwrap();
    let logs = c.admin.client.logs(&[r], from, to).await.unwrap();
    let history: Vec<(u64, String)> = logs
        .iter()
        .filter_map(|l| l.log_decode::<ParticipantRegistry::ConfigUpdated>().ok())
        .map(|e| (e.inner.data.version, e.inner.data.cid.clone()))
        .collect();
    assert_eq!(
        history,
        vec![(1, "bafkreione".into()), (2, "bafkreitwo".into())]
    );

    // Consumers have no config; empty CIDs are refused.
    assert_revert::<E>(
        consumer
            .call(
                r,
                ParticipantRegistry::setConfigCall {
                    cid: "bafkrei".into(),
                },
            )
            .await,
        |e| matches!(e, E::NotProvider(_)),
    );
    assert_revert::<E>(
        provider
            .call(r, ParticipantRegistry::setConfigCall { cid: String::new() })
            .await,
        |e| matches!(e, E::EmptyCid(_)),
    );
}
