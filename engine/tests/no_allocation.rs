//! Proves the engine's "no allocation after start-up" contract: a counting
//! global allocator watches a million commands of every kind (after a
//! warm-up) and must see zero allocations, reallocations or frees.

mod common;

use lockstep_engine::{CancelReason, Engine, Event, RejectReason};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts calls while counting is switched on.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const WARM_UP_COMMANDS: usize = 200_000;
const MEASURED_COMMANDS: usize = 1_000_000;

#[test]
fn a_million_commands_after_warm_up_allocate_nothing() {
    let commands = common::CommandSource::commands_of_every_kind(
        7,
        WARM_UP_COMMANDS + MEASURED_COMMANDS,
        50_000,
    );
    let mut engine = Engine::new(common::config(1 << 16, 1 << 14)).expect("valid config");
    // The seven event kinds, then cancels by a disconnect and partial
    // cancels, which the commands added to the basic flow bring.
    let mut counts = [0u64; 9];
    let mut sink = |event: &Event| {
        let kind = match event {
            Event::Accepted { .. } => 0,
            Event::Rejected { .. } => 1,
            Event::Fill { .. } => 2,
            Event::Canceled {
                reason: CancelReason::SessionDisconnected,
                ..
            } => 7,
            Event::Canceled { .. } => 3,
            Event::Replaced { .. } => 4,
            Event::InstrumentStatus { .. } => 5,
            Event::SelfTradePreventionSet { .. } => 6,
        };
        counts[kind] += 1;
        if let Event::Rejected {
            reason: RejectReason::CancelWouldNotReduce,
            ..
        } = event
        {
            counts[8] += 1;
        }
    };
    for command in &commands[..WARM_UP_COMMANDS] {
        engine.apply(command, &mut sink);
    }
    COUNTING.store(true, Ordering::SeqCst);
    for command in &commands[WARM_UP_COMMANDS..] {
        engine.apply(command, &mut sink);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    // Show that the counter is live: one deliberate allocation must register.
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(Vec::<u64>::with_capacity(16));
    COUNTING.store(false, Ordering::SeqCst);
    drop(probe);
    assert!(
        ALLOCATIONS.load(Ordering::SeqCst) > allocations,
        "the counting allocator missed an allocation"
    );
    // The flow must really have exercised the engine, or zero proves nothing.
    assert!(
        counts.iter().all(|&count| count > 1_000),
        "every event kind, cancels by disconnect and refused partial cancels must occur often: {counts:?}"
    );
    assert_eq!(
        allocations, 0,
        "the engine allocated {allocations} times in {MEASURED_COMMANDS} commands"
    );
}
