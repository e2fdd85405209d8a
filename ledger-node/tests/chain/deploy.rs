use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use ledger::accounts::dev_signer;
use ledger::anvil::AnvilOptions;
use ledger::deploy::{DeployError, DeployOptions};
use ledger::deployment::{Deployment, DeploymentError};
use ledger::devnet::{self, DevnetError};
use ledger::{deploy, ChainClient};

use crate::proxy::{self, Fault};

#[tokio::test]
async fn a_wrong_chain_id_or_an_unfunded_key_deploys_nothing() {
    let n = crate::devnet().await;
    let url = n.net.chain.url();

    let client = ChainClient::connect(url, dev_signer(7).unwrap())
        .await
        .unwrap();
    // The admin administers and never acts: the broker must be another account.
    let err = deploy(
        &client,
        &DeployOptions::production(client.address()),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeployError::BrokerIsAdmin(_)), "{err}");
    assert!(err.to_string().contains("another --broker"), "{err}");
    let broker = dev_signer(1).unwrap().address();
    let mut options = DeployOptions::production(broker);
    options.expected_chain_id = Some(1);
    let err = deploy(&client, &options, |_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::WrongChain {
                expected: 1,
                actual: 31337,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        client
            .provider()
            .get_transaction_count(client.address())
            .await
            .unwrap(),
        0
    );

    let poor = ChainClient::connect(url, PrivateKeySigner::random())
        .await
        .unwrap();
    let err = deploy(&poor, &DeployOptions::production(broker), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeployError::InsufficientFunds { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("fund it"));
    assert_eq!(
        poor.provider()
            .get_transaction_count(poor.address())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_deployment_that_fails_midway_is_reported_with_its_step() {
    let n = crate::devnet().await;
    // The third transaction (ParticipantRegistry... BillingModels) is refused for good.
    let proxy = proxy::start(n.net.chain.url(), Fault::Refuse, 2, 100).await;
    let client = ChainClient::connect(&proxy.url, dev_signer(8).unwrap())
        .await
        .unwrap();
    let err = deploy(
        &client,
        &DeployOptions::production(dev_signer(1).unwrap().address()),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("deploying BillingModels"), "{err}");
}

#[tokio::test]
async fn up_reuses_a_deployment_and_refuses_a_corrupt_or_foreign_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let first = devnet::up(&options, |_| {}).await.unwrap();
    assert!(first.deployed_now);
    let deployment = first.deployment.clone();
    first.chain.stop().await;

    let second = devnet::up(&options, |_| {}).await.unwrap();
    assert!(!second.deployed_now);
    assert_eq!(second.deployment, deployment);
    second.chain.stop().await;

    // A corrupt deployment.json stops start-up with a way out.
    let path = Deployment::path_in(dir.path());
    std::fs::write(&path, "{\"chainId\": 5").unwrap();
    let err = devnet::up(&options, |_| {}).await.err().unwrap();
    assert!(
        matches!(
            err,
            DevnetError::Deployment(DeploymentError::Corrupt { .. })
        ),
        "{err}"
    );

    // A deployment.json whose contracts are not on this chain (state lost) is refused too.
    let other = tempfile::tempdir().unwrap();
    deployment.save(&Deployment::path_in(other.path())).unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(other.path())
    };
    let err = devnet::up(&options, |_| {}).await.err().unwrap();
    assert!(
        matches!(
            err,
            DevnetError::Deployment(DeploymentError::MissingCode { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_chain_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let _running = devnet::up(&options, |_| {}).await.unwrap();
    let again = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let err = devnet::up(&again, |_| {}).await.err().unwrap();
    assert!(err.to_string().contains("already running"), "{err}");
}

/// A chain whose starter died (a crashed broker whose chain never learnt of it, or is still
/// writing its state) is stopped cleanly and the next start continues from its state, with no
/// one's help; a chain whose starter lives is left alone (above).
#[tokio::test]
async fn a_chain_left_running_by_a_dead_starter_is_stopped_and_its_state_kept() {
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let first = devnet::up(&options, |_| {}).await.unwrap();
    let deployed = first.deployment.clone();
    let pid = first.chain.pid().unwrap();
    // The chain outlives its starter: leak it (no stop on drop) and name a dead starter.
    std::mem::forget(first);
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    std::fs::write(dir.path().join("anvil.pid"), format!("{pid} {dead}")).unwrap();
    let again = devnet::up(&options, |_| {}).await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "the orphaned chain {pid} still runs"
    );
    // Started again from the state it wrote when stopped: the same deployment, not a new one.
    assert_eq!(again.deployment, deployed);
    assert!(!again.deployed_now);
    again.chain.stop().await;
}
