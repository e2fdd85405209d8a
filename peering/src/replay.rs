//! Fresh presentations only: each carries its time (unix milliseconds), signed into the
//! handshake by the consumer's static key. The agent takes one only when it is within the
//! clock-skew window of its own clock, not from before the agent started, and not already seen
//! from that key (a cache of the presentations taken within the window), so a recorded
//! handshake message is refused when replayed, before the key confirmation even runs. Concurrent
//! dials of one consumer may arrive out of order: each is taken once.

use std::collections::BTreeSet;

/// How far a presentation's time may be from the agent's clock.
pub const PRESENTATION_SKEW_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error(
        "the presentation's time is more than {0} s from the provider's clock; check the clock"
    )]
    Skewed(u64),
    #[error("a replayed presentation (already taken, or made before the agent started)")]
    Replayed,
}

/// The presentations taken within the skew window, as (time, consumer key).
#[derive(Debug)]
pub struct ReplayGuard {
    /// Nothing from before this (the agent's start: what it saw before is forgotten).
    floor: u64,
    seen: BTreeSet<(u64, String)>,
}

impl ReplayGuard {
    pub fn new(started_ms: u64) -> Self {
        Self {
            floor: started_ms,
            seen: BTreeSet::new(),
        }
    }

    /// Whether a presentation from `consumer` made at `at` may be taken at `now` (both unix
    /// milliseconds); `take` then records it.
    pub fn check(&self, consumer: &str, at: u64, now: u64) -> Result<(), Stale> {
        if at.abs_diff(now) > PRESENTATION_SKEW_MS {
            return Err(Stale::Skewed(PRESENTATION_SKEW_MS / 1000));
        }
        if at < self.floor || self.seen.contains(&(at, consumer.to_string())) {
            return Err(Stale::Replayed);
        }
        Ok(())
    }

    /// Records a taken presentation and forgets those the skew window refuses by now (the
    /// cache holds one window of admissions, which only holders of consumer keys can make).
    pub fn take(&mut self, consumer: &str, at: u64, now: u64) {
        self.seen.insert((at, consumer.to_string()));
        let horizon = now.saturating_sub(PRESENTATION_SKEW_MS);
        if self.seen.first().is_some_and(|(t, _)| *t < horizon) {
            self.seen = self.seen.split_off(&(horizon, String::new()));
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fresh_presentation_is_taken_once() {
        let start = 1_000_000;
        let mut g = ReplayGuard::new(start);
        // Made before the agent started: refused (it may have been taken before a restart).
        assert_eq!(g.check("a", start - 1, start), Err(Stale::Replayed));
        let t = start + 10;
        g.check("a", t, t).unwrap();
        g.take("a", t, t);
        // The same again (a replay): refused; an earlier or later one not seen yet: taken.
        assert_eq!(g.check("a", t, t + 5), Err(Stale::Replayed));
        g.check("a", t - 1, t + 5).unwrap();
        g.check("a", t + 1, t + 5).unwrap();
        // Another key has its own.
        g.check("b", t, t).unwrap();
        // Far from the agent's clock either way: refused.
        let far = t + PRESENTATION_SKEW_MS + 1;
        assert!(matches!(g.check("b", far, t), Err(Stale::Skewed(_))));
        assert!(matches!(g.check("b", t, far), Err(Stale::Skewed(_))));
    }

    #[test]
    fn the_cache_holds_one_window_and_old_presentations_stay_refused() {
        let mut g = ReplayGuard::new(0);
        let now = 10_000_000;
        for i in 0..5000u64 {
            let at = now - 60_000 + i * 12;
            g.take(&format!("k{i}"), at, at);
        }
        g.take("late", now, now);
        assert!(g.len() < 5000 / 2 + 10, "{}", g.len());
        // A forgotten presentation replayed: refused by the window.
        let k1 = now - 60_000 + 12;
        assert!(matches!(g.check("k1", k1, now), Err(Stale::Skewed(_))));
        // One still in the window: refused as seen.
        let k4999 = now - 60_000 + 4999 * 12;
        assert_eq!(g.check("k4999", k4999, now), Err(Stale::Replayed));
        g.check("k1", now + 1, now).unwrap();
    }
}
