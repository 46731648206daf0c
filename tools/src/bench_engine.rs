//! `lockstep bench-engine`: the engine's benchmark report in one run. It
//! generates a synthetic flow from a mix and a seed, times Lockstep against
//! the `matchcore` crate on a prefix of it (interleaved rounds, medians and
//! the speedup; exchange-core mix only), times every command of the whole
//! flow in windows to show whether the latency tail stays flat, and prints
//! what the engine's tables cost in memory. This module owns the command
//! line, the derived figures (medians, flatness ratios) and both report
//! formats; the measuring itself lives in `lockstep_bench::matchcore_compare`
//! and `lockstep_bench::engine_latency`, so `cargo bench` and this command
//! time the same loops.

use crate::gen::MixName;
use clap::Args;
use lockstep_bench::engine_latency::{self, LatencyRun, LatencyWindow};
use lockstep_bench::matchcore_compare::{self, Comparison};
use lockstep_bench::{engine_config_for, generate_commands, Mix};
use lockstep_engine::{Engine, Event, TABLE_CAPACITY_MAX};

/// matchcore allocates as it goes and is several times slower than the
/// engine, so the comparison runs on at most this many leading commands of
/// the flow; the latency run always covers all of it.
pub const COMPARE_COMMANDS_MAX: usize = 2_000_000;

/// Why the `simple` mix has no matchcore comparison.
const SIMPLE_SKIP_REASON: &str = "matchcore has no counterpart for some of the simple mix's \
     semantics (it trades three instruments where a matchcore book holds one, and sends \
     market FOK orders, which matchcore's market orders cannot express); only the \
     exchange-core mix is compared";

/// Benchmark the engine on a synthetic flow: speed against matchcore,
/// per-command latency windows over the whole run, and memory per order.
#[derive(Args, Debug)]
pub struct BenchEngineArgs {
    /// Which kind of flow to generate.
    #[arg(long, value_enum, default_value = "exchange-core")]
    pub mix: MixName,
    /// How many commands the flow has.
    #[arg(long, value_name = "N", default_value_t = 10_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub commands: u64,
    /// The seed; the same seed always gives the same flow.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Order and price-level capacity of the engine.
    #[arg(long, value_name = "C", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..=TABLE_CAPACITY_MAX as i64))]
    pub capacity: u32,
    /// Interleaved rounds of the matchcore comparison.
    #[arg(long, value_name = "R", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Equal windows the latency run is split into.
    #[arg(long, value_name = "W", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub windows: u32,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

impl BenchEngineArgs {
    /// The checks that involve more than one argument, which clap cannot
    /// express; a failure here is a usage error.
    pub fn validate(&self) -> Result<(), String> {
        if u64::from(self.windows) > self.commands {
            return Err(format!(
                "--windows {} is more than --commands {}: every window needs a command",
                self.windows, self.commands
            ));
        }
        Ok(())
    }
}

/// What the engine's tables cost, read from an engine of the run's config.
#[derive(Clone, Copy, Debug)]
struct Memory {
    capacity: u32,
    bytes_per_resting_order: usize,
    bytes_per_level: usize,
    table_bytes: usize,
    event_bytes: usize,
}

/// The whole report.
struct Report {
    mix: Mix,
    seed: u64,
    commands: usize,
    capacity: u32,
    comparison: Option<Comparison>,
    latency: LatencyRun,
    memory: Memory,
}

/// `numerator / denominator`, or 0 when the denominator is 0 (never the case
/// for recorded latencies, which are at least 1 ns).
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Report {
    /// p99.9 of the last window over p99.9 of the first.
    fn p999_last_over_first(&self) -> f64 {
        match (self.latency.windows.first(), self.latency.windows.last()) {
            (Some(first), Some(last)) => ratio(last.p999_ns, first.p999_ns),
            _ => 0.0,
        }
    }

    /// The largest window p99.9 over the smallest.
    fn p999_max_over_min(&self) -> f64 {
        let p999 = self.latency.windows.iter().map(|window| window.p999_ns);
        match (p999.clone().max(), p999.min()) {
            (Some(max), Some(min)) => ratio(max, min),
            _ => 0.0,
        }
    }

    fn text(&self) -> String {
        let mut lines = vec![format!(
            "bench-engine: mix {}, seed {}, {} commands, capacity {}",
            self.mix, self.seed, self.commands, self.capacity
        )];
        lines.push(String::new());
        match &self.comparison {
            Some(comparison) => {
                lines.push(format!(
                    "speed against matchcore 0.4.0 ({} commands, {} interleaved rounds; \
                     matchcore's trades differ, this compares speed only):",
                    comparison.commands, comparison.rounds
                ));
                lines.push(format!(
                    "  {:<8}{:>14}{:>14}",
                    "round", "lockstep ns", "matchcore ns"
                ));
                for (round, (lockstep, matchcore)) in comparison
                    .lockstep_ns_per_command
                    .iter()
                    .zip(&comparison.matchcore_ns_per_command)
                    .enumerate()
                {
                    lines.push(format!("  {round:<8}{lockstep:>14.1}{matchcore:>14.1}"));
                }
                lines.push(format!(
                    "  {:<8}{:>14.1}{:>14.1}",
                    "median",
                    comparison.lockstep_median_ns(),
                    comparison.matchcore_median_ns()
                ));
                lines.push(format!(
                    "  speedup (matchcore median / lockstep median): {:.2}x",
                    comparison.speedup()
                ));
            }
            None => lines.push(format!(
                "matchcore comparison skipped: {SIMPLE_SKIP_REASON}"
            )),
        }
        lines.push(String::new());
        let latency = &self.latency;
        lines.push(format!(
            "per-command latency over all {} commands, {} windows (ns, timer pair included):",
            self.commands,
            latency.windows.len()
        ));
        lines.push(format!(
            "  {:<8}{:>12}{:>8}{:>8}{:>8}{:>9}{:>10}",
            "window", "first cmd", "p50", "p99", "p99.9", "p99.99", "max"
        ));
        let row = |label: String, window: &LatencyWindow| {
            format!(
                "  {label:<8}{:>12}{:>8}{:>8}{:>8}{:>9}{:>10}",
                window.first_command,
                window.p50_ns,
                window.p99_ns,
                window.p999_ns,
                window.p9999_ns,
                window.max_ns
            )
        };
        for (index, window) in latency.windows.iter().enumerate() {
            lines.push(row(index.to_string(), window));
        }
        lines.push(row("overall".to_string(), &latency.overall));
        lines.push(format!(
            "  timer pair (two Instant readings, p50): {} ns",
            latency.timer_pair_ns_p50
        ));
        lines.push(format!(
            "  flatness: p99.9 last/first window {:.2}, max/min over windows {:.2}",
            self.p999_last_over_first(),
            self.p999_max_over_min()
        ));
        lines.push(format!(
            "  book at the end: {} orders resting on {} levels",
            latency.orders_live_at_end, latency.levels_live_at_end
        ));
        lines.push(String::new());
        let memory = &self.memory;
        lines.push(format!("memory (capacity {}):", memory.capacity));
        lines.push(format!(
            "  bytes per resting order: {}",
            memory.bytes_per_resting_order
        ));
        lines.push(format!(
            "  bytes per price level:   {}",
            memory.bytes_per_level
        ));
        lines.push(format!(
            "  table bytes:             {} ({:.1} MiB)",
            memory.table_bytes,
            memory.table_bytes as f64 / (1024.0 * 1024.0)
        ));
        lines.push(format!("  size_of::<Event>():      {}", memory.event_bytes));
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn json(&self) -> String {
        let window_json = |index: Option<usize>, window: &LatencyWindow| {
            let mut value = serde_json::json!({
                "first_command": window.first_command,
                "commands": window.commands,
                "p50_ns": window.p50_ns,
                "p99_ns": window.p99_ns,
                "p999_ns": window.p999_ns,
                "p9999_ns": window.p9999_ns,
                "max_ns": window.max_ns,
                "mean_ns": window.mean_ns,
            });
            if let Some(index) = index {
                value["index"] = index.into();
            }
            value
        };
        let comparison = self.comparison.as_ref().map(|comparison| {
            serde_json::json!({
                "commands": comparison.commands,
                "rounds": comparison.rounds,
                "lockstep_ns_per_command": comparison.lockstep_ns_per_command,
                "matchcore_ns_per_command": comparison.matchcore_ns_per_command,
                "lockstep_median_ns": comparison.lockstep_median_ns(),
                "matchcore_median_ns": comparison.matchcore_median_ns(),
                "speedup": comparison.speedup(),
            })
        });
        let latency = &self.latency;
        let windows: Vec<serde_json::Value> = latency
            .windows
            .iter()
            .enumerate()
            .map(|(index, window)| window_json(Some(index), window))
            .collect();
        let value = serde_json::json!({
            "mix": self.mix.name(),
            "seed": self.seed,
            "commands": self.commands,
            "capacity": self.capacity,
            "comparison": comparison,
            "comparison_skipped": self.comparison.is_none().then_some(SIMPLE_SKIP_REASON),
            "latency": {
                "windows": windows,
                "overall": window_json(None, &latency.overall),
                "timer_pair_ns_p50": latency.timer_pair_ns_p50,
                "p999_last_over_first": self.p999_last_over_first(),
                "p999_max_over_min": self.p999_max_over_min(),
                "orders_live_at_end": latency.orders_live_at_end,
                "levels_live_at_end": latency.levels_live_at_end,
            },
            "memory": {
                "capacity": self.memory.capacity,
                "bytes_per_resting_order": self.memory.bytes_per_resting_order,
                "bytes_per_level": self.memory.bytes_per_level,
                "table_bytes": self.memory.table_bytes,
                "event_bytes": self.memory.event_bytes,
            },
        });
        format!("{value}\n")
    }
}

pub fn run(args: &BenchEngineArgs) -> Result<String, String> {
    args.validate()?;
    let mix = Mix::from(args.mix);
    let commands = usize::try_from(args.commands)
        .map_err(|_| format!("--commands {} does not fit in memory", args.commands))?;
    let config = engine_config_for(mix.instrument_count(), args.capacity);
    // Built first so a bad configuration fails before minutes of work; its
    // tables are what the memory figures describe.
    let engine = Engine::new(config.clone()).map_err(|error| error.to_string())?;
    let memory = Memory {
        capacity: args.capacity,
        bytes_per_resting_order: engine.bytes_per_resting_order(),
        bytes_per_level: engine.bytes_per_level(),
        table_bytes: engine.table_bytes(),
        event_bytes: std::mem::size_of::<Event>(),
    };
    drop(engine);

    let flow = generate_commands(mix, args.seed, commands);
    let comparison = match mix {
        Mix::ExchangeCore => {
            let prefix = &flow[..flow.len().min(COMPARE_COMMANDS_MAX)];
            Some(matchcore_compare::compare(
                &config,
                prefix,
                args.rounds as usize,
            ))
        }
        Mix::Simple => None,
    };
    let latency = engine_latency::measure(&config, &flow, args.windows as usize)?;
    let report = Report {
        mix,
        seed: args.seed,
        commands: flow.len(),
        capacity: args.capacity,
        comparison,
        latency,
        memory,
    };
    Ok(if args.json {
        report.json()
    } else {
        report.text()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mix: MixName, commands: u64, windows: u32) -> BenchEngineArgs {
        BenchEngineArgs {
            mix,
            commands,
            seed: 3,
            capacity: 4096,
            rounds: 1,
            windows,
            json: false,
        }
    }

    #[test]
    fn more_windows_than_commands_is_refused() {
        let error = args(MixName::Simple, 3, 4).validate().expect_err("too few");
        assert!(error.contains("--windows 4"), "{error}");
        assert!(args(MixName::Simple, 4, 4).validate().is_ok());
    }

    #[test]
    fn the_text_report_has_every_section() {
        let report = run(&args(MixName::ExchangeCore, 5_000, 2)).expect("runs");
        for expected in [
            "speedup (matchcore median / lockstep median)",
            "overall",
            "timer pair",
            "flatness: p99.9 last/first window",
            "bytes per resting order",
            "size_of::<Event>()",
        ] {
            assert!(report.contains(expected), "{expected}: {report}");
        }
        let report = run(&args(MixName::Simple, 5_000, 2)).expect("runs");
        assert!(report.contains("matchcore comparison skipped"), "{report}");
    }
}
