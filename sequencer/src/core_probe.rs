//! The core probe owns the baseline for every cross-thread latency figure in
//! Lockstep: how long one cache line takes to go from one core to another and
//! back. Two threads, pinned to the two cores when those exist, bounce a
//! counter through two cache-padded atomics; each round trip is two line
//! transfers, which is the floor under any hop through a ring (a ring hop
//! also moves the slot's line, so it costs at least one transfer more). The
//! hop-latency benchmark reports its figures next to this one.
//!
//! The hot loop does integer work only: one `Instant` per round trip,
//! differences stored as nanosecond integers in a buffer allocated before the
//! loop. Percentiles are computed after the threads stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// What [`cache_line_ping_pong`] measured. Times are per round trip (two
/// one-way line transfers), in nanoseconds, and include one `Instant::now()`
/// call each (`timer_overhead_ns` says how much that is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingPongResult {
    /// Round trips measured (fewer than asked if the probe was aborted).
    pub round_trips: u64,
    /// The core thread A was pinned to, if pinning was possible.
    pub core_a: Option<usize>,
    /// The core thread B was pinned to, if pinning was possible.
    pub core_b: Option<usize>,
    /// Whether a peer stalled for `STALL_LIMIT` and the probe stopped early.
    pub aborted: bool,
    /// Fastest round trip.
    pub min_ns: u64,
    /// Median round trip.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest round trip.
    pub max_ns: u64,
    /// Integer mean of the measured round trips.
    pub mean_ns: u64,
    /// Median cost of one `Instant::now()` on this machine, already inside
    /// every figure above once.
    pub timer_overhead_ns: u64,
}

/// Spins before a waiting side starts yielding: about a microsecond of
/// spinning on a modern core, far above a cross-core round trip, so pinned
/// runs on distinct idle cores never yield, while a run whose threads share a
/// core (or a busy machine) still makes progress.
const SPINS_BEFORE_YIELD: u32 = 1 << 12;
/// How long one side waits for the other before the probe gives up.
const STALL_LIMIT: Duration = Duration::from_secs(2);
/// Unrecorded round trips first, so caches, frequency and the scheduler
/// settle before measuring.
const WARM_UP_ROUND_TRIPS: u64 = 10_000;

/// Bounces a value between two threads `round_trips` times and reports the
/// round-trip latency distribution. Thread A is pinned to `core_a` and
/// thread B to `core_b` when those core ids exist on this machine; a missing
/// or `None` core is simply not pinned. A core outside the calling thread's
/// affinity mask counts as missing (the probe's threads inherit that mask),
/// so call this from a thread that is not itself pinned. Allocates 8 bytes
/// per round trip up front.
pub fn cache_line_ping_pong(
    core_a: Option<usize>,
    core_b: Option<usize>,
    round_trips: u64,
) -> PingPongResult {
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    let abort = CachePadded::new(AtomicBool::new(false));
    let warm_up = WARM_UP_ROUND_TRIPS.min(round_trips);
    let total = warm_up + round_trips;
    let mut samples_ns: Vec<u64> = Vec::with_capacity(round_trips as usize);

    let (pinned_a, pinned_b) = std::thread::scope(|scope| {
        let responder = scope.spawn(|| {
            let pinned = pin_current_thread(core_b);
            for round in 1..=total {
                if !wait_for(&ping, round, &abort) {
                    break;
                }
                pong.store(round, Ordering::Release);
            }
            pinned
        });
        let initiator = scope.spawn(|| {
            let pinned = pin_current_thread(core_a);
            let mut previous = Instant::now();
            for round in 1..=total {
                ping.store(round, Ordering::Release);
                if !wait_for(&pong, round, &abort) {
                    break;
                }
                let now = Instant::now();
                if round > warm_up {
                    // Saturates only after 584 years: no float, no panic.
                    let elapsed_ns =
                        u64::try_from(now.duration_since(previous).as_nanos()).unwrap_or(u64::MAX);
                    samples_ns.push(elapsed_ns);
                }
                previous = now;
            }
            pinned
        });
        let pinned_a = initiator.join().unwrap_or(None);
        let pinned_b = responder.join().unwrap_or(None);
        (pinned_a, pinned_b)
    });

    let mut result = summarise(&mut samples_ns);
    result.core_a = pinned_a;
    result.core_b = pinned_b;
    result.aborted = abort.load(Ordering::Relaxed);
    result.timer_overhead_ns = timer_overhead_ns();
    result
}

/// Pins the calling thread to `core` if that core id exists; returns the core
/// pinned to.
fn pin_current_thread(core: Option<usize>) -> Option<usize> {
    let wanted = core?;
    let ids = core_affinity::get_core_ids()?;
    let id = ids.into_iter().find(|id| id.id == wanted)?;
    core_affinity::set_for_current(id).then_some(wanted)
}

/// Waits until `cell` holds `value`; spins, then yields, and gives up (and
/// tells the peer to give up) after `STALL_LIMIT` without seeing it.
#[inline]
fn wait_for(cell: &AtomicU64, value: u64, abort: &AtomicBool) -> bool {
    let mut spins: u32 = 0;
    let mut yielding_since: Option<Instant> = None;
    loop {
        if cell.load(Ordering::Acquire) == value {
            return true;
        }
        if spins < SPINS_BEFORE_YIELD {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        if abort.load(Ordering::Relaxed) {
            return false;
        }
        let since = *yielding_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= STALL_LIMIT {
            abort.store(true, Ordering::Relaxed);
            return false;
        }
        std::thread::yield_now();
    }
}

/// Sorts the samples and reads the percentiles off them (integer indices).
fn summarise(samples_ns: &mut [u64]) -> PingPongResult {
    let count = samples_ns.len();
    if count == 0 {
        return PingPongResult::default();
    }
    samples_ns.sort_unstable();
    let at = |per_mille: usize| samples_ns[(count - 1) * per_mille / 1000];
    let sum: u128 = samples_ns.iter().map(|&ns| u128::from(ns)).sum();
    PingPongResult {
        round_trips: count as u64,
        min_ns: samples_ns[0],
        p50_ns: at(500),
        p90_ns: at(900),
        p99_ns: at(990),
        p999_ns: at(999),
        max_ns: samples_ns[count - 1],
        mean_ns: u64::try_from(sum / count as u128).unwrap_or(u64::MAX),
        ..PingPongResult::default()
    }
}

/// Median of back-to-back `Instant::now()` differences.
fn timer_overhead_ns() -> u64 {
    const PROBES: usize = 1001;
    let mut deltas = [0u64; PROBES];
    let mut previous = Instant::now();
    for delta in deltas.iter_mut() {
        let now = Instant::now();
        *delta = u64::try_from(now.duration_since(previous).as_nanos()).unwrap_or(u64::MAX);
        previous = now;
    }
    deltas.sort_unstable();
    deltas[PROBES / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_read_from_the_sorted_samples() {
        let mut samples: Vec<u64> = (1..=1000).rev().collect();
        let r = summarise(&mut samples);
        assert_eq!(
            (r.min_ns, r.p50_ns, r.p99_ns, r.max_ns),
            (1, 500, 990, 1000)
        );
        assert_eq!(r.mean_ns, 500);
        assert_eq!(r.round_trips, 1000);
    }

    #[test]
    fn a_core_that_does_not_exist_is_not_pinned() {
        assert_eq!(pin_current_thread(Some(usize::MAX)), None);
        assert_eq!(pin_current_thread(None), None);
    }
}
