//! Exponential backoff with full jitter, bounded.

use std::time::Duration;

use rand::Rng;

/// Delay before retry number `attempt` (1 = first retry): uniform in `0..=min(max, base·2^(attempt-1))`.
pub fn backoff(attempt: u32, base_ms: u64, max_ms: u64) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(max_ms).max(1);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_bounded() {
        for _ in 0..200 {
            assert!(backoff(1, 100, 5000) <= Duration::from_millis(100));
            assert!(backoff(3, 100, 5000) <= Duration::from_millis(400));
            assert!(backoff(30, 100, 5000) <= Duration::from_millis(5000));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(5, 100, 5000)).collect();
        assert!(spread.len() > 5, "jitter spreads the delays");
    }
}
