//! The marketplace flow through a running broker on the embedded stack: a provider is onboarded
//! and publishes, a consumer reserves, buys, and closes; the chain agrees at every step.

use std::time::Duration;

use e2e::market::{buy, offer, request, until_closed, until_final, Participant, PROVIDER_CONFIG};
use e2e::BrokerProcess;
use sdk::SdkError;

fn status_of(e: &SdkError) -> u16 {
    match e {
        SdkError::Api { status, .. } => *status,
        other => panic!("expected a problem, got {other}"),
    }
}

#[tokio::test]
async fn a_consumer_buys_a_plan_into_an_on_chain_contract_and_closes_it_with_a_refund() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let provider = Participant::new(&broker.url, "provider").await;
    let consumer = Participant::new(&broker.url, "consumer").await;
    let bystander = Participant::new(&broker.url, "consumer").await;
    let mut consumer_events = consumer.session.events(Some(0)).await.unwrap();
    let mut bystander_events = bystander.session.events(Some(0)).await.unwrap();

    // Onboarding: the configuration goes to the content store and its CID on chain.
    let cfg = provider
        .session
        .register_config(&provider.evm, PROVIDER_CONFIG)
        .await
        .unwrap();
    assert_eq!(cfg["version"], 1);
    let cid = cfg["cid"].as_str().unwrap().to_string();
    assert_eq!(
        cid,
        content::unixfs::cid_of(PROVIDER_CONFIG.as_bytes()).to_string()
    );
    let changed = provider
        .session
        .register_config(&provider.evm, &PROVIDER_CONFIG.replace("edge-1", "edge-2"))
        .await
        .unwrap();
    assert_eq!(changed["version"], 2);
    assert_ne!(changed["cid"], cfg["cid"]);

    // Publishing: only the provider's own, signed offers.
    let o = offer("flow-1", 3, 5_000_000);
    let published = provider.session.publish_offer(o.clone()).await.unwrap();
    assert_eq!(published["version"], 1);
    let err = consumer.session.publish_offer(o.clone()).await.unwrap_err();
    assert_eq!(status_of(&err), 403, "{err}");

    // Reserve 2 of 3 and buy them.
    let req = request(&o, 2);
    let r = consumer.session.reserve(&req).await.unwrap();
    let before = consumer.credits().await;
    // A wrong document signature is refused and changes nothing.
    let mut forged = r.clone();
    forged.document = forged.document.replace("flow-1", "flow-X");
    let err = consumer
        .session
        .purchase(&req, &forged, &consumer.evm, "forged")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let key = "purchase-1";
    let c = consumer
        .session
        .purchase(&req, &r, &consumer.evm, key)
        .await
        .unwrap();
    assert_eq!(c.state, "proposed");
    // A retry with the same key returns the same purchase, never a second one.
    let again = consumer
        .session
        .purchase(&req, &r, &consumer.evm, key)
        .await
        .unwrap();
    assert_eq!(again.id, c.id);
    // Only the provider of the contract accepts it.
    let err = bystander.session.accept(&c.id).await.unwrap_err();
    assert!(matches!(status_of(&err), 403 | 404), "{err}");
    provider.session.accept(&c.id).await.unwrap();
    let active = until_final(&consumer, &c.id).await;
    assert_eq!(active.state, "active", "{active:?}");
    let shown = consumer.session.contract(&c.id).await.unwrap();
    let chain = shown.chain.expect("on-chain state");
    assert_eq!(chain["status"], "active");
    assert_eq!(chain["termsCid"], serde_json::json!(r.terms.terms_cid));
    let doc: serde_json::Value = serde_json::from_str(shown.document.as_ref().unwrap()).unwrap();
    assert_eq!(doc["providerConfigCid"], changed["cid"]);
    assert!(shown.provider_signature.is_some() && shown.signatures_cid.is_some());
    // The deposit (two units for one period) left the consumer's account once.
    let deposit: u128 = r.terms.deposit.to::<u128>();
    assert_eq!(deposit, 2 * 5_000_000);
    assert_eq!(consumer.credits().await, before - deposit);

    // The third unit is all that is left.
    let err = consumer.session.reserve(&request(&o, 2)).await.unwrap_err();
    assert_eq!(status_of(&err), 409, "{err}");
    // Contracts are visible to their parties only.
    assert_eq!(consumer.session.contracts().await.unwrap().len(), 1);
    assert_eq!(provider.session.contracts().await.unwrap().len(), 1);
    assert!(bystander.session.contracts().await.unwrap().is_empty());
    let err = bystander.session.contract(&c.id).await.unwrap_err();
    assert_eq!(status_of(&err), 404);

    // Closing refunds what the first period did not use: nothing of the period price, the
    // rest of the escrow (here zero: the deposit paid exactly one period).
    consumer.session.close(&c.id).await.unwrap();
    let closed = until_closed(&consumer, &c.id).await;
    assert_eq!(closed.refund.as_deref(), Some("0"));
    assert_eq!(
        consumer
            .session
            .contract(&c.id)
            .await
            .unwrap()
            .chain
            .unwrap()["status"],
        "closed"
    );
    // Closed contracts give their units back.
    consumer.session.reserve(&request(&o, 3)).await.unwrap();

    // A pay-more-than-needed deposit is refunded on close.
    let o2 = offer("flow-2", 1, 1_000_000);
    provider.session.publish_offer(o2.clone()).await.unwrap();
    let mut req2 = request(&o2, 1);
    req2.deposit = Some(3_000_000);
    let before = consumer.credits().await;
    let c2 = buy(&consumer, &provider, &req2).await;
    assert_eq!(c2.state, "active");
    provider.session.close(&c2.id).await.unwrap();
    let closed = until_closed(&consumer, &c2.id).await;
    assert_eq!(closed.refund.as_deref(), Some("2000000"));
    assert_eq!(consumer.credits().await, before - 1_000_000);

    // Events: the consumer saw its own flow; the bystander saw catalog events but none of it.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(t, s): &(String, String)| t == "contract.closed" && *s == c2.id)
    {
        let e = tokio::time::timeout(Duration::from_secs(20), consumer_events.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seen.push((e.topic, e.subject));
    }
    for topic in [
        "offer.published",
        "reservation.created",
        "contract.proposed",
        "contract.accepted",
        "contract.activated",
        "contract.closed",
    ] {
        assert!(
            seen.iter().any(|(t, _)| t == topic),
            "{topic} missing from {seen:?}"
        );
    }
    let mut other = Vec::new();
    while let Ok(Some(Ok(Some(e)))) =
        tokio::time::timeout(Duration::from_secs(2), bystander_events.next())
            .await
            .map(Some)
    {
        other.push(e.topic);
    }
    assert!(other.iter().any(|t| t == "offer.published"), "{other:?}");
    assert!(
        other
            .iter()
            .all(|t| !t.starts_with("contract.") && !t.starts_with("reservation.")),
        "{other:?}"
    );

    // A consumer without credits: the chain refuses the open, the purchase is undone, the units
    // come back and nothing moved.
    let broke = Participant::with_account(
        &broker.url,
        "consumer",
        alloy::signers::local::PrivateKeySigner::random(),
    )
    .await;
    let o3 = offer("flow-3", 1, 1_000_000);
    provider.session.publish_offer(o3.clone()).await.unwrap();
    let failed = buy(&broke, &provider, &request(&o3, 1)).await;
    assert_eq!(failed.state, "failed", "{failed:?}");
    assert!(
        failed.failure.as_deref().unwrap_or("").contains("refused"),
        "{failed:?}"
    );
    assert_eq!(broke.credits().await, 0);
    let shown = broke.session.contract(&failed.id).await.unwrap();
    assert!(shown.chain.is_none() || shown.chain.unwrap()["status"] == "none");
    consumer.session.reserve(&request(&o3, 1)).await.unwrap();
    broker.stop();
}

/// Every write refused for bad input leaves everything as it was.
#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let url = broker.url.clone();
    let http = reqwest::Client::new();
    let provider = Participant::new(&url, "provider").await;
    let consumer = Participant::new(&url, "consumer").await;
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
        "consumer",
        alloy::signers::local::PrivateKeySigner::random(),
    )
    .await;
    let resp = post(
        "/v1/participants/me/account",
        stranger.session.token().await.unwrap(),
        serde_json::json!({"account": someone.address(), "deadline": 4_000_000_000u64,
            "signature": format!("0x{}", "11".repeat(65))}),
    )
    .await
    .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let info = consumer.session.account(someone.address()).await.unwrap();
    assert_eq!((info.did.as_str(), info.role), ("", 0));

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
            "deadline": 4_000_000_000u64, "signature": format!("0x{}", "11".repeat(65))}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("CID"),
        "{problem}"
    );
    let current: serde_json::Value = http
        .get(format!("{url}/v1/providers/{}/config", provider.did()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (current["version"].as_u64(), current["config"].as_str()),
        (Some(1), Some(PROVIDER_CONFIG))
    );

    // Reservations beyond the capacity or of nothing: refused, capacity untouched.
    let o = offer("bad-1", 2, 1_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    for (quantity, status) in [(0, 422), (3, 422)] {
        let err = consumer
            .session
            .reserve(&request(&o, quantity))
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), status, "{err}");
    }
    let mut unknown = request(&o, 1);
    unknown.plan_id = "no-such-plan".into();
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
    let resp = post(
        &format!("/v1/reservations/{}/purchase", r.id),
        consumer.session.token().await.unwrap(),
        serde_json::json!({"documentSignature": "00", "openSignature": "0x00", "permitSignature": "0x00"}),
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
        consumer.session.contract(&c.id).await.unwrap().state,
        "proposed"
    );
    provider.session.accept(&c.id).await.unwrap();
    let done = until_final(&consumer, &c.id).await;
    assert_eq!(done.state, "active");
    broker.stop();
}

/// Reservations that are not bought in time give their units back, with an event.
#[tokio::test]
async fn expired_reservations_release_their_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(dir.path(), &["--reservation-ttl", "1"]);
    let provider = Participant::new(&broker.url, "provider").await;
    let consumer = Participant::new(&broker.url, "consumer").await;
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    let o = offer("ttl-1", 2, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let first = consumer.session.reserve(&request(&o, 2)).await.unwrap();
    let err = consumer.session.reserve(&request(&o, 1)).await.unwrap_err();
    assert_eq!(status_of(&err), 409);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Expired: the units are free again, and the expired reservation cannot be bought.
    consumer.session.reserve(&request(&o, 2)).await.unwrap();
    let err = consumer
        .session
        .purchase(&request(&o, 2), &first, &consumer.evm, "late")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 410, "{err}");
    let mut expired = false;
    while !expired {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the expiry is an event")
            .unwrap()
            .unwrap();
        expired = e.topic == "reservation.expired" && e.subject == first.id;
    }
    broker.stop();
}
