//! Where the sequencer's timestamps come from. The sequencer reads the clock
//! once per batch and stamps every command of the batch with it; that is the
//! only clock reading in the system, so replicas (and replays) never depend
//! on the time they run at. Tests and the simulator substitute their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of nanoseconds since the Unix epoch.
pub trait Clock: Send {
    fn now_ns(&mut self) -> u64;
}

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&mut self) -> u64 {
        // A clock set before 1970 reads as 0 rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// Nanoseconds since the clock was made, from the monotonic clock: for
/// timing (the replicas' test-only fault hooks), never for stamps.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
