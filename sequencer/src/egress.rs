//! `EgressAgent` turns the replicas' output rings into one published stream.
//! For each seq it publishes the events of whichever live replica produced
//! that seq first, but only once the seq is durable under the journal's
//! policy; every other replica's end-of-seq hash is compared with the
//! published one when it arrives. A replica that diverges, panics or falls
//! more than `fence_lag_max` commands behind the sequencer is fenced: the
//! ring stops waiting for it and nothing it writes is published until it has
//! rebuilt and rejoined (a new epoch).
//!
//! Exactly once, with no buffering: replicas are deterministic, so if the
//! replica publishing a seq is fenced half-way, the next one's events for
//! that seq are the same, and egress skips as many as were already
//! published. Replicas that are not publishing are read only up to the last
//! published seq, so the seq being published is still whole in their rings.
//!
//! The work is an Aeron-style duty cycle: [`EgressAgent::do_work`] does one
//! round (watch the replicas, drain followers, publish) and never blocks,
//! returning how much it did (0: idle). `run`, the thread body, calls it in
//! a loop; the simulator (`lockstep-sim`) calls it from one thread,
//! interleaved with the sequencer and the replicas.

use crate::broadcast_ring::BroadcastRing;
use crate::journal_record::SequencedCommand;
use crate::output_record::OutputRecord;
use crate::output_ring::OutputConsumer;
use crate::replica::{agreed_word, ReplicaStatus};
use crate::sequence::Sequence;
use crate::wait_strategy::WaitStrategy;
use lockstep_engine::Event;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Records egress takes from one replica in one round.
const ROUND_RECORDS_MAX: usize = 256;

/// Where published events go: called on the egress thread, in seq order,
/// with each event's seq and the sequencer's timestamp of its command (ns
/// since the Unix epoch), then the event. A seq without events is never
/// seen here.
pub type PublishSink = Box<dyn FnMut(u64, u64, &Event) + Send>;

/// Why a replica was fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceReason {
    Panicked,
    Lagged,
    Diverged,
}

/// Counters egress shares with the system.
#[derive(Debug, Default)]
pub struct EgressStats {
    /// Every seq up to this one is published.
    pub published_seq: Sequence,
    pub events_published: AtomicU64,
    pub fenced_panicked: AtomicU64,
    pub fenced_lagged: AtomicU64,
    pub fenced_diverged: AtomicU64,
    /// Fences (for any reason) of the replica egress was publishing from at
    /// that moment. A replica that dies usually loses the lead before its
    /// fence, as soon as another replica has the next seq first, so this
    /// counts only the fences that found it still leading.
    pub fenced_leaders: AtomicU64,
    /// The replica being published from, plus one; 0 between leaders (and
    /// before the first), so that the derived default means "none".
    pub leader_plus_one: AtomicU64,
    /// Times the replica published from changed.
    pub leader_changes: AtomicU64,
    /// Hash comparisons made (one per follower end-of-seq in the window).
    pub hashes_compared: AtomicU64,
    /// A replica taking over a seq found a different event count than the
    /// previous publisher had published: a divergence that reached output.
    pub published_divergences: AtomicU64,
}

impl EgressStats {
    /// The replica egress is publishing from, if any.
    pub fn leader(&self) -> Option<usize> {
        let plus_one = self.leader_plus_one.load(Ordering::Relaxed);
        usize::try_from(plus_one).ok()?.checked_sub(1)
    }
}

/// Egress's view of one replica.
struct ReplicaView {
    live: bool,
    /// `status.panics` as last seen.
    panics_seen: u64,
    epoch: u64,
    pending: Option<OutputRecord>,
    /// Events of `counted_seq` this replica has handed over so far.
    counted_seq: u64,
    counted_events: u32,
}

/// Everything the egress thread owns.
pub struct EgressAgent {
    pub consumers: Vec<OutputConsumer<OutputRecord>>,
    pub statuses: Vec<Arc<ReplicaStatus>>,
    pub ring: BroadcastRing<SequencedCommand>,
    pub durable_seq: Arc<Sequence>,
    pub sequenced_through: Arc<Sequence>,
    pub sequencer_done: Arc<AtomicBool>,
    pub halt: Arc<AtomicBool>,
    pub wait: WaitStrategy,
    pub fence_lag_max: u64,
    pub hash_window: Vec<(u64, u64)>,
    pub stats: Arc<EgressStats>,
    pub sink: PublishSink,
    /// Set when this agent returns, so replicas stop waiting for it.
    pub done: Arc<AtomicBool>,
    /// The first seq not yet completely published.
    pub next_seq: u64,
    /// Where the duty cycle is; `EgressCycle::default()` to start.
    pub cycle: EgressCycle,
}

/// Where egress's duty cycle is between two calls of `do_work`.
#[derive(Default)]
pub struct EgressCycle {
    /// One per replica; made on the first call.
    views: Vec<ReplicaView>,
    /// The replica whose output is being published.
    leader: Option<usize>,
    /// Events of `next_seq` already published.
    published_in_seq: u32,
}

impl EgressAgent {
    /// The thread body; returns when everything sequenced is published, or
    /// on halt.
    pub fn run(mut self) {
        let mut idle_rounds: u64 = 0;
        while !self.is_finished() {
            if self.do_work() > 0 {
                idle_rounds = 0;
            } else {
                self.wait.idle(idle_rounds);
                idle_rounds = idle_rounds.saturating_add(1);
            }
        }
        self.done.store(true, Ordering::Release);
    }

    /// Whether egress has nothing more to do: halted, or everything the
    /// stopped sequencer sequenced is published.
    pub fn is_finished(&self) -> bool {
        self.halt.load(Ordering::Acquire)
            || (self.sequencer_done.load(Ordering::Acquire)
                && self.next_seq > self.sequenced_through.get())
    }

    /// One round of the duty cycle; never blocks. Returns the work done:
    /// records consumed from the replicas' output rings (0: idle).
    pub fn do_work(&mut self) -> usize {
        if self.is_finished() {
            return 0;
        }
        let mut views = std::mem::take(&mut self.cycle.views);
        if views.is_empty() {
            views = self
                .statuses
                .iter()
                .map(|status| ReplicaView {
                    live: true,
                    panics_seen: status.panics.load(Ordering::Acquire),
                    epoch: status.epoch.get(),
                    pending: None,
                    counted_seq: 0,
                    counted_events: 0,
                })
                .collect();
        }
        let mut leader = self.cycle.leader;
        let mut published_in_seq = self.cycle.published_in_seq;
        self.watch(&mut views, &mut leader);
        let mut work = 0;
        for replica in 0..views.len() {
            if views[replica].live && leader != Some(replica) {
                work += self.drain_follower(&mut views, &mut leader, replica);
            }
        }
        work += self.publish(&mut views, &mut leader, &mut published_in_seq);
        self.cycle = EgressCycle {
            views,
            leader,
            published_in_seq,
        };
        work
    }

    /// Notices rejoined replicas, and fences panicked or lagging ones. Lag
    /// is measured against what egress has published, not against the
    /// sequencer: a replica held up because egress has not yet taken its
    /// output is ahead, not behind.
    fn watch(&mut self, views: &mut [ReplicaView], leader: &mut Option<usize>) {
        let published = self.next_seq - 1;
        for replica in 0..views.len() {
            let status = &self.statuses[replica];
            let epoch = status.epoch.get();
            let panics = status.panics.load(Ordering::Acquire);
            if panics != views[replica].panics_seen {
                views[replica].panics_seen = panics;
                if epoch == views[replica].epoch && views[replica].live {
                    self.fence(views, leader, replica, FenceReason::Panicked);
                } else {
                    // It already rebuilt and rejoined; count the fence it
                    // gave itself.
                    self.stats.fenced_panicked.fetch_add(1, Ordering::Relaxed);
                }
            }
            if epoch > views[replica].epoch {
                Self::adopt_epoch(&mut views[replica], epoch);
            }
            if !views[replica].live {
                continue;
            }
            let applied = self.statuses[replica].applied_seq.get();
            if published.saturating_sub(applied) > self.fence_lag_max {
                self.fence(views, leader, replica, FenceReason::Lagged);
            }
        }
    }

    fn fence(
        &mut self,
        views: &mut [ReplicaView],
        leader: &mut Option<usize>,
        replica: usize,
        reason: FenceReason,
    ) {
        let fences = &self.statuses[replica].egress_fences;
        fences.set(fences.get() + 1);
        self.ring.fence(replica);
        let view = &mut views[replica];
        view.live = false;
        view.pending = None;
        if *leader == Some(replica) {
            *leader = None;
            self.stats.leader_plus_one.store(0, Ordering::Relaxed);
            self.stats.fenced_leaders.fetch_add(1, Ordering::Relaxed);
        }
        let counter = match reason {
            FenceReason::Panicked => &self.stats.fenced_panicked,
            FenceReason::Lagged => &self.stats.fenced_lagged,
            FenceReason::Diverged => &self.stats.fenced_diverged,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The replica rebuilt and rejoined: a new epoch. Anything older in its
    /// ring is dropped as it is read.
    fn adopt_epoch(view: &mut ReplicaView, epoch: u64) {
        view.epoch = epoch;
        view.live = true;
        view.counted_events = 0;
        view.counted_seq = 0;
        if view.pending.is_some_and(|record| record.epoch() < epoch) {
            view.pending = None;
        }
    }

    /// The next record of the replica's current epoch, left in place.
    /// Records of an older epoch are dropped; a record of a newer epoch means
    /// the replica has rejoined (its status may not have been seen yet).
    fn peek(&mut self, views: &mut [ReplicaView], replica: usize) -> Option<OutputRecord> {
        let view = &mut views[replica];
        if view.pending.is_none() {
            // Bounded by the ring's capacity: the replica cannot refill it
            // faster than this drains stale records.
            for _ in 0..self.consumers[replica].capacity() {
                match self.consumers[replica].try_pop() {
                    Some(record) if record.epoch() < view.epoch => continue,
                    Some(record) => {
                        if record.epoch() > view.epoch {
                            Self::adopt_epoch(view, record.epoch());
                        }
                        view.pending = Some(record);
                        break;
                    }
                    None => break,
                }
            }
        }
        view.pending
    }

    /// Consumes a follower's records of seqs already published, comparing
    /// each end-of-seq hash with the published one.
    fn drain_follower(
        &mut self,
        views: &mut [ReplicaView],
        leader: &mut Option<usize>,
        replica: usize,
    ) -> usize {
        let mut work = 0;
        for _ in 0..ROUND_RECORDS_MAX {
            let Some(record) = self.peek(views, replica) else {
                break;
            };
            if record.seq() >= self.next_seq {
                break;
            }
            views[replica].pending = None;
            work += 1;
            if let OutputRecord::End {
                seq, event_hash, ..
            } = record
            {
                let (window_seq, published_hash) =
                    self.hash_window[seq as usize & (self.hash_window.len() - 1)];
                if window_seq == seq {
                    self.stats.hashes_compared.fetch_add(1, Ordering::Relaxed);
                    if published_hash != event_hash {
                        self.fence(views, leader, replica, FenceReason::Diverged);
                        break;
                    }
                    // The replica may now write a snapshot of this seq.
                    self.statuses[replica]
                        .agreed
                        .set(agreed_word(views[replica].epoch, seq));
                }
            }
        }
        work
    }

    /// Publishes as much of the next seqs as is durable, from the leader.
    fn publish(
        &mut self,
        views: &mut [ReplicaView],
        leader: &mut Option<usize>,
        published_in_seq: &mut u32,
    ) -> usize {
        let mut work = 0;
        for _ in 0..ROUND_RECORDS_MAX {
            let seq = self.next_seq;
            if self.durable_seq.get() < seq {
                break;
            }
            // Keep the leader while it has this seq; otherwise the first live
            // replica that has it takes over.
            let has_seq = |agent: &mut Self, views: &mut [ReplicaView], replica: usize| {
                views[replica].live
                    && agent
                        .peek(views, replica)
                        .is_some_and(|record| record.seq() == seq)
            };
            let current = match *leader {
                Some(replica) if has_seq(self, views, replica) => replica,
                _ => match (0..views.len()).find(|&replica| has_seq(self, views, replica)) {
                    Some(replica) => {
                        *leader = Some(replica);
                        self.stats
                            .leader_plus_one
                            .store(replica as u64 + 1, Ordering::Relaxed);
                        self.stats.leader_changes.fetch_add(1, Ordering::Relaxed);
                        replica
                    }
                    None => break,
                },
            };
            let record = views[current].pending.take().expect("peeked above");
            work += 1;
            let view = &mut views[current];
            if view.counted_seq != seq {
                view.counted_seq = seq;
                view.counted_events = 0;
            }
            match record {
                OutputRecord::Event {
                    timestamp_ns,
                    event,
                    ..
                } => {
                    let ordinal = view.counted_events;
                    view.counted_events += 1;
                    // Events an earlier publisher of this seq already sent
                    // are skipped: they are the same events.
                    if ordinal >= *published_in_seq {
                        (self.sink)(seq, timestamp_ns, &event);
                        *published_in_seq += 1;
                        self.stats.events_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                OutputRecord::End {
                    event_hash, events, ..
                } => {
                    if events != *published_in_seq {
                        self.stats
                            .published_divergences
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let mask = self.hash_window.len() - 1;
                    self.hash_window[seq as usize & mask] = (seq, event_hash);
                    // What the leader wrote is what was published.
                    self.statuses[current]
                        .agreed
                        .set(agreed_word(views[current].epoch, seq));
                    self.next_seq = seq + 1;
                    *published_in_seq = 0;
                    self.stats.published_seq.set(seq);
                }
            }
        }
        work
    }
}
