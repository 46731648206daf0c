//! Smoke test of `lockstep bench-core`: a tiny run of every section with
//! `--json`, checking that the report has every key and that every figure is
//! positive. No timing is asserted: the figures depend on the machine.

mod common;

use common::*;

use serde_json::Value;
use std::path::Path;

fn positive(value: &Value, what: &str) {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(number > 0.0, "{what} is {number}");
}

fn array<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {value}"))
}

#[test]
fn a_tiny_run_reports_every_section_with_positive_figures() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-core-smoke");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let output = lockstep(&[
        "bench-core",
        "--json",
        "--commands",
        "20000",
        "--hop-messages",
        "2000",
        "--hop-seconds",
        "1",
        "--ping-pong-round-trips",
        "20000",
        "--journal-records",
        "2000",
        "--journal-every-records",
        "20",
        "--dir",
        dir.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        output.status.success(),
        "bench-core failed with {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");

    assert!(!array(&report["machine"]["cores"], "cores").is_empty());
    assert!(!array(&report["notes"], "notes").is_empty());

    let hop = &report["hop"];
    positive(&hop["ping_pong"]["round_trip_p50_ns"], "ping-pong p50");
    positive(
        &hop["ping_pong_after"]["round_trip_p50_ns"],
        "ping-pong p50 after",
    );
    positive(&hop["one_way_p50_ns"], "one-way p50");
    let runs = array(&hop["runs"], "hop runs");
    for readers in [1, 3] {
        let default = runs
            .iter()
            .find(|run| run["readers"] == readers && run["default"] == true)
            .unwrap_or_else(|| panic!("no default hop run with {readers} readers"));
        for key in [
            "recorded",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "p50_over_one_way_p50",
        ] {
            positive(&default[key], &format!("{readers}-reader hop {key}"));
        }
        assert!(default["wait"].is_string() && default["target_met"].is_boolean());
    }
    for run in runs {
        positive(&run["sent"], "hop messages sent");
        assert!(run["payload_bytes"].as_u64().is_some_and(|bytes| bytes > 0));
    }

    let throughput = &report["throughput"];
    assert_eq!(throughput["commands"], 20000);
    positive(&throughput["engine_commands_per_sec"], "engine commands/s");
    let systems = array(&throughput["systems"], "systems");
    let policies: Vec<&str> = systems
        .iter()
        .map(|system| system["durability"].as_str().expect("policy name"))
        .collect();
    assert_eq!(policies, ["batch", "none"]);
    for system in systems {
        for key in [
            "commands_per_sec",
            "system_over_engine",
            "events",
            "elapsed_ns",
        ] {
            positive(&system[key], &format!("system {key}"));
        }
        assert!(system["target_met"].is_boolean());
    }

    let journal = array(&report["journal"], "journal");
    let policies: Vec<&str> = journal
        .iter()
        .map(|policy| policy["policy"].as_str().expect("policy name"))
        .collect();
    assert_eq!(policies, ["none", "batch", "every"]);
    for policy in journal {
        let journals = array(&policy["journals"], "journal runs");
        assert_eq!(journals.len(), 2);
        for run in journals.iter().chain([&policy["baseline"]]) {
            for key in [
                "commands_per_sec",
                "commit_latency_p50_ns",
                "commit_latency_p99_ns",
            ] {
                positive(&run[key], &format!("journal {key}"));
            }
        }
        for run in journals {
            positive(
                &run["commands_per_sec_over_baseline"],
                "journal over baseline",
            );
        }
    }

    // The scratch directory is gone.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("scratch directory")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_bad_wait_strategy_is_a_one_line_usage_error() {
    let output = lockstep(&["bench-core", "--wait", "sleepy"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("lockstep: "), "{stderr}");
    assert!(stderr.contains("sleepy"), "{stderr}");
}

#[test]
fn help_names_the_sections_options() {
    let output = lockstep(&["bench-core", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--hop-messages",
        "--wait",
        "--durability",
        "--journal-records",
        "--json",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
}
