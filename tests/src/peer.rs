//! Helpers for the peering tests: background processes, an echo service, the provider agent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokio::net::TcpStream;

use crate::bin;

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP service that sends back what it receives; returns its port.
pub async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

pub async fn wait_port(port: u16) {
    crate::eventually(
        &format!("something to listen on {port}"),
        crate::Patience::secs(20),
        || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() },
    )
    .await;
}

/// A port that was free a moment ago, for a process that takes no port 0 (the agent: its port
/// goes into the provider's configuration before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes a participant's key where `mercato --key-file` reads it.
pub fn key_file(dir: &Path, name: &str, key: &ed25519_dalek::SigningKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, identity::hex_encode(&key.to_bytes())).unwrap();
    path
}

/// `mercato agent run` for the provider whose key is in `key`, on `port`, serving `target`
/// (`["--service", ADDR]` or `["--exec", COMMAND]`).
pub async fn spawn_agent(
    broker: &str,
    key: &Path,
    port: u16,
    target: &[&str],
    state: &Path,
    auto_accept: bool,
) -> Killed {
    let mut cmd = Command::new(bin("mercato"));
    cmd.args(["--broker", broker, "--key-file"])
        .arg(key)
        .args(["agent", "run", "--listen", &format!("127.0.0.1:{port}")])
        .args(target)
        .arg("--state-dir")
        .arg(state);
    if auto_accept {
        cmd.arg("--auto-accept");
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port).await;
    Killed(child)
}

/// A provider whose agent runs: its configuration names the agent's address, the agent serves an
/// echo service (or runs `exec` per session) and keeps its state under `dir/agent`.
pub struct AgentProvider {
    pub provider: crate::market::Participant,
    pub key: PathBuf,
    pub state: PathBuf,
    _agent: Killed,
}

pub async fn provider_with_agent(
    url: &str,
    dir: &Path,
    exec: Option<&str>,
    auto_accept: bool,
) -> AgentProvider {
    let provider = crate::market::Participant::new(url, api::Role::Provider).await;
    let port = free_port();
    let config = format!(
        "name: edge\nendpoints:\n  - name: agent\n    url: tcp://127.0.0.1:{port}\npolicies:\n  autoAccept: {auto_accept}\n"
    );
    provider
        .session
        .register_config(&provider.evm, &config)
        .await
        .unwrap();
    let key = key_file(dir, "provider.hex", provider.session.key());
    let state = dir.join("agent");
    let service = match exec {
        Some(cmd) => vec!["--exec".to_string(), cmd.to_string()],
        None => vec![
            "--service".to_string(),
            format!("127.0.0.1:{}", echo_server().await),
        ],
    };
    let target: Vec<&str> = service.iter().map(String::as_str).collect();
    let agent = spawn_agent(url, &key, port, &target, &state, auto_accept).await;
    AgentProvider {
        provider,
        key,
        state,
        _agent: agent,
    }
}

/// Sends `n` bytes through the consumer's channel to the provider's echo service and reads them
/// back (2·n bytes of metered traffic).
pub async fn use_bytes(
    consumer: &crate::market::Participant,
    credential: &peering::Credential,
    n: usize,
) {
    let data = vec![7u8; n];
    // The agent admits a credential once it has checked it against the signed contract.
    let mut ch = crate::eventually_some(
        "the agent to admit the credential",
        crate::Patience::secs(30),
        || async {
            sdk::credentials::dial(consumer.session.key(), credential)
                .await
                .ok()
        },
    )
    .await;
    ch.send(&data).await.unwrap();
    let mut got = 0;
    while got < n {
        got += ch.recv().await.unwrap().unwrap().len();
    }
}
