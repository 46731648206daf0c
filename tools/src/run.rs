//! `lockstep run`: runs the replicated core (sequencer, journal, N replica
//! engines, egress) on a flow file or a generated mix, then stops it cleanly
//! and reports what happened. This module owns the command line, building
//! the `SystemConfig`, feeding the commands in (waiting while the input
//! queue is full), the counting sink, and the report: startup recovery,
//! throughput, journal backend and durability, every replica's applied seq
//! and state hash, the fence counters, and whether the replicas agree. A data
//! directory that already holds a journal is recovered and continued: the
//! new commands get the seqs after the recovered ones. The journal written
//! here names instruments by engine index; `lockstep replay --journal` and
//! `lockstep verify` replay it on `--instruments` instruments (default 1, as
//! for the exchange-core mix; the report says how many this run used).

use crate::gen::MixName;
use crate::journal_file;
use crate::replay::{read_flow, CAPACITY_MAX};
use clap::{ArgGroup, Args, ValueEnum};
use lockstep_bench::{engine_config_for, generate_commands, Mix};
use lockstep_engine::Command;
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_sequencer::system::{self, StartupReport, SubmitError, SystemReport};
use lockstep_sequencer::system_config::{SystemConfig, REPLICAS_MAX};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The durability policies, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityName {
    /// Never fdatasync: survives a process crash, not a power loss.
    None,
    /// Group commit: one fdatasync per sequencer batch.
    Batch,
    /// fdatasync after every record.
    Every,
}

impl From<DurabilityName> for DurabilityPolicy {
    fn from(name: DurabilityName) -> DurabilityPolicy {
        match name {
            DurabilityName::None => DurabilityPolicy::None,
            DurabilityName::Batch => DurabilityPolicy::Batch,
            DurabilityName::Every => DurabilityPolicy::Every,
        }
    }
}

/// Run the replicated core (sequencer, journal, replicas, egress) on a flow
/// file or a generated mix, stop it cleanly and report throughput, every
/// replica's state hash and whether the replicas agree (exit 1 if not). A
/// data directory that already holds a journal is recovered and continued.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["flow", "mix"])))]
pub struct RunArgs {
    /// The Flow CSV v1 file to submit.
    #[arg(long, value_name = "FILE.csv")]
    pub flow: Option<PathBuf>,
    /// Generate the commands from this mix instead of reading a flow.
    #[arg(long, value_enum, requires = "orders")]
    pub mix: Option<MixName>,
    /// How many commands to generate (with --mix).
    #[arg(long, value_name = "N", requires = "mix")]
    pub orders: Option<u64>,
    /// The seed of the generated flow (with --mix; default 1).
    #[arg(long, value_name = "S", requires = "mix")]
    pub seed: Option<u64>,
    /// Where the journal (journal.lkj) and snapshots live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// How many replica engines run in lockstep.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=REPLICAS_MAX as i64))]
    pub replicas: u32,
    /// When the journal calls fdatasync.
    #[arg(long, value_enum, default_value = "batch")]
    pub durability: DurabilityName,
    /// Write the journal with plain file writes instead of io_uring.
    #[arg(long)]
    pub plain_file: bool,
    /// Order and price-level capacity of every engine (default: the new
    /// orders in the flow plus those already journaled, at least 1024).
    /// Give the same value on every run of a data directory to keep its
    /// snapshots usable: a snapshot of another configuration is ignored.
    #[arg(long, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=CAPACITY_MAX as i64))]
    pub capacity: Option<u32>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Where the commands came from, for the report.
enum Input {
    Flow(PathBuf),
    Mix { mix: Mix, seed: u64 },
}

/// Everything the report shows.
struct Report {
    input: Input,
    data_dir: PathBuf,
    instruments: u32,
    capacity: u32,
    durability: DurabilityPolicy,
    startup: StartupReport,
    commands: u64,
    elapsed_ns: u64,
    events_counted: u64,
    end: SystemReport,
}

impl Report {
    fn commands_per_sec(&self) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            self.commands as f64 * 1e9 / self.elapsed_ns as f64
        }
    }

    /// The (applied seq, state hash) every replica reached, if they all
    /// reached the same one and it is the last seq sequenced.
    fn agreed(&self) -> Option<(u64, u64)> {
        let first = self.end.replicas.first()?;
        let all_same = self.end.replicas.iter().all(|replica| {
            replica.applied_seq == first.applied_seq && replica.state_hash == first.state_hash
        });
        (all_same && first.applied_seq == self.end.last_seq)
            .then_some((first.applied_seq, first.state_hash))
    }

    fn disagreement(&self) -> String {
        let replicas: Vec<String> = self
            .end
            .replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| {
                format!(
                    "replica {index} at seq {} with state hash {:016x}",
                    replica.applied_seq, replica.state_hash
                )
            })
            .collect();
        format!(
            "replicas disagree after seq {}: {}",
            self.end.last_seq,
            replicas.join(", ")
        )
    }

    fn input_text(&self) -> String {
        match &self.input {
            Input::Flow(path) => format!("flow {}", path.display()),
            Input::Mix { mix, seed } => format!("mix {mix} (seed {seed})"),
        }
    }

    fn text(&self) -> String {
        let startup = &self.startup;
        let end = &self.end;
        let backend = match &startup.journal_fallback_reason {
            Some(reason) => format!("{} (io_uring not used: {reason})", startup.journal_backend),
            None => startup.journal_backend.to_string(),
        };
        let snapshot = startup
            .snapshot_seq
            .map_or_else(|| "none".to_string(), |seq| format!("seq {seq}"));
        let mut lines = vec![
            format!(
                "run: {} commands from {}, {} replicas, {} instruments, capacity {}",
                self.commands,
                self.input_text(),
                end.replicas.len(),
                self.instruments,
                self.capacity
            ),
            format!("data dir:          {}", self.data_dir.display()),
            format!(
                "startup:           recovered seq {}, snapshot {snapshot}, replayed {}, torn tail {}",
                startup.recovered_seq,
                startup.replayed,
                startup
                    .torn_tail
                    .map_or_else(|| "none".to_string(), |tail| tail.to_string())
            ),
        ];
        for skipped in &startup.skipped_snapshots {
            lines.push(format!("  skipped snapshot: {skipped:?}"));
        }
        lines.extend([
            format!("journal backend:   {backend}"),
            format!("durability:        {}", self.durability),
            format!("commands:          {}", self.commands),
            format!(
                "seqs:              last {}, durable {}, published {}",
                end.last_seq, end.durable_seq, end.published_seq
            ),
            format!(
                "events published:  {} (sink counted {})",
                end.events_published, self.events_counted
            ),
            format!(
                "elapsed:           {:.3} ms, {:.0} commands/s",
                self.elapsed_ns as f64 / 1e6,
                self.commands_per_sec()
            ),
        ]);
        for (index, replica) in end.replicas.iter().enumerate() {
            lines.push(format!(
                "replica {index}:         applied seq {}, state hash {:016x}, epoch {}, panics {}, rebuilds {}",
                replica.applied_seq, replica.state_hash, replica.epoch, replica.panics, replica.rebuilds
            ));
        }
        lines.push(format!(
            "fences:            panicked {}, lagged {}, diverged {}; hashes compared {}, published divergences {}",
            end.fenced_panicked,
            end.fenced_lagged,
            end.fenced_diverged,
            end.hashes_compared,
            end.published_divergences
        ));
        if let Some(failure) = &end.failure {
            lines.push(format!("failure:           {failure}"));
        }
        lines.push(match self.agreed() {
            Some((seq, hash)) => format!(
                "replicas agree:    yes, {} replicas through seq {seq}, state hash {hash:016x}",
                end.replicas.len()
            ),
            None => "replicas agree:    NO".to_string(),
        });
        lines.push(format!(
            "replay the journal with: lockstep replay --journal {} --instruments {}",
            self.data_dir.join("journal.lkj").display(),
            self.instruments
        ));
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn json(&self) -> String {
        let startup = &self.startup;
        let end = &self.end;
        let input = match &self.input {
            Input::Flow(path) => serde_json::json!({ "flow": path.display().to_string() }),
            Input::Mix { mix, seed } => serde_json::json!({ "mix": mix.name(), "seed": seed }),
        };
        let replicas: Vec<serde_json::Value> = end
            .replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| {
                serde_json::json!({
                    "replica": index,
                    "applied_seq": replica.applied_seq,
                    "state_hash": format!("{:016x}", replica.state_hash),
                    "epoch": replica.epoch,
                    "panics": replica.panics,
                    "rebuilds": replica.rebuilds,
                })
            })
            .collect();
        let agreed = self.agreed();
        let value = serde_json::json!({
            "input": input,
            "data_dir": self.data_dir.display().to_string(),
            "instruments": self.instruments,
            "capacity": self.capacity,
            "startup": {
                "recovered_seq": startup.recovered_seq,
                "snapshot_seq": startup.snapshot_seq,
                "replayed": startup.replayed,
                "torn_tail": startup.torn_tail.map(|tail| tail.to_string()),
                "skipped_snapshots": startup.skipped_snapshots.len(),
            },
            "journal_backend": startup.journal_backend.to_string(),
            "journal_fallback_reason": startup.journal_fallback_reason,
            "durability": self.durability.name(),
            "commands": self.commands,
            "last_seq": end.last_seq,
            "durable_seq": end.durable_seq,
            "published_seq": end.published_seq,
            "events_published": end.events_published,
            "events_counted": self.events_counted,
            "elapsed_ns": self.elapsed_ns,
            "commands_per_sec": self.commands_per_sec(),
            "replicas": replicas,
            "fenced_panicked": end.fenced_panicked,
            "fenced_lagged": end.fenced_lagged,
            "fenced_diverged": end.fenced_diverged,
            "hashes_compared": end.hashes_compared,
            "published_divergences": end.published_divergences,
            "failure": end.failure,
            "agree": agreed.is_some(),
            "state_hash": agreed.map(|(_, hash)| format!("{hash:016x}")),
        });
        format!("{value}\n")
    }
}

/// The commands to submit, how many instruments they need, and how many
/// new orders they hold.
fn load_input(args: &RunArgs) -> Result<(Input, Vec<Command>, u32, u64), String> {
    match (&args.flow, args.mix, args.orders) {
        (Some(path), None, None) => {
            let flow = read_flow(path)?;
            let instruments = flow.mapper.instrument_count();
            Ok((
                Input::Flow(path.clone()),
                flow.commands,
                instruments,
                flow.new_orders,
            ))
        }
        (None, Some(mix), Some(orders)) => {
            let mix = Mix::from(mix);
            let orders = usize::try_from(orders)
                .map_err(|_| format!("--orders {orders} does not fit in memory"))?;
            let seed = args.seed.unwrap_or(1);
            let commands = generate_commands(mix, seed, orders);
            let new_orders = commands
                .iter()
                .filter(|command| matches!(command, Command::New(_)))
                .count() as u64;
            Ok((
                Input::Mix { mix, seed },
                commands,
                mix.instrument_count(),
                new_orders,
            ))
        }
        _ => Err("give either --flow or --mix with --orders".to_string()),
    }
}

/// Writes `report` to stdout now, for a run that then fails: the report is
/// the evidence, the error line says what went wrong.
pub(crate) fn print_before_failing(report: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes());
    let _ = stdout.flush();
}

pub fn run(args: &RunArgs) -> Result<String, String> {
    let (input, commands, instruments, new_orders) = load_input(args)?;
    let journal_path = args.data_dir.join("journal.lkj");
    let capacity = args.capacity.unwrap_or_else(|| {
        journal_file::default_capacity(
            new_orders.saturating_add(journal_file::count_new_orders(&journal_path)),
        )
    });
    let durability = DurabilityPolicy::from(args.durability);
    let mut config = SystemConfig::new(
        engine_config_for(instruments, capacity),
        args.data_dir.clone(),
    );
    config.replicas = args.replicas as usize;
    config.durability = durability;
    config.prefer_io_uring = !args.plain_file;
    debug_assert_eq!(config.journal_path(), journal_path);

    let events = Arc::new(AtomicU64::new(0));
    let sink_events = Arc::clone(&events);
    let handle = system::start(
        config,
        Box::new(move |_seq, _timestamp_ns, _event| {
            sink_events.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .map_err(|error| {
        format!(
            "cannot start the system in {}: {error}",
            args.data_dir.display()
        )
    })?;
    let startup = handle.startup().clone();

    let started = Instant::now();
    let mut submitted = 0u64;
    'commands: for command in &commands {
        let mut pending = *command;
        loop {
            match handle.submit(pending) {
                Ok(()) => break,
                Err(SubmitError::Full(returned)) => {
                    pending = returned;
                    std::thread::yield_now();
                }
                // The sequencer stopped on a failure; the report says why.
                Err(SubmitError::Stopped(_)) => break 'commands,
            }
        }
        submitted += 1;
    }
    let end = handle.shutdown();
    let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);

    let report = Report {
        input,
        data_dir: args.data_dir.clone(),
        instruments,
        capacity,
        durability,
        startup,
        commands: submitted,
        elapsed_ns,
        events_counted: events.load(Ordering::Acquire),
        end,
    };
    let text = if args.json {
        report.json()
    } else {
        report.text()
    };
    if let Some(failure) = &report.end.failure {
        print_before_failing(&text);
        return Err(format!(
            "the sequencer stopped early after seq {}: {failure}",
            report.end.last_seq
        ));
    }
    if submitted != commands.len() as u64 {
        print_before_failing(&text);
        return Err(format!(
            "the system stopped after {submitted} of {} commands",
            commands.len()
        ));
    }
    if report.agreed().is_none() {
        print_before_failing(&text);
        return Err(report.disagreement());
    }
    Ok(text)
}
