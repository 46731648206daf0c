//! The two ways the journal puts bytes on disk, behind one interface chosen at
//! run time: io_uring on Linux (a positioned write, with an `fdatasync` linked
//! after it when the policy asks for one, submitted together and reaped
//! together) and a plain `std::fs::File` (`write_all` at the end of the file,
//! then `sync_data`). This module owns the system calls and nothing else: it
//! knows neither records nor seqs, and every failure it sees is returned, never
//! retried, because after a failed `fdatasync` the kernel may already have
//! dropped the dirty pages and a retry that succeeds would prove nothing.
//!
//! A third backend, [`JournalDevice`], is the seam for storage that is not a
//! file: the deterministic simulator (`lockstep-sim`) plugs a simulated disk
//! in here, with injected faults, and so exercises the journal's real record
//! format, recovery and fail-stop logic without touching the file system.
//! Production never uses it.

use core::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// Which backend a journal writes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalBackendKind {
    /// io_uring: write and `fdatasync` submitted as one linked chain.
    IoUring,
    /// `std::fs::File`: `write_all` then `sync_data`, two system calls.
    PlainFile,
    /// A [`JournalDevice`] the caller provides (the simulator's disk).
    Device,
}

impl fmt::Display for JournalBackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalBackendKind::IoUring => write!(f, "io_uring"),
            JournalBackendKind::PlainFile => write!(f, "plain file"),
            JournalBackendKind::Device => write!(f, "provided device"),
        }
    }
}

/// Which system call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendOp {
    Write,
    Sync,
}

/// Storage for a journal that is not a file, with the semantics of one: bytes
/// written are visible to readers at once, and survive a crash only once a
/// `sync` covering them has succeeded. The journal calls it exactly as it
/// calls a file: appends at increasing offsets, `sync` for `fdatasync`, and
/// at open `read_all` plus `truncate` for recovery. Errors are returned as
/// the system calls would return them; the journal fail-stops on the first.
pub trait JournalDevice: Send {
    /// Writes all of `bytes` at `offset_bytes`. A failure may leave a prefix
    /// of them written, as a short write followed by an error does.
    fn write_at(&mut self, offset_bytes: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Every byte a reader would see now, synced or not.
    fn read_all(&self) -> io::Result<Vec<u8>>;
    /// Cuts the storage to `len_bytes` and makes the cut durable: recovery
    /// dropping a torn tail (`set_len` then `fdatasync`).
    fn truncate(&mut self, len_bytes: u64) -> io::Result<()>;
}

/// A failed write or sync, as the backend saw it.
#[derive(Debug)]
pub(crate) struct BackendError {
    pub(crate) op: BackendOp,
    pub(crate) source: io::Error,
}

impl BackendError {
    fn write(source: io::Error) -> BackendError {
        BackendError {
            op: BackendOp::Write,
            source,
        }
    }

    fn sync(source: io::Error) -> BackendError {
        BackendError {
            op: BackendOp::Sync,
            source,
        }
    }
}

/// The backend a journal writes through. An enum rather than a trait object
/// so that the dispatch is a branch the compiler can see through. The ring is
/// boxed because it is several times larger than the plain file; the box is
/// made once, at open.
pub(crate) enum Backend {
    #[cfg(target_os = "linux")]
    IoUring(Box<uring::UringWriter>),
    Plain(FileWriter),
    Device(Box<dyn JournalDevice>),
}

impl Backend {
    /// Wraps `file`, freshly opened (its position is 0). With
    /// `prefer_io_uring` it tries io_uring first; if that cannot be set up
    /// (no Linux, a kernel without the opcodes, or a container that forbids
    /// `io_uring_setup` with EPERM or ENOSYS) it falls back to the plain file
    /// and returns why.
    pub(crate) fn open(file: File, prefer_io_uring: bool) -> (Backend, Option<String>) {
        if !prefer_io_uring {
            return (Backend::Plain(FileWriter::new(file)), None);
        }
        #[cfg(target_os = "linux")]
        {
            match uring::UringWriter::new_ring() {
                Ok(ring) => (
                    Backend::IoUring(Box::new(uring::UringWriter::new(ring, file))),
                    None,
                ),
                Err(reason) => (Backend::Plain(FileWriter::new(file)), Some(reason)),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            (
                Backend::Plain(FileWriter::new(file)),
                Some("io_uring exists only on Linux".to_string()),
            )
        }
    }

    pub(crate) fn kind(&self) -> JournalBackendKind {
        match self {
            #[cfg(target_os = "linux")]
            Backend::IoUring(_) => JournalBackendKind::IoUring,
            Backend::Plain(_) => JournalBackendKind::PlainFile,
            Backend::Device(_) => JournalBackendKind::Device,
        }
    }

    /// Writes all of `bytes` at `offset_bytes` and, with `sync_after`, makes
    /// them (and everything written before) durable with `fdatasync`. Returns
    /// only when both have completed.
    pub(crate) fn write_at(
        &mut self,
        offset_bytes: u64,
        bytes: &[u8],
        sync_after: bool,
    ) -> Result<(), BackendError> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::IoUring(writer) => writer.write_at(offset_bytes, bytes, sync_after),
            Backend::Plain(writer) => writer.write_at(offset_bytes, bytes, sync_after),
            Backend::Device(device) => {
                device
                    .write_at(offset_bytes, bytes)
                    .map_err(BackendError::write)?;
                if sync_after {
                    device.sync().map_err(BackendError::sync)?;
                }
                Ok(())
            }
        }
    }

    /// `fdatasync` alone, for records already written.
    pub(crate) fn sync(&mut self) -> Result<(), BackendError> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::IoUring(writer) => writer.sync(),
            Backend::Plain(writer) => writer.sync(),
            Backend::Device(device) => device.sync().map_err(BackendError::sync),
        }
    }
}

/// The portable backend: the file's own position, `write_all`, `sync_data`.
pub(crate) struct FileWriter {
    file: File,
    /// The file's position as this writer last left it.
    position_bytes: u64,
}

impl FileWriter {
    fn new(file: File) -> FileWriter {
        FileWriter {
            file,
            position_bytes: 0,
        }
    }

    fn write_at(
        &mut self,
        offset_bytes: u64,
        bytes: &[u8],
        sync_after: bool,
    ) -> Result<(), BackendError> {
        // The journal only appends, so after the first write the position
        // already matches and no seek is made; the first write after opening
        // an existing journal seeks to its end.
        if offset_bytes != self.position_bytes {
            self.file
                .seek(SeekFrom::Start(offset_bytes))
                .map_err(BackendError::write)?;
            self.position_bytes = offset_bytes;
        }
        self.file.write_all(bytes).map_err(BackendError::write)?;
        self.position_bytes += bytes.len() as u64;
        if sync_after {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(BackendError::sync)
    }
}

#[cfg(target_os = "linux")]
mod uring {
    //! The io_uring backend. It keeps one small ring and uses it
    //! synchronously: submit a write (and a linked `fdatasync`), wait for
    //! every completion, check every result. The gain over two system calls
    //! is one kernel entry per commit instead of two, and a design that can
    //! later overlap the next batch's encoding with the current write.

    use super::BackendError;
    use io_uring::{opcode, squeue, types, IoUring};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// Submission queue entries: a write and its linked sync are the most
    /// ever in flight.
    const RING_ENTRIES: u32 = 8;
    /// The kernel takes a `u32` length; larger writes go in chunks, and only
    /// the last chunk carries the linked sync.
    const MAX_WRITE_CHUNK_BYTES: usize = 1 << 30;
    /// `user_data` of the write entry, also its index in the results array.
    const WRITE_SLOT: u64 = 0;
    /// `user_data` of the sync entry.
    const SYNC_SLOT: u64 = 1;
    /// How often `Drop` retries waiting for entries still in flight.
    const DROP_WAIT_ATTEMPTS: u32 = 16;
    /// `ECANCELED` on Linux (x86-64 and aarch64), the result of a linked
    /// entry whose predecessor failed or was short. Spelled out rather than
    /// taken from `libc` to keep the dependency list as it is.
    const ECANCELED: i32 = 125;
    /// `EIO` on Linux (x86-64 and aarch64).
    const EIO: i32 = 5;

    pub(crate) struct UringWriter {
        ring: IoUring,
        file: File,
        /// Entries submitted whose completions have not been reaped. Only
        /// non-zero after `io_uring_enter` itself failed; `Drop` then waits
        /// for them so that the kernel is not left reading a freed buffer.
        in_flight: usize,
    }

    impl UringWriter {
        /// Creates a ring and checks that the kernel supports the two opcodes
        /// used (both since Linux 5.6). Any failure is a reason to fall back.
        pub(crate) fn new_ring() -> Result<IoUring, String> {
            let ring = IoUring::new(RING_ENTRIES)
                .map_err(|error| format!("io_uring_setup failed: {error}"))?;
            let mut probe = io_uring::Probe::new();
            ring.submitter()
                .register_probe(&mut probe)
                .map_err(|error| format!("io_uring opcode probe failed: {error}"))?;
            if !probe.is_supported(opcode::Write::CODE) || !probe.is_supported(opcode::Fsync::CODE)
            {
                return Err("kernel's io_uring lacks IORING_OP_WRITE or IORING_OP_FSYNC".into());
            }
            Ok(ring)
        }

        pub(crate) fn new(ring: IoUring, file: File) -> UringWriter {
            UringWriter {
                ring,
                file,
                in_flight: 0,
            }
        }

        fn fd(&self) -> types::Fd {
            types::Fd(self.file.as_raw_fd())
        }

        fn sync_entry(&self) -> squeue::Entry {
            opcode::Fsync::new(self.fd())
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(SYNC_SLOT)
        }

        pub(crate) fn write_at(
            &mut self,
            offset_bytes: u64,
            bytes: &[u8],
            sync_after: bool,
        ) -> Result<(), BackendError> {
            let mut written_bytes = 0usize;
            while written_bytes < bytes.len() {
                let rest = &bytes[written_bytes..];
                let chunk_len = rest.len().min(MAX_WRITE_CHUNK_BYTES);
                let link_sync = sync_after && chunk_len == rest.len();
                // The cast is exact: chunk_len is at most MAX_WRITE_CHUNK_BYTES.
                let write = opcode::Write::new(self.fd(), rest.as_ptr(), chunk_len as u32)
                    .offset(offset_bytes + written_bytes as u64)
                    .build()
                    .user_data(WRITE_SLOT);
                let results = if link_sync {
                    let entries = [write.flags(squeue::Flags::IO_LINK), self.sync_entry()];
                    // SAFETY: the write entry points into `bytes`, which is
                    // borrowed for this whole call and only read by the
                    // kernel; `submit` returns only after both completions
                    // are reaped, or leaves `in_flight` set so that `Drop`
                    // waits for them. The fd stays open as long as `self`.
                    unsafe { self.submit(&entries)? }
                } else {
                    // SAFETY: as above, for a single write entry.
                    unsafe { self.submit(&[write])? }
                };
                let write_result = results[WRITE_SLOT as usize];
                if write_result < 0 {
                    return Err(BackendError::write(io::Error::from_raw_os_error(
                        -write_result,
                    )));
                }
                if write_result == 0 {
                    return Err(BackendError::write(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "io_uring write wrote 0 bytes",
                    )));
                }
                // The kernel never reports more than was asked; clamp anyway
                // so that a surprise cannot make us skip bytes.
                let advanced = (write_result as usize).min(chunk_len);
                written_bytes += advanced;
                if link_sync {
                    let sync_result = results[SYNC_SLOT as usize];
                    if advanced == chunk_len {
                        if sync_result < 0 {
                            return Err(BackendError::sync(io::Error::from_raw_os_error(
                                -sync_result,
                            )));
                        }
                    } else if sync_result < 0 && sync_result != -ECANCELED {
                        // A short write cancels the linked sync (ECANCELED),
                        // and the loop resubmits the rest with a new one. Any
                        // other sync error is a real failure and is never
                        // ignored, even though a later sync might succeed.
                        return Err(BackendError::sync(io::Error::from_raw_os_error(
                            -sync_result,
                        )));
                    }
                }
            }
            if bytes.is_empty() && sync_after {
                return self.sync();
            }
            Ok(())
        }

        pub(crate) fn sync(&mut self) -> Result<(), BackendError> {
            let entries = [self.sync_entry()];
            // SAFETY: an fsync entry references no memory, only the fd, which
            // stays open as long as `self`.
            let results = unsafe { self.submit(&entries)? };
            let sync_result = results[SYNC_SLOT as usize];
            if sync_result < 0 {
                return Err(BackendError::sync(io::Error::from_raw_os_error(
                    -sync_result,
                )));
            }
            Ok(())
        }

        /// Pushes `entries` (at most two, with `user_data` 0 or 1), submits
        /// them and waits until every one has completed. Returns each
        /// entry's result indexed by its `user_data`.
        ///
        /// # Safety
        ///
        /// Every buffer an entry points to must stay valid and unmodified
        /// until this returns `Ok`; if it returns an error, until `self` is
        /// dropped (whose `Drop` waits for entries still in flight).
        unsafe fn submit(&mut self, entries: &[squeue::Entry]) -> Result<[i32; 2], BackendError> {
            // SAFETY: the caller guarantees the entries' buffers outlive their
            // completions, which is push's contract.
            unsafe { self.ring.submission().push_multiple(entries) }.map_err(|_| {
                BackendError::write(io::Error::other(
                    "io_uring submission queue unexpectedly full",
                ))
            })?;
            self.in_flight += entries.len();
            // A sync that never completes is reported as a failure rather
            // than as success, so results start as an error.
            let mut results = [-EIO; 2];
            while self.in_flight > 0 {
                match self.ring.submit_and_wait(self.in_flight) {
                    Ok(_) => {}
                    // A signal interrupted the wait; the entries are already
                    // with the kernel, so wait again.
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        // Whether the entries reached the kernel is unknown,
                        // so `in_flight` stays set and the journal fail-stops.
                        let op = if entries.len() == 1 && entries[0].get_user_data() == SYNC_SLOT {
                            super::BackendOp::Sync
                        } else {
                            super::BackendOp::Write
                        };
                        return Err(BackendError { op, source: error });
                    }
                }
                for completion in self.ring.completion() {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if let Some(slot) = results.get_mut(completion.user_data() as usize) {
                        *slot = completion.result();
                    }
                }
            }
            Ok(results)
        }
    }

    impl Drop for UringWriter {
        fn drop(&mut self) {
            // Normally nothing is in flight. If `io_uring_enter` failed
            // mid-call, entries may still reference the journal's buffer,
            // which is dropped after this writer; wait for them (bounded, as
            // a ring that keeps failing will not recover).
            let mut attempts = 0;
            while self.in_flight > 0 && attempts < DROP_WAIT_ATTEMPTS {
                attempts += 1;
                if self.ring.submit_and_wait(self.in_flight).is_ok() {
                    for _ in self.ring.completion() {
                        self.in_flight = self.in_flight.saturating_sub(1);
                    }
                }
            }
        }
    }
}
