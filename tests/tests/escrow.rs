//! Escrow that never runs silently dry: the parties are warned well before, a contract whose
//! escrow cannot pay is suspended (its credential stops working), a top-up resumes it and its
//! usage settles, and a contract left suspended is closed with its escrow refunded.

use std::time::Duration;

use e2e::market::{buy_by_policy, offer, ppu_offer, request, until_closed, Participant};
use e2e::peer::provider_with_agent;
use e2e::BrokerProcess;

async fn use_bytes(consumer: &Participant, credential: &peering::Credential, n: usize) {
    let data = vec![7u8; n];
    let mut ch = sdk::credentials::dial(consumer.session.key(), credential)
        .await
        .unwrap();
    ch.send(&data).await.unwrap();
    let mut got = 0;
    while got < n {
        got += ch.recv().await.unwrap().unwrap().len();
    }
}

async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_is_watched_warned_suspended_topped_up_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--settle-interval",
        "1",
        "--dispute-window",
        "0",
        "--escrow-warn",
        "100000",
        "--suspended-grace",
        "3",
    ];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let provider = &agent.provider;
    let consumer = Participant::new(&url, "consumer").await;
    let o = ppu_offer("escrow-1", 4, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    let buy = |deposit: u64| {
        let (consumer, o) = (&consumer, o.clone());
        async move {
            let mut req = request(&o, 1);
            req.deposit = Some(deposit);
            buy_by_policy(consumer, &req).await
        }
    };

    // 3,000,000 of escrow; 2,000,000 used (1 MB each way at 10 credits/GB) and settled.
    let c = buy(3_000_000).await;
    let credential = consumer.session.credential(&c.id).await.unwrap();
    use_bytes(&consumer, &credential, 1_000_000).await;
    until("the first usage to settle", || async {
        consumer.session.usage(&c.id).await.unwrap()["settled"] == "2000000"
    })
    .await;
    // The runway is short against the warning threshold: a warning, in the API and as an event.
    let e = consumer.session.escrow(&c.id).await.unwrap();
    assert_eq!(e["runway"]["warning"], true, "{e}");
    assert_eq!(e["runway"]["available"], "1000000", "{e}");
    let mut warned = false;
    while !warned {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a warning")
            .unwrap()
            .unwrap();
        warned = ev.topic == "contract.escrow_low" && ev.subject == c.id;
    }

    // Another 2,000,000 of use: the escrow cannot pay, the contract is suspended and its
    // credential stops working; nothing is charged beyond the escrow.
    use_bytes(&consumer, &credential, 1_000_000).await;
    let mut suspended = false;
    while !suspended {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("a suspension")
            .unwrap()
            .unwrap();
        suspended = ev.topic == "contract.suspended" && ev.subject == c.id;
    }
    until("the agent to refuse the suspended contract", || async {
        sdk::credentials::dial(consumer.session.key(), &credential)
            .await
            .is_err()
    })
    .await;
    assert_eq!(
        consumer
            .session
            .contract(&c.id)
            .await
            .unwrap()
            .chain
            .unwrap()["status"],
        "suspended"
    );

    // A top-up resumes it, a new credential works, the waiting usage settles.
    let out = consumer
        .session
        .top_up(&c.id, &consumer.evm, 5_000_000)
        .await
        .unwrap();
    assert_eq!(out["resumed"], true, "{out}");
    let fresh = consumer.session.credential(&c.id).await.unwrap();
    until("the agent to admit the new credential", || async {
        sdk::credentials::dial(consumer.session.key(), &fresh)
            .await
            .is_ok()
    })
    .await;
    until("the waiting usage to settle", || async {
        consumer.session.usage(&c.id).await.unwrap()["settled"] == "4000000"
    })
    .await;
    let statement: serde_json::Value =
        serde_json::from_str(&consumer.session.statement(&c.id, false).await.unwrap()).unwrap();
    assert_eq!(statement["matchesChain"], true, "{statement}");
    assert_eq!(statement["chainEscrow"], "4000000", "{statement}");

    // A contract left suspended past the grace is closed, its escrow refunded.
    let before = consumer.credits().await;
    let c2 = buy(1_000_000).await;
    let cred2 = consumer.session.credential(&c2.id).await.unwrap();
    use_bytes(&consumer, &cred2, 1_000_000).await;
    let closed = until_closed(&consumer, &c2.id).await;
    assert_eq!(closed.refund.as_deref(), Some("1000000"));
    assert_eq!(consumer.credits().await, before);
    broker.stop();
}

/// A consumer disputes a record within the window: it is held out of settlement while the rest
/// settles; an operator's decision releases (or voids) it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disputed_usage_waits_for_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let op_did = catalog::identity::did_of(&op_key.verifying_key());
    let args = [
        "--settle-interval",
        "1",
        "--dispute-window",
        "3",
        "--operator",
        &op_did,
    ];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let operator = sdk::Session::new(sdk::Client::new(&url).unwrap(), op_key);
    let provider = Participant::new(&url, "provider").await;
    let consumer = Participant::new(&url, "consumer").await;
    let o = ppu_offer("dispute-1", 2, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.deposit = Some(10_000_000);
    let c = e2e::market::buy(&consumer, &provider, &req).await;
    assert_eq!(c.state, "active");
    // Two records the provider's agent reports (signed by the provider).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let record = |id: &str, bytes: u64| {
        let mut r = peering::usage::UsageRecord {
            id: id.into(),
            contract: c.id.clone(),
            provider: provider.did(),
            consumer: consumer.did(),
            credential: String::new(),
            from: now - 5,
            to: now,
            connection_millis: 5000,
            bytes_in: bytes,
            bytes_out: 0,
            cpu_millis: 0,
            max_memory_kib: 0,
            gpu_millis: 0,
            data_accesses: 0,
            signature: String::new(),
        };
        r.sign(provider.session.key());
        r
    };
    let out = provider
        .session
        .report_usage(&[record("fair", 1_000_000), record("padded", 9_000_000)])
        .await
        .unwrap();
    assert!(out.iter().all(|o| o["status"] == "accepted"), "{out:?}");
    // Only the contract's consumer disputes, once, before settlement.
    assert!(provider
        .session
        .dispute_usage("padded", "too much")
        .await
        .is_err());
    consumer
        .session
        .dispute_usage("padded", "we moved 1 MB, not 9")
        .await
        .unwrap();
    assert!(consumer
        .session
        .dispute_usage("padded", "again")
        .await
        .is_err());
    until("the undisputed record to settle", || async {
        consumer.session.usage(&c.id).await.unwrap()["settled"] == "1000000"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        consumer.session.usage(&c.id).await.unwrap()["settled"],
        "1000000"
    );
    // Past the window a settled record cannot be disputed.
    assert!(consumer
        .session
        .dispute_usage("fair", "late")
        .await
        .is_err());
    // The operator voids the padded record: nothing more is charged, and the chain agrees.
    assert!(consumer
        .session
        .resolve_dispute("padded", false)
        .await
        .is_err());
    operator.resolve_dispute("padded", false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let shown = consumer.session.contract(&c.id).await.unwrap();
    assert_eq!(shown.chain.unwrap()["charged"], "1000000");
    broker.stop();
}

/// Reserved plans are charged per period in advance; the period the escrow cannot pay suspends
/// the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_periods_are_charged_in_advance_until_the_escrow_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--settle-interval", "1", "--suspended-grace", "3600"];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let provider = Participant::new(&url, "provider").await;
    let consumer = Participant::new(&url, "consumer").await;
    let mut o = offer("periods-1", 2, 1_000_000);
    o.plans[0].pricing = catalog::model::Pricing {
        reserved: Some(catalog::model::ReservedPrice {
            price: 1_000_000,
            period_seconds: 60,
        }),
        pay_per_use: None,
    };
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.periods = Some(3);
    let c = e2e::market::buy(&consumer, &provider, &req).await;
    assert_eq!(c.state, "active");
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    // Three periods escrowed: charged at opening, then as each falls due (the chain's clock is
    // moved on a period at a time); the fourth cannot be paid and the chain suspends it.
    let ledger: serde_json::Value = reqwest::get(format!("{url}/v1/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rpc = ledger["rpcUrl"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        for (method, params) in [
            ("evm_increaseTime", serde_json::json!([61])),
            ("evm_mine", serde_json::json!([])),
        ] {
            http.post(&rpc)
                .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
                .send()
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut suspended = false;
    while !suspended {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the suspension comes")
            .unwrap()
            .unwrap();
        suspended = ev.topic == "contract.suspended" && ev.subject == c.id;
    }
    let chain = consumer
        .session
        .contract(&c.id)
        .await
        .unwrap()
        .chain
        .unwrap();
    assert_eq!(chain["charged"], "3000000", "{chain}");
    assert_eq!(chain["status"], "suspended");
    assert!(
        consumer.session.credential(&c.id).await.is_err(),
        "no credential while suspended"
    );
    broker.stop();
}
