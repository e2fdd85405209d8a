use alloy::primitives::keccak256;
use contracts::CredentialRegistry::{self, CredentialRegistryErrors as E};

use crate::common::*;

#[tokio::test]
async fn anchor_lookup_and_revoke() {
    let c = Chain::start().await;
    let r = c.d().contracts.credential_registry;
    let registry = CredentialRegistry::new(r, c.admin.client.provider());
    let h = keccak256("credential-1");
    let anchor = CredentialRegistry::anchorCall {
        credentialHash: h,
        cid: "bafkreivc".into(),
    };
    assert_revert::<E>(c.users[0].call(r, anchor.clone()).await, |e| {
        matches!(e, E::AccessControlUnauthorizedAccount(_))
    });
    assert!(!registry.isValid(h).call().await.unwrap());
    c.broker.call(r, anchor.clone()).await.unwrap();
    let a = registry.lookup(h).call().await.unwrap();
    assert_eq!(
        (a.issuer, a.cid.as_str(), a.revokedAt),
        (c.broker.address(), "bafkreivc", 0)
    );
    assert!(registry.isValid(h).call().await.unwrap());
    assert_revert::<E>(c.broker.call(r, anchor).await, |e| {
        matches!(e, E::AlreadyAnchored(_))
    });
    assert_revert::<E>(
        c.broker
            .call(
                r,
                CredentialRegistry::anchorCall {
                    credentialHash: keccak256("x"),
                    cid: String::new(),
                },
            )
            .await,
        |e| matches!(e, E::InvalidAnchor(_)),
    );

    let reason = bytes32("compromised");
    assert_revert::<E>(
        c.users[0]
            .call(
                r,
                CredentialRegistry::revokeCall {
                    credentialHash: h,
                    reason,
                },
            )
            .await,
        |e| matches!(e, E::NotIssuer(_)),
    );
    c.broker
        .call(
            r,
            CredentialRegistry::revokeCall {
                credentialHash: h,
                reason,
            },
        )
        .await
        .unwrap();
    assert!(!registry.isValid(h).call().await.unwrap());
    assert!(registry.lookup(h).call().await.unwrap().revokedAt > 0);
    assert_revert::<E>(
        c.broker
            .call(
                r,
                CredentialRegistry::revokeCall {
                    credentialHash: h,
                    reason,
                },
            )
            .await,
        |e| matches!(e, E::AlreadyRevoked(_)),
    );
    assert_revert::<E>(
        c.broker
            .call(
                r,
                CredentialRegistry::revokeCall {
                    credentialHash: keccak256("nope"),
                    reason,
                },
            )
            .await,
        |e| matches!(e, E::UnknownCredential(_)),
    );
    assert!(registry.lookup(keccak256("nope")).call().await.is_err());
}

#[tokio::test]
async fn an_admin_can_revoke_any_issuers_credential() {
    let c = Chain::start().await;
    let r = c.d().contracts.credential_registry;
    let h = keccak256("credential-2");
    c.broker
        .call(
            r,
            CredentialRegistry::anchorCall {
                credentialHash: h,
                cid: "bafkreivc2".into(),
            },
        )
        .await
        .unwrap();
    c.admin
        .call(
            r,
            CredentialRegistry::revokeCall {
                credentialHash: h,
                reason: bytes32("operator"),
            },
        )
        .await
        .unwrap();
    let registry = CredentialRegistry::new(r, c.admin.client.provider());
    assert!(!registry.isValid(h).call().await.unwrap());
}
