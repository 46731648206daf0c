//! `lockstep sim`: deterministic simulation of the replicated core
//! (`lockstep-sim`). `--seed S` replays one seed and prints what it did: the
//! system's shape, the faults injected by kind, commands, crashes and
//! restarts, fences and rebuilds, the gateway's work and what its clients
//! saw (in seeds that run it), the final hashes and the trace hash.
//! `--seeds A..B` runs a range on `--jobs` threads and prints a summary and
//! every failing seed with the command that replays it. Either way the exit
//! status is 1 if a seed failed.

use clap::Args;
use lockstep_sim::{
    quiet_injected_panics, run_seed, run_seeds, FaultCounts, GatewayCounts, DEFAULT_STEPS,
};
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How often a range run reports its progress on stderr, in seeds.
const PROGRESS_EVERY_SEEDS: u64 = 500;

/// Runs the deterministic simulator: one seed in detail, or a range.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Replay this seed and print what it did.
    #[arg(long, conflicts_with = "seeds", required_unless_present = "seeds")]
    seed: Option<u64>,
    /// Run the seeds A..B (B excluded) and print every one that fails.
    #[arg(long, value_parser = parse_seed_range)]
    seeds: Option<Range<u64>>,
    /// Active steps per seed, with load and faults; a quiet phase, in which
    /// the system must converge, follows.
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    steps: u64,
    /// Threads for --seeds; each seed runs on one, so results do not depend
    /// on it.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

fn parse_seed_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not a range of seeds like 0..10000"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|error| format!("'{part}' in '{text}': {error}"))
    };
    let range = number(start)?..number(end)?;
    if range.is_empty() {
        return Err(format!("the range '{text}' holds no seed"));
    }
    Ok(range)
}

pub fn run(args: &SimArgs) -> Result<String, String> {
    quiet_injected_panics();
    match (args.seed, &args.seeds) {
        (Some(seed), _) => {
            let report = run_seed(seed, args.steps);
            if report.passed() {
                Ok(report.to_string())
            } else {
                // The whole story goes to stdout; the error line says which.
                print!("{report}");
                let _ = std::io::stdout().flush();
                Err(format!(
                    "seed {seed} failed: {}",
                    report.failure.as_deref().unwrap_or_default()
                ))
            }
        }
        (None, Some(seeds)) => run_range(seeds.clone(), args.steps, args.jobs),
        (None, None) => Err("give --seed S or --seeds A..B".to_string()),
    }
}

fn run_range(seeds: Range<u64>, steps: u64, jobs: usize) -> Result<String, String> {
    let started = Instant::now();
    let total = seeds.end - seeds.start;
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let reports = run_seeds(seeds.clone(), steps, jobs, &|report| {
        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
        if !report.passed() {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        if finished.is_multiple_of(PROGRESS_EVERY_SEEDS) || finished == total {
            eprintln!(
                "lockstep sim: {finished}/{total} seeds, {} failed, {:.0} s",
                failed.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    });
    let mut faults = FaultCounts::default();
    let mut gateway = GatewayCounts::default();
    let (mut commands, mut events, mut restarts, mut quiet_max) = (0, 0, 0, 0);
    let (mut rebuilds, mut fenced, mut checked, mut backwards) = (0, 0, 0, 0);
    let (mut torn, mut cuts, mut rot, mut kept) = (0, 0, 0, 0);
    for report in &reports {
        faults += report.faults;
        gateway += report.gateway;
        commands += report.last_seq;
        events += report.events_published;
        restarts += report.restarts.restarts;
        torn += report.restarts.torn_tails_cut;
        cuts += report.restarts.operator_cuts;
        rot += report.restarts.rot_refusals;
        kept += report.restarts.unsynced_records_kept;
        rebuilds += report.replicas.rebuilds;
        fenced += report.replicas.fenced_panicked
            + report.replicas.fenced_lagged
            + report.replicas.fenced_diverged;
        checked += report.replicas.state_hashes_checked;
        backwards += report.stamps_backwards;
        quiet_max = quiet_max.max(report.quiet_steps.unwrap_or(0));
    }
    let failures: Vec<_> = reports.iter().filter(|report| !report.passed()).collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "seeds {}..{} ({} seeds, {steps} steps each, {jobs} jobs): {} passed, {} failed in {:.1} s",
        seeds.start,
        seeds.end,
        total,
        reports.len() - failures.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        text,
        "commands sequenced {commands}, events published {events}, replica states checked against the replay {checked}, stamps earlier than the one before {backwards}"
    );
    let _ = writeln!(
        text,
        "crashes and restarts {restarts}: torn tails cut {torn}, unsynced records kept {kept}, bit rot refused {rot}, operator cuts {cuts}; fences {fenced}, rebuilds {rebuilds}; longest convergence {quiet_max} steps"
    );
    let _ = writeln!(text, "{gateway}");
    let _ = writeln!(text, "faults injected: {}", faults.total());
    for (kind, count) in faults.kinds() {
        let _ = writeln!(text, "  {kind}: {count}");
    }
    for report in &failures {
        let _ = writeln!(
            text,
            "FAILED seed {}: {}\n  reproduce: {}",
            report.seed,
            report.failure.as_deref().unwrap_or_default(),
            report.reproduce_command()
        );
    }
    if failures.is_empty() {
        Ok(text)
    } else {
        print!("{text}");
        let _ = std::io::stdout().flush();
        Err(format!(
            "{} of {total} seeds failed; each is listed above with the command that replays it",
            failures.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_empty_ones_are_refused() {
        assert_eq!(parse_seed_range("0..10000"), Ok(0..10_000));
        assert_eq!(parse_seed_range(" 5 .. 7 "), Ok(5..7));
        assert!(parse_seed_range("7..7").is_err());
        assert!(parse_seed_range("10").is_err());
        assert!(parse_seed_range("a..b").is_err());
    }
}
