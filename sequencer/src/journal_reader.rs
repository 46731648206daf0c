//! Reading a journal back and recovering it after a crash. This module owns
//! the recovery rules: records are read in order, each checked for its CRC,
//! its fields and seq continuity (exactly one more than the previous, the
//! first equal to the header's `first_seq`). A torn tail — a final partial
//! record, or final records that are all zero or fail their CRC with no valid
//! record after them — is what a crash mid-write leaves, and is dropped. A
//! bad record with a valid record after it, a record whose CRC is valid but
//! whose fields are not, and a seq gap are not explained by a crash; they stop
//! recovery with an error naming the byte offset and the seq expected, because
//! dropping them could drop commands whose outputs a client has seen. Nothing
//! here panics, whatever the file holds.
//!
//! The same rules read a journal that lives on a [`JournalDevice`] (the
//! simulator's disk) rather than in a file: [`JournalReader::from_bytes`],
//! [`recover_device`], and [`JournalSource`], which is how rebuilds find
//! the journal whichever kind it is.

use crate::journal::JournalError;
use crate::journal_backend::JournalDevice;
use crate::journal_record::{
    decode_header, decode_record, HeaderError, JournalHeader, RecordError, SequencedCommand,
    HEADER_SIZE_BYTES, JOURNAL_MAGIC, RECORD_SIZE_BYTES,
};
use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads are buffered in chunks of this size; records are tiny.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Why the end of a file was judged a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornTailReason {
    /// The file is shorter than a header and starts like one: a crash while
    /// the journal was being created.
    PartialHeader,
    /// The file is all zero bytes, header included: its size reached the
    /// disk, its data never did.
    AllZeroFile,
    /// The last record is shorter than a record.
    PartialRecord,
    /// A record fails its CRC and no valid record follows.
    CrcMismatch,
    /// A record is all zero bytes and no valid record follows.
    AllZeroRecord,
}

impl fmt::Display for TornTailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TornTailReason::PartialHeader => "partial header",
            TornTailReason::AllZeroFile => "file is all zero bytes",
            TornTailReason::PartialRecord => "partial record",
            TornTailReason::CrcMismatch => "CRC mismatch with no valid record after it",
            TornTailReason::AllZeroRecord => "zeroed record with no valid record after it",
        })
    }
}

/// The torn tail at the end of a journal: everything from `offset_bytes` to
/// the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub offset_bytes: u64,
    pub bytes_dropped: u64,
    pub reason: TornTailReason,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn tail of {} bytes at byte offset {} ({})",
            self.bytes_dropped, self.offset_bytes, self.reason
        )
    }
}

/// What a scan or recovery found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `None` for an empty file (or one whose only content was a torn
    /// header): a valid journal with no records, not yet given a header.
    pub header: Option<JournalHeader>,
    /// Valid records, in order from `first_seq`.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The file length up to the end of the last valid record (or header).
    pub valid_len_bytes: u64,
    /// The file length before any truncation.
    pub file_len_bytes: u64,
    pub torn_tail: Option<TornTail>,
    /// True if `recover` truncated the file to `valid_len_bytes`.
    pub truncated: bool,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => write!(
                f,
                "{} records (seq {first}..={last}), {} valid bytes",
                self.records, self.valid_len_bytes
            )?,
            _ => write!(f, "no records, {} valid bytes", self.valid_len_bytes)?,
        }
        match self.torn_tail {
            Some(tail) if self.truncated => write!(f, "; {tail}, truncated"),
            Some(tail) => write!(f, "; {tail}, not truncated"),
            None => write!(f, "; no torn tail"),
        }
    }
}

/// What a journal reader reads from: a file, or a device's bytes.
trait Source: Read + Seek + Send {}

impl<T: Read + Seek + Send> Source for T {}

/// Iterates a journal's valid records. At the end of the valid records it
/// returns `None`, with [`JournalReader::torn_tail`] saying whether a torn
/// tail followed. A record that stops recovery is returned once as an error;
/// iteration ends after it.
pub struct JournalReader {
    // A boxed reader so that a file and a device's bytes read through the
    // same code; the buffer makes the dynamic call once per 64 KiB.
    reader: BufReader<Box<dyn Source>>,
    header: Option<JournalHeader>,
    file_len_bytes: u64,
    /// The offset of the next record to read (the end of the valid part).
    offset_bytes: u64,
    expected_seq: u64,
    /// Set once the record with seq `u64::MAX` has been read: no seq can
    /// follow it, so any further record is a seq error, never a repeat.
    seqs_exhausted: bool,
    finished: bool,
    torn_tail: Option<TornTail>,
}

impl JournalReader {
    /// Opens `path` and checks its header. An empty file is a valid empty
    /// journal; a torn header (see [`TornTailReason`]) reads as an empty
    /// journal with a torn tail; any other bad header is an error.
    pub fn open(path: impl AsRef<Path>) -> Result<JournalReader, JournalError> {
        let file = File::open(path.as_ref()).map_err(|source| JournalError::Io {
            op: "open the journal for reading",
            source,
        })?;
        let file_len_bytes = file
            .metadata()
            .map_err(|source| JournalError::Io {
                op: "read the journal's length",
                source,
            })?
            .len();
        JournalReader::from_reader(Box::new(file), file_len_bytes)
    }

    /// A reader over a journal held in memory: a device's bytes, as
    /// [`JournalDevice::read_all`] returns them. Checks the header as
    /// [`JournalReader::open`] does.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<JournalReader, JournalError> {
        let len_bytes = bytes.len() as u64;
        JournalReader::from_reader(Box::new(Cursor::new(bytes)), len_bytes)
    }

    fn from_reader(
        source: Box<dyn Source>,
        file_len_bytes: u64,
    ) -> Result<JournalReader, JournalError> {
        let mut reader = JournalReader {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, source),
            header: None,
            file_len_bytes,
            offset_bytes: 0,
            expected_seq: 1,
            seqs_exhausted: false,
            finished: false,
            torn_tail: None,
        };
        reader.read_header()?;
        Ok(reader)
    }

    fn read_header(&mut self) -> Result<(), JournalError> {
        let header_len = HEADER_SIZE_BYTES as u64;
        if self.file_len_bytes == 0 {
            self.finished = true;
            return Ok(());
        }
        if self.file_len_bytes < header_len {
            // Bounded by the check above, so the cast is exact.
            let mut prefix = [0u8; HEADER_SIZE_BYTES];
            let prefix = &mut prefix[..self.file_len_bytes as usize];
            self.read_exact(prefix, "read the journal header")?;
            let compared = prefix.len().min(JOURNAL_MAGIC.len());
            let starts_like_header = prefix[..compared] == JOURNAL_MAGIC[..compared];
            if starts_like_header || prefix.iter().all(|&byte| byte == 0) {
                self.set_torn_tail(0, TornTailReason::PartialHeader);
                return Ok(());
            }
            return Err(JournalError::BadHeader(HeaderError::TooShort {
                len_bytes: self.file_len_bytes,
            }));
        }
        let mut bytes = [0u8; HEADER_SIZE_BYTES];
        self.read_exact(&mut bytes, "read the journal header")?;
        if bytes.iter().all(|&byte| byte == 0) && self.rest_is_zero()? {
            self.set_torn_tail(0, TornTailReason::AllZeroFile);
            return Ok(());
        }
        let header = decode_header(&bytes).map_err(JournalError::BadHeader)?;
        self.header = Some(header);
        self.expected_seq = header.first_seq;
        self.offset_bytes = header_len;
        Ok(())
    }

    /// The header, if the file has one.
    pub fn header(&self) -> Option<JournalHeader> {
        self.header
    }

    /// The torn tail found at the end of the valid records; meaningful once
    /// iteration has returned `None`.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn_tail
    }

    /// The end of the last valid record read so far.
    pub fn valid_len_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// The seq the next record must carry.
    pub fn expected_seq(&self) -> u64 {
        self.expected_seq
    }

    /// The file's length when it was opened.
    pub fn file_len_bytes(&self) -> u64 {
        self.file_len_bytes
    }

    /// Moves straight to the record of `seq`, without reading (or checking)
    /// the records before it: records are all the same size, so its offset
    /// is known. Rebuilding and catching up use it to skip what they have
    /// already applied, rather than read the whole journal from its start
    /// each time. The record found there is checked as usual, seq included,
    /// when it is read. Does nothing if `seq` is not ahead of the next
    /// record; past the end, the reader is at the end.
    pub fn skip_to_seq(&mut self, seq: u64) -> Result<(), JournalError> {
        if self.finished || self.header.is_none() || seq <= self.expected_seq {
            return Ok(());
        }
        let records = seq - self.expected_seq;
        let target = records
            .checked_mul(RECORD_SIZE_BYTES as u64)
            .and_then(|bytes| bytes.checked_add(self.offset_bytes))
            .filter(|&offset| offset <= self.file_len_bytes);
        let Some(target) = target else {
            // Past the end: nothing more to read, and no torn tail to report
            // (recovery, which reports one, never skips).
            self.finished = true;
            return Ok(());
        };
        self.reader
            .seek(SeekFrom::Start(target))
            .map_err(|source| JournalError::Io {
                op: "seek in the journal",
                source,
            })?;
        self.offset_bytes = target;
        self.expected_seq = seq;
        Ok(())
    }

    fn read_exact(&mut self, out: &mut [u8], op: &'static str) -> Result<(), JournalError> {
        self.reader
            .read_exact(out)
            .map_err(|source| JournalError::Io { op, source })
    }

    fn set_torn_tail(&mut self, offset_bytes: u64, reason: TornTailReason) {
        self.finished = true;
        self.torn_tail = Some(TornTail {
            offset_bytes,
            bytes_dropped: self.file_len_bytes - offset_bytes,
            reason,
        });
    }

    /// True if every byte from the reader's position to the end is zero.
    fn rest_is_zero(&mut self) -> Result<bool, JournalError> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(read) => {
                    if chunk[..read].iter().any(|&byte| byte != 0) {
                        return Ok(false);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(JournalError::Io {
                        op: "read the journal",
                        source,
                    })
                }
            }
        }
    }

    /// After a record that may be torn at `bad_offset_bytes` (the reader is
    /// just past it), finds the first later whole record slot with a valid
    /// CRC, if any. A valid record after a bad one means the bad one is not
    /// the tail of an interrupted write.
    fn next_valid_slot(&mut self, bad_offset_bytes: u64) -> Result<Option<u64>, JournalError> {
        let record_len = RECORD_SIZE_BYTES as u64;
        let mut offset_bytes = bad_offset_bytes + record_len;
        let mut slot = [0u8; RECORD_SIZE_BYTES];
        while self.file_len_bytes - offset_bytes >= record_len {
            self.read_exact(&mut slot, "read the journal")?;
            match decode_record(&slot) {
                Err(problem) if problem.may_be_torn_write() => {}
                _ => return Ok(Some(offset_bytes)),
            }
            offset_bytes += record_len;
        }
        Ok(None)
    }
}

impl Iterator for JournalReader {
    type Item = Result<SequencedCommand, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let record_len = RECORD_SIZE_BYTES as u64;
        let offset_bytes = self.offset_bytes;
        let remaining_bytes = self.file_len_bytes.saturating_sub(offset_bytes);
        if remaining_bytes == 0 {
            self.finished = true;
            return None;
        }
        if remaining_bytes < record_len {
            self.set_torn_tail(offset_bytes, TornTailReason::PartialRecord);
            return None;
        }
        let mut slot = [0u8; RECORD_SIZE_BYTES];
        if let Err(error) = self.read_exact(&mut slot, "read the journal") {
            self.finished = true;
            return Some(Err(error));
        }
        match decode_record(&slot) {
            Ok(record) if record.seq == self.expected_seq && !self.seqs_exhausted => {
                self.offset_bytes += record_len;
                // A journal cannot reach u64::MAX records, but a crafted
                // header can start there: after it the seqs are used up.
                match self.expected_seq.checked_add(1) {
                    Some(next) => self.expected_seq = next,
                    None => self.seqs_exhausted = true,
                }
                Some(Ok(record))
            }
            Ok(record) => {
                self.finished = true;
                Some(Err(JournalError::SeqGap {
                    offset_bytes,
                    expected_seq: self.expected_seq,
                    found_seq: record.seq,
                }))
            }
            Err(problem) if problem.may_be_torn_write() => match self.next_valid_slot(offset_bytes)
            {
                Ok(None) => {
                    let reason = if problem == RecordError::AllZero {
                        TornTailReason::AllZeroRecord
                    } else {
                        TornTailReason::CrcMismatch
                    };
                    self.set_torn_tail(offset_bytes, reason);
                    None
                }
                Ok(Some(next_valid_offset_bytes)) => {
                    self.finished = true;
                    Some(Err(JournalError::CorruptRecord {
                        offset_bytes,
                        expected_seq: self.expected_seq,
                        problem,
                        next_valid_offset_bytes: Some(next_valid_offset_bytes),
                    }))
                }
                Err(error) => {
                    self.finished = true;
                    Some(Err(error))
                }
            },
            Err(problem) => {
                self.finished = true;
                Some(Err(JournalError::CorruptRecord {
                    offset_bytes,
                    expected_seq: self.expected_seq,
                    problem,
                    next_valid_offset_bytes: None,
                }))
            }
        }
    }
}

/// Reads the whole journal at `path` and reports what recovery would do,
/// without changing the file. Errors exactly where [`recover`] would.
pub fn scan(path: impl AsRef<Path>) -> Result<RecoveryReport, JournalError> {
    scan_reader(JournalReader::open(path)?)
}

/// [`scan`] over an open reader (a file's or a device's).
pub fn scan_reader(mut reader: JournalReader) -> Result<RecoveryReport, JournalError> {
    let mut records = 0u64;
    let mut first_seq = None;
    let mut last_seq = None;
    for record in reader.by_ref() {
        let record = record?;
        records += 1;
        first_seq.get_or_insert(record.seq);
        last_seq = Some(record.seq);
    }
    Ok(RecoveryReport {
        header: reader.header(),
        records,
        first_seq,
        last_seq,
        valid_len_bytes: reader.valid_len_bytes(),
        file_len_bytes: reader.file_len_bytes(),
        torn_tail: reader.torn_tail(),
        truncated: false,
    })
}

/// Recovers the journal at `path`: scans it as [`scan`] does and, if it ends
/// in a torn tail, truncates the file to the last valid record and makes the
/// truncation durable. A middle corruption, a seq gap or a bad header is an
/// error and the file is left untouched.
pub fn recover(path: impl AsRef<Path>) -> Result<RecoveryReport, JournalError> {
    let path = path.as_ref();
    let mut report = scan(path)?;
    if report.torn_tail.is_some() {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| JournalError::Io {
                op: "open the journal to truncate its torn tail",
                source,
            })?;
        file.set_len(report.valid_len_bytes)
            .and_then(|()| file.sync_data())
            .map_err(|source| JournalError::Io {
                op: "truncate the journal's torn tail",
                source,
            })?;
        report.truncated = true;
    }
    Ok(report)
}

/// [`recover`] for a journal on a [`JournalDevice`]: the same scan over the
/// device's bytes, and the same durable truncation of a torn tail.
pub fn recover_device(device: &mut dyn JournalDevice) -> Result<RecoveryReport, JournalError> {
    let bytes = device.read_all().map_err(|source| JournalError::Io {
        op: "read the journal device",
        source,
    })?;
    let mut report = scan_reader(JournalReader::from_bytes(bytes)?)?;
    if report.torn_tail.is_some() {
        device
            .truncate(report.valid_len_bytes)
            .map_err(|source| JournalError::Io {
                op: "truncate the journal's torn tail",
                source,
            })?;
        report.truncated = true;
    }
    Ok(report)
}

/// Where rebuilding replicas and start-up recovery read the journal from:
/// its file in production, a device's bytes in the simulator. Each call
/// reads the journal as it is at that moment, synced or not, as reading a
/// file through the page cache does.
pub trait JournalSource: Send + Sync {
    /// A reader from the journal's first record; `None` if there is no
    /// journal yet.
    fn open_reader(&self) -> Result<Option<JournalReader>, JournalError>;
}

/// The journal file at a path.
#[derive(Clone, Debug)]
pub struct JournalFile(pub PathBuf);

impl JournalSource for JournalFile {
    fn open_reader(&self) -> Result<Option<JournalReader>, JournalError> {
        if !self.0.exists() {
            return Ok(None);
        }
        JournalReader::open(&self.0).map(Some)
    }
}
