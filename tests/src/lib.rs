//! Helpers for the end-to-end tests: find the workspace's binaries and run them as a user would.

pub mod market;
pub mod peer;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A workspace binary next to the test executable (`cargo build --workspace --bins` builds them).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `mercato-broker` on the embedded default; stopped with SIGTERM on drop.
pub struct BrokerProcess {
    child: Child,
    pub url: String,
    pub output: String,
}

impl BrokerProcess {
    pub fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts with extra arguments (for example `--database-url postgres://…`).
    pub fn start_with(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_env(data_dir, extra, &[])
    }

    /// Starts with extra arguments and environment variables.
    pub fn start_env(data_dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), data_dir, extra, env)
    }

    /// Starts with its API on `api` (a restart where clients expect it).
    pub fn start_on(
        api: u16,
        data_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let chain = free_port();
        let mut child = Command::new(bin("mercato-broker"))
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .args(["--chain-port", &chain.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(data_dir.join("broker.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start mercato-broker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut output = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                    if line.starts_with("data in") {
                        break;
                    }
                }
                Err(_) => panic!(
                    "mercato-broker did not start: {output}{}",
                    std::fs::read_to_string(data_dir.join("broker.log")).unwrap_or_default()
                ),
            }
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{api}"),
            output,
        }
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// Waits for the process to end by itself (a crash); false if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs `mercato` with `args` against `broker`; returns (success, stdout, stderr).
pub fn mercato(broker: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("mercato"))
        .args(["--broker", broker])
        .args(args)
        .output()
        .expect("run mercato");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A chain of its own (`ledger-node up`), as in production: it outlives the broker.
pub struct LedgerProcess {
    child: Child,
    pub rpc_url: String,
    pub deployment: PathBuf,
    /// The broker relayer's key (development account 1), for `--key-file`.
    pub broker_key: PathBuf,
}

impl LedgerProcess {
    pub fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let mut child = Command::new(bin("ledger-node"))
            .args(["up", "--port", &port.to_string(), "--data-dir"])
            .arg(dir.join("ledger"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ledger-node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut output = String::new();
        for line in lines.by_ref().map_while(Result::ok) {
            output.push_str(&line);
            output.push('\n');
            if line.starts_with("ready") {
                break;
            }
        }
        assert!(
            output.contains("ready"),
            "ledger-node did not start: {output}"
        );
        // Keep draining stdout so the chain never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let broker_key = dir.join("broker.key");
        let signer = ledger::accounts::dev_signer(ledger::accounts::BROKER_INDEX).expect("dev key");
        std::fs::write(
            &broker_key,
            catalog::identity::hex_encode(signer.to_bytes().as_slice()),
        )
        .expect("write key");
        Self {
            child,
            rpc_url: format!("http://127.0.0.1:{port}"),
            deployment: dir.join("ledger").join("deployment.json"),
            broker_key,
        }
    }

    /// Arguments that make a broker use this chain.
    pub fn broker_args(&self) -> Vec<String> {
        vec![
            "--rpc-url".into(),
            self.rpc_url.clone(),
            "--deployment".into(),
            self.deployment.display().to_string(),
            "--key-file".into(),
            self.broker_key.display().to_string(),
        ]
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
