//! `lockstep bench` end to end, as plumbing: a short run at a low rate
//! against the in-process server and its echo baseline fills the histograms
//! and writes `.hgrm` files that parse, a JSON summary with the promised
//! fields and a PNG. No timing is asserted: the machine may be busy.

mod common;

use common::{lockstep, path_arg, single_error_line, stdout_of};
use lockstep_bench::hgrm::parse_rows;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn hgrm_rows(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(text.contains("#[Mean    ="), "{path:?}");
    let rows = parse_rows(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let last = rows
        .last()
        .unwrap_or_else(|| panic!("{path:?} has no rows"));
    assert_eq!(last.percentile, 1.0, "{path:?}");
    rows.len()
}

#[test]
fn a_short_run_fills_the_histograms_and_writes_every_report() {
    let dir = temp_dir("plumbing");
    let out = dir.join("out");
    let output = lockstep(&[
        "bench",
        "--rate",
        "400",
        "--sessions",
        "2",
        "--duration-s",
        "1",
        "--warmup-s",
        "0.2",
        "--io",
        "mio",
        "--durability",
        "none",
        "--out",
        path_arg(&out),
        "--dir",
        path_arg(&dir),
    ]);
    common::assert_success(&output, "lockstep bench");
    let report = stdout_of(&output);
    assert!(report.contains("lockstep-mio-400"), "{report}");
    assert!(report.contains("over echo-mio-400"), "{report}");

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json parses");
    let runs = summary["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{summary}");
    let echo = &runs[0];
    let lockstep_run = &runs[1];
    assert_eq!(echo["target"], "echo-mio");
    assert_eq!(lockstep_run["target"], "lockstep-mio");
    assert_eq!(lockstep_run["pacing"]["rate_per_s"], 400);
    for run in runs {
        let accepted = &run["latency_ns"]["order_to_accepted"];
        assert!(accepted["count"].as_u64().unwrap() > 100, "{run}");
        for key in [
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "p99_9_ns",
            "p99_99_ns",
            "max_ns",
        ] {
            assert!(accepted[key].as_u64().unwrap() > 0, "{key} in {run}");
        }
        assert!(run["achieved_rate_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(run["unanswered"], 0, "{run}");
    }
    assert!(
        lockstep_run["latency_ns"]["order_to_executed"]["count"]
            .as_u64()
            .unwrap()
            > 0,
        "the flow trades: {lockstep_run}"
    );
    assert!(lockstep_run["counts"]["cancels_sent"].as_u64().unwrap() > 0);
    let server = &lockstep_run["server"];
    assert_eq!(server["replicas_agree"], true, "{server}");
    assert!(server["state_hash"].is_string(), "{server}");
    assert!(echo["server"].is_null());
    let ratios = summary["baseline_ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 1);
    assert!(ratios[0]["p50_ratio"].as_f64().unwrap() > 0.0);

    for name in [
        "echo-mio-400.order_to_accepted.hgrm",
        "lockstep-mio-400.order_to_accepted.hgrm",
        "lockstep-mio-400.order_to_executed.hgrm",
        "lockstep-mio-400.cancel_to_canceled.hgrm",
    ] {
        assert!(hgrm_rows(&out.join(name)) > 5, "{name}");
        assert!(
            lockstep_run["files"]
                .as_object()
                .unwrap()
                .values()
                .chain(echo["files"].as_object().unwrap().values())
                .any(|file| file == name),
            "{name} is listed in summary.json"
        );
    }
    let png = std::fs::read(out.join("latency.png")).expect("latency.png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG magic");
    assert!(png.len() > 10_000);
    // The run's data directory is removed.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("lockstep-bench-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_kill_run_reports_zero_gaps_and_duplicates_and_the_window() {
    let dir = temp_dir("kill");
    let out = dir.join("out");
    let output = lockstep(&[
        "bench",
        "--rate",
        "2k",
        "--sessions",
        "3",
        "--duration-s",
        "1.5",
        "--warmup-s",
        "0.2",
        "--kill-replica",
        "0.8",
        "--io",
        "mio",
        "--no-echo",
        "--durability",
        "none",
        "--out",
        path_arg(&out),
        "--dir",
        path_arg(&dir),
    ]);
    common::assert_success(&output, "lockstep bench --kill-replica");
    let report = stdout_of(&output);
    assert!(
        report.contains("Replica kill (lockstep-mio-2k)"),
        "{report}"
    );
    assert!(
        report.contains("gaps seen by the clients: 0   duplicates seen by the clients: 0"),
        "{report}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json parses");
    let run = &summary["runs"][0];
    let kill = &run["kill"];
    assert_eq!(kill["gaps"], 0, "{kill}");
    assert_eq!(kill["duplicates"], 0, "{kill}");
    assert_eq!(kill["replica_panics"], 1, "{kill}");
    assert!(kill["replica_rebuilds"].as_u64().unwrap() >= 1, "{kill}");
    assert!(
        kill["accepted_kill_window_ns"]["count"].as_u64().unwrap() > 0,
        "{kill}"
    );
    assert!(
        kill["accepted_steady_ns"]["count"].as_u64().unwrap() > 0,
        "{kill}"
    );
    assert!(run["server"]["replicas_agree"].as_bool().unwrap(), "{run}");
    assert_eq!(run["match_audit"]["sides_missing"], 0, "{run}");
    assert!(
        run["match_audit"]["match_number_max"].as_u64().unwrap() > 0,
        "{run}"
    );
    for name in ["order_to_accepted_kill_window", "order_to_accepted_steady"] {
        assert!(hgrm_rows(&out.join(format!("lockstep-mio-2k.{name}.hgrm"))) > 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replay_of_a_generated_flow_passes_its_state_check_and_writes_its_files() {
    let dir = temp_dir("replay");
    let flow = dir.join("flow.csv");
    let generated = lockstep(&[
        "gen",
        "--seed",
        "3",
        "--orders",
        "3000",
        "--mix",
        "exchange-core",
        "--out",
        path_arg(&flow),
    ]);
    common::assert_success(&generated, "lockstep gen");
    let out = dir.join("out");
    let output = lockstep(&[
        "bench",
        "--replay",
        path_arg(&flow),
        "--durability",
        "none",
        "--out",
        path_arg(&out),
        "--dir",
        path_arg(&dir),
    ]);
    common::assert_success(&output, "lockstep bench --replay");
    let report = stdout_of(&output);
    assert!(report.contains("PASS"), "{report}");
    assert!(hgrm_rows(&out.join("replay.command_to_answer.hgrm")) > 1);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("replay-summary.json")).expect("replay-summary.json"),
    )
    .expect("replay-summary.json parses");
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(
        summary["server_hash"], summary["reference_hash"],
        "{summary}"
    );
    assert_eq!(summary["unanswered"], 0, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_one_line_usage_errors() {
    for (args, expected) in [
        (&["bench", "--rate", "fast"][..], "not a rate"),
        (&["bench", "--rate", "10k", "--rates", "5k"][..], "--rates"),
        (&["bench", "--outstanding", "3"][..], "--closed-loop"),
        (
            &["bench", "--user", "demo1", "--password", "x"][..],
            "--connect",
        ),
        (&["bench", "--connect", "127.0.0.1:9"][..], "--user"),
        (&["bench", "--io", "epoll"][..], "not an I/O backend"),
        (
            &["bench", "--rate", "5M", "--duration-s", "10"][..],
            "messages",
        ),
        (
            &["bench", "--duration-s", "2", "--kill-replica", "3.5"][..],
            "must fall inside the run",
        ),
        (
            &["bench", "--closed-loop", "--kill-replica", "1"][..],
            "--kill-replica",
        ),
    ] {
        let line = single_error_line(&lockstep(args), 2);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}
