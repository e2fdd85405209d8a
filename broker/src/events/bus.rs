//! Where committed events go: a bus. The relay moves outbox rows to the bus in order and marks
//! them published only once the bus has confirmed them, so a bus that is down delays events and
//! never loses one (delivery is at least once; consumers deduplicate by `seq`, the message id).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use catalog::store::Backend;
use tokio::sync::{broadcast, Notify};

use super::outbox::{self, Event};
use crate::store::Store;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unreachable: {0}")]
    Unreachable(String),
    #[error("the bus did not confirm event {seq}: {reason}")]
    NotConfirmed { seq: u64, reason: String },
}

pub trait Bus: Send + Sync {
    /// Publishes `events` in order and returns once the bus has confirmed every one.
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>>;
}

/// The embedded default: subscribers in this process (the SSE streams, the purchase driver).
#[derive(Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<Event>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl InProcessBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Bus for InProcessBus {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            for e in events {
                // No subscriber is not an error: nobody is listening.
                let _ = self.sender.send(e.clone());
            }
            Ok(())
        })
    }
}

/// PostgreSQL: one relay at a time across broker processes, so events reach the bus in order.
const RELAY_LOCK: i64 = 7270003;
const RELAY_BATCH: u32 = 256;

/// Moves one batch of unpublished events to `bus`; returns how many it moved.
pub async fn relay_once(store: &Store, bus: &dyn Bus) -> Result<usize, RelayError> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let events = outbox::unpublished(&mut *tx, RELAY_BATCH).await?;
    let Some(last) = events.last() else {
        return Ok(0);
    };
    // Not confirmed: the transaction rolls back and the batch is tried again.
    bus.publish(&events).await?;
    sqlx::query("UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND seq <= $2")
        .bind(crate::identity::now() as i64)
        .bind(last.seq as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events.len())
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("outbox: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Relays for ever: woken by `wake` after each commit that emitted events, and every `idle`
/// anyway (events written by other broker processes). Backs off while the bus is down.
pub async fn relay(store: Store, bus: Arc<dyn Bus>, wake: Arc<Notify>, idle: Duration) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_once(&store, bus.as_ref()).await {
            Ok(n) if n > 0 => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => {
                let _ = tokio::time::timeout(idle, wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "events not relayed yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
