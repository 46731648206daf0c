//! The broadcast ring owns the hand-off of sequenced commands from the one
//! sequencer thread to every replica: a Disruptor-style single-writer,
//! many-reader ring of preallocated slots, where each reader sees every value
//! in order and the writer is held back only by the slowest *live* reader.
//! Readers can be fenced (the writer stops waiting for them at once) and can
//! later rejoin at a position whose slot is still protected. Nothing here
//! allocates or locks after construction, and this is the only module that
//! touches the slot array's `UnsafeCell`s.
//!
//! # Positions and counters
//!
//! Values are numbered by *position*, starting at the ring's start position
//! (0 unless built with [`BroadcastRing::starting_at`]); position `p` lives in
//! slot `p & (capacity - 1)`. Three kinds of [`Sequence`] counters describe
//! the ring:
//!
//! - the **cursor**: how many positions are published, i.e. the next position
//!   the writer will fill. A reader may read every position below it.
//! - one **reader word** per reader: the next position that reader will read,
//!   plus flag bits (below). A live reader's word gates the writer: position
//!   `p` may be written only when `p < word_position + capacity` for every
//!   gating reader, because writing `p` destroys position `p - capacity`.
//! - the **claim**: the highest exclusive bound the writer has announced it
//!   may fill without looking at the reader words again. It only grows. It is
//!   what makes rejoining safe (below).
//!
//! Positions must stay below [`MAX_POSITION`] (2^61 - 1; 73 years at a
//! billion values a second), because the top three bits of a reader word are
//! flags. The writer reports `Full` forever rather than pass it.
//!
//! # Reading
//!
//! A reader copies a batch out of the slots between two changes of its own
//! word: it sets `IN_COPY` (a compare-exchange from exactly its position),
//! copies, then replaces the word with the advanced position (`Release`). The
//! copy is plain `memcpy` of `Copy` values into the caller's buffer: no user
//! code runs inside the window, so the window lasts nanoseconds unless the
//! thread is preempted in it.
//!
//! # Fencing
//!
//! Anyone holding the [`BroadcastRing`] handle (egress, or a supervisor) may
//! fence a reader with [`BroadcastRing::fence`]: one `fetch_or` of
//! `FENCE_PENDING` into its word, wait-free. The writer stops gating on a
//! word that has `FENCED`, or `FENCE_PENDING` without `IN_COPY`: such a
//! reader is not copying and can never start again, because its next
//! entry compare-exchange expects its bare position and fails. If the fence
//! lands while the reader is inside its copy window, the writer keeps gating
//! on it until that copy ends (the reader's exit compare-exchange then fails,
//! and it stores `FENCED`): that is the one place the writer can wait on a
//! fenced reader, for the length of a `memcpy` of at most one batch, longer
//! only if the OS preempts the reader inside it. It is what keeps every slot
//! access free of data races. A reader stalled anywhere else, in the engine,
//! in a panic, or forever, is ignored immediately. Dropping a reader handle
//! fences it, so a replica thread that unwinds never holds the writer back.
//!
//! # Rejoining
//!
//! A fenced reader catches up from elsewhere (the journal) and then rejoins
//! at a position `q` it names ([`BroadcastReader::rejoin_at`]) or at the
//! writer's current cursor ([`BroadcastReader::rejoin_at_cursor`]). A rejoin
//! at `q` is accepted exactly when
//!
//! - `q <= cursor` (it names a published position or the next one), and
//! - `q + capacity >= claim` (no position the writer may already fill
//!   without consulting the readers overwrites `q`'s slot).
//!
//! The claim is at most `slowest_live_position + capacity`, or
//! `cursor + capacity` with no live reader, so in practice a rejoin succeeds
//! for any `q` from the slowest live reader's position up to the cursor, and
//! always (after a bounded number of retries against a racing writer) at the
//! cursor. A refused rejoin reports the oldest position that would have
//! passed, so the reader can replay further from the journal and try again.
//!
//! Why this is safe: the rejoiner stores `q` into its word and then loads
//! the claim; the writer, each time it needs more room, stores a larger
//! claim and then loads every reader word; all four accesses are `SeqCst`.
//! Sequential consistency forbids both loads missing the other thread's
//! store, so either the writer sees `q` (and gates on it from then on), or
//! the rejoiner sees a claim that covers every position the writer can fill
//! before it next loads the reader words (and refuses `q` if that would
//! overwrite it).

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;

use crate::sequence::Sequence;
use crate::wait_strategy::WaitStrategy;

/// Reader-word flag: the reader is fenced and not copying. Stored only by the
/// reader itself (when it notices a pending fence, or on drop), so it is
/// always a `Release` that follows the reader's last slot access.
const FENCED: u64 = 1 << 63;
/// Reader-word flag: the reader is copying slots at the word's position.
/// Set and cleared only by the reader itself.
const IN_COPY: u64 = 1 << 62;
/// Reader-word flag: someone asked for this reader to be fenced. Set only by
/// [`BroadcastRing::fence`], never cleared except by a rejoin.
const FENCE_PENDING: u64 = 1 << 61;
/// The position bits of a reader word.
const POSITION_MASK: u64 = FENCE_PENDING - 1;

/// Positions must stay strictly below this value: the bits above it are the
/// reader-word flags.
pub const MAX_POSITION: u64 = POSITION_MASK;

/// The position a reader word makes the writer respect, or `None` if the
/// writer may ignore that reader (fenced, or fence pending while not copying).
#[inline]
fn gating_position(word: u64) -> Option<u64> {
    if word & FENCED != 0 || (word & FENCE_PENDING != 0 && word & IN_COPY == 0) {
        None
    } else {
        Some(word & POSITION_MASK)
    }
}

/// Why a ring could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The capacity must be a power of two and at least 2, so that a slot
    /// index is a mask of the position rather than a division.
    CapacityNotPowerOfTwo {
        /// The capacity asked for.
        capacity: usize,
    },
    /// A broadcast ring needs at least one reader.
    NoReaders,
    /// The start position must be below [`MAX_POSITION`].
    StartTooLarge {
        /// The start position asked for.
        start_position: u64,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CapacityNotPowerOfTwo { capacity } => write!(
                f,
                "ring capacity {capacity} is not a power of two of at least 2"
            ),
            Self::NoReaders => write!(f, "a broadcast ring needs at least one reader"),
            Self::StartTooLarge { start_position } => {
                write!(
                    f,
                    "start position {start_position} is not below {MAX_POSITION}"
                )
            }
        }
    }
}

impl std::error::Error for RingError {}

/// Checks a ring capacity and returns it as `u64`. Shared with the SPSC
/// output ring so both refuse the same capacities with the same error.
pub(crate) fn checked_capacity(capacity: usize) -> Result<u64, RingError> {
    if capacity >= 2 && capacity.is_power_of_two() {
        Ok(capacity as u64)
    } else {
        Err(RingError::CapacityNotPowerOfTwo { capacity })
    }
}

/// The ring had no free slot: the slowest live reader is a whole ring behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring full: the slowest live reader is a whole ring behind")
    }
}

impl std::error::Error for Full {}

/// A blocking publish stopped because its `give_up` predicate said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaveUp;

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("gave up waiting")
    }
}

impl std::error::Error for GaveUp {}

/// The reader has been fenced: it no longer gates the writer and may read
/// nothing until it rejoins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fenced;

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reader is fenced")
    }
}

impl std::error::Error for Fenced {}

/// Why a blocking read returned without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The reader has been fenced.
    Fenced,
    /// The `give_up` predicate said to stop waiting.
    GaveUp,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fenced => Fenced.fmt(f),
            Self::GaveUp => GaveUp.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

/// Why a rejoin was refused. The reader stays fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejoinError {
    /// The reader is not fenced: there is nothing to rejoin.
    NotFenced,
    /// The position is beyond the writer's cursor.
    Ahead {
        /// The cursor when checked.
        cursor: u64,
    },
    /// The writer may already have overwritten (or may overwrite without
    /// looking) the slot of the named position: replay further from the
    /// journal and rejoin at `oldest_accepted` or later.
    Overwritten {
        /// The oldest position that would have been accepted when checked.
        oldest_accepted: u64,
    },
    /// The writer kept moving between the reader's checks (only from
    /// `rejoin_at_cursor`, after its bounded retries); try again.
    Contended,
}

impl fmt::Display for RejoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFenced => f.write_str("reader is not fenced"),
            Self::Ahead { cursor } => write!(f, "position is beyond the cursor {cursor}"),
            Self::Overwritten { oldest_accepted } => write!(
                f,
                "position's slot is no longer protected; oldest accepted is {oldest_accepted}"
            ),
            Self::Contended => f.write_str("writer kept moving; retry"),
        }
    }
}

impl std::error::Error for RejoinError {}

/// What a reader's word says, as seen by a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderStatus {
    /// The reader gates the writer; `position` is the next position it reads.
    Live {
        /// The next position this reader will read.
        position: u64,
    },
    /// The reader is fenced (or a fence is pending and takes effect the next
    /// time it touches the ring); it does not gate the writer.
    Fenced,
}

/// State shared by the writer, the readers and every monitor handle.
struct Shared<T> {
    /// The preallocated slots. A slot holds initialised data once its
    /// position has been published; before that nobody reads it.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// `capacity - 1`: a position's slot index is `position & mask`.
    mask: u64,
    capacity: u64,
    /// Published positions: every position below it may be read.
    cursor: Sequence,
    /// The writer's announced bound (see the module documentation).
    claim: Sequence,
    /// One word per reader: next position plus flags.
    readers: Box<[Sequence]>,
}

// SAFETY: `Shared` is `!Sync` only because of the slots' `UnsafeCell`s. Every
// access to a slot follows the protocol in the module documentation: the
// single writer fills slot `p & mask` only when no reader can be reading
// position `p - capacity` (every gating reader has moved past it, and every
// ignored reader is fenced outside its copy window), and readers read only
// positions below the cursor, which the writer publishes with `Release`
// after filling them. So no slot is ever written while another thread reads
// or writes it, and values of `T: Send` may move between threads this way.
unsafe impl<T: Copy + Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The writer's bound for filling: `min(writer_next, slowest gating
    /// reader) + capacity`, capped below `MAX_POSITION`. `handshake` selects
    /// `SeqCst` loads for the second pass of a refresh.
    fn gating_limit(&self, writer_next: u64, handshake: bool) -> u64 {
        let mut slowest = writer_next;
        for word in self.readers.iter() {
            let word = if handshake {
                word.get_seq_cst()
            } else {
                word.get()
            };
            if let Some(position) = gating_position(word) {
                slowest = slowest.min(position);
            }
        }
        (slowest + self.capacity).min(MAX_POSITION)
    }

    fn status(&self, reader: usize) -> ReaderStatus {
        match gating_position(self.readers[reader].get()) {
            Some(position) => ReaderStatus::Live { position },
            None => ReaderStatus::Fenced,
        }
    }
}

/// The shareable handle of a broadcast ring: fence readers, watch their lag.
/// Cheap to clone; `Send + Sync`. Built together with the writer and the
/// readers by [`BroadcastRing::new`].
pub struct BroadcastRing<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for BroadcastRing<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Everything [`BroadcastRing::new`] builds: the monitor handle, the one
/// writer, and `readers_max` readers (reader `i` at index `i`).
pub struct BroadcastParts<T> {
    /// The shareable monitor/fence handle.
    pub ring: BroadcastRing<T>,
    /// The single writer.
    pub writer: BroadcastWriter<T>,
    /// The readers, all live at the start position.
    pub readers: Vec<BroadcastReader<T>>,
}

impl<T: Copy + Send> BroadcastRing<T> {
    /// Builds a ring of `capacity` slots (a power of two, at least 2) for
    /// `readers_max` readers, positions starting at 0. All allocation
    /// happens here.
    #[expect(
        clippy::new_ret_no_self,
        reason = "the ring is built together with its one writer and its readers, so no ring exists without them"
    )]
    pub fn new(capacity: usize, readers_max: usize) -> Result<BroadcastParts<T>, RingError> {
        Self::starting_at(capacity, readers_max, 0)
    }

    /// Like [`BroadcastRing::new`] with the first position `start_position`,
    /// so that positions can equal sequence numbers (or sequence numbers
    /// minus one) after a restart.
    pub fn starting_at(
        capacity: usize,
        readers_max: usize,
        start_position: u64,
    ) -> Result<BroadcastParts<T>, RingError> {
        let capacity_u64 = checked_capacity(capacity)?;
        if readers_max == 0 {
            return Err(RingError::NoReaders);
        }
        if start_position >= MAX_POSITION {
            return Err(RingError::StartTooLarge { start_position });
        }
        let slots = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        let readers = (0..readers_max)
            .map(|_| Sequence::new(start_position))
            .collect();
        let shared = Arc::new(Shared {
            slots,
            mask: capacity_u64 - 1,
            capacity: capacity_u64,
            cursor: Sequence::new(start_position),
            claim: Sequence::new(start_position),
            readers,
        });
        let writer = BroadcastWriter {
            shared: Arc::clone(&shared),
            next: start_position,
            limit: start_position,
        };
        let readers = (0..readers_max)
            .map(|id| BroadcastReader {
                shared: Arc::clone(&shared),
                id,
                position: start_position,
                cursor_seen: start_position,
            })
            .collect();
        Ok(BroadcastParts {
            ring: Self { shared },
            writer,
            readers,
        })
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// The number of readers the ring was built for.
    pub fn readers_max(&self) -> usize {
        self.shared.readers.len()
    }

    /// The published cursor: every position below it is readable.
    pub fn cursor(&self) -> u64 {
        self.shared.cursor.get()
    }

    /// Fences `reader`: from now on the writer does not wait for it (save for
    /// the copy it may be in the middle of, see the module documentation),
    /// and its reads fail with [`Fenced`] until it rejoins. Wait-free.
    /// Returns whether the reader was live before.
    ///
    /// # Panics
    ///
    /// If `reader >= readers_max`.
    pub fn fence(&self, reader: usize) -> bool {
        let before = self.shared.readers[reader].fetch_or_acq_rel(FENCE_PENDING);
        gating_position(before).is_some()
    }

    /// Whether `reader` gates the writer, and at which position.
    ///
    /// # Panics
    ///
    /// If `reader >= readers_max`.
    pub fn reader_status(&self, reader: usize) -> ReaderStatus {
        self.shared.status(reader)
    }

    /// How many published positions `reader` has not yet consumed, or `None`
    /// if it is fenced. Egress fences a replica whose lag passes its bound.
    ///
    /// # Panics
    ///
    /// If `reader >= readers_max`.
    pub fn lag(&self, reader: usize) -> Option<u64> {
        lag_of(&self.shared, reader)
    }
}

fn lag_of<T>(shared: &Shared<T>, reader: usize) -> Option<u64> {
    // Read the reader first: the cursor only grows, so reading it second can
    // only overstate the lag of a live reader, never make it negative.
    match shared.status(reader) {
        ReaderStatus::Live { position } => Some(shared.cursor.get().saturating_sub(position)),
        ReaderStatus::Fenced => None,
    }
}

/// The single writer of a broadcast ring. `Send`, not `Clone`: there is
/// exactly one.
pub struct BroadcastWriter<T> {
    shared: Arc<Shared<T>>,
    /// The next position to fill; equal to the published cursor.
    next: u64,
    /// Positions below this may be filled without looking at the readers.
    limit: u64,
}

impl<T: Copy + Send> BroadcastWriter<T> {
    /// The next position this writer fills (the cursor).
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// A monitor handle for the same ring.
    pub fn ring(&self) -> BroadcastRing<T> {
        BroadcastRing {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How far behind `reader` is, or `None` if it is fenced. See
    /// [`BroadcastRing::lag`].
    pub fn lag(&self, reader: usize) -> Option<u64> {
        lag_of(&self.shared, reader)
    }

    /// Publishes `value` at the next position if a slot is free, without
    /// waiting.
    #[inline]
    pub fn try_publish(&mut self, value: T) -> Result<(), Full> {
        if self.next >= self.limit && !self.refresh() {
            return Err(Full);
        }
        self.fill(value);
        self.shared.cursor.set(self.next);
        Ok(())
    }

    /// Publishes as many of `values` as fit now, with one cursor store for
    /// the whole batch. Returns how many were published (a prefix).
    pub fn try_publish_batch(&mut self, values: &[T]) -> usize {
        let mut published = 0;
        // At most two rounds: one with the room already known, one after a
        // refresh; a batch larger than the ring publishes what fits.
        for _ in 0..2 {
            if published == values.len() {
                break;
            }
            if self.next >= self.limit && !self.refresh() {
                break;
            }
            let room = usize::try_from(self.limit - self.next).unwrap_or(usize::MAX);
            let take = room.min(values.len() - published);
            for &value in &values[published..published + take] {
                self.fill(value);
            }
            published += take;
        }
        if published > 0 {
            self.shared.cursor.set(self.next);
        }
        published
    }

    /// Publishes `value`, waiting with `wait` while the ring is full, until
    /// `give_up` says to stop (shutdown, or the caller fencing a slow reader
    /// and retrying).
    pub fn publish_blocking(
        &mut self,
        value: T,
        wait: &WaitStrategy,
        give_up: impl Fn() -> bool,
    ) -> Result<(), GaveUp> {
        if self.next >= self.limit {
            let has_room = wait.wait_until(|| self.refresh(), give_up);
            if !has_room {
                return Err(GaveUp);
            }
        }
        self.fill(value);
        self.shared.cursor.set(self.next);
        Ok(())
    }

    /// Writes `value` at `self.next` and advances it, without publishing.
    /// The caller has established `self.next < self.limit`.
    #[inline]
    fn fill(&mut self, value: T) {
        debug_assert!(self.next < self.limit);
        let slot = &self.shared.slots[(self.next & self.shared.mask) as usize];
        // SAFETY: `self.next < self.limit`, and `limit` came from a refresh
        // that saw every gating reader at a position `r` with
        // `limit <= r + capacity` (and no reader that rejoined since can be
        // below `limit - capacity`, by the claim handshake). So every reader
        // that may read has consumed `self.next - capacity`, the previous
        // occupant of this slot; readers that may not read are fenced
        // outside their copy window and never enter it again; and no reader
        // reads `self.next` itself before the cursor passes it, which
        // happens after this write with `Release`. This thread is the only
        // writer. So nothing else accesses this slot during the write.
        unsafe { (*slot.get()).write(value) };
        self.next += 1;
    }

    /// Finds more room: recomputes the bound from the reader words and, if
    /// it grew, announces it through the claim before re-checking (the
    /// rejoin handshake). Returns whether at least one slot is free.
    #[cold]
    fn refresh(&mut self) -> bool {
        let shared = &*self.shared;
        let estimate = shared.gating_limit(self.next, false);
        if estimate <= self.next {
            return false;
        }
        // The writer is the only thread that stores the claim, so a relaxed
        // re-read of its own last store is exact.
        if estimate > shared.claim.get_relaxed() {
            shared.claim.set_seq_cst(estimate);
        }
        // Second pass with SeqCst loads, after the SeqCst claim store: any
        // reader that rejoined without seeing the claim is seen here.
        let checked = shared.gating_limit(self.next, true);
        self.limit = estimate.min(checked);
        self.limit > self.next
    }
}

/// One reader of a broadcast ring. `Send`, not `Clone`. Dropping it fences
/// it, so a reader that goes away never holds the writer back.
pub struct BroadcastReader<T> {
    shared: Arc<Shared<T>>,
    id: usize,
    /// The next position to read.
    position: u64,
    /// The last cursor value loaded; reloaded only when exhausted.
    cursor_seen: u64,
}

/// How many times `rejoin_at_cursor` retries against a writer that keeps
/// refreshing between the reader's cursor read and its claim check.
const REJOIN_ATTEMPTS: u32 = 64;
/// How many times `rejoin_at` retries its compare-exchange against
/// concurrent `fence` calls, which are the only other writers of the word.
const REJOIN_CAS_ATTEMPTS: u32 = 16;

impl<T: Copy + Send> BroadcastReader<T> {
    /// This reader's index in the ring.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The next position this reader will read (after a fence: the next one
    /// it needs, to be replayed from the journal).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether this reader has been fenced (or a fence is pending).
    pub fn is_fenced(&self) -> bool {
        gating_position(self.shared.readers[self.id].get()).is_none()
    }

    /// The published positions not yet read: `position..cursor`. Empty when
    /// nothing is available; does not check for a fence.
    pub fn available(&mut self) -> Range<u64> {
        self.available_up_to(u64::MAX)
    }

    /// Like `available`, but reloads the writer's cursor (a likely cache
    /// miss, since the writer stores it on every publish) only when the
    /// cached one shows fewer than `wanted` values.
    #[inline]
    fn available_up_to(&mut self, wanted: u64) -> Range<u64> {
        if self.cursor_seen.saturating_sub(self.position) < wanted {
            self.cursor_seen = self.shared.cursor.get();
        }
        self.position..self.cursor_seen.max(self.position)
    }

    /// Copies up to `out.len()` available values into `out`, in position
    /// order, and consumes them. Returns how many (0 if none is available).
    /// Never waits.
    pub fn poll(&mut self, out: &mut [T]) -> Result<usize, Fenced> {
        let mut written = 0;
        self.consume(out.len(), |value| {
            out[written] = value;
            written += 1;
        })
    }

    /// Reads the next value if one is available. Never waits.
    pub fn try_read(&mut self) -> Result<Option<T>, Fenced> {
        let mut value = None;
        self.consume(1, |v| value = Some(v))?;
        Ok(value)
    }

    /// Like [`BroadcastReader::poll`], waiting with `wait` until at least one
    /// value is available, the reader is fenced, or `give_up` says stop.
    pub fn read_blocking(
        &mut self,
        out: &mut [T],
        wait: &WaitStrategy,
        give_up: impl Fn() -> bool,
    ) -> Result<usize, ReadError> {
        let ready = wait.wait_until(
            || !self.available_up_to(1).is_empty() || self.is_fenced(),
            give_up,
        );
        if !ready {
            return Err(ReadError::GaveUp);
        }
        self.poll(out).map_err(|Fenced| ReadError::Fenced)
    }

    /// Copies up to `max` available values into `store` and consumes them.
    /// `store` runs inside the copy window, where a fence cannot take effect,
    /// so it must stay a trivial store: only the methods above pass one.
    #[inline]
    fn consume(&mut self, max: usize, mut store: impl FnMut(T)) -> Result<usize, Fenced> {
        let available = self.available_up_to(max as u64);
        let count = (available.end - available.start).min(max as u64);
        if count == 0 {
            return if self.is_fenced() { Err(Fenced) } else { Ok(0) };
        }
        let word = &self.shared.readers[self.id];
        let start = self.position;
        // Enter the copy window. The word holds exactly our position unless
        // someone fenced us (or we were fenced and never rejoined): then the
        // exchange fails and we must not touch a slot.
        if word
            .compare_exchange_acq_rel(start, start | IN_COPY)
            .is_err()
        {
            return Err(Fenced);
        }
        for offset in 0..count {
            let slot = &self.shared.slots[((start + offset) & self.shared.mask) as usize];
            // SAFETY: `start + offset` is below the cursor we loaded with
            // `Acquire`, so the writer initialised this slot before
            // publishing it. The writer does not overwrite it before seeing
            // our word advance past `start + offset` (it gates on `start`
            // while the word holds `start`, with or without `IN_COPY` and
            // `FENCE_PENDING`), and it only ignores us on seeing `FENCED`,
            // which we store after this loop, or `FENCE_PENDING` without
            // `IN_COPY`, which cannot follow our successful entry until we
            // leave. So no write to this slot overlaps this read.
            let value = unsafe { (*slot.get()).assume_init() };
            store(value);
        }
        let end = start + count;
        // Leave the copy window, publishing (Release) that the slots are
        // free. A failure means a fence arrived while we copied: complete it.
        if word.compare_exchange_release(start | IN_COPY, end).is_err() {
            word.set(FENCED);
            return Err(Fenced);
        }
        self.position = end;
        // `count` is at most `max`, a `usize`.
        Ok(count as usize)
    }

    /// Rejoins the ring at `position` after a fence, once the reader has
    /// caught up to it from elsewhere (the journal). Accepted exactly when
    /// `position <= cursor` and `position + capacity >= claim` (module
    /// documentation); on success the writer gates on this reader again and
    /// it reads `position`, `position + 1`, ... with no gap. Returns the
    /// position.
    pub fn rejoin_at(&mut self, position: u64) -> Result<u64, RejoinError> {
        let shared = &*self.shared;
        let word = &shared.readers[self.id];
        let mut current = word.get();
        if gating_position(current).is_some() {
            return Err(RejoinError::NotFenced);
        }
        let cursor = shared.cursor.get();
        if position > cursor {
            return Err(RejoinError::Ahead { cursor });
        }
        // Cheap pre-check: the claim only grows, so a position it already
        // rules out is refused without touching the word (and without
        // briefly gating the writer on a position that will be withdrawn).
        let oldest = |claim: u64| claim.saturating_sub(shared.capacity);
        let claim = shared.claim.get();
        if position < oldest(claim) {
            return Err(RejoinError::Overwritten {
                oldest_accepted: oldest(claim),
            });
        }
        let mut installed = false;
        for _ in 0..REJOIN_CAS_ATTEMPTS {
            match word.compare_exchange_seq_cst(current, position) {
                Ok(_) => {
                    installed = true;
                    break;
                }
                // Only `fence` changes a fenced reader's word; try again
                // with what it stored.
                Err(found) => current = found,
            }
        }
        if !installed {
            return Err(RejoinError::Contended);
        }
        // The handshake load: after our SeqCst store of `position`.
        let claim = shared.claim.get_seq_cst();
        if position < oldest(claim) {
            // The writer announced more room in between and did not
            // necessarily see us: withdraw. Storing FENCED also absorbs any
            // fence that arrived meanwhile.
            word.set(FENCED);
            return Err(RejoinError::Overwritten {
                oldest_accepted: oldest(claim),
            });
        }
        self.position = position;
        self.cursor_seen = cursor;
        Ok(position)
    }

    /// Rejoins at the writer's current cursor: the reader then needs every
    /// position below the returned one from the journal. Retries a bounded
    /// number of times when the writer moves between the checks.
    pub fn rejoin_at_cursor(&mut self) -> Result<u64, RejoinError> {
        for _ in 0..REJOIN_ATTEMPTS {
            let cursor = self.shared.cursor.get();
            match self.rejoin_at(cursor) {
                Err(RejoinError::Overwritten { .. }) => continue,
                other => return other,
            }
        }
        Err(RejoinError::Contended)
    }
}

impl<T> Drop for BroadcastReader<T> {
    fn drop(&mut self) {
        // We are not in a copy window (that needs `&mut self`), so storing
        // FENCED is a complete fence: the writer stops gating on us at once.
        self.shared.readers[self.id].set(FENCED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(capacity: usize, readers: usize) -> BroadcastParts<u64> {
        BroadcastRing::new(capacity, readers).expect("valid ring")
    }

    #[test]
    fn writer_is_full_after_capacity_values_until_every_live_reader_reads() {
        let BroadcastParts {
            ring,
            mut writer,
            mut readers,
        } = parts(4, 2);
        for v in 0..4 {
            writer.try_publish(v).unwrap();
        }
        assert_eq!(writer.try_publish(4), Err(Full));
        assert_eq!(readers[0].try_read(), Ok(Some(0)));
        // Reader 1 has not moved: still full.
        assert_eq!(writer.try_publish(4), Err(Full));
        assert_eq!(readers[1].try_read(), Ok(Some(0)));
        writer.try_publish(4).unwrap();
        assert_eq!(ring.lag(0), Some(4));
        assert!(ring.fence(1));
        assert_eq!(ring.lag(1), None);
        // Reader 1 no longer gates: reader 0 alone decides.
        let mut out = [0u64; 8];
        assert_eq!(readers[0].poll(&mut out), Ok(4));
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(writer.try_publish_batch(&[5, 6, 7, 8, 9]), 4);
        assert_eq!(readers[1].try_read(), Err(Fenced));
    }

    #[test]
    fn rejoin_refuses_an_unprotected_position_and_accepts_the_cursor() {
        let BroadcastParts {
            ring,
            mut writer,
            mut readers,
        } = parts(4, 2);
        assert_eq!(readers[1].rejoin_at(0), Err(RejoinError::NotFenced));
        ring.fence(1);
        for v in 0..10 {
            writer.try_publish(v).unwrap();
            assert_eq!(readers[0].try_read(), Ok(Some(v)));
        }
        assert_eq!(
            readers[1].rejoin_at(11),
            Err(RejoinError::Ahead { cursor: 10 })
        );
        assert!(matches!(
            readers[1].rejoin_at(2),
            Err(RejoinError::Overwritten { .. })
        ));
        assert_eq!(ring.reader_status(1), ReaderStatus::Fenced);
        // The writer last announced room up to 12 (reader 0 at 8 plus 4
        // slots), so 8 is the oldest position it promises not to overwrite.
        assert_eq!(
            readers[1].rejoin_at(7),
            Err(RejoinError::Overwritten { oldest_accepted: 8 })
        );
        assert_eq!(readers[1].rejoin_at(9), Ok(9));
        assert_eq!(ring.reader_status(1), ReaderStatus::Live { position: 9 });
        writer.try_publish(10).unwrap();
        assert_eq!(readers[1].poll(&mut [0; 4]), Ok(2));
        ring.fence(1);
        assert_eq!(readers[1].rejoin_at_cursor(), Ok(11));
        writer.try_publish(11).unwrap();
        assert_eq!(readers[1].try_read(), Ok(Some(11)));
    }

    #[test]
    fn a_fence_during_a_copy_keeps_gating_until_the_copy_ends() {
        let BroadcastParts {
            ring,
            mut writer,
            mut readers,
        } = parts(2, 1);
        writer.try_publish(1).unwrap();
        writer.try_publish(2).unwrap();
        let mut seen = Vec::new();
        let result = readers[0].consume(2, |value| {
            if seen.is_empty() {
                // The fence lands inside the copy window: the reader still
                // holds the slots, so the writer must not reuse them yet.
                assert!(ring.fence(0));
                assert_eq!(ring.reader_status(0), ReaderStatus::Live { position: 0 });
                assert_eq!(writer.try_publish(3), Err(Full));
            }
            seen.push(value);
        });
        assert_eq!(seen, [1, 2]);
        // The copy ended, the fence took effect: the copied values are not
        // consumed, and the writer no longer waits for this reader.
        assert_eq!(result, Err(Fenced));
        assert_eq!(readers[0].position(), 0);
        assert_eq!(ring.reader_status(0), ReaderStatus::Fenced);
        writer.try_publish(3).unwrap();
        writer.try_publish(4).unwrap();
        assert_eq!(readers[0].try_read(), Err(Fenced));
        assert_eq!(readers[0].rejoin_at_cursor(), Ok(4));
    }

    #[test]
    fn dropping_a_reader_fences_it() {
        let BroadcastParts {
            ring,
            mut writer,
            mut readers,
        } = parts(2, 2);
        drop(readers.pop());
        for v in 0..2 {
            writer.try_publish(v).unwrap();
        }
        assert_eq!(ring.reader_status(1), ReaderStatus::Fenced);
        assert_eq!(readers[0].poll(&mut [0; 2]), Ok(2));
        writer.try_publish(2).unwrap();
    }
}
