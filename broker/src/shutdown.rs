//! One shutdown signal for every background loop and the HTTP server: each loop `select!`s on
//! `Shutdown::wait`, and stopping the broker sets it once and awaits them all.

use std::time::Duration;

use tokio::sync::watch;

/// Sets the signal (and, dropped, sets it too).
pub struct Trigger(watch::Sender<bool>);

/// Waits for the signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Returns once shutdown has begun.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger is gone: that is a shutdown too.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Sleeps `d`; true when shutdown began meanwhile.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.wait() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_signal() {
        let (trigger, shutdown) = channel();
        let other = shutdown.clone();
        let waiter = tokio::spawn(async move { other.wait().await });
        assert!(!shutdown.is_set());
        assert!(!shutdown.sleep(Duration::from_millis(1)).await);
        trigger.fire();
        waiter.await.unwrap();
        assert!(shutdown.is_set() && shutdown.sleep(Duration::from_secs(60)).await);
    }
}
