//! `lockstep-sim`: deterministic simulation testing of Lockstep's replicated
//! core, in the style of TigerBeetle's VOPR and FoundationDB's simulator.
//!
//! One seed names one run. The run builds the real system (the sequencer,
//! replicas running the real engine, egress, the journal with its real
//! record format and recovery) through `system::build`, on simulated
//! storage and a simulated clock, and drives every agent's `do_work` from a
//! single thread in an order a seeded generator picks. Nothing reads the
//! machine's clock or disk, so a seed replays exactly, down to the trace
//! hash. Faults are injected at every layer: replicas panic, stall, slow
//! down and diverge; the process crashes between steps, mid-write and
//! between a write and its sync; the disk tears, flips bits, loses pages,
//! runs full, writes short and fails syncs; the wall clock jumps and drifts;
//! clients send duplicates and commands for sessions and orders that do not
//! exist. In most seeds the order traffic comes from SoupBinTCP/OUCH clients
//! through the real `GatewayCore`, rebuilt from the journal at every start,
//! and the clients misbehave at the session level too: they drop and
//! reconnect asking for old, new, no or impossible message numbers, send
//! messages twice, send garbage, cut frames, stop reading, fall silent and
//! vanish. After every step the system is checked against a single engine
//! replaying the journal, and what each client was sent against what it was
//! sent before and what the journal rebuilds (see `simulator.rs` for the
//! list of checks).
//!
//! [`run_seed`] runs one seed; [`run_seeds`] a range, on several threads
//! (each seed stays on one). `lockstep sim` is the command line.

pub mod client;
pub mod clock;
pub mod disk;
pub mod gateway_clients;
pub mod model;
pub mod ouch_traffic;
pub mod plan;
pub mod report;
pub mod rng;
pub mod sim_gateway;
pub mod simulator;

pub use report::{FaultCounts, GatewayCounts, SimReport};
pub use simulator::run_seed;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// The number of active steps a seed runs unless told otherwise.
pub const DEFAULT_STEPS: u64 = 3_000;

/// Runs every seed of `seeds` for `steps` steps each, on `jobs` threads.
/// Reports come back in seed order. `on_report` sees each as it finishes
/// (for progress), in no particular order.
pub fn run_seeds(
    seeds: Range<u64>,
    steps: u64,
    jobs: usize,
    on_report: &(dyn Fn(&SimReport) + Sync),
) -> Vec<SimReport> {
    let next = AtomicU64::new(seeds.start);
    let reports = Mutex::new(Vec::with_capacity(
        usize::try_from(seeds.end.saturating_sub(seeds.start)).unwrap_or(0),
    ));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let report = run_seed(seed, steps);
                on_report(&report);
                reports
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(report);
            });
        }
    });
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reports.sort_by_key(|report| report.seed);
    reports
}

/// Installs (once per process) a panic hook that keeps quiet about the
/// panics the simulator causes on purpose: a replica's injected panic and a
/// simulated process crash inside a disk operation. Every other panic is
/// reported by the hook that was installed before.
pub fn quiet_injected_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            if payload.is::<disk::SimCrash>() {
                return;
            }
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if message.contains("injected panic") {
                return;
            }
            previous(info);
        }));
    });
}
