//! The statistics of probe samples, pure: what a credential states is computed here and nowhere
//! else.

/// Round-trip statistics in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    /// Mean absolute difference of consecutive round trips (RFC 3550's jitter, unsmoothed).
    pub jitter: u64,
    pub samples: u64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: u64) -> u64 {
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Latency of round trips taken in order; none without samples.
pub fn latency(round_trips: &[u64]) -> Option<Latency> {
    if round_trips.is_empty() {
        return None;
    }
    let mut sorted = round_trips.to_vec();
    sorted.sort_unstable();
    let diffs: u64 = round_trips.windows(2).map(|w| w[0].abs_diff(w[1])).sum();
    let jitter = if round_trips.len() > 1 {
        diffs / (round_trips.len() as u64 - 1)
    } else {
        0
    };
    Some(Latency {
        p50: percentile(&sorted, 50),
        p99: percentile(&sorted, 99),
        jitter,
        samples: round_trips.len() as u64,
    })
}

/// Share of reachability checks in the last `window` seconds before `now` that succeeded, in
/// basis points (10 000 = always reachable); none when no check fell in the window.
pub fn uptime(checks: &[(u64, bool)], now: u64, window: u64) -> Option<u32> {
    let since = now.saturating_sub(window);
    let (mut total, mut up) = (0u64, 0u64);
    for &(at, ok) in checks {
        if at > since && at <= now {
            total += 1;
            up += u64::from(ok);
        }
    }
    (total > 0).then(|| (up * 10_000 / total) as u32)
}

/// Bytes per second of a transfer of `bytes` that took `micros`.
pub fn throughput(bytes: u64, micros: u64) -> u64 {
    (u128::from(bytes) * 1_000_000 / u128::from(micros.max(1))).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_jitter_follows_the_order_taken() {
        let l = latency(&[100, 300, 200, 400]).unwrap();
        assert_eq!((l.p50, l.p99, l.samples), (200, 400, 4));
        // |100-300| + |300-200| + |200-400| = 500 over three steps
        assert_eq!(l.jitter, 166);
        let hundred: Vec<u64> = (1..=100).collect();
        let l = latency(&hundred).unwrap();
        assert_eq!((l.p50, l.p99, l.jitter), (50, 99, 1));
        assert_eq!(latency(&[]), None);
        assert_eq!(latency(&[7]).unwrap().jitter, 0);
    }

    #[test]
    fn uptime_counts_only_the_window() {
        let checks = [
            (10, false),
            (100, true),
            (200, true),
            (300, false),
            (400, true),
        ];
        assert_eq!(uptime(&checks, 400, 1_000), Some(6_000));
        assert_eq!(uptime(&checks, 400, 150), Some(5_000));
        assert_eq!(uptime(&checks, 400, 50), Some(10_000));
        assert_eq!(uptime(&checks, 10_000, 60), None);
    }

    #[test]
    fn throughput_in_bytes_per_second() {
        assert_eq!(throughput(1_000_000, 500_000), 2_000_000);
        assert_eq!(throughput(5, 0), 5_000_000);
    }
}
