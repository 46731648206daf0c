//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `bench/fuzz/corpus/<target>/` and `bench/fuzz/artifacts/<target>/` goes
//! through the same check as the fuzz target of that name
//! (`lockstep_bench::fuzz_checks`), so inputs the fuzzer found interesting,
//! and any crash it saved, stay tested by `cargo test`. The seed inputs are
//! replayed too, and regression tests for findings are named after the
//! input they replay.

use lockstep_bench::fuzz_checks;
use lockstep_bench::{import_lobster, load_flow};
use std::path::{Path, PathBuf};

/// A target's check: panics on a finding.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 2] = [
    ("flow_csv", fuzz_checks::flow_csv),
    ("lobster_import", fuzz_checks::lobster_import),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn check_of(target: &str) -> Check {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no fuzz target named {target}"))
}

/// The files directly in `dir`, sorted so failures are reproducible.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `<fuzz>/<kind>/<target>/` through its target's check
/// and returns how many there were.
fn replay(kind: &str, target: &str) -> usize {
    let check = check_of(target);
    let files = files_in(&fuzz_dir().join(kind).join(target));
    for path in &files {
        let data = std::fs::read(path).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{} fails the {target} check (replay it with `cargo +nightly fuzz run {target} {}`)",
            path.display(),
            path.display()
        );
    }
    files.len()
}

#[test]
fn every_corpus_file_passes_its_targets_checks() {
    let mut total = 0;
    for (target, _) in TARGETS {
        let replayed = replay("corpus", target);
        println!("{target}: {replayed} corpus files replayed");
        total += replayed;
    }
    assert!(
        total > 0,
        "no corpus under {}: the fuzz corpus is part of the repository",
        fuzz_dir().display()
    );
}

#[test]
fn every_saved_fuzz_artifact_passes_its_targets_checks() {
    for (target, _) in TARGETS {
        let replayed = replay("artifacts", target);
        if replayed > 0 {
            println!("{target}: {replayed} artifacts replayed");
        }
    }
}

#[test]
fn every_corpus_directory_is_named_after_a_target() {
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a readable directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(target, _)| *target == name),
                "{kind}/{name} is not a fuzz target's directory: its files would never be replayed"
            );
        }
    }
}

#[test]
fn the_seed_inputs_pass_their_targets_checks() {
    let seeds = fuzz_checks::seed_inputs();
    for (target, _) in TARGETS {
        assert!(
            seeds
                .iter()
                .any(|(seed_target, _, _)| *seed_target == target),
            "no seed for {target}"
        );
    }
    for (target, name, data) in &seeds {
        let outcome = std::panic::catch_unwind(|| check_of(target)(data));
        assert!(outcome.is_ok(), "seed {name} fails the {target} check");
    }
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
    for (target, name, data) in fuzz_checks::seed_inputs() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be created");
        std::fs::write(dir.join(name), data).expect("the seed can be written");
    }
}
