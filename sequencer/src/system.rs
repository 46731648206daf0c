//! Starting, running and stopping one Lockstep core: recovery from the data
//! directory (journal recovery, newest usable snapshot, replay of the
//! suffix), then the threads: one sequencer, N replicas, one egress, each
//! pinned where configured. `SystemHandle` is how the outside submits
//! commands and stops the system, cleanly (`shutdown`: everything submitted
//! is sequenced, journaled, synced and published) or as a crash would
//! (`crash`: threads stop where they are, the journal is not synced).
//!
//! [`build`] is the first half of `start`: recovery and the agents, not yet
//! running. `start` runs each agent on its own thread; the simulator
//! (`lockstep-sim`) builds on its own [`Storage`] (a simulated disk) and
//! calls every agent's `do_work` from one thread. Both start from exactly
//! the same recovery.

use crate::broadcast_ring::BroadcastRing;
use crate::clock::{Clock, MonotonicClock, SystemClock};
use crate::egress::{EgressAgent, EgressCycle, EgressStats, PublishSink};
use crate::journal::{Journal, JournalOptions};
use crate::journal_backend::{JournalBackendKind, JournalDevice};
use crate::journal_reader::{JournalFile, JournalSource, TornTail};
use crate::journal_record::SequencedCommand;
use crate::output_ring::OutputRing;
use crate::pinning::pin_current_thread;
use crate::rebuild::rebuild;
use crate::replica::{ReplicaAgent, ReplicaCycle, ReplicaStatus};
use crate::sequence::Sequence;
use crate::sequencer_agent::{SequencerAgent, SequencerCycle};
use crate::snapshot_store::{SkippedSnapshot, SnapshotStore};
use crate::system_config::SystemConfig;
use crossbeam_queue::ArrayQueue;
use lockstep_engine::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What startup found and did.
#[derive(Clone, Debug)]
pub struct StartupReport {
    /// The last seq in the journal after recovery (0 for a new journal).
    pub recovered_seq: u64,
    pub snapshot_seq: Option<u64>,
    pub replayed: u64,
    pub torn_tail: Option<TornTail>,
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    pub journal_backend: JournalBackendKind,
    /// Why io_uring was not used, if it was preferred and not used.
    pub journal_fallback_reason: Option<String>,
}

/// One replica at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaReport {
    pub applied_seq: u64,
    pub state_hash: u64,
    pub epoch: u64,
    pub panics: u64,
    pub rebuilds: u64,
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct SystemReport {
    pub last_seq: u64,
    pub durable_seq: u64,
    pub published_seq: u64,
    pub events_published: u64,
    pub replicas: Vec<ReplicaReport>,
    pub fenced_panicked: u64,
    pub fenced_lagged: u64,
    pub fenced_diverged: u64,
    /// Fences of the replica being published from at that moment.
    pub fenced_leaders: u64,
    pub hashes_compared: u64,
    pub published_divergences: u64,
    /// Why the sequencer stopped early, if it did.
    pub failure: Option<String>,
}

/// Why `submit` refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The input queue is full: a clean reject, try later.
    Full(Command),
    /// The system is stopping or stopped.
    Stopped(Command),
}

/// Why the system could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running system.
pub struct SystemHandle {
    input: Arc<ArrayQueue<Command>>,
    stop: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
    sequencer: Option<JoinHandle<Journal>>,
    replicas: Vec<JoinHandle<()>>,
    egress: Option<JoinHandle<()>>,
    statuses: Vec<Arc<ReplicaStatus>>,
    egress_stats: Arc<EgressStats>,
    durable_seq: Arc<Sequence>,
    sequenced_through: Arc<Sequence>,
    failure: Arc<Mutex<Option<String>>>,
    startup: StartupReport,
}

/// Submits commands to a running system from any thread.
#[derive(Clone)]
pub struct SystemSubmitter {
    input: Arc<ArrayQueue<Command>>,
    stop: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
}

impl SystemSubmitter {
    /// As [`SystemHandle::submit`].
    pub fn submit(&self, command: Command) -> Result<(), SubmitError> {
        if self.stop.load(Ordering::Acquire) || self.halt.load(Ordering::Acquire) {
            return Err(SubmitError::Stopped(command));
        }
        self.input.push(command).map_err(SubmitError::Full)
    }
}

fn start_error(what: &str, error: impl std::fmt::Display) -> StartError {
    StartError(format!("{what}: {error}"))
}

/// Starts a system on `config`, recovering whatever its data directory holds,
/// and publishing every event through `sink` on the egress thread.
pub fn start(config: SystemConfig, sink: PublishSink) -> Result<SystemHandle, StartError> {
    start_with_clock(config, sink, Box::new(SystemClock))
}

/// Where a system keeps its journal and snapshots.
pub enum Storage {
    /// The configuration's data directory: the journal file and the
    /// snapshot directory. What production uses.
    DataDir,
    /// Storage the caller provides: the simulator's disk.
    Provided {
        /// The journal writer's device.
        journal: Box<dyn JournalDevice>,
        /// How readers (recovery, rebuilding replicas) read the same journal.
        source: Arc<dyn JournalSource>,
        snapshots: SnapshotStore,
    },
}

/// The handles the agents share, and the outside uses to submit commands,
/// stop the system and watch it.
#[derive(Clone)]
pub struct SharedState {
    pub input: Arc<ArrayQueue<Command>>,
    pub stop: Arc<AtomicBool>,
    pub halt: Arc<AtomicBool>,
    pub statuses: Vec<Arc<ReplicaStatus>>,
    pub egress_stats: Arc<EgressStats>,
    pub durable_seq: Arc<Sequence>,
    pub sequenced_through: Arc<Sequence>,
    pub sequencer_done: Arc<AtomicBool>,
    pub egress_done: Arc<AtomicBool>,
    pub failure: Arc<Mutex<Option<String>>>,
}

/// A recovered system whose agents are not running yet. [`start`] gives
/// each a thread; the simulator calls their `do_work` itself.
pub struct SystemParts {
    pub sequencer: SequencerAgent,
    pub replicas: Vec<ReplicaAgent>,
    pub egress: EgressAgent,
    pub shared: SharedState,
    pub startup: StartupReport,
}

/// [`start`] with a clock of the caller's.
pub fn start_with_clock(
    config: SystemConfig,
    sink: PublishSink,
    clock: Box<dyn Clock>,
) -> Result<SystemHandle, StartError> {
    let parts = build(&config, sink, clock, Storage::DataDir)?;
    let SystemParts {
        sequencer: sequencer_agent,
        replicas: replica_agents,
        egress: egress_agent,
        shared,
        startup,
    } = parts;
    let mut replicas = Vec::with_capacity(replica_agents.len());
    for agent in replica_agents {
        let id = agent.id;
        let core = config.cores.replicas.get(id).copied().flatten();
        let handle = std::thread::Builder::new()
            .name(format!("lockstep-replica-{id}"))
            .spawn(move || {
                pin_current_thread(&format!("replica {id}"), core);
                agent.run();
            })
            .map_err(|error| start_error("spawn replica", error))?;
        replicas.push(handle);
    }
    let egress_core = config.cores.egress;
    let egress = std::thread::Builder::new()
        .name("lockstep-egress".to_string())
        .spawn(move || {
            pin_current_thread("egress", egress_core);
            egress_agent.run();
        })
        .map_err(|error| start_error("spawn egress", error))?;
    let sequencer_core = config.cores.sequencer;
    let sequencer = std::thread::Builder::new()
        .name("lockstep-sequencer".to_string())
        .spawn(move || {
            pin_current_thread("sequencer", sequencer_core);
            sequencer_agent.run()
        })
        .map_err(|error| start_error("spawn sequencer", error))?;

    Ok(SystemHandle {
        input: shared.input,
        stop: shared.stop,
        halt: shared.halt,
        sequencer: Some(sequencer),
        replicas,
        egress: Some(egress),
        statuses: shared.statuses,
        egress_stats: shared.egress_stats,
        durable_seq: shared.durable_seq,
        sequenced_through: shared.sequenced_through,
        failure: shared.failure,
        startup,
    })
}

/// Recovers whatever `storage` holds and builds every agent, ready to run:
/// opens the journal (a torn tail is cut, a corrupt middle refuses), makes
/// it durable, rebuilds the engine from the newest usable snapshot and the
/// journal, and wires the rings. Nothing runs yet.
pub fn build(
    config: &SystemConfig,
    sink: PublishSink,
    clock: Box<dyn Clock>,
    storage: Storage,
) -> Result<SystemParts, StartError> {
    config
        .validate()
        .map_err(|error| start_error("config", error))?;
    let mut options = JournalOptions::new(config.durability);
    options.prefer_io_uring = config.prefer_io_uring;
    options.batch_records_max = config.sequencer_batch_max;
    let (journal, source, snapshots) = match storage {
        Storage::DataDir => {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|error| start_error("data directory", error))?;
            let journal_path = config.journal_path();
            let journal = Journal::open_with(&journal_path, &options)
                .map_err(|error| start_error("journal", error))?;
            // Records a crashed process wrote but never synced are in the
            // file now; make them durable before anything derived from them
            // is published.
            std::fs::File::open(&journal_path)
                .and_then(|file| file.sync_all())
                .map_err(|error| start_error("journal sync", error))?;
            let source: Arc<dyn JournalSource> = Arc::new(JournalFile(journal_path));
            let snapshots = SnapshotStore::new(config.snapshot_dir(), config.snapshots_kept);
            (journal, source, snapshots)
        }
        Storage::Provided {
            journal,
            source,
            snapshots,
        } => {
            let mut journal = Journal::open_on_device(journal, &options)
                .map_err(|error| start_error("journal", error))?;
            journal
                .sync_everything_written()
                .map_err(|error| start_error("journal sync", error))?;
            (journal, source, snapshots)
        }
    };
    let recovered_seq = journal.next_seq() - 1;
    let rebuilt = rebuild(&config.engine, source.as_ref(), &snapshots, recovered_seq)
        .map_err(|error| start_error("recovery", error))?;
    if rebuilt.applied_seq != recovered_seq {
        return Err(StartError(format!(
            "recovery: replay reached seq {} but the journal ends at seq {recovered_seq}",
            rebuilt.applied_seq
        )));
    }
    let startup = StartupReport {
        recovered_seq,
        snapshot_seq: rebuilt.snapshot_seq,
        replayed: rebuilt.replayed,
        torn_tail: journal.recovery_report().torn_tail,
        skipped_snapshots: rebuilt.skipped_snapshots,
        journal_backend: journal.backend(),
        journal_fallback_reason: journal.backend_fallback_reason().map(str::to_string),
    };

    let first_seq = recovered_seq + 1;
    let parts = BroadcastRing::<SequencedCommand>::starting_at(
        config.broadcast_ring_size,
        config.replicas,
        first_seq,
    )
    .map_err(|error| start_error("broadcast ring", error))?;
    let mut shared = SharedState {
        input: Arc::new(ArrayQueue::new(config.input_queue_max)),
        stop: Arc::new(AtomicBool::new(false)),
        halt: Arc::new(AtomicBool::new(false)),
        statuses: Vec::with_capacity(config.replicas),
        egress_stats: Arc::new(EgressStats::default()),
        durable_seq: Arc::new(Sequence::new(recovered_seq)),
        sequenced_through: Arc::new(Sequence::new(recovered_seq)),
        sequencer_done: Arc::new(AtomicBool::new(false)),
        egress_done: Arc::new(AtomicBool::new(false)),
        failure: Arc::new(Mutex::new(None)),
    };
    shared.egress_stats.published_seq.set(recovered_seq);

    let mut consumers = Vec::with_capacity(config.replicas);
    let mut replicas = Vec::with_capacity(config.replicas);
    for (id, reader) in parts.readers.into_iter().enumerate() {
        let (producer, consumer) = OutputRing::new(config.output_ring_size)
            .map_err(|error| start_error("output ring", error))?;
        let status = Arc::new(ReplicaStatus::default());
        status.applied_seq.set(recovered_seq);
        replicas.push(ReplicaAgent {
            id,
            engine: rebuilt.engine.clone(),
            engine_config: config.engine.clone(),
            reader,
            ring: parts.ring.clone(),
            output: producer,
            status: Arc::clone(&status),
            wait: config.waits.replica,
            journal: Arc::clone(&source),
            snapshots: snapshots.clone(),
            snapshot_interval: config.snapshot_interval,
            replicas: config.replicas,
            stop: Arc::clone(&shared.stop),
            halt: Arc::clone(&shared.halt),
            sequenced_through: Arc::clone(&shared.sequenced_through),
            sequencer_done: Arc::clone(&shared.sequencer_done),
            faults: config
                .faults
                .iter()
                .copied()
                .filter(|fault| fault.replica == id)
                .collect(),
            clock: Box::new(MonotonicClock::new()),
            epoch: 0,
            fences_seen: 0,
            egress: Arc::clone(&shared.egress_stats),
            egress_done: Arc::clone(&shared.egress_done),
            cycle: ReplicaCycle::default(),
        });
        shared.statuses.push(status);
        consumers.push(consumer);
    }

    let egress = EgressAgent {
        consumers,
        statuses: shared.statuses.clone(),
        ring: parts.ring.clone(),
        durable_seq: Arc::clone(&shared.durable_seq),
        sequenced_through: Arc::clone(&shared.sequenced_through),
        sequencer_done: Arc::clone(&shared.sequencer_done),
        halt: Arc::clone(&shared.halt),
        wait: config.waits.egress,
        fence_lag_max: config.fence_lag_max,
        hash_window: vec![(0, 0); config.hash_window_size],
        stats: Arc::clone(&shared.egress_stats),
        sink,
        done: Arc::clone(&shared.egress_done),
        next_seq: first_seq,
        cycle: EgressCycle::default(),
    };

    let sequencer = SequencerAgent {
        input: Arc::clone(&shared.input),
        journal,
        writer: parts.writer,
        batch: Vec::with_capacity(config.sequencer_batch_max),
        batch_max: config.sequencer_batch_max,
        next_seq: first_seq,
        clock,
        durable_seq: Arc::clone(&shared.durable_seq),
        sequenced_through: Arc::clone(&shared.sequenced_through),
        done: Arc::clone(&shared.sequencer_done),
        stop: Arc::clone(&shared.stop),
        halt: Arc::clone(&shared.halt),
        wait: config.waits.sequencer,
        failure: Arc::clone(&shared.failure),
        cycle: SequencerCycle::default(),
    };

    Ok(SystemParts {
        sequencer,
        replicas,
        egress,
        shared,
        startup,
    })
}

impl SystemHandle {
    /// Queues a command for sequencing. A full queue is a clean reject.
    pub fn submit(&self, command: Command) -> Result<(), SubmitError> {
        if self.stop.load(Ordering::Acquire) || self.halt.load(Ordering::Acquire) {
            return Err(SubmitError::Stopped(command));
        }
        self.input.push(command).map_err(SubmitError::Full)
    }

    /// A handle another thread (the gateway) uses to submit commands; it
    /// refuses them once the system stops, like [`Self::submit`].
    pub fn submitter(&self) -> SystemSubmitter {
        SystemSubmitter {
            input: Arc::clone(&self.input),
            stop: Arc::clone(&self.stop),
            halt: Arc::clone(&self.halt),
        }
    }

    pub fn startup(&self) -> &StartupReport {
        &self.startup
    }

    pub fn published_seq(&self) -> u64 {
        self.egress_stats.published_seq.get()
    }

    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.get()
    }

    pub fn sequenced_seq(&self) -> u64 {
        self.sequenced_through.get()
    }

    pub fn replica_status(&self, replica: usize) -> &ReplicaStatus {
        &self.statuses[replica]
    }

    /// Asks `replica` to panic before its next command, as a crash would:
    /// it is fenced, rebuilds from snapshot and journal and rejoins, while
    /// the others go on. False if there is no such replica.
    pub fn kill_replica(&self, replica: usize) -> bool {
        match self.statuses.get(replica) {
            Some(status) => {
                status.kill_requested.store(true, Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub fn egress_stats(&self) -> &EgressStats {
        &self.egress_stats
    }

    /// Whether the sequencer stopped on a failure (a journal error).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Stops cleanly: everything submitted so far is sequenced, journaled,
    /// synced and published, then every thread ends.
    pub fn shutdown(mut self) -> SystemReport {
        self.stop_and_join(false);
        self.report()
    }

    /// Stops as a crash would: every thread stops where it is, nothing more
    /// is synced. What was written to the journal file stays there (as the
    /// OS keeps it after a process crash).
    pub fn crash(mut self) -> SystemReport {
        self.stop_and_join(true);
        self.report()
    }

    /// Asks every thread to stop (at once if `halt`, else after draining
    /// what was submitted) and waits for them. The sequencer goes first: it
    /// syncs and closes the journal on a clean stop.
    fn stop_and_join(&mut self, halt: bool) {
        if halt {
            self.halt.store(true, Ordering::Release);
        }
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.sequencer.take() {
            drop(handle.join());
        }
        if let Some(handle) = self.egress.take() {
            let _ = handle.join();
        }
        for handle in self.replicas.drain(..) {
            let _ = handle.join();
        }
    }

    fn report(&self) -> SystemReport {
        let stats = &self.egress_stats;
        SystemReport {
            last_seq: self.sequenced_through.get(),
            durable_seq: self.durable_seq.get(),
            published_seq: stats.published_seq.get(),
            events_published: stats.events_published.load(Ordering::Acquire),
            replicas: self
                .statuses
                .iter()
                .map(|status| ReplicaReport {
                    applied_seq: status.applied_seq.get(),
                    state_hash: status.final_state_hash.load(Ordering::Acquire),
                    epoch: status.epoch.get(),
                    panics: status.panics.load(Ordering::Acquire),
                    rebuilds: status.rebuilds.load(Ordering::Acquire),
                })
                .collect(),
            fenced_panicked: stats.fenced_panicked.load(Ordering::Acquire),
            fenced_lagged: stats.fenced_lagged.load(Ordering::Acquire),
            fenced_diverged: stats.fenced_diverged.load(Ordering::Acquire),
            fenced_leaders: stats.fenced_leaders.load(Ordering::Acquire),
            hashes_compared: stats.hashes_compared.load(Ordering::Acquire),
            published_divergences: stats.published_divergences.load(Ordering::Acquire),
            failure: self.failure(),
        }
    }
}

impl Drop for SystemHandle {
    /// A handle dropped without `shutdown` or `crash` halts the threads, so
    /// none outlives it.
    fn drop(&mut self) {
        if self.sequencer.is_some() || self.egress.is_some() || !self.replicas.is_empty() {
            self.stop_and_join(true);
        }
    }
}
