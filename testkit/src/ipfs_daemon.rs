//! A throwaway IPFS daemon for tests: js-ipfs (installed by scripts/test from
//! scripts/ipfs-daemon, path in MERCATO_JSIPFS) on its own repository and ports, offline, stopped
//! on drop. It serves the same HTTP RPC API as Kubo (`/api/v0/add`, `cat`, `pin/add`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("js-ipfs not found: run scripts/test (it installs scripts/ipfs-daemon) or set MERCATO_JSIPFS to the jsipfs binary")]
    NotInstalled,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

pub struct IpfsDaemon {
    child: Child,
    repo: PathBuf,
    /// The RPC base URL, e.g. http://127.0.0.1:45001.
    pub api: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MERCATO_JSIPFS") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".cache/mercato/ipfs/node_modules/.bin/jsipfs");
    p.is_file().then_some(p)
}

impl IpfsDaemon {
    pub fn start() -> Result<Self, DaemonError> {
        let bin = binary().ok_or(DaemonError::NotInstalled)?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let repo = std::env::temp_dir().join(format!("mercato-ipfs-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        let step = |step: &'static str| {
            move |e: std::io::Error| DaemonError::Step {
                step,
                detail: e.to_string(),
            }
        };
        let run = |args: &[&str], what: &'static str| -> Result<(), DaemonError> {
            let out = Command::new(&bin)
                .args(args)
                .env("IPFS_PATH", &repo)
                .output()
                .map_err(step(what))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(DaemonError::Step {
                    step: what,
                    detail: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
        };
        run(&["init", "--profile", "test"], "jsipfs init")?;
        let (api, gateway, rpc) = (
            free_port().map_err(step("port"))?,
            free_port().map_err(step("port"))?,
            free_port().map_err(step("port"))?,
        );
        run(
            &[
                "config",
                "Addresses.API",
                &format!("/ip4/127.0.0.1/tcp/{api}"),
            ],
            "jsipfs config",
        )?;
        run(
            &[
                "config",
                "Addresses.Gateway",
                &format!("/ip4/127.0.0.1/tcp/{gateway}"),
            ],
            "jsipfs config",
        )?;
        run(
            &[
                "config",
                "Addresses.RPC",
                &format!("/ip4/127.0.0.1/tcp/{rpc}"),
            ],
            "jsipfs config",
        )?;
        run(
            &["config", "--json", "Addresses.Swarm", "[]"],
            "jsipfs config",
        )?;
        let mut child = Command::new(&bin)
            .args(["daemon", "--offline"])
            .env("IPFS_PATH", &repo)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(step("jsipfs daemon"))?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ready = line.contains("Daemon is ready");
                if tx.send(ready).is_err() || ready {
                    break;
                }
            }
        });
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(true) => break,
                Ok(false) if started.elapsed() < Duration::from_secs(60) => continue,
                _ => {
                    let _ = child.kill();
                    return Err(DaemonError::Step {
                        step: "jsipfs daemon",
                        detail: "not ready within 60 s".into(),
                    });
                }
            }
        }
        Ok(Self {
            child,
            repo,
            api: format!("http://127.0.0.1:{api}"),
        })
    }
}

impl Drop for IpfsDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.repo);
    }
}
