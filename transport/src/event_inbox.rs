//! `EventInbox`: the bounded hand-off from the egress thread, which publishes
//! each event once it is durable, to the gateway thread, which turns events
//! into OUCH messages. A lock-free bounded queue carries the events; a
//! `parked` flag lets the gateway sleep in its poll and be woken only when it
//! asked to be, so the egress pays for a wake-up syscall only when the
//! gateway is actually asleep. When the queue is full the egress waits: the
//! gateway never blocks on a client, so a full queue only means the gateway
//! thread is momentarily descheduled.

use crossbeam_queue::ArrayQueue;
use lockstep_engine::Event;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// One published event with its seq and the sequencer's stamped time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedEvent {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub event: Event,
}

/// Wakes the gateway's event loop (a mio `Waker` or an eventfd).
pub type WakeFn = Box<dyn Fn() + Send + Sync>;

/// The queue between egress and gateway.
pub struct EventInbox {
    queue: ArrayQueue<PublishedEvent>,
    parked: AtomicBool,
    waker: OnceLock<WakeFn>,
    /// Times the egress found the queue full and had to wait.
    full_waits: AtomicU64,
}

impl EventInbox {
    pub fn new(capacity: usize) -> EventInbox {
        EventInbox {
            queue: ArrayQueue::new(capacity),
            parked: AtomicBool::new(false),
            waker: OnceLock::new(),
            full_waits: AtomicU64::new(0),
        }
    }

    /// Installs the gateway's wake-up; only the first call takes effect.
    pub fn set_waker(&self, waker: WakeFn) {
        let _ = self.waker.set(waker);
    }

    /// Hands one event over, waiting while the queue is full, and wakes the
    /// gateway if it is parked. `stopping` ends the wait when the gateway has
    /// gone away, so a shutdown can never hang the egress; the event is then
    /// dropped, which is safe because it is durable in the journal and is
    /// rebuilt from there at the next start.
    pub fn push(&self, mut event: PublishedEvent, stopping: &AtomicBool) {
        loop {
            match self.queue.push(event) {
                Ok(()) => break,
                Err(returned) => {
                    event = returned;
                    self.full_waits.fetch_add(1, Ordering::Relaxed);
                    self.wake();
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::yield_now();
                }
            }
        }
        // Dekker-style hand-shake with `park`: each side writes its own
        // flag (here: the queue), fences, then reads the other's, so at
        // least one of them sees the other and no wake-up is lost.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        if self.parked.swap(false, Ordering::AcqRel) {
            if let Some(waker) = self.waker.get() {
                waker();
            }
        }
    }

    pub fn pop(&self) -> Option<PublishedEvent> {
        self.queue.pop()
    }

    /// Call before sleeping in poll; returns false if events arrived in the
    /// meantime (the caller must then not sleep).
    pub fn park(&self) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.queue.is_empty() {
            true
        } else {
            self.parked.store(false, Ordering::SeqCst);
            false
        }
    }

    /// Call after waking.
    pub fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    pub fn full_waits(&self) -> u64 {
        self.full_waits.load(Ordering::Relaxed)
    }
}
