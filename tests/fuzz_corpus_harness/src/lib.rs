//! Replays a crate's cargo-fuzz corpus on stable, without cargo-fuzz, so
//! that `cargo test` keeps every input the fuzzer found interesting, and
//! any crash it saved, under test. Each crate that has fuzz targets (engine,
//! sequencer, transport, bench) names its targets and their checks (its
//! `fuzz_checks` module, the same functions the fuzz targets call) in a
//! [`FuzzCorpus`], and its `tests/fuzz_corpus.rs` calls the assertions here
//! from one-line tests, next to the regression tests of its own findings.
//!
//! The layout is cargo-fuzz's: `<crate>/fuzz/corpus/<target>/` and
//! `<crate>/fuzz/artifacts/<target>/`, one input per file.

use std::path::{Path, PathBuf};

/// A target's check: panics on a finding.
pub type Check = fn(&[u8]);

/// One seed input: its target, its file name and its bytes (the shape of
/// every crate's `fuzz_checks::seed_inputs()`).
pub type Seed = (&'static str, String, Vec<u8>);

/// A crate's fuzz directory and its targets.
pub struct FuzzCorpus {
    fuzz_dir: PathBuf,
    targets: &'static [(&'static str, Check)],
}

impl FuzzCorpus {
    /// The corpus under `crate_dir/fuzz` (pass `env!("CARGO_MANIFEST_DIR")`)
    /// for `targets`.
    pub fn new(crate_dir: &str, targets: &'static [(&'static str, Check)]) -> FuzzCorpus {
        assert!(
            !targets.is_empty(),
            "a fuzz corpus needs at least one target"
        );
        FuzzCorpus {
            fuzz_dir: Path::new(crate_dir).join("fuzz"),
            targets,
        }
    }

    /// `<crate>/fuzz`.
    pub fn fuzz_dir(&self) -> &Path {
        &self.fuzz_dir
    }

    /// The check of the target named `target`.
    pub fn check_of(&self, target: &str) -> Check {
        self.targets
            .iter()
            .find(|(name, _)| *name == target)
            .map(|(_, check)| *check)
            .unwrap_or_else(|| panic!("no fuzz target named {target}"))
    }

    /// The bytes of a file the repository keeps under
    /// `<fuzz>/<kind>/<target>/<name>` (a regression test's input).
    pub fn read(&self, kind: &str, target: &str, name: &str) -> Vec<u8> {
        let path = self.fuzz_dir.join(kind).join(target).join(name);
        std::fs::read(&path)
            .unwrap_or_else(|error| panic!("{} is in the repository: {error}", path.display()))
    }

    /// Runs every file of `<fuzz>/<kind>/<target>/` through its target's
    /// check and returns how many there were.
    pub fn replay(&self, kind: &str, target: &str) -> usize {
        let check = self.check_of(target);
        let files = files_in(&self.fuzz_dir.join(kind).join(target));
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

    /// Every corpus file passes its target's check, and there is a corpus.
    pub fn assert_every_corpus_file_passes(&self) {
        let mut total = 0;
        for (target, _) in self.targets {
            let replayed = self.replay("corpus", target);
            println!("{target}: {replayed} corpus files replayed");
            total += replayed;
        }
        assert!(
            total > 0,
            "no corpus under {}: the fuzz corpus is part of the repository",
            self.fuzz_dir.display()
        );
    }

    /// Every saved artifact (a crash the fuzzer kept) passes its target's
    /// check now.
    pub fn assert_every_artifact_passes(&self) {
        for (target, _) in self.targets {
            let replayed = self.replay("artifacts", target);
            if replayed > 0 {
                println!("{target}: {replayed} artifacts replayed");
            }
        }
    }

    /// Every directory under `corpus/` and `artifacts/` belongs to a target:
    /// the files of any other would never be replayed.
    pub fn assert_every_directory_is_a_target(&self) {
        for kind in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(self.fuzz_dir.join(kind)) else {
                continue;
            };
            for entry in entries {
                let entry = entry.expect("a readable directory entry");
                let name = entry.file_name().to_string_lossy().into_owned();
                assert!(
                    self.targets.iter().any(|(target, _)| *target == name),
                    "{kind}/{name} is not a fuzz target's directory: its files would never be replayed"
                );
            }
        }
    }

    /// Every target has a seed, and every seed passes its target's check.
    pub fn assert_seeds_pass(&self, seeds: &[Seed]) {
        for (target, _) in self.targets {
            assert!(
                seeds
                    .iter()
                    .any(|(seed_target, _, _)| seed_target == target),
                "no seed for {target}"
            );
        }
        for (target, name, data) in seeds {
            let check = self.check_of(target);
            let outcome = std::panic::catch_unwind(|| check(data));
            assert!(outcome.is_ok(), "seed {name} fails the {target} check");
        }
    }

    /// Writes the seeds into `<fuzz>/corpus/<target>/`, where `cargo fuzz
    /// run` starts from them (run by hand before fuzzing a fresh checkout).
    pub fn write_seeds(&self, seeds: Vec<Seed>) {
        for (target, name, data) in seeds {
            let dir = self.fuzz_dir.join("corpus").join(target);
            std::fs::create_dir_all(&dir).expect("the corpus directory can be created");
            std::fs::write(dir.join(name), data).expect("the seed can be written");
        }
    }
}

/// The files directly in `dir`, sorted so failures are reproducible; none
/// if it does not exist.
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

/// The tests every crate with fuzz targets runs, from its
/// `tests/fuzz_corpus.rs`: `corpus_tests!(TARGETS, fuzz_checks::seed_inputs);`
/// with `TARGETS` a `static [(&str, Check); N]` and the crate's seed
/// function. It defines `corpus()` for the crate's own regression tests.
#[macro_export]
macro_rules! corpus_tests {
    ($targets:expr, $seed_inputs:path) => {
        fn corpus() -> $crate::FuzzCorpus {
            $crate::FuzzCorpus::new(env!("CARGO_MANIFEST_DIR"), &$targets)
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
            corpus().assert_seeds_pass(&$seed_inputs());
        }

        /// Writes the seed inputs into `<crate>/fuzz/corpus/<target>/`,
        /// where `cargo fuzz run` starts from them. Run it by hand before
        /// fuzzing a fresh checkout: `cargo test -p <crate> --test
        /// fuzz_corpus -- --ignored write_seed_inputs_into_the_corpus`.
        #[test]
        #[ignore = "writes into the source tree; run by hand to seed the corpus"]
        fn write_seed_inputs_into_the_corpus() {
            corpus().write_seeds($seed_inputs());
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuses_x(data: &[u8]) {
        assert!(!data.contains(&b'x'), "an x");
    }

    const TARGETS: [(&str, Check); 1] = [("no_x", refuses_x)];

    fn temp_crate(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fuzz-corpus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("fuzz/corpus/no_x")).unwrap();
        dir
    }

    #[test]
    fn a_passing_corpus_is_replayed_and_a_failing_file_is_named() {
        let dir = temp_crate("replay");
        let corpus = FuzzCorpus::new(dir.to_str().unwrap(), &TARGETS);
        std::fs::write(dir.join("fuzz/corpus/no_x/a"), b"abc").unwrap();
        assert_eq!(corpus.replay("corpus", "no_x"), 1);
        corpus.assert_every_corpus_file_passes();
        std::fs::write(dir.join("fuzz/corpus/no_x/b"), b"xyz").unwrap();
        let failure = std::panic::catch_unwind(|| corpus.replay("corpus", "no_x"))
            .expect_err("the file with an x fails");
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.contains("no_x/b fails the no_x check"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stray_directory_and_a_target_without_a_seed_are_refused() {
        let dir = temp_crate("stray");
        let corpus = FuzzCorpus::new(dir.to_str().unwrap(), &TARGETS);
        corpus.assert_every_directory_is_a_target();
        std::fs::create_dir_all(dir.join("fuzz/corpus/renamed")).unwrap();
        assert!(std::panic::catch_unwind(|| corpus.assert_every_directory_is_a_target()).is_err());
        assert!(std::panic::catch_unwind(|| corpus.assert_seeds_pass(&[])).is_err());
        corpus.assert_seeds_pass(&[("no_x", "ok".to_string(), b"ok".to_vec())]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
