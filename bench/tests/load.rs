//! `run_load` against the echo baselines, as plumbing: both I/O backends
//! (io_uring where the kernel allows it), open and closed loop, answer every
//! message and fill the order-to-Accepted histogram; the reports built from
//! the runs pair nothing (no Lockstep run) and write parseable files. No
//! timing is asserted.

use lockstep_bench::echo::uring_available;
use lockstep_bench::session_flow::FlowKind;
use lockstep_bench::{run_load, write_reports, EchoBackend, LoadOptions, Pacing, Target};
use std::time::Duration;

fn options(label: &str, pacing: Pacing) -> LoadOptions {
    let mut options = LoadOptions::new(label, 2, pacing);
    options.duration = Duration::from_millis(400);
    options.warmup = Duration::from_millis(100);
    options.drain_timeout = Duration::from_secs(5);
    options.flow.kind = FlowKind::EnterOnly;
    options
}

#[test]
fn echo_runs_answer_every_message_open_and_closed_loop() {
    let mut backends = vec![EchoBackend::Mio];
    match uring_available() {
        Ok(()) => backends.push(EchoBackend::Uring),
        Err(why) => eprintln!("io_uring echo not tested: {why}"),
    }
    let mut runs = Vec::new();
    for backend in backends {
        for pacing in [
            Pacing::OpenLoop { rate_per_s: 2_000 },
            Pacing::ClosedLoop { outstanding: 2 },
        ] {
            let label = format!("echo-{}-{pacing:?}", backend.name());
            let report = run_load(&options(&label, pacing), Target::Echo(backend))
                .unwrap_or_else(|error| panic!("{label}: {error}"));
            assert_eq!(report.unanswered, 0, "{label}");
            assert_eq!(report.counts.unmatched_replies, 0, "{label}");
            assert!(
                report.accepted.len() > 100,
                "{label}: {}",
                report.accepted.len()
            );
            assert_eq!(report.counts.measured_answered, report.counts.measured_sent);
            assert!(report.achieved_rate > 0.0);
            let echo = report.echo.expect("echo stats");
            assert_eq!(echo.connections, 2);
            assert_eq!(echo.replies, report.counts.enters_sent, "{label}");
            runs.push(report);
        }
    }
    let dir = std::env::temp_dir().join(format!("lockstep-bench-load-{}", std::process::id()));
    let written = write_reports(&dir, &runs, serde_json::json!({"test": true})).expect("reports");
    assert!(written.iter().any(|path| path.ends_with("latency.png")));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), runs.len());
    assert!(summary["baseline_ratios"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_target_is_an_error_not_a_hang() {
    let error = run_load(
        &options("nowhere", Pacing::OpenLoop { rate_per_s: 100 }),
        Target::Connect {
            addr: "127.0.0.1:1".parse().unwrap(),
            credentials: vec![
                lockstep_bench::Credentials {
                    username: "a".to_string(),
                    password: "b".to_string(),
                };
                2
            ],
        },
    )
    .expect_err("nothing listens on port 1");
    assert!(error.contains("nowhere"), "{error}");
}
