use std::collections::HashSet;
use std::sync::atomic::Ordering;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use contracts::CreditToken::{self, CreditTokenErrors};
use contracts::CREDIT;
use ledger::accounts::dev_signer;
use ledger::client::{ClientError, ClientOptions, EventPoller};
use ledger::ChainClient;

use crate::proxy::{self, Fault};

async fn nonce(client: &ChainClient) -> u64 {
    client
        .provider()
        .get_transaction_count(client.address())
        .await
        .unwrap()
}

async fn balance(client: &ChainClient, token: Address, who: Address) -> U256 {
    CreditToken::new(token, client.provider())
        .balanceOf(who)
        .call()
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_sends_get_distinct_nonces_and_all_land() {
    let n = crate::devnet().await;
    let token = n.net.deployment.contracts.credit_token;
    let client = ChainClient::connect(n.net.chain.url(), dev_signer(2).unwrap())
        .await
        .unwrap();
    let to = dev_signer(9).unwrap().address();
    let (nonce_before, bal_before) = (nonce(&client).await, balance(&client, token, to).await);
    let sends = (0..40).map(|_| {
        let client = client.clone();
        async move {
            client
                .send_call(
                    token,
                    &CreditToken::transferCall {
                        to,
                        value: U256::from(CREDIT),
                    },
                )
                .await
        }
    });
    let receipts = futures::future::join_all(sends).await;
    let hashes: HashSet<_> = receipts
        .iter()
        .map(|r| r.as_ref().unwrap().transaction_hash)
        .collect();
    assert_eq!(hashes.len(), 40);
    assert_eq!(nonce(&client).await, nonce_before + 40);
    assert_eq!(
        balance(&client, token, to).await,
        bal_before + U256::from(40 * CREDIT)
    );
}

#[tokio::test]
async fn a_lost_answer_is_retried_without_sending_twice() {
    let n = crate::devnet().await;
    let token = n.net.deployment.contracts.credit_token;
    for fault in [Fault::LoseAnswer, Fault::DropRequest] {
        let proxy = proxy::start(n.net.chain.url(), fault, 0, 2).await;
        let client = ChainClient::connect(&proxy.url, dev_signer(3).unwrap())
            .await
            .unwrap();
        let to = dev_signer(10).unwrap().address();
        let (nonce_before, bal_before) = (nonce(&client).await, balance(&client, token, to).await);
        let receipt = client
            .send_call(
                token,
                &CreditToken::transferCall {
                    to,
                    value: U256::from(7 * CREDIT),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(receipt.status());
        // One transfer, one nonce, however many times the bytes went out.
        assert_eq!(
            balance(&client, token, to).await,
            bal_before + U256::from(7 * CREDIT),
            "{fault:?}"
        );
        assert_eq!(nonce(&client).await, nonce_before + 1, "{fault:?}");
        if matches!(fault, Fault::LoseAnswer) {
            assert!(proxy.forwarded_raw.load(Ordering::SeqCst) >= 2);
        }
    }
}

#[tokio::test]
async fn a_refused_transaction_is_an_error_and_the_next_send_reuses_its_nonce() {
    let n = crate::devnet().await;
    let token = n.net.deployment.contracts.credit_token;
    let proxy = proxy::start(n.net.chain.url(), Fault::Refuse, 0, 1).await;
    let client = ChainClient::connect(&proxy.url, dev_signer(4).unwrap())
        .await
        .unwrap();
    let to = dev_signer(11).unwrap().address();
    let before = nonce(&client).await;
    let err = client
        .send_call(
            token,
            &CreditToken::transferCall {
                to,
                value: U256::from(1),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Rejected { .. }), "{err}");
    // No gap: the next transaction takes the nonce the refused one had.
    client
        .send_call(
            token,
            &CreditToken::transferCall {
                to,
                value: U256::from(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(nonce(&client).await, before + 1);
}

#[tokio::test]
async fn reverts_are_reported_with_their_data_and_use_no_nonce() {
    let n = crate::devnet().await;
    let token = n.net.deployment.contracts.credit_token;
    let client = ChainClient::connect(n.net.chain.url(), dev_signer(5).unwrap())
        .await
        .unwrap();
    let before = nonce(&client).await;
    let err = client
        .send_call(
            token,
            &CreditToken::mintCall {
                to: client.address(),
                amount: U256::from(1),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.decode_revert::<CreditTokenErrors>(),
            Some(CreditTokenErrors::AccessControlUnauthorizedAccount(_))
        ),
        "{err}"
    );
    assert_eq!(nonce(&client).await, before);
}

#[tokio::test]
async fn an_unreachable_node_is_a_clear_error() {
    let url = format!("http://127.0.0.1:{}", ledger::anvil::free_port().unwrap());
    let options = ClientOptions {
        broadcast_attempts: 1,
        ..ClientOptions::default()
    };
    let err = match ChainClient::connect_with(&url, dev_signer(0).unwrap(), options).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("check that it is running"));
    let err = ChainClient::connect("not a url", dev_signer(0).unwrap())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a URL"));
}

#[tokio::test]
async fn event_polling_resumes_without_gaps_or_duplicates() {
    let n = crate::devnet().await;
    let token = n.net.deployment.contracts.credit_token;
    let client = ChainClient::connect(n.net.chain.url(), dev_signer(6).unwrap())
        .await
        .unwrap();
    let start = client.block_number().await.unwrap() + 1;
    let to = dev_signer(12).unwrap().address();
    for _ in 0..12 {
        client
            .send_call(
                token,
                &CreditToken::transferCall {
                    to,
                    value: U256::from(1),
                },
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut poller = EventPoller::resume(vec![token], start).with_max_range(5);
    // Read a part, "crash", and resume from the saved cursor.
    seen.extend(poller.poll(&client).await.unwrap());
    let cursor = poller.next_block();
    drop(poller);
    for _ in 0..8 {
        client
            .send_call(
                token,
                &CreditToken::transferCall {
                    to,
                    value: U256::from(1),
                },
            )
            .await
            .unwrap();
    }
    let mut poller = EventPoller::resume(vec![token], cursor).with_max_range(5);
    while !poller.caught_up(&client).await.unwrap() {
        seen.extend(poller.poll(&client).await.unwrap());
    }
    let transfers: Vec<_> = seen
        .iter()
        .filter(|l| l.log_decode::<CreditToken::Transfer>().is_ok())
        .map(|l| (l.transaction_hash.unwrap(), l.log_index.unwrap()))
        .collect();
    let unique: HashSet<_> = transfers.iter().collect();
    assert_eq!(transfers.len(), 20);
    assert_eq!(unique.len(), 20);
    // With confirmations the newest blocks wait.
    let head = client.block_number().await.unwrap();
    let mut lagging = EventPoller::resume(vec![token], head).with_confirmations(1);
    assert!(lagging.poll(&client).await.unwrap().is_empty());
    assert_eq!(lagging.next_block(), head);
}
