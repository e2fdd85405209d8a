//! Waiting for a condition instead of sleeping: `eventually` checks again and again (backing off
//! from 20 ms to 250 ms) until the condition holds or the patience runs out, then fails naming what
//! it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait for a condition.
#[derive(Debug, Clone, Copy)]
pub struct Patience(pub Duration);

impl Patience {
    pub const DEFAULT: Patience = Patience(Duration::from_secs(30));

    pub fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

/// Waits until `check` gives `Some`, and returns what it gave. Panics (failing the test) with
/// `what` when `patience` runs out first.
pub async fn eventually_some<T, F, Fut>(what: &str, patience: Patience, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < patience.0,
            "timed out after {:?} waiting for {what}",
            patience.0
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Waits until `check` holds; panics with `what` when `patience` runs out first.
pub async fn eventually<F, Fut>(what: &str, patience: Patience, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(what, patience, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await
}
