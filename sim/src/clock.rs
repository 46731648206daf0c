//! Simulated time. `SimTime` is the one true time of a run: the simulator
//! advances it a random few microseconds each step, and nothing reads the
//! machine's clock. The sequencer stamps commands from a [`SimWallClock`],
//! true time seen through a skew the simulator changes (jumps forwards and
//! backwards, drift), as NTP steps and a drifting oscillator do to a real
//! wall clock; outputs may depend on it only through those stamps, which the
//! journal holds. Replicas time their test-only fault hooks with
//! [`SimMonotonicClock`], true time.

use lockstep_sequencer::clock::Clock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Where the simulated wall clock starts: 2023-11-14T22:13:20Z, in ns.
pub const WALL_CLOCK_START_NS: u64 = 1_700_000_000_000_000_000;

/// The true time of a run, in ns since it started. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct SimTime {
    now_ns: Arc<AtomicU64>,
}

impl SimTime {
    pub fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Relaxed)
    }

    pub fn advance(&self, by_ns: u64) {
        self.now_ns.fetch_add(by_ns, Ordering::Relaxed);
    }
}

/// How the wall clock differs from true time. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct WallSkew {
    /// Added to true time (jumps accumulate here).
    offset_ns: Arc<AtomicI64>,
    /// Parts per million the clock runs fast (negative: slow), since
    /// `drift_from_ns` of true time.
    drift_ppm: Arc<AtomicI64>,
    drift_from_ns: Arc<AtomicU64>,
}

impl WallSkew {
    /// Steps the wall clock by `by_ns` (negative: backwards).
    pub fn jump(&self, by_ns: i64) {
        self.offset_ns.fetch_add(by_ns, Ordering::Relaxed);
    }

    /// From `now_ns` of true time on, the clock drifts `ppm`. The drift
    /// accumulated so far is folded into the offset, so the clock does not
    /// jump when the rate changes.
    pub fn set_drift(&self, now_ns: u64, ppm: i64) {
        let accumulated = self.drift_ns(now_ns);
        self.offset_ns.fetch_add(accumulated, Ordering::Relaxed);
        self.drift_from_ns.store(now_ns, Ordering::Relaxed);
        self.drift_ppm.store(ppm, Ordering::Relaxed);
    }

    fn drift_ns(&self, now_ns: u64) -> i64 {
        let elapsed = now_ns.saturating_sub(self.drift_from_ns.load(Ordering::Relaxed)) as i128;
        (elapsed * self.drift_ppm.load(Ordering::Relaxed) as i128 / 1_000_000) as i64
    }
}

/// The sequencer's clock: true time, skewed.
pub struct SimWallClock {
    pub time: SimTime,
    pub skew: WallSkew,
}

impl Clock for SimWallClock {
    fn now_ns(&mut self) -> u64 {
        let now = self.time.now_ns();
        let skewed = WALL_CLOCK_START_NS as i128
            + now as i128
            + self.skew.offset_ns.load(Ordering::Relaxed) as i128
            + self.skew.drift_ns(now) as i128;
        // A clock stepped before 1970 reads 0, as the system clock does.
        skewed.clamp(0, u64::MAX as i128) as u64
    }
}

/// True time, for timing (the replicas' fault hooks).
pub struct SimMonotonicClock {
    pub time: SimTime,
}

impl Clock for SimMonotonicClock {
    fn now_ns(&mut self) -> u64 {
        self.time.now_ns()
    }
}
