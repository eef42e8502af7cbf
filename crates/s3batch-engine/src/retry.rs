//! Exponential backoff with full jitter, bounded, and the one retry loop every storage call of the engine uses.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use s3batch_storage::StorageError;

use crate::EngineConfig;

/// Call `f` until it succeeds, fails permanently, `stop()` says to give up, or `max_attempts` calls were made,
/// sleeping [`backoff`] between calls. Returns the last result.
pub async fn storage_call<T, Fut>(
    c: &EngineConfig,
    stop: impl Fn() -> bool,
    mut f: impl FnMut() -> Fut,
) -> Result<T, StorageError>
where
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if e.transient && attempt < c.max_attempts && !stop() => {
                tokio::time::sleep(backoff(attempt, c.backoff_base_ms, c.backoff_max_ms)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

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
