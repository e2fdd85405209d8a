//! Supervises Anvil, the development chain, from the pinned npm package. Its state lives in the
//! data directory and is written every second and on a clean stop, so the chain survives restarts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::accounts::{DEV_ACCOUNTS, DEV_MNEMONIC};

pub const DEFAULT_PORT: u16 = 8545;
pub const DEV_CHAIN_ID: u64 = 31337;
const STATE_FILE: &str = "anvil-state.json";
const PID_FILE: &str = "anvil.pid";
const LOG_FILE: &str = "anvil.log";

#[derive(Debug, Clone)]
pub struct AnvilOptions {
    pub data_dir: PathBuf,
    pub host: String,
    pub port: u16,
    pub chain_id: u64,
    /// Explicit binary; otherwise MERCATO_ANVIL, then node_modules, then PATH.
    pub binary: Option<PathBuf>,
    /// Seconds between dumps of the chain's state to the data directory; `None` dumps it only
    /// when the chain stops (benchmarks: a dump of a large chain stalls the node meanwhile).
    pub state_interval: Option<u64>,
}

impl AnvilOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            chain_id: DEV_CHAIN_ID,
            binary: None,
            state_interval: Some(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    #[error("Anvil not found: run `npm ci` at the repository root (it installs the pinned @foundry-rs/anvil) or set MERCATO_ANVIL to its path")]
    NotFound,
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a chain is already running on {path} (pid {pid}); stop it first or use another data directory")]
    AlreadyRunning { path: PathBuf, pid: u32 },
    #[error("cannot start Anvil: {0}")]
    Spawn(std::io::Error),
    #[error("Anvil exited during start-up ({status}); is port {port} already in use? See {log}")]
    Exited {
        status: String,
        port: u16,
        log: PathBuf,
    },
    #[error("Anvil did not answer on {url} within {0:?}; see {log}", waited)]
    NotReady {
        url: String,
        waited: Duration,
        log: PathBuf,
    },
}

/// Finds the Anvil binary shipped in the npm package for this platform.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MERCATO_ANVIL") {
        return Some(PathBuf::from(p));
    }
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let rel = PathBuf::from(format!(
        "node_modules/@foundry-rs/anvil-{os}-{arch}/bin/anvil"
    ));
    let mut starts = vec![];
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for start in starts {
        for dir in start.ancestors() {
            let candidate = dir.join(&rel);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("anvil"))
            .find(|p| p.is_file())
    })
}

fn pid_alive(pid: u32) -> bool {
    // A zombie (dead, not yet reaped by its parent) holds nothing any more.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether process `pid` is an Anvil keeping its state in `state` (not another process that
/// reused a stale pid).
fn serves(pid: u32, state: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        args.iter().any(|a| a.ends_with(b"anvil"))
            && args.contains(&state.as_os_str().as_encoded_bytes())
    })
}

/// SIGTERM (Anvil writes its state and exits), then SIGKILL if it lingers; whether it is gone.
async fn stop_orphan(pid: u32) -> bool {
    for (signal, patience) in [("-TERM", 20), ("-KILL", 5)] {
        let _ = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(patience);
        while Instant::now() < until {
            if !pid_alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    !pid_alive(pid)
}

/// A running Anvil. Dropping it stops Anvil cleanly (state is dumped on exit).
pub struct DevChain {
    child: Option<Child>,
    url: String,
    data_dir: PathBuf,
}

impl DevChain {
    pub async fn start(options: &AnvilOptions) -> Result<Self, AnvilError> {
        let dir = &options.data_dir;
        let dir_err = |source| AnvilError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let pid_file = dir.join(PID_FILE);
        // The pid file names the chain and the process that started it.
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            let mut ids = text.split_whitespace().map(str::parse::<u32>);
            if let Some(Ok(pid)) = ids.next() {
                let owner = ids.next().and_then(Result::ok);
                if pid_alive(pid) && serves(pid, &dir.join(STATE_FILE)) {
                    match owner {
                        // A predecessor crashed and its chain outlived it (it is still writing
                        // its state, or never learnt of the death): stop it cleanly, so it
                        // writes its state, and start again from that state.
                        Some(owner) if !pid_alive(owner) => {
                            tracing::warn!(pid, owner, dir = %dir.display(), "stopping the chain a crashed predecessor left running");
                            if !stop_orphan(pid).await {
                                return Err(AnvilError::AlreadyRunning {
                                    path: dir.clone(),
                                    pid,
                                });
                            }
                        }
                        // Its owner runs: this directory is in use.
                        _ => {
                            return Err(AnvilError::AlreadyRunning {
                                path: dir.clone(),
                                pid,
                            })
                        }
                    }
                }
            }
        }
        let binary = options
            .binary
            .clone()
            .or_else(find_binary)
            .ok_or(AnvilError::NotFound)?;
        let log_path = dir.join(LOG_FILE);
        let log = std::fs::File::create(&log_path).map_err(dir_err)?;
        let log_err = log.try_clone().map_err(dir_err)?;
        let mut command = Command::new(&binary);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: the closure runs in the forked child before exec, allocates nothing and
            // calls only prctl and getppid, which are async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    // The chain gets SIGTERM (and writes its state) when the thread that started
                    // it ends: a crashed broker, a finished test; it never lingers as an orphan
                    // holding its data directory.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before prctl: then nobody would stop the chain.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .arg("--host")
            .arg(&options.host)
            .arg("--port")
            .arg(options.port.to_string())
            .arg("--chain-id")
            .arg(options.chain_id.to_string())
            .arg("--mnemonic")
            .arg(DEV_MNEMONIC)
            .arg("--accounts")
            .arg(DEV_ACCOUNTS.to_string())
            .arg("--state")
            .arg(dir.join(STATE_FILE))
            .args(
                options
                    .state_interval
                    .map(|s| ["--state-interval".to_string(), s.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(AnvilError::Spawn)?;
        if let Some(pid) = child.id() {
            std::fs::write(&pid_file, format!("{pid} {}", std::process::id())).map_err(dir_err)?;
        }
        let started = Instant::now();
        let limit = Duration::from_secs(30);
        let http = reqwest::Client::new();
        let mut bound =
            (options.port != 0).then(|| format!("http://{}:{}", options.host, options.port));
        let url = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_file(&pid_file);
                return Err(AnvilError::Exited {
                    status: status.to_string(),
                    port: options.port,
                    log: log_path,
                });
            }
            if started.elapsed() > limit {
                let _ = child.start_kill();
                return Err(AnvilError::NotReady {
                    url: bound.unwrap_or_else(|| format!("http://{}:0", options.host)),
                    waited: limit,
                    log: log_path,
                });
            }
            // Port 0: Anvil took a free port and says which in its log.
            if bound.is_none() {
                bound = bound_address(&log_path).map(|a| format!("http://{a}"));
            }
            let Some(url) = bound.clone() else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let probe = http
                .post(&url)
                .json(
                    &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}),
                )
                .send()
                .await;
            if matches!(probe, Ok(ref r) if r.status().is_success()) {
                break url;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tracing::info!(%url, binary = %binary.display(), "anvil started");
        Ok(Self {
            child: Some(child),
            url,
            data_dir: dir.clone(),
        })
    }

    /// The Anvil process id (for measuring its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops Anvil with SIGTERM so it writes its state, and waits for it.
    pub async fn stop(mut self) {
        self.terminate().await;
    }

    async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            }
            let _ = child.kill().await;
            let _ = std::fs::remove_file(self.data_dir.join(PID_FILE));
        }
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = std::fs::remove_file(self.data_dir.join(PID_FILE));
        }
    }
}

/// The address Anvil says it listens on (`Listening on 127.0.0.1:PORT` in its log).
fn bound_address(log: &Path) -> Option<String> {
    std::fs::read_to_string(log).ok()?.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Listening on ")
            .map(|a| a.trim().to_string())
    })
}

/// A port that was free a moment ago on the loopback interface (for tests and benchmarks).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A development-chain JSON-RPC call that only Anvil answers (`evm_snapshot`, `evm_revert`,
/// `evm_increaseTime`, `evm_mine`), for tests and benchmarks.
pub async fn dev_rpc(
    url: &str,
    method: &'static str,
    params: serde_json::Value,
) -> Result<serde_json::Value, crate::ClientError> {
    use alloy::providers::{Provider, ProviderBuilder};
    let unreachable = |e: String| crate::ClientError::Unreachable {
        url: url.to_string(),
        reason: e,
    };
    let provider = ProviderBuilder::new()
        .connect(url)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    provider
        .raw_request(method.into(), params)
        .await
        .map_err(|e| crate::ClientError::Rpc(e.to_string()))
}

/// Moves a development chain's clock on by `seconds` and mines a block at the new time.
pub async fn advance(url: &str, seconds: u64) -> Result<(), crate::ClientError> {
    dev_rpc(url, "evm_increaseTime", serde_json::json!([seconds])).await?;
    dev_rpc(url, "evm_mine", serde_json::json!([])).await?;
    Ok(())
}
