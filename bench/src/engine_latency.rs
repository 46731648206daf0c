//! Per-command latency of the engine over a long run, window by window, to
//! show whether the tail stays flat (no growth, no pauses) as a run goes on.
//! Each command is timed on its own with two `Instant` readings; the cost of
//! that pair is measured the same way with nothing between and reported
//! beside the figures (it is included in them, not subtracted).

use hdrhistogram::Histogram;
use lockstep_engine::{Command, Engine, EngineConfig, Event};
use std::hint::black_box;
use std::time::Instant;

/// Percentiles of one window of consecutive commands.
#[derive(Clone, Copy, Debug)]
pub struct LatencyWindow {
    pub first_command: u64,
    pub commands: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// A whole run: each window, the run overall and the timer's own cost.
#[derive(Clone, Debug)]
pub struct LatencyRun {
    pub windows: Vec<LatencyWindow>,
    pub overall: LatencyWindow,
    pub timer_pair_ns_p50: u64,
    pub orders_live_at_end: u32,
    pub levels_live_at_end: u32,
}

fn new_histogram() -> Histogram<u64> {
    // One nanosecond to one minute at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

fn summarise(histogram: &Histogram<u64>, first_command: u64) -> LatencyWindow {
    LatencyWindow {
        first_command,
        commands: histogram.len(),
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        p999_ns: histogram.value_at_quantile(0.999),
        p9999_ns: histogram.value_at_quantile(0.9999),
        max_ns: histogram.max(),
        mean_ns: histogram.mean(),
    }
}

/// The median cost of reading the clock twice with nothing between.
pub fn timer_pair_ns_p50(samples: usize) -> u64 {
    let mut histogram = new_histogram();
    for _ in 0..samples {
        let started = Instant::now();
        let elapsed = started.elapsed().as_nanos() as u64;
        histogram.saturating_record(elapsed.max(1));
    }
    histogram.value_at_quantile(0.5)
}

/// Applies `flow` to a fresh engine, timing every command, in `windows`
/// equal windows.
pub fn measure(
    config: &EngineConfig,
    flow: &[Command],
    windows: usize,
) -> Result<LatencyRun, String> {
    if windows == 0 || flow.len() < windows {
        return Err(format!(
            "cannot split {} commands into {windows} windows",
            flow.len()
        ));
    }
    let mut engine = Engine::new(config.clone()).map_err(|error| error.to_string())?;
    let window_len = flow.len() / windows;
    let mut overall = new_histogram();
    let mut window = new_histogram();
    let mut results = Vec::with_capacity(windows);
    let mut events: u64 = 0;
    let mut sink = |event: &Event| {
        events += 1;
        black_box(event);
    };
    for (index, command) in flow.iter().enumerate() {
        let started = Instant::now();
        engine.apply(black_box(command), &mut sink);
        let elapsed_ns = (started.elapsed().as_nanos() as u64).max(1);
        window.saturating_record(elapsed_ns);
        if (index + 1) % window_len == 0 && results.len() < windows {
            results.push(summarise(&window, (index + 1 - window_len) as u64));
            overall.add(&window).map_err(|error| error.to_string())?;
            window.reset();
        }
    }
    overall.add(&window).map_err(|error| error.to_string())?;
    black_box(events);
    Ok(LatencyRun {
        windows: results,
        overall: summarise(&overall, 0),
        timer_pair_ns_p50: timer_pair_ns_p50(100_000),
        orders_live_at_end: engine.orders_live(),
        levels_live_at_end: engine.levels_live(),
    })
}
