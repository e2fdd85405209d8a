//! A throwaway PostgreSQL server for tests and benchmarks: its own data directory and port, started
//! with the installed server binaries (Debian's `postgresql` package), stopped and removed on drop.
//! Running as root, the server runs as the `postgres` system user (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PgServerError {
    #[error("PostgreSQL server binaries not found: install Debian's `postgresql` package (scripts/test does) or set MERCATO_PG_BIN")]
    NotInstalled,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MERCATO_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl PgServer {
    pub fn start() -> Result<Self, PgServerError> {
        let bin = find_bin().ok_or(PgServerError::NotInstalled)?;
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| PgServerError::Step {
                step: "finding a port",
                detail: e.to_string(),
            })?;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mercato-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| PgServerError::Step {
            step: "creating the data directory",
            detail: e.to_string(),
        })?;
        let server = Self {
            dir,
            bin,
            as_postgres: is_root(),
            port,
        };
        if server.as_postgres {
            server.run_plain(
                "chown",
                &["-R", "postgres:postgres", &server.dir.to_string_lossy()],
                "chown",
            )?;
        }
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "mercato",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
        )?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            server.dir.display()
        );
        server.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &server.dir.join("log").to_string_lossy(),
                "-w",
                "start",
            ],
            "pg_ctl start",
        )?;
        Ok(server)
    }

    /// URL of database `name` (create it first with `create_database`).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://mercato@127.0.0.1:{}/{name}", self.port)
    }

    pub fn create_database(&self, name: &str) -> Result<String, PgServerError> {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "mercato",
                name,
            ],
            "createdb",
        )?;
        Ok(self.url(name))
    }

    fn run(&self, tool: &str, args: &[&str], step: &'static str) -> Result<(), PgServerError> {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| PgServerError::Step {
                step,
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(PgServerError::Step {
                step,
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    fn run_plain(
        &self,
        program: &str,
        args: &[&str],
        step: &'static str,
    ) -> Result<(), PgServerError> {
        let status =
            Command::new(program)
                .args(args)
                .status()
                .map_err(|e| PgServerError::Step {
                    step,
                    detail: e.to_string(),
                })?;
        if status.success() {
            Ok(())
        } else {
            Err(PgServerError::Step {
                step,
                detail: status.to_string(),
            })
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.run(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"],
            "pg_ctl stop",
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
