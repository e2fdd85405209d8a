//! Helpers for the end-to-end tests: run the workspace's binaries as a user does (brokers and
//! chains on port 0, reporting the address they bound), the `mercato` CLI with typed answers,
//! participants and offers (`market`), the provider's agent (`peer`), and a check of real answers
//! against the generated OpenAPI document (`openapi`).

pub mod market;
pub mod openapi;
pub mod peer;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use testkit::{eventually, eventually_some, Patience};

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

/// Reads a child's stdout lines until `done` says the start-up is over; returns what it read.
fn read_until(
    child: &mut Child,
    what: &str,
    log: Option<&Path>,
    done: impl Fn(&str) -> bool,
) -> String {
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
                if done(&line) {
                    // Keep draining stdout so the process never blocks on a full pipe.
                    std::thread::spawn(move || for _ in rx {});
                    return output;
                }
            }
            Err(_) => panic!(
                "{what} did not start: {output}{}",
                log.map(|l| std::fs::read_to_string(l).unwrap_or_default())
                    .unwrap_or_default()
            ),
        }
    }
}

/// A running `mercato-broker` (embedded chain unless told otherwise); stopped with SIGTERM on
/// drop.
pub struct BrokerProcess {
    child: Child,
    pub url: String,
    /// The port it listens on (a restart with `start_on` takes it again).
    pub port: u16,
    pub output: String,
}

impl BrokerProcess {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts with extra arguments (for example `--database-url postgres://…`).
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_env(data_dir, extra, &[])
    }

    /// Starts with extra arguments and environment variables.
    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(0, data_dir, extra, env)
    }

    /// Starts with its API on `port` (0: any free one; a restart where clients expect it: the
    /// port the first start reported).
    pub fn start_on(port: u16, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.join("broker.log");
        let mut child = Command::new(bin("mercato-broker"))
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--chain-port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start mercato-broker");
        let output = read_until(&mut child, "mercato-broker", Some(&log), |l| {
            l.starts_with("data in")
        });
        let url = output
            .lines()
            .find_map(|l| l.strip_prefix("Mercato broker listening on "))
            .expect("the broker says where it listens")
            .trim()
            .to_string();
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        Self {
            child,
            url,
            port,
            output,
        }
    }

    /// Moves the embedded chain's clock on by `seconds` and mines a block.
    pub async fn advance_chain(&self, seconds: u64) {
        ledger::anvil::advance(&self.chain_url(), seconds)
            .await
            .unwrap();
    }

    /// What `account` can withdraw from the Marketplace now.
    pub async fn earnings(
        &self,
        marketplace: alloy::primitives::Address,
        account: alloy::primitives::Address,
    ) -> alloy::primitives::U256 {
        let provider = alloy::providers::ProviderBuilder::new()
            .connect(&self.chain_url())
            .await
            .unwrap();
        contracts::Marketplace::new(marketplace, provider)
            .earnings(account)
            .call()
            .await
            .unwrap()
    }

    /// `UsageSettlement.challengeRecord` for a record's leaf, as anyone would send it, simulated
    /// (`eth_call`): `Ok` with what it would refund, or the revert's text.
    pub async fn challenge_record(
        &self,
        proof: &api::usage::UsageProof,
        record: &api::usage::UsageRecord,
        prices: &api::document::UsagePrices,
    ) -> Result<alloy::primitives::U256, String> {
        use contracts::UsageSettlement;
        let provider = alloy::providers::ProviderBuilder::new()
            .connect(&self.chain_url())
            .await
            .unwrap();
        let ledger = sdk::Client::new(&self.url).unwrap().ledger().await.unwrap();
        let steps = |v: &[api::usage::ProofStep]| v.iter().map(|s| (&s.chain()).into()).collect();
        let p = contracts::eip712::UsagePrices::from(&prices.chain());
        UsageSettlement::new(ledger.contracts.usage_settlement, provider)
            .challengeRecord(
                proof.contract.0,
                proof.contract.0,
                record.leaf(),
                UsageSettlement::LeafProof {
                    batchId: proof.batch.0,
                    amount: alloy::primitives::U256::from(proof.amount.base_units()),
                    recordPath: steps(&proof.record_path),
                    contractPath: steps(&proof.contract_path),
                },
                (&p).into(),
            )
            .call()
            .await
            .map_err(|e| {
                e.as_decoded_interface_error::<UsageSettlement::UsageSettlementErrors>()
                    .map_or_else(|| e.to_string(), |d| format!("{d:?}"))
            })
    }

    /// The chain's RPC URL the broker reported.
    pub fn chain_url(&self) -> String {
        self.output
            .lines()
            .find_map(|l| {
                l.strip_prefix("chain ")
                    .and_then(|r| r.split(" at ").nth(1))
            })
            .expect("the broker names its chain")
            .trim()
            .to_string()
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGKILL, as a crash or the OOM killer does: nothing runs after it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end by itself (a crash); false if it is still running.
    pub async fn exited(&mut self, patience: Patience) -> bool {
        let child = &mut self.child;
        let start = std::time::Instant::now();
        while start.elapsed() < patience.0 {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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

/// What `mercato` answered.
#[derive(Debug)]
pub struct Answer {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    /// The JSON answer of a command that must have succeeded (run with `--json`).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        assert!(self.ok, "mercato failed: {}{}", self.stdout, self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.stdout))
    }

    /// Stdout of a command that must have succeeded.
    pub fn out(&self) -> &str {
        assert!(self.ok, "mercato failed: {}{}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Stderr of a command that must have failed.
    pub fn err(&self) -> &str {
        assert!(!self.ok, "mercato succeeded: {}", self.stdout);
        &self.stderr
    }
}

/// Runs `mercato` with `args` against `broker`.
pub fn mercato(broker: &str, args: &[&str]) -> Answer {
    let out = Command::new(bin("mercato"))
        .args(["--broker", broker])
        .args(args)
        .output()
        .expect("run mercato");
    Answer {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    pub fn start(dir: &Path) -> Self {
        let mut child = Command::new(bin("ledger-node"))
            .args(["up", "--port", "0", "--data-dir"])
            .arg(dir.join("ledger"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ledger-node");
        let output = read_until(&mut child, "ledger-node", None, |l| l.starts_with("ready"));
        let rpc_url = output
            .lines()
            .find_map(|l| l.strip_prefix("rpc url"))
            .expect("ledger-node names its rpc url")
            .trim()
            .to_string();
        let broker_key = dir.join("broker.key");
        let signer = ledger::accounts::dev_signer(ledger::accounts::BROKER_INDEX).expect("dev key");
        std::fs::write(
            &broker_key,
            identity::hex_encode(signer.to_bytes().as_slice()),
        )
        .expect("write key");
        Self {
            child,
            rpc_url,
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
