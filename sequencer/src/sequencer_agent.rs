//! `SequencerAgent` is the one writer: it takes commands from the bounded
//! multi-producer input queue, stamps each with the next gapless seq and the
//! batch's timestamp, appends the batch to the journal, publishes it to the
//! broadcast ring, and then makes it durable under the journal's policy
//! (one `fdatasync` a batch under group commit) and advances the durable
//! seq that egress waits for. Publishing before the sync lets the replicas
//! work while the disk does; nothing leaves the process before the sync.
//! A journal failure stops the sequencer (fail-stop): it never goes on as if
//! a command were durable.
//!
//! The work is an Aeron-style duty cycle: [`SequencerAgent::do_work`] does
//! one step and never blocks, returning how much it did (0: idle). `run`, the
//! thread body, calls it in a loop and idles with the wait strategy when it
//! returns 0; the simulator (`lockstep-sim`) calls it from one thread,
//! interleaved with the replicas and egress. A batch takes three steps:
//! stamp, journal and publish it (as much as the ring has room for; the rest
//! on later calls), then sync it and advance the durable seq. The sync is a
//! step of its own so that, in the simulator as on separate threads, the
//! replicas can apply a batch while it is being made durable.

use crate::broadcast_ring::BroadcastWriter;
use crate::clock::Clock;
use crate::journal::Journal;
use crate::journal_record::SequencedCommand;
use crate::sequence::Sequence;
use crate::wait_strategy::WaitStrategy;
use crossbeam_queue::ArrayQueue;
use lockstep_engine::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Everything the sequencer thread owns.
pub struct SequencerAgent {
    pub input: Arc<ArrayQueue<Command>>,
    pub journal: Journal,
    pub writer: BroadcastWriter<SequencedCommand>,
    /// Preallocated with `sequencer_batch_max` capacity.
    pub batch: Vec<SequencedCommand>,
    pub batch_max: usize,
    pub next_seq: u64,
    pub clock: Box<dyn Clock>,
    pub durable_seq: Arc<Sequence>,
    /// The last seq published to the ring (a batch may be published in
    /// parts, while the ring is full).
    pub sequenced_through: Arc<Sequence>,
    pub done: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub halt: Arc<AtomicBool>,
    pub wait: WaitStrategy,
    /// Why the sequencer stopped early, if it did.
    pub failure: Arc<Mutex<Option<String>>>,
    /// Where the duty cycle is; `SequencerCycle::default()` to start.
    pub cycle: SequencerCycle,
}

/// Where the sequencer's duty cycle is between two calls of `do_work`.
#[derive(Debug, Default)]
pub struct SequencerCycle {
    /// How many commands of the current batch (`SequencerAgent::batch`) are
    /// published to the ring. The whole batch is journaled before the first
    /// is published; once all are, the next step syncs it.
    published: usize,
    /// The journal failed: the sequencer has stopped for good and `failure`
    /// says why.
    failed: bool,
}

impl SequencerAgent {
    /// The thread body. Returns the journal (synced, unless halted).
    pub fn run(mut self) -> Journal {
        let mut idle_rounds: u64 = 0;
        loop {
            if self.halt.load(Ordering::Acquire) {
                // A crash: no sync, nothing more published.
                return self.journal;
            }
            if self.cycle.failed {
                break;
            }
            // Read before taking commands, so that everything submitted
            // before the stop was asked for is sequenced.
            let stopping = self.stop.load(Ordering::Acquire);
            if self.do_work() > 0 {
                idle_rounds = 0;
                continue;
            }
            if self.cycle.failed {
                break;
            }
            if stopping && self.batch.is_empty() {
                break;
            }
            self.wait.idle(idle_rounds);
            idle_rounds = idle_rounds.saturating_add(1);
        }
        if let Err(error) = self.journal.sync() {
            *self
                .failure
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error.to_string());
        } else {
            self.durable_seq.set(self.journal.durable_seq());
        }
        self.done.store(true, Ordering::Release);
        self.journal
    }

    /// Whether the journal failed and the sequencer stopped for good.
    pub fn has_failed(&self) -> bool {
        self.cycle.failed
    }

    /// One step of the duty cycle; never blocks. Returns the work done: the
    /// commands taken, published or synced (0: nothing to do, the ring is
    /// full, or the sequencer has failed).
    pub fn do_work(&mut self) -> usize {
        if self.cycle.failed {
            return 0;
        }
        if self.batch.is_empty() {
            return self.take_and_journal_batch();
        }
        if self.cycle.published < self.batch.len() {
            return self.publish_some();
        }
        match self.journal.sync() {
            Ok(durable) => {
                self.durable_seq.set(durable);
                let work = self.batch.len();
                self.batch.clear();
                self.cycle.published = 0;
                work
            }
            Err(error) => self.fail(error.to_string()),
        }
    }

    /// Takes up to `batch_max` commands, stamps each with the next seq and
    /// the batch's timestamp, appends them to the journal and publishes as
    /// many as fit.
    fn take_and_journal_batch(&mut self) -> usize {
        debug_assert!(self.batch.is_empty() && self.cycle.published == 0);
        while self.batch.len() < self.batch_max {
            match self.input.pop() {
                Some(command) => self.batch.push(SequencedCommand {
                    seq: 0,
                    timestamp_ns: 0,
                    command,
                }),
                None => break,
            }
        }
        if self.batch.is_empty() {
            return 0;
        }
        let timestamp_ns = self.clock.now_ns();
        for sequenced in &mut self.batch {
            sequenced.seq = self.next_seq;
            sequenced.timestamp_ns = timestamp_ns;
            self.next_seq += 1;
        }
        if let Err(error) = self.journal.append_batch(&self.batch) {
            return self.fail(error.to_string());
        }
        // Under group commit the records may only be buffered until the sync
        // of a later step. A replica rebuilding meanwhile reads the journal
        // up to what reached the OS and takes the rest from the ring, which
        // holds far more than one batch behind its cursor.
        self.batch.len() + self.publish_some()
    }

    /// Publishes the batch's next commands while the ring has room. Returns
    /// how many; 0 when the ring is full and the batch is already durable
    /// (the caller idles and retries).
    ///
    /// When the ring is full part-way through a batch, the batch is synced
    /// there and then, before waiting: a replica that stopped reading holds
    /// the writer back, and only egress can fence it, once it falls more
    /// than the lag bound behind what egress has *published*. Egress
    /// publishes nothing past the durable seq, so a batch not synced until
    /// it is all published would keep the durable seq, and so the published
    /// seq, from ever getting that far ahead of the stopped replica: the
    /// whole system would wait for it. (The simulator found this, seeds 4 and 13.)
    /// Under group commit the early sync replaces the batch's one sync
    /// rather than adding one.
    fn publish_some(&mut self) -> usize {
        let mut published = 0;
        while self.cycle.published < self.batch.len() {
            if self
                .writer
                .try_publish(self.batch[self.cycle.published])
                .is_err()
            {
                break;
            }
            self.cycle.published += 1;
            published += 1;
        }
        if published > 0 {
            self.sequenced_through
                .set(self.batch[self.cycle.published - 1].seq);
        }
        if self.cycle.published < self.batch.len() && self.durable_seq.get() < self.next_seq - 1 {
            match self.journal.sync() {
                Ok(durable) => {
                    self.durable_seq.set(durable);
                    return published + 1;
                }
                Err(error) => return self.fail(error.to_string()),
            }
        }
        published
    }

    /// Stops the sequencer for good: nothing more is sequenced, published
    /// or synced, so nothing after the last durable seq is ever released.
    fn fail(&mut self, problem: String) -> usize {
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(problem);
        self.cycle.failed = true;
        0
    }
}
