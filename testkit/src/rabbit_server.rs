//! A throwaway RabbitMQ server for tests and local production-mode runs: Debian's
//! `rabbitmq-server` with its node, ports and data in a directory of its own.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RabbitServerError {
    #[error("RabbitMQ is not installed ({0} missing); install the Debian package rabbitmq-server (scripts/test does)")]
    Missing(PathBuf),
    #[error("cannot start RabbitMQ: {0}")]
    Start(std::io::Error),
    #[error("RabbitMQ did not open port {port} within {waited:?}; see {log}")]
    Timeout {
        port: u16,
        waited: Duration,
        log: PathBuf,
    },
}

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct RabbitServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl RabbitServer {
    pub fn start() -> Result<Self, RabbitServerError> {
        if !Path::new(SERVER).is_file() {
            return Err(RabbitServerError::Missing(SERVER.into()));
        }
        let dir = tempfile::tempdir().map_err(RabbitServerError::Start)?;
        let mut server = Self {
            dir,
            port: free_port(),
            child: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// `amqp://` URL of the default vhost (guest, which RabbitMQ admits from localhost only).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the server (again, with its data) and waits for its port.
    pub fn resume(&mut self) -> Result<(), RabbitServerError> {
        let d = self.dir.path();
        std::fs::write(d.join("plugins"), "[].").map_err(RabbitServerError::Start)?;
        let log = d.join("server.log");
        let out = std::fs::File::create(&log).map_err(RabbitServerError::Start)?;
        let err = out.try_clone().map_err(RabbitServerError::Start)?;
        let node = format!("mercato{}@localhost", self.port);
        let child = Command::new(SERVER)
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env(
                "RABBITMQ_DIST_PORT",
                (self.port as u32 + 20000).min(65000).to_string(),
            )
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(RabbitServerError::Start)?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(RabbitServerError::Timeout {
            port: self.port,
            waited: START_TIMEOUT,
            log,
        })
    }

    /// Stops the server (its data stays for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        // The Erlang VM may outlive the wrapper script briefly: wait for the port to close.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && start.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.stop();
    }
}
