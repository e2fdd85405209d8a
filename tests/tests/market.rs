//! The marketplace flow through a running broker on the embedded stack: a provider is onboarded
//! and publishes, a consumer reserves, buys, and closes; the chain agrees at every step, and every
//! answer the clients got conforms to the generated OpenAPI document.

use std::time::Duration;

use api::{ChainStatus, ContractState, EventBody, Role, Topic};
use e2e::market::{
    buy, offer, request, units, until_closed, until_settled, Participant, PROVIDER_CONFIG,
};
use e2e::openapi::{Document, Recorder};
use e2e::{eventually, BrokerProcess, Patience};
use sdk::SdkError;

fn status_of(e: &SdkError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("expected a problem, got {e}"))
}

#[tokio::test]
async fn a_consumer_buys_a_plan_into_an_on_chain_contract_and_closes_it_with_a_refund() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let recorder = Recorder::default();
    let rec = Some(&recorder);
    let provider = Participant::recorded(&broker.url, Role::Provider, rec).await;
    let consumer = Participant::recorded(&broker.url, Role::Consumer, rec).await;
    let bystander = Participant::recorded(&broker.url, Role::Consumer, rec).await;
    let mut consumer_events = consumer.session.events(Some(0)).await.unwrap();
    let mut bystander_events = bystander.session.events(Some(0)).await.unwrap();

    // Onboarding: the configuration goes to the content store and its CID on chain.
    let cfg = provider
        .session
        .register_config(&provider.evm, PROVIDER_CONFIG)
        .await
        .unwrap();
    assert_eq!(cfg.version, 1);
    assert_eq!(
        cfg.cid.to_string(),
        content::unixfs::cid_of(PROVIDER_CONFIG.as_bytes()).to_string()
    );
    let changed = provider
        .session
        .register_config(&provider.evm, &PROVIDER_CONFIG.replace("edge-1", "edge-2"))
        .await
        .unwrap();
    assert_eq!(changed.version, 2);
    assert_ne!(changed.cid, cfg.cid);

    // Publishing: only the provider's own, signed offers.
    let o = offer("flow-1", 3, 5_000_000);
    let published = provider.session.publish_offer(o.clone()).await.unwrap();
    assert_eq!(published.version, 1);
    let err = consumer.session.publish_offer(o.clone()).await.unwrap_err();
    assert_eq!(status_of(&err), 403, "{err}");

    // Reserve 2 of 3 and buy them.
    let req = request(&o, 2);
    let r = consumer.session.reserve(&req).await.unwrap();
    let before = consumer.credits().await;
    // A document other than what was asked for is not signed (the SDK rebuilds and compares it).
    let mut forged = r.clone();
    forged.document = forged.document.replace("flow-1", "flow-X");
    let err = consumer
        .session
        .purchase(&req, &forged, &consumer.evm, "forged")
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Mismatch(_)), "{err}");
    // So is one whose deposit was raised behind the consumer's back.
    let mut greedy = r.clone();
    greedy.terms.deposit = units(99_000_000);
    let err = consumer
        .session
        .purchase(&req, &greedy, &consumer.evm, "greedy")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deposit"), "{err}");
    let key = "purchase-1";
    let c = consumer
        .session
        .purchase(&req, &r, &consumer.evm, key)
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Proposed);
    // A retry with the same key returns the same purchase, never a second one.
    let again = consumer
        .session
        .purchase(&req, &r, &consumer.evm, key)
        .await
        .unwrap();
    assert_eq!(again.id, c.id);
    // Only the provider of the contract accepts it.
    let err = bystander.session.accept(c.id).await.unwrap_err();
    assert!(matches!(err.status(), Some(403 | 404)), "{err}");
    provider.session.accept(c.id).await.unwrap();
    let active = until_settled(&consumer, c.id).await;
    assert_eq!(active.state, ContractState::Active, "{active:?}");
    let shown = consumer.session.contract(c.id).await.unwrap();
    let chain = shown.chain.expect("on-chain state");
    assert_eq!(chain.status, ChainStatus::Active);
    assert_eq!(chain.terms_cid, r.terms.terms_cid.to_string());
    let doc = api::document::ContractDocument::parse(shown.document.as_ref().unwrap().as_bytes())
        .unwrap();
    assert_eq!(doc.provider_config_cid, Some(changed.cid.clone()));
    assert!(shown.provider_signature.is_some() && shown.signatures_cid.is_some());
    // The deposit (two units for one period) left the consumer's account once.
    assert_eq!(r.terms.deposit, units(2 * 5_000_000));
    assert_eq!(
        consumer.credits().await,
        before.checked_sub(r.terms.deposit).unwrap()
    );

    // The third unit is all that is left.
    let err = consumer.session.reserve(&request(&o, 2)).await.unwrap_err();
    assert_eq!(status_of(&err), 409, "{err}");
    // Contracts are visible to their parties only.
    assert_eq!(consumer.session.contracts().await.unwrap().len(), 1);
    assert_eq!(provider.session.contracts().await.unwrap().len(), 1);
    assert!(bystander.session.contracts().await.unwrap().is_empty());
    let err = bystander.session.contract(c.id).await.unwrap_err();
    assert_eq!(status_of(&err), 404);

    // Closing refunds what the first period did not use: nothing of the period price, the
    // rest of the escrow (here zero: the deposit paid exactly one period).
    consumer.session.close(c.id).await.unwrap();
    let closed = until_closed(&consumer, c.id).await;
    assert_eq!(closed.refund, Some(units(0)));
    let shown = consumer.session.contract(c.id).await.unwrap();
    assert_eq!(shown.chain.unwrap().status, ChainStatus::Closed);
    // Closed contracts give their units back.
    consumer.session.reserve(&request(&o, 3)).await.unwrap();

    // A pay-more-than-needed deposit is refunded on close.
    let o2 = offer("flow-2", 1, 1_000_000);
    provider.session.publish_offer(o2.clone()).await.unwrap();
    let mut req2 = request(&o2, 1);
    req2.deposit = Some(units(3_000_000));
    let before = consumer.credits().await;
    let c2 = buy(&consumer, &provider, &req2).await;
    assert_eq!(c2.state, ContractState::Active);
    provider.session.close(c2.id).await.unwrap();
    let closed = until_closed(&consumer, c2.id).await;
    assert_eq!(closed.refund, Some(units(2_000_000)));
    assert_eq!(
        consumer.credits().await,
        before.checked_sub(units(1_000_000)).unwrap()
    );

    // Events: the consumer saw its own flow; the bystander saw catalog events but none of it.
    let c2_subject = c2.id.to_string();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(t, s): &(Topic, String)| *t == Topic::ContractClosed && *s == c2_subject)
    {
        let e = tokio::time::timeout(Duration::from_secs(20), consumer_events.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seen.push((e.topic(), e.subject));
    }
    for topic in [
        Topic::OfferPublished,
        Topic::ReservationCreated,
        Topic::ContractProposed,
        Topic::ContractAccepted,
        Topic::ContractActivated,
        Topic::ContractClosing,
        Topic::ContractClosed,
    ] {
        assert!(
            seen.iter().any(|(t, _)| *t == topic),
            "{topic} missing from {seen:?}"
        );
    }
    // The bystander's stream has caught up with everything the consumer saw once it delivers a
    // catalog event published after it.
    provider
        .session
        .publish_offer(offer("flow-marker", 1, 1))
        .await
        .unwrap();
    let mut other = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), bystander_events.next())
            .await
            .expect("the bystander's events keep coming")
            .unwrap()
            .unwrap();
        let marker =
            matches!(&e.body, EventBody::OfferPublished(o) if o.offer.as_str() == "flow-marker");
        other.push(e.topic());
        if marker {
            break;
        }
    }
    assert!(other.contains(&Topic::OfferPublished), "{other:?}");
    assert!(
        other.iter().all(
            |t| !t.as_str().starts_with("contract.") && !t.as_str().starts_with("reservation.")
        ),
        "{other:?}"
    );

    // A consumer without credits: the chain refuses the open, the purchase is undone, the units
    // come back and nothing moved.
    let broke = Participant::with_account(
        &broker.url,
        Role::Consumer,
        alloy::signers::local::PrivateKeySigner::random(),
    )
    .await;
    let o3 = offer("flow-3", 1, 1_000_000);
    provider.session.publish_offer(o3.clone()).await.unwrap();
    let failed = buy(&broke, &provider, &request(&o3, 1)).await;
    assert_eq!(failed.state, ContractState::Failed, "{failed:?}");
    assert!(
        failed.failure.as_deref().unwrap_or("").contains("refused"),
        "{failed:?}"
    );
    assert_eq!(broke.credits().await, units(0));
    let shown = broke.session.contract(failed.id).await.unwrap();
    assert!(shown.chain.is_none_or(|c| c.status == ChainStatus::None));
    consumer.session.reserve(&request(&o3, 1)).await.unwrap();

    // Every answer of the flow conforms to the generated OpenAPI document.
    let document = Document::fetch(&broker.url).await;
    let answers = recorder.take();
    assert!(answers.len() > 50, "{} answers recorded", answers.len());
    let checked = document
        .check_all(&answers)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        answers.iter().any(|a| a.status >= 400),
        "problems were checked too"
    );
    eprintln!("{checked} answers conform to the OpenAPI document");
    broker.stop();
}

/// Every write refused for bad input leaves everything as it was.
#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let url = broker.url.clone();
    let http = reqwest::Client::new();
    let provider = Participant::new(&url, Role::Provider).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let post = |path: &str, token: String, body: serde_json::Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    // A link signed by another key than the account's: refused, nothing linked.
    let someone = alloy::signers::local::PrivateKeySigner::random();
    let stranger = Participant::with_account(
        &url,
        Role::Consumer,
        alloy::signers::local::PrivateKeySigner::random(),
    )
    .await;
    let resp = post(
        "/v1/participants/me/account",
        stranger.session.token().await.unwrap(),
        serde_json::json!({"account": someone.address(), "deadline": 4_000_000_000u64,
            "signature": format!("0x{}", "11".repeat(64) + "1b")}),
    )
    .await
    .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let info = consumer.session.account(someone.address()).await.unwrap();
    assert_eq!((info.did, info.role), (None, None));

    // A configuration whose content is not what its CID names: refused, no new version.
    provider
        .session
        .register_config(&provider.evm, PROVIDER_CONFIG)
        .await
        .unwrap();
    let claimed = content::unixfs::cid_of(PROVIDER_CONFIG.as_bytes()).to_string();
    let resp = post(
        "/v1/providers/me/config",
        provider.session.token().await.unwrap(),
        serde_json::json!({"config": PROVIDER_CONFIG.replace("edge-1", "evil"), "cid": claimed,
            "deadline": 4_000_000_000u64, "signature": format!("0x{}", "11".repeat(64) + "1b")}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: api::Problem = resp.json().await.unwrap();
    assert!(problem.detail.contains("CID"), "{problem:?}");
    let current = sdk::Client::new(&url)
        .unwrap()
        .provider_config(&provider.did())
        .await
        .unwrap();
    assert_eq!(
        (current.version, current.config.as_str()),
        (1, PROVIDER_CONFIG)
    );

    // Reservations beyond the capacity or of nothing: refused, capacity untouched.
    let o = offer("bad-1", 2, 1_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    for quantity in [0, 3] {
        let err = consumer
            .session
            .reserve(&request(&o, quantity))
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), 422, "{err}");
    }
    let mut unknown = request(&o, 1);
    unknown.plan_id = "no-such-plan".parse().unwrap();
    assert_eq!(
        status_of(&consumer.session.reserve(&unknown).await.unwrap_err()),
        422
    );
    let resp = post(
        "/v1/reservations",
        consumer.session.token().await.unwrap(),
        serde_json::json!({"offerId": o.id, "planId": o.plans[0].id, "quantity": 1, "surprise": true}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 422, "unknown fields are refused");

    // A purchase without an Idempotency-Key or with a foreign signature: refused, still held.
    let r = consumer.session.reserve(&request(&o, 2)).await.unwrap();
    let sig = |n: &str| format!("0x{}1b", n.repeat(64));
    let resp = post(
        &format!("/v1/reservations/{}/purchase", r.id),
        consumer.session.token().await.unwrap(),
        serde_json::json!({"documentSignature": "00".repeat(64), "openSignature": sig("11"), "permitSignature": sig("11")}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let forged_open = stranger
        .session
        .purchase(&request(&o, 2), &r, &stranger.evm, "k")
        .await;
    assert!(
        forged_open.is_err(),
        "another consumer cannot buy this reservation"
    );
    // The provider's acceptance with a bad signature changes nothing either.
    let c = consumer
        .session
        .purchase(&request(&o, 2), &r, &consumer.evm, "good")
        .await
        .unwrap();
    let resp = post(
        &format!("/v1/contracts/{}/accept", c.id),
        provider.session.token().await.unwrap(),
        serde_json::json!({"signature": "00".repeat(64)}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        consumer.session.contract(c.id).await.unwrap().state,
        ContractState::Proposed
    );
    provider.session.accept(c.id).await.unwrap();
    let done = until_settled(&consumer, c.id).await;
    assert_eq!(done.state, ContractState::Active);
    broker.stop();
}

/// Reservations that are not bought in time give their units back, with an event.
#[tokio::test]
async fn expired_reservations_release_their_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(dir.path(), &["--reservation-ttl", "1"]);
    let provider = Participant::new(&broker.url, Role::Provider).await;
    let consumer = Participant::new(&broker.url, Role::Consumer).await;
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    let o = offer("ttl-1", 2, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let first = consumer.session.reserve(&request(&o, 2)).await.unwrap();
    let err = consumer.session.reserve(&request(&o, 1)).await.unwrap_err();
    assert_eq!(status_of(&err), 409);
    // Expired: the expiry is announced and the units are free again.
    let first_id = first.id.to_string();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let e = events.next().await.unwrap().expect("the stream goes on");
            if e.topic() == Topic::ReservationExpired && e.subject == first_id {
                return;
            }
        }
    })
    .await
    .expect("the expiry is an event");
    eventually("the units to be free again", Patience::secs(10), || async {
        consumer.session.reserve(&request(&o, 2)).await.is_ok()
    })
    .await;
    // The expired reservation cannot be bought.
    let err = consumer
        .session
        .purchase(&request(&o, 2), &first, &consumer.evm, "late")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 410, "{err}");
    broker.stop();
}

/// A participant's own transaction goes through the broker only as its account signed it: terms
/// are refused when the chain would revert the call or the call leaves the deployment, another
/// account's signature is refused, and a relayed call does what it says, once.
#[tokio::test]
async fn a_participants_own_transaction_is_relayed_as_signed_and_nothing_else() {
    use alloy::primitives::{Address, U256};
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol_types::SolCall;

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    // A consumer: faucet credits, and gas money for what its account sends itself.
    let consumer = Participant::new(&broker.url, Role::Consumer).await;
    let ledger = consumer.session.client().ledger().await.unwrap();
    let (token, market) = (ledger.contracts.credit_token, ledger.contracts.marketplace);

    // Earnings it does not have: the chain would revert the withdrawal, so no terms.
    let withdraw = contracts::Marketplace::withdrawCall {
        to: consumer.evm.address(),
        amount: U256::from(1),
    }
    .abi_encode();
    let refused = consumer
        .session
        .transaction_terms(market, withdraw.into())
        .await
        .unwrap_err();
    assert_eq!(status_of(&refused), 422, "{refused}");

    let stranger = PrivateKeySigner::random();
    let transfer: alloy::primitives::Bytes = contracts::CreditToken::transferCall {
        to: stranger.address(),
        value: U256::from(units(5).base_units()),
    }
    .abi_encode()
    .into();
    // A call outside the deployment is not relayed.
    let outside = consumer
        .session
        .transaction_terms(Address::repeat_byte(9), transfer.clone())
        .await
        .unwrap_err();
    assert_eq!(status_of(&outside), 400, "{outside}");

    // The consumer's terms signed by another account: refused, nothing moves.
    let terms = consumer
        .session
        .transaction_terms(token, transfer.clone())
        .await
        .unwrap();
    assert_eq!(terms.from, consumer.evm.address());
    let forged = sdk::market::sign_own(
        &stranger,
        &api::ledger::TxTerms {
            from: stranger.address(),
            ..terms.clone()
        },
        token,
        transfer.clone(),
    )
    .unwrap();
    let refused = consumer
        .session
        .relay_transaction(forged)
        .await
        .unwrap_err();
    assert_eq!(status_of(&refused), 403, "{refused}");
    let balance = |a: Address| {
        let session = &consumer.session;
        async move { session.account(a).await.unwrap().credits }
    };
    assert!(balance(stranger.address()).await.is_zero());

    // Its own: relayed and mined; the same bytes again move nothing more.
    let before = consumer.credits().await;
    let raw = sdk::market::sign_own(&consumer.evm, &terms, token, transfer).unwrap();
    let first = consumer
        .session
        .relay_transaction(raw.clone())
        .await
        .unwrap();
    let again = consumer.session.relay_transaction(raw).await.unwrap();
    assert_eq!(first.tx_hash, again.tx_hash);
    assert_eq!(balance(stranger.address()).await, units(5));
    assert_eq!(
        consumer.credits().await,
        before.checked_sub(units(5)).unwrap()
    );
    broker.stop();
}
