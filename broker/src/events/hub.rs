//! The one reader of the outbox in a broker process: it follows the outbox in order (woken by
//! this process's commits, and on a short idle poll for other processes' commits) and fans every
//! event out to the process's subscribers, so a thousand open event streams cost one query, not a
//! thousand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

use super::outbox::{self, StoredEvent};
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Events read per query.
const BATCH: u32 = 500;

#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<StoredEvent>>,
    wake: Arc<Notify>,
    /// The last sequence number fanned out.
    seen: Arc<AtomicU64>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
            wake: Arc::new(Notify::new()),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl EventHub {
    /// Events fanned out from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }

    /// A commit wrote events: read them now rather than at the next poll.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// The last sequence number fanned out.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// Follows the outbox from its head until shutdown.
    pub async fn run(self, store: Store, idle: Duration, shutdown: Shutdown) {
        let mut last = loop {
            match outbox::head(&store).await {
                Ok(seq) => break seq,
                Err(e) => {
                    tracing::warn!(error = %e, "event hub cannot read the outbox head; retrying");
                    if shutdown.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        self.seen.store(last, Ordering::Release);
        loop {
            match outbox::since(&store, last, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    for (seq, read) in batch {
                        last = seq;
                        match read {
                            Ok(e) => {
                                // No subscriber is not an error: nobody is listening.
                                let _ = self.sender.send(Arc::new(e));
                            }
                            Err(corrupt) => {
                                tracing::error!(seq, error = %corrupt, "outbox event skipped")
                            }
                        }
                    }
                    self.seen.store(last, Ordering::Release);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event hub cannot read the outbox; retrying"),
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }
}
