//! End-to-end tests of the journal commands of the `lockstep` binary: `run`
//! writes a journal through the replicated core, and `replay --journal`,
//! `dump` and `verify` read it back. They run the built executable as a user
//! would, each in its own directory under the system's temporary directory,
//! removed afterwards.

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of the journal header and of one record.
const HEADER_BYTES: u64 = 64;
const RECORD_BYTES: u64 = 64;

/// A directory under the system's temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "lockstep-journal-cli-{name}-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    fn journal(&self) -> PathBuf {
        self.data_dir().join("journal.lkj")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `lockstep run` on a generated exchange-core flow, with `--json`.
fn run_mix(dir: &TempDir, orders: u64, seed: u64, extra: &[&str]) -> serde_json::Value {
    let data_dir = dir.data_dir();
    let orders = orders.to_string();
    let seed = seed.to_string();
    let mut args = vec![
        "run",
        "--mix",
        "exchange-core",
        "--orders",
        &orders,
        "--seed",
        &seed,
        "--data-dir",
        path_arg(&data_dir),
        "--json",
    ];
    args.extend_from_slice(extra);
    json_of(&lockstep(&args), "run")
}

/// Checks that a run's report says every replica agrees, and returns the
/// agreed state hash.
fn assert_agreed(report: &serde_json::Value, last_seq: u64, replicas: usize) -> String {
    assert_eq!(report["agree"], true, "{report}");
    assert_eq!(report["failure"], serde_json::Value::Null, "{report}");
    assert_eq!(report["last_seq"], last_seq, "{report}");
    assert_eq!(report["published_seq"], last_seq, "{report}");
    let state_hash = report["state_hash"]
        .as_str()
        .expect("an agreed state hash")
        .to_string();
    let each = report["replicas"].as_array().expect("replica reports");
    assert_eq!(each.len(), replicas);
    for replica in each {
        assert_eq!(replica["applied_seq"], last_seq, "{report}");
        assert_eq!(replica["state_hash"], state_hash.as_str(), "{report}");
    }
    state_hash
}

fn replay_journal_json(journal: &Path) -> serde_json::Value {
    json_of(
        &lockstep(&["replay", "--journal", path_arg(journal), "--json"]),
        "replay --journal",
    )
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("the journal exists").len()
}

#[test]
fn run_journals_a_50k_flow_and_replay_verify_and_the_flow_agree_with_it() {
    let dir = TempDir::new("run");
    let report = run_mix(&dir, 50_000, 7, &[]);
    let state_hash = assert_agreed(&report, 50_000, 3);
    assert_eq!(report["commands"], 50_000);
    assert_eq!(report["startup"]["recovered_seq"], 0);
    assert_eq!(report["durability"], "batch");
    assert_eq!(report["instruments"], 1);
    assert!(report["events_published"].as_u64() > Some(0), "{report}");
    assert_eq!(report["events_published"], report["events_counted"]);
    assert_eq!(report["fenced_diverged"], 0);
    let journal = dir.journal();
    assert_eq!(file_len(&journal), HEADER_BYTES + 50_000 * RECORD_BYTES);

    let replayed = replay_journal_json(&journal);
    assert_eq!(replayed["state_hash"], state_hash.as_str(), "{replayed}");
    assert_eq!(replayed["commands"], 50_000);
    assert_eq!(replayed["first_seq"], 1);
    assert_eq!(replayed["last_seq"], 50_000);
    assert_eq!(replayed["torn_tail"], serde_json::Value::Null);

    // The same flow written as CSV and replayed from it.
    let flow = dir.path.join("flow.csv");
    assert_success(
        &lockstep(&[
            "gen",
            "--seed",
            "7",
            "--orders",
            "50000",
            "--mix",
            "exchange-core",
            "--out",
            path_arg(&flow),
        ]),
        "gen",
    );
    let from_flow = json_of(
        &lockstep(&["replay", "--flow", path_arg(&flow), "--json"]),
        "replay --flow",
    );
    assert_eq!(from_flow["state_hash"], state_hash.as_str(), "{from_flow}");
    assert_eq!(from_flow["event_hash"], replayed["event_hash"]);
    assert_eq!(from_flow["fills"], replayed["fills"]);

    let output = lockstep(&["verify", "--journal", path_arg(&journal), "--replicas", "3"]);
    assert_success(&output, "verify");
    let expected = format!("3 replicas agree through seq 50000, state hash {state_hash}");
    assert!(
        stdout_of(&output).contains(&expected),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn dump_from_10_count_3_shows_seqs_10_11_12() {
    let dir = TempDir::new("dump");
    run_mix(&dir, 2_000, 3, &["--durability", "none"]);
    let journal = dir.journal();

    let output = lockstep(&[
        "dump",
        "--journal",
        path_arg(&journal),
        "--from",
        "10",
        "--count",
        "3",
    ]);
    assert_success(&output, "dump");
    let text = stdout_of(&output);
    assert!(
        text.lines()
            .next()
            .is_some_and(|line| line.contains("format version 1, first seq 1")),
        "{text}"
    );
    let seqs: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("seq="))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(seqs, ["10", "11", "12"], "{text}");
    assert!(text.contains("seq=10 offset=640 "), "{text}");

    let output = lockstep(&[
        "dump",
        "--journal",
        path_arg(&journal),
        "--from",
        "10",
        "--count",
        "3",
        "--json",
    ]);
    assert_success(&output, "dump --json");
    let lines: Vec<serde_json::Value> = stdout_of(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert_eq!(
        lines.first().map(|line| &line["type"]),
        Some(&"header".into())
    );
    assert_eq!(lines[0]["first_seq"], 1);
    assert_eq!(lines[0]["format_version"], 1);
    let records: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["type"] == "record")
        .collect();
    let seqs: Vec<u64> = records
        .iter()
        .filter_map(|record| record["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [10, 11, 12]);
    for record in records {
        assert!(record["kind"].is_string(), "{record}");
        assert!(record["timestamp_ns"].as_u64() > Some(0), "{record}");
        assert!(
            record["timestamp"]
                .as_str()
                .is_some_and(|ts| ts.ends_with('Z')),
            "{record}"
        );
    }
    assert_eq!(lines.last().map(|line| &line["type"]), Some(&"end".into()));
}

#[test]
fn verify_agrees_and_an_injected_divergence_at_100_is_reported_with_exit_1() {
    let dir = TempDir::new("verify");
    let report = run_mix(&dir, 2_000, 4, &["--durability", "none"]);
    let state_hash = assert_agreed(&report, 2_000, 3);
    let journal = dir.journal();

    let output = lockstep(&["verify", "--journal", path_arg(&journal), "--replicas", "3"]);
    assert_success(&output, "verify");
    let expected = format!("3 replicas agree through seq 2000, state hash {state_hash}");
    assert!(
        stdout_of(&output).contains(&expected),
        "{}",
        stdout_of(&output)
    );

    let output = lockstep(&[
        "verify",
        "--journal",
        path_arg(&journal),
        "--replicas",
        "3",
        "--inject-divergence-at",
        "100",
    ]);
    let line = single_error_line(&output, 1);
    assert!(line.contains("diverge at seq 100"), "{line}");

    // The flag is for tests: it works but is not advertised.
    let help = stdout_of(&lockstep(&["verify", "--help"]));
    assert!(help.contains("--replicas"), "{help}");
    assert!(!help.contains("inject"), "{help}");
}

#[test]
fn a_flipped_byte_in_the_middle_record_fails_replay_naming_the_offset() {
    let dir = TempDir::new("corrupt");
    run_mix(&dir, 2_000, 5, &["--durability", "none"]);
    let journal = dir.journal();
    let middle_offset = HEADER_BYTES + 1_000 * RECORD_BYTES;
    let mut bytes = std::fs::read(&journal).expect("read the journal");
    bytes[middle_offset as usize + 20] ^= 0x01;
    std::fs::write(&journal, &bytes).expect("write the damaged journal");

    let line = single_error_line(&lockstep(&["replay", "--journal", path_arg(&journal)]), 1);
    assert!(
        line.contains(&format!("byte offset {middle_offset} ")),
        "{line}"
    );
    assert!(line.contains("expected seq 1001"), "{line}");
    // Reading never changes the file.
    assert_eq!(std::fs::read(&journal).expect("read again"), bytes);
}

#[test]
fn a_torn_tail_is_reported_by_replay_and_does_not_fail_it() {
    let dir = TempDir::new("torn");
    run_mix(&dir, 2_000, 6, &["--durability", "none"]);
    let journal = dir.journal();
    let full_len = HEADER_BYTES + 2_000 * RECORD_BYTES;
    assert_eq!(file_len(&journal), full_len);
    let torn_len = full_len - 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .and_then(|file| file.set_len(torn_len))
        .expect("truncate mid-record");

    let replayed = replay_journal_json(&journal);
    assert_eq!(replayed["commands"], 1_999);
    assert_eq!(replayed["last_seq"], 1_999);
    let torn = &replayed["torn_tail"];
    assert_eq!(torn["offset_bytes"], full_len - RECORD_BYTES, "{replayed}");
    assert_eq!(torn["bytes_dropped"], RECORD_BYTES - 20, "{replayed}");
    assert_eq!(torn["reason"], "partial record", "{replayed}");
    assert_eq!(file_len(&journal), torn_len, "replay must not truncate");

    let output = lockstep(&["replay", "--journal", path_arg(&journal)]);
    assert_success(&output, "replay --journal (text)");
    assert!(
        stdout_of(&output).contains("torn tail of 44 bytes"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn run_twice_on_one_data_dir_continues_from_the_recovered_seq() {
    let dir = TempDir::new("twice");
    let first = run_mix(&dir, 3_000, 1, &["--durability", "none"]);
    assert_agreed(&first, 3_000, 3);
    let second = run_mix(&dir, 2_000, 2, &["--plain-file"]);
    let state_hash = assert_agreed(&second, 5_000, 3);
    assert_eq!(second["startup"]["recovered_seq"], 3_000, "{second}");
    assert_eq!(second["startup"]["replayed"], 3_000, "{second}");
    assert_eq!(second["commands"], 2_000);
    assert_eq!(second["journal_backend"], "plain file");

    let journal = dir.journal();
    assert_eq!(file_len(&journal), HEADER_BYTES + 5_000 * RECORD_BYTES);
    let replayed = replay_journal_json(&journal);
    assert_eq!(replayed["state_hash"], state_hash.as_str(), "{replayed}");
    assert_eq!(replayed["last_seq"], 5_000);

    let output = lockstep(&[
        "dump",
        "--journal",
        path_arg(&journal),
        "--from",
        "3001",
        "--count",
        "1",
    ]);
    assert_success(&output, "dump");
    assert!(
        stdout_of(&output).contains("\nseq=3001 "),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn journal_commands_keep_the_usage_contract() {
    // Exactly one of --flow and --journal.
    let line = single_error_line(&lockstep(&["replay", "--flow", "a", "--journal", "b"]), 2);
    assert!(line.contains("--journal"), "{line}");
    let line = single_error_line(&lockstep(&["replay"]), 2);
    assert!(
        line.contains("--flow") && line.contains("--journal"),
        "{line}"
    );
    // run needs an input and a data directory; --mix needs --orders.
    let line = single_error_line(&lockstep(&["run", "--mix", "simple", "--data-dir", "d"]), 2);
    assert!(line.contains("--orders"), "{line}");
    let line = single_error_line(&lockstep(&["run", "--flow", "f.csv"]), 2);
    assert!(line.contains("--data-dir"), "{line}");
    // A missing journal is a failure, not a usage error.
    for subcommand in ["replay", "dump", "verify"] {
        let line = single_error_line(
            &lockstep(&[subcommand, "--journal", "/nonexistent/journal.lkj"]),
            1,
        );
        assert!(line.contains("/nonexistent/journal.lkj"), "{line}");
    }
    let help = stdout_of(&lockstep(&["--help"]));
    for subcommand in ["run", "dump", "verify"] {
        assert!(help.contains(subcommand), "{help}");
        assert_success(&lockstep(&[subcommand, "--help"]), subcommand);
    }
}
