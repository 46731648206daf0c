//! `TokenBucket`: the per-session message rate limit. A bucket holds up to
//! `burst_max` tokens and refills at `rate_per_second`; each inbound OUCH
//! message takes one. Time is passed in, in nanoseconds, so the bucket is a
//! pure function of the arrival times it is shown and is tested without
//! sleeping.

/// A token bucket with integer arithmetic only: tokens are counted in
/// nanosecond-scaled units so refills never lose fractions.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_per_second: u64,
    /// Capacity in scaled units: `burst_max * NANOS_PER_SECOND`.
    capacity_scaled: u64,
    /// Tokens held, scaled by `NANOS_PER_SECOND`.
    level_scaled: u64,
    last_refill_ns: u64,
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket. `rate_per_second` and `burst_max` must be positive.
    pub fn new(rate_per_second: u32, burst_max: u32, now_ns: u64) -> TokenBucket {
        assert!(rate_per_second > 0, "a bucket must refill");
        assert!(burst_max > 0, "a bucket must hold at least one token");
        let capacity_scaled = u64::from(burst_max) * NANOS_PER_SECOND;
        TokenBucket {
            rate_per_second: u64::from(rate_per_second),
            capacity_scaled,
            level_scaled: capacity_scaled,
            last_refill_ns: now_ns,
        }
    }

    /// Takes one token if there is one. Time that runs backwards (a clock
    /// step) refills nothing rather than underflowing.
    pub fn try_take(&mut self, now_ns: u64) -> bool {
        let elapsed_ns = now_ns.saturating_sub(self.last_refill_ns);
        self.last_refill_ns = self.last_refill_ns.max(now_ns);
        let refill_scaled = elapsed_ns.saturating_mul(self.rate_per_second);
        self.level_scaled = self
            .level_scaled
            .saturating_add(refill_scaled)
            .min(self.capacity_scaled);
        if self.level_scaled >= NANOS_PER_SECOND {
            self.level_scaled -= NANOS_PER_SECOND;
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
    fn a_full_bucket_allows_its_burst_then_refuses() {
        let mut bucket = TokenBucket::new(10, 5, 0);
        for _ in 0..5 {
            assert!(bucket.try_take(0));
        }
        assert!(!bucket.try_take(0));
    }

    #[test]
    fn the_bucket_refills_at_its_rate_and_never_above_its_burst() {
        let mut bucket = TokenBucket::new(10, 2, 0);
        assert!(bucket.try_take(0));
        assert!(bucket.try_take(0));
        assert!(!bucket.try_take(50_000_000), "half a token after 50 ms");
        assert!(bucket.try_take(100_000_000), "one token after 100 ms");
        // Ten seconds idle refill to the burst of 2, not to 100.
        let later = 10 * NANOS_PER_SECOND;
        assert!(bucket.try_take(later));
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let mut bucket = TokenBucket::new(1, 1, 5 * NANOS_PER_SECOND);
        assert!(bucket.try_take(5 * NANOS_PER_SECOND));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(5 * NANOS_PER_SECOND + 1));
    }
}
