//! The properties the fuzz targets in `sequencer/fuzz/` check, in one place,
//! so that `cargo fuzz run` and the stable test `tests/fuzz_corpus.rs`
//! (which replays every saved corpus file) check exactly the same things.
//! Each check takes arbitrary bytes and panics when a property fails; a
//! panic is a finding.
//!
//! - [`journal_record`]: the bytes, cut into 64-byte records, are decoded
//!   as they are and again with their CRC made valid: a record that decodes
//!   encodes back to exactly the same 64 bytes, a header that decodes
//!   encodes back to its 64 bytes, and each error says what is really there
//!   (all zero, a CRC mismatch with the right CRCs, a stray padding byte
//!   that is not zero).
//! - [`journal_reader`]: the bytes (see [`journal_image`]) are written to a
//!   file and read back with [`JournalReader`], [`scan`] and [`recover`].
//!   Nothing panics or fails to read; every record returned has a valid CRC,
//!   sits in its slot, re-encodes to that slot's 64 bytes and carries the
//!   next seq (the first the header's `first_seq`: gapless, no repeats); the
//!   reading ends in exactly the way the recovery rules of
//!   `journal_reader.rs` say for the bytes after the last record; `scan`
//!   reports what the reader saw; `recover` truncates exactly a torn tail,
//!   leaves anything else untouched, and a journal it recovered scans clean.

#![doc(hidden)]

use crate::journal::JournalError;
use crate::journal_reader::{recover, scan, JournalReader, RecoveryReport, TornTailReason};
use crate::journal_record::{
    decode_header, decode_record, encode_header, encode_record, HeaderError, JournalHeader,
    RecordError, SequencedCommand, HEADER_SIZE_BYTES, JOURNAL_MAGIC, RECORD_SIZE_BYTES,
};
use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, InstrumentId, NewOrder, OrderType, RejectReason,
    ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a record's CRC32C sits: its last four bytes.
const CRC_OFFSET: usize = RECORD_SIZE_BYTES - 4;
/// Where the header keeps `first_seq`.
const HEADER_FIRST_SEQ_OFFSET: usize = 16;
/// Records of one [`journal_record`] input at most.
pub const RECORDS_MAX: usize = 16;
/// Bytes of one [`journal_reader`] file at most (the header and 64
/// records), so that a run's work is bounded.
pub const JOURNAL_BYTES_MAX: usize = HEADER_SIZE_BYTES + 64 * RECORD_SIZE_BYTES;

fn stored_crc(slot: &[u8]) -> u32 {
    u32::from_le_bytes(
        slot[CRC_OFFSET..RECORD_SIZE_BYTES]
            .try_into()
            .expect("four bytes"),
    )
}

fn computed_crc(slot: &[u8]) -> u32 {
    crc32c::crc32c(&slot[..CRC_OFFSET])
}

/// Makes the CRC of a record (or header) valid for its other bytes.
fn fix_crc(slot: &mut [u8]) {
    let crc = computed_crc(slot);
    slot[CRC_OFFSET..RECORD_SIZE_BYTES].copy_from_slice(&crc.to_le_bytes());
}

fn as_slot(bytes: &[u8]) -> &[u8; RECORD_SIZE_BYTES] {
    bytes.try_into().expect("a 64-byte slot")
}

// ----- journal_record --------------------------------------------------------

/// Checks one 64-byte record, as the decoder sees it.
fn check_record(bytes: &[u8; RECORD_SIZE_BYTES]) {
    match decode_record(bytes) {
        Ok(record) => {
            assert_eq!(
                &encode_record(&record),
                bytes,
                "{record:?} does not encode back to its bytes"
            );
            assert_eq!(stored_crc(bytes), computed_crc(bytes));
        }
        Err(RecordError::AllZero) => {
            assert!(bytes.iter().all(|&byte| byte == 0), "AllZero for {bytes:?}")
        }
        Err(RecordError::CrcMismatch { stored, computed }) => {
            assert_eq!(stored, stored_crc(bytes), "the stored CRC is misreported");
            assert_eq!(computed, computed_crc(bytes), "the computed CRC is wrong");
            assert_ne!(stored, computed, "a CRC mismatch with equal CRCs");
        }
        Err(error) => {
            assert_eq!(
                stored_crc(bytes),
                computed_crc(bytes),
                "{error:?} for a record whose CRC does not match"
            );
            assert!(!error.may_be_torn_write(), "{error:?}");
            if let RecordError::NonZeroPadding { offset_bytes } = error {
                assert!(
                    offset_bytes < CRC_OFFSET && bytes[offset_bytes] != 0,
                    "{error:?} names a byte that is zero or not padding"
                );
            }
        }
    }
    if let Ok(header) = decode_header(bytes) {
        assert_eq!(
            &encode_header(&header),
            bytes,
            "{header:?} does not encode back to its bytes"
        );
        assert!(header.first_seq >= 1);
    }
}

/// Cuts `data` into 64-byte records (the last padded with zeros, at most
/// [`RECORDS_MAX`]) and checks each as it is and with its CRC made valid.
/// See the module documentation.
pub fn journal_record(data: &[u8]) {
    for chunk in data.chunks(RECORD_SIZE_BYTES).take(RECORDS_MAX) {
        let mut bytes = [0u8; RECORD_SIZE_BYTES];
        bytes[..chunk.len()].copy_from_slice(chunk);
        check_record(&bytes);
        fix_crc(&mut bytes);
        check_record(&bytes);
        assert!(
            !matches!(
                decode_record(&bytes),
                Err(RecordError::AllZero | RecordError::CrcMismatch { .. })
            ),
            "a record with a valid CRC reads as torn"
        );
        // Also as a header with a valid CRC.
        let mut header = bytes;
        header[..JOURNAL_MAGIC.len()].copy_from_slice(&JOURNAL_MAGIC);
        fix_crc(&mut header);
        check_record(&header);
    }
}

// ----- journal_reader --------------------------------------------------------

/// Builds the journal file a [`journal_reader`] input stands for. Byte 0
/// holds flags, bytes 1-4 a little-endian mask; the rest (at most
/// [`JOURNAL_BYTES_MAX`] bytes) is the file, changed as the flags say so
/// that deep paths are reachable without guessing CRCs:
///
/// - bit 0: the header is made valid: a whole header is replaced by a
///   valid one keeping its `first_seq` (0 becomes 1); a partial one gets
///   the journal magic as its first bytes;
/// - bit 1: every whole record slot gets the seq it must carry (the
///   header's `first_seq` plus its index, wrapping);
/// - every whole record slot whose index modulo 32 is set in the mask gets
///   a valid CRC (after the seq).
///
/// Flags and mask zero leave the file exactly as given.
pub fn journal_image(data: &[u8]) -> Vec<u8> {
    let flags = data.first().copied().unwrap_or(0);
    let mut mask = [0u8; 4];
    for (index, byte) in data.iter().skip(1).take(4).enumerate() {
        mask[index] = *byte;
    }
    let mask = u32::from_le_bytes(mask);
    let mut file: Vec<u8> = data
        .iter()
        .skip(5)
        .take(JOURNAL_BYTES_MAX)
        .copied()
        .collect();
    if flags & 1 == 1 {
        if file.len() >= HEADER_SIZE_BYTES {
            let first_seq = u64::from_le_bytes(
                file[HEADER_FIRST_SEQ_OFFSET..HEADER_FIRST_SEQ_OFFSET + 8]
                    .try_into()
                    .expect("eight bytes"),
            )
            .max(1);
            file[..HEADER_SIZE_BYTES].copy_from_slice(&encode_header(&JournalHeader { first_seq }));
        } else {
            let len = file.len().min(JOURNAL_MAGIC.len());
            file[..len].copy_from_slice(&JOURNAL_MAGIC[..len]);
        }
    }
    let first_seq = file
        .get(..HEADER_SIZE_BYTES)
        .and_then(|header| decode_header(as_slot(header)).ok())
        .map_or(1, |header| header.first_seq);
    if file.len() >= HEADER_SIZE_BYTES {
        let records = &mut file[HEADER_SIZE_BYTES..];
        for (index, slot) in records.chunks_exact_mut(RECORD_SIZE_BYTES).enumerate() {
            if flags & 2 == 2 {
                let seq = first_seq.wrapping_add(index as u64);
                slot[..8].copy_from_slice(&seq.to_le_bytes());
            }
            if mask >> (index % 32) & 1 == 1 {
                fix_crc(slot);
            }
        }
    }
    file
}

/// The flags and mask bytes that make [`journal_image`] return `file` as
/// it is.
pub fn journal_reader_input(file: &[u8]) -> Vec<u8> {
    let mut input = vec![0u8; 5];
    input.extend_from_slice(file);
    input
}

/// A file of its own under `/dev/shm` (where syncing costs nothing) or the
/// temporary directory, removed when dropped.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new() -> ScratchFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        ScratchFile(dir.join(format!(
            "lockstep-journal-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How a reading of the whole journal ended.
#[derive(Debug)]
struct Reading {
    header: Option<JournalHeader>,
    records: Vec<SequencedCommand>,
    /// The error that ended it, if one did.
    error: Option<JournalError>,
    torn_tail: Option<crate::journal_reader::TornTail>,
    valid_len_bytes: u64,
}

fn is_torn(outcome: &Result<SequencedCommand, RecordError>) -> bool {
    matches!(outcome, Err(error) if error.may_be_torn_write())
}

/// True if the last record read carries the last seq there is.
fn seqs_exhausted(records: &[SequencedCommand]) -> bool {
    records.last().is_some_and(|record| record.seq == u64::MAX)
}

/// What the header rules say about `file`: `Ok(None)` for an empty journal
/// without a header (with the torn tail it then has), `Ok(Some)` for a
/// valid header, or the error.
fn expected_header(
    file: &[u8],
) -> Result<(Option<JournalHeader>, Option<TornTailReason>), HeaderError> {
    if file.is_empty() {
        return Ok((None, None));
    }
    if file.len() < HEADER_SIZE_BYTES {
        let compared = file.len().min(JOURNAL_MAGIC.len());
        if file[..compared] == JOURNAL_MAGIC[..compared] || file.iter().all(|&byte| byte == 0) {
            return Ok((None, Some(TornTailReason::PartialHeader)));
        }
        return Err(HeaderError::TooShort {
            len_bytes: file.len() as u64,
        });
    }
    if file.iter().all(|&byte| byte == 0) {
        return Ok((None, Some(TornTailReason::AllZeroFile)));
    }
    decode_header(as_slot(&file[..HEADER_SIZE_BYTES])).map(|header| (Some(header), None))
}

/// Reads `path` with a [`JournalReader`] and checks every step against the
/// recovery rules for `file`, its bytes.
fn read_and_check(path: &std::path::Path, file: &[u8]) -> Result<Reading, JournalError> {
    let expected = expected_header(file);
    let mut reader = match JournalReader::open(path) {
        Ok(reader) => reader,
        Err(error) => {
            match (&error, &expected) {
                (JournalError::BadHeader(found), Err(wanted)) => assert_eq!(found, wanted),
                _ => panic!("open failed with {error:?}; the header rules say {expected:?}"),
            }
            return Err(error);
        }
    };
    let (header, header_tail) =
        expected.unwrap_or_else(|wanted| panic!("open succeeded; the header rules say {wanted:?}"));
    assert_eq!(reader.header(), header);
    assert_eq!(reader.file_len_bytes(), file.len() as u64);
    let first_seq = header.map_or(1, |header| header.first_seq);
    let mut records = Vec::new();
    let mut error = None;
    for item in reader.by_ref() {
        assert!(error.is_none(), "the reader went on after {error:?}");
        match item {
            Ok(record) => {
                let index = records.len();
                let offset = HEADER_SIZE_BYTES + index * RECORD_SIZE_BYTES;
                let slot = file
                    .get(offset..offset + RECORD_SIZE_BYTES)
                    .unwrap_or_else(|| panic!("record {index} {record:?} is past the end"));
                assert!(
                    header.is_some(),
                    "{record:?} read from a file without a header"
                );
                assert_eq!(stored_crc(slot), computed_crc(slot), "{record:?}: bad CRC");
                assert_eq!(
                    &encode_record(&record)[..],
                    slot,
                    "{record:?} does not re-encode to its slot's bytes"
                );
                assert_eq!(
                    Some(record.seq),
                    first_seq.checked_add(index as u64),
                    "record {index} breaks the seq sequence from {first_seq}"
                );
                records.push(record);
            }
            Err(problem) => error = Some(problem),
        }
    }
    assert!(reader.next().is_none(), "the reader is not fused");
    let valid_len_bytes = reader.valid_len_bytes();
    let records_len = records.len() as u64 * RECORD_SIZE_BYTES as u64;
    if header.is_some() {
        assert_eq!(valid_len_bytes, HEADER_SIZE_BYTES as u64 + records_len);
    } else {
        assert_eq!(valid_len_bytes, 0);
    }
    let expected_seq = first_seq.saturating_add(records.len() as u64);
    let at = valid_len_bytes as usize;
    let slot_at = |offset: usize| file.get(offset..offset + RECORD_SIZE_BYTES).map(as_slot);
    let torn_tail = reader.torn_tail();
    match &error {
        None => match torn_tail {
            None => {
                assert!(header_tail.is_none());
                assert_eq!(at, file.len(), "reading stopped early without a reason");
            }
            Some(tail) => {
                assert_eq!(tail.offset_bytes, valid_len_bytes);
                assert_eq!(tail.bytes_dropped, (file.len() - at) as u64);
                assert!(tail.bytes_dropped > 0, "an empty torn tail");
                if let Some(reason) = header_tail {
                    assert_eq!(tail.reason, reason);
                } else if file.len() - at < RECORD_SIZE_BYTES {
                    assert_eq!(tail.reason, TornTailReason::PartialRecord);
                } else {
                    let first = decode_record(slot_at(at).expect("a whole slot"));
                    let reason = match first {
                        Err(RecordError::AllZero) => TornTailReason::AllZeroRecord,
                        Err(RecordError::CrcMismatch { .. }) => TornTailReason::CrcMismatch,
                        other => panic!("a torn tail starts with {other:?}"),
                    };
                    assert_eq!(tail.reason, reason);
                    // Nothing that could have been acknowledged is dropped:
                    // no later whole slot holds a valid record.
                    let mut offset = at + RECORD_SIZE_BYTES;
                    while let Some(slot) = slot_at(offset) {
                        assert!(
                            is_torn(&decode_record(slot)),
                            "the torn tail at {at} drops a valid record at {offset}"
                        );
                        offset += RECORD_SIZE_BYTES;
                    }
                }
            }
        },
        Some(JournalError::CorruptRecord {
            offset_bytes,
            expected_seq: seq,
            problem,
            next_valid_offset_bytes,
        }) => {
            assert!(torn_tail.is_none());
            assert_eq!(*offset_bytes, valid_len_bytes);
            assert_eq!(*seq, expected_seq);
            let slot = slot_at(at).expect("a corrupt record is a whole slot");
            assert_eq!(decode_record(slot), Err(*problem));
            if problem.may_be_torn_write() {
                let next = next_valid_offset_bytes
                    .expect("a torn-looking record is corrupt only if a valid one follows")
                    as usize;
                assert!(next > at && (next - at).is_multiple_of(RECORD_SIZE_BYTES));
                assert!(!is_torn(&decode_record(
                    slot_at(next).expect("the next valid record is a whole slot")
                )));
                for offset in (at + RECORD_SIZE_BYTES..next).step_by(RECORD_SIZE_BYTES) {
                    assert!(is_torn(&decode_record(slot_at(offset).expect("a slot"))));
                }
            } else {
                assert_eq!(*next_valid_offset_bytes, None);
            }
        }
        Some(JournalError::SeqGap {
            offset_bytes,
            expected_seq: seq,
            found_seq,
        }) => {
            assert!(torn_tail.is_none());
            assert_eq!(*offset_bytes, valid_len_bytes);
            assert_eq!(*seq, expected_seq);
            let found = decode_record(slot_at(at).expect("a whole slot"))
                .expect("a seq gap is a valid record");
            assert_eq!(found.seq, *found_seq);
            // After seq u64::MAX no seq is next, so any record is a gap.
            assert!(*found_seq != expected_seq || seqs_exhausted(&records));
        }
        Some(JournalError::SeqExhausted) => {
            assert!(torn_tail.is_none());
            assert!(
                seqs_exhausted(&records),
                "SeqExhausted before seq u64::MAX was read"
            );
            decode_record(slot_at(at).expect("a whole slot"))
                .expect("only a valid record is past the last seq");
        }
        Some(other) => panic!("reading a journal file failed with {other:?}"),
    }
    Ok(Reading {
        header,
        records,
        error,
        torn_tail,
        valid_len_bytes,
    })
}

/// The report [`scan`] must give for a reading that ended without error.
fn report_of(reading: &Reading, file_len_bytes: u64) -> RecoveryReport {
    RecoveryReport {
        header: reading.header,
        records: reading.records.len() as u64,
        first_seq: reading.records.first().map(|record| record.seq),
        last_seq: reading.records.last().map(|record| record.seq),
        valid_len_bytes: reading.valid_len_bytes,
        file_len_bytes,
        torn_tail: reading.torn_tail,
        truncated: false,
    }
}

/// Writes the file [`journal_image`] builds from `data` and reads it with
/// [`JournalReader`], [`scan`] and [`recover`]; see the module
/// documentation for what must hold.
pub fn journal_reader(data: &[u8]) {
    let file = journal_image(data);
    let scratch = ScratchFile::new();
    std::fs::write(&scratch.0, &file).expect("the scratch file can be written");
    let file_len = file.len() as u64;
    let reading = read_and_check(&scratch.0, &file);
    let scanned = scan(&scratch.0);
    match (&reading, &scanned) {
        (Ok(reading), Ok(report)) if reading.error.is_none() => {
            assert_eq!(*report, report_of(reading, file_len));
        }
        (Ok(Reading { error: Some(e), .. }), Err(found)) | (Err(e), Err(found)) => {
            assert_eq!(format!("{found:?}"), format!("{e:?}"));
        }
        _ => panic!("scan gave {scanned:?}, the reader {reading:?}"),
    }
    let recovered = recover(&scratch.0);
    let after = std::fs::read(&scratch.0).expect("the scratch file can be read");
    match (&scanned, &recovered) {
        (Ok(report), Ok(recovered)) => {
            let truncated = report.torn_tail.is_some();
            assert_eq!(
                *recovered,
                RecoveryReport {
                    truncated,
                    ..*report
                }
            );
            assert_eq!(&after[..], &file[..report.valid_len_bytes as usize]);
            // A recovered journal scans clean, with the same records.
            let again = scan(&scratch.0).expect("a recovered journal scans");
            assert_eq!(again.torn_tail, None);
            assert_eq!(again.records, report.records);
            assert_eq!(again.last_seq, report.last_seq);
            assert_eq!(again.valid_len_bytes, report.valid_len_bytes);
            assert_eq!(again.file_len_bytes, report.valid_len_bytes);
        }
        (Err(scanned), Err(found)) => {
            assert_eq!(format!("{found:?}"), format!("{scanned:?}"));
            assert_eq!(after, file, "a failed recovery changed the file");
        }
        _ => panic!("recover gave {recovered:?}, scan {scanned:?}"),
    }
}

// ----- seeds ------------------------------------------------------------------

/// One command of every kind.
fn every_command() -> Vec<Command> {
    let token = Token::from_u64;
    vec![
        Command::New(NewOrder {
            session: SessionId(1),
            account: AccountId(2),
            token: token(7),
            instrument: InstrumentId(0),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: 1_500_000,
            qty: 100,
            time_in_force: TimeInForce::Gtc,
            post_only: true,
            client_tag: 0xa5a5,
        }),
        Command::New(NewOrder {
            session: SessionId(0),
            account: AccountId(1),
            token: token(8),
            instrument: InstrumentId(1),
            side: Side::Sell,
            order_type: OrderType::Market,
            price: 0,
            qty: 30,
            time_in_force: TimeInForce::Fok,
            post_only: false,
            client_tag: 0,
        }),
        Command::Cancel(CancelOrder {
            session: SessionId(1),
            token: token(7),
            qty_after: 40,
        }),
        Command::Replace(ReplaceOrder {
            session: SessionId(1),
            token: token(7),
            new_token: token(9),
            price: 1_500_100,
            qty: 50,
        }),
        Command::Halt {
            instrument: InstrumentId(1),
        },
        Command::Resume {
            instrument: InstrumentId(1),
        },
        Command::SetSelfTradePrevention {
            account: AccountId(2),
            mode: StpMode::CancelBoth,
        },
        Command::CancelAllForSession {
            session: SessionId(1),
        },
        Command::Reject {
            session: SessionId(0),
            token: token(10),
            command: CommandKind::ALL[0],
            reason: RejectReason::ALL[RejectReason::ALL.len() - 1],
        },
    ]
}

/// A journal from `first_seq` with one record of every command kind.
fn journal(first_seq: u64) -> Vec<u8> {
    let mut file = encode_header(&JournalHeader { first_seq }).to_vec();
    for (index, command) in every_command().into_iter().enumerate() {
        file.extend_from_slice(&encode_record(&SequencedCommand {
            seq: first_seq + index as u64,
            timestamp_ns: 1_700_000_000_000_000_000 + index as u64,
            command,
        }));
    }
    file
}

/// Inputs that reach deep into each target, for seeding the corpus: a
/// valid journal with a record of every kind, and the same journal with a
/// torn tail, a zeroed tail, a corrupt record in the middle, a seq gap and
/// a bad header; for `journal_record`, each record and the header. Each is
/// `(target, name, bytes)`.
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let valid = journal(1);
    let mut records = Vec::new();
    for slot in valid.chunks(RECORD_SIZE_BYTES) {
        records.extend_from_slice(slot);
    }
    seeds.push((
        "journal_record",
        "seed-header-and-every-kind".into(),
        records,
    ));

    let record = |index: usize| HEADER_SIZE_BYTES + index * RECORD_SIZE_BYTES;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("seed-valid", valid.clone()),
        ("seed-valid-from-seq-1000", journal(1_000)),
        // The last record carries the last seq there is.
        (
            "seed-ends-at-seq-max",
            journal(u64::MAX - (every_command().len() as u64 - 1)),
        ),
    ];
    let mut partial = valid.clone();
    partial.truncate(record(5) + 20);
    files.push(("seed-partial-record", partial));
    let mut zeroed = valid.clone();
    zeroed[record(6)..].fill(0);
    files.push(("seed-zeroed-tail", zeroed));
    let mut torn = valid.clone();
    torn[record(8) + 30] ^= 0x40;
    files.push(("seed-crc-mismatch-tail", torn));
    let mut middle = valid.clone();
    middle[record(3) + 30] ^= 0x40;
    files.push(("seed-corrupt-middle", middle));
    let mut gap = journal(1);
    gap.drain(record(4)..record(5));
    files.push(("seed-seq-gap", gap));
    let mut bad_field = valid.clone();
    bad_field[record(2) + 17] = 9;
    fix_crc(&mut bad_field[record(2)..record(3)]);
    files.push(("seed-bad-side-valid-crc", bad_field));
    files.push(("seed-partial-header", JOURNAL_MAGIC[..5].to_vec()));
    files.push(("seed-all-zero", vec![0u8; record(3)]));
    let mut bad_header = valid.clone();
    bad_header[8] = 2;
    files.push(("seed-bad-version", bad_header));
    for (name, file) in files {
        seeds.push(("journal_reader", name.into(), journal_reader_input(&file)));
    }
    // The flags at work: a valid header and seqs stamped over arbitrary
    // records, every CRC fixed.
    let mut stamped = vec![3, 0xff, 0xff, 0xff, 0xff];
    stamped.extend_from_slice(&valid);
    for index in 0..every_command().len() {
        stamped[5 + record(index)..5 + record(index) + 8].fill(0);
    }
    seeds.push(("journal_reader", "seed-stamped".into(), stamped));
    seeds
}
