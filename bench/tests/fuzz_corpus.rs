//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `bench/fuzz/corpus/<target>/` and `bench/fuzz/artifacts/<target>/` goes
//! through the same check as the fuzz target of that name
//! (`lockstep_bench::fuzz_checks`), so inputs the fuzzer found interesting,
//! and any crash it saved, stay tested by `cargo test`. The seed inputs are
//! replayed too, and regression tests for findings are named after the
//! input they replay.

use lockstep_bench::fuzz_checks;
use lockstep_bench::{import_lobster, load_flow};
use lockstep_fuzz_corpus::Check;

static TARGETS: [(&str, Check); 2] = [
    ("flow_csv", fuzz_checks::flow_csv),
    ("lobster_import", fuzz_checks::lobster_import),
];

lockstep_fuzz_corpus::corpus_tests!(TARGETS, fuzz_checks::seed_inputs);

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
