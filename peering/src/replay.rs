//! Fresh presentations only: each carries its time (unix milliseconds), signed into the
//! handshake by the consumer's static key. The agent takes one from a consumer key only when it
//! is within the clock-skew window of its own clock and later than the last it took from that key
//! (as WireGuard does with its handshake timestamps), and never one from before the agent
//! started, so a recorded handshake message is refused when replayed, before the key
//! confirmation even runs.

use std::collections::HashMap;

/// How far a presentation's time may be from the agent's clock.
pub const PRESENTATION_SKEW_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("the presentation's time is more than {0} s from the provider's clock; check the clock")]
    Skewed(u64),
    #[error("a replayed or reordered presentation (not later than the last one from this key)")]
    Replayed,
}

/// The last presentation time taken from each consumer key.
#[derive(Debug)]
pub struct ReplayGuard {
    /// Nothing from before this (the agent's start: what it saw before is forgotten).
    floor: u64,
    last: HashMap<String, u64>,
}

impl ReplayGuard {
    pub fn new(started_ms: u64) -> Self {
        Self {
            floor: started_ms,
            last: HashMap::new(),
        }
    }

    /// Whether a presentation from `consumer` made at `at` may be taken at `now` (both unix
    /// milliseconds); `take` then records it.
    pub fn check(&self, consumer: &str, at: u64, now: u64) -> Result<(), Stale> {
        if at.abs_diff(now) > PRESENTATION_SKEW_MS {
            return Err(Stale::Skewed(PRESENTATION_SKEW_MS / 1000));
        }
        let last = self.last.get(consumer).copied().unwrap_or(0).max(self.floor);
        if at <= last {
            return Err(Stale::Replayed);
        }
        Ok(())
    }

    /// Records an admitted presentation; entries older than the skew window are dropped (their
    /// keys are held by the window and the floor).
    pub fn take(&mut self, consumer: &str, at: u64, now: u64) {
        let e = self.last.entry(consumer.to_string()).or_insert(0);
        *e = (*e).max(at);
        if self.last.len() > 4096 {
            let horizon = now.saturating_sub(PRESENTATION_SKEW_MS);
            self.floor = self.floor.max(horizon);
            self.last.retain(|_, t| *t > horizon);
        }
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_later_presentations_are_taken() {
        let start = 1_000_000;
        let mut g = ReplayGuard::new(start);
        // Made before the agent started: refused (it may have been taken before a restart).
        assert_eq!(g.check("a", start - 1, start), Err(Stale::Replayed));
        let t = start + 10;
        g.check("a", t, t).unwrap();
        g.take("a", t, t);
        // The same again (a replay), or an earlier one: refused; a later one: taken.
        assert_eq!(g.check("a", t, t + 5), Err(Stale::Replayed));
        assert_eq!(g.check("a", t - 1, t + 5), Err(Stale::Replayed));
        g.check("a", t + 1, t + 5).unwrap();
        // Another key has its own sequence.
        g.check("b", t, t).unwrap();
        // Far from the agent's clock either way: refused.
        let far = t + PRESENTATION_SKEW_MS + 1;
        assert!(matches!(g.check("b", far, t), Err(Stale::Skewed(_))));
        assert!(matches!(g.check("b", t, far), Err(Stale::Skewed(_))));
    }

    #[test]
    fn the_table_stays_bounded_without_readmitting_old_presentations() {
        let mut g = ReplayGuard::new(0);
        let now = 10_000_000;
        for i in 0..5000u64 {
            g.take(&format!("k{i}"), now - 60_000 + i, now - 60_000 + i);
        }
        g.take("late", now, now);
        assert!(g.len() < 5000, "{}", g.len());
        // A dropped key's presentation is still refused when replayed: below the floor (and, by
        // the time the window has passed, too old anyway).
        let k1 = now - 60_000 + 1;
        assert_eq!(g.check("k1", k1, k1 + 1_000), Err(Stale::Replayed));
        assert!(matches!(g.check("k1", k1, now), Err(Stale::Skewed(_))));
        g.check("k1", now + 1, now).unwrap();
    }
}
