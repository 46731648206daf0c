//! The hop probe measures the sequencer-to-replica hop: how long one
//! sequenced command takes from the writer thread to each reader thread
//! through the real [`BroadcastRing`] of [`SequencedCommand`]s, read the way a
//! replica reads it (`poll`, then one [`WaitStrategy::idle`] step when empty).
//! It is the figure [`crate::core_probe::cache_line_ping_pong`] is the floor
//! for, so a benchmark reports the two side by side.
//!
//! Every thread shares one `Instant` base. The writer reads the clock, puts
//! the nanoseconds since the base into the command's `timestamp_ns` and
//! publishes it; each reader reads the clock as soon as `poll` returns the
//! command and hands `now - timestamp_ns` to its own sink (the caller's
//! histogram). One message is in flight at a time: before each publish the
//! writer waits until every reader has acknowledged the previous message
//! (through a cache-padded counter per reader, written after the reader has
//! recorded, so the acknowledgement is not part of the measured hop) and
//! until at least `min_interval_ns` have passed since the previous send. So
//! the figure is the latency of an idle ring, never queueing behind earlier
//! messages.
//!
//! The payload is either the system's own `SequencedCommand` (80 bytes, so
//! each slot spans two cache lines) or a 16-byte stamp (sequence and send
//! time, one line per slot), so a benchmark can tell the cost of the slot's
//! size from the cost of the ring's protocol.
//!
//! Each configuration is bounded in time: when `time_limit` passes, the
//! writer stops sending and the run reports how many messages it sent, so a
//! wait strategy that starves on shared cores (busy-spinning readers
//! time-sliced on one core) ends in bounded time with fewer samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::broadcast_ring::{BroadcastParts, BroadcastRing, Full, RingError};
use crate::durability::synthetic_command;
use crate::journal_record::SequencedCommand;
use crate::wait_strategy::WaitStrategy;

/// What each hop message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopPayload {
    /// A [`SequencedCommand`], as the system's ring carries; the send time
    /// travels in `timestamp_ns`.
    SequencedCommand,
    /// 16 bytes, 16-aligned: the sequence and the send time. A slot never
    /// straddles two cache lines.
    Stamp16,
}

impl HopPayload {
    /// The size of one slot's value in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            HopPayload::SequencedCommand => std::mem::size_of::<SequencedCommand>(),
            HopPayload::Stamp16 => std::mem::size_of::<Stamp16>(),
        }
    }

    /// The payload's name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            HopPayload::SequencedCommand => "sequenced-command",
            HopPayload::Stamp16 => "stamp-16",
        }
    }
}

/// The 16-byte payload.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Stamp16 {
    seq: u64,
    send_ns: u64,
}

/// A value the probe can send: built before the clock is read, stamped with
/// the send time just before publishing.
trait HopMessage: Copy + Send {
    fn prepare(seq: u64) -> Self;
    fn stamp(&mut self, send_ns: u64);
    fn seq(&self) -> u64;
    fn send_ns(&self) -> u64;
}

impl HopMessage for SequencedCommand {
    fn prepare(seq: u64) -> Self {
        synthetic_command(seq)
    }
    fn stamp(&mut self, send_ns: u64) {
        self.timestamp_ns = send_ns;
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn send_ns(&self) -> u64 {
        self.timestamp_ns
    }
}

impl HopMessage for Stamp16 {
    fn prepare(seq: u64) -> Self {
        Stamp16 { seq, send_ns: 0 }
    }
    fn stamp(&mut self, send_ns: u64) {
        self.send_ns = send_ns;
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn send_ns(&self) -> u64 {
        self.send_ns
    }
}

/// How one hop measurement runs.
#[derive(Clone, Debug)]
pub struct HopConfig {
    /// The core the writer is pinned to (skipped if it does not exist).
    pub writer_core: Option<usize>,
    /// The core of reader `i` (skipped if missing or absent).
    pub reader_cores: Vec<Option<usize>>,
    /// How readers wait for the next message, as a replica would.
    pub wait: WaitStrategy,
    /// Messages whose hops are recorded, after the warm-up.
    pub messages: u64,
    /// Messages sent first and not recorded.
    pub warm_up: u64,
    /// The least time between two sends, in nanoseconds.
    pub min_interval_ns: u64,
    /// The writer stops sending when this much time has passed.
    pub time_limit: Duration,
    /// Slots of the ring (a power of two).
    pub ring_capacity: usize,
    /// What each message is.
    pub payload: HopPayload,
}

/// What a hop measurement did (the latencies went to the sinks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopRun {
    /// Messages published, warm-up included.
    pub sent: u64,
    /// Hops handed to each reader's sink.
    pub recorded: Vec<u64>,
    /// The core the writer was pinned to, if pinning worked.
    pub writer_pinned: Option<usize>,
    /// The core each reader was pinned to, if pinning worked.
    pub readers_pinned: Vec<Option<usize>>,
    /// Whether the time limit stopped the writer before every message was
    /// sent.
    pub timed_out: bool,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// The core ids this thread may run on (its affinity mask), in order.
pub fn core_ids() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|id| id.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Measures the hop from one writer to `sinks.len()` readers; reader `i`
/// hands each recorded hop, in nanoseconds, to `sinks[i]` (on its own
/// thread, after reading the clock). Call it from a thread that is not
/// pinned: the probe's threads inherit the caller's affinity mask.
pub fn measure_hop<S: FnMut(u64) + Send>(
    config: &HopConfig,
    sinks: Vec<S>,
) -> Result<HopRun, RingError> {
    match config.payload {
        HopPayload::SequencedCommand => measure::<SequencedCommand, S>(config, sinks),
        HopPayload::Stamp16 => measure::<Stamp16, S>(config, sinks),
    }
}

fn measure<M: HopMessage, S: FnMut(u64) + Send>(
    config: &HopConfig,
    sinks: Vec<S>,
) -> Result<HopRun, RingError> {
    let BroadcastParts {
        ring: _,
        mut writer,
        readers,
    } = BroadcastRing::<M>::new(config.ring_capacity, sinks.len())?;
    let total = config.warm_up.saturating_add(config.messages);
    let acks: Vec<CachePadded<AtomicU64>> = (0..readers.len())
        .map(|_| CachePadded::new(AtomicU64::new(0)))
        .collect();
    // How many messages readers wait for: lowered to what was sent when the
    // writer times out.
    let end = CachePadded::new(AtomicU64::new(total));
    let base = Instant::now();
    let acks = &acks;
    let end = &end;
    let warm_up = config.warm_up;

    std::thread::scope(|scope| {
        let mut reader_threads = Vec::with_capacity(readers.len());
        for ((index, mut reader), mut sink) in readers.into_iter().enumerate().zip(sinks) {
            let core = config.reader_cores.get(index).copied().flatten();
            let wait = config.wait;
            reader_threads.push(scope.spawn(move || {
                let pinned = pin(core);
                let mut buffer = [M::prepare(0); 16];
                let mut received: u64 = 0;
                let mut recorded: u64 = 0;
                let mut round: u64 = 0;
                while received < end.load(Ordering::Acquire) {
                    let count = match reader.poll(&mut buffer) {
                        Ok(count) => count,
                        Err(_) => break,
                    };
                    if count == 0 {
                        wait.idle(round);
                        round = round.saturating_add(1);
                        continue;
                    }
                    let now_ns = nanos_since(base);
                    for message in &buffer[..count] {
                        if message.seq() > warm_up {
                            sink(now_ns.saturating_sub(message.send_ns()));
                            recorded += 1;
                        }
                    }
                    received += count as u64;
                    acks[index].store(received, Ordering::Release);
                    round = 0;
                }
                (pinned, recorded)
            }));
        }

        let writer_core = config.writer_core;
        let min_interval_ns = config.min_interval_ns;
        let deadline = base + config.time_limit;
        let writer_thread = scope.spawn(move || {
            let pinned = pin(writer_core);
            let mut sent: u64 = 0;
            let mut timed_out = false;
            let mut last_send_ns: u64 = 0;
            'sending: for seq in 1..=total {
                // Every reader has taken the previous message.
                let mut spins: u32 = 0;
                while acks.iter().any(|ack| ack.load(Ordering::Acquire) < seq - 1) {
                    spins = spins.wrapping_add(1);
                    if spins & 1023 == 0 && Instant::now() >= deadline {
                        timed_out = true;
                        break 'sending;
                    }
                    std::hint::spin_loop();
                }
                if Instant::now() >= deadline {
                    timed_out = true;
                    break;
                }
                while nanos_since(base) < last_send_ns.saturating_add(min_interval_ns) {
                    std::hint::spin_loop();
                }
                let mut message = M::prepare(seq);
                let send_ns = nanos_since(base);
                message.stamp(send_ns);
                // Every reader has consumed everything sent, so the ring has
                // room; the loop only guards the invariant.
                while let Err(Full) = writer.try_publish(message) {
                    std::hint::spin_loop();
                }
                last_send_ns = send_ns;
                sent = seq;
            }
            end.store(sent, Ordering::Release);
            (pinned, sent, timed_out)
        });

        let (writer_pinned, sent, timed_out) = writer_thread.join().expect("hop writer panicked");
        let mut recorded = Vec::with_capacity(reader_threads.len());
        let mut readers_pinned = Vec::with_capacity(reader_threads.len());
        for thread in reader_threads {
            let (pinned, count) = thread.join().expect("hop reader panicked");
            readers_pinned.push(pinned);
            recorded.push(count);
        }
        Ok(HopRun {
            sent,
            recorded,
            writer_pinned,
            readers_pinned,
            timed_out,
            elapsed: base.elapsed(),
        })
    })
}

/// Nanoseconds since `base` (saturating after 584 years).
#[inline]
fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Pins the calling thread to `core` if that core id exists; returns it.
fn pin(core: Option<usize>) -> Option<usize> {
    let wanted = core?;
    let id = core_affinity::get_core_ids()?
        .into_iter()
        .find(|id| id.id == wanted)?;
    core_affinity::set_for_current(id).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(readers: usize, messages: u64, time_limit: Duration) -> HopConfig {
        HopConfig {
            writer_core: None,
            reader_cores: vec![None; readers],
            wait: WaitStrategy::Yield,
            messages,
            warm_up: 10,
            min_interval_ns: 0,
            time_limit,
            ring_capacity: 64,
            payload: HopPayload::SequencedCommand,
        }
    }

    #[test]
    fn every_reader_records_every_message_after_the_warm_up() {
        let mut samples = vec![Vec::new(), Vec::new()];
        let sinks: Vec<_> = samples
            .iter_mut()
            .map(|samples| move |ns: u64| samples.push(ns))
            .collect();
        let run = measure_hop(&config(2, 500, Duration::from_secs(60)), sinks).expect("runs");
        assert_eq!(run.sent, 510);
        assert_eq!(run.recorded, vec![500, 500]);
        assert!(!run.timed_out);
        for samples in &samples {
            assert_eq!(samples.len(), 500);
        }
    }

    #[test]
    fn the_small_payload_carries_the_same_protocol() {
        let mut config = config(1, 200, Duration::from_secs(60));
        config.payload = HopPayload::Stamp16;
        let mut count = 0;
        let run = measure_hop(&config, vec![|_| count += 1]).expect("runs");
        assert_eq!((run.sent, run.recorded[0]), (210, 200));
        assert_eq!(count, 200);
        assert_eq!(HopPayload::Stamp16.bytes(), 16);
    }

    #[test]
    fn the_time_limit_ends_a_run_with_what_was_sent() {
        let run = measure_hop(
            &config(1, u64::MAX / 2, Duration::from_millis(50)),
            vec![|_| {}],
        )
        .expect("runs");
        assert!(run.timed_out);
        assert!(run.sent > 0);
        assert_eq!(run.recorded[0], run.sent.saturating_sub(10));
    }

    #[test]
    fn no_reader_is_refused() {
        let sinks: Vec<fn(u64)> = Vec::new();
        assert_eq!(
            measure_hop(&config(0, 1, Duration::from_secs(1)), sinks),
            Err(RingError::NoReaders)
        );
    }
}
