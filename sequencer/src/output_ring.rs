//! The output ring owns the hand-off of one replica's output records to the
//! egress thread: a bounded single-producer, single-consumer ring of
//! preallocated slots. Its capacity is fixed at construction (a power of
//! two); a full ring is a clean `Err` that hands the value back, never
//! growth, so a replica's memory stays bounded however far egress falls
//! behind. No locks and no allocation after construction; the `unsafe` slot
//! accesses are confined to this module.
//!
//! The producer owns `tail` (next position to fill) and the consumer owns
//! `head` (next position to take); each is a cache-padded [`Sequence`], each
//! stored with `Release` by its owner and loaded with `Acquire` by the other
//! side. Each side also keeps a private copy of the other's counter and
//! reloads it only when that copy says the ring is full (producer) or empty
//! (consumer), so in steady state a push or pop touches no shared line but
//! its own.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::broadcast_ring::{checked_capacity, RingError};
use crate::sequence::Sequence;

/// The ring was full; the value is handed back untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFull<T>(pub T);

impl<T> fmt::Display for OutputFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output ring full")
    }
}

impl<T: fmt::Debug> std::error::Error for OutputFull<T> {}

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: u64,
    capacity: u64,
    /// Next position the consumer takes. Stored only by the consumer.
    head: Sequence,
    /// Next position the producer fills. Stored only by the producer.
    tail: Sequence,
}

// SAFETY: `Shared` is `!Sync` only because of the slots' `UnsafeCell`s. The
// producer writes only slots of positions in `tail..head + capacity`, which
// the consumer has released (its `Release` store of `head` follows its reads,
// our `Acquire` load of it precedes the write); the consumer reads only slots
// of positions in `head..tail`, which the producer has published the same
// way. The two ranges never overlap, so no slot is accessed by both at once,
// and values of `T: Send` may cross threads.
unsafe impl<T: Copy + Send> Sync for Shared<T> {}

/// Builds SPSC output rings.
pub struct OutputRing;

impl OutputRing {
    /// A ring of `capacity` slots (a power of two, at least 2), split into
    /// its two ends. All allocation happens here.
    #[expect(
        clippy::new_ret_no_self,
        reason = "the ring exists only as its two ends, so that each has exactly one owner"
    )]
    pub fn new<T: Copy + Send>(
        capacity: usize,
    ) -> Result<(OutputProducer<T>, OutputConsumer<T>), RingError> {
        let capacity_u64 = checked_capacity(capacity)?;
        let shared = Arc::new(Shared {
            slots: (0..capacity)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            mask: capacity_u64 - 1,
            capacity: capacity_u64,
            head: Sequence::new(0),
            tail: Sequence::new(0),
        });
        Ok((
            OutputProducer {
                shared: Arc::clone(&shared),
                tail: 0,
                head_seen: 0,
            },
            OutputConsumer {
                shared,
                head: 0,
                tail_seen: 0,
            },
        ))
    }
}

/// The producing end (a replica). `Send`, not `Clone`.
pub struct OutputProducer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to fill; equal to the shared `tail`.
    tail: u64,
    /// The consumer's `head` when last loaded.
    head_seen: u64,
}

impl<T: Copy + Send> OutputProducer<T> {
    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Pushes `value`, or hands it back if the ring is full.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), OutputFull<T>> {
        if self.tail - self.head_seen >= self.shared.capacity {
            self.head_seen = self.shared.head.get();
            if self.tail - self.head_seen >= self.shared.capacity {
                return Err(OutputFull(value));
            }
        }
        let slot = &self.shared.slots[(self.tail & self.shared.mask) as usize];
        // SAFETY: `tail - head_seen < capacity`, so the slot's previous
        // occupant (position `tail - capacity`) is below the consumer's head,
        // which we loaded with `Acquire` after it stored it with `Release`
        // following its read: the consumer is done with this slot. It will
        // not read `tail` before our `Release` store below. We are the only
        // producer.
        unsafe { (*slot.get()).write(value) };
        self.tail += 1;
        self.shared.tail.set(self.tail);
        Ok(())
    }

    /// Values pushed and not yet popped, as seen from this end (may
    /// overstate it while the consumer is popping).
    pub fn len(&self) -> usize {
        (self.tail - self.shared.head.get()) as usize
    }

    /// Whether the consumer has popped everything pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The consuming end (egress). `Send`, not `Clone`.
pub struct OutputConsumer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to take; equal to the shared `head`.
    head: u64,
    /// The producer's `tail` when last loaded.
    tail_seen: u64,
}

impl<T: Copy + Send> OutputConsumer<T> {
    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// How many values are ready, reloading the producer's counter (a likely
    /// cache miss) only if the cached one shows fewer than `wanted`.
    #[inline]
    fn ready(&mut self, wanted: u64) -> u64 {
        if self.tail_seen - self.head < wanted {
            self.tail_seen = self.shared.tail.get();
        }
        self.tail_seen - self.head
    }

    /// Pops the oldest value, if any.
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        if self.ready(1) == 0 {
            return None;
        }
        // SAFETY: see `read_at`; `head < tail_seen`.
        let value = unsafe { self.read_at(self.head) };
        self.head += 1;
        self.shared.head.set(self.head);
        Some(value)
    }

    /// Pops up to `out.len()` values into `out`, oldest first, releasing
    /// their slots with one counter store. Returns how many.
    pub fn pop_batch(&mut self, out: &mut [T]) -> usize {
        let ready = self.ready(out.len() as u64);
        let count = usize::try_from(ready).unwrap_or(usize::MAX).min(out.len());
        for (offset, place) in out[..count].iter_mut().enumerate() {
            // SAFETY: see `read_at`; `head + offset < tail_seen`.
            *place = unsafe { self.read_at(self.head + offset as u64) };
        }
        if count > 0 {
            self.head += count as u64;
            self.shared.head.set(self.head);
        }
        count
    }

    /// Values pushed and not yet popped, as seen from this end (may
    /// understate it while the producer is pushing).
    pub fn len(&self) -> usize {
        (self.shared.tail.get() - self.head) as usize
    }

    /// Whether nothing is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the value at `position` out of its slot.
    ///
    /// # Safety
    ///
    /// `position` must be at least `self.head` and below a `tail` value this
    /// consumer loaded from the shared counter (`tail_seen`).
    #[inline]
    unsafe fn read_at(&self, position: u64) -> T {
        debug_assert!(self.head <= position && position < self.tail_seen);
        let slot = &self.shared.slots[(position & self.shared.mask) as usize];
        // SAFETY: the caller guarantees `position < tail_seen`, a value the
        // producer stored with `Release` after writing this slot and we
        // loaded with `Acquire`, so the slot is initialised and the write is
        // visible. The producer will not overwrite it before our `head`
        // passes `position`, which we store only after this read.
        unsafe { (*slot.get()).assume_init() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_hands_the_value_back_and_recovers_after_a_pop() {
        let (mut producer, mut consumer) = OutputRing::new::<u32>(4).unwrap();
        for v in 0..4 {
            producer.try_push(v).unwrap();
        }
        assert_eq!(producer.try_push(9), Err(OutputFull(9)));
        assert_eq!(consumer.try_pop(), Some(0));
        producer.try_push(4).unwrap();
        let mut out = [0; 8];
        assert_eq!(consumer.pop_batch(&mut out), 4);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(consumer.try_pop(), None);
        assert!(producer.is_empty());
    }

    #[test]
    fn capacity_must_be_a_power_of_two_of_at_least_two() {
        for bad in [0, 1, 3, 6, 100] {
            assert_eq!(
                OutputRing::new::<u8>(bad).err(),
                Some(RingError::CapacityNotPowerOfTwo { capacity: bad })
            );
        }
        assert!(OutputRing::new::<u8>(2).is_ok());
    }
}
