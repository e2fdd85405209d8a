//! Compute sessions: the agent runs a command per admitted session with the channel as its stdin
//! and stdout, and reads what the process used (CPU time, peak memory) from the kernel when it
//! ends (`wait4`), for the usage record.

use std::process::{Command, Stdio};

use tokio::process::{ChildStdin, ChildStdout};

pub struct SessionProcess {
    pid: i32,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
}

/// What a finished session process used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    pub cpu_millis: u64,
    pub max_memory_kib: u64,
}

impl SessionProcess {
    /// Starts `sh -c command`.
    pub fn start(command: &str) -> std::io::Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let missing = || std::io::Error::other("no pipe to the session process");
        let stdin = ChildStdin::from_std(child.stdin.take().ok_or_else(missing)?)?;
        let stdout = ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
        let pid = i32::try_from(child.id()).map_err(std::io::Error::other)?;
        // The process is reaped by `finish` (wait4), not by `Child`.
        std::mem::forget(child);
        Ok(Self { pid, stdin, stdout })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// Waits up to `grace` for the session process to end by itself, then kills it; returns what it
/// used.
pub async fn finish(pid: i32, grace: std::time::Duration) -> ProcessUsage {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + grace;
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: wait4 on our own child with valid out-pointers.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if r == pid {
                break;
            }
            if r < 0 {
                return ProcessUsage::default();
            }
            if std::time::Instant::now() >= deadline {
                // SAFETY: kill(2) on our own child, not reaped yet; then reap it.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
                    return ProcessUsage::default();
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
        ProcessUsage {
            cpu_millis: ms(ru.ru_utime) + ms(ru.ru_stime),
            max_memory_kib: ru.ru_maxrss as u64,
        }
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_session_process_reports_the_cpu_it_used() {
        let mut p = SessionProcess::start("cat; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
            .unwrap();
        p.stdin.write_all(b"abc").await.unwrap();
        drop(p.stdin);
        let mut out = String::new();
        p.stdout.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "abc");
        let usage = finish(p.pid, std::time::Duration::from_secs(30)).await;
        assert!(usage.cpu_millis > 10, "{usage:?}");
        assert!(usage.max_memory_kib > 0, "{usage:?}");
    }
}
