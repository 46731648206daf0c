//! `lockstep demo` end to end, shortened: a slice of the bundled LOBSTER day
//! replayed as fast as its order allows and a one-second synthetic load with
//! the replica kill. It proves the plumbing of the README's first command:
//! both parts run against a real in-process server, every check reports
//! (state hash against the offline replay, replicas agreeing, no gap and no
//! duplicate across the kill), and the reports are written. No timing is
//! asserted: the machine may be busy.

mod common;

use common::{lockstep, path_arg, single_error_line, stdout_of};
use std::path::PathBuf;

const BUNDLED_LOBSTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv"
);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_short_demo_replays_the_real_sample_survives_the_kill_and_passes_every_check() {
    let dir = temp_dir("short");
    // The first 3,000 records of the real day keep the debug build quick.
    let day = std::fs::read_to_string(BUNDLED_LOBSTER).expect("the bundled LOBSTER day");
    let slice: String = day
        .lines()
        .take(3_000)
        .map(|line| format!("{line}\n"))
        .collect();
    let lobster = dir.join("AMZN_slice_message_1.csv");
    std::fs::write(&lobster, slice).expect("write the slice");
    let out = dir.join("out");
    let output = lockstep(&[
        "demo",
        "--lobster",
        path_arg(&lobster),
        "--speed",
        "max",
        "--rate",
        "2k",
        "--duration-s",
        "1",
        "--out",
        path_arg(&out),
    ]);
    common::assert_success(&output, "lockstep demo");
    let report = stdout_of(&output);
    for expected in [
        "1. Real order flow",
        "state hash matches the offline replay",
        "2. Synthetic load",
        "they agree",
        "gaps seen by clients: 0, duplicates: 0",
        "all checks passed",
    ] {
        assert!(
            report.contains(expected),
            "missing '{expected}' in:\n{report}"
        );
    }
    for file in ["summary.json", "latency.png"] {
        assert!(out.join(file).is_file(), "{file} not written");
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json parses");
    assert_eq!(summary["runs"].as_array().map(Vec::len), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_lobster_file_is_a_one_line_error() {
    let dir = temp_dir("missing");
    let missing = dir.join("no_such_message_1.csv");
    let line = single_error_line(
        &lockstep(&[
            "demo",
            "--lobster",
            path_arg(&missing),
            "--out",
            path_arg(&dir),
        ]),
        1,
    );
    assert!(line.contains("no_such_message_1.csv"), "{line}");
    let line = single_error_line(&lockstep(&["demo", "--speed", "fast"]), 2);
    assert!(line.contains("speed"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
