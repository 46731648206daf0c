//! `lockstep bench-core`: the replicated core's benchmark report (issue 3)
//! in one run, each figure next to the baseline it is judged against. It
//! measures (1) the sequencer-to-replica hop through the real broadcast ring
//! (`lockstep_sequencer::hop_probe`), with one and with three readers, next to
//! the cache-line ping-pong between the same cores
//! (`lockstep_sequencer::core_probe`), and reports hop p50 over the one-way
//! line transfer; (2) the exchange-core flow through the whole system
//! (sequencer, journal, three replicas, egress) against one engine applying
//! the same flow alone, as commands per second and their ratio, with the
//! per-thread CPU and run-queue time the kernel accounted during the system
//! runs; (3) the journal under each durability policy and backend against a
//! plain `write` + `fdatasync` loop of the same sizes
//! (`lockstep_sequencer::durability`). This module owns the command line, the
//! choice of cores and wait strategies, the temporary data directory (removed
//! afterwards), the derived ratios and both report formats.

use crate::run::DurabilityName;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use lockstep_bench::{engine_config_for, generate_commands, Mix};
use lockstep_engine::{Command, Engine, EngineConfig, Event, TABLE_CAPACITY_MAX};
use lockstep_sequencer::core_probe::{cache_line_ping_pong, PingPongResult};
use lockstep_sequencer::durability::{
    measure_baseline, measure_journal, DurabilityPolicy, JournalMeasurement, MeasuredWriter,
};
use lockstep_sequencer::egress::PublishSink;
use lockstep_sequencer::hop_probe::{core_ids, measure_hop, HopConfig, HopPayload, HopRun};
use lockstep_sequencer::journal_backend::JournalBackendKind;
use lockstep_sequencer::system::{self, SubmitError, SystemReport};
use lockstep_sequencer::system_config::{SystemConfig, ThreadCores, ThreadWaits};
use lockstep_sequencer::wait_strategy::WaitStrategy;
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hop p50 may be at most this many one-way line transfers (issue 3).
pub const HOP_RATIO_TARGET_MAX: f64 = 1.5;
/// The system must reach at least this share of one engine's commands/s.
pub const THROUGHPUT_RATIO_TARGET_MIN: f64 = 0.8;
/// Replicas in the system run.
const SYSTEM_REPLICAS: usize = 3;
/// Reader counts of the hop runs: one replica, and the system's three.
const HOP_READERS: [usize; 2] = [1, SYSTEM_REPLICAS];
/// Slots of the hop probe's ring: one message is in flight at a time, so
/// the size only matters for the slot lines' placement.
const HOP_RING_SLOTS: usize = 1024;
/// Warm-up of a hop run whose readers busy-spin on a shared core.
const STARVING_WARM_UP: u64 = 10;
/// A system run whose published seq does not move for this long has failed.
const SYSTEM_STALL_LIMIT: Duration = Duration::from_secs(60);

/// How hop readers wait, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitName {
    /// Spin with a pause hint (for a reader that owns its core).
    BusySpin,
    /// `sched_yield` between checks.
    Yield,
    /// The system default: 256 spins, 64 yields, then 50 µs parks.
    SpinThenPark,
}

impl WaitName {
    fn strategy(self) -> WaitStrategy {
        match self {
            WaitName::BusySpin => WaitStrategy::BusySpin,
            WaitName::Yield => WaitStrategy::Yield,
            WaitName::SpinThenPark => WaitStrategy::default(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            WaitName::BusySpin => "busy-spin",
            WaitName::Yield => "yield",
            WaitName::SpinThenPark => "spin-then-park",
        }
    }
}

/// Benchmark the replicated core against its baselines in one run: the
/// sequencer-to-replica hop against a cache-line ping-pong, the whole system
/// against one engine, and the journal against plain write + fdatasync.
#[derive(Args, Debug)]
pub struct BenchCoreArgs {
    /// Commands of the exchange-core flow for the throughput runs.
    #[arg(long, value_name = "N", default_value_t = 2_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub commands: u64,
    /// The flow's seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Order and price-level capacity of the engines.
    #[arg(long, value_name = "C", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..=TABLE_CAPACITY_MAX as i64))]
    pub capacity: u32,
    /// Durability policy of the system run (a second run always uses none).
    #[arg(long, value_enum, default_value = "batch")]
    pub durability: DurabilityName,
    /// The system takes a snapshot every this many seqs (0: never).
    #[arg(long, value_name = "SEQS", default_value_t = 1 << 18)]
    pub snapshot_interval: u64,
    /// Hops recorded per hop run (after a warm-up of 1%, at most 1,000).
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub hop_messages: u64,
    /// Least time between two hop messages, in nanoseconds.
    #[arg(long, value_name = "NS", default_value_t = 2_000)]
    pub hop_interval_ns: u64,
    /// Time limit of one hop run, in seconds; a run that reaches it reports
    /// the messages it sent.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub hop_seconds: u64,
    /// Wait strategy of the hop readers for every hop run. Default:
    /// busy-spin where each reader has a core of its own; where readers
    /// share a core, spin-then-park first, then busy-spin and yield too.
    #[arg(long, value_enum)]
    pub wait: Option<WaitName>,
    /// Round trips of the cache-line ping-pong.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ping_pong_round_trips: u64,
    /// Records per journal run under none and batch.
    #[arg(long, value_name = "N", default_value_t = 200_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub journal_records: u64,
    /// Records per commit under none and batch.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub journal_batch: u64,
    /// Records per journal run under every (one fdatasync each).
    #[arg(long, value_name = "N", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub journal_every_records: u64,
    /// Directory in which a temporary data directory is made (and removed
    /// afterwards). Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

impl BenchCoreArgs {
    /// The checks that involve more than one argument; a failure here is a
    /// usage error.
    pub fn validate(&self) -> Result<(), String> {
        if self.hop_interval_ns > 1_000_000_000 {
            return Err(format!(
                "--hop-interval-ns {} is more than a second",
                self.hop_interval_ns
            ));
        }
        Ok(())
    }
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(
            "lockstep-bench-core-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path)
            .map_err(|error| format!("create {}: {error}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The 1-, 5- and 15-minute load averages, if `/proc/loadavg` exists.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|field| field.parse::<f64>());
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn per_sec(count: u64, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        0.0
    } else {
        count as f64 * 1e9 / elapsed_ns as f64
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

fn core_text(core: Option<usize>) -> String {
    core.map_or_else(|| "unpinned".to_string(), |core| format!("core {core}"))
}

// ---------------------------------------------------------------- hop ----

/// One hop run's figures.
struct HopFigures {
    readers: usize,
    wait: WaitName,
    payload: HopPayload,
    /// Messages sent before recording started.
    warm_up: u64,
    /// The default (headline) run for this reader count.
    headline: bool,
    run: HopRun,
    /// Whether two or more readers were pinned to one core.
    readers_share_a_core: bool,
    histogram: Histogram<u64>,
}

impl HopFigures {
    fn quantile(&self, quantile: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(quantile)
        }
    }

    fn ratio_to_one_way(&self, one_way_ns: f64) -> f64 {
        ratio(self.quantile(0.5) as f64, one_way_ns)
    }
}

/// The hop section: the ping-pong baseline and every hop run.
struct HopSection {
    /// The ping-pong just before the one-reader hop runs.
    ping_pong: PingPongResult,
    /// The ping-pong again just after them, so a drift of the machine
    /// during the hop runs shows.
    ping_pong_after: PingPongResult,
    interval_ns: u64,
    warm_up: u64,
    runs: Vec<HopFigures>,
}

impl HopSection {
    /// One-way line transfer: half the median round trip, averaged over
    /// the ping-pong before and after the one-reader hop runs.
    fn one_way_p50_ns(&self) -> f64 {
        (self.ping_pong.p50_ns + self.ping_pong_after.p50_ns) as f64 / 4.0
    }
}

fn new_histogram() -> Histogram<u64> {
    // One nanosecond to one minute at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// Writer on the first core; reader `i` on the core after it, or on the
/// last core when there are fewer cores than readers. Unpinned on one core.
fn hop_cores(cores: &[usize], readers: usize) -> (Option<usize>, Vec<Option<usize>>) {
    if cores.len() < 2 {
        return (None, vec![None; readers]);
    }
    let reader_cores = (0..readers)
        .map(|index| Some(cores[(1 + index).min(cores.len() - 1)]))
        .collect();
    (Some(cores[0]), reader_cores)
}

fn hop_section(args: &BenchCoreArgs, cores: &[usize]) -> Result<HopSection, String> {
    let (writer_core, reader_cores) = hop_cores(cores, 1);
    // The probe's threads pin themselves; this thread stays unpinned.
    let ping_pong = || {
        let result = cache_line_ping_pong(writer_core, reader_cores[0], args.ping_pong_round_trips);
        if result.round_trips == 0 {
            Err("cache-line ping-pong measured nothing (a peer stalled)".to_string())
        } else {
            Ok(result)
        }
    };
    let before = ping_pong()?;
    let mut after = None;
    let warm_up = (args.hop_messages / 100).min(1_000);
    let mut runs = Vec::new();
    for readers in HOP_READERS {
        if readers > 1 && after.is_none() {
            after = Some(ping_pong()?);
        }
        let (writer_core, reader_cores) = hop_cores(cores, readers);
        let mut distinct = reader_cores.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let share = readers > 1 && distinct.len() < readers && writer_core.is_some();
        let waits: Vec<WaitName> = match args.wait {
            Some(wait) => vec![wait],
            None if share => vec![WaitName::SpinThenPark, WaitName::BusySpin, WaitName::Yield],
            None => vec![WaitName::BusySpin],
        };
        // The system's payload for every wait; with one reader, the same hop
        // with a one-line payload too, to tell slot size from protocol.
        let mut variants: Vec<(WaitName, HopPayload)> = waits
            .iter()
            .map(|&wait| (wait, HopPayload::SequencedCommand))
            .collect();
        if readers == 1 {
            variants.push((waits[0], HopPayload::Stamp16));
        }
        for (index, (wait, payload)) in variants.into_iter().enumerate() {
            // Busy-spinning readers time-sliced on one core move a message
            // every few milliseconds: a short warm-up leaves something to
            // record within the time limit.
            let warm_up = if share && wait == WaitName::BusySpin {
                warm_up.min(STARVING_WARM_UP)
            } else {
                warm_up
            };
            let config = HopConfig {
                writer_core,
                reader_cores: reader_cores.clone(),
                wait: wait.strategy(),
                messages: args.hop_messages,
                warm_up,
                min_interval_ns: args.hop_interval_ns,
                time_limit: Duration::from_secs(args.hop_seconds),
                ring_capacity: HOP_RING_SLOTS,
                payload,
            };
            let mut histograms: Vec<Histogram<u64>> =
                (0..readers).map(|_| new_histogram()).collect();
            let sinks: Vec<_> = histograms
                .iter_mut()
                .map(|histogram| move |ns: u64| histogram.saturating_record(ns.max(1)))
                .collect();
            let run = measure_hop(&config, sinks).map_err(|error| format!("hop probe: {error}"))?;
            let mut histogram = new_histogram();
            for reader in &histograms {
                histogram
                    .add(reader)
                    .map_err(|error| format!("hop histogram: {error:?}"))?;
            }
            runs.push(HopFigures {
                readers,
                wait,
                payload,
                warm_up,
                headline: index == 0,
                run,
                readers_share_a_core: share,
                histogram,
            });
        }
    }
    let ping_pong_after = match after {
        Some(after) => after,
        None => ping_pong()?,
    };
    Ok(HopSection {
        ping_pong: before,
        ping_pong_after,
        interval_ns: args.hop_interval_ns,
        warm_up,
        runs,
    })
}

// --------------------------------------------------------- throughput ----

/// One engine applying the whole flow on the bench thread.
struct EngineRun {
    elapsed_ns: u64,
    events: u64,
}

fn engine_alone(config: &EngineConfig, flow: &[Command]) -> Result<EngineRun, String> {
    let mut engine = Engine::new(config.clone()).map_err(|error| format!("engine: {error}"))?;
    let mut events: u64 = 0;
    let mut sink = |event: &Event| {
        black_box(event);
        events += 1;
    };
    let started = Instant::now();
    for command in flow {
        engine.apply(command, &mut sink);
    }
    let elapsed_ns = nanos(started.elapsed());
    black_box(&engine);
    Ok(EngineRun { elapsed_ns, events })
}

/// CPU accounting of one thread over a system run, from
/// `/proc/self/task/<tid>/schedstat`.
#[derive(Clone, Debug)]
struct ThreadTime {
    role: String,
    tid: u64,
    /// Time on a CPU.
    cpu_ns: u64,
    /// Time runnable but waiting for a CPU (run-queue wait, including the
    /// time after each `sched_yield`).
    wait_ns: u64,
}

impl ThreadTime {
    /// The rest of `wall_ns`: neither running nor runnable (parked,
    /// sleeping, or blocked in a system call such as `fdatasync`).
    fn blocked_ns(&self, wall_ns: u64) -> u64 {
        wall_ns.saturating_sub(self.cpu_ns + self.wait_ns)
    }
}

/// (tid, comm, on-CPU ns, run-queue wait ns) of every thread of this
/// process, or `None` where `/proc` has no schedstat.
fn thread_times() -> Option<Vec<(u64, String, u64, u64)>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let entry = entry.ok()?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let mut fields = stat.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(cpu)), Some(Ok(wait))) = (fields.next(), fields.next()) else {
            continue;
        };
        threads.push((tid, comm.trim().to_string(), cpu, wait));
    }
    threads.sort_unstable();
    Some(threads)
}

/// This thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn own_tid() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_string_lossy().parse().ok()
}

/// The per-thread time spent between two snapshots, for the bench thread and
/// the system's threads (named `lockstep-...`; the kernel keeps 15 bytes of a
/// name, so replicas are told apart by thread id, in spawn order).
fn thread_deltas(
    before: &[(u64, String, u64, u64)],
    after: &[(u64, String, u64, u64)],
    bench_tid: Option<u64>,
) -> Vec<ThreadTime> {
    let mut times = Vec::new();
    let mut replica = 0;
    for (tid, comm, cpu, wait) in after {
        let Some((_, _, cpu_before, wait_before)) = before.iter().find(|entry| entry.0 == *tid)
        else {
            continue;
        };
        let role = if Some(*tid) == bench_tid {
            "bench submitter".to_string()
        } else if comm.starts_with("lockstep-seq") {
            "sequencer".to_string()
        } else if comm.starts_with("lockstep-rep") {
            replica += 1;
            format!("replica {}", replica - 1)
        } else if comm.starts_with("lockstep-egr") {
            "egress".to_string()
        } else {
            continue;
        };
        times.push(ThreadTime {
            role,
            tid: *tid,
            cpu_ns: cpu.saturating_sub(*cpu_before),
            wait_ns: wait.saturating_sub(*wait_before),
        });
    }
    times
}

/// The whole system applying the flow.
struct SystemRun {
    policy: DurabilityPolicy,
    elapsed_ns: u64,
    events: u64,
    backend: JournalBackendKind,
    full_rejects: u64,
    report: SystemReport,
    threads: Option<Vec<ThreadTime>>,
}

impl SystemRun {
    fn total_cpu_ns(&self) -> Option<u64> {
        self.threads
            .as_ref()
            .map(|threads| threads.iter().map(|thread| thread.cpu_ns).sum())
    }
}

/// Pins the system's threads only where each has a core of its own
/// (sequencer, three replicas, egress); otherwise leaves all of them to the
/// OS, which balances three replicas over the cores better than any fixed
/// placement on fewer than five.
fn system_cores(cores: &[usize]) -> ThreadCores {
    if cores.len() >= SYSTEM_REPLICAS + 2 {
        ThreadCores {
            sequencer: Some(cores[0]),
            replicas: (0..SYSTEM_REPLICAS)
                .map(|index| Some(cores[1 + index]))
                .collect(),
            egress: Some(cores[SYSTEM_REPLICAS + 1]),
        }
    } else {
        ThreadCores::default()
    }
}

fn system_run(
    args: &BenchCoreArgs,
    engine: &EngineConfig,
    flow: &[Command],
    policy: DurabilityPolicy,
    dir: &Path,
    cores: &ThreadCores,
) -> Result<SystemRun, String> {
    let data_dir = dir.join(format!("system-{policy}"));
    let mut config = SystemConfig::new(engine.clone(), data_dir.clone());
    config.replicas = SYSTEM_REPLICAS;
    config.durability = policy;
    config.snapshot_interval = args.snapshot_interval;
    config.cores = cores.clone();
    let events = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&events);
    // One writer (the egress thread): a plain load and store, no lock prefix.
    let sink: PublishSink = Box::new(move |_seq, _timestamp_ns, event| {
        black_box(event);
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    });
    let handle =
        system::start(config, sink).map_err(|error| format!("system ({policy}): {error}"))?;
    if handle.startup().recovered_seq != 0 {
        return Err(format!(
            "system ({policy}): data directory {} is not empty",
            data_dir.display()
        ));
    }
    let backend = handle.startup().journal_backend;
    let bench_tid = own_tid();
    let before = thread_times();
    let last_seq = flow.len() as u64;
    let mut full_rejects: u64 = 0;
    let started = Instant::now();
    for command in flow {
        let mut pending = *command;
        let mut retries: u32 = 0;
        loop {
            match handle.submit(pending) {
                Ok(()) => break,
                Err(SubmitError::Full(back)) => {
                    pending = back;
                    full_rejects += 1;
                    retries += 1;
                    // A few yields, then short sleeps: on a shared machine
                    // the submitter must not take the cores the system needs.
                    if retries < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                Err(SubmitError::Stopped(_)) => {
                    return Err(format!(
                        "system ({policy}) stopped while submitting: {}",
                        handle
                            .failure()
                            .unwrap_or_else(|| "no reason given".to_string())
                    ));
                }
            }
        }
    }
    let mut last_seen = (handle.published_seq(), Instant::now());
    while handle.published_seq() < last_seq {
        if let Some(failure) = handle.failure() {
            return Err(format!("system ({policy}) failed: {failure}"));
        }
        let published = handle.published_seq();
        if published != last_seen.0 {
            last_seen = (published, Instant::now());
        } else if last_seen.1.elapsed() >= SYSTEM_STALL_LIMIT {
            return Err(format!(
                "system ({policy}) stalled: published seq {published} of {last_seq} for {} s",
                SYSTEM_STALL_LIMIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed_ns = nanos(started.elapsed());
    let after = thread_times();
    let report = handle.shutdown();
    if let Some(failure) = &report.failure {
        return Err(format!("system ({policy}) failed: {failure}"));
    }
    let threads = match (before, after) {
        (Some(before), Some(after)) => Some(thread_deltas(&before, &after, bench_tid)),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(SystemRun {
        policy,
        elapsed_ns,
        events: events.load(Ordering::Acquire),
        backend,
        full_rejects,
        report,
        threads,
    })
}

/// The throughput section: the engine alone before and after the system
/// runs, and one system run per policy.
struct ThroughputSection {
    commands: u64,
    seed: u64,
    system_cores: ThreadCores,
    system_waits: ThreadWaits,
    snapshot_interval: u64,
    sequencer_batch_max: usize,
    engine_runs: Vec<EngineRun>,
    systems: Vec<SystemRun>,
}

impl ThroughputSection {
    /// The engine's commands/s: the mean of its runs' rates.
    fn engine_per_sec(&self) -> f64 {
        let rates: Vec<f64> = self
            .engine_runs
            .iter()
            .map(|run| per_sec(self.commands, run.elapsed_ns))
            .collect();
        ratio(rates.iter().sum(), rates.len() as f64)
    }

    fn engine_events(&self) -> u64 {
        self.engine_runs.first().map_or(0, |run| run.events)
    }
}

fn throughput_section(
    args: &BenchCoreArgs,
    cores: &[usize],
    dir: &Path,
) -> Result<ThroughputSection, String> {
    let commands = usize::try_from(args.commands)
        .map_err(|_| format!("--commands {} does not fit in memory", args.commands))?;
    let mix = Mix::ExchangeCore;
    let engine = engine_config_for(mix.instrument_count(), args.capacity);
    let flow = generate_commands(mix, args.seed, commands);
    let thread_cores = system_cores(cores);
    let mut policies = vec![DurabilityPolicy::from(args.durability)];
    if policies[0] != DurabilityPolicy::None {
        policies.push(DurabilityPolicy::None);
    }
    let mut engine_runs = vec![engine_alone(&engine, &flow)?];
    let mut systems = Vec::new();
    for policy in policies {
        systems.push(system_run(
            args,
            &engine,
            &flow,
            policy,
            dir,
            &thread_cores,
        )?);
    }
    engine_runs.push(engine_alone(&engine, &flow)?);
    let section = ThroughputSection {
        commands: flow.len() as u64,
        seed: args.seed,
        system_cores: thread_cores,
        system_waits: ThreadWaits::default(),
        snapshot_interval: args.snapshot_interval,
        sequencer_batch_max: SystemConfig::new(engine.clone(), PathBuf::new()).sequencer_batch_max,
        engine_runs,
        systems,
    };
    for system in &section.systems {
        if system.events != section.engine_events() {
            return Err(format!(
                "system ({}) published {} events where the engine alone produced {}",
                system.policy,
                system.events,
                section.engine_events()
            ));
        }
    }
    Ok(section)
}

// ------------------------------------------------------------ journal ----

/// One policy: each backend's journal run and the baseline.
struct JournalPolicyRuns {
    policy: DurabilityPolicy,
    journals: Vec<(JournalBackendKind, JournalMeasurement)>,
    baseline: JournalMeasurement,
}

fn journal_section(args: &BenchCoreArgs, dir: &Path) -> Result<Vec<JournalPolicyRuns>, String> {
    let path = dir.join("journal-measure.lkj");
    let batch = usize::try_from(args.journal_batch).unwrap_or(usize::MAX);
    let mut runs = Vec::new();
    for policy in DurabilityPolicy::ALL {
        let records = if policy == DurabilityPolicy::Every {
            args.journal_every_records
        } else {
            args.journal_records
        };
        let mut journals = Vec::new();
        for backend in [JournalBackendKind::IoUring, JournalBackendKind::PlainFile] {
            let measured = measure_journal(&path, policy, backend, records, batch)
                .map_err(|error| format!("journal ({policy}, {backend}): {error}"))?;
            journals.push((backend, measured));
        }
        let baseline = measure_baseline(&path, policy, records, batch)
            .map_err(|error| format!("journal baseline ({policy}): {error}"))?;
        runs.push(JournalPolicyRuns {
            policy,
            journals,
            baseline,
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(runs)
}

// ------------------------------------------------------------- report ----

struct Report {
    cores: Vec<usize>,
    load_start: Option<[f64; 3]>,
    load_end: Option<[f64; 3]>,
    dir: PathBuf,
    hop: HopSection,
    throughput: ThroughputSection,
    journal: Vec<JournalPolicyRuns>,
}

fn wait_text(wait: &WaitStrategy) -> String {
    match wait {
        WaitStrategy::BusySpin => "busy-spin".to_string(),
        WaitStrategy::Yield => "yield".to_string(),
        WaitStrategy::SpinThenPark {
            spin_iterations,
            yield_iterations,
            park_ns,
        } => format!(
            "spin-then-park ({spin_iterations} spins, {yield_iterations} yields, {} µs parks)",
            park_ns / 1_000
        ),
    }
}

fn writer_name(writer: &MeasuredWriter) -> String {
    match writer {
        MeasuredWriter::Journal(kind) => format!("journal, {kind}"),
        MeasuredWriter::BaselineWriteFdatasync => "baseline write+fdatasync".to_string(),
    }
}

impl Report {
    fn shared_cores(&self) -> bool {
        // Bench submitter, sequencer, replicas and egress: one core each.
        self.cores.len() < SYSTEM_REPLICAS + 3
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "hop pacing: the writer publishes the next message only after every reader has \
             taken the previous one and at least {} ns after the previous send, so one message \
             is in flight: this is latency, not queueing",
            self.hop.interval_ns
        )];
        if self.hop.runs.iter().any(|run| run.readers_share_a_core) {
            notes.push(format!(
                "the {SYSTEM_REPLICAS}-reader hop runs pin all readers to one core (core {}) \
                 because this machine has {} cores: they are time-sliced, busy-spin starves, \
                 so spin-then-park is the default there",
                self.cores.last().copied().unwrap_or(0),
                self.cores.len()
            ));
        }
        if self.shared_cores() {
            notes.push(format!(
                "on {} cores the {SYSTEM_REPLICAS} replicas, the sequencer, egress and the bench \
                 submitter share the cores, so the throughput figures include time-slicing",
                self.cores.len()
            ));
        }
        notes
    }

    fn text(&self) -> String {
        let mut lines = Vec::new();
        let load = |load: Option<[f64; 3]>| {
            load.map_or("unknown".to_string(), |[one, five, fifteen]| {
                format!("{one:.2} {five:.2} {fifteen:.2}")
            })
        };
        lines.push(format!(
            "bench-core: {} cores available {:?}; load average at start {}, at end {}",
            self.cores.len(),
            self.cores,
            load(self.load_start),
            load(self.load_end)
        ));
        lines.push(format!(
            "scratch directory: {} (removed)",
            self.dir.display()
        ));
        for note in self.notes() {
            lines.push(format!("note: {note}"));
        }
        lines.push(String::new());

        let hop = &self.hop;
        lines.push("1. hop latency (sequencer to replica, through the broadcast ring)".to_string());
        for (when, pp) in [("before", &hop.ping_pong), ("after", &hop.ping_pong_after)] {
            lines.push(format!(
                "  cache-line ping-pong {when} the 1-reader runs, {} / {}, {} round trips: \
                 round trip p50 {} p99 {} p99.9 {} ns (Instant::now {} ns)",
                core_text(pp.core_a),
                core_text(pp.core_b),
                pp.round_trips,
                pp.p50_ns,
                pp.p99_ns,
                pp.p999_ns,
                pp.timer_overhead_ns
            ));
        }
        lines.push(format!(
            "  one-way p50 = mean of the two round-trip p50s / 2 = {:.1} ns",
            hop.one_way_p50_ns()
        ));
        lines.push(format!(
            "  {:<8}{:<16}{:<26}{:<12}{:>9}{:>9}{:>9}{:>11}{:>11}{:>13}{:>12}",
            "readers",
            "wait",
            "payload",
            "cores w; r",
            "sent",
            "recorded",
            "p50",
            "p99",
            "p99.9",
            "max",
            "p50/one-way"
        ));
        let one_way = hop.one_way_p50_ns();
        for run in &hop.runs {
            let readers: Vec<String> = run
                .run
                .readers_pinned
                .iter()
                .map(|core| core.map_or("-".to_string(), |core| core.to_string()))
                .collect();
            let pinned = format!(
                "{}; {}",
                run.run
                    .writer_pinned
                    .map_or("-".to_string(), |core| core.to_string()),
                readers.join(",")
            );
            let mut wait = run.wait.name().to_string();
            if run.headline {
                wait.push('*');
            }
            let figure = |value: u64| {
                if run.histogram.is_empty() {
                    "-".to_string()
                } else {
                    value.to_string()
                }
            };
            let mut remarks = Vec::new();
            if run.run.timed_out {
                remarks.push(format!(
                    "time limit: {} sent in {:.1} s",
                    run.run.sent,
                    run.run.elapsed.as_secs_f64()
                ));
            }
            if run.warm_up != hop.warm_up {
                remarks.push(format!("warm-up {}", run.warm_up));
            }
            lines.push(format!(
                "  {:<8}{:<16}{:<26}{:<12}{:>9}{:>9}{:>9}{:>11}{:>11}{:>13}{:>12}{}",
                run.readers,
                wait,
                format!("{} ({} B)", run.payload.name(), run.payload.bytes()),
                pinned,
                run.run.sent,
                run.histogram.len(),
                figure(run.quantile(0.5)),
                figure(run.quantile(0.99)),
                figure(run.quantile(0.999)),
                figure(run.histogram.max()),
                if run.histogram.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.2}", run.ratio_to_one_way(one_way))
                },
                if remarks.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", remarks.join("; "))
                }
            ));
        }
        lines.push(format!(
            "  (* default for that reader count; ns; recorded counts every reader; warm-up {} \
             messages not recorded; target p50/one-way <= {HOP_RATIO_TARGET_MAX})",
            hop.warm_up
        ));
        lines.push(String::new());

        let tp = &self.throughput;
        lines.push(format!(
            "2. throughput: exchange-core flow, {} commands, seed {}",
            tp.commands, tp.seed
        ));
        let cores = &tp.system_cores;
        if cores.sequencer.is_none() {
            lines.push(
                "  system threads unpinned (fewer than 5 cores): the OS places them".to_string(),
            );
        } else {
            lines.push(format!(
                "  system pinning: sequencer {}, replicas {:?}, egress {}",
                core_text(cores.sequencer),
                cores.replicas,
                core_text(cores.egress)
            ));
        }
        let waits = &tp.system_waits;
        lines.push(format!(
            "  system waits: sequencer {}, replicas {}, egress {}",
            wait_text(&waits.sequencer),
            wait_text(&waits.replica),
            wait_text(&waits.egress),
        ));
        lines.push(format!(
            "  system config: the defaults of SystemConfig::new (sequencer batch up to {} \
             commands per journal commit), snapshot every {} seqs",
            tp.sequencer_batch_max, tp.snapshot_interval
        ));
        let engine_rate = tp.engine_per_sec();
        for (index, run) in tp.engine_runs.iter().enumerate() {
            lines.push(format!(
                "  engine alone, run {index}: {:.0} commands/s ({:.1} ns/command), {} events",
                per_sec(tp.commands, run.elapsed_ns),
                ratio(run.elapsed_ns as f64, tp.commands as f64),
                run.events
            ));
        }
        lines.push(format!("  engine alone, mean: {engine_rate:.0} commands/s"));
        for system in &tp.systems {
            let rate = per_sec(tp.commands, system.elapsed_ns);
            lines.push(format!(
                "  system, {SYSTEM_REPLICAS} replicas + egress, durability {} (journal {}): \
                 {rate:.0} commands/s, system/engine {:.3} (target >= {THROUGHPUT_RATIO_TARGET_MIN}); \
                 {} events; {} full rejects; fenced lagged {} panicked {} diverged {}; \
                 rebuilds per replica {:?}",
                system.policy,
                system.backend,
                ratio(rate, engine_rate),
                system.events,
                system.full_rejects,
                system.report.fenced_lagged,
                system.report.fenced_panicked,
                system.report.fenced_diverged,
                system
                    .report
                    .replicas
                    .iter()
                    .map(|replica| replica.rebuilds)
                    .collect::<Vec<u64>>()
            ));
            match &system.threads {
                Some(threads) => {
                    let total = system.total_cpu_ns().unwrap_or(0);
                    lines.push(format!(
                        "    CPU during the run ({:.1} ms wall): total {:.1} ms = {:.2} cores busy, \
                         {:.1} ns CPU per command",
                        system.elapsed_ns as f64 / 1e6,
                        total as f64 / 1e6,
                        ratio(total as f64, system.elapsed_ns as f64),
                        ratio(total as f64, tp.commands as f64)
                    ));
                    lines.push(format!(
                        "      {:<16}{:>8}{:>12}{:>12}{:>12}",
                        "thread", "tid", "on CPU ms", "runnable ms", "blocked ms"
                    ));
                    for thread in threads {
                        lines.push(format!(
                            "      {:<16}{:>8}{:>12.1}{:>12.1}{:>12.1}",
                            thread.role,
                            thread.tid,
                            thread.cpu_ns as f64 / 1e6,
                            thread.wait_ns as f64 / 1e6,
                            thread.blocked_ns(system.elapsed_ns) as f64 / 1e6
                        ));
                    }
                    let replica_ns: Vec<String> = threads
                        .iter()
                        .filter(|thread| thread.role.starts_with("replica"))
                        .map(|thread| {
                            format!("{:.0}", ratio(thread.cpu_ns as f64, tp.commands as f64))
                        })
                        .collect();
                    lines.push(format!(
                        "      replicas' CPU per command: {} ns each; the engine alone took {:.0} ns",
                        replica_ns.join(", "),
                        ratio(1e9, engine_rate)
                    ));
                    lines.push(
                        "      (runnable: on a run queue, not running, including after \
                         sched_yield; blocked: the rest of the wall time, asleep or in I/O)"
                            .to_string(),
                    );
                }
                None => lines.push("    per-thread CPU: /proc schedstat unavailable".to_string()),
            }
        }
        lines.push(String::new());

        lines.push("3. journal against plain write (+ fdatasync)".to_string());
        lines.push(format!(
            "  {:<28}{:<7}{:>9}{:>7}{:>14}{:>12}{:>12}{:>11}{:>11}",
            "writer",
            "policy",
            "records",
            "batch",
            "commands/s",
            "p50 ns",
            "p99 ns",
            "cmd/s vs",
            "p50 vs"
        ));
        for policy in &self.journal {
            let base = &policy.baseline;
            let mut row = |measured: &JournalMeasurement, vs: bool| {
                lines.push(format!(
                    "  {:<28}{:<7}{:>9}{:>7}{:>14.0}{:>12}{:>12}{:>11}{:>11}",
                    writer_name(&measured.writer),
                    measured.policy.name(),
                    measured.records,
                    measured.batch_records,
                    measured.commands_per_sec,
                    measured.commit_latency_p50_ns,
                    measured.commit_latency_p99_ns,
                    if vs {
                        format!(
                            "{:.2}",
                            ratio(measured.commands_per_sec, base.commands_per_sec)
                        )
                    } else {
                        "-".to_string()
                    },
                    if vs {
                        format!(
                            "{:.2}",
                            ratio(
                                measured.commit_latency_p50_ns as f64,
                                base.commit_latency_p50_ns as f64
                            )
                        )
                    } else {
                        "-".to_string()
                    }
                ));
            };
            for (_, measured) in &policy.journals {
                row(measured, true);
            }
            row(base, false);
        }
        lines.push(
            "  (a commit is one batch under none and batch, one record under every; \
             'vs' columns are journal / baseline)"
                .to_string(),
        );
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn json(&self) -> String {
        let hop = &self.hop;
        let one_way = hop.one_way_p50_ns();
        let ping_pong_json = |pp: &PingPongResult| {
            json!({
                "core_a": pp.core_a,
                "core_b": pp.core_b,
                "round_trips": pp.round_trips,
                "aborted": pp.aborted,
                "round_trip_p50_ns": pp.p50_ns,
                "round_trip_p99_ns": pp.p99_ns,
                "round_trip_p999_ns": pp.p999_ns,
                "round_trip_max_ns": pp.max_ns,
                "timer_overhead_ns": pp.timer_overhead_ns,
            })
        };
        let hop_runs: Vec<Value> = hop
            .runs
            .iter()
            .map(|run| {
                json!({
                    "readers": run.readers,
                    "wait": run.wait.name(),
                    "payload": run.payload.name(),
                    "payload_bytes": run.payload.bytes(),
                    "default": run.headline,
                    "writer_core": run.run.writer_pinned,
                    "reader_cores": run.run.readers_pinned,
                    "readers_share_a_core": run.readers_share_a_core,
                    "sent": run.run.sent,
                    "warm_up_messages": run.warm_up,
                    "recorded": run.histogram.len(),
                    "timed_out": run.run.timed_out,
                    "elapsed_ns": nanos(run.run.elapsed),
                    "p50_ns": run.quantile(0.5),
                    "p90_ns": run.quantile(0.9),
                    "p99_ns": run.quantile(0.99),
                    "p999_ns": run.quantile(0.999),
                    "max_ns": run.histogram.max(),
                    "mean_ns": run.histogram.mean(),
                    "p50_over_one_way_p50": run.ratio_to_one_way(one_way),
                    "target_met": !run.histogram.is_empty()
                        && run.ratio_to_one_way(one_way) <= HOP_RATIO_TARGET_MAX,
                })
            })
            .collect();
        let tp = &self.throughput;
        let engine_rate = tp.engine_per_sec();
        let engine_runs: Vec<Value> = tp
            .engine_runs
            .iter()
            .map(|run| {
                json!({
                    "elapsed_ns": run.elapsed_ns,
                    "commands_per_sec": per_sec(tp.commands, run.elapsed_ns),
                    "events": run.events,
                })
            })
            .collect();
        let systems: Vec<Value> = tp
            .systems
            .iter()
            .map(|system| {
                let rate = per_sec(tp.commands, system.elapsed_ns);
                let threads = system.threads.as_ref().map(|threads| {
                    threads
                        .iter()
                        .map(|thread| {
                            json!({
                                "role": thread.role,
                                "tid": thread.tid,
                                "cpu_ns": thread.cpu_ns,
                                "runqueue_wait_ns": thread.wait_ns,
                                "blocked_ns": thread.blocked_ns(system.elapsed_ns),
                            })
                        })
                        .collect::<Vec<Value>>()
                });
                json!({
                    "durability": system.policy.name(),
                    "journal_backend": system.backend.to_string(),
                    "replicas": SYSTEM_REPLICAS,
                    "elapsed_ns": system.elapsed_ns,
                    "commands_per_sec": rate,
                    "system_over_engine": ratio(rate, engine_rate),
                    "target_met": ratio(rate, engine_rate) >= THROUGHPUT_RATIO_TARGET_MIN,
                    "events": system.events,
                    "full_rejects": system.full_rejects,
                    "fenced_lagged": system.report.fenced_lagged,
                    "fenced_panicked": system.report.fenced_panicked,
                    "fenced_diverged": system.report.fenced_diverged,
                    "replica_rebuilds": system
                        .report
                        .replicas
                        .iter()
                        .map(|replica| replica.rebuilds)
                        .collect::<Vec<u64>>(),
                    "cpu_ns_total": system.total_cpu_ns(),
                    "threads": threads,
                })
            })
            .collect();
        let measurement = |measured: &JournalMeasurement, base: Option<&JournalMeasurement>| {
            let mut value = json!({
                "writer": writer_name(&measured.writer),
                "policy": measured.policy.name(),
                "records": measured.records,
                "batch_records": measured.batch_records,
                "commands_per_sec": measured.commands_per_sec,
                "commit_latency_p50_ns": measured.commit_latency_p50_ns,
                "commit_latency_p99_ns": measured.commit_latency_p99_ns,
                "commit_latency_mean_ns": measured.commit_latency_mean_ns,
            });
            if let Some(base) = base {
                value["commands_per_sec_over_baseline"] =
                    ratio(measured.commands_per_sec, base.commands_per_sec).into();
                value["commit_p50_over_baseline"] = ratio(
                    measured.commit_latency_p50_ns as f64,
                    base.commit_latency_p50_ns as f64,
                )
                .into();
            }
            value
        };
        let journal: Vec<Value> = self
            .journal
            .iter()
            .map(|policy| {
                let journals: Vec<Value> = policy
                    .journals
                    .iter()
                    .map(|(requested, measured)| {
                        let mut value = measurement(measured, Some(&policy.baseline));
                        value["backend_requested"] = requested.to_string().into();
                        value
                    })
                    .collect();
                json!({
                    "policy": policy.policy.name(),
                    "journals": journals,
                    "baseline": measurement(&policy.baseline, None),
                })
            })
            .collect();
        let cores = &tp.system_cores;
        let waits = &tp.system_waits;
        let value = json!({
            "machine": {
                "cores": self.cores,
                "load_average_start": self.load_start,
                "load_average_end": self.load_end,
            },
            "notes": self.notes(),
            "hop": {
                "interval_ns": hop.interval_ns,
                "warm_up_messages": hop.warm_up,
                "ping_pong": ping_pong_json(&hop.ping_pong),
                "ping_pong_after": ping_pong_json(&hop.ping_pong_after),
                "one_way_p50_ns": one_way,
                "target_p50_over_one_way_max": HOP_RATIO_TARGET_MAX,
                "runs": hop_runs,
            },
            "throughput": {
                "mix": Mix::ExchangeCore.name(),
                "commands": tp.commands,
                "seed": tp.seed,
                "system_cores": {
                    "sequencer": cores.sequencer,
                    "replicas": cores.replicas,
                    "egress": cores.egress,
                },
                "system_waits": {
                    "sequencer": wait_text(&waits.sequencer),
                    "replica": wait_text(&waits.replica),
                    "egress": wait_text(&waits.egress),
                },
                "snapshot_interval": tp.snapshot_interval,
                "sequencer_batch_max": tp.sequencer_batch_max,
                "engine_runs": engine_runs,
                "engine_commands_per_sec": engine_rate,
                "systems": systems,
                "target_system_over_engine_min": THROUGHPUT_RATIO_TARGET_MIN,
            },
            "journal": journal,
        });
        format!("{value}\n")
    }
}

pub fn run(args: &BenchCoreArgs) -> Result<String, String> {
    args.validate()?;
    let load_start = load_average();
    let cores = core_ids();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = TempDir::new(&parent)?;
    let hop = hop_section(args, &cores)?;
    // The journal runs before the system runs: the system's hundreds of MB
    // of journal and snapshots are still being written back afterwards, and
    // io_uring's buffered writes then wait behind that writeback.
    let journal = journal_section(args, &scratch.0)?;
    let throughput = throughput_section(args, &cores, &scratch.0)?;
    let report = Report {
        cores,
        load_start,
        load_end: load_average(),
        dir: scratch.0.clone(),
        hop,
        throughput,
        journal,
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

    #[test]
    fn readers_beyond_the_cores_share_the_last_one() {
        assert_eq!(hop_cores(&[0, 1], 3), (Some(0), vec![Some(1); 3]));
        assert_eq!(
            hop_cores(&[0, 1, 2, 3], 3),
            (Some(0), vec![Some(1), Some(2), Some(3)])
        );
        assert_eq!(hop_cores(&[0], 1), (None, vec![None]));
    }

    #[test]
    fn the_system_is_pinned_only_with_a_core_per_thread() {
        assert_eq!(system_cores(&[0, 1]), ThreadCores::default());
        let cores = system_cores(&[0, 1, 2, 3, 4]);
        assert_eq!(cores.sequencer, Some(0));
        assert_eq!(cores.replicas, vec![Some(1), Some(2), Some(3)]);
        assert_eq!(cores.egress, Some(4));
    }
}
