//! The journal writer: the append-only file every sequenced command goes to
//! before any output for it may leave the process. This module owns the
//! writer's state — the preallocated batch buffer, the file offset, and the
//! three seq marks (appended, written to the OS, durable) — the durability
//! policy's effect on them, fail-stop after any I/O failure, and the error
//! type shared with the reader. Opening an existing journal first recovers it
//! (`journal_reader::recover`): a torn tail is truncated, corruption in the
//! middle refuses the open. A journal can also live on a [`JournalDevice`]
//! (the simulator's disk) instead of a file; everything above is the same.

use crate::durability::DurabilityPolicy;
use crate::journal_backend::{Backend, BackendError, BackendOp, JournalBackendKind, JournalDevice};
use crate::journal_reader::{recover, recover_device, RecoveryReport};
use crate::journal_record::{
    encode_header, encode_record_into, HeaderError, JournalHeader, RecordError, SequencedCommand,
    HEADER_SIZE_BYTES, RECORD_SIZE_BYTES,
};
use core::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// The batch buffer size `Journal::open` uses: 1,024 records, 64 KiB.
pub const DEFAULT_BATCH_RECORDS_MAX: usize = 1024;

/// How to open a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    pub policy: DurabilityPolicy,
    /// Try io_uring first (Linux only); the plain file is used otherwise.
    pub prefer_io_uring: bool,
    /// Records the batch buffer holds. A batch larger than this is written
    /// in several writes, still covered by one `fdatasync` under `Batch`.
    pub batch_records_max: usize,
    /// The seq of the first record of a new journal. Ignored when the file
    /// already has a header, which then says what the first seq is.
    pub first_seq: u64,
}

impl JournalOptions {
    /// Options with io_uring preferred, the default batch buffer and a first
    /// seq of 1.
    pub const fn new(policy: DurabilityPolicy) -> JournalOptions {
        JournalOptions {
            policy,
            prefer_io_uring: true,
            batch_records_max: DEFAULT_BATCH_RECORDS_MAX,
            first_seq: 1,
        }
    }
}

/// The I/O failure that stopped a journal, kept so that every later call can
/// say why it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailStop {
    pub op: BackendOp,
    pub kind: io::ErrorKind,
    pub raw_os_error: Option<i32>,
    /// Where the failed write started, or for a sync, where the records it
    /// would have covered start (the first byte not yet known durable may
    /// be earlier).
    pub offset_bytes: u64,
}

impl fmt::Display for FailStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            BackendOp::Write => "write",
            BackendOp::Sync => "fdatasync",
        };
        write!(f, "{op} at byte offset {} failed", self.offset_bytes)?;
        match self.raw_os_error {
            Some(code) => write!(f, " ({})", io::Error::from_raw_os_error(code)),
            None => write!(f, " ({})", self.kind),
        }
    }
}

/// Everything that can go wrong opening, reading, recovering or writing a
/// journal. Each message is one line and names the offset or seq involved.
#[derive(Debug)]
pub enum JournalError {
    /// The options cannot work (a zero batch size, a first seq of 0).
    InvalidOptions(&'static str),
    /// Opening, reading, truncating or syncing outside the append path.
    Io { op: &'static str, source: io::Error },
    /// The file is not a journal this build can read.
    BadHeader(HeaderError),
    /// A record that is not a torn tail: either valid records follow it, or
    /// its CRC is valid and so no torn write explains it. Recovery stops
    /// here rather than drop records that may have been acknowledged.
    CorruptRecord {
        offset_bytes: u64,
        expected_seq: u64,
        problem: RecordError,
        /// Where the next record with a valid CRC starts, if one does.
        next_valid_offset_bytes: Option<u64>,
    },
    /// A valid record with the wrong seq: records are missing or reordered.
    SeqGap {
        offset_bytes: u64,
        expected_seq: u64,
        found_seq: u64,
    },
    /// `append` was given a seq other than the next one; nothing was written.
    SeqOutOfOrder { expected_seq: u64, found_seq: u64 },
    /// The journal has reached seq `u64::MAX` and cannot number another.
    SeqExhausted,
    /// A write failed; the journal is now fail-stopped.
    WriteFailed {
        offset_bytes: u64,
        source: io::Error,
    },
    /// An `fdatasync` failed; the journal is now fail-stopped, and nothing
    /// after `durable_seq` may be treated as durable.
    SyncFailed { durable_seq: u64, source: io::Error },
    /// An earlier write or sync failed, so the journal refuses all appends.
    FailStopped(FailStop),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::InvalidOptions(problem) => write!(f, "invalid journal options: {problem}"),
            JournalError::Io { op, source } => {
                write!(f, "journal I/O error while trying to {op}: {source}")
            }
            JournalError::BadHeader(problem) => write!(f, "bad journal header: {problem}"),
            JournalError::CorruptRecord {
                offset_bytes,
                expected_seq,
                problem,
                next_valid_offset_bytes: Some(next),
            } => write!(
                f,
                "corrupt journal record at byte offset {offset_bytes} (expected seq {expected_seq}): {problem}; a valid record follows at byte offset {next}, so this is not a torn tail and recovery stops"
            ),
            JournalError::CorruptRecord {
                offset_bytes,
                expected_seq,
                problem,
                next_valid_offset_bytes: None,
            } => write!(
                f,
                "corrupt journal record at byte offset {offset_bytes} (expected seq {expected_seq}): {problem}; its CRC is valid, so no torn write explains it and recovery stops"
            ),
            JournalError::SeqGap {
                offset_bytes,
                expected_seq,
                found_seq,
            } => write!(
                f,
                "seq gap in journal at byte offset {offset_bytes}: expected seq {expected_seq}, found seq {found_seq}; recovery stops"
            ),
            JournalError::SeqOutOfOrder {
                expected_seq,
                found_seq,
            } => write!(
                f,
                "append out of order: the journal expects seq {expected_seq}, got seq {found_seq}"
            ),
            JournalError::SeqExhausted => {
                write!(f, "the journal has reached seq {} and cannot append more", u64::MAX)
            }
            JournalError::WriteFailed {
                offset_bytes,
                source,
            } => write!(
                f,
                "journal write at byte offset {offset_bytes} failed: {source}; the journal is fail-stopped"
            ),
            JournalError::SyncFailed {
                durable_seq,
                source,
            } => write!(
                f,
                "journal fdatasync failed: {source}; nothing after seq {durable_seq} is durable and the journal is fail-stopped"
            ),
            JournalError::FailStopped(cause) => write!(
                f,
                "journal is fail-stopped after an earlier failure ({cause}); it accepts no further appends"
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. }
            | JournalError::WriteFailed { source, .. }
            | JournalError::SyncFailed { source, .. } => Some(source),
            JournalError::BadHeader(problem) => Some(problem),
            JournalError::CorruptRecord { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// The journal writer. One thread (the sequencer) owns it; appends are
/// buffered in a preallocated batch buffer and reach the file on `sync`, when
/// the buffer is full, or (under `Every`) at once.
pub struct Journal {
    // The backend is declared before the buffer so that it is dropped first:
    // an io_uring backend waits in `Drop` for any entry that may still read
    // the buffer.
    backend: Backend,
    /// `batch_records_max` records; the first `pending_bytes` are appended
    /// but not yet written.
    buffer: Box<[u8]>,
    pending_bytes: usize,
    policy: DurabilityPolicy,
    path: PathBuf,
    /// Where the first pending byte goes in the file.
    write_offset_bytes: u64,
    /// The seq the next `append` must carry.
    next_seq: u64,
    /// The highest seq handed to the OS (first seq − 1 if none).
    written_seq: u64,
    /// The highest seq durable under the policy (see `durable_seq`).
    durable_seq: u64,
    failure: Option<FailStop>,
    fallback_reason: Option<String>,
    recovery: RecoveryReport,
    inject_sync_failure: bool,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("backend", &self.backend.kind())
            .field("next_seq", &self.next_seq)
            .field("written_seq", &self.written_seq)
            .field("durable_seq", &self.durable_seq)
            .field("failure", &self.failure)
            .finish()
    }
}

impl Journal {
    /// Opens (creating if missing) the journal at `path` with the default
    /// batch buffer. See [`Journal::open_with`].
    pub fn open(
        path: impl AsRef<Path>,
        policy: DurabilityPolicy,
        prefer_io_uring: bool,
    ) -> Result<Journal, JournalError> {
        let mut options = JournalOptions::new(policy);
        options.prefer_io_uring = prefer_io_uring;
        Journal::open_with(path, &options)
    }

    /// Opens (creating if missing) the journal at `path`. An existing file is
    /// recovered first: a torn tail is truncated (see
    /// [`Journal::recovery_report`]), a corrupt middle or a bad header is an
    /// error. A new or empty file gets a header. Under a syncing policy the
    /// header of a new file, the parent directory entry, and the records of
    /// an existing file are made durable before this returns, so that
    /// `durable_seq` starts true.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &JournalOptions,
    ) -> Result<Journal, JournalError> {
        let buffer_bytes = checked_buffer_bytes(options)?;
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| JournalError::Io {
                op: "open the journal file",
                source,
            })?;
        let recovery = recover(path)?;
        let (backend, fallback_reason) = Backend::open(file, options.prefer_io_uring);
        Journal::finish_open(
            backend,
            fallback_reason,
            recovery,
            options,
            buffer_bytes,
            Some(path),
        )
    }

    /// Opens a journal on a [`JournalDevice`] instead of a file: the seam the
    /// simulator uses to run the real writer, recovery and fail-stop logic on
    /// a simulated disk. Recovery, the header of a new journal and the sync
    /// of a recovered one happen exactly as in [`Journal::open_with`]; only
    /// the directory entry, which a device does not have, is not synced.
    /// `options.prefer_io_uring` is ignored.
    pub fn open_on_device(
        mut device: Box<dyn JournalDevice>,
        options: &JournalOptions,
    ) -> Result<Journal, JournalError> {
        let buffer_bytes = checked_buffer_bytes(options)?;
        let recovery = recover_device(device.as_mut())?;
        Journal::finish_open(
            Backend::Device(device),
            None,
            recovery,
            options,
            buffer_bytes,
            None,
        )
    }

    /// The part of opening shared by files and devices, after recovery:
    /// make what is there durable (or write a new header) and set the marks.
    /// `path` is `None` for a device, which has no directory entry to sync.
    fn finish_open(
        mut backend: Backend,
        fallback_reason: Option<String>,
        recovery: RecoveryReport,
        options: &JournalOptions,
        buffer_bytes: usize,
        path: Option<&Path>,
    ) -> Result<Journal, JournalError> {
        let policy = options.policy;
        let (header, write_offset_bytes) = match recovery.header {
            Some(header) => {
                if policy.syncs() {
                    // A previous process may have written this file under a
                    // weaker policy, or crashed between write and sync; the
                    // page cache still holds what it wrote, so one sync of
                    // the file and its directory entry makes it durable
                    // before anyone relies on `durable_seq`.
                    backend.sync().map_err(|error| JournalError::Io {
                        op: "fdatasync the recovered journal",
                        source: error.source,
                    })?;
                    if let Some(path) = path {
                        sync_parent_directory(path)?;
                    }
                }
                (header, recovery.valid_len_bytes)
            }
            None => {
                let header = JournalHeader {
                    first_seq: options.first_seq,
                };
                backend
                    .write_at(0, &encode_header(&header), policy.syncs())
                    .map_err(|error| JournalError::Io {
                        op: "write the journal header",
                        source: error.source,
                    })?;
                if policy.syncs() {
                    if let Some(path) = path {
                        sync_parent_directory(path)?;
                    }
                }
                (header, HEADER_SIZE_BYTES as u64)
            }
        };
        let next_seq = match recovery.last_seq {
            // A crafted file can end at seq u64::MAX; saturate so that it
            // cannot overflow, and let `append` refuse to go further.
            Some(last_seq) => last_seq.saturating_add(1),
            None => header.first_seq,
        };
        Ok(Journal {
            backend,
            buffer: vec![0u8; buffer_bytes].into_boxed_slice(),
            pending_bytes: 0,
            policy,
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            write_offset_bytes,
            next_seq,
            written_seq: next_seq - 1,
            durable_seq: next_seq - 1,
            failure: None,
            fallback_reason,
            recovery,
            inject_sync_failure: false,
        })
    }

    /// `fdatasync` of everything the journal holds, whatever the policy:
    /// start-up makes the records a crashed process left unsynced durable
    /// before anything derived from them is published. Fail-stops like any
    /// other sync.
    pub fn sync_everything_written(&mut self) -> Result<(), JournalError> {
        self.check_running()?;
        if let Err(error) = self.backend.sync() {
            self.failure = Some(FailStop {
                op: error.op,
                kind: error.source.kind(),
                raw_os_error: error.source.raw_os_error(),
                offset_bytes: self.write_offset_bytes,
            });
            return Err(JournalError::SyncFailed {
                durable_seq: self.durable_seq,
                source: error.source,
            });
        }
        Ok(())
    }

    /// Appends one record. `command.seq` must be [`Journal::next_seq`]. Under
    /// `Every` the record is written and synced before this returns; under
    /// `None` and `Batch` it is buffered (and written without a sync if the
    /// buffer is full) until [`Journal::sync`]. Never allocates.
    pub fn append(&mut self, command: &SequencedCommand) -> Result<(), JournalError> {
        self.check_running()?;
        if command.seq != self.next_seq {
            return Err(JournalError::SeqOutOfOrder {
                expected_seq: self.next_seq,
                found_seq: command.seq,
            });
        }
        let following_seq = self
            .next_seq
            .checked_add(1)
            .ok_or(JournalError::SeqExhausted)?;
        if self.pending_bytes == self.buffer.len() {
            self.flush(false)?;
        }
        let start = self.pending_bytes;
        let slot: &mut [u8; RECORD_SIZE_BYTES] = (&mut self.buffer
            [start..start + RECORD_SIZE_BYTES])
            .try_into()
            .map_err(|_| JournalError::InvalidOptions("batch buffer is not record-aligned"))?;
        encode_record_into(command, slot);
        self.pending_bytes += RECORD_SIZE_BYTES;
        self.next_seq = following_seq;
        if self.policy == DurabilityPolicy::Every {
            self.flush(true)?;
        }
        Ok(())
    }

    /// Appends every command in order; stops at the first error.
    pub fn append_batch(&mut self, commands: &[SequencedCommand]) -> Result<(), JournalError> {
        commands.iter().try_for_each(|command| self.append(command))
    }

    /// Writes every buffered record and makes it as durable as the policy
    /// allows: `Batch` issues one `fdatasync` covering everything written
    /// since the last one, `None` only writes, `Every` has nothing left to
    /// do. Returns [`Journal::durable_seq`].
    pub fn sync(&mut self) -> Result<u64, JournalError> {
        self.check_running()?;
        self.flush(self.policy.syncs())?;
        Ok(self.durable_seq)
    }

    /// The highest seq known durable under the policy: covered by a completed
    /// `fdatasync` under `Batch` and `Every`. Under `None` it is the highest
    /// seq written to the OS, which survives a process crash but not a power
    /// loss — a weaker promise.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// The highest seq handed to the OS with `write`.
    pub fn written_seq(&self) -> u64 {
        self.written_seq
    }

    /// The seq the next `append` must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn policy(&self) -> DurabilityPolicy {
        self.policy
    }

    /// The backend that is writing. `IoUring` only if it was preferred and
    /// could be set up.
    pub fn backend(&self) -> JournalBackendKind {
        self.backend.kind()
    }

    /// Why io_uring was preferred but not used (setup refused, opcodes
    /// missing, not Linux); `None` if it was used or not asked for.
    pub fn backend_fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What recovery found and did when this journal was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The failure that stopped this journal, if one did.
    pub fn fail_stop(&self) -> Option<FailStop> {
        self.failure
    }

    /// A fault-injection hook for tests: the next `fdatasync` this journal
    /// issues writes its data but reports failure, as a disk error would.
    #[doc(hidden)]
    pub fn inject_sync_failure_for_tests(&mut self) {
        self.inject_sync_failure = true;
    }

    fn check_running(&self) -> Result<(), JournalError> {
        match self.failure {
            Some(cause) => Err(JournalError::FailStopped(cause)),
            None => Ok(()),
        }
    }

    /// Writes the pending records and, with `sync_after`, issues the
    /// `fdatasync` that covers them and anything written unsynced before.
    /// Any failure fail-stops the journal.
    fn flush(&mut self, sync_after: bool) -> Result<(), JournalError> {
        let needs_sync = sync_after && self.written_seq > self.durable_seq;
        if self.pending_bytes == 0 && !needs_sync {
            return Ok(());
        }
        let bytes = &self.buffer[..self.pending_bytes];
        let result = if sync_after && self.inject_sync_failure {
            self.inject_sync_failure = false;
            self.backend
                .write_at(self.write_offset_bytes, bytes, false)
                .and(Err(BackendError {
                    op: BackendOp::Sync,
                    source: io::Error::other("injected fdatasync failure"),
                }))
        } else if bytes.is_empty() {
            self.backend.sync()
        } else {
            self.backend
                .write_at(self.write_offset_bytes, bytes, sync_after)
        };
        if let Err(error) = result {
            let offset_bytes = self.write_offset_bytes;
            self.failure = Some(FailStop {
                op: error.op,
                kind: error.source.kind(),
                raw_os_error: error.source.raw_os_error(),
                offset_bytes,
            });
            return Err(match error.op {
                BackendOp::Write => JournalError::WriteFailed {
                    offset_bytes,
                    source: error.source,
                },
                BackendOp::Sync => JournalError::SyncFailed {
                    durable_seq: self.durable_seq,
                    source: error.source,
                },
            });
        }
        self.write_offset_bytes += self.pending_bytes as u64;
        self.pending_bytes = 0;
        self.written_seq = self.next_seq - 1;
        if sync_after || !self.policy.syncs() {
            self.durable_seq = self.written_seq;
        }
        Ok(())
    }
}

/// Checks the options and returns the batch buffer's size in bytes.
fn checked_buffer_bytes(options: &JournalOptions) -> Result<usize, JournalError> {
    if options.batch_records_max == 0 {
        return Err(JournalError::InvalidOptions(
            "batch_records_max must be at least 1",
        ));
    }
    if options.first_seq == 0 {
        return Err(JournalError::InvalidOptions("first_seq must be at least 1"));
    }
    options
        .batch_records_max
        .checked_mul(RECORD_SIZE_BYTES)
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or(JournalError::InvalidOptions(
            "batch_records_max is too large",
        ))
}

/// Makes a new file's directory entry durable: without it, a power loss can
/// lose the whole file even though its data was synced.
fn sync_parent_directory(path: &Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|source| JournalError::Io {
                op: "fsync the journal's directory",
                source,
            })
    }
    #[cfg(not(unix))]
    {
        // Other systems cannot open a directory as a file; their journals
        // rely on the file system's own ordering of metadata.
        let _ = path;
        Ok(())
    }
}
