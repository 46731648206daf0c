//! `ReplicaAgent` runs one replica's duty cycle: read sequenced commands from
//! the broadcast ring, apply them to its own engine, and write every event,
//! then an end marker with the rolling event hash, to its output ring for
//! egress. When it finds itself fenced (it panicked, stalled past the lag
//! bound, or diverged), it rebuilds its engine from the newest snapshot plus
//! the journal, rejoins the ring with no gap, and starts a new epoch of
//! output. The shared `ReplicaStatus` is how egress and the system see what
//! it is doing.
//!
//! The work is an Aeron-style duty cycle: [`ReplicaAgent::do_work`] does one
//! step and never blocks, returning how much it did (0: idle). `run`, the
//! thread body, calls it in a loop and idles with the wait strategy when it
//! returns 0; the simulator (`lockstep-sim`) calls it from one thread,
//! interleaved with the sequencer and egress. Everything that used to wait
//! in place is a state kept between calls instead:
//!
//! - a full output ring: the records of the command being applied that did
//!   not fit wait in a spill queue, drained before anything else is applied
//!   (the engine's `apply` cannot be paused half-way, so its events are
//!   taken as they come);
//! - a rebuild: rebuilding, rejoining the ring and catching up from the
//!   journal are phases, each call doing a bounded amount of work;
//! - the test-only stall and divergence hooks: a fired fault waits for its
//!   deadline (read from `clock`) or for egress, without sleeping.
//!
//! A panic, in any phase, fences the replica and starts a rebuild.

use crate::broadcast_ring::{BroadcastReader, BroadcastRing, RejoinError};
use crate::clock::Clock;
use crate::egress::EgressStats;
use crate::journal_reader::{JournalReader, JournalSource};
use crate::journal_record::SequencedCommand;
use crate::output_record::OutputRecord;
use crate::output_ring::OutputProducer;
use crate::rebuild::rebuild;
use crate::replica_fault::{FaultKind, ReplicaFault};
use crate::sequence::Sequence;
use crate::snapshot_store::SnapshotStore;
use crate::wait_strategy::WaitStrategy;
use lockstep_engine::{Command, Engine, EngineConfig, InstrumentId};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Commands a replica takes from the ring (or the journal, catching up) in
/// one step.
const READ_BATCH_MAX: usize = 64;
/// Rebuilds in a row (each fenced again before it could rejoin), none of
/// them reaching a later seq than the one before, before the replica gives
/// up and stays out. A rebuild that gets further counts as the first: under
/// a load a catching-up replica cannot match, egress fences it for lag again
/// and again, yet each rebuild starts from the newer published seq, and the
/// replica must not give up for good before the load drops (the simulator
/// found replicas lost that way, seed 8436).
const REBUILDS_IN_A_ROW_MAX: u32 = 1_000;
/// Rejoin attempts before a rebuild starts over from the snapshot.
const REJOIN_ATTEMPTS_MAX: u32 = 100_000;
/// How long a diverging replica waits for egress to publish its seq from a
/// healthy replica before it diverges anyway.
const DIVERGE_WAIT_NS: u64 = 1_000_000_000;
/// Output records the spill queue holds without growing: more than one
/// command's output rarely waits at once.
const SPILL_RECORDS_INITIAL: usize = 1024;

/// What one replica shares with egress and the system.
#[derive(Debug, Default)]
pub struct ReplicaStatus {
    /// Grows by one each time the replica rejoins after a fence.
    pub epoch: Sequence,
    /// The last seq applied.
    pub applied_seq: Sequence,
    /// The state hash, refreshed when the replica stops.
    pub final_state_hash: AtomicU64,
    pub panics: AtomicU64,
    pub rebuilds: AtomicU64,
    /// How many times egress has fenced this replica. A replica compares it
    /// with the count at the start of its epoch to learn it was fenced,
    /// also while it is catching up outside the ring.
    pub egress_fences: Sequence,
    /// The latest (epoch, seq) whose end-of-seq event hash egress has found
    /// equal to the published one, or published: [`agreed_word`] packs it.
    /// A replica writes a snapshot only once egress agrees with it at the
    /// snapshot's seq (see `maybe_snapshot`).
    pub agreed: Sequence,
    /// A request that this replica panic before its next command, as if
    /// it had crashed there: the failover drill of `lockstep bench
    /// --kill-replica`, which picks the replica egress is publishing from
    /// at that moment. Read with one relaxed load per command; the line is
    /// written once per drill.
    pub kill_requested: std::sync::atomic::AtomicBool,
}

/// Bits of `ReplicaStatus::agreed` that hold the seq (the low ones); the
/// epoch's low bits take the rest.
const AGREED_SEQ_BITS: u32 = 40;
const AGREED_SEQ_MASK: u64 = (1 << AGREED_SEQ_BITS) - 1;

/// Packs an epoch and a seq into one word, so that egress stores both at
/// once and a replica never pairs one epoch's seq with another epoch. Both
/// are kept modulo their field's size: only nearby values are compared.
pub fn agreed_word(epoch: u64, seq: u64) -> u64 {
    (epoch << AGREED_SEQ_BITS) | (seq & AGREED_SEQ_MASK)
}

/// Whether `word` says egress agreed with `epoch` at `seq` or later.
fn agreed_covers(word: u64, epoch: u64, seq: u64) -> bool {
    let same_epoch = (word >> AGREED_SEQ_BITS) == (epoch & (u64::MAX >> AGREED_SEQ_BITS));
    // Modular: the agreed seq is at most a ring or two from `seq`.
    let ahead = (word & AGREED_SEQ_MASK).wrapping_sub(seq & AGREED_SEQ_MASK) & AGREED_SEQ_MASK;
    same_epoch && ahead < (1 << (AGREED_SEQ_BITS - 1))
}

/// Everything a replica owns.
pub struct ReplicaAgent {
    pub id: usize,
    pub engine: Engine,
    pub engine_config: EngineConfig,
    pub reader: BroadcastReader<SequencedCommand>,
    pub ring: BroadcastRing<SequencedCommand>,
    pub output: OutputProducer<OutputRecord>,
    pub status: Arc<ReplicaStatus>,
    pub wait: WaitStrategy,
    /// Where rebuilds read the journal: its file, or the simulator's disk.
    pub journal: Arc<dyn JournalSource>,
    pub snapshots: SnapshotStore,
    pub snapshot_interval: u64,
    pub replicas: usize,
    /// Set when the system stops; the replica finishes what is published.
    pub stop: Arc<AtomicBool>,
    /// Set when the system is torn down without a clean stop.
    pub halt: Arc<AtomicBool>,
    /// The last seq the sequencer has published.
    pub sequenced_through: Arc<Sequence>,
    /// Set once the sequencer has stopped: `sequenced_through` is final.
    pub sequencer_done: Arc<AtomicBool>,
    pub faults: Vec<ReplicaFault>,
    /// Times the fault hooks' deadlines (stall, divergence); nothing else
    /// reads it. A monotonic clock in production, simulated time in the
    /// simulator.
    pub clock: Box<dyn Clock>,
    pub epoch: u64,
    /// `status.egress_fences` when this epoch started.
    pub fences_seen: u64,
    /// Egress's progress: a rebuild replays silently only up to the
    /// published seq and produces output for everything after it.
    pub egress: Arc<EgressStats>,
    /// Set when egress has published everything and stopped.
    pub egress_done: Arc<AtomicBool>,
    /// Where the duty cycle is; `ReplicaCycle::default()` to start.
    pub cycle: ReplicaCycle,
}

/// What the replica is doing.
#[derive(Default)]
enum Phase {
    /// Reading the ring and applying.
    #[default]
    Live,
    /// Fenced: the next step rebuilds from the snapshot and the journal.
    Rebuild,
    /// Rebuilt (or caught up) to `applied_seq`; trying to rejoin the ring at
    /// the next seq.
    Rejoining { applied_seq: u64 },
    /// The ring no longer holds the next seq: applying the journal's later
    /// records, with output. `held` is a record read but not yet applied
    /// (its fault hook is waiting).
    CatchingUp {
        reader: Box<JournalReader>,
        applied_seq: u64,
        held: Option<SequencedCommand>,
    },
    /// Done for good: the system stopped, or the replica gave up.
    Stopped,
}

/// A fault hook that has fired and is still in effect.
#[derive(Clone, Copy, Debug)]
enum PendingFault {
    /// Apply nothing until the clock reads `until_ns`.
    Stall { until_ns: u64 },
    /// Once egress has published `seq` (or at `deadline_ns`), apply a
    /// different command in place of the one at `seq`.
    Diverge { seq: u64, deadline_ns: u64 },
}

/// Whether the next command may be applied, given the fault hooks.
enum Gate {
    /// Apply it (`Some`: apply this command in its place).
    Apply(Option<Command>),
    /// Not yet: a stall or a divergence is waiting.
    Wait,
}

/// Where a replica's duty cycle is between two calls of `do_work`.
pub struct ReplicaCycle {
    phase: Phase,
    /// Commands read from the ring and not yet applied:
    /// `batch[batch_next..batch_len]`.
    batch: [SequencedCommand; READ_BATCH_MAX],
    batch_next: usize,
    batch_len: usize,
    /// Output records that did not fit in the output ring, oldest first;
    /// nothing more is applied until they are all pushed.
    spill: VecDeque<OutputRecord>,
    pending_fault: Option<PendingFault>,
    /// A snapshot taken at a seq and not yet written: it is written once
    /// egress agrees with this replica's output at that seq.
    pending_snapshot: Option<(u64, Vec<u8>)>,
    rebuilds_in_a_row: u32,
    /// The seq the last rebuild reached.
    rebuilt_seq: u64,
    rejoin_attempts: u32,
}

impl Default for ReplicaCycle {
    fn default() -> ReplicaCycle {
        ReplicaCycle {
            phase: Phase::Live,
            batch: [SequencedCommand {
                seq: 0,
                timestamp_ns: 0,
                command: Command::Halt {
                    instrument: InstrumentId(0),
                },
            }; READ_BATCH_MAX],
            batch_next: 0,
            batch_len: 0,
            spill: VecDeque::with_capacity(SPILL_RECORDS_INITIAL),
            pending_fault: None,
            pending_snapshot: None,
            rebuilds_in_a_row: 0,
            rebuilt_seq: 0,
            rejoin_attempts: 0,
        }
    }
}

/// What draining the spill queue found.
enum Spill {
    /// Empty: the replica may apply.
    Drained,
    /// The output ring is still full.
    Blocked,
    /// Fenced (or halted) while waiting: the rest was dropped.
    Fenced,
}

impl ReplicaAgent {
    /// The thread body: the duty cycle until the replica stops.
    pub fn run(mut self) {
        let mut idle_rounds: u64 = 0;
        while !self.is_stopped() {
            if self.do_work() > 0 {
                idle_rounds = 0;
            } else {
                self.wait.idle(idle_rounds);
                idle_rounds = idle_rounds.saturating_add(1);
            }
        }
        self.status
            .final_state_hash
            .store(self.engine.state_hash(), Ordering::Release);
    }

    /// Whether the replica has stopped for good.
    pub fn is_stopped(&self) -> bool {
        matches!(self.cycle.phase, Phase::Stopped)
    }

    /// What the replica is doing, in a word: `live`, `rebuild`, `rejoining`,
    /// `catching up` or `stopped`.
    pub fn phase_name(&self) -> &'static str {
        match self.cycle.phase {
            Phase::Live => "live",
            Phase::Rebuild => "rebuild",
            Phase::Rejoining { .. } => "rejoining",
            Phase::CatchingUp { .. } => "catching up",
            Phase::Stopped => "stopped",
        }
    }

    /// Whether the replica is reading the ring (not rebuilding, rejoining or
    /// catching up, and not stopped).
    pub fn is_live(&self) -> bool {
        matches!(self.cycle.phase, Phase::Live)
    }

    /// One step of the duty cycle; never blocks. Returns the work done
    /// (commands applied, records pushed, rebuild steps; 0: idle).
    ///
    /// A panic in any phase is caught: the replica fences itself, since a
    /// panicked engine's state is not trusted, and rebuilds. (A panic while
    /// catching up from the journal after a rebuild used to escape and end
    /// the replica's thread for good; the simulator found it, seed 4.) A
    /// panic outside the ring counts towards the bound on rebuilds in a
    /// row, so a command that panics every time cannot loop forever.
    pub fn do_work(&mut self) -> usize {
        let live = self.is_live();
        let outcome = catch_unwind(AssertUnwindSafe(|| match self.cycle.phase {
            Phase::Live => self.live_step(),
            Phase::Rebuild => self.rebuild_step(),
            Phase::Rejoining { applied_seq } => self.rejoin_step(applied_seq),
            Phase::CatchingUp { .. } => self.catch_up_step(),
            Phase::Stopped => 0,
        }));
        match outcome {
            Ok(work) => work,
            Err(_) => {
                self.status.panics.fetch_add(1, Ordering::Relaxed);
                // A panicked engine's state is not trusted: fence ourselves
                // so the sequencer stops waiting, then rebuild.
                self.ring.fence(self.id);
                let rebuilds_in_a_row = self.cycle.rebuilds_in_a_row;
                self.leave_ring();
                if !live {
                    self.cycle.rebuilds_in_a_row = rebuilds_in_a_row;
                }
                1
            }
        }
    }

    fn stopped_and_done(&self) -> bool {
        self.sequencer_done.load(Ordering::Acquire)
            && self.reader.position() > self.sequenced_through.get()
    }

    /// After a fence or a panic: stop if the system is stopping, otherwise
    /// rebuild. Whatever was read and not applied, and output not yet
    /// pushed, belongs to the abandoned epoch and is dropped.
    fn leave_ring(&mut self) {
        self.cycle.batch_next = 0;
        self.cycle.batch_len = 0;
        self.cycle.spill.clear();
        self.cycle.pending_snapshot = None;
        self.cycle.pending_fault = None;
        self.cycle.rebuilds_in_a_row = 0;
        self.cycle.phase = if self.halt.load(Ordering::Acquire) || self.stopped_and_done() {
            Phase::Stopped
        } else {
            Phase::Rebuild
        };
    }

    /// Reads the ring and applies, as far as the output ring and the fault
    /// hooks allow.
    fn live_step(&mut self) -> usize {
        if self.halt.load(Ordering::Acquire) {
            self.cycle.phase = Phase::Stopped;
            return 0;
        }
        let mut work = usize::from(self.write_agreed_snapshot());
        match self.drain_spill(true, &mut work) {
            Spill::Drained => {}
            Spill::Blocked => return work,
            Spill::Fenced => {
                self.leave_ring();
                return work + 1;
            }
        }
        if self.cycle.batch_next == self.cycle.batch_len {
            let count = match self.reader.poll(&mut self.cycle.batch) {
                Ok(count) => count,
                Err(_) => {
                    self.leave_ring();
                    return work + 1;
                }
            };
            if count == 0 {
                if self.stopped_and_done() {
                    self.cycle.phase = Phase::Stopped;
                }
                return work;
            }
            self.cycle.batch_next = 0;
            self.cycle.batch_len = count;
        }
        // The applied seq is published once a step, not once a command:
        // egress reads it on another core, and a store per command would
        // move its cache line back and forth on every command.
        let mut applied = None;
        while self.cycle.batch_next < self.cycle.batch_len && self.cycle.spill.is_empty() {
            let sequenced = self.cycle.batch[self.cycle.batch_next];
            let Gate::Apply(replacement) = self.fault_gate(sequenced.seq) else {
                break;
            };
            self.apply_one(&sequenced, replacement);
            self.cycle.batch_next += 1;
            applied = Some(sequenced.seq);
            work += 1;
        }
        if let Some(seq) = applied {
            self.status.applied_seq.set(seq);
        }
        work
    }

    /// Pushes spilled output records while the output ring has room. While
    /// it is full, gives up if fenced meanwhile (egress then stops reading
    /// this ring and the room would never come): by egress, or in the ring
    /// when `in_ring`.
    fn drain_spill(&mut self, in_ring: bool, work: &mut usize) -> Spill {
        while let Some(&record) = self.cycle.spill.front() {
            // Once egress has published everything and stopped, output has
            // no reader: drop it.
            if self.egress_done.load(Ordering::Acquire) {
                self.cycle.spill.clear();
                break;
            }
            if self.output.try_push(record).is_ok() {
                self.cycle.spill.pop_front();
                *work += 1;
                continue;
            }
            let fenced = self.status.egress_fences.get() != self.fences_seen
                || (in_ring && self.reader.is_fenced());
            if fenced || self.halt.load(Ordering::Acquire) {
                self.cycle.spill.clear();
                return Spill::Fenced;
            }
            return Spill::Blocked;
        }
        Spill::Drained
    }

    /// Fires the fault hook for `seq`, if one is due, and says whether the
    /// command may be applied now.
    fn fault_gate(&mut self, seq: u64) -> Gate {
        if self.status.kill_requested.load(Ordering::Relaxed)
            && self.status.kill_requested.swap(false, Ordering::AcqRel)
        {
            panic!("replica {}: killed on request at seq {seq}", self.id);
        }
        if self.cycle.pending_fault.is_none() {
            if let Some(position) = self.faults.iter().position(|fault| fault.at_seq <= seq) {
                let fault = self.faults.swap_remove(position);
                let now_ns = self.clock.now_ns();
                match fault.kind {
                    FaultKind::Panic => panic!("replica {}: injected panic at seq {seq}", self.id),
                    FaultKind::Stall(duration) => {
                        let duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                        self.cycle.pending_fault = Some(PendingFault::Stall {
                            until_ns: now_ns.saturating_add(duration_ns),
                        });
                    }
                    FaultKind::Diverge => {
                        self.cycle.pending_fault = Some(PendingFault::Diverge {
                            seq,
                            deadline_ns: now_ns.saturating_add(DIVERGE_WAIT_NS),
                        });
                    }
                }
            }
        }
        let Some(pending) = self.cycle.pending_fault else {
            return Gate::Apply(None);
        };
        let halted = self.halt.load(Ordering::Acquire);
        let now_ns = self.clock.now_ns();
        match pending {
            PendingFault::Stall { until_ns } => {
                if now_ns < until_ns && !halted {
                    return Gate::Wait;
                }
                self.cycle.pending_fault = None;
                Gate::Apply(None)
            }
            PendingFault::Diverge {
                seq: diverge_seq,
                deadline_ns,
            } => {
                if self.egress.published_seq.get() < diverge_seq && now_ns < deadline_ns && !halted
                {
                    return Gate::Wait;
                }
                self.cycle.pending_fault = None;
                Gate::Apply(Some(Command::Halt {
                    instrument: InstrumentId(0),
                }))
            }
        }
    }

    /// Applies one command (or `replacement` in its place, a divergence) and
    /// writes its output: into the output ring while it has room, the rest
    /// into the spill queue.
    fn apply_one(&mut self, sequenced: &SequencedCommand, replacement: Option<Command>) {
        let command = replacement.unwrap_or(sequenced.command);
        let seq = sequenced.seq;
        let timestamp_ns = sequenced.timestamp_ns;
        let epoch = self.epoch;
        let mut events: u32 = 0;
        let output = &mut self.output;
        let spill = &mut self.cycle.spill;
        let egress_done = &self.egress_done;
        let mut push = |record: OutputRecord| {
            // Once egress has published everything and stopped, output has no
            // reader: the replica still applies every command (its final
            // state hash must match), but drops the records.
            if egress_done.load(Ordering::Acquire) {
                return;
            }
            // Records stay in order: once one waits, every later one waits
            // behind it.
            if spill.is_empty() {
                if let Err(full) = output.try_push(record) {
                    spill.push_back(full.0);
                }
            } else {
                spill.push_back(record);
            }
        };
        self.engine.apply(&command, &mut |event| {
            events += 1;
            push(OutputRecord::Event {
                epoch,
                seq,
                timestamp_ns,
                event: *event,
            });
        });
        push(OutputRecord::End {
            epoch,
            seq,
            event_hash: self.engine.event_hash(),
            events,
        });
        if self.snapshot_interval > 0 && seq.is_multiple_of(self.snapshot_interval) {
            self.maybe_snapshot(seq);
        }
    }

    /// Snapshots rotate over the replicas, so no one replica always pays.
    /// The state is taken now, but written only once egress agrees with
    /// this replica's output at that seq (`write_agreed_snapshot`): a
    /// replica whose state has silently diverged must not leave a snapshot
    /// that rebuilds and start-up recovery would then trust. (The simulator
    /// found that a diverging replica could write one, seed 110.) Agreement
    /// also means the seq was published, so durable: a snapshot is never
    /// past the journal a crash leaves.
    fn maybe_snapshot(&mut self, seq: u64) {
        if (seq / self.snapshot_interval) % self.replicas as u64 != self.id as u64 {
            return;
        }
        self.cycle.pending_snapshot = Some((seq, self.engine.snapshot(seq)));
        self.write_agreed_snapshot();
    }

    /// Writes the pending snapshot if egress has agreed with this epoch's
    /// output at its seq or later. Returns whether it wrote one.
    fn write_agreed_snapshot(&mut self) -> bool {
        let Some((seq, _)) = &self.cycle.pending_snapshot else {
            return false;
        };
        if !agreed_covers(self.status.agreed.get(), self.epoch, *seq) {
            return false;
        }
        let Some((seq, bytes)) = self.cycle.pending_snapshot.take() else {
            return false;
        };
        if let Err(error) = self.snapshots.save_bytes(&bytes, seq) {
            eprintln!(
                "lockstep: replica {}: snapshot at seq {seq} failed: {error}",
                self.id
            );
        }
        true
    }

    /// One rebuild: the snapshot and journal up to the published seq, in
    /// silence (those outputs are out already); then a new epoch, whose
    /// output starts right after the published seq, so the seqs egress still
    /// needs are covered. Rejoining follows.
    fn rebuild_step(&mut self) -> usize {
        if self.cycle.rebuilds_in_a_row >= REBUILDS_IN_A_ROW_MAX {
            eprintln!("lockstep: replica {}: fenced again in each of {REBUILDS_IN_A_ROW_MAX} rebuilds; giving up", self.id);
            self.cycle.phase = Phase::Stopped;
            return 0;
        }
        self.cycle.rebuilds_in_a_row += 1;
        self.status.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.cycle.pending_fault = None;
        self.cycle.spill.clear();
        self.cycle.pending_snapshot = None;
        let published = self.egress.published_seq.get();
        let rebuilt = match rebuild(
            &self.engine_config,
            self.journal.as_ref(),
            &self.snapshots,
            published,
        ) {
            Ok(rebuilt) => rebuilt,
            Err(error) => {
                eprintln!("lockstep: replica {}: {error}", self.id);
                self.cycle.phase = Phase::Stopped;
                return 0;
            }
        };
        self.engine = rebuilt.engine;
        let applied_seq = rebuilt.applied_seq;
        if applied_seq > self.cycle.rebuilt_seq {
            self.cycle.rebuilds_in_a_row = 1;
        }
        self.cycle.rebuilt_seq = applied_seq;
        self.epoch += 1;
        self.fences_seen = self.status.egress_fences.get();
        self.status.applied_seq.set(applied_seq);
        self.status.epoch.set(self.epoch);
        self.cycle.rejoin_attempts = 0;
        self.cycle.phase = Phase::Rejoining { applied_seq };
        1
    }

    /// One attempt to rejoin the ring right after `applied_seq`.
    fn rejoin_step(&mut self, applied_seq: u64) -> usize {
        if self.cycle.rejoin_attempts >= REJOIN_ATTEMPTS_MAX {
            eprintln!(
                "lockstep: replica {}: could not rejoin after {REJOIN_ATTEMPTS_MAX} attempts",
                self.id
            );
            self.cycle.phase = Phase::Stopped;
            return 0;
        }
        self.cycle.rejoin_attempts += 1;
        if self.halt.load(Ordering::Acquire) {
            self.cycle.phase = Phase::Stopped;
            return 0;
        }
        if self.sequencer_done.load(Ordering::Acquire)
            && applied_seq >= self.sequenced_through.get()
        {
            self.cycle.phase = Phase::Stopped;
            return 0;
        }
        if self.status.egress_fences.get() != self.fences_seen {
            self.cycle.phase = Phase::Rebuild;
            return 1;
        }
        match self.reader.rejoin_at(applied_seq + 1) {
            Ok(_) => {
                self.cycle.rebuilds_in_a_row = 0;
                self.cycle.batch_next = 0;
                self.cycle.batch_len = 0;
                self.cycle.phase = Phase::Live;
                1
            }
            // The journal is written before the ring is published, so the
            // replica can be ahead of the ring's cursor: wait for it.
            Err(RejoinError::Ahead { .. }) | Err(RejoinError::Contended) => 0,
            // The ring no longer holds the next seq: take it, and what
            // follows, from the journal, with output.
            Err(RejoinError::Overwritten { .. }) => {
                let reader = self.journal.open_reader().and_then(|reader| {
                    reader
                        .map(|mut reader| reader.skip_to_seq(applied_seq + 1).map(|()| reader))
                        .transpose()
                });
                match reader {
                    Ok(Some(reader)) => {
                        self.cycle.phase = Phase::CatchingUp {
                            reader: Box::new(reader),
                            applied_seq,
                            held: None,
                        };
                    }
                    Ok(None) => {
                        eprintln!("lockstep: replica {}: the journal is missing", self.id);
                        self.cycle.phase = Phase::Rebuild;
                    }
                    Err(error) => {
                        eprintln!("lockstep: replica {}: {error}", self.id);
                        self.cycle.phase = Phase::Rebuild;
                    }
                }
                1
            }
            Err(RejoinError::NotFenced) => {
                self.ring.fence(self.id);
                1
            }
        }
    }

    /// Applies, with output, up to a batch of the journal's records after
    /// the applied seq. The output carries each record's own timestamp, so
    /// it is the output the replicas in the ring produced for those seqs. At
    /// the end of the readable journal, tries to rejoin again; if fenced or
    /// halted meanwhile, rebuilds.
    fn catch_up_step(&mut self) -> usize {
        let mut work = usize::from(self.write_agreed_snapshot());
        match self.drain_spill(false, &mut work) {
            Spill::Drained => {}
            Spill::Blocked => return work,
            Spill::Fenced => {
                self.cycle.phase = Phase::Rebuild;
                return work + 1;
            }
        }
        let Phase::CatchingUp {
            mut reader,
            mut applied_seq,
            mut held,
        } = std::mem::take(&mut self.cycle.phase)
        else {
            unreachable!("catch_up_step runs only while catching up");
        };
        let mut next_phase = None;
        for _ in 0..READ_BATCH_MAX {
            if !self.cycle.spill.is_empty() {
                break;
            }
            let record = match held.take() {
                Some(record) => record,
                None => match reader.next() {
                    None => {
                        next_phase = Some(Phase::Rejoining { applied_seq });
                        break;
                    }
                    Some(Err(error)) => {
                        eprintln!("lockstep: replica {}: {error}", self.id);
                        next_phase = Some(Phase::Rebuild);
                        break;
                    }
                    Some(Ok(record)) => record,
                },
            };
            if record.seq <= applied_seq {
                continue;
            }
            let Gate::Apply(replacement) = self.fault_gate(record.seq) else {
                held = Some(record);
                break;
            };
            self.apply_one(&record, replacement);
            self.status.applied_seq.set(record.seq);
            applied_seq = record.seq;
            work += 1;
        }
        self.cycle.phase = next_phase.unwrap_or(Phase::CatchingUp {
            reader,
            applied_seq,
            held,
        });
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_only_for_the_same_epoch_at_or_after_the_seq() {
        let word = agreed_word(3, 1_000);
        assert!(agreed_covers(word, 3, 1_000));
        assert!(agreed_covers(word, 3, 999));
        assert!(!agreed_covers(word, 3, 1_001));
        assert!(!agreed_covers(word, 2, 10));
        assert!(!agreed_covers(word, 4, 10));
        // Seqs compare modulo their field: just past a wrap still counts.
        let wrapped = agreed_word(7, 1 << AGREED_SEQ_BITS);
        assert!(agreed_covers(wrapped, 7, (1 << AGREED_SEQ_BITS) - 5));
        // Nothing agreed yet (the status starts at zero) covers no seq of a
        // replica's first epoch but seq 0.
        assert!(!agreed_covers(0, 0, 1));
    }
}
