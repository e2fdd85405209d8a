//! `ledger-node` as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use contracts::CreditToken;
use ledger::accounts::dev_signer;
use ledger::anvil::free_port;
use ledger::deployment::Deployment;
use ledger::ChainClient;

const BIN: &str = env!("CARGO_BIN_EXE_ledger-node");

/// Starts `ledger-node up` on any free port and waits for its "ready" line; returns the child,
/// its output and the RPC URL it reported.
fn up(dir: &std::path::Path) -> (Child, String, String) {
    let mut child = Command::new(BIN)
        .args(["up", "--data-dir"])
        .arg(dir)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(60)
        {
            panic!("ledger-node up ended before it was ready: {out}");
        }
        out.push_str(&line);
        if line.starts_with("ready") {
            break;
        }
    }
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("rpc url"))
        .expect("ledger-node names its rpc url")
        .trim()
        .to_string();
    (child, out, url)
}

fn stop(mut child: Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "ledger-node up exited with {status}");
}

#[tokio::test]
async fn up_twice_on_one_directory_keeps_the_chain_and_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let (child, out, url) = up(dir.path());
    assert!(out.contains("deployed on"), "{out}");
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let deployment = Deployment::load(&Deployment::path_in(dir.path()))
        .unwrap()
        .unwrap();

    // Change some state.
    let client = ChainClient::connect(&url, dev_signer(2).unwrap())
        .await
        .unwrap();
    let to = dev_signer(15).unwrap().address();
    let token = deployment.contracts.credit_token;
    client
        .send_call(
            token,
            &CreditToken::transferCall {
                to,
                value: U256::from(12345),
            },
        )
        .await
        .unwrap();
    let balance = CreditToken::new(token, client.provider())
        .balanceOf(to)
        .call()
        .await
        .unwrap();
    let block = client.block_number().await.unwrap();
    stop(child);

    let (child, out, url) = up(dir.path());
    assert!(out.contains("reusing the deployment"), "{out}");
    assert_eq!(
        Deployment::load(&Deployment::path_in(dir.path()))
            .unwrap()
            .unwrap(),
        deployment
    );
    let client = ChainClient::connect(&url, dev_signer(2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        CreditToken::new(token, client.provider())
            .balanceOf(to)
            .call()
            .await
            .unwrap(),
        balance
    );
    assert!(client.block_number().await.unwrap() >= block);
    stop(child);
}

#[test]
fn deploy_to_nothing_or_with_a_bad_key_says_what_to_do_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(
        &key,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    )
    .unwrap();
    let out = dir.path().join("deployment.json");
    let port = free_port().unwrap();
    let run = |key: &std::path::Path| {
        Command::new(BIN)
            .args([
                "deploy",
                "--rpc-url",
                &format!("http://127.0.0.1:{port}"),
                "--broker",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "--key-file",
            ])
            .arg(key)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(&key);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("cannot reach the chain node"), "{stderr}");
    assert!(!out.exists());

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "hunter2").unwrap();
    let o = run(&bad);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("64 hex digits") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    assert!(!out.exists());
}
