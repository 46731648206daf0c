//! The simulation loop: one seed, one thread. Each step advances simulated
//! time, may inject faults, lets the clients submit (command-level clients
//! straight to the input queue; SoupBinTCP clients through the real gateway,
//! which lives and dies with the process), then calls `do_work` of
//! the sequencer, egress and every replica in a random order (stalled
//! replicas are skipped, slow ones mostly skipped), and then checks the
//! system against the model. A process crash drops every agent and every
//! in-memory structure, keeps what the simulated disk had (see `disk.rs`),
//! and restarts through `system::build`, the real recovery path. After the
//! active steps comes a quiet phase without faults or new load, in which the
//! system must converge.
//!
//! Checks after every step (any failure ends the run with its step):
//!
//! - every record on the disk is whole, valid and gapless (the model reads
//!   each once);
//! - every published event equals the single-engine replay of the journal,
//!   in order, with its record's timestamp;
//! - nothing is published before it is synced: each event's seq is at most
//!   the disk's synced seq when the sink saw it, and the journal's
//!   `durable_seq` never passes the disk's synced seq;
//! - the sequenced, durable and published seqs only grow, and published ≤
//!   durable;
//! - every replica, whenever it has applied a seq, has the model's state
//!   hash and event hash for that seq (a replica given a divergence fault is
//!   exempt until it rebuilds);
//! - the disk saw no write or sync after a failed sync;
//! - every snapshot on the disk (but those the simulator damaged) holds the
//!   replay's state at its seq, which the journal holds;
//! - the system makes progress while at least one replica is healthy;
//! - at every restart, the recovered journal replays every event any client
//!   has seen, identically, and recovery refuses bit rot in synced data;
//! - after the faults stop, every replica converges to the model within a
//!   bounded number of steps.
//!
//! In seeds that run the gateway (`gateway_clients.rs`, `sim_gateway.rs`),
//! also: every message a client receives again is the bytes it received
//! the first time, numbered from Login Accepted without a gap; Login
//! Accepted follows the requested-number rule; a connection closes only for
//! what its client did; an Accepted a client sees is an order the journal
//! accepted; at every restart the gateway rebuilt from the recovered journal
//! holds every message any client saw; and at the end the live gateway's
//! logs (and open-order counts) equal those of a gateway rebuilt from the
//! whole journal, with no token accepted twice in a session.

use crate::client::Clients;
use crate::clock::{SimMonotonicClock, SimTime, SimWallClock, WallSkew};
use crate::disk::{whole_records, CrashPoint, Rot, SimCrash, SimDisk};
use crate::gateway_clients::{AcceptedSeen, GatewayClients};
use crate::model::Model;
use crate::plan::SimPlan;
use crate::report::{FaultCounts, ReplicaCounts, SimReport};
use crate::rng::SimRng;
use crate::sim_gateway::{gateway_counts, start_gateway, AcceptedIndex};
use lockstep_engine::stable_hash::StableHasher;
use lockstep_engine::{Command, Engine, Event};
use lockstep_sequencer::egress::EgressAgent;
use lockstep_sequencer::journal::JournalError;
use lockstep_sequencer::journal_reader::{scan_reader, JournalReader, JournalSource};
use lockstep_sequencer::journal_record::HEADER_SIZE_BYTES;
use lockstep_sequencer::replica::ReplicaAgent;
use lockstep_sequencer::replica_fault::{FaultKind, ReplicaFault};
use lockstep_sequencer::sequencer_agent::SequencerAgent;
use lockstep_sequencer::snapshot_store::SnapshotStore;
use lockstep_sequencer::system::{build, SharedState, Storage, SystemParts};
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_transport::gateway_core::GatewayCore;
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Steps without progress, while work is waiting and a replica is healthy,
/// that count as the system being stuck.
const STUCK_STEPS_MAX: u64 = 300;
/// Commands clients hold back when the input queue is full; past it they
/// wait (as TCP back-pressure makes a real client wait).
const CLIENT_BACKLOG_MAX: usize = 64;
/// The chance an agent runs in a step, per million: not every agent gets to
/// run every step, as threads are not all scheduled at once.
const RUN_PER_MILLION: u32 = 900_000;
/// The chance a slow replica runs in a step, per million.
const SLOW_RUN_PER_MILLION: u32 = 100_000;
/// The most steps between a fail-stop and the operator's restart.
const RESTART_DELAY_STEPS_MAX: u64 = 200;
/// Quiet steps allowed for each seq not yet published when the faults
/// stop, on top of the plan's bound.
const QUIET_STEPS_PER_SEQ_BEHIND: u64 = 8;
/// The chance, per million steps, that the operator sends a command in a
/// seed whose order traffic goes through the gateway.
const OPERATOR_COMMAND_PER_MILLION: u32 = 20_000;
/// Simulated time per step, in ns.
const STEP_NS_MIN: u64 = 1_000;
const STEP_NS_MAX: u64 = 50_000;

/// One published event as the clients' sink saw it, with the disk's synced
/// seq at that moment.
#[derive(Clone, Copy, Debug)]
struct Published {
    seq: u64,
    timestamp_ns: u64,
    event: Event,
    synced_seq: u64,
}

/// One event a client has seen, and its place among its seq's events.
#[derive(Clone, Copy, Debug)]
struct Observed {
    seq: u64,
    timestamp_ns: u64,
    event: Event,
    ordinal: usize,
}

/// A replica's state after a step, to be compared with the model's at the
/// same seq (now, or once the model has read that far).
#[derive(Clone, Copy, Debug)]
struct ReplicaObservation {
    replica: usize,
    seq: u64,
    state_hash: u64,
    event_hash: u64,
}

/// What the simulator keeps about each replica besides the agent.
#[derive(Clone, Copy, Debug, Default)]
struct ReplicaSim {
    /// Skipped until this step.
    stalled_until: u64,
    /// Mostly skipped until this step.
    slow_until: u64,
    /// A divergence fault fired in this epoch, for this seq: the replica's
    /// state is meant to differ from the model's from that seq until it
    /// rebuilds (or, if the command put in place of the real one happened
    /// to be the same, until it is seen to agree again).
    diverged: Option<(u64, u64)>,
    /// The seq last compared with the model.
    observed_seq: Option<u64>,
}

/// One running system: its agents and shared state.
struct Running {
    sequencer: SequencerAgent,
    replicas: Vec<Option<ReplicaAgent>>,
    egress: EgressAgent,
    shared: SharedState,
    /// The gateway, in seeds that have one: it lives and dies with the
    /// process, and is rebuilt from the journal at every start.
    gateway: Option<GatewayCore>,
    /// When the operator restarts a fail-stopped system.
    restart_at_step: Option<u64>,
    /// (sequenced, durable, published, ring cursor) after the last step.
    marks: (u64, u64, u64, u64),
}

/// Why the process went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashCause {
    /// Between two steps.
    Step,
    /// Inside a disk operation (an armed crash point).
    Device,
    /// The operator restarted a fail-stopped system.
    FailStop,
}

/// One seed's simulation.
pub struct Simulation {
    plan: SimPlan,
    config: SystemConfig,
    /// Scheduling and fault decisions.
    rng: SimRng,
    clients: Clients,
    /// SoupBinTCP clients of the gateway, in seeds that have one.
    gateway_clients: Option<GatewayClients>,
    /// Commands the gateway's submitter handed to the input queue.
    gateway_submitted: Arc<AtomicU64>,
    /// Of which the report has counted this many.
    gateway_submitted_counted: u64,
    accepted_index: AcceptedIndex,
    accepted_seen: Vec<AcceptedSeen>,
    disk: SimDisk,
    time: SimTime,
    skew: WallSkew,
    system: Option<Running>,
    replica_sims: Vec<ReplicaSim>,
    model: Model,
    observed: Vec<Observed>,
    sink_buffer: Arc<Mutex<Vec<Published>>>,
    backlog: VecDeque<Command>,
    deferred: Vec<ReplicaObservation>,
    /// Index into the model's events of the next one egress must publish.
    cursor: usize,
    /// Snapshots the simulator damaged on purpose: seq, byte offset and the
    /// damaged byte (a snapshot saved again at that seq replaces it).
    damaged_snapshots: Vec<(u64, usize, u8)>,
    stuck_steps: u64,
    step: u64,
    trace: StableHasher,
    report: SimReport,
}

/// A panic payload's message, for a failure report.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs one seed for `steps` active steps (then the quiet phase) and
/// reports what happened.
pub fn run_seed(seed: u64, steps: u64) -> SimReport {
    let mut simulation = Simulation::new(SimPlan::from_seed(seed, steps));
    simulation.run();
    simulation.report
}

impl Simulation {
    pub fn new(plan: SimPlan) -> Simulation {
        let mut root = SimRng::new(plan.seed);
        let rng = root.fork(1);
        let clients = Clients::new(root.fork(2), &plan.engine, plan.faults.client);
        let disk = SimDisk::new(root.fork(3));
        let gateway_rng = root.fork(4);
        let gateway_clients = plan.gateway.as_ref().map(|gateway| {
            GatewayClients::new(gateway_rng, gateway, plan.load_per_million, plan.burst_max)
        });
        let mut config = SystemConfig::new(plan.engine.clone(), PathBuf::from("simulated"));
        config.replicas = plan.replicas;
        config.durability = plan.durability;
        config.prefer_io_uring = false;
        config.input_queue_max = plan.input_queue_max;
        config.broadcast_ring_size = plan.broadcast_ring_size;
        config.output_ring_size = plan.output_ring_size;
        config.sequencer_batch_max = plan.sequencer_batch_max;
        config.fence_lag_max = plan.fence_lag_max;
        config.hash_window_size = plan.hash_window_size;
        config.snapshot_interval = plan.snapshot_interval;
        config.snapshots_kept = plan.snapshots_kept;
        let shape = format!(
            "{} replicas, {:?} durability, broadcast ring {}, output rings {}, input queue {}, batches of up to {}, fence lag {}, hash window {}, snapshots every {} (keep {}), orders {}, levels {}, sessions {}; load {}% of steps, bursts of up to {}",
            plan.replicas,
            plan.durability,
            plan.broadcast_ring_size,
            plan.output_ring_size,
            plan.input_queue_max,
            plan.sequencer_batch_max,
            plan.fence_lag_max,
            plan.hash_window_size,
            plan.snapshot_interval,
            plan.snapshots_kept,
            plan.engine.orders_max,
            plan.engine.levels_max,
            plan.engine.sessions_max,
            plan.load_per_million / 10_000,
            plan.burst_max
        );
        let model = Model::new(&plan.engine);
        let shape = match &plan.gateway {
            Some(gateway) => format!(
                "{shape}; gateway: {} connection slots, packets up to {}, output buffers {} bytes, {} tokens a session, heartbeat {} ms, idle timeout {} ms, login timeout {} ms",
                gateway.config.connections_max,
                gateway.config.packet_len_max,
                gateway.config.output_buffer_bytes_max,
                gateway.config.session_tokens_max,
                gateway.config.heartbeat_interval_ms,
                gateway.config.idle_timeout_ms,
                gateway.config.login_timeout_ms
            ),
            None => shape,
        };
        let report = SimReport {
            seed: plan.seed,
            steps: plan.steps,
            shape,
            replica_state_hashes: vec![None; plan.replicas],
            ..SimReport::default()
        };
        Simulation {
            config,
            rng,
            clients,
            gateway_clients,
            gateway_submitted: Arc::new(AtomicU64::new(0)),
            gateway_submitted_counted: 0,
            accepted_index: AcceptedIndex::default(),
            accepted_seen: Vec::new(),
            disk,
            time: SimTime::default(),
            skew: WallSkew::default(),
            system: None,
            replica_sims: vec![ReplicaSim::default(); plan.replicas],
            model,
            observed: Vec::new(),
            sink_buffer: Arc::new(Mutex::new(Vec::new())),
            backlog: VecDeque::new(),
            deferred: Vec::new(),
            cursor: 0,
            damaged_snapshots: Vec::new(),
            stuck_steps: 0,
            step: 0,
            trace: StableHasher::new(),
            report,
            plan,
        }
    }

    /// Runs the whole seed; the outcome is in the report.
    pub fn run(&mut self) {
        let outcome = self.run_checked();
        if let Err(failure) = outcome {
            self.report.failure = Some(format!(
                "seed {}, step {}: {failure}",
                self.plan.seed, self.step
            ));
        }
        self.finish_report();
    }

    fn run_checked(&mut self) -> Result<(), String> {
        self.start_system()?;
        for _ in 0..self.plan.steps {
            self.step(true)?;
        }
        // The quiet phase: no new faults or load; what is in flight ends.
        // Replica faults not yet fired are withdrawn (one marked past the
        // last seq would wait forever); one that fired runs its course.
        for sim in &mut self.replica_sims {
            sim.stalled_until = 0;
            sim.slow_until = 0;
        }
        let running = self.system.as_mut().expect("the system runs between steps");
        for agent in running.replicas.iter_mut().flatten() {
            agent.faults.clear();
        }
        // Gateway clients that went silent or deaf stay so until their
        // spell ends (a few hundred steps at most): a fault that began runs
        // its course, and the checks of what closed them still hold.
        self.skew.set_drift(self.time.now_ns(), 0);
        self.disk.disarm();
        // The bound grows with the work still to publish: with every replica
        // fenced the sequencer has nothing to hold it back, and replicas
        // catching up from the journal may be far behind.
        let shared = &running.shared;
        let behind = shared
            .sequenced_through
            .get()
            .saturating_sub(shared.egress_stats.published_seq.get())
            + (self.backlog.len() + shared.input.len()) as u64;
        let quiet_steps_max = self.plan.quiet_steps_max + QUIET_STEPS_PER_SEQ_BEHIND * behind;
        for quiet_step in 1..=quiet_steps_max {
            self.step(false)?;
            if self.converged()? {
                self.report.quiet_steps = Some(quiet_step);
                return self.final_checks();
            }
        }
        Err(format!(
            "the system did not converge within {quiet_steps_max} steps after the faults stopped: {}",
            self.describe()
        ))
    }

    fn mix(&mut self, words: &[u64]) {
        for &word in words {
            self.trace.write_u64(word);
        }
    }

    /// Builds a system on the disk through the real recovery path.
    fn start_system(&mut self) -> Result<(), String> {
        let disk = self.disk.clone();
        let buffer = Arc::clone(&self.sink_buffer);
        let sink_disk = self.disk.clone();
        let sink = Box::new(move |seq: u64, timestamp_ns: u64, event: &Event| {
            let synced_seq = sink_disk.synced_seq();
            buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(Published {
                    seq,
                    timestamp_ns,
                    event: *event,
                    synced_seq,
                });
        });
        let clock = Box::new(SimWallClock {
            time: self.time.clone(),
            skew: self.skew.clone(),
        });
        let source: Arc<dyn JournalSource> = Arc::new(disk.clone());
        let storage = Storage::Provided {
            journal: Box::new(disk.clone()),
            source,
            snapshots: SnapshotStore::in_memory(disk.snapshots(), self.config.snapshots_kept),
        };
        let parts = build(&self.config, sink, clock, storage)
            .map_err(|error| format!("restart failed: {error}"))?;
        let SystemParts {
            sequencer,
            replicas,
            egress,
            shared,
            startup,
        } = parts;
        let recovered_seq = startup.recovered_seq;
        if startup.torn_tail.is_some() {
            self.report.restarts.torn_tails_cut += 1;
        }
        let replicas = replicas
            .into_iter()
            .map(|mut agent| {
                agent.clock = Box::new(SimMonotonicClock {
                    time: self.time.clone(),
                });
                Some(agent)
            })
            .collect();
        for sim in &mut self.replica_sims {
            *sim = ReplicaSim::default();
        }
        self.model.rebuild(&self.disk)?;
        if self.model.last_seq() != recovered_seq {
            return Err(format!(
                "recovery says the journal ends at seq {recovered_seq}, the model read {}",
                self.model.last_seq()
            ));
        }
        self.check_observed_reproduced()?;
        // Observations of seqs the journal kept are of this timeline and
        // can still be checked; later ones were never journaled.
        let deferred = std::mem::take(&mut self.deferred);
        for observation in deferred {
            if observation.seq <= recovered_seq {
                self.check_observation(observation)?;
            }
        }
        self.cursor = self.model.first_event_after(recovered_seq);
        self.accepted_index.reset();
        let gateway = match &self.plan.gateway {
            None => None,
            Some(plan) => {
                let gateway = start_gateway(
                    &plan.config,
                    &self.plan.engine,
                    Arc::clone(&shared.input),
                    Arc::clone(&self.gateway_submitted),
                    self.disk.read_from(0),
                    recovered_seq,
                    self.time.now_ns(),
                )?;
                self.report.gateway.runs = 1;
                if self.report.restarts.restarts > 0 {
                    self.report.gateway.rebuilds += 1;
                }
                // Every message a client saw before the crash is in the
                // rebuilt logs, byte for byte, at the same number.
                let clients = self
                    .gateway_clients
                    .as_ref()
                    .expect("a gateway has clients");
                self.report.gateway.messages_checked_against_rebuild +=
                    clients.check_seen_in(&gateway, "at the restart")?;
                Some(gateway)
            }
        };
        let published = shared.egress_stats.published_seq.get();
        let cursor_position = egress.ring.cursor();
        self.system = Some(Running {
            sequencer,
            replicas,
            egress,
            shared,
            gateway,
            restart_at_step: None,
            marks: (recovered_seq, recovered_seq, published, cursor_position),
        });
        self.mix(&[0x5354_4152, recovered_seq]);
        Ok(())
    }

    /// Every event a client saw, in any earlier run, is in the replay of the
    /// journal as it is now, identical and at the same place.
    fn check_observed_reproduced(&self) -> Result<(), String> {
        for (index, seen) in self.observed.iter().enumerate() {
            let Some(after) = self.model.seq(seen.seq) else {
                return Err(format!(
                    "a client saw seq {} (event {index}) but the recovered journal ends at seq {}",
                    seen.seq,
                    self.model.last_seq()
                ));
            };
            let replayed = self.model.events()[after.events_start..after.events_end]
                .get(seen.ordinal)
                .copied();
            if replayed != Some((seen.seq, seen.timestamp_ns, seen.event)) {
                return Err(format!(
                    "a client saw {:?} as event {} of seq {}, but the replay of the recovered journal has {replayed:?}",
                    (seen.seq, seen.timestamp_ns, seen.event),
                    seen.ordinal,
                    seen.seq
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, active: bool) -> Result<(), String> {
        self.step += 1;
        let step_ns = self.rng.range(STEP_NS_MIN, STEP_NS_MAX);
        self.time.advance(step_ns);
        if active {
            self.inject_faults();
        }
        self.submit_client_commands(active);
        self.gateway_clients_send(active);
        let crashed = self.run_agents()?;
        self.check_step()?;
        self.gateway_clients_receive()?;
        let crash = if crashed {
            Some(CrashCause::Device)
        } else if active && self.rng.chance(self.plan.faults.process_crash) {
            self.report.faults.process_crash += 1;
            Some(CrashCause::Step)
        } else {
            let running = self.system.as_ref().expect("the system runs between steps");
            running
                .restart_at_step
                .is_some_and(|at| self.step >= at)
                .then_some(CrashCause::FailStop)
        };
        if let Some(cause) = crash {
            self.crash_and_restart(cause)?;
        }
        Ok(())
    }

    fn inject_faults(&mut self) {
        let rates = self.plan.faults;
        let replicas = self.plan.replicas;
        let running = self.system.as_mut().expect("the system runs between steps");
        if self.rng.chance(rates.replica_panic) {
            let replica = self.rng.below(replicas as u64) as usize;
            if let Some(agent) = running.replicas[replica].as_mut() {
                let at_seq = agent.status.applied_seq.get() + self.rng.range(1, 20);
                agent.faults.push(ReplicaFault {
                    replica,
                    at_seq,
                    kind: FaultKind::Panic,
                });
                self.report.faults.replica_panic += 1;
                self.trace.write_u64(0x5041_4e49 ^ at_seq);
            }
        }
        // One divergence at a time, and only with a healthy replica to
        // publish the seq first: a divergence that publishes is the known
        // limitation documented in architecture.md, not what is tested.
        if replicas >= 2 && self.rng.chance(rates.replica_diverge) {
            let busy = running
                .replicas
                .iter()
                .zip(&self.replica_sims)
                .any(|(agent, sim)| {
                    sim.diverged.is_some()
                        || agent.as_ref().is_some_and(|agent| {
                            agent
                                .faults
                                .iter()
                                .any(|fault| fault.kind == FaultKind::Diverge)
                        })
                });
            let replica = self.rng.below(replicas as u64) as usize;
            if let (false, Some(agent)) = (busy, running.replicas[replica].as_mut()) {
                let at_seq = agent.status.applied_seq.get() + self.rng.range(1, 20);
                agent.faults.push(ReplicaFault {
                    replica,
                    at_seq,
                    kind: FaultKind::Diverge,
                });
                self.report.faults.replica_diverge += 1;
                self.trace.write_u64(0x4449_5645 ^ at_seq);
            }
        }
        if self.rng.chance(rates.replica_stall) {
            let replica = self.rng.below(replicas as u64) as usize;
            let steps = self.rng.range(1, rates.stall_steps_max);
            self.replica_sims[replica].stalled_until = self.step + steps;
            self.report.faults.replica_stall += 1;
            self.trace.write_u64(0x5354_414c ^ steps);
        }
        if self.rng.chance(rates.replica_slow) {
            let replica = self.rng.below(replicas as u64) as usize;
            let steps = self.rng.range(50, 1_000);
            self.replica_sims[replica].slow_until = self.step + steps;
            self.report.faults.replica_slow += 1;
            self.trace.write_u64(0x534c_4f57 ^ steps);
        }
        if self.rng.chance(rates.clock_jump) {
            // Up to an hour either way: an NTP step, or an operator's.
            let by_ns = self.rng.range(1_000, 3_600_000_000_000) as i64;
            let by_ns = if self.rng.below(2) == 0 {
                by_ns
            } else {
                -by_ns
            };
            self.skew.jump(by_ns);
            self.report.faults.clock_jump += 1;
            self.trace.write_u64(by_ns as u64);
        }
        if self.rng.chance(rates.clock_drift) {
            let ppm = self.rng.range(0, 2_000) as i64 - 1_000;
            self.skew.set_drift(self.time.now_ns(), ppm);
            self.report.faults.clock_drift += 1;
            self.trace.write_u64(ppm as u64);
        }
        if !self.disk.crash_armed() {
            if self.rng.chance(rates.crash_in_write) {
                self.disk.arm_crash(CrashPoint::InWrite);
            } else if self.rng.chance(rates.crash_before_sync) {
                self.disk.arm_crash(CrashPoint::BeforeSync);
            }
        }
        if self.rng.chance(rates.short_write) {
            self.disk.arm_short_write();
        }
        if self.rng.chance(rates.disk_full) {
            let room = self.rng.range_usize(0, 3 * 64);
            self.disk.arm_disk_full(room);
        }
        if self.rng.chance(rates.sync_failure) {
            self.disk.arm_sync_failure();
        }
        if self.rng.chance(rates.snapshot_corruption) {
            let snapshots = self.disk.snapshots();
            let mut files = snapshots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let seqs: Vec<u64> = files.keys().copied().collect();
            if !seqs.is_empty() {
                let seq = *self.rng.pick(&seqs);
                let bytes = files.get_mut(&seq).expect("listed above");
                // A quarter of the time the 40-byte header, which is small
                // but says which seq the state is for.
                let offset = if self.rng.below(4) == 0 {
                    self.rng.below(40.min(bytes.len() as u64)) as usize
                } else {
                    self.rng.below(bytes.len() as u64) as usize
                };
                bytes[offset] ^= 1 << self.rng.below(8);
                self.damaged_snapshots.push((seq, offset, bytes[offset]));
                self.report.faults.snapshot_corruption += 1;
                self.trace.write_u64(0x534e_4150 ^ seq);
            }
        }
    }

    fn submit_client_commands(&mut self, active: bool) {
        if self.plan.gateway.is_some() {
            // Order traffic goes through the gateway; the operator's
            // commands still go straight to the sequencer.
            if active
                && self.backlog.len() < CLIENT_BACKLOG_MAX
                && self.rng.chance(OPERATOR_COMMAND_PER_MILLION)
            {
                let command = self.clients.next_operator_command();
                self.backlog.push_back(command);
            }
        } else if active
            && self.backlog.len() < CLIENT_BACKLOG_MAX
            && self.rng.chance(self.plan.load_per_million)
        {
            let burst = self.rng.range(1, self.plan.burst_max);
            for _ in 0..burst {
                let command = self.clients.next_command();
                self.backlog.push_back(command);
            }
        }
        let running = self.system.as_ref().expect("the system runs between steps");
        while let Some(command) = self.backlog.pop_front() {
            if let Err(command) = running.shared.input.push(command) {
                self.backlog.push_front(command);
                break;
            }
            self.report.commands_submitted += 1;
            self.trace
                .write_u64(0x0043_4d44 ^ self.report.commands_submitted);
        }
    }

    /// Runs each agent once (if scheduled), in a random order. Returns true
    /// if the process crashed inside a disk operation.
    fn run_agents(&mut self) -> Result<bool, String> {
        let replicas = self.plan.replicas;
        // 0: sequencer, 1: egress, 2..: replicas.
        let mut order: Vec<usize> = (0..replicas + 2).collect();
        self.rng.shuffle(&mut order);
        for agent in order {
            self.trace.write_u64(agent as u64);
            match agent {
                0 => {
                    if !self.rng.chance(RUN_PER_MILLION) {
                        continue;
                    }
                    let running = self.system.as_mut().expect("running");
                    let outcome = catch_unwind(AssertUnwindSafe(|| running.sequencer.do_work()));
                    match outcome {
                        Ok(work) => self.trace.write_u64(work as u64),
                        Err(payload) if payload.is::<SimCrash>() => return Ok(true),
                        Err(payload) => {
                            return Err(format!(
                                "the sequencer panicked: {}",
                                panic_message(payload.as_ref())
                            ))
                        }
                    }
                }
                1 => {
                    if !self.rng.chance(RUN_PER_MILLION) {
                        continue;
                    }
                    let running = self.system.as_mut().expect("running");
                    let outcome = catch_unwind(AssertUnwindSafe(|| running.egress.do_work()));
                    match outcome {
                        Ok(work) => self.trace.write_u64(work as u64),
                        Err(payload) => {
                            return Err(format!(
                                "egress panicked: {}",
                                panic_message(payload.as_ref())
                            ))
                        }
                    }
                }
                _ => self.run_replica(agent - 2)?,
            }
        }
        Ok(false)
    }

    fn run_replica(&mut self, replica: usize) -> Result<(), String> {
        let sim = self.replica_sims[replica];
        if self.step < sim.stalled_until {
            return Ok(());
        }
        let chance = if self.step < sim.slow_until {
            SLOW_RUN_PER_MILLION
        } else {
            RUN_PER_MILLION
        };
        if !self.rng.chance(chance) {
            return Ok(());
        }
        let running = self.system.as_mut().expect("running");
        let Some(agent) = running.replicas[replica].as_mut() else {
            return Ok(());
        };
        let has_diverge = |agent: &ReplicaAgent| {
            agent
                .faults
                .iter()
                .any(|fault| fault.kind == FaultKind::Diverge)
        };
        let diverge_armed = has_diverge(agent);
        let outcome = catch_unwind(AssertUnwindSafe(|| agent.do_work()));
        let work = match outcome {
            Ok(work) => work,
            Err(payload) => {
                // On its own thread the replica would now be gone for good:
                // its reader dropped (fenced), never to rebuild.
                running.replicas[replica] = None;
                return Err(format!(
                    "replica {replica}: a panic escaped its duty cycle, which ends its thread for good: {}",
                    panic_message(payload.as_ref())
                ));
            }
        };
        self.trace.write_u64(work as u64);
        let sim = &mut self.replica_sims[replica];
        let seq = agent.status.applied_seq.get();
        if diverge_armed && !has_diverge(agent) {
            // The hook fired at the command it holds back: the next one.
            sim.diverged = Some((agent.epoch, seq + 1));
        }
        if let Some((epoch, diverge_seq)) = sim.diverged {
            let agrees = || {
                self.model.hashes_after(seq)
                    == Some((agent.engine.state_hash(), agent.engine.event_hash()))
            };
            if agent.epoch > epoch || (agent.is_live() && seq >= diverge_seq && agrees()) {
                sim.diverged = None;
            }
        }
        if !agent.is_live() || sim.diverged.is_some() {
            sim.observed_seq = None;
            return Ok(());
        }
        if sim.observed_seq == Some(seq) {
            return Ok(());
        }
        sim.observed_seq = Some(seq);
        let observation = ReplicaObservation {
            replica,
            seq,
            state_hash: agent.engine.state_hash(),
            event_hash: agent.engine.event_hash(),
        };
        self.trace
            .write_u64(observation.state_hash ^ observation.event_hash);
        if seq <= self.model.last_seq() {
            self.check_observation(observation)
        } else {
            self.deferred.push(observation);
            Ok(())
        }
    }

    fn check_observation(&mut self, observation: ReplicaObservation) -> Result<(), String> {
        let (state_hash, event_hash) = self
            .model
            .hashes_after(observation.seq)
            .expect("checked against the model's last seq");
        self.report.replicas.state_hashes_checked += 1;
        if (observation.state_hash, observation.event_hash) != (state_hash, event_hash) {
            return Err(format!(
                "replica {} at seq {} has state hash {:016x} and event hash {:016x}; the journal replay has {state_hash:016x} and {event_hash:016x}",
                observation.replica, observation.seq, observation.state_hash, observation.event_hash
            ));
        }
        Ok(())
    }

    /// The checks after every step.
    fn check_step(&mut self) -> Result<(), String> {
        self.model.catch_up(&self.disk)?;
        let published: Vec<Published> = std::mem::take(
            &mut *self
                .sink_buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let published_events = published.clone();
        for event in published {
            self.check_published(event)?;
        }
        self.publish_to_gateway(&published_events)?;
        let last_seq = self.model.last_seq();
        let deferred = std::mem::take(&mut self.deferred);
        for observation in deferred {
            if observation.seq <= last_seq {
                self.check_observation(observation)?;
            } else {
                self.deferred.push(observation);
            }
        }
        if let Some(violation) = self.disk.take_violations().into_iter().next() {
            return Err(violation);
        }
        self.check_snapshots()?;
        let synced_seq = self.disk.synced_seq();
        let running = self.system.as_mut().expect("running");
        let sequenced = running.shared.sequenced_through.get();
        let durable = running.shared.durable_seq.get();
        let published = running.shared.egress_stats.published_seq.get();
        let ring_cursor = running.egress.ring.cursor();
        let (sequenced_before, durable_before, published_before, _) = running.marks;
        if sequenced < sequenced_before || durable < durable_before || published < published_before
        {
            return Err(format!(
                "a seq went backwards: sequenced {sequenced_before} -> {sequenced}, durable {durable_before} -> {durable}, published {published_before} -> {published}"
            ));
        }
        if durable > synced_seq {
            return Err(format!(
                "the journal says seq {durable} is durable, but the disk has synced only through seq {synced_seq}"
            ));
        }
        // Published may pass the ring's cursor (a replica catching up reads
        // durable records from the journal before the ring has them), but
        // never the durable seq.
        if published > durable {
            return Err(format!(
                "published seq {published} is past the durable seq {durable}"
            ));
        }
        let marks = (sequenced, durable, published, ring_cursor);
        let progressed = marks != running.marks;
        running.marks = marks;
        // Fail-stop: the operator restarts the process a while later.
        let failed = running.sequencer.has_failed();
        self.mix(&[sequenced, durable, published]);
        let running = self.system.as_mut().expect("running");
        if failed && running.restart_at_step.is_none() {
            let delay = self.rng.range(1, RESTART_DELAY_STEPS_MAX);
            running.restart_at_step = Some(self.step + delay);
        }
        let running = self.system.as_ref().expect("running");
        let waiting = !self.backlog.is_empty()
            || !running.shared.input.is_empty()
            || !running.sequencer.batch.is_empty()
            || published < sequenced;
        // A replica held by its divergence hook waits for another to
        // publish first, so it is not the healthy one.
        let healthy = (0..self.plan.replicas).any(|replica| {
            let sim = &self.replica_sims[replica];
            running.replicas[replica].is_some()
                && self.step >= sim.stalled_until
                && self.step >= sim.slow_until
                && sim.diverged.is_none()
        });
        if waiting && !progressed && healthy && !failed {
            self.stuck_steps += 1;
            if self.stuck_steps > STUCK_STEPS_MAX {
                return Err(format!(
                    "no progress for {STUCK_STEPS_MAX} steps while commands wait and a replica is healthy: {}",
                    self.describe()
                ));
            }
        } else {
            self.stuck_steps = 0;
        }
        Ok(())
    }

    /// Every snapshot on the disk, except those the simulator damaged, is
    /// the state the journal replay has at its seq: replicas write only
    /// snapshots egress agreed with, so never a diverged replica's, nor one
    /// past what a crash can leave of the journal.
    fn check_snapshots(&mut self) -> Result<(), String> {
        let snapshots = self.disk.snapshots();
        let files = snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.damaged_snapshots.retain(|&(seq, offset, byte)| {
            files.get(&seq).and_then(|bytes| bytes.get(offset)) == Some(&byte)
        });
        for (&seq, bytes) in files.iter() {
            if self
                .damaged_snapshots
                .iter()
                .any(|&(damaged, _, _)| damaged == seq)
            {
                continue;
            }
            let word = |at: usize| {
                bytes
                    .get(at..at + 8)
                    .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")))
            };
            let Some((state_hash, _)) = self.model.hashes_after(seq) else {
                return Err(format!(
                    "a snapshot of seq {seq} is on the disk, past the journal's end at seq {}",
                    self.model.last_seq()
                ));
            };
            if word(8) != Some(seq) || word(16) != Some(state_hash) {
                return Err(format!(
                    "the snapshot of seq {seq} says seq {:?} with state hash {:016x?}; the journal replay has {state_hash:016x} there",
                    word(8),
                    word(16)
                ));
            }
        }
        Ok(())
    }

    fn check_published(&mut self, published: Published) -> Result<(), String> {
        self.trace.write_u64(published.event.fingerprint());
        if published.seq > published.synced_seq {
            return Err(format!(
                "egress published an event of seq {} when the disk had synced only through seq {}",
                published.seq, published.synced_seq
            ));
        }
        let expected = self.model.events().get(self.cursor).copied();
        let got = (published.seq, published.timestamp_ns, published.event);
        if expected != Some(got) {
            return Err(format!(
                "published event {got:?} differs from the journal replay's next event {expected:?}"
            ));
        }
        let after = self
            .model
            .seq(published.seq)
            .expect("the model has every seq it has events for");
        self.observed.push(Observed {
            seq: published.seq,
            timestamp_ns: published.timestamp_ns,
            event: published.event,
            ordinal: self.cursor - after.events_start,
        });
        self.cursor += 1;
        self.report.events_published += 1;
        Ok(())
    }

    /// A one-line picture of the system, for failure messages.
    fn describe(&self) -> String {
        let Some(running) = self.system.as_ref() else {
            return "the system is down".to_string();
        };
        let mut text = format!(
            "sequenced {}, durable {}, published {}, journal {}, synced {}, input {}, backlog {}, sequencer batch {} failed {}",
            running.shared.sequenced_through.get(),
            running.shared.durable_seq.get(),
            running.shared.egress_stats.published_seq.get(),
            self.model.last_seq(),
            self.disk.synced_seq(),
            running.shared.input.len(),
            self.backlog.len(),
            running.sequencer.batch.len(),
            running.sequencer.has_failed()
        );
        for (replica, agent) in running.replicas.iter().enumerate() {
            match agent {
                Some(agent) => {
                    let applied = agent.status.applied_seq.get();
                    let hashes = (agent.engine.state_hash(), agent.engine.event_hash());
                    let agrees = self.model.hashes_after(applied) == Some(hashes);
                    text.push_str(&format!(
                        "; replica {replica}: applied {applied}, epoch {}, {}, output ring {}, agrees with the model {agrees}, faults {}, diverged (epoch, seq) {:?}, stalled until {}, slow until {}",
                        agent.epoch,
                        agent.phase_name(),
                        agent.output.len(),
                        agent.faults.len(),
                        self.replica_sims[replica].diverged,
                        self.replica_sims[replica].stalled_until,
                        self.replica_sims[replica].slow_until
                    ))
                }
                None => text.push_str(&format!("; replica {replica}: dead")),
            }
        }
        text
    }

    fn converged(&self) -> Result<bool, String> {
        let running = self.system.as_ref().expect("running");
        let last_seq = self.model.last_seq();
        let shared = &running.shared;
        if running.sequencer.has_failed()
            || !self.backlog.is_empty()
            || !shared.input.is_empty()
            || !running.sequencer.batch.is_empty()
            || shared.sequenced_through.get() != last_seq
            || shared.durable_seq.get() != last_seq
            || shared.egress_stats.published_seq.get() != last_seq
        {
            return Ok(false);
        }
        let model_hashes = self.model.hashes_after(last_seq).expect("the last seq");
        for (replica, agent) in running.replicas.iter().enumerate() {
            let Some(agent) = agent else {
                return Err(format!("replica {replica} is dead"));
            };
            if !agent.is_live()
                || !agent.faults.is_empty()
                || self.replica_sims[replica].diverged.is_some()
                || agent.status.applied_seq.get() != last_seq
                || (agent.engine.state_hash(), agent.engine.event_hash()) != model_hashes
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drops the running process, applies the crash to the disk, checks what
    /// recovery makes of it (acting as the operator where the documented
    /// procedure calls for one), and starts again.
    fn crash_and_restart(&mut self, cause: CrashCause) -> Result<(), String> {
        let running = self.system.take().expect("running");
        self.collect_counts(&running);
        if let Some(clients) = self.gateway_clients.as_mut() {
            clients.process_crashed(self.step);
        }
        let published = running.shared.egress_stats.published_seq.get();
        let durable = running.shared.durable_seq.get();
        self.report.restarts.durable_unpublished_seqs += durable.saturating_sub(published);
        // Everything in memory is gone with the process.
        drop(running);
        self.report.restarts.restarts += 1;
        if cause == CrashCause::FailStop {
            self.report.restarts.after_fail_stop += 1;
        }
        let damage = self.disk.crash(&self.plan.faults.damage);
        let faults = &mut self.report.faults;
        faults.torn_tail += u64::from(damage.torn);
        faults.unsynced_bit_flip += u64::from(damage.flipped_unsynced);
        faults.lost_page += u64::from(damage.lost_page);
        faults.zero_tail += u64::from(damage.zero_tail);
        faults.synced_bit_rot += u64::from(damage.rot.is_some());
        self.mix(&[
            0x4352_4153,
            cause as u64,
            damage.synced_len_bytes as u64,
            damage.unsynced_bytes as u64,
            damage.kept_bytes as u64,
            u64::from(damage.torn),
            u64::from(damage.flipped_unsynced),
            u64::from(damage.lost_page),
            u64::from(damage.zero_tail),
            damage.rot.map_or(0, |rot| rot.offset_bytes as u64 + 1),
        ]);
        let mut rot = damage.rot;
        // At most: one rot refused and repaired, one operator cut, then a
        // clean recovery.
        for _ in 0..3 {
            let bytes = self.disk.read_from(0);
            let verdict = JournalReader::from_bytes(bytes).and_then(scan_reader);
            let error = match verdict {
                Ok(report) => {
                    let kept = whole_records(report.valid_len_bytes as usize)
                        .saturating_sub(whole_records(damage.synced_len_bytes));
                    self.report.restarts.unsynced_records_kept += kept;
                    return self.start_system();
                }
                Err(error) => error,
            };
            if let Some(rotted) = rot.take() {
                self.check_rot_refused(rotted, &error)?;
                self.expect_start_refused()?;
                self.report.restarts.rot_refusals += 1;
                self.disk.repair(rotted);
                continue;
            }
            match error {
                JournalError::CorruptRecord {
                    offset_bytes,
                    next_valid_offset_bytes: Some(_),
                    ..
                } if offset_bytes as usize >= damage.synced_len_bytes => {
                    // Damage in what was never synced, with records after
                    // it: the documented limit. The operator cuts there.
                    self.expect_start_refused()?;
                    self.report.restarts.operator_cuts += 1;
                    self.disk.cut(offset_bytes as usize);
                }
                error => {
                    return Err(format!(
                    "recovery refused a journal whose synced part ({} bytes) is intact: {error}",
                    damage.synced_len_bytes
                ))
                }
            }
        }
        Err("recovery still refuses after the operator's repairs".to_string())
    }

    /// Bit rot in synced data must be refused, naming where it is.
    fn check_rot_refused(&self, rot: Rot, error: &JournalError) -> Result<(), String> {
        let named = match error {
            JournalError::BadHeader(_) => rot.in_header,
            JournalError::CorruptRecord { offset_bytes, .. } => {
                let record_start =
                    HEADER_SIZE_BYTES + (rot.offset_bytes - HEADER_SIZE_BYTES) / 64 * 64;
                !rot.in_header && *offset_bytes as usize == record_start
            }
            _ => false,
        };
        if named {
            Ok(())
        } else {
            Err(format!(
                "bit rot at byte {} was refused for another reason: {error}",
                rot.offset_bytes
            ))
        }
    }

    /// The real start-up must refuse the journal too, and leave it as it is.
    fn expect_start_refused(&mut self) -> Result<(), String> {
        let before = self.disk.read_from(0);
        let storage = Storage::Provided {
            journal: Box::new(self.disk.clone()),
            source: Arc::new(self.disk.clone()),
            snapshots: SnapshotStore::in_memory(self.disk.snapshots(), self.config.snapshots_kept),
        };
        let clock = Box::new(SimWallClock {
            time: self.time.clone(),
            skew: self.skew.clone(),
        });
        if build(&self.config, Box::new(|_, _, _| {}), clock, storage).is_ok() {
            return Err("start-up accepted a journal that recovery's scan refuses".to_string());
        }
        if self.disk.read_from(0) != before {
            return Err("a refused start-up changed the journal".to_string());
        }
        Ok(())
    }

    fn collect_counts(&mut self, running: &Running) {
        if let Some(gateway) = running.gateway.as_ref() {
            self.report.gateway += gateway_counts(gateway);
        }
        let stats = &running.shared.egress_stats;
        let mut counts = ReplicaCounts {
            fenced_panicked: stats.fenced_panicked.load(Ordering::Relaxed),
            fenced_lagged: stats.fenced_lagged.load(Ordering::Relaxed),
            fenced_diverged: stats.fenced_diverged.load(Ordering::Relaxed),
            hashes_compared: stats.hashes_compared.load(Ordering::Relaxed),
            ..ReplicaCounts::default()
        };
        for status in &running.shared.statuses {
            counts.rebuilds += status.rebuilds.load(Ordering::Relaxed);
            counts.panics += status.panics.load(Ordering::Relaxed);
        }
        self.report.replicas += counts;
    }

    /// After convergence: the whole journal, read from scratch, replays to
    /// exactly what the model built step by step, and every replica is there.
    fn final_checks(&mut self) -> Result<(), String> {
        let bytes = self.disk.read_from(0);
        let reader = JournalReader::from_bytes(bytes).map_err(|error| error.to_string())?;
        let mut engine =
            Engine::new(self.plan.engine.clone()).map_err(|error| error.to_string())?;
        let mut events = Vec::new();
        let mut previous_timestamp_ns = 0;
        for record in reader {
            let record = record.map_err(|error| format!("final replay: {error}"))?;
            if record.timestamp_ns < previous_timestamp_ns {
                self.report.stamps_backwards += 1;
            }
            previous_timestamp_ns = record.timestamp_ns;
            engine.apply(&record.command, &mut |event| {
                events.push((record.seq, record.timestamp_ns, *event))
            });
        }
        if events.as_slice() != self.model.events()
            || engine.state_hash() != self.model.state_hash()
        {
            return Err(
                "a replay of the whole journal differs from the model built step by step"
                    .to_string(),
            );
        }
        self.check_observed_reproduced()?;
        self.check_gateway_against_final_journal()
    }

    fn finish_report(&mut self) {
        if let Some(running) = self.system.take() {
            self.collect_counts(&running);
            self.report.last_seq = running.shared.sequenced_through.get();
            for (replica, agent) in running.replicas.iter().enumerate() {
                self.report.replica_state_hashes[replica] =
                    agent.as_ref().map(|agent| agent.engine.state_hash());
            }
            self.system = Some(running);
        }
        let counts = self.clients.counts;
        let faults: &mut FaultCounts = &mut self.report.faults;
        faults.client_duplicate = counts.duplicates;
        faults.client_unknown_session = counts.unknown_sessions;
        faults.client_unknown_order = counts.unknown_orders;
        if let Some(clients) = self.gateway_clients.as_ref() {
            let gateway = clients.faults;
            faults.gateway_disconnect = gateway.disconnects;
            faults.reconnect_from_one = gateway.reconnect_from_one;
            faults.reconnect_from_next = gateway.reconnect_from_next;
            faults.reconnect_from_zero = gateway.reconnect_from_zero;
            faults.reconnect_beyond_end = gateway.reconnect_beyond_end;
            faults.gateway_duplicate_message = gateway.duplicates;
            faults.gateway_garbage_frame = gateway.garbage;
            faults.gateway_partial_write = gateway.partial_writes;
            faults.gateway_bad_login = gateway.bad_logins;
            faults.gateway_client_silent = gateway.silences;
            faults.gateway_client_stops_reading = gateway.stopped_reading;
            faults.gateway_client_vanishes = gateway.vanished;
            self.report.gateway.client_messages = clients.counts.messages_received;
            self.report.gateway.client_messages_again = clients.counts.messages_received_again;
        }
        let disk = self.disk.counters();
        faults.crash_in_write = disk.crashes_in_write;
        faults.crash_before_sync = disk.crashes_before_sync;
        faults.short_write = disk.short_writes;
        faults.disk_full = disk.disk_full_writes;
        faults.fsync_failure = disk.sync_failures;
        self.report.model_state_hash = self.model.state_hash();
        let mut trace = self.trace;
        trace.write_u64(self.report.model_state_hash);
        trace.write_u64(self.report.faults.total());
        trace.write_u64(self.report.events_published);
        trace.write_u64(u64::from(self.report.failure.is_some()));
        self.report.trace_hash = trace.finish();
    }
}

mod gateway_steps;
