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
