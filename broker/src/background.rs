//! Background work that runs when there is something to do: a job runs its step when woken (a
//! local signal, an event it cares about from any broker process, or the time its last step asked
//! for), not on a polling tick, and stops at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::EventBody;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, Notify};

use crate::events::{EventHub, StoredEvent};
use crate::shutdown::Shutdown;
use crate::store::now;

/// A job looks again at least this often, whatever happens (a safety net, not the trigger).
const SAFETY_NET: Duration = Duration::from_secs(60);
/// Shortest pause between two steps woken by time.
const MIN_PAUSE: Duration = Duration::from_millis(200);

/// What wakes a job besides time.
pub struct Triggers {
    pub local: Option<Arc<Notify>>,
    pub events: broadcast::Receiver<Arc<StoredEvent>>,
    pub wanted: fn(&EventBody) -> bool,
}

impl Triggers {
    pub fn new(hub: &EventHub, local: Option<Arc<Notify>>, wanted: fn(&EventBody) -> bool) -> Self {
        Self {
            local,
            events: hub.subscribe(),
            wanted,
        }
    }

    /// Returns when something the job cares about happened.
    pub async fn wait(&mut self, until: Duration) {
        let local = async {
            match &self.local {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        let wanted = self.wanted;
        let events = &mut self.events;
        let event = async move {
            loop {
                match events.recv().await {
                    Ok(e) if wanted(&e.event.body) => return,
                    Ok(_) => {}
                    // Missed some: look, something may concern us.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = local => {}
            _ = event => {}
            _ = tokio::time::sleep(until) => {}
        }
    }
}

/// How long to wait for a step due at unix second `at` (none: only when woken).
pub fn until(at: Option<u64>) -> Duration {
    match at {
        None => SAFETY_NET,
        Some(at) => {
            Duration::from_secs((at + 1).saturating_sub(now())).clamp(MIN_PAUSE, SAFETY_NET)
        }
    }
}

/// Runs `step` until shutdown; each step returns when it next has something to do.
pub async fn run<F, Fut, E>(
    name: &'static str,
    mut triggers: Triggers,
    shutdown: Shutdown,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<u64>, E>>,
    E: std::fmt::Display,
{
    loop {
        let next = match step().await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(job = name, error = %e, "background step failed; retrying");
                Some(now() + 1)
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = triggers.wait(until(next)) => {}
        }
    }
}
