//! The README's first command as a user runs it: the embedded default comes up, answers, and
//! keeps its chain across restarts.

use e2e::{mercato, BrokerProcess};

#[tokio::test]
async fn the_embedded_default_runs_and_keeps_its_ledger_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    assert!(
        broker
            .output
            .contains("Mercato broker listening on http://"),
        "{}",
        broker.output
    );

    let first: serde_json::Value = mercato(&broker.url, &["status", "--json"]).json();
    assert_eq!(first["chainId"], 31337);
    let client = sdk::Client::new(&broker.url).unwrap();
    let status = client.ledger().await.unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap()["contracts"],
        first["contracts"]
    );
    assert!(status.block_number >= status.deployment_block);

    // The table form names every contract.
    let status_table = mercato(&broker.url, &["status"]);
    let table = status_table.out();
    assert!(table.contains("Marketplace") && table.contains("CredentialRegistry"));

    // Errors are problem+json with a reason.
    let resp = reqwest::get(format!("{}/v1/nothing-here", broker.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing-here"));

    broker.stop();
    let again = BrokerProcess::start(dir.path());
    let status2 = sdk::Client::new(&again.url)
        .unwrap()
        .ledger()
        .await
        .unwrap();
    assert_eq!(status2.contracts, status.contracts);
    assert_eq!(status2.deployment_block, status.deployment_block);
    assert!(status2.block_number >= status.block_number);
    again.stop();
}

#[test]
fn the_cli_says_what_to_do_when_the_broker_is_not_there() {
    // A port nobody listens on: one the kernel just gave and took back.
    let url = format!("http://127.0.0.1:{}", e2e::peer::free_port());
    assert!(mercato(&url, &["status"])
        .err()
        .contains("`scripts/run` starts one"));
    assert!(mercato("ftp://x", &["status"])
        .err()
        .contains("not a broker URL"));
}

/// The README's `scripts/run --demo`: the demo script fills a broker with three providers whose
/// agents run, twelve offers (every class, each in its provider's city), and a newcomer buys one
/// and reaches the provider's web service through the contract's credential at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_the_marketplace_with_providers_a_newcomer_can_buy_from_and_reach() {
    use e2e::market::{request, Participant};
    use e2e::peer::free_port;
    use e2e::{eventually_some, Patience};

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("broker"));
    let ports: Vec<String> = (0..6).map(|_| free_port().to_string()).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let demo = std::process::Command::new(root.join("scripts/demo"))
        .env("MERCATO_BROKER", &broker.url)
        .env("MERCATO_DEMO_DIR", dir.path().join("demo"))
        .env("MERCATO_DEMO_PORTS", ports.join(" "))
        .env("MERCATO_CLI", e2e::bin("mercato"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
        .spawn()
        .expect("scripts/demo runs");
    // Stopped as a person stops it (its trap stops the agents and services), whatever happens.
    struct Interrupted(std::process::Child);
    impl Drop for Interrupted {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let mut demo = Interrupted(demo);

    let client = sdk::Client::new(&broker.url).unwrap();
    let started = std::time::Instant::now();
    let offers = eventually_some("the demo's twelve offers", Patience::secs(180), || {
        if let Ok(Some(status)) = demo.0.try_wait() {
            let err = std::fs::read_to_string(dir.path().join("demo.err")).unwrap_or_default();
            panic!("scripts/demo stopped ({status}): {err}");
        }
        let client = client.clone();
        async move {
            let page = client
                .search_offers(&catalog::Query {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .ok()?;
            let mut ids: Vec<String> = page.items.iter().map(|i| i.offer_id.to_string()).collect();
            ids.sort();
            ids.dedup();
            (ids.len() == 12).then_some(ids)
        }
    })
    .await;
    eprintln!("demo: twelve offers on sale after {:?}", started.elapsed());
    for city in ["frankfurt", "milan", "lisbon"] {
        for class in ["compute", "gpu", "network", "data"] {
            let id = format!("demo-{city}-{class}");
            assert!(offers.contains(&id), "{id} is not on sale: {offers:?}");
        }
    }

    // A newcomer buys Milan's compute and reaches Milan's web service through the credential.
    let consumer = Participant::new(&broker.url, api::Role::Consumer).await;
    let offer = client
        .offer(&"demo-milan-compute".parse().unwrap())
        .await
        .unwrap()
        .offer;
    assert_eq!(offer.location.city, "Milan");
    let c = e2e::market::buy_by_policy(&consumer, &request(&offer, 1)).await;
    assert_eq!(c.state, api::ContractState::Active, "{c:?}");
    let credential = consumer.session.credential(c.id).await.unwrap();
    // The agent learns of the contract's credential from the broker's events, and the demo's web
    // service starts beside it: asked until both are there.
    let started = std::time::Instant::now();
    let page = eventually_some(
        "Milan's web service through the contract's channel",
        Patience::secs(30),
        || async {
            let mut channel = sdk::credentials::dial(consumer.session.key(), &credential)
                .await
                .ok()?;
            channel
                .send(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
                .await
                .ok()?;
            let mut page = Vec::new();
            while let Ok(Some(chunk)) = channel.recv().await {
                page.extend_from_slice(&chunk);
            }
            let page = String::from_utf8_lossy(&page).into_owned();
            page.contains("Hello from the demo provider in Milan")
                .then_some(page)
        },
    )
    .await;
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    eprintln!("demo: bought and reached in {:?}", started.elapsed());
    drop(demo);
    broker.stop();
}
