//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `bench/fuzz/corpus/<target>/` and `bench/fuzz/artifacts/<target>/` goes
//! through the same check as the fuzz target of that name
//! (`lockstep_bench::fuzz_checks`), so inputs the fuzzer found interesting,
//! and any crash it saved, stay tested by `cargo test`. The seed inputs are
//! replayed too, and regression tests for findings are named after the
//! input they replay.

use lockstep_bench::fuzz_checks;
use lockstep_bench::{import_lobster, load_flow};
use lockstep_fuzz_corpus::{Check, FuzzCorpus};

static TARGETS: [(&str, Check); 2] = [
    ("flow_csv", fuzz_checks::flow_csv),
    ("lobster_import", fuzz_checks::lobster_import),
];

fn corpus() -> FuzzCorpus {
    FuzzCorpus::new(env!("CARGO_MANIFEST_DIR"), &TARGETS)
}

#[test]
fn every_corpus_file_passes_its_targets_checks() {
    corpus().assert_every_corpus_file_passes();
}

#[test]
fn every_saved_fuzz_artifact_passes_its_targets_checks() {
    corpus().assert_every_artifact_passes();
}

#[test]
fn every_corpus_directory_is_named_after_a_target() {
    corpus().assert_every_directory_is_a_target();
}

#[test]
fn the_seed_inputs_pass_their_targets_checks() {
    corpus().assert_seeds_pass(&fuzz_checks::seed_inputs());
}

/// The seeds go deep: the flows load, and the LOBSTER file converts every
/// event type it can.
#[test]
fn the_seeds_load_and_import() {
    for (target, name, data) in fuzz_checks::seed_inputs() {
        match (target, name.as_str()) {
            ("flow_csv", _) => {
                let loaded = load_flow(data.as_slice()).expect("the flow seeds are valid");
                assert!(loaded.commands.len() >= 8, "{name}");
            }
            ("lobster_import", "seed-every-type") => {
                let stats = import_lobster(data.as_slice(), Vec::new()).expect("valid");
                for (kind, counts) in stats.kinds() {
                    assert!(counts.converted + counts.skipped > 0, "no {kind} in {name}");
                }
                assert!(stats.partial_cancels_written_as_cancel > 0);
                assert!(stats.deletions.skipped > 0);
            }
            ("lobster_import", _) => {
                assert!(
                    import_lobster(data.as_slice(), Vec::new()).is_err(),
                    "{name}"
                );
            }
            _ => panic!("a seed for an unknown target {target}"),
        }
    }
}

/// Writes the seed inputs into `bench/fuzz/corpus/<target>/`, where
/// `cargo fuzz run` starts from them. Run it by hand before fuzzing a
/// fresh checkout: `cargo test -p lockstep-bench --test fuzz_corpus --
/// --ignored write_seed_inputs_into_the_corpus`.
#[test]
#[ignore = "writes into the source tree; run by hand to seed the corpus"]
fn write_seed_inputs_into_the_corpus() {
    corpus().write_seeds(fuzz_checks::seed_inputs());
}
