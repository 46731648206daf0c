//! `Sequence` owns one shared 64-bit counter on its own cache line: the
//! writer's cursor of a ring, or one reader's position in it. Keeping every
//! such counter on a line of its own stops two threads that write different
//! counters from invalidating each other's cache line (false sharing), which
//! on a Disruptor-style ring would otherwise cost a cross-core miss on every
//! publish.
//!
//! # Memory ordering
//!
//! A counter is the only thing that tells another thread which slots of a
//! ring it may touch, so every counter store is a *publication* and every
//! counter load an *acquisition*:
//!
//! - [`Sequence::set`] is a `Release` store: every write this thread made
//!   before it (the slot contents a writer filled, or the slot reads a reader
//!   finished) happens-before anything a thread does after it observes the new
//!   value with [`Sequence::get`].
//! - [`Sequence::get`] is an `Acquire` load, the other half of that pair.
//! - [`Sequence::get_relaxed`] is for a thread re-reading a counter only it
//!   writes, where no other memory depends on the value.
//! - The `seq_cst` methods exist for the one place where acquire/release is
//!   not enough: the store-then-load handshake (Dekker style) between a ring's
//!   writer claiming room and a fenced reader rejoining. Acquire/release
//!   orders a store before later operations only for a thread that reads the
//!   stored value; the handshake needs the stronger guarantee that of two
//!   threads which each store and then load the other's counter, at least
//!   one sees the other's store. Only `SeqCst` on all four operations gives
//!   that. See `broadcast_ring` for the protocol.
//! - The read-modify-write methods (`compare_exchange_*`, `fetch_or_*`) let a
//!   counter carry flag bits that two threads change, which a plain
//!   load-then-store would lose.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// A cache-padded `AtomicU64` counter with publication (`Release`) stores and
/// acquisition (`Acquire`) loads. See the module documentation for why each
/// ordering is what it is.
#[derive(Debug, Default)]
pub struct Sequence {
    value: CachePadded<AtomicU64>,
}

impl Sequence {
    /// A counter starting at `initial`.
    pub fn new(initial: u64) -> Self {
        Self {
            value: CachePadded::new(AtomicU64::new(initial)),
        }
    }

    /// Reads the counter with `Acquire`: whatever the thread that stored this
    /// value wrote before its `set` is visible after this returns.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// Stores the counter with `Release`: everything this thread wrote before
    /// the call is visible to a thread that reads the new value with `get`.
    #[inline]
    pub fn set(&self, value: u64) {
        self.value.store(value, Ordering::Release);
    }

    /// Reads the counter with no ordering. Only for a thread re-reading a
    /// counter that it alone writes, or for monitoring where a stale value is
    /// harmless.
    #[inline]
    pub fn get_relaxed(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Reads the counter as part of a sequentially consistent handshake (see
    /// the module documentation). Slower than `get` on weakly ordered CPUs,
    /// the same instruction as `get` on x86.
    #[inline]
    pub fn get_seq_cst(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Stores the counter as part of a sequentially consistent handshake. On
    /// x86 this is an `xchg`, roughly twenty cycles, so it stays off the
    /// per-item path.
    #[inline]
    pub fn set_seq_cst(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
    }

    /// Replaces `current` with `new` if the counter still holds `current`;
    /// `Release` on success (publishing this thread's earlier writes, like
    /// `set`), `Acquire` on failure (so the caller may act on the value that
    /// beat it). Returns the value found, as `Ok` on success.
    #[inline]
    pub fn compare_exchange_release(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.value
            .compare_exchange(current, new, Ordering::Release, Ordering::Acquire)
    }

    /// Like `compare_exchange_release`, but `Acquire` on success as well:
    /// for a thread that, once it wins, reads memory that the previous
    /// writer of the counter published.
    #[inline]
    pub fn compare_exchange_acq_rel(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.value
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }

    /// Replaces `current` with `new` as part of a sequentially consistent
    /// handshake (see the module documentation).
    #[inline]
    pub fn compare_exchange_seq_cst(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.value
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }

    /// Sets `bits` and returns the previous value, `AcqRel`, so that flag
    /// bits raised by one thread never overwrite a concurrent change by
    /// another, and the change continues the release sequence of the last
    /// `set` (a reader of the new value still synchronises with that `set`).
    #[inline]
    pub fn fetch_or_acq_rel(&self, bits: u64) -> u64 {
        self.value.fetch_or(bits, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_occupies_its_own_cache_line() {
        // Two neighbouring counters must never share a line, whatever the
        // target's line size crossbeam assumes (64 or 128 bytes).
        assert!(std::mem::size_of::<Sequence>() >= 64);
        assert!(std::mem::align_of::<Sequence>() >= 64);
    }

    #[test]
    fn compare_exchange_reports_the_value_found() {
        let s = Sequence::new(5);
        assert_eq!(s.compare_exchange_release(5, 6), Ok(5));
        assert_eq!(s.compare_exchange_release(5, 7), Err(6));
        assert_eq!(s.fetch_or_acq_rel(1 << 63), 6);
        assert_eq!(s.get(), 6 | (1 << 63));
    }
}
