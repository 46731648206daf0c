//! Ring benchmarks: broadcast throughput (one writer, one or three readers),
//! SPSC output-ring throughput, the round trip of one value through the
//! broadcast ring and back through an output ring (the hop that a command
//! and its output make between the sequencer and a replica), and the
//! cache-line ping-pong that is the floor under that hop.
//!
//! Run with `cargo bench -p lockstep-sequencer --bench ring`. Throughput runs
//! wait with `Yield`, so they mean something on a two-core machine; the
//! latency runs busy-spin on two threads pinned to cores 0 and 1.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lockstep_sequencer::broadcast_ring::{BroadcastParts, BroadcastRing};
use lockstep_sequencer::core_probe::cache_line_ping_pong;
use lockstep_sequencer::output_ring::{OutputFull, OutputRing};
use lockstep_sequencer::wait_strategy::WaitStrategy;

/// Longest any benchmark thread waits for its peer before the run is
/// declared broken (so a bug can never hang `cargo bench`).
const STALL_LIMIT: Duration = Duration::from_secs(30);

fn pin(core: usize) {
    if let Some(id) =
        core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|id| id.id == core))
    {
        core_affinity::set_for_current(id);
    }
}

/// Publishes `values` values to `readers` readers; returns the time until
/// every reader has consumed all of them.
fn broadcast_run(capacity: usize, readers: usize, values: u64) -> Duration {
    let BroadcastParts {
        ring: _,
        mut writer,
        readers: handles,
    } = BroadcastRing::<u64>::new(capacity, readers).expect("valid ring");
    let wait = WaitStrategy::Yield;
    let deadline = Instant::now() + STALL_LIMIT;
    let give_up = || Instant::now() >= deadline;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mut reader in handles {
            scope.spawn(move || {
                let mut buffer = [0u64; 256];
                let mut seen = 0u64;
                while seen < values {
                    let count = reader
                        .read_blocking(&mut buffer, &wait, give_up)
                        .expect("reader stalled");
                    black_box(&buffer[..count]);
                    seen += count as u64;
                }
            });
        }
        for value in 0..values {
            writer
                .publish_blocking(value, &wait, give_up)
                .expect("writer stalled");
        }
    });
    started.elapsed()
}

/// Pushes `values` values through an SPSC output ring; returns the time
/// until the consumer has popped all of them.
fn spsc_run(capacity: usize, values: u64) -> Duration {
    let (mut producer, mut consumer) = OutputRing::new::<u64>(capacity).expect("valid ring");
    let deadline = Instant::now() + STALL_LIMIT;
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut buffer = [0u64; 256];
            let mut seen = 0u64;
            while seen < values {
                let count = consumer.pop_batch(&mut buffer);
                if count == 0 {
                    assert!(Instant::now() < deadline, "consumer stalled");
                    std::thread::yield_now();
                }
                black_box(&buffer[..count]);
                seen += count as u64;
            }
        });
        let mut value = 0;
        while value < values {
            match producer.try_push(value) {
                Ok(()) => value += 1,
                Err(OutputFull(_)) => {
                    assert!(Instant::now() < deadline, "producer stalled");
                    std::thread::yield_now();
                }
            }
        }
    });
    started.elapsed()
}

/// Spins until `poll` yields a value, checking the deadline only every 4096
/// spins so the clock read stays out of the measured latency.
#[inline]
fn spin_until<T>(deadline: Instant, mut poll: impl FnMut() -> Option<T>) -> T {
    let mut spins: u32 = 0;
    loop {
        if let Some(value) = poll() {
            return value;
        }
        spins = spins.wrapping_add(1);
        if spins & 4095 == 0 {
            assert!(Instant::now() < deadline, "peer stalled");
        }
        std::hint::spin_loop();
    }
}

/// `round_trips` times: publish one value on a broadcast ring, a pinned echo
/// thread reads it and pushes it to an output ring, the publisher pops it.
/// Both sides busy-spin. Returns the total time; if `samples_ns` is given,
/// also pushes each round trip's time into it (one `Instant::now()` per round
/// trip, the same method as the ping-pong probe).
fn ring_round_trip_run(round_trips: u64, mut samples_ns: Option<&mut Vec<u64>>) -> Duration {
    let BroadcastParts {
        ring: _,
        mut writer,
        mut readers,
    } = BroadcastRing::<u64>::new(1024, 1).expect("valid ring");
    let mut reader = readers.pop().expect("one reader");
    let (mut producer, mut consumer) = OutputRing::new::<u64>(1024).expect("valid ring");
    let deadline = Instant::now() + STALL_LIMIT;
    // Both sides run on threads of their own: pinning the calling thread
    // would narrow the affinity mask that every later benchmark's threads
    // inherit.
    std::thread::scope(|scope| {
        scope.spawn(move || {
            pin(1);
            for _ in 0..round_trips {
                let value = spin_until(deadline, || reader.try_read().expect("not fenced"));
                producer.try_push(value).expect("output ring has room");
            }
        });
        let publisher = scope.spawn(move || {
            pin(0);
            let started = Instant::now();
            let mut previous = started;
            for value in 0..round_trips {
                writer.try_publish(value).expect("ring has room");
                let echoed = spin_until(deadline, || consumer.try_pop());
                debug_assert_eq!(echoed, value);
                if let Some(samples) = samples_ns.as_deref_mut() {
                    let now = Instant::now();
                    samples.push(now.duration_since(previous).as_nanos() as u64);
                    previous = now;
                }
            }
            started.elapsed()
        });
        publisher.join().expect("publisher panicked")
    })
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast_ring");
    group.throughput(Throughput::Elements(1));
    for readers in [1usize, 3] {
        group.bench_function(format!("1_writer_{readers}_readers_ring_1024_yield"), |b| {
            b.iter_custom(|iters| broadcast_run(1024, readers, iters))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("output_ring");
    group.throughput(Throughput::Elements(1));
    group.bench_function("spsc_ring_1024_yield", |b| {
        b.iter_custom(|iters| spsc_run(1024, iters))
    });
    group.finish();

    let mut group = c.benchmark_group("latency");
    group.bench_function("ring_round_trip_busy_spin_cores_0_1", |b| {
        b.iter_custom(|iters| ring_round_trip_run(iters, None))
    });
    group.finish();

    // Distributions, which criterion's mean hides, measured the same way for
    // the ring hop and for the bare cache-line ping-pong beneath it.
    const ROUND_TRIPS: u64 = 1_000_000;
    let mut samples_ns = Vec::with_capacity(ROUND_TRIPS as usize);
    ring_round_trip_run(ROUND_TRIPS, Some(&mut samples_ns));
    samples_ns.sort_unstable();
    let at = |per_mille: usize| samples_ns[(samples_ns.len() - 1) * per_mille / 1000];
    println!(
        "ring_round_trip (broadcast ring out, output ring back) cores 0/1, {ROUND_TRIPS} round trips: \
         min {} ns, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        samples_ns[0],
        at(500),
        at(900),
        at(990),
        at(999),
        samples_ns[samples_ns.len() - 1]
    );
    let probe = cache_line_ping_pong(Some(0), Some(1), ROUND_TRIPS);
    println!(
        "cache_line_ping_pong cores 0/1 (pinned {:?}/{:?}), {} round trips: \
         min {} ns, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns \
         (each figure above includes one Instant::now, {} ns)",
        probe.core_a,
        probe.core_b,
        probe.round_trips,
        probe.min_ns,
        probe.p50_ns,
        probe.p90_ns,
        probe.p99_ns,
        probe.p999_ns,
        probe.max_ns,
        probe.timer_overhead_ns
    );
}

criterion_group! {
    name = ring;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(ring);
