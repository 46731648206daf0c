//! `ReplicaAgent` runs one replica's duty cycle on its own thread: read
//! sequenced commands from the broadcast ring, apply them to its own engine,
//! and write every event, then an end marker with the rolling event hash, to
//! its output ring for egress. When it finds itself fenced (it panicked,
//! stalled past the lag bound, or diverged), it rebuilds its engine from the
//! newest snapshot plus the journal, rejoins the ring with no gap, and starts
//! a new epoch of output. The shared `ReplicaStatus` is how egress and the
//! system see what it is doing.

use crate::broadcast_ring::{BroadcastReader, BroadcastRing, RejoinError};
use crate::egress::EgressStats;
use crate::journal_reader::JournalReader;
use crate::journal_record::SequencedCommand;
use crate::output_record::OutputRecord;
use crate::output_ring::OutputProducer;
use crate::rebuild::rebuild;
use crate::replica_fault::{FaultKind, ReplicaFault};
use crate::sequence::Sequence;
use crate::snapshot_store::SnapshotStore;
use crate::wait_strategy::WaitStrategy;
use lockstep_engine::{Command, Engine, EngineConfig, InstrumentId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands a replica takes from the ring at once.
const READ_BATCH_MAX: usize = 64;
/// Rebuilds in a row (each fenced again before it could rejoin) before the
/// replica gives up and stays out.
const REBUILDS_IN_A_ROW_MAX: u32 = 1_000;
/// Rejoin attempts before a rebuild starts over from the snapshot.
const REJOIN_ATTEMPTS_MAX: u32 = 100_000;

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
}

/// Everything a replica thread owns.
pub struct ReplicaAgent {
    pub id: usize,
    pub engine: Engine,
    pub engine_config: EngineConfig,
    pub reader: BroadcastReader<SequencedCommand>,
    pub ring: BroadcastRing<SequencedCommand>,
    pub output: OutputProducer<OutputRecord>,
    pub status: Arc<ReplicaStatus>,
    pub wait: WaitStrategy,
    pub journal_path: PathBuf,
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
    pub epoch: u64,
    /// `status.egress_fences` when this epoch started.
    pub fences_seen: u64,
    /// Egress's progress: a rebuild replays silently only up to the
    /// published seq and produces output for everything after it.
    pub egress: Arc<EgressStats>,
    /// Set when egress has published everything and stopped.
    pub egress_done: Arc<AtomicBool>,
}

/// How a run of the duty cycle ended.
enum RunEnd {
    Stopped,
    Fenced,
}

impl ReplicaAgent {
    /// The thread body: run, and after every fence or panic rebuild and
    /// rejoin, until the system stops.
    pub fn run(mut self) {
        loop {
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_until_fenced()));
            match outcome {
                Ok(RunEnd::Stopped) => break,
                Ok(RunEnd::Fenced) => {}
                Err(_) => {
                    self.status.panics.fetch_add(1, Ordering::Relaxed);
                    // A panicked engine's state is not trusted: fence
                    // ourselves so the sequencer stops waiting, then rebuild.
                    self.ring.fence(self.id);
                }
            }
            if self.halt.load(Ordering::Acquire) || self.stopped_and_done() {
                break;
            }
            if !self.rebuild_and_rejoin() {
                break;
            }
        }
        self.status
            .final_state_hash
            .store(self.engine.state_hash(), Ordering::Release);
    }

    fn stopped_and_done(&self) -> bool {
        self.sequencer_done.load(Ordering::Acquire)
            && self.reader.position() > self.sequenced_through.get()
    }

    fn run_until_fenced(&mut self) -> RunEnd {
        let mut batch = [SequencedCommand {
            seq: 0,
            timestamp_ns: 0,
            command: Command::Halt {
                instrument: InstrumentId(0),
            },
        }; READ_BATCH_MAX];
        let mut idle_rounds: u64 = 0;
        loop {
            if self.halt.load(Ordering::Acquire) {
                return RunEnd::Stopped;
            }
            let count = match self.reader.poll(&mut batch) {
                Ok(count) => count,
                Err(_) => return RunEnd::Fenced,
            };
            if count == 0 {
                if self.stopped_and_done() {
                    return RunEnd::Stopped;
                }
                self.wait.idle(idle_rounds);
                idle_rounds = idle_rounds.saturating_add(1);
                continue;
            }
            idle_rounds = 0;
            // The applied seq is published once a batch, not once a command:
            // egress reads it on another core, and a store per command would
            // move its cache line back and forth on every command.
            for sequenced in &batch[..count] {
                let kept_up = self.apply_one(sequenced, true);
                if !kept_up {
                    self.status.applied_seq.set(sequenced.seq);
                    return RunEnd::Fenced;
                }
            }
            self.status.applied_seq.set(batch[count - 1].seq);
        }
    }

    /// Applies one command and writes its output. False if the replica was
    /// fenced (by egress, or in the ring when `in_ring`) while waiting for
    /// room in its output ring, or the system halted.
    fn apply_one(&mut self, sequenced: &SequencedCommand, in_ring: bool) -> bool {
        let mut command = sequenced.command;
        if let Some(position) = self
            .faults
            .iter()
            .position(|fault| fault.at_seq <= sequenced.seq)
        {
            let fault = self.faults.swap_remove(position);
            match fault.kind {
                FaultKind::Panic => panic!(
                    "replica {}: injected panic at seq {}",
                    self.id, sequenced.seq
                ),
                FaultKind::Stall(duration) => self.sleep(duration),
                FaultKind::Diverge => {
                    let deadline = Instant::now() + Duration::from_secs(1);
                    while self.egress.published_seq.get() < sequenced.seq
                        && Instant::now() < deadline
                        && !self.halt.load(Ordering::Acquire)
                    {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    command = Command::Halt {
                        instrument: InstrumentId(0),
                    };
                }
            }
        }
        let seq = sequenced.seq;
        let timestamp_ns = sequenced.timestamp_ns;
        let epoch = self.epoch;
        let mut events: u32 = 0;
        let mut fenced = false;
        let output = &mut self.output;
        let reader = &self.reader;
        let wait = self.wait;
        let halt = &self.halt;
        let egress_fences = &self.status.egress_fences;
        let fences_seen = self.fences_seen;
        let egress_done = &self.egress_done;
        let mut push = |record: OutputRecord| {
            if fenced {
                return;
            }
            // Once egress has published everything and stopped, output has no
            // reader: the replica still applies every command (its final
            // state hash must match), but drops the records.
            if egress_done.load(Ordering::Acquire) {
                return;
            }
            let mut pending = record;
            let mut round: u64 = 0;
            // A full output ring means egress is behind; wait for room, but
            // give up if we are fenced meanwhile (egress then stops reading
            // this ring and the room would never come).
            loop {
                match output.try_push(pending) {
                    Ok(()) => return,
                    Err(full) => pending = full.0,
                }
                let fenced_now =
                    egress_fences.get() != fences_seen || (in_ring && reader.is_fenced());
                if egress_done.load(Ordering::Acquire) {
                    return;
                }
                if fenced_now || halt.load(Ordering::Acquire) {
                    fenced = true;
                    return;
                }
                wait.idle(round);
                round = round.saturating_add(1);
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
        !fenced
    }

    /// Snapshots rotate over the replicas, so no one replica always pays.
    fn maybe_snapshot(&mut self, seq: u64) {
        if (seq / self.snapshot_interval) % self.replicas as u64 != self.id as u64 {
            return;
        }
        if let Err(error) = self.snapshots.save(&self.engine, seq) {
            eprintln!(
                "lockstep: replica {}: snapshot at seq {seq} failed: {error}",
                self.id
            );
        }
    }

    fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline && !self.halt.load(Ordering::Acquire) {
            std::thread::sleep(
                Duration::from_millis(1).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Rebuilds and rejoins the ring, starting over if egress fences the
    /// replica again meanwhile. False if the system stopped or the journal
    /// cannot be read.
    fn rebuild_and_rejoin(&mut self) -> bool {
        for _ in 0..REBUILDS_IN_A_ROW_MAX {
            self.status.rebuilds.fetch_add(1, Ordering::Relaxed);
            if let Some(rejoined) = self.rebuild_once() {
                return rejoined;
            }
        }
        eprintln!("lockstep: replica {}: fenced again in each of {REBUILDS_IN_A_ROW_MAX} rebuilds; giving up", self.id);
        false
    }

    /// One rebuild: the snapshot and journal up to the published seq, in
    /// silence (those outputs are out already); then a new epoch, whose
    /// output starts right after the published seq, so the seqs egress still
    /// needs are covered; then the journal's later records with output, as
    /// far as needed to rejoin the ring. `None` if fenced again meanwhile.
    fn rebuild_once(&mut self) -> Option<bool> {
        let published = self.egress.published_seq.get();
        let rebuilt = match rebuild(
            &self.engine_config,
            &self.journal_path,
            &self.snapshots,
            published,
        ) {
            Ok(rebuilt) => rebuilt,
            Err(error) => {
                eprintln!("lockstep: replica {}: {error}", self.id);
                return Some(false);
            }
        };
        self.engine = rebuilt.engine;
        let mut applied_seq = rebuilt.applied_seq;
        self.epoch += 1;
        self.fences_seen = self.status.egress_fences.get();
        self.status.applied_seq.set(applied_seq);
        self.status.epoch.set(self.epoch);
        for _ in 0..REJOIN_ATTEMPTS_MAX {
            if self.halt.load(Ordering::Acquire) {
                return Some(false);
            }
            if self.sequencer_done.load(Ordering::Acquire)
                && applied_seq >= self.sequenced_through.get()
            {
                return Some(false);
            }
            if self.status.egress_fences.get() != self.fences_seen {
                return None;
            }
            match self.reader.rejoin_at(applied_seq + 1) {
                Ok(_) => return Some(true),
                // The journal is written before the ring is published, so the
                // replica can be ahead of the ring's cursor: wait for it.
                Err(RejoinError::Ahead { .. }) | Err(RejoinError::Contended) => {
                    std::thread::yield_now()
                }
                // The ring no longer holds the next seq: take it, and what
                // follows, from the journal, with output.
                Err(RejoinError::Overwritten { .. }) => {
                    match self.catch_up_from_journal(applied_seq) {
                        Ok(last) => applied_seq = last,
                        Err(()) => return None,
                    }
                }
                Err(RejoinError::NotFenced) => {
                    self.ring.fence(self.id);
                }
            }
        }
        eprintln!(
            "lockstep: replica {}: could not rejoin after {REJOIN_ATTEMPTS_MAX} attempts",
            self.id
        );
        Some(false)
    }

    /// Applies, with output, every readable journal record after `after_seq`.
    /// The output carries each record's own timestamp, so it is the output
    /// the replicas in the ring produced for those seqs. Returns the last
    /// seq applied; `Err` if fenced or halted meanwhile.
    fn catch_up_from_journal(&mut self, after_seq: u64) -> Result<u64, ()> {
        let reader = JournalReader::open(&self.journal_path).map_err(|error| {
            eprintln!("lockstep: replica {}: {error}", self.id);
        })?;
        let mut applied_seq = after_seq;
        for record in reader {
            let record = record.map_err(|error| {
                eprintln!("lockstep: replica {}: {error}", self.id);
            })?;
            if record.seq <= applied_seq {
                continue;
            }
            let kept_up = self.apply_one(&record, false);
            self.status.applied_seq.set(record.seq);
            if !kept_up {
                return Err(());
            }
            applied_seq = record.seq;
        }
        Ok(applied_seq)
    }
}
