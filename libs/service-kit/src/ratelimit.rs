//! A rate limit kept in memory (GCRA, the token bucket without a timer):
//! the gateway's per-client budgets, and the auth service's budget of
//! failed password checks per account.
//!
//! A key may make `burst` requests at once and then one every
//! `period / count`. A refused request learns how long to wait
//! (`Retry-After`). A request that turned out not to count (a login that
//! succeeded, against a per-account budget) can be
//! [refunded](RateLimiter::refund). Keys whose budget has fully recovered
//! are dropped when the table grows, so many clients cannot grow it without
//! bound. The budgets are per process: N instances allow N times as much.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the table is pruned of idle keys.
const PRUNE_ABOVE: usize = 10_000;

/// A rate limit shared by every request of a process.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// The theoretical arrival time of each key's next request.
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute, `burst` of them at once (both at
    /// least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::per_period(per_minute, Duration::from_secs(60), burst)
    }

    /// `count` requests per `period`, `burst` of them at once (both at
    /// least 1).
    pub fn per_period(count: u32, period: Duration, burst: u32) -> Self {
        let interval = period / count.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        match self.next.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes one request for `key` at `now`, or says how long to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut next = self.table();
        if next.len() > PRUNE_ABOVE {
            next.retain(|_, tat| *tat > now);
        }
        let tat = next.get(key).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        if now < allowed_at {
            return Err(allowed_at - now);
        }
        next.insert(key.to_owned(), tat + self.interval);
        Ok(())
    }

    /// Gives back one request taken for `key`: it turned out not to count.
    pub fn refund(&self, key: &str, now: Instant) {
        let mut next = self.table();
        if let Some(tat) = next.get_mut(key) {
            match tat.checked_sub(self.interval) {
                Some(earlier) if earlier > now => *tat = earlier,
                _ => {
                    next.remove(key);
                }
            }
        }
    }
}

/// Whole seconds to send as `Retry-After`, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let mut seconds = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        seconds += 1;
    }
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_burst_passes_then_the_client_waits() {
        let limiter = RateLimiter::new(60, 3);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.check("login:1.2.3.4", start).unwrap();
        }
        let wait = limiter.check("login:1.2.3.4", start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert_eq!(retry_after_seconds(wait), 1);
        // Another client is not affected.
        limiter.check("login:5.6.7.8", start).unwrap();
        // One interval later one more request passes.
        limiter
            .check("login:1.2.3.4", start + Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn longer_periods_and_refunds() {
        // 12 an hour, 2 at once: one every 5 minutes after the burst.
        let limiter = RateLimiter::per_period(12, Duration::from_secs(3600), 2);
        let start = Instant::now();
        limiter.check("a", start).unwrap();
        limiter.check("a", start).unwrap();
        let wait = limiter.check("a", start).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 300);
        // A refunded request does not count.
        limiter.refund("a", start);
        limiter.check("a", start).unwrap();
        assert!(limiter.check("a", start).is_err());
        // Refunds never bank more than the burst.
        for _ in 0..5 {
            limiter.refund("a", start);
        }
        limiter.check("a", start).unwrap();
        limiter.check("a", start).unwrap();
        assert!(limiter.check("a", start).is_err());
        // Refunding an unknown key does nothing.
        limiter.refund("b", start);
        limiter.check("b", start).unwrap();
    }
}
