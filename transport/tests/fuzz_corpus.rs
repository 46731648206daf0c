//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `transport/fuzz/corpus/<target>/` and `transport/fuzz/artifacts/<target>/`
//! goes through the same check as the fuzz target of that name
//! (`lockstep_transport::fuzz_checks`), so inputs the fuzzer found
//! interesting, and any crash it saved, stay tested by `cargo test`. The
//! seed inputs are replayed too, and regression tests for findings are
//! named after the input they replay.

use lockstep_transport::fuzz_checks;
use lockstep_transport::soupbintcp::Packet;
use std::path::{Path, PathBuf};

/// A target's check: panics on a finding.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("soupbintcp_decoder", fuzz_checks::soupbintcp_decoder),
    ("ouch_inbound", fuzz_checks::ouch_inbound),
    ("ouch_outbound", fuzz_checks::ouch_outbound),
    ("gateway_session", fuzz_checks::gateway_session),
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

#[test]
fn the_gateway_seeds_log_in_trade_and_time_out() {
    let seeds = fuzz_checks::seed_inputs();
    let stats = |name: &str| {
        let (_, _, data) = seeds
            .iter()
            .find(|(_, seed, _)| seed == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        fuzz_checks::gateway_session_stats(data)
    };
    let trade = stats("seed-two-sessions-trade");
    assert_eq!(trade.logins_accepted, 3, "{trade:?}");
    assert!(trade.messages_sequenced >= 8, "{trade:?}");
    assert_eq!(trade.disconnects_malformed, 0, "{trade:?}");
    let split = stats("seed-split-busy-timeout");
    assert_eq!(split.logins_accepted, 1, "{split:?}");
    assert!(split.submit_busy >= 1, "{split:?}");
    assert!(split.messages_sequenced >= 2, "{split:?}");
    assert!(split.disconnects_malformed >= 1, "{split:?}");
}

/// The first finding of `gateway_session` (artifact
/// `crash-0e2f4061-debug-before-login`): a connection that sends Debug
/// before its Login Request is logged in, as SoupBinTCP allows Debug at any
/// time; the check had assumed the Login Request was the very first packet.
/// The fault was in the check, not the gateway.
#[test]
fn crash_0e2f4061_debug_before_login_is_logged_in() {
    let path = fuzz_dir()
        .join("artifacts")
        .join("gateway_session")
        .join("crash-0e2f4061-debug-before-login");
    let data = std::fs::read(&path).expect("the artifact is in the repository");
    let stats = fuzz_checks::gateway_session_stats(&data);
    assert_eq!(stats.logins_accepted, 1, "{stats:?}");

    let mut script = fuzz_checks::GatewayScript::new();
    script
        .packet(1, &Packet::Debug(b"before login"))
        .login(1, "bob", "pw2", 0)
        .drain(1);
    let stats = fuzz_checks::gateway_session_stats(script.bytes());
    assert_eq!(stats.logins_accepted, 1, "{stats:?}");
    assert_eq!(stats.disconnects_malformed, 0, "{stats:?}");
}

/// Writes the seed inputs into `transport/fuzz/corpus/<target>/`, where
/// `cargo fuzz run` starts from them. Run it by hand before fuzzing a
/// fresh checkout: `cargo test -p lockstep-transport --test fuzz_corpus --
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
