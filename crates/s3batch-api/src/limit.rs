//! Per-account request rate limits: a token bucket per account, refilled continuously. A request beyond the
//! rate is answered with TooManyRequestsException (HTTP 429, which every SDK retries with back-off).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Accounts tracked at once before refilled buckets are dropped; past it, new accounts are refused until some
/// bucket refills.
const PRUNE_AT: usize = 10_000;

/// Token buckets by account. `rate` requests a second on average, bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// No limit.
    pub fn unlimited() -> Self {
        RateLimiter { rate: 0.0, burst: 0.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// `rate` requests a second per account (0 = unlimited), with bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        RateLimiter { rate: rate.max(0.0), burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token for `account`; false when its bucket is empty.
    pub fn admit(&self, account: &str) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(account) {
            // A bucket that has refilled is the same as no bucket: drop those, so callers rotating account ids
            // (an open server takes the claimed one) cannot grow the map without bound.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (t, last)| *t + now.duration_since(*last).as_secs_f64() * rate < burst);
            if buckets.len() >= PRUNE_AT {
                return false;
            }
        }
        let (tokens, last) = buckets.entry(account.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_per_account() {
        let l = RateLimiter::new(0.001, 3);
        assert!((0..3).all(|_| l.admit("a")));
        assert!(!l.admit("a"));
        assert!(l.admit("b"), "accounts have their own buckets");
        let many = RateLimiter::new(1_000_000.0, 1);
        assert!((0..3 * PRUNE_AT).all(|i| many.admit(&i.to_string())), "refilled buckets make room");
        assert!(many.buckets.lock().unwrap().len() <= PRUNE_AT);
        let open = RateLimiter::unlimited();
        assert!((0..1000).all(|_| open.admit("a")));
    }
}
