//! `WaitStrategy` owns how one thread waits for a condition that another
//! thread will make true: a ring slot being published, or room being freed.
//! It is a per-thread setting because the right answer depends on the core:
//! a thread with a dedicated core should busy-spin (lowest wake-up latency,
//! one core burnt), while threads that share cores, as on a two-core test
//! machine running six hot threads, must give the core away or they starve
//! the very thread they wait for.
//!
//! Every wait is interruptible: the caller passes a `give_up` predicate
//! (shutdown, a fence, a deadline), checked on every round, so no wait can
//! hang once the caller wants out. Parking never relies on another thread
//! calling `unpark`: a park is a bounded sleep (`park_timeout`), so a lost or
//! never-sent wake-up costs at most `park_ns`, never a hang.

use std::time::Duration;

/// How a thread waits. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin on the condition with a CPU pause hint. Lowest latency; only for
    /// a thread that owns its core.
    BusySpin,
    /// Call `std::thread::yield_now` between checks: the core goes to any
    /// runnable thread, and this one comes back on the next scheduling round.
    Yield,
    /// Spin `spin_iterations` rounds, then yield `yield_iterations` rounds,
    /// then sleep `park_ns` per round (bounded, so no wake-up is needed).
    SpinThenPark {
        /// Rounds of busy-spinning before the first yield.
        spin_iterations: u32,
        /// Rounds of yielding after the spinning, before the first park.
        yield_iterations: u32,
        /// How long one park lasts, in nanoseconds. Linux rounds short sleeps
        /// up by its timer slack (50 µs by default for normal threads).
        park_ns: u64,
    },
}

impl Default for WaitStrategy {
    /// The setting for a thread on a shared core: a short spin for the common
    /// case of data arriving within a microsecond, then polite yielding, then
    /// 50 µs parks so an idle system costs almost nothing.
    fn default() -> Self {
        Self::SpinThenPark {
            spin_iterations: 256,
            yield_iterations: 64,
            park_ns: 50_000,
        }
    }
}

impl WaitStrategy {
    /// Waits until `condition` returns true (then returns `true`) or
    /// `give_up` returns true (then returns `false`). `condition` is checked
    /// first, so a condition that already holds costs one call and no wait.
    /// `give_up` is checked once per round, before each wait step, so it
    /// should be cheap (an atomic flag load, or a deadline check).
    ///
    /// The loop ends only through one of the two predicates: it is bounded
    /// exactly as much as `give_up` makes it.
    pub fn wait_until(
        &self,
        mut condition: impl FnMut() -> bool,
        give_up: impl Fn() -> bool,
    ) -> bool {
        let mut round: u64 = 0;
        loop {
            if condition() {
                return true;
            }
            if give_up() {
                return false;
            }
            self.idle(round);
            round = round.saturating_add(1);
        }
    }

    /// One wait step of round `round` (0 for the first wait after a failed
    /// check). Exposed for callers with their own loop structure.
    #[inline]
    pub fn idle(&self, round: u64) {
        match *self {
            Self::BusySpin => std::hint::spin_loop(),
            Self::Yield => std::thread::yield_now(),
            Self::SpinThenPark {
                spin_iterations,
                yield_iterations,
                park_ns,
            } => {
                let spin_end = u64::from(spin_iterations);
                let yield_end = spin_end + u64::from(yield_iterations);
                if round < spin_end {
                    std::hint::spin_loop();
                } else if round < yield_end {
                    std::thread::yield_now();
                } else {
                    // `park_timeout` may return early (spuriously or because
                    // someone unparked us); the caller re-checks its
                    // condition either way, so an early return is harmless.
                    std::thread::park_timeout(Duration::from_nanos(park_ns.max(1)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Instant;

    fn strategies() -> [WaitStrategy; 3] {
        [
            WaitStrategy::BusySpin,
            WaitStrategy::Yield,
            WaitStrategy::SpinThenPark {
                spin_iterations: 2,
                yield_iterations: 2,
                park_ns: 100_000,
            },
        ]
    }

    #[test]
    fn condition_already_true_returns_without_consulting_give_up() {
        for strategy in strategies() {
            assert!(strategy.wait_until(|| true, || panic!("give_up consulted")));
        }
    }

    #[test]
    fn give_up_ends_a_wait_that_would_never_succeed() {
        for strategy in strategies() {
            let deadline = Instant::now() + Duration::from_millis(20);
            assert!(!strategy.wait_until(|| false, || Instant::now() >= deadline));
        }
    }

    #[test]
    fn condition_set_by_another_thread_ends_the_wait_without_unpark() {
        // The setter never unparks the waiter: a parked waiter must still
        // notice within its bounded park time.
        for strategy in strategies() {
            let flag = AtomicBool::new(false);
            let checks = AtomicU32::new(0);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    std::thread::sleep(Duration::from_millis(5));
                    flag.store(true, Ordering::Release);
                });
                let deadline = Instant::now() + Duration::from_secs(10);
                let ok = strategy.wait_until(
                    || {
                        checks.fetch_add(1, Ordering::Relaxed);
                        flag.load(Ordering::Acquire)
                    },
                    || Instant::now() >= deadline,
                );
                assert!(ok, "{strategy:?} missed the condition");
            });
            assert!(checks.load(Ordering::Relaxed) >= 2);
        }
    }
}
