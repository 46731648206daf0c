//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `sequencer/fuzz/corpus/<target>/` and `sequencer/fuzz/artifacts/<target>/`
//! goes through the same check as the fuzz target of that name
//! (`lockstep_sequencer::fuzz_checks`), so inputs the fuzzer found
//! interesting, and any crash it saved, stay tested by `cargo test`. The
//! seed inputs are replayed too, and regression tests for findings are
//! named after the input they replay. The replay itself is
//! `lockstep-fuzz-corpus`, shared by every crate with fuzz targets.

use lockstep_fuzz_corpus::Check;
use lockstep_sequencer::fuzz_checks;
use lockstep_sequencer::journal_reader::scan;

static TARGETS: [(&str, Check); 2] = [
    ("journal_reader", fuzz_checks::journal_reader),
    ("journal_record", fuzz_checks::journal_record),
];

lockstep_fuzz_corpus::corpus_tests!(TARGETS, fuzz_checks::seed_inputs);

/// Finding `crash-4238ecc4-repeated-seq-max` (written by hand after
/// reading `JournalReader::next`, then confirmed by the `journal_reader`
/// check; the 10-minute run did not reach it): a file whose header says
/// `first_seq` is `u64::MAX`, holding two valid records that both carry
/// seq `u64::MAX`. The reader returns both, because `expected_seq`
/// saturates at `u64::MAX` instead of running out, so a replay would apply
/// two commands under one seq. No writer can produce such a file (`append`
/// refuses to number past `u64::MAX`), but recovery must not accept it.
/// Fixed in `JournalReader::next`: once the record with seq `u64::MAX` is
/// read, any further record is a seq error.
#[test]
fn crash_4238ecc4_repeated_seq_max_is_read_once() {
    let data = corpus().read(
        "artifacts",
        "journal_reader",
        "crash-4238ecc4-repeated-seq-max",
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = dir.path().join("journal");
    std::fs::write(&journal, fuzz_checks::journal_image(&data)).expect("writable");
    let records: Vec<_> = lockstep_sequencer::journal_reader::JournalReader::open(&journal)
        .expect("the header is valid")
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        records[0].as_ref().expect("the first record is valid").seq,
        u64::MAX
    );
    assert!(records[1].is_err(), "{records:?}");
    fuzz_checks::journal_reader(&data);
}

/// The seeds reach what they are named after: a clean journal, each kind
/// of torn tail, and each error that stops recovery.
#[test]
fn the_journal_seeds_reach_every_recovery_outcome() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut outcomes = Vec::new();
    for (target, name, data) in fuzz_checks::seed_inputs() {
        if target != "journal_reader" {
            continue;
        }
        let path = dir.path().join(&name);
        std::fs::write(&path, fuzz_checks::journal_image(&data)).expect("writable");
        let outcome = match scan(&path) {
            Ok(report) => match report.torn_tail {
                None => format!("clean {}", report.records),
                Some(tail) => format!("torn {:?}", tail.reason),
            },
            Err(error) => {
                let debug = format!("{error:?}");
                debug[..debug.find([' ', '(', '{']).unwrap_or(debug.len())].to_string()
            }
        };
        outcomes.push(format!("{name}: {outcome}"));
    }
    for expected in [
        "seed-valid: clean 9",
        "seed-valid-from-seq-1000: clean 9",
        "seed-ends-at-seq-max: clean 9",
        "seed-stamped: clean 9",
        "seed-partial-record: torn PartialRecord",
        "seed-zeroed-tail: torn AllZeroRecord",
        "seed-crc-mismatch-tail: torn CrcMismatch",
        "seed-partial-header: torn PartialHeader",
        "seed-all-zero: torn AllZeroFile",
        "seed-corrupt-middle: CorruptRecord",
        "seed-bad-side-valid-crc: CorruptRecord",
        "seed-seq-gap: SeqGap",
        "seed-bad-version: BadHeader",
    ] {
        assert!(
            outcomes.iter().any(|outcome| outcome == expected),
            "no {expected:?} in {outcomes:#?}"
        );
    }
}
