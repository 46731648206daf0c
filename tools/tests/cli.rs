//! End-to-end tests of the `lockstep` binary: they run the built executable
//! the way a user would and check its files, its output and its exit status,
//! including the error contract (one line on stderr starting with
//! `lockstep: `, exit 1 for failures and 2 for usage errors).

mod common;

use common::*;

use std::path::{Path, PathBuf};

const LOBSTER_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv"
);

/// A fresh directory per test under cargo's scratch space for integration
/// tests, so parallel tests never share files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn replay_json(flow: &Path, trades: &Path) -> serde_json::Value {
    let output = lockstep(&[
        "replay",
        "--flow",
        path_arg(flow),
        "--trades-out",
        path_arg(trades),
        "--json",
    ]);
    assert_success(&output, "replay");
    serde_json::from_str(&stdout_of(&output)).expect("replay --json prints JSON")
}

#[test]
fn gen_twice_with_one_seed_writes_identical_files() {
    let dir = scratch_dir("gen");
    for mix in ["exchange-core", "simple"] {
        let first = dir.join(format!("{mix}-a.csv"));
        let second = dir.join(format!("{mix}-b.csv"));
        let other_seed = dir.join(format!("{mix}-c.csv"));
        for (path, seed) in [(&first, "5"), (&second, "5"), (&other_seed, "6")] {
            let output = lockstep(&[
                "gen",
                "--seed",
                seed,
                "--orders",
                "20000",
                "--mix",
                mix,
                "--out",
                path_arg(path),
            ]);
            assert_success(&output, "gen");
        }
        let first = std::fs::read(first).expect("written");
        let second = std::fs::read(second).expect("written");
        let other_seed = std::fs::read(other_seed).expect("written");
        assert_eq!(first, second, "{mix}");
        assert_ne!(first, other_seed, "{mix}");
        // Header plus one line per record.
        assert_eq!(first.iter().filter(|byte| **byte == b'\n').count(), 20_001);
    }
}

#[test]
fn replay_twice_gives_the_same_trades_and_state_hash() {
    let dir = scratch_dir("replay");
    let flow = dir.join("flow.csv");
    let output = lockstep(&[
        "gen",
        "--seed",
        "9",
        "--orders",
        "50000",
        "--mix",
        "simple",
        "--out",
        path_arg(&flow),
    ]);
    assert_success(&output, "gen");
    let first = replay_json(&flow, &dir.join("first.trades.csv"));
    let second = replay_json(&flow, &dir.join("second.trades.csv"));
    assert_eq!(first["commands"], 50_000);
    assert_eq!(first["state_hash"], second["state_hash"]);
    assert_eq!(first["event_hash"], second["event_hash"]);
    let first_trades = std::fs::read(dir.join("first.trades.csv")).expect("written");
    let second_trades = std::fs::read(dir.join("second.trades.csv")).expect("written");
    assert_eq!(first_trades, second_trades);
    let fills = first["fills"].as_u64().expect("fills is a number");
    assert!(fills > 0);
    let trade_lines = String::from_utf8_lossy(&first_trades).lines().count() as u64;
    assert_eq!(trade_lines, fills + 1, "one line per fill after the header");

    // The text report carries the same hash.
    let output = lockstep(&["replay", "--flow", path_arg(&flow)]);
    assert_success(&output, "replay");
    let state_hash = first["state_hash"].as_str().expect("hex string");
    assert!(stdout_of(&output).contains(&format!("state hash:       {state_hash}")));
}

#[test]
fn the_bundled_lobster_sample_imports_and_replays_to_the_end() {
    let dir = scratch_dir("lobster");
    let flow = dir.join("amzn.csv");
    let output = lockstep(&["import-lobster", LOBSTER_SAMPLE, "--out", path_arg(&flow)]);
    assert_success(&output, "import-lobster");
    let report = stdout_of(&output);
    // The README's counts: 27,845 submissions, all of them usable.
    assert!(
        report.contains("submission               27845         0"),
        "{report}"
    );
    assert!(
        report.contains("hidden_execution             0      2445"),
        "{report}"
    );
    let records = std::fs::read_to_string(&flow)
        .expect("flow written")
        .lines()
        .count() as u64
        - 1;
    let summary = replay_json(&flow, &dir.join("amzn.trades.csv"));
    assert_eq!(summary["commands"], records);
    assert!(summary["fills"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn a_malformed_flow_line_fails_with_one_line_naming_file_and_line() {
    let dir = scratch_dir("malformed");
    let flow = dir.join("bad.csv");
    let trades = dir.join("bad.trades.csv");
    std::fs::write(
        &flow,
        "action,instrument,order_id,side,type,price,qty,tif,post_only\n\
new,1,1,buy,limit,100,5,gtc,0\n\
new,1,2,sideways,limit,100,5,gtc,0\n",
    )
    .expect("temp file");
    let output = lockstep(&[
        "replay",
        "--flow",
        path_arg(&flow),
        "--trades-out",
        path_arg(&trades),
    ]);
    let line = single_error_line(&output, 1);
    assert_eq!(
        line,
        format!(
            "lockstep: {}:3: side: \"sideways\" is not buy or sell",
            flow.display()
        )
    );
    assert!(output.stdout.is_empty(), "nothing but the error is printed");
    assert!(!trades.exists(), "nothing is written");
}

#[test]
fn a_malformed_lobster_line_fails_and_leaves_no_flow() {
    let dir = scratch_dir("malformed-lobster");
    let input = dir.join("message.csv");
    let flow = dir.join("flow.csv");
    std::fs::write(&input, "34200.1,1,100,50,2238100,1\n34200.2,9,1,1,1,1\n").expect("temp");
    let output = lockstep(&["import-lobster", path_arg(&input), "--out", path_arg(&flow)]);
    let line = single_error_line(&output, 1);
    assert!(
        line.contains(&format!("{}:2: type", input.display())),
        "{line}"
    );
    assert!(!flow.exists());
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let line = single_error_line(&lockstep(&["replay", "--flow", "x.csv", "--bogus"]), 2);
    assert!(line.contains("--bogus"), "{line}");
    let line = single_error_line(&lockstep(&["gen", "--seed", "1"]), 2);
    assert!(line.contains("required"), "{line}");
    single_error_line(
        &lockstep(&[
            "gen", "--seed", "1", "--orders", "1", "--mix", "odd", "--out", "x",
        ]),
        2,
    );
    let line = single_error_line(
        &lockstep(&["bench-engine", "--commands", "3", "--windows", "4"]),
        2,
    );
    assert!(line.contains("--windows 4"), "{line}");
    single_error_line(&lockstep(&["bench-engine", "--rounds", "0"]), 2);
    single_error_line(&lockstep(&["bench-engine", "--mix", "odd"]), 2);
    single_error_line(&lockstep(&[]), 2);
    single_error_line(&lockstep(&["frobnicate"]), 2);
}

#[test]
fn a_missing_input_file_is_a_failure_not_a_usage_error() {
    let line = single_error_line(&lockstep(&["replay", "--flow", "/nonexistent/flow.csv"]), 1);
    assert!(line.contains("cannot open /nonexistent/flow.csv"), "{line}");
}

#[test]
fn every_subcommand_has_help() {
    for subcommand in [
        &["--help"][..],
        &["replay", "--help"],
        &["gen", "--help"],
        &["import-lobster", "--help"],
        &["bench-engine", "--help"],
    ] {
        let output = lockstep(subcommand);
        assert_success(&output, "--help");
        assert!(stdout_of(&output).contains("Usage: lockstep"));
    }
}

fn bench_engine_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["bench-engine"];
    full.extend_from_slice(args);
    full.push("--json");
    let output = lockstep(&full);
    assert_success(&output, "bench-engine");
    assert!(output.stderr.is_empty(), "{}", stderr_of(&output));
    serde_json::from_str(&stdout_of(&output)).expect("bench-engine --json prints JSON")
}

fn positive(value: &serde_json::Value, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(number > 0.0, "{what} = {number}");
    number
}

#[test]
fn bench_engine_reports_speed_latency_windows_and_memory_as_json() {
    let report = bench_engine_json(&["--commands", "20000", "--rounds", "1", "--windows", "2"]);
    assert_eq!(report["mix"], "exchange-core");
    assert_eq!(report["commands"], 20_000);
    assert_eq!(report["capacity"], 65_536);
    assert!(report["comparison_skipped"].is_null());

    let comparison = &report["comparison"];
    assert_eq!(comparison["commands"], 20_000);
    assert_eq!(comparison["rounds"], 1);
    for key in ["lockstep_ns_per_command", "matchcore_ns_per_command"] {
        let rounds = comparison[key].as_array().expect("a list per round");
        assert_eq!(rounds.len(), 1, "{key}");
        positive(&rounds[0], key);
    }
    let lockstep = positive(&comparison["lockstep_median_ns"], "lockstep median");
    let matchcore = positive(&comparison["matchcore_median_ns"], "matchcore median");
    let speedup = positive(&comparison["speedup"], "speedup");
    assert!((speedup - matchcore / lockstep).abs() < 1e-9 * speedup.max(1.0));

    let latency = &report["latency"];
    let windows = latency["windows"].as_array().expect("windows is a list");
    assert_eq!(windows.len(), 2);
    for (index, window) in windows.iter().enumerate() {
        assert_eq!(window["index"], index);
        assert_eq!(window["first_command"], index as u64 * 10_000);
        assert_eq!(window["commands"], 10_000);
        let mut previous = 0.0;
        for key in ["p50_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns"] {
            let value = positive(&window[key], key);
            assert!(
                value >= previous,
                "window {index}: {key} below the one before"
            );
            previous = value;
        }
        positive(&window["mean_ns"], "mean_ns");
    }
    assert_eq!(latency["overall"]["commands"], 20_000);
    positive(&latency["overall"]["p999_ns"], "overall p99.9");
    positive(&latency["timer_pair_ns_p50"], "timer pair");
    positive(&latency["p999_last_over_first"], "last/first");
    assert!(positive(&latency["p999_max_over_min"], "max/min") >= 1.0);
    positive(&latency["orders_live_at_end"], "orders live");
    positive(&latency["levels_live_at_end"], "levels live");

    let memory = &report["memory"];
    assert_eq!(memory["capacity"], 65_536);
    for key in [
        "bytes_per_resting_order",
        "bytes_per_level",
        "table_bytes",
        "event_bytes",
    ] {
        positive(&memory[key], key);
    }
    let table = memory["table_bytes"].as_u64().unwrap_or(0);
    let per_order = memory["bytes_per_resting_order"].as_u64().unwrap_or(0);
    assert!(table >= per_order * 65_536, "the tables hold every order");
}

#[test]
fn bench_engine_skips_matchcore_for_the_simple_mix_and_says_why() {
    let report = bench_engine_json(&[
        "--mix",
        "simple",
        "--commands",
        "5000",
        "--rounds",
        "1",
        "--windows",
        "2",
    ]);
    assert_eq!(report["mix"], "simple");
    assert!(report["comparison"].is_null());
    let reason = report["comparison_skipped"].as_str().expect("a reason");
    assert!(reason.contains("matchcore"), "{reason}");
    assert_eq!(
        report["latency"]["windows"].as_array().map(Vec::len),
        Some(2)
    );

    let output = lockstep(&[
        "bench-engine",
        "--mix",
        "simple",
        "--commands",
        "5000",
        "--windows",
        "2",
    ]);
    assert_success(&output, "bench-engine");
    let text = stdout_of(&output);
    assert!(text.contains("matchcore comparison skipped"), "{text}");
    assert!(text.contains("flatness: p99.9 last/first window"), "{text}");
}
