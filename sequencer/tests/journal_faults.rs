//! Fault tests for the journal: what is written under each policy and each
//! backend reads back equal, and every damage a crash or a bad disk can do —
//! a torn tail, a flipped bit at the end or in the middle, a file cut at any
//! length, a zero-filled tail, a wrong header, a seq gap, a failed
//! `fdatasync` — is either recovered from exactly as `docs/journal.md` says
//! or refused with an error naming where, and never panics.

use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, InstrumentId, NewOrder, OrderType, RejectReason,
    ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_sequencer::journal::{Journal, JournalError, JournalOptions};
use lockstep_sequencer::journal_backend::JournalBackendKind;
use lockstep_sequencer::journal_reader::{recover, scan, JournalReader, TornTailReason};
use lockstep_sequencer::journal_record::{
    encode_header, encode_record, HeaderError, JournalHeader, RecordError, SequencedCommand,
    HEADER_SIZE_BYTES, RECORD_SIZE_BYTES,
};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Counts allocations made by the current thread while counting is on. Per
/// thread, because the other tests in this binary run in parallel and
/// allocate freely.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with` because a thread being torn down may still free memory
    // after its thread-locals are gone; those calls are simply not counted.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts calls, using const-initialised thread-locals that do
// not allocate themselves.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_allocation();
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const HEADER_LEN: u64 = HEADER_SIZE_BYTES as u64;
const RECORD_LEN: u64 = RECORD_SIZE_BYTES as u64;

/// A command of every kind in turn, with fields that vary by seq.
fn command(seq: u64) -> SequencedCommand {
    let token = Token::from_u64(seq * 7 + 1);
    let command = match seq % 8 {
        0 => Command::New(NewOrder {
            session: SessionId((seq % 5) as u16),
            account: AccountId(seq as u32),
            token,
            instrument: InstrumentId((seq % 3) as u32),
            side: if seq.is_multiple_of(4) {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: OrderType::Limit,
            price: 10_000 + seq,
            qty: 100,
            time_in_force: TimeInForce::Ioc,
            post_only: seq.is_multiple_of(16),
            client_tag: seq as u16,
        }),
        1 => Command::Cancel(CancelOrder {
            session: SessionId(3),
            token,
            qty_after: (seq % 3) as u32,
        }),
        2 => Command::Replace(ReplaceOrder {
            session: SessionId(1),
            token,
            new_token: Token::from_bytes(*b"ABCDEFGHIJKLMN"),
            price: 9_999,
            qty: 5,
        }),
        3 => Command::Halt {
            instrument: InstrumentId(2),
        },
        4 => Command::Resume {
            instrument: InstrumentId(2),
        },
        5 => Command::SetSelfTradePrevention {
            account: AccountId(9),
            mode: StpMode::CancelBoth,
        },
        6 => Command::CancelAllForSession {
            session: SessionId((seq % 5) as u16),
        },
        _ => Command::Reject {
            session: SessionId(2),
            token,
            command: CommandKind::New,
            reason: RejectReason::MessageRateExceeded,
        },
    };
    SequencedCommand {
        seq,
        timestamp_ns: 1_000_000 + seq * 13,
        command,
    }
}

fn commands(first_seq: u64, count: u64) -> Vec<SequencedCommand> {
    (first_seq..first_seq + count).map(command).collect()
}

fn journal_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Writes `records` in commits of `batch` through a journal with the given
/// policy and backend preference, and returns the backend that ran.
fn write_journal(
    path: &Path,
    policy: DurabilityPolicy,
    prefer_io_uring: bool,
    records: &[SequencedCommand],
    batch: usize,
) -> JournalBackendKind {
    let mut options = JournalOptions::new(policy);
    options.prefer_io_uring = prefer_io_uring;
    // A small buffer, so that commits larger than it exercise the
    // write-without-sync path inside one group commit.
    options.batch_records_max = 16;
    let mut journal = Journal::open_with(path, &options).expect("open journal");
    for chunk in records.chunks(batch) {
        journal.append_batch(chunk).expect("append");
        journal.sync().expect("sync");
    }
    let last_seq = records.last().map_or(0, |record| record.seq);
    assert_eq!(journal.written_seq(), last_seq);
    assert_eq!(journal.durable_seq(), last_seq);
    journal.backend()
}

fn read_all(path: &Path) -> Vec<SequencedCommand> {
    JournalReader::open(path)
        .expect("open reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("read records")
}

fn flip_bit(path: &Path, offset_bytes: u64, bit: u8) {
    let mut bytes = std::fs::read(path).expect("read file");
    bytes[offset_bytes as usize] ^= 1 << bit;
    std::fs::write(path, bytes).expect("write file");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

#[test]
fn every_policy_and_backend_reads_back_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = commands(1, 500);
    for policy in DurabilityPolicy::ALL {
        for prefer_io_uring in [true, false] {
            let path = journal_path(&dir, &format!("{policy}-{prefer_io_uring}.journal"));
            let backend = write_journal(&path, policy, prefer_io_uring, &records, 37);
            println!("policy {policy}, io_uring preferred {prefer_io_uring}: {backend} ran");
            if !prefer_io_uring {
                assert_eq!(backend, JournalBackendKind::PlainFile);
            }
            assert_eq!(read_all(&path), records);
            let report = scan(&path).expect("scan");
            assert_eq!(report.records, 500);
            assert_eq!(report.torn_tail, None);
            assert_eq!(file_len(&path), HEADER_LEN + 500 * RECORD_LEN);
        }
    }
}

#[test]
fn reopening_continues_the_seq_and_appends_after_the_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "reopen.journal");
    write_journal(&path, DurabilityPolicy::Batch, true, &commands(1, 10), 4);
    let mut journal = Journal::open(&path, DurabilityPolicy::Batch, true).expect("reopen");
    assert_eq!(journal.next_seq(), 11);
    assert_eq!(journal.durable_seq(), 10);
    journal.append_batch(&commands(11, 5)).expect("append");
    assert_eq!(journal.sync().expect("sync"), 15);
    drop(journal);
    assert_eq!(read_all(&path), commands(1, 15));
}

#[test]
fn torn_tail_mid_record_is_truncated_reported_and_appending_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "torn.journal");
    write_journal(&path, DurabilityPolicy::Batch, true, &commands(1, 10), 10);
    let full_len = file_len(&path);
    let cut_len = full_len - 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_len(cut_len))
        .expect("cut file");

    let scanned = scan(&path).expect("scan");
    assert!(!scanned.truncated);
    assert_eq!(file_len(&path), cut_len, "scan must not change the file");

    let mut journal = Journal::open(&path, DurabilityPolicy::Batch, true).expect("open");
    let report = *journal.recovery_report();
    println!("recovery: {report}");
    let tail = report.torn_tail.expect("torn tail reported");
    let last_good_end = HEADER_LEN + 9 * RECORD_LEN;
    assert_eq!(tail.offset_bytes, last_good_end);
    assert_eq!(tail.bytes_dropped, RECORD_LEN - 20);
    assert_eq!(tail.reason, TornTailReason::PartialRecord);
    assert!(report.truncated);
    assert_eq!(report.last_seq, Some(9));
    assert_eq!(journal.next_seq(), 10);

    journal.append_batch(&commands(10, 6)).expect("append");
    journal.sync().expect("sync");
    drop(journal);
    assert_eq!(read_all(&path), commands(1, 15));
    assert_eq!(scan(&path).expect("scan").torn_tail, None);
}

#[test]
fn flipped_bit_in_last_record_is_treated_as_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "last-bit.journal");
    write_journal(&path, DurabilityPolicy::Every, true, &commands(1, 10), 3);
    let last_offset = HEADER_LEN + 9 * RECORD_LEN;
    flip_bit(&path, last_offset + 21, 3);

    let report = recover(&path).expect("recover");
    println!("recovery: {report}");
    let tail = report.torn_tail.expect("torn tail");
    assert_eq!(tail.offset_bytes, last_offset);
    assert_eq!(tail.bytes_dropped, RECORD_LEN);
    assert_eq!(tail.reason, TornTailReason::CrcMismatch);
    assert!(report.truncated);
    assert_eq!(file_len(&path), last_offset);
    assert_eq!(read_all(&path), commands(1, 9));
}

#[test]
fn flipped_bit_in_middle_record_stops_recovery_naming_the_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "middle-bit.journal");
    write_journal(&path, DurabilityPolicy::Batch, false, &commands(1, 10), 10);
    let bad_offset = HEADER_LEN + 4 * RECORD_LEN;
    flip_bit(&path, bad_offset + 40, 0);
    let len_before = file_len(&path);

    let error = recover(&path).expect_err("middle corruption must stop recovery");
    let message = error.to_string();
    println!("{message}");
    match error {
        JournalError::CorruptRecord {
            offset_bytes,
            expected_seq,
            problem,
            next_valid_offset_bytes,
        } => {
            assert_eq!(offset_bytes, bad_offset);
            assert_eq!(expected_seq, 5);
            assert!(matches!(problem, RecordError::CrcMismatch { .. }));
            assert_eq!(next_valid_offset_bytes, Some(bad_offset + RECORD_LEN));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(message.contains(&format!("byte offset {bad_offset}")));
    assert!(message.contains("expected seq 5"));
    assert!(!message.contains('\n'));
    assert_eq!(file_len(&path), len_before, "the file must be left alone");
    assert!(Journal::open(&path, DurabilityPolicy::Batch, true).is_err());

    // A reader still yields the good records before the damage.
    let mut reader = JournalReader::open(&path).expect("reader");
    let good: Vec<_> = reader.by_ref().take(4).map(|r| r.expect("good")).collect();
    assert_eq!(good, commands(1, 4));
    assert!(matches!(
        reader.next(),
        Some(Err(JournalError::CorruptRecord { .. }))
    ));
    assert!(reader.next().is_none());
}

#[test]
fn zeroed_record_followed_by_valid_records_stops_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "zero-middle.journal");
    write_journal(&path, DurabilityPolicy::Batch, true, &commands(1, 6), 6);
    let mut bytes = std::fs::read(&path).expect("read");
    let hole = (HEADER_LEN + 2 * RECORD_LEN) as usize;
    bytes[hole..hole + RECORD_SIZE_BYTES].fill(0);
    std::fs::write(&path, bytes).expect("write");
    match scan(&path) {
        Err(JournalError::CorruptRecord {
            offset_bytes,
            expected_seq: 3,
            problem: RecordError::AllZero,
            ..
        }) => assert_eq!(offset_bytes, hole as u64),
        other => panic!("unexpected result: {other:?}"),
    }
}

#[test]
fn undecodable_record_with_valid_crc_stops_recovery_even_at_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "bad-kind.journal");
    write_journal(&path, DurabilityPolicy::Batch, true, &commands(1, 3), 3);
    let mut record = encode_record(&command(4));
    record[16] = 200;
    let crc = crc32c::crc32c(&record[..RECORD_SIZE_BYTES - 4]);
    record[RECORD_SIZE_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(&record);
    std::fs::write(&path, bytes).expect("write");
    let error = recover(&path).expect_err("a CRC-valid bad record is not a torn write");
    println!("{error}");
    assert!(matches!(
        error,
        JournalError::CorruptRecord {
            problem: RecordError::UnknownKind(200),
            expected_seq: 4,
            next_valid_offset_bytes: None,
            ..
        }
    ));
}

#[test]
fn truncation_at_every_length_never_panics_or_yields_a_wrong_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = journal_path(&dir, "source.journal");
    let records = commands(1, 20);
    write_journal(&source, DurabilityPolicy::None, true, &records, 7);
    let full = std::fs::read(&source).expect("read");
    let cut_path = journal_path(&dir, "cut.journal");
    for cut_len in 0..=full.len() {
        for zero_fill in [false, true] {
            // A header is one 64-byte write inside the first sector, which
            // the disk writes whole, so a header half-written and then
            // zero-filled is not a crash outcome; only an all-zero file is.
            if zero_fill && cut_len > 0 && cut_len < HEADER_SIZE_BYTES {
                continue;
            }
            // Without zero fill: the file was cut (data and size lost
            // together). With it: the size reached the disk but the data
            // after the cut did not, so the tail reads as zeros.
            let mut bytes = full[..cut_len].to_vec();
            if zero_fill {
                bytes.resize(full.len(), 0);
            }
            std::fs::write(&cut_path, &bytes).expect("write cut");
            let report = scan(&cut_path).unwrap_or_else(|error| {
                panic!("cut at {cut_len} (zero fill {zero_fill}): {error}")
            });
            let whole_records = (cut_len as u64).saturating_sub(HEADER_LEN) / RECORD_LEN;
            assert_eq!(report.records, whole_records, "cut at {cut_len}");
            let read = read_all(&cut_path);
            assert_eq!(read, records[..whole_records as usize], "cut at {cut_len}");
            let expect_tail = bytes.len() as u64 != report.valid_len_bytes;
            assert_eq!(report.torn_tail.is_some(), expect_tail, "cut at {cut_len}");

            let recovered = recover(&cut_path).expect("recover");
            assert_eq!(file_len(&cut_path), recovered.valid_len_bytes);
            let mut journal =
                Journal::open(&cut_path, DurabilityPolicy::None, false).expect("open after cut");
            let next = journal.next_seq();
            assert_eq!(next, whole_records + 1);
            journal.append(&command(next)).expect("append");
            journal.sync().expect("sync");
            drop(journal);
            assert_eq!(read_all(&cut_path), commands(1, next));
        }
    }
}

#[test]
fn empty_file_is_a_valid_empty_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "empty.journal");
    std::fs::write(&path, b"").expect("create");
    let report = scan(&path).expect("scan empty");
    assert_eq!(report.records, 0);
    assert_eq!(report.header, None);
    assert_eq!(report.torn_tail, None);
    assert_eq!(read_all(&path), vec![]);

    let journal = Journal::open(&path, DurabilityPolicy::Batch, true).expect("open empty");
    assert_eq!(journal.next_seq(), 1);
    assert_eq!(journal.durable_seq(), 0);
    drop(journal);
    assert_eq!(file_len(&path), HEADER_LEN);
    let report = scan(&path).expect("scan header only");
    assert_eq!(report.header, Some(JournalHeader { first_seq: 1 }));
    assert_eq!(report.records, 0);
    assert_eq!(report.torn_tail, None);
}

#[test]
fn journal_starting_after_a_snapshot_checks_its_first_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "from-1000.journal");
    let mut options = JournalOptions::new(DurabilityPolicy::Batch);
    options.first_seq = 1000;
    let mut journal = Journal::open_with(&path, &options).expect("open");
    assert!(matches!(
        journal.append(&command(1)),
        Err(JournalError::SeqOutOfOrder {
            expected_seq: 1000,
            found_seq: 1
        })
    ));
    journal.append_batch(&commands(1000, 3)).expect("append");
    journal.sync().expect("sync");
    drop(journal);
    assert_eq!(read_all(&path), commands(1000, 3));
}

#[test]
fn wrong_header_is_refused_with_a_named_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "wrong.journal");

    let mut not_a_journal = b"NOTAJRNL".to_vec();
    not_a_journal.resize(HEADER_SIZE_BYTES + RECORD_SIZE_BYTES, 7);
    std::fs::write(&path, &not_a_journal).expect("write");
    let error = scan(&path).expect_err("wrong magic");
    println!("{error}");
    assert!(matches!(
        error,
        JournalError::BadHeader(HeaderError::BadMagic { .. })
    ));
    assert!(error.to_string().contains("not a Lockstep journal"));
    assert!(Journal::open(&path, DurabilityPolicy::Batch, true).is_err());
    assert_eq!(std::fs::read(&path).expect("read"), not_a_journal);

    let mut newer = encode_header(&JournalHeader { first_seq: 1 }).to_vec();
    newer[8] = 9;
    std::fs::write(&path, &newer).expect("write");
    let error = scan(&path).expect_err("wrong version");
    println!("{error}");
    assert!(error
        .to_string()
        .contains("unsupported journal format version 9"));

    let mut damaged = encode_header(&JournalHeader { first_seq: 1 }).to_vec();
    damaged[20] ^= 0x10;
    std::fs::write(&path, &damaged).expect("write");
    let error = scan(&path).expect_err("damaged header");
    println!("{error}");
    assert!(matches!(
        error,
        JournalError::BadHeader(HeaderError::CrcMismatch { .. })
    ));

    std::fs::write(&path, b"hello").expect("write");
    let error = scan(&path).expect_err("short garbage");
    println!("{error}");
    assert!(matches!(
        error,
        JournalError::BadHeader(HeaderError::TooShort { len_bytes: 5 })
    ));
}

#[test]
fn seq_gap_is_detected_with_offset_and_expected_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "gap.journal");
    write_journal(&path, DurabilityPolicy::Batch, true, &commands(1, 5), 5);
    let mut bytes = std::fs::read(&path).expect("read");
    // Seq 6 is missing: 7 and 8 follow 5.
    bytes.extend_from_slice(&encode_record(&command(7)));
    bytes.extend_from_slice(&encode_record(&command(8)));
    std::fs::write(&path, &bytes).expect("write");
    let error = recover(&path).expect_err("gap");
    println!("{error}");
    let gap_offset = HEADER_LEN + 5 * RECORD_LEN;
    assert!(matches!(
        error,
        JournalError::SeqGap {
            offset_bytes,
            expected_seq: 6,
            found_seq: 7
        } if offset_bytes == gap_offset
    ));
    assert!(error
        .to_string()
        .contains(&format!("byte offset {gap_offset}")));
    assert_eq!(file_len(&path), bytes.len() as u64);

    // A first record that is not the header's first seq is a gap too.
    let mut bytes = encode_header(&JournalHeader { first_seq: 1 }).to_vec();
    bytes.extend_from_slice(&encode_record(&command(2)));
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        scan(&path),
        Err(JournalError::SeqGap {
            expected_seq: 1,
            found_seq: 2,
            ..
        })
    ));
}

#[test]
fn io_uring_is_selected_when_available_and_plain_file_writes_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = commands(1, 300);
    for policy in DurabilityPolicy::ALL {
        let uring_path = journal_path(&dir, &format!("uring-{policy}.journal"));
        let plain_path = journal_path(&dir, &format!("plain-{policy}.journal"));
        let journal = Journal::open(&uring_path, policy, true).expect("open");
        println!(
            "policy {policy}: io_uring preferred, {} selected{}",
            journal.backend(),
            journal
                .backend_fallback_reason()
                .map(|reason| format!(" (fallback: {reason})"))
                .unwrap_or_default()
        );
        if cfg!(target_os = "linux") && journal.backend_fallback_reason().is_none() {
            assert_eq!(journal.backend(), JournalBackendKind::IoUring);
        }
        drop(journal);
        write_journal(&uring_path, policy, true, &records, 50);
        let plain = write_journal(&plain_path, policy, false, &records, 50);
        assert_eq!(plain, JournalBackendKind::PlainFile);
        assert_eq!(
            std::fs::read(&uring_path).expect("read"),
            std::fs::read(&plain_path).expect("read"),
            "backends must write byte-identical files"
        );
    }
}

#[test]
fn failed_sync_fail_stops_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    for prefer_io_uring in [true, false] {
        let path = journal_path(&dir, &format!("fail-{prefer_io_uring}.journal"));
        let mut journal =
            Journal::open(&path, DurabilityPolicy::Batch, prefer_io_uring).expect("open");
        journal.append_batch(&commands(1, 5)).expect("append");
        assert_eq!(journal.sync().expect("sync"), 5);
        journal.append_batch(&commands(6, 5)).expect("append");
        journal.inject_sync_failure_for_tests();
        let error = journal.sync().expect_err("injected failure");
        println!("{error}");
        assert!(matches!(
            error,
            JournalError::SyncFailed { durable_seq: 5, .. }
        ));
        assert_eq!(
            journal.durable_seq(),
            5,
            "a failed sync makes nothing durable"
        );
        assert!(journal.fail_stop().is_some());
        let refused = journal.append(&command(11)).expect_err("fail-stopped");
        println!("{refused}");
        assert!(matches!(refused, JournalError::FailStopped(_)));
        assert!(matches!(journal.sync(), Err(JournalError::FailStopped(_))));
        drop(journal);
        // The records were written before the sync failed; recovery keeps
        // whatever is in the file and valid, which is all ten here.
        assert_eq!(read_all(&path), commands(1, 10));
    }
}

#[test]
fn skip_to_seq_lands_on_that_record_and_the_same_bytes_read_the_same_from_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "skip.journal");
    let records = commands(1, 300);
    write_journal(&path, DurabilityPolicy::Batch, false, &records, 50);
    let bytes = std::fs::read(&path).expect("read file");
    for target in [1, 2, 150, 300] {
        let mut from_file = JournalReader::open(&path).expect("reader");
        from_file.skip_to_seq(target).expect("skip");
        let mut from_memory = JournalReader::from_bytes(bytes.clone()).expect("reader");
        from_memory.skip_to_seq(target).expect("skip");
        let expected = &records[target as usize - 1..];
        for reader in [from_file, from_memory] {
            let read: Vec<_> = reader.collect::<Result<_, _>>().expect("records");
            assert_eq!(read, expected, "skipping to seq {target}");
        }
    }
    // Past the end there is nothing to read, and no torn tail either.
    let mut reader = JournalReader::open(&path).expect("reader");
    reader.skip_to_seq(301).expect("skip");
    assert!(reader.next().is_none());
    reader.skip_to_seq(10_000).expect("skip");
    assert!(reader.next().is_none());
    assert_eq!(reader.torn_tail(), None);
    // Backwards is a no-op: the reader never rereads.
    let mut reader = JournalReader::open(&path).expect("reader");
    reader.skip_to_seq(100).expect("skip");
    reader.skip_to_seq(5).expect("skip");
    assert_eq!(reader.next().expect("a record").expect("valid").seq, 100);
    // The record skipped to is still checked: damage there is reported.
    flip_bit(&path, HEADER_LEN + 199 * RECORD_LEN + 20, 3);
    let mut reader = JournalReader::open(&path).expect("reader");
    reader.skip_to_seq(200).expect("skip");
    assert!(matches!(
        reader.next(),
        Some(Err(JournalError::CorruptRecord {
            expected_seq: 200,
            ..
        }))
    ));
}

#[test]
fn append_out_of_order_is_refused_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = journal_path(&dir, "order.journal");
    let mut journal = Journal::open(&path, DurabilityPolicy::Every, true).expect("open");
    journal.append(&command(1)).expect("append");
    let error = journal.append(&command(3)).expect_err("skips 2");
    assert!(matches!(
        error,
        JournalError::SeqOutOfOrder {
            expected_seq: 2,
            found_seq: 3
        }
    ));
    assert!(
        journal.fail_stop().is_none(),
        "a caller error is not an I/O failure"
    );
    journal.append(&command(2)).expect("append");
    drop(journal);
    assert_eq!(read_all(&path), commands(1, 2));
}

#[test]
fn append_and_sync_allocate_nothing_with_either_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Encoded before counting starts, so only the journal is measured.
    let records = commands(1, 2_000);
    for policy in DurabilityPolicy::ALL {
        for prefer_io_uring in [true, false] {
            let path = journal_path(&dir, &format!("alloc-{policy}-{prefer_io_uring}.journal"));
            let mut options = JournalOptions::new(policy);
            options.prefer_io_uring = prefer_io_uring;
            options.batch_records_max = 64;
            let mut journal = Journal::open_with(&path, &options).expect("open");
            let chunk = if policy == DurabilityPolicy::Every {
                1
            } else {
                100
            };
            let mut results_ok = true;
            ALLOCATIONS.with(|count| count.set(0));
            COUNTING.with(|counting| counting.set(true));
            for batch in records.chunks(chunk) {
                for record in batch {
                    results_ok &= journal.append(record).is_ok();
                }
                results_ok &= journal.sync().is_ok();
            }
            COUNTING.with(|counting| counting.set(false));
            let allocations = ALLOCATIONS.with(Cell::get);
            assert!(results_ok, "{policy} via {}", journal.backend());
            assert_eq!(
                allocations,
                0,
                "{policy} via {} allocated",
                journal.backend()
            );
            drop(journal);
            assert_eq!(read_all(&path), records);
        }
    }
}

proptest! {
    // No failure persistence: an integration test has no source file proptest
    // can find to store regressions next to.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    #[test]
    fn random_file_contents_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
        valid_records in 0u64..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = journal_path(&dir, "random.journal");
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(&encode_header(&JournalHeader { first_seq: 1 }));
            for seq in 1..=valid_records {
                bytes.extend_from_slice(&encode_record(&command(seq)));
            }
        }
        bytes.extend_from_slice(&tail);
        std::fs::write(&path, &bytes).expect("write");
        if let Ok(reader) = JournalReader::open(&path) {
            for (index, record) in reader.enumerate() {
                match record {
                    Ok(record) => {
                        let index = index as u64;
                        if index < valid_records && with_header {
                            prop_assert_eq!(record, command(index + 1));
                        }
                    }
                    Err(error) => prop_assert!(!error.to_string().is_empty()),
                }
            }
        }
        let _ = recover(&path);
    }
}
