//! `SequencerAgent` is the one writer: it takes commands from the bounded
//! multi-producer input queue, stamps each with the next gapless seq and the
//! batch's timestamp, appends the batch to the journal, publishes it to the
//! broadcast ring, and then makes it durable under the journal's policy
//! (one `fdatasync` a batch under group commit) and advances the durable
//! seq that egress waits for. Publishing before the sync lets the replicas
//! work while the disk does; nothing leaves the process before the sync.
//! A journal failure stops the sequencer (fail-stop): it never goes on as if
//! a command were durable.

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
    /// The last seq published to the ring.
    pub sequenced_through: Arc<Sequence>,
    pub done: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub halt: Arc<AtomicBool>,
    pub wait: WaitStrategy,
    /// Why the sequencer stopped early, if it did.
    pub failure: Arc<Mutex<Option<String>>>,
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
            let stopping = self.stop.load(Ordering::Acquire);
            self.batch.clear();
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
                if stopping {
                    break;
                }
                self.wait.idle(idle_rounds);
                idle_rounds = idle_rounds.saturating_add(1);
                continue;
            }
            idle_rounds = 0;
            if let Err(problem) = self.sequence_batch() {
                *self
                    .failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(problem);
                break;
            }
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

    fn sequence_batch(&mut self) -> Result<(), String> {
        let timestamp_ns = self.clock.now_ns();
        for sequenced in &mut self.batch {
            sequenced.seq = self.next_seq;
            sequenced.timestamp_ns = timestamp_ns;
            self.next_seq += 1;
        }
        self.journal
            .append_batch(&self.batch)
            .map_err(|error| error.to_string())?;
        // Under group commit the records may only be buffered until the sync
        // below. A replica rebuilding meanwhile reads the journal up to what
        // reached the OS and takes the rest from the ring, which holds far
        // more than one batch behind its cursor.
        for sequenced in &self.batch {
            let halt = &self.halt;
            if self
                .writer
                .publish_blocking(*sequenced, &self.wait, || halt.load(Ordering::Acquire))
                .is_err()
            {
                return Err("halted while publishing".to_string());
            }
        }
        self.sequenced_through.set(self.next_seq - 1);
        let durable = self.journal.sync().map_err(|error| error.to_string())?;
        self.durable_seq.set(durable);
        Ok(())
    }
}
