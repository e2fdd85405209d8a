//! The external bus (RabbitMQ in production): the relay moves outbox rows to it in order and marks
//! them published only once the bus has confirmed them, so a bus that is down delays events and
//! never loses one (delivery is at least once; consumers deduplicate by `seq`, the message id).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use catalog::store::Backend;
use tokio::sync::Notify;

use super::outbox::{self, RawEvent};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

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
    fn publish<'a>(&'a self, events: &'a [RawEvent]) -> BoxFuture<'a, Result<(), BusError>>;
}

/// PostgreSQL: one relay at a time across broker processes, so events reach the bus in order.
const RELAY_LOCK: i64 = 7270003;
const RELAY_BATCH: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Moves one batch of unpublished events to `bus`; returns how many it moved.
pub async fn relay_once(store: &Store, bus: &dyn Bus) -> Result<usize, RelayError> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let events = outbox::unpublished(&mut tx, RELAY_BATCH).await?;
    let Some(last) = events.last() else {
        return Ok(0);
    };
    // Not confirmed: the transaction rolls back and the batch is tried again.
    bus.publish(&events).await?;
    sqlx::query("UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND seq <= $2")
        .bind(crate::store::now() as i64)
        .bind(last.seq as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events.len())
}

/// Relays until shutdown: woken after each commit that emitted events, and every `idle` anyway
/// (events written by other broker processes). Backs off while the bus is down.
pub async fn relay(
    store: Store,
    bus: Arc<dyn Bus>,
    wake: Arc<Notify>,
    idle: Duration,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pause = match relay_once(&store, bus.as_ref()).await {
            Ok(n) if n > 0 => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => idle,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "events not relayed yet");
                let b = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                b
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
