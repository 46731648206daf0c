//! Stress tests for the broadcast ring, the SPSC output ring and the core
//! probe. Each test is named for what it proves. Rings are small (64 slots)
//! so the writer wraps and is gated by its readers hundreds of thousands of
//! times per test. Values are `position + 1`, so a reader that ever saw a
//! lost, duplicated, reordered or overwritten value fails on the spot.
//!
//! The default run fits in about twenty seconds on a two-core machine, which
//! is why the waits here yield or park: four busy-spinning threads on two
//! cores crawl. `LOCKSTEP_LONG_TESTS=1` runs every test with ten times the
//! values (about five minutes on two cores), and adds a busy-spin case with
//! three readers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use lockstep_sequencer::broadcast_ring::{
    BroadcastParts, BroadcastReader, BroadcastRing, Fenced, Full, ReadError, ReaderStatus,
    RejoinError, RingError,
};
use lockstep_sequencer::core_probe::cache_line_ping_pong;
use lockstep_sequencer::output_ring::{OutputFull, OutputRing};
use lockstep_sequencer::wait_strategy::WaitStrategy;

/// Whether the long variants were asked for.
fn long_run() -> bool {
    std::env::var("LOCKSTEP_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// `default` values normally, ten times as many in a long run.
fn scaled(default: u64) -> u64 {
    if long_run() {
        default * 10
    } else {
        default
    }
}

/// The wait used by threads sharing cores in these tests: a short spin (a
/// value often arrives within it), a few yields, then short parks.
const SHARED_CORE_WAIT: WaitStrategy = WaitStrategy::SpinThenPark {
    spin_iterations: 128,
    yield_iterations: 32,
    park_ns: 20_000,
};

/// No test may hang: every wait gives up at this deadline (two minutes, ten
/// in a long run), and also as soon as another thread of the test has failed.
fn test_deadline() -> Duration {
    Duration::from_secs(if long_run() { 600 } else { 120 })
}

struct Stop {
    deadline: Instant,
    failed: AtomicBool,
}

impl Stop {
    fn new() -> Self {
        Self {
            deadline: Instant::now() + test_deadline(),
            failed: AtomicBool::new(false),
        }
    }

    fn give_up(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Records a failure so the other threads stop waiting, then passes it on.
    fn fail<T>(&self, message: String) -> Result<T, String> {
        self.failed.store(true, Ordering::Relaxed);
        Err(message)
    }
}

/// Reads until `last` has been seen, checking that values arrive as exactly
/// `first, first + 1, ..., last`, in batches of up to `batch`.
fn read_exactly_in_order(
    reader: &mut BroadcastReader<u64>,
    first: u64,
    last: u64,
    batch: usize,
    wait: &WaitStrategy,
    stop: &Stop,
) -> Result<(), String> {
    let mut buffer = [0u64; 256];
    let batch = batch.min(buffer.len());
    let mut expected = first;
    while expected <= last {
        match reader.read_blocking(&mut buffer[..batch], wait, || stop.give_up()) {
            Ok(count) => {
                for &value in &buffer[..count] {
                    if value != expected {
                        return stop.fail(format!(
                            "reader {} expected {expected}, got {value}",
                            reader.id()
                        ));
                    }
                    expected += 1;
                }
            }
            Err(error) => {
                return stop.fail(format!(
                    "reader {} stopped at {expected}: {error}",
                    reader.id()
                ))
            }
        }
    }
    Ok(())
}

/// One writer publishing `1..=values` through a ring of `capacity` slots to
/// `readers` readers, all waiting with `wait`; every reader must see every
/// value exactly once, in order.
fn one_writer_many_readers(capacity: usize, readers: usize, values: u64, wait: WaitStrategy) {
    let BroadcastParts {
        ring: _,
        mut writer,
        readers: handles,
    } = BroadcastRing::<u64>::new(capacity, readers).expect("valid ring");
    let stop = Stop::new();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let mut joins = Vec::new();
        for (index, mut reader) in handles.into_iter().enumerate() {
            let stop = &stop;
            // Different batch sizes per reader, so their positions drift
            // apart and each of them is sometimes the slowest.
            let batch = [1, 7, 64, 256][index % 4];
            joins.push(
                scope.spawn(move || {
                    read_exactly_in_order(&mut reader, 1, values, batch, &wait, stop)
                }),
            );
        }
        let mut writer_result = Ok(());
        for value in 1..=values {
            if writer
                .publish_blocking(value, &wait, || stop.give_up())
                .is_err()
            {
                writer_result = stop.fail(format!("writer gave up at {value}"));
                break;
            }
        }
        for join in joins {
            join.join().expect("reader thread panicked").unwrap();
        }
        writer_result.unwrap();
    });
    eprintln!(
        "{readers} readers, ring {capacity}, {values} values, {wait:?}: {:?}",
        started.elapsed()
    );
}

#[test]
fn one_writer_three_readers_yield_ring_64_deliver_5m_values_each_exactly_once_in_order() {
    one_writer_many_readers(64, 3, scaled(5_000_000), WaitStrategy::Yield);
}

#[test]
fn one_writer_three_readers_spin_then_park_ring_64_deliver_5m_values_each_exactly_once_in_order() {
    one_writer_many_readers(64, 3, scaled(5_000_000), SHARED_CORE_WAIT);
}

#[test]
fn busy_spin_readers_deliver_every_value_exactly_once_in_order() {
    // Busy-spinning only works with a core per thread: on two cores that is
    // the writer and one reader. The long run also does three readers, which
    // still passes, but only at the pace of the scheduler's preemptions (a
    // spinner holds its core for a whole time slice), so it moves 1M values.
    one_writer_many_readers(64, 1, scaled(2_000_000), WaitStrategy::BusySpin);
    if long_run() {
        one_writer_many_readers(64, 3, 1_000_000, WaitStrategy::BusySpin);
    }
}

#[test]
fn batch_publishing_delivers_every_value_exactly_once_in_order() {
    let values = scaled(2_000_000);
    let BroadcastParts {
        ring: _,
        mut writer,
        readers,
    } = BroadcastRing::<u64>::new(64, 2).expect("valid ring");
    let stop = Stop::new();
    std::thread::scope(|scope| {
        let joins: Vec<_> = readers
            .into_iter()
            .map(|mut reader| {
                let stop = &stop;
                scope.spawn(move || {
                    read_exactly_in_order(&mut reader, 1, values, 32, &SHARED_CORE_WAIT, stop)
                })
            })
            .collect();
        let mut next = 1u64;
        let mut batch = [0u64; 48];
        let mut round = 0;
        while next <= values && !stop.give_up() {
            let size = (values - next + 1).min(batch.len() as u64) as usize;
            for (offset, slot) in batch[..size].iter_mut().enumerate() {
                *slot = next + offset as u64;
            }
            let published = writer.try_publish_batch(&batch[..size]);
            next += published as u64;
            if published < size {
                SHARED_CORE_WAIT.idle(round);
                round += 1;
            } else {
                round = 0;
            }
        }
        for join in joins {
            join.join().expect("reader thread panicked").unwrap();
        }
        assert_eq!(next, values + 1, "writer gave up");
    });
}

#[test]
fn fenced_reader_no_longer_gates_the_writer() {
    const CAPACITY: usize = 64;
    let values = scaled(1_000_000);
    let BroadcastParts {
        ring,
        mut writer,
        readers,
    } = BroadcastRing::<u64>::new(CAPACITY, 3).expect("valid ring");
    let mut readers = readers.into_iter();
    let (mut live_a, mut live_b) = (readers.next().unwrap(), readers.next().unwrap());
    let mut stalled = readers.next().unwrap();
    let stop = Stop::new();
    let writer_done = AtomicBool::new(false);
    let release_stalled = Barrier::new(2);
    std::thread::scope(|scope| {
        let a = scope
            .spawn(|| read_exactly_in_order(&mut live_a, 1, values, 16, &SHARED_CORE_WAIT, &stop));
        let b = scope
            .spawn(|| read_exactly_in_order(&mut live_b, 1, values, 64, &SHARED_CORE_WAIT, &stop));
        // The stalled replica: reads nothing until the writer has finished,
        // which without the fence would be never.
        let stalled_thread = scope.spawn(|| {
            release_stalled.wait();
            stalled.try_read()
        });
        // The egress role: watches the stalled reader's lag and fences it
        // once it holds the writer back (its lag reaches the ring's size).
        let monitor = scope.spawn(|| {
            let waited = SHARED_CORE_WAIT
                .wait_until(|| ring.lag(2) == Some(CAPACITY as u64), || stop.give_up());
            if !waited {
                return stop.fail("stalled reader's lag never reached the ring size".into());
            }
            // Gated: however long we look, the writer cannot pass one ring
            // beyond the stalled reader.
            std::thread::sleep(Duration::from_millis(20));
            let cursor = ring.cursor();
            if cursor != CAPACITY as u64 {
                return stop.fail(format!("writer passed the stalled reader: {cursor}"));
            }
            assert!(ring.fence(2), "reader was live");
            Ok(())
        });
        for value in 1..=values {
            if writer
                .publish_blocking(value, &SHARED_CORE_WAIT, || stop.give_up())
                .is_err()
            {
                stop.fail::<()>(format!("writer gave up at {value}")).ok();
                break;
            }
        }
        writer_done.store(true, Ordering::Release);
        release_stalled.wait();
        monitor.join().unwrap().unwrap();
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
        assert_eq!(stalled_thread.join().unwrap(), Err(Fenced));
    });
    assert!(writer_done.load(Ordering::Acquire));
    assert_eq!(ring.cursor(), values);
    assert_eq!(ring.reader_status(2), ReaderStatus::Fenced);
    assert_eq!(ring.lag(2), None);
}

/// The rejoining reader of `rejoined_reader_receives_a_gapless_suffix`: it
/// reads, notices fences, "replays the journal" (values are `position + 1`,
/// journaled before they are published) and rejoins, alternately at the
/// cursor and at the position it names, until it has seen every value.
/// Returns how many times it rejoined.
fn rejoining_reader(
    reader: &mut BroadcastReader<u64>,
    values: u64,
    journaled: &AtomicU64,
    stop: &Stop,
) -> Result<u64, String> {
    let mut buffer = [0u64; 32];
    let mut expected = 1u64;
    let mut rejoins = 0u64;
    while expected <= values {
        match reader.read_blocking(&mut buffer, &SHARED_CORE_WAIT, || stop.give_up()) {
            Ok(count) => {
                for &value in &buffer[..count] {
                    if value != expected {
                        return stop.fail(format!("rejoiner expected {expected}, got {value}"));
                    }
                    expected += 1;
                }
            }
            Err(ReadError::GaveUp) => return stop.fail(format!("rejoiner gave up at {expected}")),
            Err(ReadError::Fenced) => {
                if reader.position() != expected - 1 {
                    return stop.fail(format!(
                        "fenced reader at {} but needs {}",
                        reader.position(),
                        expected - 1
                    ));
                }
                // Catch up from the journal, then rejoin. The journal holds
                // at least every published position.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    if attempts > 1000 || stop.give_up() {
                        return stop.fail("rejoin never succeeded".into());
                    }
                    // Even rejoins go to the cursor, odd ones name a position.
                    let at_cursor = rejoins & 1 == 0;
                    let attempt = if at_cursor {
                        reader.rejoin_at_cursor()
                    } else {
                        reader.rejoin_at(expected - 1)
                    };
                    match attempt {
                        Ok(position) => {
                            // Replay [expected - 1, position) from the journal.
                            if journaled.load(Ordering::Acquire) < position {
                                return stop.fail("rejoined beyond the journal".into());
                            }
                            expected = position + 1;
                            rejoins += 1;
                            break;
                        }
                        Err(RejoinError::Overwritten { oldest_accepted }) => {
                            // Replay further from the journal and name that.
                            if !at_cursor {
                                expected = expected.max(oldest_accepted + 1);
                            }
                        }
                        Err(RejoinError::Contended) => continue,
                        Err(error) => return stop.fail(format!("rejoin failed: {error}")),
                    }
                }
            }
        }
    }
    Ok(rejoins)
}

#[test]
fn rejoined_reader_receives_a_gapless_suffix() {
    // Reader 2 is fenced at random moments (often in the middle of a copy)
    // and rejoins each time; every value it gets, from the ring or the
    // journal, must be the next one. Readers 0 and 1 must be undisturbed.
    let values = scaled(2_000_000);
    let BroadcastParts {
        ring,
        mut writer,
        readers,
    } = BroadcastRing::<u64>::new(64, 3).expect("valid ring");
    let mut readers = readers.into_iter();
    let (mut live_a, mut live_b, mut rejoiner) = (
        readers.next().unwrap(),
        readers.next().unwrap(),
        readers.next().unwrap(),
    );
    let journaled = AtomicU64::new(0);
    let writer_done = AtomicBool::new(false);
    let stop = Stop::new();
    let (rejoins, fences) = std::thread::scope(|scope| {
        let a = scope
            .spawn(|| read_exactly_in_order(&mut live_a, 1, values, 8, &SHARED_CORE_WAIT, &stop));
        let b = scope
            .spawn(|| read_exactly_in_order(&mut live_b, 1, values, 64, &SHARED_CORE_WAIT, &stop));
        let r = scope.spawn(|| rejoining_reader(&mut rejoiner, values, &journaled, &stop));
        let fencer = scope.spawn(|| {
            let mut fences = 0u64;
            let mut round = 0u64;
            while !writer_done.load(Ordering::Acquire) && !stop.give_up() {
                // Irregular intervals: a few hundred microseconds.
                std::thread::sleep(Duration::from_micros(100 + (round * 37) % 400));
                round += 1;
                if ring.fence(2) {
                    fences += 1;
                }
            }
            fences
        });
        for value in 1..=values {
            // Journal before publishing, as the sequencer does.
            journaled.store(value, Ordering::Release);
            if writer
                .publish_blocking(value, &SHARED_CORE_WAIT, || stop.give_up())
                .is_err()
            {
                stop.fail::<()>(format!("writer gave up at {value}")).ok();
                break;
            }
        }
        writer_done.store(true, Ordering::Release);
        let fences = fencer.join().unwrap();
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
        (r.join().unwrap().unwrap(), fences)
    });
    eprintln!("rejoiner: {fences} fences, {rejoins} rejoins over {values} values");
    assert!(fences > 0 && rejoins > 0, "the fence/rejoin path never ran");
}

#[test]
fn non_power_of_two_capacity_is_refused() {
    for capacity in [0usize, 1, 3, 6, 63, 65, 100, 1000] {
        assert_eq!(
            BroadcastRing::<u64>::new(capacity, 3)
                .err()
                .map(|e| e.to_string()),
            Some(RingError::CapacityNotPowerOfTwo { capacity }.to_string())
        );
        assert_eq!(
            OutputRing::new::<u64>(capacity).err(),
            Some(RingError::CapacityNotPowerOfTwo { capacity })
        );
    }
    for capacity in [2usize, 64, 1 << 16] {
        assert!(BroadcastRing::<u64>::new(capacity, 3).is_ok());
        assert!(OutputRing::new::<u64>(capacity).is_ok());
    }
    assert!(matches!(
        BroadcastRing::<u64>::new(64, 0),
        Err(RingError::NoReaders)
    ));
}

#[test]
fn full_rings_reject_cleanly() {
    // Broadcast: a full ring refuses without publishing anything, and the
    // readers then see exactly the values that fitted.
    let BroadcastParts {
        ring,
        mut writer,
        mut readers,
    } = BroadcastRing::<u64>::new(8, 2).expect("valid ring");
    for value in 1..=8 {
        writer.try_publish(value).unwrap();
    }
    assert_eq!(writer.try_publish(9), Err(Full));
    assert_eq!(writer.try_publish_batch(&[9, 10]), 0);
    let gave_up = writer.publish_blocking(9, &WaitStrategy::Yield, || true);
    assert!(gave_up.is_err());
    assert_eq!(ring.cursor(), 8);
    assert_eq!(ring.lag(0), Some(8));
    for reader in &mut readers {
        let mut out = [0u64; 16];
        assert_eq!(reader.poll(&mut out), Ok(8));
        assert_eq!(out[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(reader.poll(&mut out), Ok(0));
    }
    writer.try_publish(9).unwrap();

    // Output ring: a full ring hands the value back, keeps what it holds.
    let (mut producer, mut consumer) = OutputRing::new::<u64>(8).unwrap();
    for value in 1..=8 {
        producer.try_push(value).unwrap();
    }
    assert_eq!(producer.try_push(9), Err(OutputFull(9)));
    assert_eq!(producer.len(), 8);
    let mut out = [0u64; 16];
    assert_eq!(consumer.pop_batch(&mut out), 8);
    assert_eq!(out[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(consumer.try_pop(), None);
}

#[test]
fn spsc_output_ring_passes_10m_values_in_order() {
    let values = scaled(10_000_000);
    let (mut producer, mut consumer) = OutputRing::new::<u64>(64).unwrap();
    let stop = Stop::new();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let consumer_thread = scope.spawn(|| {
            let mut buffer = [0u64; 32];
            let mut expected = 1u64;
            let mut round = 0u64;
            let mut single = false;
            while expected <= values {
                // Alternate single pops and batches, to run both paths.
                single = !single;
                let got = if single {
                    consumer.try_pop().map(|value| {
                        buffer[0] = value;
                        1
                    })
                } else {
                    Some(consumer.pop_batch(&mut buffer)).filter(|&count| count > 0)
                };
                match got {
                    Some(count) => {
                        round = 0;
                        for &value in &buffer[..count] {
                            if value != expected {
                                return stop.fail(format!("expected {expected}, got {value}"));
                            }
                            expected += 1;
                        }
                    }
                    None => {
                        if stop.give_up() {
                            return stop.fail(format!("consumer gave up at {expected}"));
                        }
                        SHARED_CORE_WAIT.idle(round);
                        round += 1;
                    }
                }
            }
            Ok(())
        });
        let mut value = 1u64;
        let mut round = 0u64;
        while value <= values {
            match producer.try_push(value) {
                Ok(()) => {
                    value += 1;
                    round = 0;
                }
                Err(OutputFull(back)) => {
                    assert_eq!(back, value);
                    if stop.give_up() {
                        break;
                    }
                    SHARED_CORE_WAIT.idle(round);
                    round += 1;
                }
            }
        }
        consumer_thread.join().unwrap().unwrap();
        assert_eq!(value, values + 1, "producer gave up");
    });
    eprintln!("spsc ring 64, {values} values: {:?}", started.elapsed());
}

#[test]
fn ping_pong_probe_measures_every_round_trip_with_ordered_percentiles() {
    let round_trips = scaled(100_000);
    let result = cache_line_ping_pong(Some(0), Some(1), round_trips);
    eprintln!("{result:?}");
    assert!(!result.aborted);
    assert_eq!(result.round_trips, round_trips);
    assert!(result.min_ns <= result.p50_ns);
    assert!(result.p50_ns <= result.p90_ns && result.p90_ns <= result.p99_ns);
    assert!(result.p99_ns <= result.p999_ns && result.p999_ns <= result.max_ns);
    assert!(result.min_ns > 0);
    // Cores that do not exist are skipped, not an error.
    let unpinned = cache_line_ping_pong(Some(usize::MAX), None, 1_000);
    assert_eq!((unpinned.core_a, unpinned.core_b), (None, None));
    assert_eq!(unpinned.round_trips, 1_000);
}
