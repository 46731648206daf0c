//! The simulated disk: the journal's bytes in memory, with the semantics of
//! a file behind a page cache, and the faults a real disk has.
//!
//! - `bytes` is what a reader sees: everything written, synced or not (the
//!   page cache). `synced_len` is the prefix a completed `fdatasync` made
//!   durable. Only that prefix is sure to survive a crash.
//! - A crash ([`SimDisk::crash`]) keeps the synced prefix and a random prefix
//!   of the unsynced bytes (a write in flight may land in part), possibly
//!   damaged as a real crash damages it: torn mid-record, a bit flipped, an
//!   earlier page lost while a later one landed, zeros where the file's size
//!   reached the disk before its data. Rarely it also rots a bit of synced
//!   data, which recovery must refuse, never accept.
//! - Armed faults make the next operations fail as a disk does: a short
//!   write, a full disk (a write that lands in part, then ENOSPC), a failed
//!   `fdatasync`. The journal must fail-stop on each.
//! - Armed crash points end the process inside an operation: part-way
//!   through a write, or after a write and before its `fdatasync`. The
//!   device unwinds with a [`SimCrash`] panic, which the simulator catches as
//!   the process dying there.
//!
//! The disk also checks the journal's side of the contract: it only appends,
//! and writes nothing after a failed `fdatasync`.
//!
//! Snapshots live beside the journal, in memory, and survive every crash
//! (a snapshot save is atomic and durable: write, sync, rename).

use crate::rng::SimRng;
use lockstep_sequencer::journal_backend::JournalDevice;
use lockstep_sequencer::journal_reader::{JournalReader, JournalSource};
use lockstep_sequencer::journal_record::{HEADER_SIZE_BYTES, RECORD_SIZE_BYTES};
use lockstep_sequencer::snapshot_store::MemorySnapshots;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// The panic payload of a simulated process crash inside a disk operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimCrash;

/// Where an armed crash ends the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Part-way through the next write: a random prefix of it lands.
    InWrite,
    /// In the next `fdatasync`, after everything before it was written.
    BeforeSync,
}

/// Faults armed for the disk's next operations.
#[derive(Clone, Copy, Debug, Default)]
struct Armed {
    /// The next write lands in part, then fails with EIO.
    short_write: bool,
    /// The disk holds at most this many bytes; a write past it lands in
    /// part, then fails with ENOSPC.
    capacity_bytes: Option<usize>,
    /// The next `fdatasync` fails with EIO and makes nothing durable.
    sync_failure: bool,
    crash: Option<CrashPoint>,
}

/// What the disk saw, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub writes: u64,
    pub syncs: u64,
    pub short_writes: u64,
    pub disk_full_writes: u64,
    pub sync_failures: u64,
    pub crashes_in_write: u64,
    pub crashes_before_sync: u64,
}

/// Synced data rotted by a crash: recovery must refuse the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rot {
    /// The byte whose bit flipped.
    pub offset_bytes: usize,
    pub bit: u8,
    /// True if the byte is in the header, else in a record with a valid
    /// record after it.
    pub in_header: bool,
}

/// What a crash did to the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashDamage {
    /// The synced length at the crash: everything before it survived.
    pub synced_len_bytes: usize,
    /// Bytes written but not synced at the crash.
    pub unsynced_bytes: usize,
    /// Of those, how many survived (before any damage below).
    pub kept_bytes: usize,
    /// The last surviving bytes were garbled from some point on.
    pub torn: bool,
    /// One bit of the surviving unsynced bytes flipped.
    pub flipped_unsynced: bool,
    /// A span of records in the surviving unsynced bytes reads as zeros
    /// while later ones landed.
    pub lost_page: bool,
    /// Zeros were appended: the file's size landed before its data.
    pub zero_tail: bool,
    pub rot: Option<Rot>,
}

/// How likely each kind of crash damage is, per million crashes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashDamageRates {
    pub torn_per_million: u32,
    pub flip_unsynced_per_million: u32,
    pub lost_page_per_million: u32,
    pub zero_tail_per_million: u32,
    pub rot_per_million: u32,
}

struct DiskState {
    bytes: Vec<u8>,
    synced_len: usize,
    armed: Armed,
    /// A `fdatasync` failed since the last restart.
    sync_failed: bool,
    /// Breaches of the journal's side of the contract, for the checker.
    violations: Vec<String>,
    counters: DiskCounters,
    rng: SimRng,
}

/// A handle on the simulated disk; clones share it. The journal writer, the
/// readers and the simulator each hold one.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    snapshots: MemorySnapshots,
}

impl SimDisk {
    /// An empty disk whose random choices (how much of a write lands) come
    /// from `rng`.
    pub fn new(rng: SimRng) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                bytes: Vec::new(),
                synced_len: 0,
                armed: Armed::default(),
                sync_failed: false,
                violations: Vec::new(),
                counters: DiskCounters::default(),
                rng,
            })),
            snapshots: MemorySnapshots::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A simulated crash unwinds only after the guard is dropped, so a
        // poisoned lock can only follow a bug elsewhere; the state is still
        // whole, as every change below is made before any panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The snapshot directory.
    pub fn snapshots(&self) -> MemorySnapshots {
        Arc::clone(&self.snapshots)
    }

    pub fn len_bytes(&self) -> usize {
        self.lock().bytes.len()
    }

    pub fn synced_len_bytes(&self) -> usize {
        self.lock().synced_len
    }

    /// The highest seq whose record is wholly in the synced prefix (the
    /// journal's first seq is 1).
    pub fn synced_seq(&self) -> u64 {
        whole_records(self.lock().synced_len)
    }

    /// Bytes from `offset` to the end, as a reader sees them.
    pub fn read_from(&self, offset: usize) -> Vec<u8> {
        let state = self.lock();
        state.bytes.get(offset..).unwrap_or(&[]).to_vec()
    }

    pub fn counters(&self) -> DiskCounters {
        self.lock().counters
    }

    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }

    pub fn arm_short_write(&self) {
        self.lock().armed.short_write = true;
    }

    pub fn arm_sync_failure(&self) {
        self.lock().armed.sync_failure = true;
    }

    /// The disk fills up `room_bytes` past what it holds now.
    pub fn arm_disk_full(&self, room_bytes: usize) {
        let mut state = self.lock();
        state.armed.capacity_bytes = Some(state.bytes.len() + room_bytes);
    }

    pub fn arm_crash(&self, point: CrashPoint) {
        self.lock().armed.crash = Some(point);
    }

    /// Clears every armed fault: the faults stop.
    pub fn disarm(&self) {
        self.lock().armed = Armed::default();
    }

    /// Whether a crash point is armed and has not fired.
    pub fn crash_armed(&self) -> bool {
        self.lock().armed.crash.is_some()
    }

    /// The process crashed: only the synced prefix and some of the unsynced
    /// bytes survive, damaged as `rates` and the disk's generator decide.
    /// Every armed fault is cleared (the operator fixes the disk before the
    /// restart), and what survived is, from now on, what the disk holds.
    pub fn crash(&self, rates: &CrashDamageRates) -> CrashDamage {
        let mut state = self.lock();
        let state = &mut *state;
        let rng = &mut state.rng;
        let synced_len = state.synced_len;
        let unsynced = state.bytes.len() - synced_len;
        let mut damage = CrashDamage {
            synced_len_bytes: synced_len,
            unsynced_bytes: unsynced,
            ..CrashDamage::default()
        };
        // All, none or some of what was in flight lands, each a third of
        // the time: the ends are where recovery's edge cases are.
        let kept = match rng.below(3) {
            0 => 0,
            1 => unsynced,
            _ => rng.range_usize(0, unsynced),
        };
        damage.kept_bytes = kept;
        state.bytes.truncate(synced_len + kept);
        let records_start = synced_len.max(HEADER_SIZE_BYTES);
        let end = state.bytes.len();
        if kept > 0 && rng.chance(rates.torn_per_million) {
            // Garbage from some point in the last record to the end: a
            // sector written in part.
            let last_record_start = if end > HEADER_SIZE_BYTES {
                HEADER_SIZE_BYTES
                    + (end - 1 - HEADER_SIZE_BYTES) / RECORD_SIZE_BYTES * RECORD_SIZE_BYTES
            } else {
                0
            };
            let from = rng.range_usize(last_record_start.max(synced_len), end - 1);
            for byte in &mut state.bytes[from..end] {
                *byte = rng.next_u64() as u8;
            }
            damage.torn = true;
        }
        if kept > 0 && rng.chance(rates.flip_unsynced_per_million) {
            let offset = rng.range_usize(synced_len, end - 1);
            state.bytes[offset] ^= 1 << rng.below(8);
            damage.flipped_unsynced = true;
        }
        // A lost page needs whole records after it to be a hole rather
        // than a tail.
        let whole_unsynced_records = end.saturating_sub(records_start) / RECORD_SIZE_BYTES;
        if whole_unsynced_records >= 2
            && records_start.is_multiple_of(RECORD_SIZE_BYTES)
            && rng.chance(rates.lost_page_per_million)
        {
            let first = rng.range_usize(0, whole_unsynced_records - 2);
            let count = rng.range_usize(1, whole_unsynced_records - 1 - first);
            let from = records_start + first * RECORD_SIZE_BYTES;
            state.bytes[from..from + count * RECORD_SIZE_BYTES].fill(0);
            damage.lost_page = true;
        }
        if rng.chance(rates.zero_tail_per_million) {
            let zeros = rng.range_usize(1, 3 * RECORD_SIZE_BYTES);
            state.bytes.resize(end + zeros, 0);
            damage.zero_tail = true;
        }
        // Rot only synced data that recovery can tell from a torn tail: the
        // header, or a record with a synced valid record after it.
        let synced_records = whole_records(synced_len) as usize;
        if synced_len >= HEADER_SIZE_BYTES && rng.chance(rates.rot_per_million) {
            let in_header = synced_records < 2 || rng.below(4) == 0;
            let offset = if in_header {
                rng.range_usize(0, HEADER_SIZE_BYTES - 1)
            } else {
                let record = rng.range_usize(0, synced_records - 2);
                HEADER_SIZE_BYTES
                    + record * RECORD_SIZE_BYTES
                    + rng.range_usize(0, RECORD_SIZE_BYTES - 1)
            };
            let bit = rng.below(8) as u8;
            state.bytes[offset] ^= 1 << bit;
            damage.rot = Some(Rot {
                offset_bytes: offset,
                bit,
                in_header,
            });
        }
        // What is on the disk now is all there is: durable by definition.
        state.synced_len = state.bytes.len();
        state.armed = Armed::default();
        state.sync_failed = false;
        damage
    }

    /// The operator repairs rotted data from a backup copy.
    pub fn repair(&self, rot: Rot) {
        self.lock().bytes[rot.offset_bytes] ^= 1 << rot.bit;
    }

    /// The operator cuts the journal at `len_bytes` (after recovery refused
    /// damage in what was never synced, as `docs/journal.md` advises).
    pub fn cut(&self, len_bytes: usize) {
        let mut state = self.lock();
        state.bytes.truncate(len_bytes);
        state.synced_len = state.synced_len.min(len_bytes);
    }
}

/// The number of whole records in a journal prefix of `len` bytes.
pub fn whole_records(len: usize) -> u64 {
    (len.saturating_sub(HEADER_SIZE_BYTES) / RECORD_SIZE_BYTES) as u64
}

/// EIO and ENOSPC on Linux: the journal's messages then read as a real
/// disk's would.
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

impl JournalDevice for SimDisk {
    fn write_at(&mut self, offset_bytes: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let len = state.bytes.len();
        assert_eq!(
            offset_bytes, len as u64,
            "the journal only appends: write at byte offset {offset_bytes}, but the journal ends at {len}"
        );
        state.counters.writes += 1;
        if state.sync_failed {
            state.violations.push(format!(
                "a write of {} bytes at offset {offset_bytes} after a failed fdatasync: the journal must have fail-stopped",
                bytes.len()
            ));
        }
        if state.armed.crash == Some(CrashPoint::InWrite) {
            state.armed.crash = None;
            state.counters.crashes_in_write += 1;
            let landed = state.rng.range_usize(0, bytes.len());
            state.bytes.extend_from_slice(&bytes[..landed]);
            drop(state);
            std::panic::panic_any(SimCrash);
        }
        if state.armed.short_write {
            state.armed.short_write = false;
            state.counters.short_writes += 1;
            let landed = state.rng.range_usize(0, bytes.len().saturating_sub(1));
            state.bytes.extend_from_slice(&bytes[..landed]);
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if let Some(capacity) = state.armed.capacity_bytes {
            let room = capacity.saturating_sub(len);
            if bytes.len() > room {
                state.counters.disk_full_writes += 1;
                state.bytes.extend_from_slice(&bytes[..room]);
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
        }
        state.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.lock();
        state.counters.syncs += 1;
        if state.armed.crash == Some(CrashPoint::BeforeSync) {
            state.armed.crash = None;
            state.counters.crashes_before_sync += 1;
            drop(state);
            std::panic::panic_any(SimCrash);
        }
        if state.armed.sync_failure {
            state.armed.sync_failure = false;
            state.counters.sync_failures += 1;
            state.sync_failed = true;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if state.sync_failed {
            // Linux may report success for a sync after a failed one, having
            // dropped the failed pages: the journal must not rely on it.
            state.violations.push(
                "an fdatasync after a failed one: the journal must have fail-stopped".to_string(),
            );
            return Ok(());
        }
        state.synced_len = state.bytes.len();
        Ok(())
    }

    fn read_all(&self) -> io::Result<Vec<u8>> {
        Ok(self.lock().bytes.clone())
    }

    fn truncate(&mut self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.lock();
        let len = usize::try_from(len_bytes).expect("a simulated journal fits in memory");
        state.bytes.truncate(len);
        // The truncation is synced, and with it everything before.
        state.synced_len = state.bytes.len();
        Ok(())
    }
}

impl JournalSource for SimDisk {
    fn open_reader(
        &self,
    ) -> Result<Option<JournalReader>, lockstep_sequencer::journal::JournalError> {
        let bytes = self.lock().bytes.clone();
        JournalReader::from_bytes(bytes).map(Some)
    }
}
