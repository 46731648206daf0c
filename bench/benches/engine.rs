//! Criterion benchmarks of the engine on both synthetic mixes, and of the
//! `matchcore` crate on the same exchange-core flow in the same run. Each
//! iteration replays a whole pregenerated flow through a freshly built book
//! (construction is outside the timed part), so the time per iteration
//! divided by the flow's length is the time per command.
//!
//! Run: `cargo bench -p lockstep-bench --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lockstep_bench::matchcore_compare::translate;
use lockstep_bench::{engine_config_for, generate_commands, Mix};
use lockstep_engine::{Engine, Event};
use std::hint::black_box;

const FLOW_COMMANDS: usize = 1_000_000;
const SEED: u64 = 1;
const CAPACITY: u32 = 1 << 16;

fn engine_mixes(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("engine");
    group.sample_size(20);
    group.throughput(Throughput::Elements(FLOW_COMMANDS as u64));
    for mix in Mix::ALL {
        let flow = generate_commands(mix, SEED, FLOW_COMMANDS);
        let config = engine_config_for(mix.instrument_count(), CAPACITY);
        group.bench_function(format!("lockstep/{}", mix.name()), |bencher| {
            bencher.iter_batched_ref(
                || Engine::new(config.clone()).expect("valid config"),
                |engine| {
                    let mut events = 0u64;
                    for command in &flow {
                        engine.apply(black_box(command), &mut |event: &Event| {
                            events += 1;
                            black_box(event);
                        });
                    }
                    black_box(events)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let flow = generate_commands(Mix::ExchangeCore, SEED, FLOW_COMMANDS);
    let translated = translate(&flow);
    group.bench_function("matchcore/exchange-core", |bencher| {
        bencher.iter_batched_ref(
            || matchcore::OrderBook::new("BENCH"),
            |book| {
                for command in translated.commands() {
                    black_box(book.execute(black_box(command)));
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, engine_mixes);
criterion_main!(benches);
